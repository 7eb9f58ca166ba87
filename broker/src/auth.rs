//! Authentication at CONNECT: who a connection is.
//!
//! The broker asks its [`Authenticator`] once per CONNECT. The built-in one
//! (`crate::security::ConfiguredAuthenticator`) follows the `[auth]`
//! configuration: development mode takes the `login` header as the user,
//! secure mode checks a client certificate, a JWT or a users-file password.
//! Embedders may plug in their own.

use bytestring::ByteString;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::SystemTime;
use stompede_codec::Headers;

/// What a client presented at CONNECT.
#[derive(Debug)]
pub struct ConnectRequest<'a> {
    /// The `login` header.
    pub login: Option<&'a str>,
    /// The `passcode` header.
    pub passcode: Option<&'a str>,
    /// Every CONNECT header (e.g. `Authorization`).
    pub headers: &'a Headers,
    /// The peer's address, when the transport has one.
    pub peer: Option<SocketAddr>,
    /// The user name from a verified TLS client certificate, if any.
    pub tls_identity: Option<&'a str>,
}

impl ConnectRequest<'_> {
    /// The token of an `Authorization: Bearer <token>` header, if present.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self
            .headers
            .get("Authorization")
            .or_else(|| self.headers.get("authorization"))?;
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

/// An authenticated (or anonymous) connection's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The user name; `None` for an anonymous connection.
    pub user: Option<ByteString>,
    /// The user's roles (from the users file or a JWT claim).
    pub roles: Vec<String>,
    /// When the credentials stop being valid (a JWT's `exp`); the broker
    /// closes the connection then.
    pub expires_at: Option<SystemTime>,
}

impl Principal {
    /// A user with no roles and no expiry.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            user: Some(ByteString::from(name.into())),
            ..Principal::default()
        }
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Why a CONNECT was refused. The text goes to the client in the ERROR
/// frame, so it must not reveal which part of the credentials was wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AuthError(pub String);

/// The future an [`Authenticator`] returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send + 'a>>;

/// Decides who a connection is.
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts or refuses a CONNECT. Slow checks (password hashing) must
    /// not block the async runtime: run them with `spawn_blocking`.
    fn authenticate<'a>(&'a self, request: &'a ConnectRequest<'a>) -> AuthFuture<'a>;
}

/// Accepts everyone; the `login` header (if any) becomes the user name.
/// This is development mode; [`crate::Broker::start`] refuses it on
/// non-loopback listeners.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AllowAll {
    /// The principal development mode gives a CONNECT.
    pub fn principal(request: &ConnectRequest<'_>) -> Principal {
        match request.login.filter(|l| !l.is_empty()) {
            Some(login) => Principal::user(login),
            None => Principal::default(),
        }
    }
}

impl Authenticator for AllowAll {
    fn authenticate<'a>(&'a self, request: &'a ConnectRequest<'a>) -> AuthFuture<'a> {
        let principal = AllowAll::principal(request);
        Box::pin(async move { Ok(principal) })
    }
}
