//! Configuration of transport security, authentication, authorization and
//! the admin listener's credentials.

use serde::Deserialize;

/// TLS for the `tcp_tls` and `websocket_tls` listeners (rustls; TLS 1.2 and
/// 1.3 only). Files are PEM and are read again on SIGHUP.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// CA certificates that sign client certificates; empty = clients
    /// present no certificate.
    pub client_ca: String,
    /// Refuse clients without a valid certificate (only with `client_ca`).
    pub require_client_cert: bool,
}

impl TlsConfig {
    /// Whether a certificate and key are configured.
    pub fn is_configured(&self) -> bool {
        !self.cert.is_empty() && !self.key.is_empty()
    }
}

/// How connections are authenticated.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Development: no password is checked, the `login` header is the user
    /// name. Allowed only while every STOMP listener is on loopback.
    #[default]
    Dev,
    /// Credentials are checked: a client certificate, a JWT, or a login and
    /// passcode from the users file.
    Secure,
}

/// Authentication at CONNECT.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `dev` or `secure`.
    pub mode: AuthMode,
    /// In secure mode, accept a CONNECT without credentials as anonymous.
    pub anonymous: bool,
    /// TOML file of users with argon2id password hashes (`stompede passwd`).
    pub users_file: String,
    /// Every failed login is answered after this delay, whatever failed.
    pub failed_login_delay_ms: u64,
    /// Failed logins one IP address may make per minute; beyond that its
    /// CONNECTs are refused without checking (0 = no limit).
    pub max_failed_logins_per_minute: u32,
    /// JSON Web Tokens.
    pub jwt: JwtConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Dev,
            anonymous: false,
            users_file: String::new(),
            failed_login_delay_ms: 300,
            max_failed_logins_per_minute: 20,
            jwt: JwtConfig::default(),
        }
    }
}

/// JWT login: the token travels in `passcode` or in an `Authorization:
/// Bearer ...` CONNECT header. Enabled when at least one key is configured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// A file holding the HS256 shared secret (raw bytes, trailing newline
    /// trimmed).
    pub hs256_secret_file: String,
    /// PEM public keys (RSA for RS256, EC P-256 for ES256).
    pub public_key_files: Vec<String>,
    /// A JWKS file (`{"keys": [...]}`); tokens pick a key by `kid`.
    pub jwks_file: String,
    /// Required `iss`, if not empty.
    pub issuer: String,
    /// Required `aud`, if not empty.
    pub audience: String,
    /// The claim holding the user's roles: a list of strings, or one
    /// string of space-separated roles. Dots name nested claims
    /// (`realm_access.roles`).
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hs256_secret_file: String::new(),
            public_key_files: Vec::new(),
            jwks_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            roles_claim: "roles".into(),
            leeway_s: 5,
        }
    }
}

impl JwtConfig {
    /// Whether any key is configured.
    pub fn is_enabled(&self) -> bool {
        !self.hs256_secret_file.is_empty()
            || !self.public_key_files.is_empty()
            || !self.jwks_file.is_empty()
    }
}

/// What an ACL rule allows or denies.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum AclAction {
    /// SEND to the destination.
    Publish,
    /// SUBSCRIBE to the destination.
    Subscribe,
    /// Be the first to use a queue (which creates it).
    Create,
}

/// Whether a matching rule allows or denies.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AclEffect {
    /// The action is allowed.
    #[default]
    Allow,
    /// The action is denied.
    Deny,
}

/// How a denied SEND or SUBSCRIBE is answered.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalMode {
    /// ERROR, then close (the specification's way).
    #[default]
    Error,
    /// Keep the connection: a RECEIPT carrying `x-error` (for frames that
    /// asked for one; others are dropped), and for SUBSCRIBE one MESSAGE on
    /// the subscription with `x-event:denied`.
    Receipt,
}

/// One authorization rule. The first rule that matches the principal, the
/// action and the destination decides.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Who the rule is for: `user:NAME`, `role:NAME`, `anonymous`, or `*`.
    pub who: Vec<String>,
    /// Destination pattern: `*` is one segment, `#` any number (segments
    /// are separated by `/` and `.`); `{user}` is the principal's name.
    pub destination: String,
    /// The actions the rule covers.
    pub actions: Vec<AclAction>,
    /// Allow or deny.
    #[serde(default)]
    pub effect: AclEffect,
}

/// Authorization.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AclConfig {
    /// What happens when no rule matches.
    pub default: AclEffect,
    /// How denials are answered.
    pub refusal: RefusalMode,
    /// The rules, in order.
    #[serde(rename = "rule")]
    pub rules: Vec<AclRule>,
}

/// The admin listener: its credentials and what `/metrics` shows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Require HTTP basic credentials even on loopback. They are always
    /// required on any other address.
    pub require_login: bool,
    /// The role a users-file user needs to use the admin listener.
    pub role: String,
    /// How many of the deepest queues get their own depth and unacked
    /// series in `/metrics` (bounded cardinality; totals cover all).
    pub metrics_top_queues: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            require_login: false,
            role: "admin".into(),
            metrics_top_queues: 20,
        }
    }
}
