//! The broker: builder, listeners, and the state every session shares.

use crate::auth::{AllowAll, Authenticator};
use crate::client::LocalClient;
use crate::config::{Config, StoreKind};
use crate::plugin::Plugin;
use crate::router::Router;
use crate::session;
use crate::stats::Stats;
use crate::store::commit::Committer;
use crate::store::{MemoryStore, SledStore, Store};
use crate::transport::{tcp::StreamTransport, ws};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
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
    pub auth: Arc<dyn Authenticator>,
    /// Plugins, in registration order.
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Cancelled when the broker begins to shut down.
    pub shutdown: CancellationToken,
    /// Connected sessions (for the admin API).
    pub sessions: crate::registry::SessionRegistry,
    /// TLS material and per-address connection counts.
    pub net: crate::transport::NetState,
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
    auth: Arc<dyn Authenticator>,
    plugins: Vec<Arc<dyn Plugin>>,
    store: Option<Arc<dyn Store>>,
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

    /// Uses `auth` to accept or refuse CONNECTs.
    pub fn authenticator(mut self, auth: impl Authenticator) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// Adds a plugin; its hooks run after those of plugins added before it.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Keeps persistent messages in `store` instead of the one the
    /// configuration names.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
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
    /// A builder with the default configuration and [`AllowAll`]
    /// authentication.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: Config::default(),
            auth: Arc::new(AllowAll),
            plugins: Vec::new(),
            store: None,
        }
    }

    /// Opens the store, recovers stored queues, then binds the configured
    /// listeners and starts accepting connections.
    pub async fn start(self) -> io::Result<BrokerHandle> {
        let shared = self.open().await?;
        let tracker = TaskTracker::new();
        let mut tcp_addr = None;
        let mut ws_addr = None;
        let listeners = &shared.config.listeners;
        if !listeners.tcp.is_empty() {
            let listener = bind(&listeners.tcp, "tcp").await?;
            tcp_addr = Some(listener.local_addr()?);
            tracker.spawn(accept_loop(
                Arc::clone(&shared),
                listener,
                tracker.clone(),
                Kind::Tcp,
            ));
        }
        if !listeners.websocket.is_empty() {
            let listener = bind(&listeners.websocket, "websocket").await?;
            ws_addr = Some(listener.local_addr()?);
            tracker.spawn(accept_loop(
                Arc::clone(&shared),
                listener,
                tracker.clone(),
                Kind::WebSocket,
            ));
        }
        let mut admin_addr = None;
        if !listeners.admin.is_empty() {
            let listener = bind(&listeners.admin, "admin HTTP").await?;
            let addr = listener.local_addr()?;
            if !addr.ip().is_loopback() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the admin listener has no credentials yet; use a loopback address, not {addr}"),
                ));
            }
            admin_addr = Some(addr);
            tracker.spawn(crate::admin::serve(
                Arc::clone(&shared),
                listener,
                tracker.clone(),
            ));
        }
        tracing::info!(tcp = ?tcp_addr, websocket = ?ws_addr, admin = ?admin_addr, "stompede is listening");
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
        } = self.builder;
        let config = Arc::new(config);
        let stats = Arc::new(Stats::default());
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
        Ok(Arc::new(Shared {
            net,
            router,
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            config,
            stats,
            auth,
            plugins,
            shutdown: CancellationToken::new(),
            sessions: Default::default(),
            next_session: AtomicU64::new(1),
            next_consumer: AtomicU64::new(1),
        }))
    }

    /// Starts, runs until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let handle = self.start().await?;
        shutdown.await;
        handle.shutdown().await;
        Ok(())
    }
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
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tcp,
    WebSocket,
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
        shared.stats.connections_accepted.inc();
        let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
            shared.stats.connections_refused.inc();
            tracing::warn!(%peer, "connection refused: max_connections reached");
            if let Kind::Tcp = kind {
                tracker.spawn(refuse_politely(stream));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tracker.spawn(async move {
            serve(shared, stream, peer, kind, permit).await;
        });
    }
}

/// Tells a TCP client why it is refused, without waiting on it for long.
async fn refuse_politely(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    const REFUSAL: &[u8] = b"ERROR\nmessage:too many connections\n\n\0";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(REFUSAL)).await;
    let _ = stream.shutdown().await;
}

async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    _permit: OwnedSemaphorePermit,
) {
    shared.stats.connections_open.add(1);
    match kind {
        Kind::Tcp => {
            session::run(
                Arc::clone(&shared),
                StreamTransport::new(stream),
                Some(peer),
            )
            .await
        }
        Kind::WebSocket => match ws::accept(&shared, stream).await {
            Ok(transport) => session::run(Arc::clone(&shared), transport, Some(peer)).await,
            Err(e) => tracing::debug!(%peer, error = %e, "WebSocket handshake failed"),
        },
    }
    shared.stats.connections_open.sub(1);
}
