//! The live access policy: who may connect (the authenticator), what they
//! may do (ACLs), how refusals look, and the per-connection limits. The
//! whole policy is replaced at once on reload (SIGHUP), so a session sees
//! either the old rules or the new ones, never a mix; open connections are
//! kept and the new rules apply to their next frame.

use crate::auth::{AuthError, Authenticator, ConnectRequest, Principal};
use crate::config::{AclAction, AuthMode, Config, LimitsConfig, RefusalMode};
use crate::security::acl::Acl;
use crate::security::authenticator::ConfiguredAuthenticator;
use crate::security::login_guard::LoginGuard;
use crate::security::users::UserDb;
use crate::security::SecurityError;
use arc_swap::ArcSwap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// One generation of the access rules.
pub(crate) struct Policy {
    /// Decides who a CONNECT is.
    pub auth: Arc<dyn Authenticator>,
    /// Publish / subscribe / create rules.
    pub acl: Acl,
    /// How a denied SEND or SUBSCRIBE is answered.
    pub refusal: RefusalMode,
    /// How long a failed login waits before its ERROR.
    pub failed_login_delay: Duration,
    /// Per-connection limits for sessions (new ones for the codec and
    /// rates; every one for subscription counts).
    pub limits: LimitsConfig,
    /// The users file, for the admin listener's credentials.
    pub users: Option<Arc<UserDb>>,
}

/// Why a CONNECT was refused, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginRefusal {
    /// The credentials were not accepted.
    Invalid(AuthError),
    /// This address failed too often recently.
    Throttled,
}

/// The policy in force, swappable as a whole.
pub(crate) struct Access {
    current: ArcSwap<Policy>,
    /// Failed logins by address, with the per-minute limit it enforces;
    /// kept across reloads unless the limit changes.
    guard: ArcSwap<(u32, LoginGuard)>,
    /// An authenticator the embedding program supplied; it replaces the
    /// configured one in every generation.
    custom_auth: Option<Arc<dyn Authenticator>>,
}

impl Access {
    /// Builds the policy `config` describes (`custom_auth` overrides
    /// `[auth]`).
    pub(crate) fn new(
        config: &Config,
        custom_auth: Option<Arc<dyn Authenticator>>,
    ) -> Result<Access, SecurityError> {
        let policy = build_policy(config, custom_auth.as_ref())?;
        Ok(Access {
            current: ArcSwap::from_pointee(policy),
            guard: ArcSwap::from_pointee(guard(config.auth.max_failed_logins_per_minute)),
            custom_auth,
        })
    }

    /// The policy in force now.
    pub(crate) fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.current.load()
    }

    /// Builds (without applying) the policy `config` describes, so that a
    /// reload can check every part before changing any.
    pub(crate) fn prepare(&self, config: &Config) -> Result<Policy, SecurityError> {
        build_policy(config, self.custom_auth.as_ref())
    }

    /// Puts a prepared policy in force.
    pub(crate) fn install(&self, policy: Policy, max_failed_logins_per_minute: u32) {
        if self.guard.load().0 != max_failed_logins_per_minute {
            self.guard
                .store(Arc::new(guard(max_failed_logins_per_minute)));
        }
        self.current.store(Arc::new(policy));
    }

    /// Authenticates a CONNECT: refuses throttled addresses, records
    /// failures, and answers every failure after the same delay.
    pub(crate) async fn login(
        &self,
        request: &ConnectRequest<'_>,
    ) -> Result<Principal, LoginRefusal> {
        let policy = self.policy_owned();
        let ip = request.peer.map(|p: SocketAddr| p.ip());
        let guard = self.guard.load_full();
        let guard = &guard.1;
        let outcome = if ip.is_some_and(|ip| guard.is_blocked(ip)) {
            Err(LoginRefusal::Throttled)
        } else {
            policy
                .auth
                .authenticate(request)
                .await
                .map_err(LoginRefusal::Invalid)
        };
        match (&outcome, ip) {
            (Ok(_), Some(ip)) => guard.record_success(ip),
            (Err(LoginRefusal::Invalid(_)), Some(ip)) => guard.record_failure(ip),
            _ => {}
        }
        if outcome.is_err() {
            tokio::time::sleep(policy.failed_login_delay).await;
        }
        outcome
    }

    /// Whether a users file is loaded (the admin listener needs one off
    /// loopback).
    pub(crate) fn has_users(&self) -> bool {
        self.current.load().users.is_some()
    }

    /// Checks an admin request's `Authorization: Basic` credentials: a
    /// users-file user with `role`. Failures count towards the address's
    /// failed logins and wait the failed-login delay, like STOMP logins.
    pub(crate) async fn check_admin(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
        role: &str,
    ) -> bool {
        let policy = self.policy_owned();
        let guard = self.guard.load_full();
        let blocked = peer.is_some_and(|ip| guard.1.is_blocked(ip));
        let credentials = authorization.and_then(basic_credentials);
        let verified = match (&policy.users, credentials, blocked) {
            (Some(users), Some((user, password)), false) => {
                let users = Arc::clone(users);
                tokio::task::spawn_blocking(move || users.verify(&user, &password))
                    .await
                    .ok()
                    .flatten()
            }
            _ => None,
        };
        let allowed = verified.is_some_and(|p| p.has_role(role));
        if !allowed {
            if let (Some(ip), false) = (peer, blocked) {
                guard.1.record_failure(ip);
            }
            tokio::time::sleep(policy.failed_login_delay).await;
        }
        allowed
    }

    /// Whether the rules in force allow everything (no rules, default
    /// allow).
    pub(crate) fn is_open(&self) -> bool {
        self.current.load().acl.is_open()
    }

    /// Whether `principal` may do `action` on `destination` now.
    pub(crate) fn allows(
        &self,
        principal: &Principal,
        action: AclAction,
        destination: &str,
    ) -> bool {
        let policy = self.current.load();
        policy.acl.is_open() || policy.acl.allows(principal, action, destination)
    }

    fn policy_owned(&self) -> Arc<Policy> {
        self.current.load_full()
    }
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn guard(max_failed_logins_per_minute: u32) -> (u32, LoginGuard) {
    (
        max_failed_logins_per_minute,
        LoginGuard::new(max_failed_logins_per_minute),
    )
}

fn build_policy(
    config: &Config,
    custom_auth: Option<&Arc<dyn Authenticator>>,
) -> Result<Policy, SecurityError> {
    let (auth, users): (Arc<dyn Authenticator>, _) = match custom_auth {
        Some(auth) if config.auth.users_file.is_empty() => (Arc::clone(auth), None),
        Some(auth) => (
            Arc::clone(auth),
            Some(Arc::new(UserDb::load(&config.auth.users_file)?)),
        ),
        None => {
            let configured = ConfiguredAuthenticator::from_config_with_client_certs(
                &config.auth,
                !config.tls.client_ca.is_empty(),
            )?;
            let users = configured.users().cloned();
            (Arc::new(configured), users)
        }
    };
    Ok(Policy {
        auth,
        acl: Acl::from_config(&config.acl)?,
        refusal: config.acl.refusal,
        failed_login_delay: Duration::from_millis(config.auth.failed_login_delay_ms),
        limits: config.limits.clone(),
        users,
    })
}

/// Refuses development mode (logins unchecked) on listeners other
/// programs can reach.
pub(crate) fn check_dev_mode_is_local(config: &Config, custom_auth: bool) -> Result<(), String> {
    if custom_auth || config.auth.mode != AuthMode::Dev {
        return Ok(());
    }
    let l = &config.listeners;
    for (name, addr) in [
        ("tcp", &l.tcp),
        ("websocket", &l.websocket),
        ("tcp_tls", &l.tcp_tls),
        ("websocket_tls", &l.websocket_tls),
    ] {
        if addr.is_empty() {
            continue;
        }
        let local = match addr.parse::<SocketAddr>() {
            Ok(a) => a.ip().is_loopback(),
            Err(_) => addr.starts_with("localhost:"),
        };
        if !local {
            return Err(format!(
                "[auth] mode = \"dev\" accepts any login without a password, so it only runs on \
                 loopback addresses; listener {name} is {addr}. Set [auth] mode = \"secure\" \
                 with a users_file or [auth.jwt] keys (see the README's Security section)."
            ));
        }
    }
    tracing::warn!(
        "development mode: logins are not checked (the login header is the user name); \
         only loopback listeners are allowed"
    );
    Ok(())
}
