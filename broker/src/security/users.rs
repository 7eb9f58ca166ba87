//! The users file: user names, argon2id password hashes and roles.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # `stompede passwd`
//! roles = ["admin"]
//! ```
//!
//! Every hash is checked when the file is loaded (a PHC string of argon2id,
//! version 19, with a salt and an output), so a typo is reported at startup
//! or on SIGHUP, not at the user's next login.

use super::{origin, read_text_file, SecurityError};
use crate::auth::Principal;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params, PasswordHash, ARGON2ID_IDENT};
use bytestring::ByteString;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

/// The argon2 version every stored hash must use (0x13, written `v=19`).
const ARGON2_VERSION: u32 = 0x13;

/// A valid argon2id hash (of a random password nobody knows) with the
/// default parameters, verified when a login names an unknown user so that
/// the answer takes as long as for a known one.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$7tN28h3Bkm6ABOHM1kiVRQ$gV6cw0a6uTNKajh8GXhMnJ6pDtSeOyyB2Cke4dqyjq8";

static DUMMY: LazyLock<Option<PasswordHash>> = LazyLock::new(|| PasswordHash::new(DUMMY_HASH).ok());

/// The file's layout.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default, rename = "user")]
    users: Vec<UserEntry>,
}

/// One `[[user]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// One loaded user.
#[derive(Clone)]
struct User {
    hash: PasswordHash,
    roles: Vec<String>,
}

/// The users of a users file, with their verified-at-load password hashes.
///
/// Cheap to share behind an `Arc`; [`UserDb::verify`] is blocking CPU work
/// (tens of milliseconds) and belongs in `spawn_blocking`.
#[derive(Clone, Default)]
pub struct UserDb {
    users: HashMap<String, User>,
}

impl fmt::Debug for UserDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print hashes.
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("UserDb").field("users", &names).finish()
    }
}

impl UserDb {
    /// Reads and checks the users file at `path`.
    pub fn load(path: &str) -> Result<UserDb, SecurityError> {
        let text = read_text_file("users file", path)?;
        UserDb::parse(&text, &origin("users file", path))
    }

    /// Parses and checks users-file text. `origin` names the source in
    /// error messages (e.g. `users file "/etc/stompede/users.toml"`).
    ///
    /// Refuses duplicate or empty names, and passwords that are not
    /// argon2id (version 19) PHC strings with a salt and a hash.
    pub fn parse(text: &str, origin: &str) -> Result<UserDb, SecurityError> {
        let file: UsersFile = toml::from_str(text).map_err(|e| {
            // The message and position only: toml's own rendering quotes the
            // offending line, which may hold a password hash.
            let at = match e.span() {
                Some(span) => format!("line {}: ", line_of(text, span.start)),
                None => String::new(),
            };
            SecurityError::invalid(origin, format!("{at}{}", e.message().trim_end()))
        })?;
        let mut users = HashMap::with_capacity(file.users.len());
        for (index, entry) in file.users.into_iter().enumerate() {
            let which = if entry.name.is_empty() {
                format!("user #{}", index + 1)
            } else {
                format!("user {:?}", entry.name)
            };
            if entry.name.is_empty() {
                return Err(SecurityError::invalid(
                    origin,
                    format!("{which} has an empty name"),
                ));
            }
            if entry.name.chars().any(char::is_control) {
                return Err(SecurityError::invalid(
                    origin,
                    format!("{which}: the name contains a control character"),
                ));
            }
            let hash = check_hash(&entry.password)
                .map_err(|why| SecurityError::invalid(origin, format!("{which}: {why}")))?;
            if let Some(role) = entry.roles.iter().find(|r| r.trim().is_empty()) {
                return Err(SecurityError::invalid(
                    origin,
                    format!("{which}: empty role {role:?}"),
                ));
            }
            if users.contains_key(&entry.name) {
                return Err(SecurityError::invalid(
                    origin,
                    format!("{which} is listed more than once"),
                ));
            }
            users.insert(
                entry.name,
                User {
                    hash,
                    roles: entry.roles,
                },
            );
        }
        Ok(UserDb { users })
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file lists no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `name` is listed.
    pub fn contains(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// The roles of `name`, if the user is listed.
    pub fn roles(&self, name: &str) -> Option<&[String]> {
        self.users.get(name).map(|u| u.roles.as_slice())
    }

    /// Checks `password` for `name`: the user's principal (with roles, no
    /// expiry) when it matches, `None` otherwise.
    ///
    /// Blocking CPU work: run it in `spawn_blocking`. An unknown user costs
    /// the same one argon2 verification as a known one, so the time taken
    /// does not reveal which users exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<Principal> {
        match self.users.get(name) {
            Some(user) => argon2_matches(&user.hash, password).then(|| Principal {
                user: Some(ByteString::from(name)),
                roles: user.roles.clone(),
                expires_at: None,
            }),
            None => {
                if let Some(dummy) = DUMMY.as_ref() {
                    let _ = argon2_matches(dummy, password);
                }
                None
            }
        }
    }
}

/// Hashes `password` for the users file: argon2id, version 19, the argon2
/// crate's default (OWASP) parameters `m=19456,t=2,p=1`, and a random
/// 16-byte salt from the operating system. Returns the PHC string.
pub fn hash_password(password: &str) -> Result<String, SecurityError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| SecurityError::Hash(e.to_string()))
}

/// Whether `password` matches `hash` (the hash's own parameters are used).
fn argon2_matches(hash: &PasswordHash, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Parses and checks one stored hash; the error says why it is refused
/// (without quoting it).
fn check_hash(phc: &str) -> Result<PasswordHash, String> {
    if phc.is_empty() {
        return Err("the password hash is empty (use `stompede passwd`)".into());
    }
    let hash = PasswordHash::new(phc).map_err(|e| {
        format!("the password is not a PHC hash string ({e}); use `stompede passwd`")
    })?;
    if hash.algorithm != ARGON2ID_IDENT {
        return Err(format!(
            "the password hash uses {:?}; only argon2id is accepted (use `stompede passwd`)",
            hash.algorithm.as_str()
        ));
    }
    match hash.version {
        Some(ARGON2_VERSION) => {}
        _ => return Err("the argon2id hash must be version 19 (v=19)".into()),
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("the argon2id hash has no salt or no output".into());
    }
    Params::try_from(&hash).map_err(|e| format!("bad argon2id parameters ({e})"))?;
    Ok(hash)
}

/// The 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One hash per test binary: argon2 at the default cost is slow in
    /// debug builds.
    fn secret_hash() -> &'static str {
        static HASH: OnceLock<String> = OnceLock::new();
        HASH.get_or_init(|| hash_password("s3cret").unwrap())
    }

    fn db() -> UserDb {
        let text = format!(
            "[[user]]\nname = \"alice\"\npassword = \"{}\"\nroles = [\"admin\", \"ops\"]\n\n\
             [[user]]\nname = \"bob\"\npassword = \"{}\"\n",
            secret_hash(),
            DUMMY_HASH
        );
        UserDb::parse(&text, "users file \"test\"").unwrap()
    }

    #[test]
    fn hash_password_uses_argon2id_defaults() {
        let hash = secret_hash();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let other = hash_password("s3cret").unwrap();
        assert_ne!(hash, other, "salts must be random");
    }

    #[test]
    fn dummy_hash_is_valid_and_uses_the_defaults() {
        let dummy = check_hash(DUMMY_HASH).unwrap();
        let params = Params::try_from(&dummy).unwrap();
        assert_eq!(params.m_cost(), Params::DEFAULT_M_COST);
        assert_eq!(params.t_cost(), Params::DEFAULT_T_COST);
        assert_eq!(params.p_cost(), Params::DEFAULT_P_COST);
        assert!(DUMMY.is_some());
    }

    #[test]
    fn verify_accepts_the_right_password_only() {
        let db = db();
        let p = db.verify("alice", "s3cret").unwrap();
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert_eq!(p.roles, vec!["admin".to_string(), "ops".to_string()]);
        assert_eq!(p.expires_at, None);
        assert!(db.verify("alice", "wrong").is_none());
        assert!(db.verify("alice", "").is_none());
        assert!(db.verify("nobody", "s3cret").is_none());
    }

    #[test]
    fn roles_and_lookup() {
        let db = db();
        assert_eq!(db.len(), 2);
        assert!(!db.is_empty());
        assert!(db.contains("bob"));
        assert_eq!(db.roles("bob"), Some(&[][..]));
        assert_eq!(db.roles("alice").map(<[String]>::len), Some(2));
        assert_eq!(db.roles("carol"), None);
        assert!(
            !format!("{db:?}").contains("argon2"),
            "Debug must hide hashes"
        );
    }

    #[test]
    fn empty_file_is_an_empty_db() {
        let db = UserDb::parse("", "users file \"x\"").unwrap();
        assert!(db.is_empty());
    }

    #[test]
    fn duplicates_are_refused() {
        let text = format!(
            "[[user]]\nname = \"a\"\npassword = \"{DUMMY_HASH}\"\n[[user]]\nname = \"a\"\npassword = \"{DUMMY_HASH}\"\n"
        );
        let err = UserDb::parse(&text, "users file \"u.toml\"")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("users file \"u.toml\": "), "{err}");
        assert!(err.contains("user \"a\" is listed more than once"), "{err}");
    }

    #[test]
    fn non_argon2id_hashes_are_refused() {
        for (hash, why) in [
            ("plaintext", "not a PHC hash"),
            ("", "empty"),
            (
                "$argon2i$v=19$m=19456,t=2,p=1$7tN28h3Bkm6ABOHM1kiVRQ$gV6cw0a6uTNKajh8GXhMnJ6pDtSeOyyB2Cke4dqyjq8",
                "only argon2id",
            ),
            (
                "$argon2id$v=16$m=19456,t=2,p=1$7tN28h3Bkm6ABOHM1kiVRQ$gV6cw0a6uTNKajh8GXhMnJ6pDtSeOyyB2Cke4dqyjq8",
                "version 19",
            ),
            ("$argon2id$v=19$m=19456,t=2,p=1", "no salt"),
            (
                "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$ZmFrZWhhc2hmYWtlaGFzaA",
                "only argon2id",
            ),
        ] {
            let text = format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\n");
            let err = UserDb::parse(&text, "users file \"u\"").unwrap_err().to_string();
            assert!(err.contains("user \"a\""), "{hash}: {err}");
            assert!(err.contains(why), "{hash}: {err}");
        }
    }

    #[test]
    fn bad_toml_reports_a_line_without_quoting_it() {
        let text = format!("[[user]]\nname = \"a\"\npassword = \"{DUMMY_HASH}\" junk\n");
        let err = UserDb::parse(&text, "users file \"u\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("argon2id"), "{err}");
        let err = UserDb::parse("[[user]]\nname = \"a\"\n", "users file \"u\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
        let err = UserDb::parse("[[user]]\nname = \"a\"\nrole = []\n", "users file \"u\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("role"), "{err}");
    }

    #[test]
    fn empty_names_and_roles_are_refused() {
        let text = format!("[[user]]\nname = \"\"\npassword = \"{DUMMY_HASH}\"\n");
        let err = UserDb::parse(&text, "f").unwrap_err().to_string();
        assert!(err.contains("user #1 has an empty name"), "{err}");
        let text = format!("[[user]]\nname = \"a\"\npassword = \"{DUMMY_HASH}\"\nroles = [\"\"]\n");
        let err = UserDb::parse(&text, "f").unwrap_err().to_string();
        assert!(err.contains("empty role"), "{err}");
    }

    #[test]
    fn load_reads_the_file_and_names_it_in_errors() {
        let dir = std::env::temp_dir().join(format!("stompede-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        std::fs::write(
            &path,
            format!("[[user]]\nname = \"z\"\npassword = \"{DUMMY_HASH}\"\n"),
        )
        .unwrap();
        let path = path.to_str().unwrap();
        assert!(UserDb::load(path).unwrap().contains("z"));
        std::fs::write(path, "[[user]]\nname = 1\n").unwrap();
        let err = UserDb::load(path).unwrap_err().to_string();
        assert!(err.contains(path), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        let err = UserDb::load("/nonexistent/users.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read users file"), "{err}");
    }
}
