//! STOMP over TLS and secure WebSocket: real sockets, a real rustls client,
//! certificates made by rcgen for each test.

mod common;

use common::{Peer, WAIT};
use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stompede::config::Config;
use stompede::{Broker, BrokerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// A directory of PEM files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stompede-tls-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write PEM");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate signed by this CA.
    fn leaf(
        &self,
        common_name: Option<&str>,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let issuer: &Issuer<'_, KeyPair> = &self.issuer;
        let cert = params.signed_by(&key, issuer).expect("sign");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf(
            Some("stompede test server"),
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self, cn: &str) -> Leaf {
        self.leaf(Some(cn), &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// A broker with a STOMP-over-TLS and a WSS listener using `server`'s
/// certificate, and `adjust` applied.
struct TlsBroker {
    broker: BrokerHandle,
    tls_addr: String,
    wss_addr: String,
    dir: TempDir,
    config: Config,
}

async fn start_tls(server: &Leaf, adjust: impl FnOnce(&mut Config, &TempDir)) -> TlsBroker {
    let dir = TempDir::new();
    let mut config = Config::default();
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = "127.0.0.1:0".into();
    config.listeners.admin = String::new();
    config.tls.cert = dir.write("server.pem", &server.cert_pem);
    config.tls.key = dir.write("server.key", &server.key_pem);
    config.listeners.tcp_tls = "127.0.0.1:0".into();
    config.listeners.websocket_tls = "127.0.0.1:0".into();
    adjust(&mut config, &dir);
    let broker = Broker::builder()
        .config(config.clone())
        .store_in_memory()
        .build()
        .start()
        .await
        .expect("broker starts");
    TlsBroker {
        tls_addr: broker.tcp_tls_addr().expect("tls listener").to_string(),
        wss_addr: broker.wss_addr().expect("wss listener").to_string(),
        broker,
        dir,
        config,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `ca`, presenting `client` if given.
fn client_config(ca: &Ca, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).expect("CA");
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

async fn tls_connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// The server's leaf certificate as the client saw it.
fn peer_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificates")[0]
        .clone()
}

/// A STOMP peer over TLS, CONNECTed.
async fn tls_peer(addr: &str, config: Arc<rustls::ClientConfig>) -> Peer<TlsStream<TcpStream>> {
    let stream = tls_connect(addr, config).await.expect("TLS connect");
    let mut peer = Peer::new(stream);
    peer.connect("1.2", None).await;
    peer
}

#[tokio::test]
async fn stomp_over_tls_connects_sends_and_subscribes() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let b = start_tls(&server, |_, _| {}).await;
    let config = client_config(&ca, None);
    let mut sub = tls_peer(&b.tls_addr, Arc::clone(&config)).await;
    sub.subscribe("s", "/topic/tls", "auto").await;
    let mut publisher = tls_peer(&b.tls_addr, config).await;
    publisher.publish("/topic/tls", "over tls").await;
    sub.expect_message("over tls").await;
    // Plain TCP and TLS clients share destinations.
    let mut plain = Peer::connected(&b.broker).await;
    plain.publish("/topic/tls", "from plain tcp").await;
    sub.expect_message("from plain tcp").await;
    // The server presents the configured certificate.
    assert_eq!(peer_cert(sub.framed.get_ref()), server.cert_der);
    b.broker.shutdown().await;
}

async fn next_ws_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> String {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        match m {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).expect("utf-8"),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn wss_carries_stomp() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let b = start_tls(&server, |_, _| {}).await;
    let stream = tls_connect(&b.wss_addr, client_config(&ca, None))
        .await
        .expect("TLS connect");
    let (mut ws, response) = tokio_tungstenite::client_async(
        "wss://localhost/ws".into_client_request_with_protocol("v12.stomp"),
        stream,
    )
    .await
    .expect("WebSocket handshake");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v12.stomp")
    );
    ws.send(Message::text("CONNECT\naccept-version:1.2\nhost:x\n\n\0"))
        .await
        .expect("send");
    assert!(next_ws_text(&mut ws).await.starts_with("CONNECTED\n"));
    ws.send(Message::text(
        "SUBSCRIBE\nid:1\ndestination:/topic/wss\nreceipt:r\n\n\0",
    ))
    .await
    .expect("send");
    assert!(next_ws_text(&mut ws).await.starts_with("RECEIPT\n"));
    ws.send(Message::text("SEND\ndestination:/topic/wss\n\nhello wss\0"))
        .await
        .expect("send");
    let m = next_ws_text(&mut ws).await;
    assert!(
        m.starts_with("MESSAGE\n") && m.ends_with("hello wss\0"),
        "{m:?}"
    );
    // The same path rules as plain WebSocket: another path is a 404.
    let stream = tls_connect(&b.wss_addr, client_config(&ca, None))
        .await
        .expect("TLS connect");
    match tokio_tungstenite::client_async("wss://localhost/elsewhere", stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    b.broker.shutdown().await;
}

/// Builds a client request offering one subprotocol.
trait WithProtocol {
    fn into_client_request_with_protocol(
        self,
        protocol: &str,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request;
}

impl WithProtocol for &str {
    fn into_client_request_with_protocol(
        self,
        protocol: &str,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self.into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            protocol.parse().expect("header value"),
        );
        request
    }
}

/// A TLS 1.1 ClientHello (no supported_versions extension), as an old
/// client would send it.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Reads until the peer closes; what it sent before.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
        .await
        .expect("the broker closes the connection");
    got
}

#[tokio::test]
async fn plaintext_and_tls11_are_refused_without_harming_others() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let b = start_tls(&server, |_, _| {}).await;
    let config = client_config(&ca, None);
    let mut good = tls_peer(&b.tls_addr, Arc::clone(&config)).await;
    good.subscribe("s", "/topic/still", "auto").await;

    // Plain STOMP to the TLS port: the handshake fails and it is closed.
    let mut plain = TcpStream::connect(&b.tls_addr).await.expect("connect");
    plain
        .write_all(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        .await
        .expect("write");
    let answer = read_until_closed(&mut plain).await;
    assert!(
        !answer.starts_with(b"CONNECTED"),
        "plaintext got {answer:?}"
    );

    // TLS 1.1: a protocol_version alert (or just a close), never a
    // ServerHello.
    let mut old = TcpStream::connect(&b.tls_addr).await.expect("connect");
    old.write_all(&tls11_client_hello()).await.expect("write");
    let answer = read_until_closed(&mut old).await;
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "TLS 1.1 got {answer:?}"
    );

    // Everyone else is fine.
    let mut publisher = tls_peer(&b.tls_addr, config).await;
    publisher.publish("/topic/still", "still here").await;
    good.expect_message("still here").await;
    b.broker.shutdown().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_at_the_connect_timeout() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let b = start_tls(&server, |c, _| {
        c.limits.connect_timeout_ms = 300;
        c.limits.max_connections = 2;
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(&b.tls_addr).await.expect("connect");
    let mut silent_wss = TcpStream::connect(&b.wss_addr).await.expect("connect");
    read_until_closed(&mut silent).await;
    read_until_closed(&mut silent_wss).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    // Their slots are free again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _a = tls_peer(&b.tls_addr, client_config(&ca, None)).await;
    let _b = tls_peer(&b.tls_addr, client_config(&ca, None)).await;
    b.broker.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_names_the_user() {
    let ca = Ca::new("client CA");
    let server = ca.server();
    let alice = ca.client("alice");
    let b = start_tls(&server, |c, dir| {
        c.tls.client_ca = dir.write("client-ca.pem", &ca.pem());
        c.auth.mode = stompede::config::AuthMode::Secure;
        c.auth.anonymous = true;
    })
    .await;

    let stream = tls_connect(&b.tls_addr, client_config(&ca, Some(&alice)))
        .await
        .expect("TLS connect");
    let mut peer = Peer::new(stream);
    let connected = peer.connect("1.2", None).await;
    assert_eq!(connected.get("user-name"), Some("alice"), "{connected:?}");

    // Over WSS too.
    let stream = tls_connect(&b.wss_addr, client_config(&ca, Some(&alice)))
        .await
        .expect("TLS connect");
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", stream)
        .await
        .expect("WebSocket handshake");
    ws.send(Message::text("CONNECT\naccept-version:1.2\nhost:x\n\n\0"))
        .await
        .expect("send");
    let connected = next_ws_text(&mut ws).await;
    assert!(connected.contains("\nuser-name:alice\n"), "{connected:?}");

    // Without a certificate (optional here): anonymous.
    let mut anonymous = tls_peer(&b.tls_addr, client_config(&ca, None)).await;
    anonymous.publish("/topic/x", "anonymous").await;

    // A certificate from another CA is refused at the handshake.
    let other = Ca::new("other CA");
    let mallory = other.client("alice");
    let refused = match tls_connect(&b.tls_addr, client_config(&ca, Some(&mallory))).await {
        // TLS 1.3 reports the refusal after the client's handshake ends.
        Ok(stream) => {
            let mut peer = Peer::new(stream);
            peer.raw(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0").await;
            matches!(peer.try_frame(WAIT).await, Some(None))
        }
        Err(_) => true,
    };
    assert!(refused, "a certificate from an unknown CA was accepted");
    b.broker.shutdown().await;
}

#[tokio::test]
async fn require_client_cert_refuses_clients_without_one() {
    let ca = Ca::new("client CA");
    let server = ca.server();
    let b = start_tls(&server, |c, dir| {
        c.tls.client_ca = dir.write("client-ca.pem", &ca.pem());
        c.tls.require_client_cert = true;
    })
    .await;
    let refused = match tls_connect(&b.tls_addr, client_config(&ca, None)).await {
        Ok(stream) => {
            let mut peer = Peer::new(stream);
            peer.raw(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0").await;
            matches!(peer.try_frame(WAIT).await, Some(None))
        }
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate was accepted");
    let _with = tls_peer(&b.tls_addr, client_config(&ca, Some(&ca.client("bob")))).await;
    b.broker.shutdown().await;
}

fn replace_file(path: &str, contents: &str) {
    // Write then rename, as deployment tools do.
    let tmp = format!("{path}.new");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, Path::new(path)).expect("rename");
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_connections() {
    let ca = Ca::new("test CA");
    let first = ca.server();
    let b = start_tls(&first, |_, _| {}).await;
    let config = client_config(&ca, None);
    let mut a = tls_peer(&b.tls_addr, Arc::clone(&config)).await;
    assert_eq!(peer_cert(a.framed.get_ref()), first.cert_der);
    a.subscribe("s", "/topic/reload", "auto").await;

    let second = ca.server();
    replace_file(&b.config.tls.cert, &second.cert_pem);
    replace_file(&b.config.tls.key, &second.key_pem);
    b.broker.reload(&b.config).expect("reload");

    let mut fresh = tls_peer(&b.tls_addr, Arc::clone(&config)).await;
    assert_eq!(peer_cert(fresh.framed.get_ref()), second.cert_der);
    let wss = tls_connect(&b.wss_addr, Arc::clone(&config))
        .await
        .expect("TLS connect");
    assert_eq!(peer_cert(&wss), second.cert_der);
    // Client A, connected before, still works.
    fresh.publish("/topic/reload", "after reload").await;
    a.expect_message("after reload").await;

    // A broken file: the reload fails, the current certificate stays.
    replace_file(&b.config.tls.cert, "not a certificate");
    let e = b.broker.reload(&b.config).expect_err("a bad file fails");
    assert!(e.contains(&b.config.tls.cert), "{e}");
    let later = tls_connect(&b.tls_addr, Arc::clone(&config))
        .await
        .expect("TLS connect");
    assert_eq!(peer_cert(&later), second.cert_der);
    // A key that does not match the certificate fails too.
    replace_file(&b.config.tls.cert, &first.cert_pem);
    assert!(b.broker.reload(&b.config).is_err());
    let later = tls_connect(&b.tls_addr, config).await.expect("TLS connect");
    assert_eq!(peer_cert(&later), second.cert_der);
    a.publish("/topic/reload", "still fine").await;
    a.expect_message("still fine").await;
    drop(b.dir);
    b.broker.shutdown().await;
}

#[tokio::test]
async fn a_tls_listener_without_a_certificate_does_not_start() {
    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    config.listeners.websocket_tls = "127.0.0.1:0".into();
    let e = Broker::builder()
        .config(config)
        .store_in_memory()
        .build()
        .start()
        .await
        .err()
        .expect("start fails");
    let e = e.to_string();
    assert!(
        e.contains("listeners.websocket_tls") && e.contains("tls.cert"),
        "{e}"
    );

    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    config.listeners.tcp_tls = "127.0.0.1:0".into();
    config.tls.cert = "/nonexistent/cert.pem".into();
    config.tls.key = "/nonexistent/key.pem".into();
    let e = Broker::builder()
        .config(config)
        .store_in_memory()
        .build()
        .start()
        .await
        .err()
        .expect("start fails");
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
}

#[tokio::test]
async fn per_ip_limit_counts_tls_connections_too() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let b = start_tls(&server, |c, _| c.limits.max_connections_per_ip = 1).await;
    let config = client_config(&ca, None);
    let _first = tls_peer(&b.tls_addr, Arc::clone(&config)).await;
    let stream = tls_connect(&b.tls_addr, config).await.expect("TLS connect");
    let mut second = Peer::new(stream);
    let e = second.expect_error_and_close().await;
    assert_eq!(
        e.get("message"),
        Some("too many connections from your address")
    );
    b.broker.shutdown().await;
}
