//! JSON Web Token verification for CONNECT (`[auth.jwt]`).
//!
//! Keys come from an HS256 secret file, PEM public key files (RSA → RS256,
//! EC P-256 → ES256, EC P-384 → ES384, Ed25519 → EdDSA) and a JWKS file.
//! Each key verifies exactly one algorithm, fixed when it is loaded, and a
//! token is only ever checked with keys of the algorithm its header names:
//! so `alg: none` and algorithm confusion (an HS256 token "signed" with an
//! RSA public key used as the HMAC secret) cannot pass. Keys embedded in
//! or referenced by the token (`jwk`, `jku`, `x5u`, `x5c`) are never used.
//!
//! A token must carry `exp` and a non-empty `sub` (the user name); `nbf` is
//! checked when present, `iss` and `aud` when configured, all with the
//! configured leeway. Roles come from the configured claim.

use super::{origin, read_file, read_text_file, SecurityError};
use crate::auth::{AuthError, Principal};
use crate::config::JwtConfig;
use bytestring::ByteString;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// The shortest accepted HMAC secret, in bytes (RFC 7518 §3.2: a key of
/// the same size as the hash output, 256 bits for HS256).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// The message for a token that fails for any reason but expiry.
const INVALID_TOKEN: &str = "invalid token";
/// The message for a token whose `exp` has passed.
const TOKEN_EXPIRED: &str = "token expired";

/// Whether `s` has the shape of a compact JWS: three non-empty base64url
/// segments separated by dots. Says nothing about validity.
pub fn looks_like_jwt(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        if parts > 3
            || part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// One verification key and the single algorithm it verifies.
#[derive(Debug)]
struct VerifierKey {
    /// The JWKS `kid`, if any (PEM keys and the secret have none).
    kid: Option<String>,
    /// The one algorithm this key verifies.
    alg: Algorithm,
    /// The key.
    key: DecodingKey,
    /// Claim checks for this key's algorithm.
    validation: Validation,
    /// Where the key came from, for diagnostics.
    source: String,
}

/// Verifies JWTs against the configured keys and turns them into
/// [`Principal`]s.
#[derive(Debug)]
pub struct JwtVerifier {
    keys: Vec<VerifierKey>,
    roles_claim: Vec<String>,
}

impl JwtVerifier {
    /// Loads the keys named by `config`. `Ok(None)` when no key is
    /// configured (JWT login disabled).
    pub fn from_config(config: &JwtConfig) -> Result<Option<JwtVerifier>, SecurityError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        let mut loaded: Vec<(Option<String>, Algorithm, DecodingKey, String)> = Vec::new();
        if !config.hs256_secret_file.is_empty() {
            let path = &config.hs256_secret_file;
            let secret = load_secret(path)?;
            loaded.push((
                None,
                Algorithm::HS256,
                DecodingKey::from_secret(&secret),
                origin("JWT secret file", path),
            ));
        }
        for path in &config.public_key_files {
            let (alg, key) = load_pem_key(path)?;
            loaded.push((None, alg, key, origin("JWT public key file", path)));
        }
        if !config.jwks_file.is_empty() {
            let path = &config.jwks_file;
            for (kid, alg, key) in load_jwks(path)? {
                loaded.push((kid, alg, key, origin("JWKS file", path)));
            }
        }
        let roles_claim = config
            .roles_claim
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let keys = loaded
            .into_iter()
            .map(|(kid, alg, key, source)| VerifierKey {
                kid,
                alg,
                key,
                validation: validation(alg, config),
                source,
            })
            .collect();
        Ok(Some(JwtVerifier { keys, roles_claim }))
    }

    /// The number of loaded keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Checks `token` and returns its principal: `sub` as the user, roles
    /// from the configured claim, `exp` as `expires_at`.
    ///
    /// The error is `"token expired"` for a correctly signed token past its
    /// `exp` (plus leeway), and `"invalid token"` for anything else; it never
    /// contains the token.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let invalid = || AuthError(INVALID_TOKEN.into());
        let header = decode_header(token).map_err(|_| invalid())?;
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        if header.crit.is_some() {
            return Err(invalid());
        }
        let kid = header.kid.as_deref();
        let alg_matches = |k: &&VerifierKey| k.alg == header.alg;
        let by_kid = |k: &&VerifierKey| kid.is_some() && k.kid.as_deref() == kid;
        // A kid naming one of our keys selects exactly those keys; otherwise
        // every key of the token's algorithm is tried.
        let kid_known = self.keys.iter().filter(alg_matches).any(|k| by_kid(&k));
        let mut expired = false;
        for key in self
            .keys
            .iter()
            .filter(alg_matches)
            .filter(|k| !kid_known || by_kid(k))
        {
            match decode::<Value>(token, &key.key, &key.validation) {
                Ok(data) => return self.principal(&data.claims).ok_or_else(invalid),
                Err(e) => match e.kind() {
                    ErrorKind::ExpiredSignature => expired = true,
                    ErrorKind::InvalidSignature => {}
                    kind => {
                        // Never log the error's text: it may quote claims.
                        tracing::debug!(key = %key.source, reason = refusal_reason(kind), "JWT refused");
                    }
                },
            }
        }
        if expired {
            Err(AuthError(TOKEN_EXPIRED.into()))
        } else {
            Err(invalid())
        }
    }

    /// Builds the principal from verified claims; `None` when `sub` or `exp`
    /// is unusable.
    fn principal(&self, claims: &Value) -> Option<Principal> {
        let sub = claims.get("sub")?.as_str()?;
        if sub.is_empty() || sub.chars().any(char::is_control) {
            return None;
        }
        let exp = claims.get("exp")?;
        let exp_secs = match exp.as_u64() {
            Some(s) => s,
            // jsonwebtoken accepts fractional `exp`; round down.
            None => exp.as_f64().filter(|f| f.is_finite() && *f >= 0.0)?.floor() as u64,
        };
        let expires_at = UNIX_EPOCH.checked_add(Duration::from_secs(exp_secs))?;
        Some(Principal {
            user: Some(ByteString::from(sub)),
            roles: self.roles(claims),
            expires_at: Some(expires_at),
        })
    }

    /// The roles in the configured claim: an array of strings (other
    /// elements ignored) or one space-separated string. Missing = none.
    fn roles(&self, claims: &Value) -> Vec<String> {
        if self.roles_claim.is_empty() {
            return Vec::new();
        }
        let mut value = claims;
        for name in &self.roles_claim {
            match value.get(name) {
                Some(v) => value = v,
                None => return Vec::new(),
            }
        }
        match value {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }
}

/// A short, content-free name for why a token was refused (for logs).
fn refusal_reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MissingRequiredClaim(_) => "missing required claim",
        ErrorKind::InvalidClaimFormat(_) => "malformed claim",
        ErrorKind::ImmatureSignature => "not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidAlgorithm => "algorithm not accepted",
        ErrorKind::InvalidToken => "malformed token",
        _ => "unusable token",
    }
}

/// The claim checks for tokens of `alg`.
fn validation(alg: Algorithm, config: &JwtConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway_s;
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    if config.issuer.is_empty() {
        v.iss = None;
    } else {
        v.set_issuer(&[config.issuer.as_str()]);
        required.push("iss");
    }
    if config.audience.is_empty() {
        // Not configured: not checked (the token may name any audience).
        v.validate_aud = false;
    } else {
        v.set_audience(&[config.audience.as_str()]);
        v.validate_aud = true;
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

/// Reads the HS256 secret: raw bytes, one trailing newline removed.
fn load_secret(path: &str) -> Result<Vec<u8>, SecurityError> {
    let mut secret = read_file("JWT secret file", path)?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    if secret.len() < MIN_HMAC_SECRET_LEN {
        return Err(SecurityError::invalid(
            origin("JWT secret file", path),
            format!(
                "the HS256 secret is {} bytes; at least {MIN_HMAC_SECRET_LEN} are required \
                 (e.g. `openssl rand -base64 48`)",
                secret.len()
            ),
        ));
    }
    Ok(secret)
}

/// Reads one PEM public key and decides its algorithm from its type.
fn load_pem_key(path: &str) -> Result<(Algorithm, DecodingKey), SecurityError> {
    let what = "JWT public key file";
    let text = read_text_file(what, path)?;
    pem_key(&text).map_err(|message| SecurityError::invalid(origin(what, path), message))
}

/// Decodes one PEM public key; the error says what is wrong.
fn pem_key(text: &str) -> Result<(Algorithm, DecodingKey), String> {
    let blocks = text.matches("-----BEGIN ").count();
    if blocks != 1 {
        return Err(format!(
            "expected exactly one PEM block (\"-----BEGIN PUBLIC KEY-----\"), found {blocks}"
        ));
    }
    let label = text
        .split_once("-----BEGIN ")
        .and_then(|(_, rest)| rest.split_once("-----"))
        .map(|(label, _)| label.trim())
        .unwrap_or_default();
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        l if l.contains("PRIVATE KEY") => {
            return Err(
                "this is a private key; give the public key (`openssl pkey -in KEY -pubout`)"
                    .into(),
            )
        }
        l => {
            return Err(format!(
                "unsupported PEM type {l:?}; expected \"PUBLIC KEY\""
            ))
        }
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(text.as_bytes()) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(text.as_bytes()) {
        // The key is the uncompressed point 04 || X || Y.
        return match key.as_bytes().len() {
            65 => Ok((Algorithm::ES256, key)),
            97 => Ok((Algorithm::ES384, key)),
            _ => Err("unsupported EC curve; P-256 (ES256) and P-384 (ES384) are supported".into()),
        };
    }
    if let Ok(key) = DecodingKey::from_ed_pem(text.as_bytes()) {
        return Ok((Algorithm::EdDSA, key));
    }
    Err("not an RSA, EC (P-256/P-384) or Ed25519 public key".into())
}

/// Reads a JWKS file: the usable signature keys, each with its kid and
/// the one algorithm it verifies.
fn load_jwks(path: &str) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, SecurityError> {
    let what = "JWKS file";
    let text = read_text_file(what, path)?;
    parse_jwks(&text).map_err(|message| SecurityError::invalid(origin(what, path), message))
}

/// Parses JWKS text; see [`load_jwks`].
fn parse_jwks(text: &str) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("expected a JSON object with a \"keys\" array")?;
    let mut out = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let which = match &kid {
            Some(kid) => format!("key {kid:?}"),
            None => format!("key #{}", index + 1),
        };
        match jwks_key(jwk) {
            Ok(Some((alg, key))) => out.push((kid, alg, key)),
            Ok(None) => {
                tracing::debug!(key = %which, "JWKS key skipped (not a supported signature key)");
            }
            Err(why) => return Err(format!("{which}: {why}")),
        }
    }
    if out.is_empty() {
        return Err("no usable signature key (RSA, EC P-256/P-384, Ed25519 or oct)".into());
    }
    Ok(out)
}

/// One JWKS entry: `Ok(None)` for keys that are not for signatures or of
/// a type we do not support (RFC 7517 says to ignore those).
fn jwks_key(jwk: &Value) -> Result<Option<(Algorithm, DecodingKey)>, String> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let kty = field("kty").ok_or("no \"kty\"")?;
    let allowed: &[Algorithm] = match (kty, field("crv")) {
        ("RSA", _) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        ("EC", Some("P-256")) => &[Algorithm::ES256],
        ("EC", Some("P-384")) => &[Algorithm::ES384],
        ("OKP", Some("Ed25519")) => &[Algorithm::EdDSA],
        ("oct", _) => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
        _ => return Ok(None),
    };
    let alg = match field("alg") {
        None => allowed[0],
        Some(name) => match name.parse::<Algorithm>() {
            Ok(alg) if allowed.contains(&alg) => alg,
            Ok(_) => return Err(format!("\"alg\" {name:?} does not fit a {kty} key")),
            // An encryption algorithm (RSA-OAEP, ...): not for us.
            Err(_) => return Ok(None),
        },
    };
    let parsed: Jwk =
        serde_json::from_value(jwk.clone()).map_err(|e| format!("malformed key ({e})"))?;
    let key = DecodingKey::from_jwk(&parsed).map_err(|e| format!("malformed key ({e})"))?;
    if kty == "oct" && key.as_bytes().len() < MIN_HMAC_SECRET_LEN {
        return Err(format!(
            "the oct key is shorter than {MIN_HMAC_SECRET_LEN} bytes"
        ));
    }
    Ok(Some((alg, key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;
    use std::path::PathBuf;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Unpadded base64url, for hand-made tokens and JWKS entries.
    fn b64(data: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    fn testdata(name: &str) -> String {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/security/testdata")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(testdata(name)).unwrap()
    }

    /// A temporary directory for files a test writes.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "stompede-jwt-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, content: &[u8]) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            path.to_str().unwrap().to_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn claims(sub: &str) -> Value {
        json!({ "sub": sub, "exp": now_secs() + 600, "roles": ["a", "b"] })
    }

    fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, key).unwrap()
    }

    fn hs_key() -> EncodingKey {
        EncodingKey::from_secret(SECRET)
    }

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(&read("rsa_private.pem")).unwrap()
    }

    fn secret_config(dir: &TempDir) -> JwtConfig {
        let mut secret = SECRET.to_vec();
        secret.push(b'\n');
        JwtConfig {
            hs256_secret_file: dir.write("secret", &secret),
            ..JwtConfig::default()
        }
    }

    fn verifier(config: &JwtConfig) -> JwtVerifier {
        JwtVerifier::from_config(config).unwrap().unwrap()
    }

    fn err(v: &JwtVerifier, token: &str) -> String {
        v.verify(token).unwrap_err().0
    }

    #[test]
    fn looks_like_jwt_shapes() {
        assert!(looks_like_jwt("aGVsbG8.d29ybGQ.c2ln"));
        assert!(looks_like_jwt("a-_b.c.d"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d.e"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a.b."));
        assert!(!looks_like_jwt("a.b=.c"));
        assert!(!looks_like_jwt("a.b+/.c"));
        assert!(!looks_like_jwt("password"));
        assert!(!looks_like_jwt(""));
        let token = sign(Algorithm::HS256, &hs_key(), &claims("u"), None);
        assert!(looks_like_jwt(&token));
    }

    #[test]
    fn no_key_means_disabled() {
        assert!(JwtVerifier::from_config(&JwtConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn hs256_token_gives_user_roles_and_expiry() {
        let dir = TempDir::new("hs");
        let v = verifier(&secret_config(&dir));
        let c = claims("alice");
        let token = sign(Algorithm::HS256, &hs_key(), &c, None);
        let p = v.verify(&token).unwrap();
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert_eq!(p.roles, vec!["a".to_string(), "b".to_string()]);
        let exp = c["exp"].as_u64().unwrap();
        assert_eq!(p.expires_at, Some(UNIX_EPOCH + Duration::from_secs(exp)));
    }

    #[test]
    fn secret_file_trims_exactly_one_newline_and_must_be_long() {
        let dir = TempDir::new("secret");
        let mut two = SECRET.to_vec();
        two.extend_from_slice(b"\n\n");
        let config = JwtConfig {
            hs256_secret_file: dir.write("two", &two),
            ..JwtConfig::default()
        };
        let v = verifier(&config);
        // The secret is SECRET + "\n": a token signed with SECRET fails.
        let token = sign(Algorithm::HS256, &hs_key(), &claims("u"), None);
        assert_eq!(err(&v, &token), "invalid token");
        let mut with_nl = SECRET.to_vec();
        with_nl.push(b'\n');
        let token = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(&with_nl),
            &claims("u"),
            None,
        );
        assert!(v.verify(&token).is_ok());

        let short = JwtConfig {
            hs256_secret_file: dir.write("short", b"secret\n"),
            ..JwtConfig::default()
        };
        let e = JwtVerifier::from_config(&short).unwrap_err().to_string();
        assert!(
            e.contains("JWT secret file") && e.contains("6 bytes"),
            "{e}"
        );
        let missing = JwtConfig {
            hs256_secret_file: "/nonexistent/jwt-secret".into(),
            ..JwtConfig::default()
        };
        let e = JwtVerifier::from_config(&missing).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/jwt-secret"), "{e}");
    }

    #[test]
    fn rs256_es256_es384_eddsa_from_pem() {
        let config = JwtConfig {
            public_key_files: vec![
                testdata("rsa_public.pem"),
                testdata("ec_public.pem"),
                testdata("ec384_public.pem"),
                testdata("ed_public.pem"),
            ],
            ..JwtConfig::default()
        };
        let v = verifier(&config);
        assert_eq!(v.key_count(), 4);
        let algs: Vec<Algorithm> = v.keys.iter().map(|k| k.alg).collect();
        assert_eq!(
            algs,
            [
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA
            ]
        );
        for (alg, key) in [
            (Algorithm::RS256, rsa_key()),
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap(),
            ),
            (
                Algorithm::ES384,
                EncodingKey::from_ec_pem(&read("ec384_private.pem")).unwrap(),
            ),
            (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(&read("ed_private.pem")).unwrap(),
            ),
        ] {
            let token = sign(alg, &key, &claims("carol"), None);
            let p = v.verify(&token).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(p.user.as_deref(), Some("carol"), "{alg:?}");
        }
        // RS384 with the same RSA key: this key only verifies RS256.
        let token = sign(Algorithm::RS384, &rsa_key(), &claims("carol"), None);
        assert_eq!(err(&v, &token), "invalid token");
    }

    #[test]
    fn wrong_key_is_refused() {
        let v = verifier(&JwtConfig {
            public_key_files: vec![testdata("rsa2_public.pem")],
            ..JwtConfig::default()
        });
        let token = sign(Algorithm::RS256, &rsa_key(), &claims("u"), None);
        assert_eq!(err(&v, &token), "invalid token");
        let dir = TempDir::new("wrong");
        let v = verifier(&secret_config(&dir));
        let other = EncodingKey::from_secret(b"another-secret-another-secret-another");
        let token = sign(Algorithm::HS256, &other, &claims("u"), None);
        assert_eq!(err(&v, &token), "invalid token");
    }

    #[test]
    fn algorithm_confusion_is_impossible() {
        // The attacker signs HS256 with the RSA public key's bytes as the
        // HMAC secret; the verifier only has that public key.
        let public_pem = read("rsa_public.pem");
        let v = verifier(&JwtConfig {
            public_key_files: vec![testdata("rsa_public.pem")],
            ..JwtConfig::default()
        });
        let forged = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(&public_pem),
            &claims("admin"),
            None,
        );
        assert_eq!(err(&v, &forged), "invalid token");
        // Also with the DER bytes jsonwebtoken would hold for the key.
        let der = DecodingKey::from_rsa_pem(&public_pem).unwrap();
        let forged = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(der.as_bytes()),
            &claims("admin"),
            None,
        );
        assert_eq!(err(&v, &forged), "invalid token");
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let dir = TempDir::new("none");
        let v = verifier(&secret_config(&dir));
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64(claims("admin").to_string().as_bytes());
        assert_eq!(err(&v, &format!("{header}.{body}.")), "invalid token");
        assert_eq!(err(&v, &format!("{header}.{body}.c2ln")), "invalid token");
        let header = b64(br#"{"alg":"None"}"#);
        assert_eq!(err(&v, &format!("{header}.{body}.c2ln")), "invalid token");
        assert_eq!(err(&v, "not a token"), "invalid token");
        assert_eq!(err(&v, "a.b.c"), "invalid token");
        assert_eq!(err(&v, ""), "invalid token");
    }

    #[test]
    fn crit_header_is_refused() {
        let dir = TempDir::new("crit");
        let v = verifier(&secret_config(&dir));
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["x-unknown".into()]);
        let token = encode(&header, &claims("u"), &hs_key()).unwrap();
        assert_eq!(err(&v, &token), "invalid token");
    }

    #[test]
    fn expiry_and_not_before() {
        let dir = TempDir::new("exp");
        let mut config = secret_config(&dir);
        config.leeway_s = 5;
        let v = verifier(&config);
        let now = now_secs();
        let sign_claims = |c: Value| sign(Algorithm::HS256, &hs_key(), &c, None);
        let expired = sign_claims(json!({"sub": "u", "exp": now - 60}));
        assert_eq!(err(&v, &expired), "token expired");
        // Within the leeway.
        assert!(v
            .verify(&sign_claims(json!({"sub": "u", "exp": now - 2})))
            .is_ok());
        // exp is required, and must be a number.
        assert_eq!(err(&v, &sign_claims(json!({"sub": "u"}))), "invalid token");
        let s = sign_claims(json!({"sub": "u", "exp": "99999999999"}));
        assert_eq!(err(&v, &s), "invalid token");
        // nbf in the future (beyond leeway), also as a string.
        let s = sign_claims(json!({"sub": "u", "exp": now + 600, "nbf": now + 120}));
        assert_eq!(err(&v, &s), "invalid token");
        let s = sign_claims(json!({"sub": "u", "exp": now + 600, "nbf": "99999999999"}));
        assert_eq!(err(&v, &s), "invalid token");
        let s = sign_claims(json!({"sub": "u", "exp": now + 600, "nbf": now + 2}));
        assert!(v.verify(&s).is_ok());
        // An expired token signed with the wrong key is just invalid.
        let other = EncodingKey::from_secret(b"another-secret-another-secret-another");
        let s = sign(
            Algorithm::HS256,
            &other,
            &json!({"sub": "u", "exp": now - 60}),
            None,
        );
        assert_eq!(err(&v, &s), "invalid token");
    }

    #[test]
    fn sub_is_required_and_non_empty() {
        let dir = TempDir::new("sub");
        let v = verifier(&secret_config(&dir));
        let exp = now_secs() + 600;
        for c in [
            json!({"exp": exp}),
            json!({"exp": exp, "sub": ""}),
            json!({"exp": exp, "sub": 42}),
            json!({"exp": exp, "sub": "a\nb"}),
        ] {
            let token = sign(Algorithm::HS256, &hs_key(), &c, None);
            assert_eq!(err(&v, &token), "invalid token", "{c}");
        }
    }

    #[test]
    fn issuer_and_audience() {
        let dir = TempDir::new("iss");
        let mut config = secret_config(&dir);
        config.issuer = "https://idp.example".into();
        config.audience = "stompede".into();
        let v = verifier(&config);
        let exp = now_secs() + 600;
        let t = |c: Value| sign(Algorithm::HS256, &hs_key(), &c, None);
        let good = json!({"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": "stompede"});
        assert!(v.verify(&t(good)).is_ok());
        let multi =
            json!({"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": ["x", "stompede"]});
        assert!(v.verify(&t(multi)).is_ok());
        for bad in [
            json!({"sub": "u", "exp": exp, "iss": "https://evil.example", "aud": "stompede"}),
            json!({"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": "other"}),
            json!({"sub": "u", "exp": exp, "aud": "stompede"}),
            json!({"sub": "u", "exp": exp, "iss": "https://idp.example"}),
        ] {
            assert_eq!(err(&v, &t(bad.clone())), "invalid token", "{bad}");
        }
        // Not configured: not checked.
        let v = verifier(&secret_config(&dir));
        let any = json!({"sub": "u", "exp": exp, "iss": "whoever", "aud": "anything"});
        assert!(v.verify(&t(any)).is_ok());
    }

    #[test]
    fn roles_claim_paths_and_shapes() {
        let dir = TempDir::new("roles");
        let mut config = secret_config(&dir);
        config.roles_claim = "realm_access.roles".into();
        let v = verifier(&config);
        let exp = now_secs() + 600;
        let roles = |c: Value| {
            v.verify(&sign(Algorithm::HS256, &hs_key(), &c, None))
                .unwrap()
                .roles
        };
        assert_eq!(
            roles(json!({"sub": "u", "exp": exp, "realm_access": {"roles": ["x", 1, "y"]}})),
            ["x", "y"]
        );
        assert_eq!(
            roles(json!({"sub": "u", "exp": exp, "realm_access": {"roles": "p  q"}})),
            ["p", "q"]
        );
        assert!(roles(json!({"sub": "u", "exp": exp})).is_empty());
        assert!(roles(json!({"sub": "u", "exp": exp, "realm_access": 3})).is_empty());
        assert!(roles(json!({"sub": "u", "exp": exp, "realm_access": {"roles": {}}})).is_empty());

        config.roles_claim = "scope".into();
        let v = verifier(&config);
        let token = sign(
            Algorithm::HS256,
            &hs_key(),
            &json!({"sub": "u", "exp": exp, "scope": "read write"}),
            None,
        );
        assert_eq!(v.verify(&token).unwrap().roles, ["read", "write"]);
    }

    /// A JWKS with the two RSA keys (kid "k1", "k2"), the P-256 key (kid
    /// "ec"), an encryption key and an unknown key type.
    fn jwks_json() -> String {
        let mut keys = Vec::new();
        for (kid, alg, key) in [
            ("k1", Algorithm::RS256, rsa_key()),
            (
                "k2",
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(&read("rsa2_private.pem")).unwrap(),
            ),
            (
                "ec",
                Algorithm::ES256,
                EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap(),
            ),
        ] {
            let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
            jwk.common.key_id = Some(kid.into());
            keys.push(serde_json::to_value(&jwk).unwrap());
        }
        let mut enc = keys[0].clone();
        enc["kid"] = json!("enc");
        enc["use"] = json!("enc");
        enc["alg"] = json!("RSA-OAEP");
        keys.push(enc);
        keys.push(json!({"kty": "XYZ", "kid": "future"}));
        json!({ "keys": keys }).to_string()
    }

    #[test]
    fn jwks_selects_keys_by_kid() {
        let dir = TempDir::new("jwks");
        let v = verifier(&JwtConfig {
            jwks_file: dir.write("jwks.json", jwks_json().as_bytes()),
            ..JwtConfig::default()
        });
        assert_eq!(v.key_count(), 3);
        let k2 = EncodingKey::from_rsa_pem(&read("rsa2_private.pem")).unwrap();
        let token = sign(Algorithm::RS256, &k2, &claims("dave"), Some("k2"));
        assert_eq!(v.verify(&token).unwrap().user.as_deref(), Some("dave"));
        // k1's token claiming to be k2: checked only against k2.
        let token = sign(Algorithm::RS256, &rsa_key(), &claims("dave"), Some("k2"));
        assert_eq!(err(&v, &token), "invalid token");
        // Without kid (or an unknown kid), every RS256 key is tried.
        let token = sign(Algorithm::RS256, &rsa_key(), &claims("dave"), None);
        assert!(v.verify(&token).is_ok());
        let token = sign(Algorithm::RS256, &k2, &claims("dave"), Some("rotated"));
        assert!(v.verify(&token).is_ok());
        let ec = EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap();
        let token = sign(Algorithm::ES256, &ec, &claims("erin"), Some("ec"));
        assert!(v.verify(&token).is_ok());
        // The EC key's kid with an RS256 token: no RS256 key has that kid,
        // so the RS256 keys are tried, and k1 verifies it.
        let token = sign(Algorithm::RS256, &rsa_key(), &claims("dave"), Some("ec"));
        assert!(v.verify(&token).is_ok());
    }

    #[test]
    fn jwks_errors_are_readable() {
        let dir = TempDir::new("jwkserr");
        let load = |text: &str| {
            JwtVerifier::from_config(&JwtConfig {
                jwks_file: dir.write("jwks.json", text.as_bytes()),
                ..JwtConfig::default()
            })
            .unwrap_err()
            .to_string()
        };
        let e = load("{");
        assert!(
            e.contains("JWKS file") && e.contains("not valid JSON"),
            "{e}"
        );
        let e = load("[]");
        assert!(e.contains("\"keys\" array"), "{e}");
        let e = load(r#"{"keys": []}"#);
        assert!(e.contains("no usable signature key"), "{e}");
        let e = load(r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2hvcnQ"}]}"#);
        assert!(
            e.contains("key \"s\"") && e.contains("shorter than 32"),
            "{e}"
        );
        let e = load(r#"{"keys": [{"kty": "oct", "alg": "RS256", "k": "c2hvcnQ"}]}"#);
        assert!(e.contains("key #1") && e.contains("does not fit"), "{e}");
        let e = load(r#"{"keys": [{"kty": "RSA", "kid": "r"}]}"#);
        assert!(e.contains("key \"r\"") && e.contains("malformed"), "{e}");
    }

    #[test]
    fn jwks_oct_key_verifies_hs256_only() {
        let k = b64(SECRET);
        let dir = TempDir::new("oct");
        let v = verifier(&JwtConfig {
            jwks_file: dir.write(
                "jwks.json",
                json!({"keys": [{"kty": "oct", "kid": "h", "k": k}]})
                    .to_string()
                    .as_bytes(),
            ),
            ..JwtConfig::default()
        });
        let token = sign(Algorithm::HS256, &hs_key(), &claims("u"), Some("h"));
        assert!(v.verify(&token).is_ok());
        let token = sign(Algorithm::HS512, &hs_key(), &claims("u"), Some("h"));
        assert_eq!(err(&v, &token), "invalid token");
    }

    #[test]
    fn pem_errors_are_readable() {
        let dir = TempDir::new("pem");
        let load = |content: &[u8]| {
            JwtVerifier::from_config(&JwtConfig {
                public_key_files: vec![dir.write("key.pem", content)],
                ..JwtConfig::default()
            })
            .unwrap_err()
            .to_string()
        };
        let e = load(&read("rsa_private.pem"));
        assert!(
            e.contains("JWT public key file") && e.contains("private key"),
            "{e}"
        );
        let e = load(b"hello");
        assert!(e.contains("found 0"), "{e}");
        let mut two = read("rsa_public.pem");
        two.extend(read("ec_public.pem"));
        let e = load(&two);
        assert!(e.contains("found 2"), "{e}");
        let e = load(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(e.contains("unsupported PEM type \"CERTIFICATE\""), "{e}");
        let e = load(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        assert!(e.contains("not an RSA"), "{e}");
    }

    #[test]
    fn errors_never_echo_the_token() {
        let dir = TempDir::new("echo");
        let v = verifier(&secret_config(&dir));
        let token = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"x"),
            &claims("u"),
            None,
        );
        let e = err(&v, &token);
        assert!(!e.contains(&token[..10]));
    }
}
