//! Authentication at CONNECT. The broker core ships [`AllowAll`], which
//! takes the `login` header as the user name without checking a password
//! (development mode); the security issue adds real authenticators behind
//! the same trait.

use bytestring::ByteString;
use std::net::SocketAddr;
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
}

/// An authenticated (or anonymous) connection's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The user name; `None` for an anonymous connection.
    pub user: Option<ByteString>,
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Decides who a connection is.
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts or refuses a CONNECT.
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, AuthError>;
}

/// Accepts everyone; the `login` header (if any) becomes the user name.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Principal, AuthError> {
        Ok(Principal {
            user: request
                .login
                .filter(|l| !l.is_empty())
                .map(|l| ByteString::from(l.to_owned())),
        })
    }
}
