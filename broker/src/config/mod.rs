//! Broker configuration: a TOML file, overridden by the command line.
//!
//! Every field has a default; [`DEFAULT_CONFIG_TOML`] is the commented
//! default file that `stompede config default` prints.

mod security;

use serde::Deserialize;
use std::time::Duration;
use stompede_codec::Limits;

pub use security::{
    AclAction, AclConfig, AclEffect, AclRule, AdminConfig, AuthConfig, AuthMode, JwtConfig,
    RefusalMode, TlsConfig,
};

/// The commented default configuration, exactly as the broker reads it.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default-config.toml");

/// The whole broker configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listener addresses.
    pub listeners: ListenersConfig,
    /// WebSocket transport options.
    pub websocket: WebSocketConfig,
    /// Size and count limits.
    pub limits: LimitsConfig,
    /// Heart-beat negotiation.
    pub heartbeat: HeartbeatConfig,
    /// Outbound delivery and slow consumers.
    pub delivery: DeliveryConfig,
    /// Queue behaviour.
    pub queues: QueuesConfig,
    /// Destination routing.
    pub routing: RoutingConfig,
    /// Durable storage.
    pub store: StoreConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// Logging.
    pub log: LogConfig,
    /// TLS certificates for the TLS listeners.
    pub tls: TlsConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Authorization rules.
    pub acl: AclConfig,
    /// Admin listener credentials.
    pub admin: AdminConfig,
    /// The chat plugin (rooms, history, read receipts).
    pub chat: stompede_chat::ChatConfig,
    /// Clustering through Kafka.
    pub cluster: ClusterConfig,
}

impl Config {
    /// Parses a TOML document; missing keys take their defaults, unknown
    /// keys are errors.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        let config: Config = toml::from_str(text)?;
        // serde cannot refuse unknown keys next to a flattened struct, so
        // the queue tables are checked by hand.
        let raw: toml::Table = toml::from_str(text)?;
        if let Some(toml::Value::Table(queues)) = raw.get("queues") {
            check_queue_keys(queues, &["default_prefetch", "policy"])?;
            if let Some(toml::Value::Array(policies)) = queues.get("policy") {
                for policy in policies.iter().filter_map(toml::Value::as_table) {
                    check_queue_keys(policy, &["pattern"])?;
                }
            }
        }
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// The shutdown grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown.grace_ms)
    }

    /// The codec limits this configuration asks for.
    pub fn codec_limits(&self) -> Limits {
        self.limits.codec_limits()
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parse error.
        source: toml::de::Error,
    },
}

/// Where the broker listens. An empty address disables a listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersConfig {
    /// STOMP over TCP.
    pub tcp: String,
    /// STOMP over WebSocket.
    pub websocket: String,
    /// The WebSocket upgrade path.
    pub websocket_path: String,
    /// STOMP over TLS (see [`TlsConfig`]).
    pub tcp_tls: String,
    /// STOMP over secure WebSocket (WSS).
    pub websocket_tls: String,
    /// The admin HTTP listener (`/metrics`, `/healthz`, `/readyz`, the JSON
    /// API and the status page).
    pub admin: String,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        ListenersConfig {
            tcp: "127.0.0.1:61613".into(),
            websocket: "127.0.0.1:15674".into(),
            websocket_path: "/ws".into(),
            tcp_tls: String::new(),
            websocket_tls: String::new(),
            admin: "127.0.0.1:15692".into(),
        }
    }
}

/// WebSocket transport options.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Refuse clients that offer no STOMP subprotocol.
    pub require_subprotocol: bool,
    /// Send all frames as binary messages.
    pub binary_frames: bool,
    /// Largest accepted WebSocket message.
    pub max_message_bytes: usize,
    /// Origins allowed to open a WebSocket (`https://app.example.com`);
    /// empty allows any. Requests without an `Origin` header (non-browser
    /// clients) are always allowed.
    pub allowed_origins: Vec<String>,
    /// A directory whose files the WebSocket listeners serve on their other
    /// paths (the example chat page); empty serves nothing.
    pub static_dir: String,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            require_subprotocol: false,
            binary_frames: false,
            max_message_bytes: 16 * 1024 * 1024 + 64 * 1024,
            allowed_origins: Vec::new(),
            static_dir: String::new(),
        }
    }
}

/// Size and count limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open connections across all listeners.
    pub max_connections: usize,
    /// Whole frame size.
    pub max_frame_bytes: usize,
    /// Body size.
    pub max_body_bytes: usize,
    /// Header lines per frame.
    pub max_headers: usize,
    /// One header line's length.
    pub max_header_line_bytes: usize,
    /// Subscriptions per connection.
    pub max_subscriptions_per_connection: usize,
    /// Time allowed between accepting a connection and its CONNECT.
    pub connect_timeout_ms: u64,
    /// Open connections from one IP address (0 = no limit).
    pub max_connections_per_ip: usize,
    /// Frames one connection may send per second, averaged over a second's
    /// burst (0 = no limit).
    pub max_frames_per_second: u32,
    /// Bytes one connection may send per second (0 = no limit).
    pub max_bytes_per_second: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let codec = Limits::default();
        LimitsConfig {
            max_connections: 100_000,
            max_frame_bytes: codec.max_frame_bytes,
            max_body_bytes: codec.max_body_bytes,
            max_headers: codec.max_headers,
            max_header_line_bytes: codec.max_header_line_bytes,
            max_subscriptions_per_connection: 1024,
            connect_timeout_ms: 10_000,
            max_connections_per_ip: 0,
            max_frames_per_second: 0,
            max_bytes_per_second: 0,
        }
    }
}

impl LimitsConfig {
    /// The codec limits these settings ask for.
    pub fn codec_limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_body_bytes: self.max_body_bytes,
            max_headers: self.max_headers,
            max_header_line_bytes: self.max_header_line_bytes,
            ..Limits::default()
        }
    }

    /// The CONNECT timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Heart-beat negotiation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// Smallest interval at which the broker sends heart-beats (0 = never).
    pub send_ms: u64,
    /// Interval at which the broker wants to hear from clients (0 = never).
    pub receive_ms: u64,
    /// Silence tolerated, as a multiple of the negotiated receive interval.
    pub grace_factor: f64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            send_ms: 1_000,
            receive_ms: 10_000,
            grace_factor: 3.0,
        }
    }
}

/// What to do with a topic subscriber whose outbox is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// Drop the subscriber's oldest pending topic message.
    DropOldest,
    /// Send an ERROR and close the subscriber's connection.
    Disconnect,
}

/// Outbound delivery.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Pending deliveries per connection.
    pub outbox_capacity: usize,
    /// Slow topic subscriber policy.
    pub slow_consumer: SlowConsumerPolicy,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            outbox_capacity: 8192,
            slow_consumer: SlowConsumerPolicy::DropOldest,
        }
    }
}

/// What a full queue does with a new message.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum QueueOverflowPolicy {
    /// Refuse the new message.
    Reject,
    /// Discard the oldest ready message.
    DropOldest,
}

/// Queue behaviour: defaults for every queue, and overrides for queues
/// whose destination matches a policy's pattern. (Unknown keys are caught
/// by the flattened [`QueueSettings`].)
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct QueuesConfig {
    /// Prefetch when SUBSCRIBE has no `prefetch-count`.
    pub default_prefetch: u32,
    /// Settings of queues no policy matches.
    #[serde(flatten)]
    pub defaults: QueueSettings,
    /// Per-queue overrides; the first matching pattern wins.
    #[serde(rename = "policy")]
    pub policies: Vec<QueuePolicy>,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig {
            default_prefetch: 1000,
            defaults: QueueSettings::default(),
            policies: Vec::new(),
        }
    }
}

impl QueuesConfig {
    /// The settings that apply to queue `destination`.
    pub fn settings_for(&self, destination: &str) -> QueueSettings {
        self.policies
            .iter()
            .find(|p| pattern_matches(&p.pattern, destination))
            .map(|p| p.settings.clone())
            .unwrap_or_else(|| self.defaults.clone())
    }
}

/// Refuses keys of a queue table that are neither settings nor `extra`.
fn check_queue_keys(table: &toml::Table, extra: &[&str]) -> Result<(), toml::de::Error> {
    for key in table.keys() {
        if !QueueSettings::KEYS.contains(&key.as_str()) && !extra.contains(&key.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "unknown queue setting `{key}`, expected one of {}",
                QueueSettings::KEYS.join(", ")
            )));
        }
    }
    Ok(())
}

/// `pattern` is a destination, or a prefix followed by `*`.
fn pattern_matches(pattern: &str, destination: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => destination.starts_with(prefix),
        None => pattern == destination,
    }
}

/// The settings of one queue.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Ready messages the queue holds before the overflow policy applies.
    pub max_length: usize,
    /// Body bytes of ready messages before the overflow policy applies
    /// (0 = no byte limit).
    pub max_bytes: u64,
    /// What a full queue does with a new message.
    pub overflow: QueueOverflowPolicy,
    /// Store every message, even without `persistent:true`.
    pub durable: bool,
    /// Messages older than this are never delivered (0 = no limit). A
    /// message's own `expires` header applies too.
    pub ttl_ms: u64,
    /// Deliveries without ACK before a message is dead-lettered (0 = no
    /// limit).
    pub max_deliveries: u32,
    /// Where dead letters go; `{name}` is the queue's name after `/queue/`.
    pub dead_letter: String,
}

impl QueueSettings {
    /// The setting names, as written in the configuration file.
    pub const KEYS: [&'static str; 7] = [
        "max_length",
        "max_bytes",
        "overflow",
        "durable",
        "ttl_ms",
        "max_deliveries",
        "dead_letter",
    ];
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            max_length: 100_000,
            max_bytes: 0,
            overflow: QueueOverflowPolicy::Reject,
            durable: false,
            ttl_ms: 0,
            max_deliveries: 0,
            dead_letter: "/queue/dlq.{name}".into(),
        }
    }
}

/// Settings for the queues whose destination matches `pattern`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QueuePolicy {
    /// A destination, or a prefix followed by `*` (`/queue/orders.*`).
    pub pattern: String,
    /// The settings (unset keys take the built-in defaults).
    #[serde(flatten)]
    pub settings: QueueSettings,
}

/// Which store keeps persistent messages.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// On disk, in a sled database at `store.path`.
    Sled,
    /// In memory: nothing survives a restart.
    Memory,
}

/// When the store fsyncs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// Sync before every RECEIPT; concurrent publishers still share syncs.
    Always,
    /// Gather writes for `fsync_interval_ms`, then sync once for all.
    Batch,
    /// Never wait for a sync (the store flushes about once a second):
    /// fastest, but a crash can lose receipted messages.
    Never,
}

/// Durable storage.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Store kind.
    pub kind: StoreKind,
    /// The sled database directory.
    pub path: String,
    /// Fsync policy.
    pub fsync: FsyncPolicy,
    /// The batching window of the `batch` policy.
    pub fsync_interval_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sled,
            path: "stompede-data".into(),
            fsync: FsyncPolicy::Batch,
            fsync_interval_ms: 2,
        }
    }
}

/// How destinations with an unknown prefix are treated.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownPrefixPolicy {
    /// Refuse with ERROR.
    Error,
    /// Treat as a topic.
    Topic,
    /// Treat as a queue.
    Queue,
}

/// Destination routing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Unknown-prefix policy.
    pub unknown_prefix: UnknownPrefixPolicy,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            unknown_prefix: UnknownPrefixPolicy::Error,
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Grace period before open sessions are aborted.
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_ms: 5000 }
    }
}

/// Clustering: several nodes act as one broker by bridging destinations to
/// Kafka partitions (see ARCHITECTURE.md, "Clustering").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Whether this node bridges to Kafka (needs the `kafka` feature).
    pub enabled: bool,
    /// This node's id, unique in the cluster ("" = the host name).
    pub node_id: String,
    /// Kafka bootstrap servers, comma-separated `host:port`.
    pub bootstrap_servers: String,
    /// Prefix of the Kafka topics: `{prefix}.topics`, `{prefix}.queues`,
    /// `{prefix}.plugin.{name}`; also of the queue consumer group.
    pub topic_prefix: String,
    /// Partitions of each Kafka topic the node creates.
    pub partitions: u32,
    /// Replication factor of the topics the node creates.
    pub replication_factor: u16,
    /// Start even when Kafka is unreachable (readiness reports it) instead
    /// of refusing to start.
    pub start_degraded: bool,
    /// Records the node holds for Kafka while it is unreachable; beyond
    /// this, SENDs that must cross the cluster are refused.
    pub buffer_max_messages: u32,
    /// How long a record may wait for Kafka before its SEND fails.
    pub delivery_timeout_ms: u64,
    /// librdkafka `fetch.wait.max.ms`: how long Kafka may hold a fetch
    /// open when it has nothing new (the default 500 would add up to half a
    /// second to every cross-node message).
    pub fetch_wait_max_ms: u32,
    /// librdkafka `linger.ms`: how long records wait to be batched.
    pub linger_ms: u32,
    /// Further librdkafka properties (e.g. `security.protocol`), applied
    /// to every Kafka client of the node.
    pub kafka: std::collections::BTreeMap<String, String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: String::new(),
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: "stompede".into(),
            partitions: 12,
            replication_factor: 1,
            start_degraded: false,
            buffer_max_messages: 100_000,
            delivery_timeout_ms: 120_000,
            fetch_wait_max_ms: 5,
            linger_ms: 1,
            kafka: Default::default(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` filter directive.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_matches_default_struct() {
        let parsed = Config::from_toml(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn queue_policies_override_the_defaults_by_pattern() {
        let c = Config::from_toml(
            "[queues]\nmax_length = 5\n[[queues.policy]]\npattern = \"/queue/orders.*\"\ndurable = true\n",
        )
        .unwrap();
        assert_eq!(c.queues.settings_for("/queue/other").max_length, 5);
        assert!(!c.queues.settings_for("/queue/other").durable);
        let orders = c.queues.settings_for("/queue/orders.eu");
        assert!(orders.durable);
        assert_eq!(orders.max_length, QueueSettings::default().max_length);
        assert!(Config::from_toml("[queues]\nmax_lenght = 5\n").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml("[limits]\nmax_conections = 3\n").is_err());
    }
}
