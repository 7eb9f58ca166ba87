//! The broker's side of the plugin interface: which plugin owns which
//! destination prefix, and the [`Services`] plugins use.

use crate::broker::Shared;
use crate::cluster::plugin_logs::PluginLogs;
use crate::config::StoreKind;
use crate::router::Route;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use stompede_plugin::{Message, Plugin, ReplicatedLog, Services};

/// The registered plugins and the prefixes they own.
pub(crate) struct PluginHost {
    /// Every plugin, in registration order (their hooks run in this order).
    pub all: Vec<Arc<dyn Plugin>>,
    /// Owned prefixes, longest first, so the most specific owner wins.
    owned: Vec<(String, Arc<dyn Plugin>)>,
}

impl PluginHost {
    /// Collects the plugins' owned prefixes; two plugins may not own the
    /// same one, and no plugin may own a prefix the router serves.
    pub(crate) fn new(all: Vec<Arc<dyn Plugin>>) -> Result<PluginHost, String> {
        const ROUTER_PREFIXES: [&str; 5] = [
            "/topic/",
            "/queue/",
            "/temp-queue/",
            "/reply-queue/",
            "/user/",
        ];
        let mut owned: Vec<(String, Arc<dyn Plugin>)> = Vec::new();
        for plugin in &all {
            for prefix in plugin.owned_prefixes() {
                if !prefix.starts_with('/') || ROUTER_PREFIXES.iter().any(|r| prefix.starts_with(r))
                {
                    return Err(format!(
                        "plugin {} cannot own the destination prefix {prefix:?}",
                        plugin.name()
                    ));
                }
                if let Some((_, other)) = owned.iter().find(|(p, _)| *p == prefix) {
                    return Err(format!(
                        "plugins {} and {} both own {prefix:?}",
                        other.name(),
                        plugin.name()
                    ));
                }
                owned.push((prefix, Arc::clone(plugin)));
            }
        }
        owned.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(PluginHost { all, owned })
    }

    /// The plugin that serves `destination`, if a plugin owns its prefix.
    pub(crate) fn owner_of(&self, destination: &str) -> Option<&Arc<dyn Plugin>> {
        self.owned
            .iter()
            .find(|(prefix, _)| destination.starts_with(prefix.as_str()))
            .map(|(_, plugin)| plugin)
    }

    /// Whether no plugin is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Tells every plugin the broker is stopping.
    pub(crate) fn stop(&self) {
        for plugin in &self.all {
            plugin.stop();
        }
    }

    /// Starts every plugin with the broker's services, then (in a
    /// cluster) feeds the plugins that keep a log their records.
    pub(crate) fn start(&self, shared: &Arc<Shared>, logs: PluginLogs) -> Result<(), String> {
        let logs = Arc::new(logs);
        let services: Arc<dyn Services> = Arc::new(BrokerServices {
            shared: Arc::downgrade(shared),
            logs: Arc::clone(&logs),
        });
        for plugin in &self.all {
            plugin
                .start(Arc::clone(&services))
                .map_err(|e| format!("plugin {} failed to start: {e}", plugin.name()))?;
        }
        logs.start_reading(&self.all, &shared.shutdown)
    }
}

/// What plugins may ask of the broker. Holds the broker weakly: a plugin
/// keeping its services does not keep a shut-down broker alive.
struct BrokerServices {
    shared: Weak<Shared>,
    logs: Arc<PluginLogs>,
}

impl Services for BrokerServices {
    fn publish(&self, message: Message, reliable: bool) -> Result<(), String> {
        let shared = self.shared.upgrade().ok_or("the broker has stopped")?;
        let destination = message.destination.clone();
        match shared.router.route(&destination) {
            Ok(Route::Topic | Route::ReplyQueue) => {
                let message = Arc::new(message);
                match reliable {
                    false => shared.router.topics.publish(&destination, &message),
                    true => shared
                        .router
                        .topics
                        .publish_reliably(&destination, &message),
                };
                Ok(())
            }
            Ok(_) => Err(format!(
                "plugins publish to topics and reply queues only, not {destination}"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn deliver_to_user(&self, user: &str, tail: &str, message: Message, reliable: bool) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let key = bytestring::ByteString::from(format!("/user/{user}/{tail}"));
        let message = Arc::new(
            message.with_destination(bytestring::ByteString::from(format!("/user/{tail}"))),
        );
        match reliable {
            false => shared.router.topics.publish(&key, &message),
            true => shared.router.topics.publish_reliably(&key, &message),
        };
    }

    fn data_dir(&self, plugin: &str) -> Option<PathBuf> {
        let shared = self.shared.upgrade()?;
        match (shared.config.store.kind, shared.store_is_custom) {
            (StoreKind::Sled, false) => Some(
                PathBuf::from(&shared.config.store.path)
                    .join("plugins")
                    .join(plugin),
            ),
            _ => None,
        }
    }

    fn log(&self, name: &str) -> Option<Arc<dyn ReplicatedLog>> {
        self.logs.writer(name)
    }
}
