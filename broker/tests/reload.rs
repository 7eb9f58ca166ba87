//! The real `stompede` binary: `stompede passwd` makes users-file entries
//! that log in, and SIGHUP applies a changed ACL to open connections
//! without dropping them, while a broken config is rejected and the old one
//! stays.
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::Peer;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stompede::codec::{Command, Frame};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_stompede");

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "stompede-reload-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the broker when the test ends, however it ends.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `stompede passwd --user NAME --roles ...` with the password on stdin.
fn passwd_entry(user: &str, roles: &str, password: &str) -> String {
    let mut child = Process::new(BIN)
        .args(["passwd", "--user", user, "--roles", roles])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("$argon2id$"), "{text}");
    text
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(users_file: &std::path::Path, extra_rules: &str) -> String {
    format!(
        "[auth]\nmode = \"secure\"\nusers_file = \"{}\"\nfailed_login_delay_ms = 10\n\n\
         [acl]\ndefault = \"allow\"\n{extra_rules}",
        users_file.display()
    )
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the broker did not listen on {port}");
}

async fn login(port: u16, user: &str, password: &str) -> Peer<TcpStream> {
    let mut peer = Peer::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    peer.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost")
            .header("login", user.to_owned())
            .header("passcode", password.to_owned()),
    )
    .await;
    let connected = peer.expect(Command::Connected).await;
    assert_eq!(connected.get("user-name"), Some(user));
    peer
}

fn hangup(broker: &Broker) {
    let status = Process::new("kill")
        .args(["-HUP", &broker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_applies_a_new_acl_and_keeps_connections() {
    let scratch = Scratch::new("sighup");
    let users = scratch.path("users.toml");
    std::fs::write(
        &users,
        passwd_entry("alice", "admin", "alice-pw") + &passwd_entry("bob", "user", "bob-pw"),
    )
    .unwrap();
    let config = scratch.path("stompede.toml");
    std::fs::write(&config, config_text(&users, "")).unwrap();
    let port = free_port();
    let broker = Broker(
        Process::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["--tcp-listen", &format!("127.0.0.1:{port}")])
            .args(["--ws-listen=", "--admin-listen=", "--memory-store"])
            .args(["--log-level", "warn"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port).await;

    let mut alice = login(port, "alice", "alice-pw").await;
    alice.subscribe("news", "/topic/news", "auto").await;
    let mut bob = login(port, "bob", "bob-pw").await;
    bob.request(
        Frame::new(Command::Send)
            .header("destination", "/topic/news")
            .body("before"),
    )
    .await;
    assert_eq!(&alice.expect(Command::Message).await.body[..], b"before");

    // A broken config is rejected: the broker keeps running as before.
    std::fs::write(&config, "[acl]\ndefault = \"sometimes\"\n").unwrap();
    hangup(&broker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.request(
        Frame::new(Command::Send)
            .header("destination", "/topic/news")
            .body("still allowed"),
    )
    .await;
    assert_eq!(
        &alice.expect(Command::Message).await.body[..],
        b"still allowed"
    );

    // Deny bob publishing to /topic/news.
    let rule = "[[acl.rule]]\nwho = [\"user:bob\"]\ndestination = \"/topic/news\"\n\
                actions = [\"publish\"]\neffect = \"deny\"\n";
    std::fs::write(&config, config_text(&users, rule)).unwrap();
    hangup(&broker);
    // The reload is asynchronous: poll with a fresh connection until bob
    // is denied, then check the old connections.
    let mut applied = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = login(port, "bob", "bob-pw").await;
        probe
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/topic/news")
                    .header("receipt", "p")
                    .body("probe"),
            )
            .await;
        if probe.frame().await.command == Command::Error {
            applied = true;
            break;
        }
        // The probe got through before the reload: alice saw it.
        assert_eq!(&alice.expect(Command::Message).await.body[..], b"probe");
    }
    assert!(applied, "the new rule was not applied after SIGHUP");

    // bob's connection from before the reload is still open, and now denied.
    bob.send(
        Frame::new(Command::Send)
            .header("destination", "/topic/news")
            .body("after"),
    )
    .await;
    let error = bob.expect_error_and_close().await;
    assert!(error.get("message").unwrap().contains("access denied"));

    // alice's connection from before the reload still works.
    alice
        .request(
            Frame::new(Command::Send)
                .header("destination", "/topic/news")
                .body("alice after"),
        )
        .await;
    assert_eq!(
        &alice.expect(Command::Message).await.body[..],
        b"alice after"
    );
    drop(broker);
}
