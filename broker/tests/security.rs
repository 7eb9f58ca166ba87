//! Authentication, authorization and per-connection limits, end to end over
//! real sockets: users-file logins, JWTs (in `passcode` and in an
//! `Authorization` header, with `exp` enforced on the live connection),
//! failed-login delay and throttling, ACLs with both refusal modes, and the
//! development-mode guard.
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{start_with, Peer, WAIT};
use jsonwebtoken::{encode, EncodingKey, Header};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stompede::codec::{Command, Frame};
use stompede::config::{AclAction, AclEffect, AclRule, AuthMode, Config, RefusalMode};
use stompede::security::users::hash_password;
use stompede::{Broker, BrokerHandle};

const SECRET: &[u8] = b"a-test-secret-of-reasonable-length";

/// A temp directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "stompede-security-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A secure-mode config with users alice (role admin) and bob, and HS256
/// JWTs signed with [`SECRET`].
fn secure_config(dir: &TempDir) -> Config {
    let users = format!(
        "[[user]]\nname = \"alice\"\npassword = \"{}\"\nroles = [\"admin\"]\n\n\
         [[user]]\nname = \"bob\"\npassword = \"{}\"\n",
        hash_password("alice-pw").unwrap(),
        hash_password("bob-pw").unwrap()
    );
    let mut config = Config::default();
    config.auth.mode = AuthMode::Secure;
    config.auth.users_file = dir.write("users.toml", &users);
    config.auth.jwt.hs256_secret_file =
        dir.write("jwt.secret", std::str::from_utf8(SECRET).unwrap());
    config.auth.jwt.leeway_s = 0;
    config.auth.failed_login_delay_ms = 200;
    config
}

fn token(sub: &str, roles: &[&str], expires_in_s: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({ "sub": sub, "roles": roles, "exp": now + expires_in_s });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn connect_frame(headers: &[(&str, &str)]) -> Frame {
    headers.iter().fold(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost"),
        |f, (k, v)| f.header(k.to_string(), v.to_string()),
    )
}

/// CONNECTs with `headers`; returns the answer (CONNECTED or ERROR).
async fn try_login(
    broker: &BrokerHandle,
    headers: &[(&str, &str)],
) -> (Peer<tokio::net::TcpStream>, Frame) {
    let mut peer = Peer::tcp(broker).await;
    peer.send(connect_frame(headers)).await;
    let answer = peer.frame().await;
    (peer, answer)
}

async fn login(broker: &BrokerHandle, headers: &[(&str, &str)]) -> Peer<tokio::net::TcpStream> {
    let (peer, answer) = try_login(broker, headers).await;
    assert_eq!(answer.command, Command::Connected, "{answer:?}");
    peer
}

#[tokio::test]
async fn users_file_logins_are_checked_and_failures_look_alike() {
    let dir = TempDir::new("users");
    let broker = start_with(secure_config(&dir)).await;

    let (_, ok) = try_login(&broker, &[("login", "alice"), ("passcode", "alice-pw")]).await;
    assert_eq!(ok.command, Command::Connected);
    assert_eq!(ok.get("user-name"), Some("alice"));

    let mut answers = Vec::new();
    for creds in [
        [("login", "alice"), ("passcode", "wrong")],
        [("login", "nobody"), ("passcode", "alice-pw")],
    ] {
        let started = Instant::now();
        let (mut peer, answer) = try_login(&broker, &creds).await;
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "a failed login is answered after the configured delay"
        );
        assert_eq!(answer.command, Command::Error);
        peer.expect_closed().await;
        answers.push((
            answer.get("message").map(str::to_owned),
            answer.body.clone(),
        ));
    }
    assert_eq!(
        answers[0], answers[1],
        "a wrong password and an unknown user get the same answer"
    );

    // No credentials: refused unless anonymous access is configured.
    let (_, anonymous) = try_login(&broker, &[]).await;
    assert_eq!(anonymous.command, Command::Error);
}

#[tokio::test]
async fn anonymous_access_when_configured() {
    let dir = TempDir::new("anon");
    let mut config = secure_config(&dir);
    config.auth.anonymous = true;
    let broker = start_with(config).await;
    let (_, answer) = try_login(&broker, &[]).await;
    assert_eq!(answer.command, Command::Connected);
    assert_eq!(answer.get("user-name"), None);
    // Credentials, when given, are still checked.
    let (_, bad) = try_login(&broker, &[("login", "bob"), ("passcode", "nope")]).await;
    assert_eq!(bad.command, Command::Error);
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let dir = TempDir::new("throttle");
    let mut config = secure_config(&dir);
    config.auth.max_failed_logins_per_minute = 3;
    config.auth.failed_login_delay_ms = 10;
    let broker = start_with(config).await;
    for _ in 0..3 {
        let (_, answer) = try_login(&broker, &[("login", "bob"), ("passcode", "guess")]).await;
        assert_eq!(answer.get("message"), Some("authentication failed"));
    }
    // Now even the right password is refused, with a different reason.
    let (_, answer) = try_login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;
    assert_eq!(answer.command, Command::Error);
    assert!(
        answer
            .get("message")
            .unwrap()
            .contains("too many failed logins"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn jwt_in_passcode_or_bearer_header() {
    let dir = TempDir::new("jwt");
    let broker = start_with(secure_config(&dir)).await;

    let t = token("carol", &["reader"], 300);
    let (_, by_passcode) = try_login(&broker, &[("passcode", &t)]).await;
    assert_eq!(by_passcode.command, Command::Connected);
    assert_eq!(by_passcode.get("user-name"), Some("carol"));

    let bearer = format!("Bearer {t}");
    let (_, by_header) = try_login(&broker, &[("Authorization", &bearer)]).await;
    assert_eq!(by_header.get("user-name"), Some("carol"));

    let expired = token("carol", &[], -60);
    let (_, refused) = try_login(&broker, &[("passcode", &expired)]).await;
    assert_eq!(refused.command, Command::Error);

    let mut forged = token("carol", &[], 300);
    forged.push('x');
    let (_, refused) = try_login(&broker, &[("passcode", &forged)]).await;
    assert_eq!(refused.command, Command::Error);
}

#[tokio::test]
async fn an_expiring_token_ends_the_live_connection() {
    let dir = TempDir::new("exp");
    let broker = start_with(secure_config(&dir)).await;
    let t = token("dave", &[], 2);
    let mut peer = login(&broker, &[("passcode", &t)]).await;
    peer.subscribe("s", "/topic/news", "auto").await;
    let error = peer.expect(Command::Error).await;
    assert_eq!(error.get("message"), Some("token expired"));
    peer.expect_closed().await;
}

fn rule(who: &str, destination: &str, actions: &[AclAction], effect: AclEffect) -> AclRule {
    AclRule {
        who: vec![who.to_owned()],
        destination: destination.to_owned(),
        actions: actions.to_vec(),
        effect,
    }
}

/// alice (admin) may do anything; everyone may use /topic/public.# and
/// subscribe to their own /queue/inbox.{user}; nothing else.
fn acl_config(dir: &TempDir, refusal: RefusalMode) -> Config {
    use AclAction::*;
    let mut config = secure_config(dir);
    config.acl.default = AclEffect::Deny;
    config.acl.refusal = refusal;
    config.acl.rules = vec![
        rule(
            "role:admin",
            "/#",
            &[Publish, Subscribe, Create],
            AclEffect::Allow,
        ),
        rule(
            "*",
            "/topic/public.#",
            &[Publish, Subscribe],
            AclEffect::Allow,
        ),
        rule(
            "*",
            "/queue/inbox.{user}",
            &[Subscribe, Create],
            AclEffect::Allow,
        ),
    ];
    config
}

#[tokio::test]
async fn acl_denials_close_the_connection_by_default() {
    let dir = TempDir::new("acl-error");
    let broker = start_with(acl_config(&dir, RefusalMode::Error)).await;

    let mut bob = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;
    bob.subscribe("pub", "/topic/public.news", "auto").await;
    bob.subscribe("inbox", "/queue/inbox.bob", "auto").await;
    bob.send(
        Frame::new(Command::Subscribe)
            .header("id", "x")
            .header("destination", "/queue/inbox.alice")
            .header("receipt", "r1"),
    )
    .await;
    let error = bob.expect_error_and_close().await;
    assert!(error.get("message").unwrap().contains("access denied"));
    assert_eq!(error.get("receipt-id"), Some("r1"));

    let mut bob = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;
    bob.send(
        Frame::new(Command::Send)
            .header("destination", "/topic/private")
            .body("no"),
    )
    .await;
    bob.expect_error_and_close().await;

    let mut alice = login(&broker, &[("login", "alice"), ("passcode", "alice-pw")]).await;
    alice.subscribe("any", "/topic/private", "auto").await;
    alice
        .request(
            Frame::new(Command::Send)
                .header("destination", "/topic/private")
                .body("yes"),
        )
        .await;
    assert_eq!(&alice.expect(Command::Message).await.body[..], b"yes");
}

#[tokio::test]
async fn non_fatal_refusals_keep_the_connection() {
    let dir = TempDir::new("acl-receipt");
    let broker = start_with(acl_config(&dir, RefusalMode::Receipt)).await;
    let mut bob = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;

    // A denied SUBSCRIBE: one MESSAGE with x-event:denied, and the RECEIPT
    // carries x-error.
    bob.send(
        Frame::new(Command::Subscribe)
            .header("id", "secret")
            .header("destination", "/topic/private")
            .header("receipt", "r1"),
    )
    .await;
    let denied = bob.expect(Command::Message).await;
    assert_eq!(denied.get("x-event"), Some("denied"));
    assert_eq!(denied.get("subscription"), Some("secret"));
    assert_eq!(denied.get("destination"), Some("/topic/private"));
    let receipt = bob.expect(Command::Receipt).await;
    assert_eq!(receipt.get("receipt-id"), Some("r1"));
    assert!(receipt.get("x-error").unwrap().contains("access denied"));

    // A denied SEND with a receipt: RECEIPT with x-error, nothing published.
    bob.send(
        Frame::new(Command::Send)
            .header("destination", "/topic/private")
            .header("receipt", "r2")
            .body("leak"),
    )
    .await;
    let receipt = bob.expect(Command::Receipt).await;
    assert_eq!(receipt.get("receipt-id"), Some("r2"));
    assert!(receipt.get("x-error").is_some());

    // The connection still works for what is allowed.
    bob.subscribe("pub", "/topic/public.chat", "auto").await;
    bob.request(
        Frame::new(Command::Send)
            .header("destination", "/topic/public.chat")
            .body("hi"),
    )
    .await;
    assert_eq!(&bob.expect(Command::Message).await.body[..], b"hi");
}

#[tokio::test]
async fn creating_a_queue_needs_the_create_right() {
    let dir = TempDir::new("acl-create");
    let mut config = acl_config(&dir, RefusalMode::Error);
    config.acl.rules.insert(
        0,
        rule(
            "user:bob",
            "/queue/jobs",
            &[AclAction::Publish],
            AclEffect::Allow,
        ),
    );
    let broker = start_with(config).await;

    // bob may publish to /queue/jobs, but not be the one who creates it.
    let mut bob = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;
    bob.send(
        Frame::new(Command::Send)
            .header("destination", "/queue/jobs")
            .body("1"),
    )
    .await;
    let error = bob.expect_error_and_close().await;
    assert!(
        error.get("message").unwrap().contains("create"),
        "{error:?}"
    );

    let mut alice = login(&broker, &[("login", "alice"), ("passcode", "alice-pw")]).await;
    alice.subscribe("jobs", "/queue/jobs", "auto").await;
    let mut bob = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;
    bob.request(
        Frame::new(Command::Send)
            .header("destination", "/queue/jobs")
            .body("2"),
    )
    .await;
    assert_eq!(&alice.expect(Command::Message).await.body[..], b"2");
}

#[tokio::test]
async fn frame_rate_limit_answers_with_an_error() {
    let mut config = Config::default();
    config.limits.max_frames_per_second = 20;
    let broker = start_with(config).await;
    let mut peer = Peer::connected(&broker).await;
    for i in 0..100 {
        peer.send(
            Frame::new(Command::Send)
                .header("destination", "/topic/flood")
                .body(format!("{i}")),
        )
        .await;
    }
    let error = tokio::time::timeout(WAIT, peer.expect_error_and_close())
        .await
        .unwrap();
    assert_eq!(error.get("message"), Some("rate limit exceeded"));
}

#[tokio::test]
async fn development_mode_refuses_public_listeners() {
    let mut config = Config::default();
    config.listeners.tcp = "0.0.0.0:0".into();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    let refused = Broker::builder()
        .config(config.clone())
        .store_in_memory()
        .build()
        .start()
        .await;
    let why = refused
        .err()
        .expect("dev mode on 0.0.0.0 is refused")
        .to_string();
    assert!(why.contains("mode = \"dev\""), "{why}");

    // Secure mode may listen anywhere.
    let dir = TempDir::new("public");
    let mut secure = secure_config(&dir);
    secure.listeners = config.listeners;
    let broker = Broker::builder()
        .config(secure)
        .store_in_memory()
        .build()
        .start()
        .await
        .expect("secure mode starts on 0.0.0.0");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_reload_applies_new_rules_to_open_connections() {
    let dir = TempDir::new("reload");
    let config = acl_config(&dir, RefusalMode::Error);
    let broker = start_with(config.clone()).await;
    let mut bob = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;
    bob.subscribe("pub", "/topic/public.news", "auto").await;

    // A broken users file is rejected; the old rules stay.
    let mut broken = config.clone();
    broken.auth.users_file = dir.write("broken.toml", "[[user]]\nname = 3\n");
    assert!(broker.reload(&broken).is_err());
    let _still = login(&broker, &[("login", "bob"), ("passcode", "bob-pw")]).await;

    // Now deny bob /topic/public.#: his open connection is kept but its
    // next SEND there is refused.
    let mut stricter = config.clone();
    stricter.acl.rules.insert(
        0,
        rule(
            "user:bob",
            "/topic/public.#",
            &[AclAction::Publish],
            AclEffect::Deny,
        ),
    );
    broker.reload(&stricter).expect("valid config reloads");
    bob.send(
        Frame::new(Command::Send)
            .header("destination", "/topic/public.news")
            .body("after"),
    )
    .await;
    let error = bob.expect_error_and_close().await;
    assert!(error.get("message").unwrap().contains("access denied"));
}
