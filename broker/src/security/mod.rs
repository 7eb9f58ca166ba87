//! Security: who a connection is (users file, JWT, client certificates),
//! what it may do (ACLs), and how repeated failed logins are slowed down.
//!
//! - [`users`]: the users file (argon2id password hashes) and
//!   [`hash_password`] for `stompede passwd`.
//! - [`jwt`]: JSON Web Token verification ([`JwtVerifier`]).
//! - [`acl`]: destination authorization ([`Acl`]).
//! - [`login_guard`]: per-address failed-login limiting ([`LoginGuard`]).
//! - [`authenticator`]: the [`crate::auth::Authenticator`] that follows the
//!   `[auth]` configuration ([`ConfiguredAuthenticator`]).
//!
//! Every loader reports problems as a [`SecurityError`] whose message names
//! the file or configuration section and what is wrong with it, because a
//! bad configuration on SIGHUP is rejected with exactly that message.

pub mod acl;
pub mod authenticator;
pub mod jwt;
pub mod login_guard;
pub mod users;

pub use acl::Acl;
pub use authenticator::ConfiguredAuthenticator;
pub use jwt::{looks_like_jwt, JwtVerifier};
pub use login_guard::LoginGuard;
pub use users::{hash_password, UserDb};

use std::path::Path;

/// A security file or configuration section that cannot be used.
///
/// The message is meant for an operator: it says which file (or section)
/// and what is wrong with it. It never contains secrets (passwords, keys,
/// token contents).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {what} {path:?}: {source}")]
    Read {
        /// What the file is for, e.g. `"users file"`.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not acceptable.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or other source) the content came from, e.g.
        /// `users file "/etc/stompede/users.toml"`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration section is inconsistent or has a bad value.
    #[error("{section}: {message}")]
    Config {
        /// The configuration section, e.g. `"[acl] rule 2"`.
        section: String,
        /// What is wrong with it.
        message: String,
    },
    /// Hashing a password failed (the system's random generator or the
    /// argon2 implementation refused).
    #[error("cannot hash password: {0}")]
    Hash(String),
}

impl SecurityError {
    /// An [`SecurityError::Invalid`] for `origin`.
    pub(crate) fn invalid(origin: impl Into<String>, message: impl Into<String>) -> Self {
        SecurityError::Invalid {
            origin: origin.into(),
            message: message.into(),
        }
    }

    /// A [`SecurityError::Config`] for `section`.
    pub(crate) fn config(section: impl Into<String>, message: impl Into<String>) -> Self {
        SecurityError::Config {
            section: section.into(),
            message: message.into(),
        }
    }
}

/// Reads a whole file, reporting failures as [`SecurityError::Read`].
pub(crate) fn read_file(what: &'static str, path: &str) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(Path::new(path)).map_err(|source| SecurityError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Reads a whole UTF-8 text file, reporting failures as [`SecurityError`].
pub(crate) fn read_text_file(what: &'static str, path: &str) -> Result<String, SecurityError> {
    let bytes = read_file(what, path)?;
    String::from_utf8(bytes)
        .map_err(|_| SecurityError::invalid(origin(what, path), "the file is not valid UTF-8"))
}

/// How messages name a file: `users file "/etc/stompede/users.toml"`.
pub(crate) fn origin(what: &str, path: &str) -> String {
    format!("{what} {path:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_name_the_file() {
        let err = read_file("users file", "/nonexistent/stompede-users.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("users file"), "{text}");
        assert!(text.contains("/nonexistent/stompede-users.toml"), "{text}");
    }

    #[test]
    fn invalid_and_config_messages() {
        let e = SecurityError::invalid(origin("users file", "u.toml"), "duplicate user \"a\"");
        assert_eq!(e.to_string(), "users file \"u.toml\": duplicate user \"a\"");
        let e = SecurityError::config("[acl] rule 1", "bad who");
        assert_eq!(e.to_string(), "[acl] rule 1: bad who");
    }
}
