//! Transports: TCP and WebSocket, each plain or over TLS, all carry bytes
//! into the same STOMP decoder; only the framing of outbound bytes differs.
//!
//! [`NetState`] is the listeners' shared state: the current TLS server
//! configuration (swapped on reload) and the per-address connection counts.

pub(crate) mod http;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod ws;

use arc_swap::ArcSwapOption;
use bytes::BytesMut;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

/// Listener-side state shared by the accept loops: TLS material and
/// per-address connection counts.
#[derive(Debug, Default)]
pub(crate) struct NetState {
    /// The TLS configuration new connections use; `None` until a TLS
    /// listener is configured. Swapped whole by [`NetState::reload_tls`].
    tls: ArcSwapOption<rustls::ServerConfig>,
    /// Open connections per client address.
    per_ip: Arc<PerIp>,
    /// The bound STOMP-over-TLS address, once listening.
    tcp_tls_addr: OnceLock<SocketAddr>,
    /// The bound secure WebSocket address, once listening.
    websocket_tls_addr: OnceLock<SocketAddr>,
    /// How the WebSocket listeners' HTTP front answers requests.
    http_policy: http::Policy,
}

impl NetState {
    /// Builds the state `config` asks for: loads the TLS certificate when a
    /// TLS listener is configured (an error if `[tls]` lacks it or its files
    /// are unusable).
    pub(crate) fn from_config(config: &crate::config::Config) -> io::Result<NetState> {
        let state = NetState {
            per_ip: Arc::new(PerIp {
                limit: config.limits.max_connections_per_ip,
                counts: Mutex::default(),
            }),
            http_policy: http::Policy::from_config(config),
            ..NetState::default()
        };
        let listeners = &config.listeners;
        let wanted: Vec<&str> = [
            ("listeners.tcp_tls", &listeners.tcp_tls),
            ("listeners.websocket_tls", &listeners.websocket_tls),
        ]
        .into_iter()
        .filter(|(_, addr)| !addr.is_empty())
        .map(|(name, _)| name)
        .collect();
        if !wanted.is_empty() {
            if !config.tls.is_configured() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is set, but [tls] has no cert and key: set tls.cert and tls.key to PEM files",
                        wanted.join(" and ")
                    ),
                ));
            }
            let server = tls::server_config(&config.tls)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            state.tls.store(Some(server));
        }
        Ok(state)
    }

    /// Reads the certificate, key and client CA files again and makes new
    /// TLS connections use them. Open connections keep the configuration
    /// they started with. On error (a missing or unparsable file, a key
    /// that does not match) the current configuration stays in force.
    /// Without a TLS listener there is nothing to reload: `Ok` (listeners
    /// change only at a restart).
    pub(crate) fn reload_tls(&self, tls: &crate::config::TlsConfig) -> Result<(), String> {
        if self.tls.load().is_none() {
            return Ok(());
        }
        let server = tls::server_config(tls)?;
        self.tls.store(Some(server));
        tracing::info!(cert = %tls.cert, "TLS configuration reloaded");
        Ok(())
    }

    /// How the WebSocket listeners answer HTTP requests.
    pub(crate) fn http_policy(&self) -> &http::Policy {
        &self.http_policy
    }

    /// The TLS configuration for a connection accepted now.
    pub(crate) fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.load_full()
    }

    /// Counts a new connection from `ip`; `None` if that address already
    /// has `limits.max_connections_per_ip` open. The count drops when the
    /// guard does.
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<IpGuard> {
        PerIp::admit(&self.per_ip, ip)
    }

    /// Open connections counted for `ip`.
    #[cfg(test)]
    pub(crate) fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_ip
            .lock()
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    /// Records where the STOMP-over-TLS listener is bound.
    pub(crate) fn set_tcp_tls_addr(&self, addr: SocketAddr) {
        let _ = self.tcp_tls_addr.set(addr);
    }

    /// Records where the secure WebSocket listener is bound.
    pub(crate) fn set_websocket_tls_addr(&self, addr: SocketAddr) {
        let _ = self.websocket_tls_addr.set(addr);
    }

    /// The bound STOMP-over-TLS address, if that listener is on.
    pub(crate) fn tcp_tls_addr(&self) -> Option<SocketAddr> {
        self.tcp_tls_addr.get().copied()
    }

    /// The bound secure WebSocket address, if that listener is on.
    pub(crate) fn websocket_tls_addr(&self) -> Option<SocketAddr> {
        self.websocket_tls_addr.get().copied()
    }
}

/// Open connections per client address, bounded by `limit` (0 = no limit).
#[derive(Debug, Default)]
struct PerIp {
    limit: usize,
    /// Addresses with at least one open connection; entries at zero are
    /// removed.
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map stays consistent even if a holder panicked.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(this: &Arc<PerIp>, ip: IpAddr) -> Option<IpGuard> {
        if this.limit == 0 {
            return Some(IpGuard { counted: None });
        }
        // An IPv4 client reaching an IPv6 socket is still that IPv4 address.
        let ip = ip.to_canonical();
        let mut counts = this.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= this.limit {
            return None;
        }
        *count += 1;
        Some(IpGuard {
            counted: Some((Arc::clone(this), ip)),
        })
    }
}

/// One counted connection from an address; dropping it uncounts it.
#[derive(Debug)]
pub(crate) struct IpGuard {
    counted: Option<(Arc<PerIp>, IpAddr)>,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        if let Some((table, ip)) = self.counted.take() {
            let mut counts = table.lock();
            if let Some(count) = counts.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// Encoded frames waiting to be written, with the end offset of each frame
/// (WebSocket sends one frame per message).
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    /// The encoded bytes.
    pub bytes: BytesMut,
    /// End offsets of complete frames (heart-beats count as frames).
    pub frame_ends: Vec<usize>,
}

impl OutBuf {
    /// Marks the bytes written so far as one complete frame.
    pub(crate) fn end_frame(&mut self) {
        self.frame_ends.push(self.bytes.len());
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Forgets everything (after a write).
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.frame_ends.clear();
    }
}

/// A connection as the session sees it.
pub(crate) trait Transport: Send + 'static {
    /// Appends received bytes to `buf`; `Ok(0)` means the peer closed.
    /// Cancel-safe: nothing is lost if the future is dropped.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;

    /// Writes every frame in `out` and flushes; `out` is cleared.
    fn write(&mut self, out: &mut OutBuf) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the connection politely (TCP FIN, WebSocket close frame).
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// A short name for logs (`tcp`, `ws`, `tls`, `wss`).
    fn kind(&self) -> &'static str;

    /// The user name a verified TLS client certificate carries, if any.
    fn tls_identity(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::NetState;
    use crate::config::Config;
    use std::net::IpAddr;

    #[test]
    fn per_ip_limit_counts_and_releases() {
        let mut config = Config::default();
        config.limits.max_connections_per_ip = 2;
        let net = NetState::from_config(&config).unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = net.admit(a).unwrap();
        // The same IPv4 address seen through an IPv6 socket.
        let second = net.admit("::ffff:10.0.0.1".parse().unwrap()).unwrap();
        assert!(net.admit(a).is_none());
        let other = net.admit(b).unwrap();
        assert_eq!(net.connections_from(a), 2);
        drop(first);
        assert_eq!(net.connections_from(a), 1);
        let third = net.admit(a).unwrap();
        drop((second, third, other));
        assert_eq!(net.connections_from(a), 0);
        assert!(net.per_ip.lock().is_empty(), "entries at zero are removed");
    }

    #[test]
    fn no_per_ip_limit_counts_nothing() {
        let net = NetState::from_config(&Config::default()).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let guards: Vec<_> = (0..100).map(|_| net.admit(ip).unwrap()).collect();
        assert_eq!(net.connections_from(ip), 0);
        drop(guards);
    }

    #[test]
    fn tls_listener_without_certificate_is_refused() {
        let mut config = Config::default();
        config.listeners.tcp_tls = "127.0.0.1:0".into();
        let e = NetState::from_config(&config).unwrap_err();
        assert!(e.to_string().contains("listeners.tcp_tls"), "{e}");
        assert!(e.to_string().contains("tls.cert"), "{e}");
    }
}
