//! The broker: builder, listeners, and the state every session shares.

use crate::auth::Authenticator;
use crate::client::LocalClient;
use crate::cluster::plugin_logs::PluginLogs;
use crate::cluster::LogBackend;
use crate::config::{Config, StoreKind};
use crate::router::Router;
use crate::session;
use crate::stats::Stats;
use crate::store::commit::Committer;
use crate::store::{MemoryStore, SledStore, Store};
use crate::transport::tls::{self, Secured};
use crate::transport::{http, tcp::StreamTransport, ws, IpGuard};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stompede_plugin::Plugin;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Buffer size of an in-process connection's memory pipe, each direction.
const IN_PROCESS_PIPE_BYTES: usize = 256 * 1024;

/// State shared by every session and listener.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub router: Router,
    pub stats: Arc<Stats>,
    /// Authentication, ACLs and per-connection limits; replaced on reload.
    pub access: crate::access::Access,
    /// Plugins, in registration order.
    pub plugins: crate::plugin_host::PluginHost,
    /// Whether the embedder supplied the store (then plugins get no data
    /// directory of the configured one).
    pub store_is_custom: bool,
    /// Cancelled when the broker begins to shut down.
    pub shutdown: CancellationToken,
    /// Connected sessions (for the admin API).
    pub sessions: crate::registry::SessionRegistry,
    /// TLS material and per-address connection counts.
    pub net: crate::transport::NetState,
    /// The node's bridge to the cluster, when `[cluster] enabled`.
    pub cluster: Option<Arc<crate::cluster::Bridge>>,
    connections: Arc<Semaphore>,
    next_session: AtomicU64,
    next_consumer: AtomicU64,
}

impl Shared {
    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_consumer_id(&self) -> u64 {
        self.next_consumer.fetch_add(1, Ordering::Relaxed)
    }
}

/// Configures a [`Broker`].
pub struct BrokerBuilder {
    config: Config,
    /// Replaces the configured authentication when set.
    auth: Option<Arc<dyn Authenticator>>,
    plugins: Vec<Arc<dyn Plugin>>,
    store: Option<Arc<dyn Store>>,
    cluster_log: Option<Arc<dyn LogBackend>>,
}

impl BrokerBuilder {
    /// Uses `config` (defaults otherwise).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the STOMP-over-TCP listen address (`None` disables it).
    pub fn tcp(mut self, addr: Option<&str>) -> Self {
        self.config.listeners.tcp = addr.unwrap_or_default().to_owned();
        self
    }

    /// Sets the STOMP-over-WebSocket listen address (`None` disables it).
    pub fn websocket(mut self, addr: Option<&str>) -> Self {
        self.config.listeners.websocket = addr.unwrap_or_default().to_owned();
        self
    }

    /// Sets the admin HTTP listen address (`None` disables it).
    pub fn admin(mut self, addr: Option<&str>) -> Self {
        self.config.listeners.admin = addr.unwrap_or_default().to_owned();
        self
    }

    /// Uses `auth` to accept or refuse CONNECTs instead of the `[auth]`
    /// configuration (ACLs and limits still apply).
    pub fn authenticator(mut self, auth: impl Authenticator) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Adds a plugin; its hooks run after those of plugins added before it.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Adds a plugin the caller keeps a handle on (to inspect or drive it).
    pub fn shared_plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Keeps persistent messages in `store` instead of the one the
    /// configuration names.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Keeps the plugins' replicated logs in `backend` (e.g. a
    /// [`crate::cluster::MemoryLogBus`] node shared by several brokers in
    /// one process) instead of Kafka. Only plugin logs: topics and queues
    /// cross nodes through Kafka alone.
    pub fn cluster_log(mut self, backend: Arc<dyn LogBackend>) -> Self {
        self.cluster_log = Some(backend);
        self
    }

    /// Keeps persistent messages in memory only (tests, throwaway brokers).
    pub fn store_in_memory(self) -> Self {
        self.store(Arc::new(MemoryStore::default()))
    }

    /// Builds the broker; nothing is opened or bound until
    /// [`Broker::start`].
    pub fn build(self) -> Broker {
        Broker { builder: self }
    }
}

/// A STOMP broker. Build it with [`Broker::builder`], then either
/// [`Broker::run`] it until a shutdown signal or [`Broker::start`] it and
/// keep the [`BrokerHandle`].
pub struct Broker {
    builder: BrokerBuilder,
}

impl Broker {
    /// A builder with the default configuration (development-mode
    /// authentication, loopback listeners).
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: Config::default(),
            auth: None,
            plugins: Vec::new(),
            store: None,
            cluster_log: None,
        }
    }

    /// Opens the store, recovers stored queues, then binds the configured
    /// listeners and starts accepting connections.
    pub async fn start(self) -> io::Result<BrokerHandle> {
        let shared = self.open().await?;
        let tracker = TaskTracker::new();
        let listeners = &shared.config.listeners;
        let tcp_addr = listen(&shared, &tracker, &listeners.tcp, "tcp", Kind::Tcp).await?;
        let ws_addr = listen(
            &shared,
            &tracker,
            &listeners.websocket,
            "websocket",
            Kind::WebSocket,
        )
        .await?;
        let tls = &listeners.tcp_tls;
        if let Some(addr) = listen(&shared, &tracker, tls, "tcp_tls", Kind::TcpTls).await? {
            shared.net.set_tcp_tls_addr(addr);
        }
        let wss = &listeners.websocket_tls;
        if let Some(addr) =
            listen(&shared, &tracker, wss, "websocket_tls", Kind::WebSocketTls).await?
        {
            shared.net.set_websocket_tls_addr(addr);
        }
        let mut admin_addr = None;
        if !listeners.admin.is_empty() {
            let listener = bind(&listeners.admin, "admin HTTP").await?;
            let addr = listener.local_addr()?;
            if !addr.ip().is_loopback() && !shared.access.has_users() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the admin listener on {addr} needs credentials: set [auth] users_file \
                         with a user who has the role \"{}\" (or use a loopback address)",
                        shared.config.admin.role
                    ),
                ));
            }
            admin_addr = Some(addr);
            tracker.spawn(crate::admin::serve(
                Arc::clone(&shared),
                listener,
                tracker.clone(),
            ));
        }
        tracing::info!(
            tcp = ?tcp_addr,
            websocket = ?ws_addr,
            tcp_tls = ?shared.net.tcp_tls_addr(),
            websocket_tls = ?shared.net.websocket_tls_addr(),
            admin = ?admin_addr,
            "stompede is listening"
        );
        Ok(BrokerHandle {
            shared,
            tracker,
            tcp_addr,
            ws_addr,
            admin_addr,
        })
    }

    /// Builds the shared state: store, committer, recovered queues.
    async fn open(self) -> io::Result<Arc<Shared>> {
        let BrokerBuilder {
            config,
            auth,
            plugins,
            store,
            cluster_log,
        } = self.builder;
        crate::access::check_dev_mode_is_local(&config, auth.is_some())
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let access = crate::access::Access::new(&config, auth)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let plugins = crate::plugin_host::PluginHost::new(plugins)
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let config = Arc::new(config);
        let stats = Arc::new(Stats::default());
        let store_is_custom = store.is_some();
        let store: Arc<dyn Store> = match store {
            Some(store) => store,
            None => match config.store.kind {
                StoreKind::Memory => Arc::new(MemoryStore::default()),
                StoreKind::Sled => {
                    let path = std::path::PathBuf::from(&config.store.path);
                    let opened = tokio::task::spawn_blocking(move || SledStore::open(&path))
                        .await
                        .map_err(io::Error::other)?;
                    Arc::new(opened.map_err(|e| io::Error::other(e.to_string()))?)
                }
            },
        };
        let committer = Committer::start(
            Arc::clone(&store),
            config.store.fsync,
            Duration::from_millis(config.store.fsync_interval_ms),
        );
        let router = Router::new(Arc::clone(&config), Arc::clone(&stats), store, committer);
        let started = std::time::Instant::now();
        let recovered = router
            .recover()
            .map_err(|e| io::Error::other(e.to_string()))?;
        tracing::info!(
            messages = recovered,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store recovered"
        );
        let net = crate::transport::NetState::from_config(&config)?;
        let log_names: Vec<String> = plugins
            .all
            .iter()
            .filter_map(|p| p.log_name().map(str::to_owned))
            .collect();
        let cluster = match config.cluster.enabled {
            true => Some(
                crate::cluster::Bridge::connect(&config.cluster, &log_names)
                    .await
                    .map_err(io::Error::other)?,
            ),
            false => None,
        };
        let cluster_log = cluster_log.or_else(|| cluster.as_ref().map(|b| b.plugin_log_backend()));
        let shared = Arc::new(Shared {
            cluster,
            net,
            router,
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            config,
            stats,
            access,
            plugins,
            store_is_custom,
            shutdown: CancellationToken::new(),
            sessions: Default::default(),
            next_session: AtomicU64::new(1),
            next_consumer: AtomicU64::new(1),
        });
        if let Some(bridge) = &shared.cluster {
            bridge
                .start(Arc::downgrade(&shared))
                .map_err(io::Error::other)?;
        }
        let logs = PluginLogs::open(cluster_log, &shared.plugins.all).map_err(io::Error::other)?;
        shared
            .plugins
            .start(&shared, logs)
            .map_err(io::Error::other)?;
        Ok(shared)
    }

    /// Starts, runs until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let handle = self.start().await?;
        shutdown.await;
        handle.shutdown().await;
        Ok(())
    }
}

/// Binds `addr` (unless empty: that listener is off) and accepts
/// connections of `kind` on it; returns the bound address.
async fn listen(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    addr: &str,
    what: &str,
    kind: Kind,
) -> io::Result<Option<SocketAddr>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let listener = bind(addr, what).await?;
    let bound = listener.local_addr()?;
    tracker.spawn(accept_loop(
        Arc::clone(shared),
        listener,
        tracker.clone(),
        kind,
    ));
    Ok(Some(bound))
}

/// Pending connections the kernel may queue per listener. The usual 128
/// overflows when thousands of clients reconnect at once (a restart, a
/// load balancer shifting traffic), costing each a one-second SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: &str, what: &str) -> io::Result<TcpListener> {
    let context =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot listen for {what} on {addr}: {e}"));
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(context)?
        .next()
        .ok_or_else(|| context(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
    let socket = if resolved.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(context)?;
    socket.set_reuseaddr(true).map_err(context)?;
    socket.bind(resolved).map_err(context)?;
    socket.listen(LISTEN_BACKLOG).map_err(context)
}

/// A running broker.
pub struct BrokerHandle {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    tcp_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
}

impl BrokerHandle {
    /// The bound STOMP-over-TCP address, if that listener is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound WebSocket address, if that listener is on.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The bound STOMP-over-TLS address, if that listener is on.
    pub fn tcp_tls_addr(&self) -> Option<SocketAddr> {
        self.shared.net.tcp_tls_addr()
    }

    /// The bound secure WebSocket (WSS) address, if that listener is on.
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.shared.net.websocket_tls_addr()
    }

    /// The bound admin HTTP address, if that listener is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The broker's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// An in-process client: a full STOMP session over a memory pipe, no
    /// socket involved.
    pub async fn client(&self, login: Option<&str>) -> io::Result<LocalClient> {
        LocalClient::connect(self.connect_in_process(), login).await
    }

    /// A raw in-process connection: write STOMP bytes, read STOMP bytes.
    /// The session behind it is the same as for a TCP connection.
    pub fn connect_in_process(&self) -> tokio::io::DuplexStream {
        let (ours, theirs) = tokio::io::duplex(IN_PROCESS_PIPE_BYTES);
        self.tracker.spawn(session::run(
            Arc::clone(&self.shared),
            StreamTransport::new(theirs),
            None,
        ));
        ours
    }

    /// Applies `config`'s reloadable parts — TLS certificates, `[auth]`
    /// (users file, JWT keys), `[acl]` and `[limits]` — without dropping
    /// connections. Everything is checked first: on error nothing changes
    /// and the message says what is wrong. Changes to other sections are
    /// logged as needing a restart.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let shared = &self.shared;
        let policy = shared.access.prepare(config).map_err(|e| e.to_string())?;
        shared.net.reload_tls(&config.tls)?;
        shared
            .access
            .install(policy, config.auth.max_failed_logins_per_minute);
        let old = &shared.config;
        let needs_restart: Vec<&str> = [
            ("listeners", old.listeners != config.listeners),
            ("websocket", old.websocket != config.websocket),
            ("heartbeat", old.heartbeat != config.heartbeat),
            ("delivery", old.delivery != config.delivery),
            ("queues", old.queues != config.queues),
            ("routing", old.routing != config.routing),
            ("store", old.store != config.store),
            ("shutdown", old.shutdown != config.shutdown),
            ("admin", old.admin != config.admin),
            ("log", old.log != config.log),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        if !needs_restart.is_empty() {
            tracing::warn!(
                sections = ?needs_restart,
                "configuration reloaded; these changed sections take effect only after a restart"
            );
        } else {
            tracing::info!("configuration reloaded");
        }
        Ok(())
    }

    /// Stops accepting, lets sessions flush and close within the grace
    /// period, then aborts what is left.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.shared.shutdown.cancel();
        self.tracker.close();
        let grace = self.shared.config.shutdown_grace();
        if tokio::time::timeout(grace + Duration::from_millis(500), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("sessions still open after the grace period; exiting anyway");
        }
        if let Some(bridge) = &self.shared.cluster {
            bridge.flush(grace).await;
        }
        self.shared.plugins.stop();
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// STOMP over TCP.
    Tcp,
    /// STOMP over TLS.
    TcpTls,
    /// STOMP over WebSocket, behind the HTTP front.
    WebSocket,
    /// STOMP over WebSocket over TLS.
    WebSocketTls,
}

impl Kind {
    fn is_tls(self) -> bool {
        matches!(self, Kind::TcpTls | Kind::WebSocketTls)
    }

    /// The `transport` label the listener's connections are counted under.
    fn label(self) -> crate::stats::Transport {
        match self {
            Kind::Tcp => crate::stats::Transport::Tcp,
            Kind::TcpTls => crate::stats::Transport::TcpTls,
            Kind::WebSocket => crate::stats::Transport::Ws,
            Kind::WebSocketTls => crate::stats::Transport::Wss,
        }
    }
}

/// Why a connection is refused at accept.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// `limits.max_connections` are open.
    Full,
    /// `limits.max_connections_per_ip` are open from the client's address.
    PerIp,
}

impl Refusal {
    /// The STOMP ERROR's message.
    fn message(self) -> &'static str {
        match self {
            Refusal::Full => "too many connections",
            Refusal::PerIp => "too many connections from your address",
        }
    }

    /// The HTTP answer on WebSocket listeners.
    fn http(self) -> crate::transport::http::Refusal {
        match self {
            Refusal::Full => (
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "too many connections",
            ),
            Refusal::PerIp => (
                hyper::StatusCode::TOO_MANY_REQUESTS,
                "too many connections from your address",
            ),
        }
    }
}

/// How long a refused client is given to hear why (TLS handshake
/// included) before it is dropped.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// What an accepted connection holds while it is open.
struct Admission {
    _permit: OwnedSemaphorePermit,
    _per_ip: IpGuard,
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tracker: TaskTracker, kind: Kind) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.stats.connection_accepted(kind.label());
        let _ = stream.set_nodelay(true);
        let admission = match Arc::clone(&shared.connections).try_acquire_owned() {
            Err(_) => Err(Refusal::Full),
            Ok(permit) => match shared.net.admit(peer.ip()) {
                Some(per_ip) => Ok(Admission {
                    _permit: permit,
                    _per_ip: per_ip,
                }),
                None => Err(Refusal::PerIp),
            },
        };
        match admission {
            Ok(admission) => {
                let shared = Arc::clone(&shared);
                tracker.spawn(async move {
                    serve(shared, stream, peer, kind, admission).await;
                });
            }
            Err(refusal) => {
                shared.stats.connection_refused(kind.label());
                match refusal {
                    Refusal::Full => {
                        tracing::warn!(%peer, "connection refused: max_connections reached")
                    }
                    Refusal::PerIp => tracing::warn!(
                        %peer,
                        "connection refused: max_connections_per_ip reached"
                    ),
                }
                tracker.spawn(refuse(Arc::clone(&shared), stream, kind, refusal));
            }
        }
    }
}

/// Tells a refused client why, in its listener's protocol (a STOMP ERROR,
/// or an HTTP 503/429 before any WebSocket upgrade), without waiting on it
/// for long.
async fn refuse(shared: Arc<Shared>, stream: TcpStream, kind: Kind, refusal: Refusal) {
    let limit = if kind.is_tls() {
        REFUSAL_TIMEOUT
    } else {
        Duration::from_secs(1)
    };
    let refused = async {
        match kind {
            Kind::Tcp => refuse_politely(stream, refusal.message()).await,
            Kind::TcpTls => {
                if let Some(stream) = tls_handshake(&shared, stream).await {
                    refuse_politely(stream, refusal.message()).await;
                }
            }
            Kind::WebSocket => {
                let _ = http::accept(
                    &shared.config,
                    shared.net.http_policy(),
                    Some(refusal.http()),
                    stream,
                )
                .await;
            }
            Kind::WebSocketTls => {
                if let Some(stream) = tls_handshake(&shared, stream).await {
                    let _ = http::accept(
                        &shared.config,
                        shared.net.http_policy(),
                        Some(refusal.http()),
                        stream,
                    )
                    .await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(limit, refused).await;
}

/// Tells a STOMP client why it is refused, without waiting on it for long.
async fn refuse_politely<S>(mut stream: S, message: &str)
where
    S: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let refusal = format!("ERROR\nmessage:{message}\n\n\0");
    let _ =
        tokio::time::timeout(Duration::from_secs(1), stream.write_all(refusal.as_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// The server side of a TLS handshake with the current certificate; `None`
/// (logged) if it fails. The caller bounds the time.
async fn tls_handshake(
    shared: &Shared,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = stream.peer_addr().ok();
    let Some(config) = shared.net.tls_config() else {
        tracing::warn!("TLS connection but no TLS configuration");
        return None;
    };
    match tls::handshake(config, stream).await {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

/// Runs the WebSocket handshake (HTTP front) on `stream`; `None` if the
/// request was answered in HTTP instead, failed, or took too long.
async fn websocket_handshake<S>(
    shared: &Shared,
    stream: S,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) -> Option<ws::WsTransport<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let policy = shared.net.http_policy();
    let accept = http::accept(&shared.config, policy, None, stream);
    match handshake_step(shared, deadline, accept).await {
        Some(Ok(transport)) => transport,
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
            None
        }
        None => {
            tracing::debug!(%peer, "WebSocket handshake timed out or interrupted by shutdown");
            None
        }
    }
}

/// Runs one handshake step (TLS, HTTP) until `deadline`; `None` if the
/// deadline passes or the broker begins to shut down first.
async fn handshake_step<F: Future>(
    shared: &Shared,
    deadline: tokio::time::Instant,
    step: F,
) -> Option<F::Output> {
    tokio::select! {
        _ = shared.shutdown.cancelled() => None,
        done = tokio::time::timeout_at(deadline, step) => done.ok(),
    }
}

async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    _admission: Admission,
) {
    shared.stats.connection_opened(kind.label());
    // TLS and HTTP handshakes must end within the connect timeout; the
    // session then waits for CONNECT as usual.
    let deadline = tokio::time::Instant::now() + shared.config.limits.connect_timeout();
    // This future is every connection's task, sized for its largest state:
    // handshakes and the TLS sessions are boxed so that they cost memory
    // only while they run, and only on their own listeners.
    match kind {
        Kind::Tcp => {
            session::run(
                Arc::clone(&shared),
                StreamTransport::new(stream),
                Some(peer),
            )
            .await
        }
        Kind::WebSocket => {
            let transport = Box::pin(websocket_handshake(&shared, stream, peer, deadline)).await;
            if let Some(transport) = transport {
                session::run(Arc::clone(&shared), transport, Some(peer)).await;
            }
        }
        Kind::TcpTls | Kind::WebSocketTls => {
            Box::pin(serve_tls(&shared, stream, peer, kind, deadline)).await
        }
    }
    shared.stats.connection_closed(kind.label());
}

/// Serves a connection of a TLS listener: the TLS handshake, then STOMP
/// directly or behind the WebSocket handshake.
async fn serve_tls(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    deadline: tokio::time::Instant,
) {
    let handshake = Box::pin(handshake_step(
        shared,
        deadline,
        tls_handshake(shared, stream),
    ));
    let stream = match handshake.await {
        Some(Some(stream)) => stream,
        Some(None) => return,
        None => {
            tracing::debug!(%peer, "TLS handshake timed out or interrupted by shutdown");
            return;
        }
    };
    let identity = tls::peer_identity(&stream);
    if let Kind::WebSocketTls = kind {
        let transport = Box::pin(websocket_handshake(shared, stream, peer, deadline)).await;
        if let Some(transport) = transport {
            let transport = Secured::new(transport, identity, "wss");
            session::run(Arc::clone(shared), transport, Some(peer)).await;
        }
    } else {
        let transport = Secured::new(StreamTransport::new(stream), identity, "tls");
        session::run(Arc::clone(shared), transport, Some(peer)).await;
    }
}
