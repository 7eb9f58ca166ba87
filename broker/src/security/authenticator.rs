//! The [`Authenticator`] that follows the `[auth]` configuration.
//!
//! - `mode = "dev"`: everyone is accepted; the `login` header is the user
//!   ([`AllowAll::principal`]).
//! - `mode = "secure"`, in this order:
//!   1. a verified TLS client certificate: its name is the user (with the
//!      users file's roles if the user is listed there);
//!   2. a JWT, from an `Authorization: Bearer` header or, when JWT is
//!      configured, a `passcode` shaped like a JWT;
//!   3. `login` and `passcode` checked against the users file (argon2id,
//!      on the blocking pool);
//!   4. no credentials at all: anonymous, if `anonymous = true`;
//!   5. anything else: refused with `"invalid credentials"`, the same text
//!      whether the user is unknown or the password wrong.
//!
//! Delays after failures and the [`crate::security::LoginGuard`] are the
//! session's business, not this type's.

use super::{JwtVerifier, SecurityError, UserDb};
use crate::auth::{AllowAll, AuthError, AuthFuture, Authenticator, ConnectRequest, Principal};
use crate::config::{AuthConfig, AuthMode};
use bytestring::ByteString;
use std::sync::Arc;

/// The refusal text for every password failure.
const INVALID_CREDENTIALS: &str = "invalid credentials";

/// Authenticates CONNECTs as `[auth]` says. Build it with
/// [`ConfiguredAuthenticator::from_config`]; on SIGHUP build a new one
/// (a failure leaves the old one in place).
#[derive(Debug)]
pub struct ConfiguredAuthenticator {
    mode: AuthMode,
    anonymous: bool,
    users: Option<Arc<UserDb>>,
    jwt: Option<JwtVerifier>,
}

impl ConfiguredAuthenticator {
    /// Loads the users file (if set) and the JWT keys (if any), and checks
    /// that secure mode has some way to log in.
    pub fn from_config(config: &AuthConfig) -> Result<Self, SecurityError> {
        ConfiguredAuthenticator::from_config_with_client_certs(config, false)
    }

    /// Like [`ConfiguredAuthenticator::from_config`]; `client_certs` says
    /// that TLS client certificates are configured (`[tls] client_ca`), which
    /// is then enough of a login method for secure mode on its own.
    pub fn from_config_with_client_certs(
        config: &AuthConfig,
        client_certs: bool,
    ) -> Result<Self, SecurityError> {
        let users = if config.users_file.is_empty() {
            None
        } else {
            Some(Arc::new(UserDb::load(&config.users_file)?))
        };
        let jwt = JwtVerifier::from_config(&config.jwt)?;
        if config.mode == AuthMode::Secure
            && users.is_none()
            && jwt.is_none()
            && !config.anonymous
            && !client_certs
        {
            return Err(SecurityError::config(
                "[auth]",
                "secure mode needs users_file, [auth.jwt] keys, or anonymous = true",
            ));
        }
        Ok(ConfiguredAuthenticator {
            mode: config.mode,
            anonymous: config.anonymous,
            users,
            jwt,
        })
    }

    /// The users file, if one is configured (the admin listener checks its
    /// HTTP basic credentials against it).
    pub fn users(&self) -> Option<&Arc<UserDb>> {
        self.users.as_ref()
    }

    /// The JWT verifier, if JWT login is configured.
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// The configured mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The secure-mode decision.
    async fn secure(&self, request: &ConnectRequest<'_>) -> Result<Principal, AuthError> {
        let invalid = || AuthError(INVALID_CREDENTIALS.into());

        // 1. A verified client certificate.
        if let Some(name) = request.tls_identity.filter(|n| !n.is_empty()) {
            let roles = self
                .users
                .as_ref()
                .and_then(|u| u.roles(name))
                .map(<[String]>::to_vec)
                .unwrap_or_default();
            return Ok(Principal {
                user: Some(ByteString::from(name)),
                roles,
                expires_at: None,
            });
        }

        let login = request.login.filter(|l| !l.is_empty());
        let passcode = request.passcode;

        // 2. A JWT.
        if let Some(token) = request.bearer_token() {
            return match &self.jwt {
                Some(jwt) => jwt.verify(token),
                None => Err(invalid()),
            };
        }
        if let (Some(jwt), Some(token)) = (&self.jwt, passcode) {
            if super::looks_like_jwt(token) {
                match jwt.verify(token) {
                    Ok(principal) => return Ok(principal),
                    // A password may happen to look like a JWT: with a
                    // login and a users file, try it as a password.
                    Err(e) if login.is_none() || self.users.is_none() => return Err(e),
                    Err(_) => {}
                }
            }
        }

        // 3. A users-file password.
        if let (Some(login), Some(passcode)) = (login, passcode) {
            let Some(users) = &self.users else {
                return Err(invalid());
            };
            let users = Arc::clone(users);
            let (login, passcode) = (login.to_owned(), passcode.to_owned());
            return match tokio::task::spawn_blocking(move || users.verify(&login, &passcode)).await
            {
                Ok(Some(principal)) => Ok(principal),
                Ok(None) => Err(invalid()),
                Err(e) => {
                    tracing::error!(error = %e, "password check did not complete");
                    Err(invalid())
                }
            };
        }

        // 4. Nothing presented at all.
        if login.is_none() && passcode.is_none() && self.anonymous {
            return Ok(Principal::default());
        }

        // 5. Anything else.
        Err(invalid())
    }
}

impl Authenticator for ConfiguredAuthenticator {
    fn authenticate<'a>(&'a self, request: &'a ConnectRequest<'a>) -> AuthFuture<'a> {
        match self.mode {
            AuthMode::Dev => {
                let principal = AllowAll::principal(request);
                Box::pin(async move { Ok(principal) })
            }
            AuthMode::Secure => Box::pin(self.secure(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtConfig;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use stompede_codec::Headers;

    const SECRET: &[u8] = b"authenticator-test-secret-0123456789abcdef";

    /// A directory with a users file (alice/s3cret with role admin, and
    /// "dot.ted" whose password looks like a JWT) and a JWT secret, shared
    /// by the tests (argon2 is slow in debug builds).
    fn fixtures() -> &'static (String, String) {
        static FIXTURES: OnceLock<(String, String)> = OnceLock::new();
        FIXTURES.get_or_init(|| {
            let dir: PathBuf =
                std::env::temp_dir().join(format!("stompede-auth-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let users = dir.join("users.toml");
            std::fs::write(
                &users,
                format!(
                    "[[user]]\nname = \"alice\"\npassword = \"{}\"\nroles = [\"admin\"]\n\n\
                     [[user]]\nname = \"ted\"\npassword = \"{}\"\n",
                    super::super::hash_password("s3cret").unwrap(),
                    super::super::hash_password("abc.def.ghi").unwrap(),
                ),
            )
            .unwrap();
            let secret = dir.join("jwt.secret");
            std::fs::write(&secret, SECRET).unwrap();
            (
                users.to_str().unwrap().to_owned(),
                secret.to_str().unwrap().to_owned(),
            )
        })
    }

    fn config(users: bool, jwt: bool, anonymous: bool) -> AuthConfig {
        let (users_file, secret_file) = fixtures();
        AuthConfig {
            mode: AuthMode::Secure,
            anonymous,
            users_file: if users {
                users_file.clone()
            } else {
                String::new()
            },
            jwt: JwtConfig {
                hs256_secret_file: if jwt {
                    secret_file.clone()
                } else {
                    String::new()
                },
                ..JwtConfig::default()
            },
            ..AuthConfig::default()
        }
    }

    fn auth(users: bool, jwt: bool, anonymous: bool) -> ConfiguredAuthenticator {
        ConfiguredAuthenticator::from_config(&config(users, jwt, anonymous)).unwrap()
    }

    fn token(sub: &str, exp_offset: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": sub, "exp": now + exp_offset, "roles": "r1 r2"}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    struct Req {
        login: Option<String>,
        passcode: Option<String>,
        headers: Headers,
        tls: Option<String>,
    }

    impl Req {
        fn new() -> Req {
            Req {
                login: None,
                passcode: None,
                headers: Headers::default(),
                tls: None,
            }
        }
        fn login(mut self, l: &str, p: &str) -> Req {
            self.login = Some(l.into());
            self.passcode = Some(p.into());
            self
        }
        fn passcode(mut self, p: &str) -> Req {
            self.passcode = Some(p.into());
            self
        }
        fn only_login(mut self, l: &str) -> Req {
            self.login = Some(l.into());
            self
        }
        fn bearer(mut self, t: &str) -> Req {
            self.headers.push("Authorization", format!("Bearer {t}"));
            self
        }
        fn tls(mut self, name: &str) -> Req {
            self.tls = Some(name.into());
            self
        }
        async fn run(&self, a: &ConfiguredAuthenticator) -> Result<Principal, AuthError> {
            let request = ConnectRequest {
                login: self.login.as_deref(),
                passcode: self.passcode.as_deref(),
                headers: &self.headers,
                peer: None,
                tls_identity: self.tls.as_deref(),
            };
            a.authenticate(&request).await
        }
    }

    fn user(p: &Principal) -> Option<&str> {
        p.user.as_deref()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dev_mode_takes_the_login() {
        let a = ConfiguredAuthenticator::from_config(&AuthConfig::default()).unwrap();
        let p = Req::new().login("anyone", "x").run(&a).await.unwrap();
        assert_eq!(user(&p), Some("anyone"));
        let p = Req::new().run(&a).await.unwrap();
        assert_eq!(p, Principal::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passwords_from_the_users_file() {
        let a = auth(true, false, false);
        let p = Req::new().login("alice", "s3cret").run(&a).await.unwrap();
        assert_eq!(user(&p), Some("alice"));
        assert_eq!(p.roles, ["admin"]);
        let wrong = Req::new().login("alice", "nope").run(&a).await.unwrap_err();
        let unknown = Req::new()
            .login("mallory", "s3cret")
            .run(&a)
            .await
            .unwrap_err();
        assert_eq!(wrong.0, "invalid credentials");
        assert_eq!(wrong, unknown);
        let e = Req::new().only_login("alice").run(&a).await.unwrap_err();
        assert_eq!(e.0, "invalid credentials");
        let e = Req::new().passcode("s3cret").run(&a).await.unwrap_err();
        assert_eq!(e.0, "invalid credentials");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn anonymous_only_without_any_credentials() {
        let a = auth(true, false, true);
        assert_eq!(Req::new().run(&a).await.unwrap(), Principal::default());
        // Wrong credentials are not downgraded to anonymous.
        assert!(Req::new().login("alice", "bad").run(&a).await.is_err());
        assert!(Req::new().only_login("alice").run(&a).await.is_err());
        let closed = auth(true, false, false);
        assert_eq!(
            Req::new().run(&closed).await.unwrap_err().0,
            "invalid credentials"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_identity_wins_and_gets_listed_roles() {
        let a = auth(true, false, false);
        let p = Req::new()
            .tls("alice")
            .login("x", "y")
            .run(&a)
            .await
            .unwrap();
        assert_eq!(user(&p), Some("alice"));
        assert_eq!(p.roles, ["admin"]);
        let p = Req::new().tls("device-7").run(&a).await.unwrap();
        assert_eq!(user(&p), Some("device-7"));
        assert!(p.roles.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_in_bearer_header_or_passcode() {
        let a = auth(false, true, false);
        let t = token("jwt-user", 600);
        let p = Req::new().bearer(&t).run(&a).await.unwrap();
        assert_eq!(user(&p), Some("jwt-user"));
        assert_eq!(p.roles, ["r1", "r2"]);
        assert!(p.expires_at.is_some());
        let p = Req::new().passcode(&t).run(&a).await.unwrap();
        assert_eq!(user(&p), Some("jwt-user"));
        // The login header does not override the token's subject.
        let p = Req::new().login("someone-else", &t).run(&a).await.unwrap();
        assert_eq!(user(&p), Some("jwt-user"));
        let e = Req::new()
            .bearer(&token("u", -600))
            .run(&a)
            .await
            .unwrap_err();
        assert_eq!(e.0, "token expired");
        let e = Req::new()
            .passcode("abc.def.ghi")
            .run(&a)
            .await
            .unwrap_err();
        assert_eq!(e.0, "invalid token");
        // A bearer token without JWT configured.
        let no_jwt = auth(true, false, true);
        let e = Req::new().bearer(&t).run(&no_jwt).await.unwrap_err();
        assert_eq!(e.0, "invalid credentials");
        // And a JWT-shaped passcode is then just a password.
        let e = Req::new().passcode(&t).run(&no_jwt).await.unwrap_err();
        assert_eq!(e.0, "invalid credentials");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_shaped_password_still_works_with_a_login() {
        let a = auth(true, true, false);
        let p = Req::new()
            .login("ted", "abc.def.ghi")
            .run(&a)
            .await
            .unwrap();
        assert_eq!(user(&p), Some("ted"));
        let e = Req::new()
            .login("ted", "abc.def.xyz")
            .run(&a)
            .await
            .unwrap_err();
        assert_eq!(e.0, "invalid credentials");
        let p = Req::new().login("alice", "s3cret").run(&a).await.unwrap();
        assert_eq!(user(&p), Some("alice"));
    }

    #[test]
    fn secure_mode_needs_a_login_method() {
        let e = ConfiguredAuthenticator::from_config(&config(false, false, false))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "[auth]: secure mode needs users_file, [auth.jwt] keys, or anonymous = true"
        );
        assert!(ConfiguredAuthenticator::from_config(&config(false, false, true)).is_ok());
        assert!(ConfiguredAuthenticator::from_config_with_client_certs(
            &config(false, false, false),
            true
        )
        .is_ok());
        // Dev mode needs nothing.
        assert!(ConfiguredAuthenticator::from_config(&AuthConfig::default()).is_ok());
    }

    #[test]
    fn a_bad_users_file_is_reported() {
        let mut c = config(false, false, true);
        c.users_file = "/nonexistent/users.toml".into();
        let e = ConfiguredAuthenticator::from_config(&c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/users.toml"), "{e}");
    }
}
