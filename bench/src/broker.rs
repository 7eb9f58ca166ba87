//! Starting and stopping a `stompede` broker for a benchmark run.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A broker process this tool started.
pub struct ManagedBroker {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// `tcp://127.0.0.1:PORT`.
    pub tcp_url: String,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws_url: String,
    /// `127.0.0.1:PORT` of the admin HTTP listener, if it has one.
    pub admin_addr: Option<String>,
    /// Where its stderr goes.
    pub log_path: PathBuf,
    /// Length of the log before this process started: its lines follow.
    log_start: u64,
    /// Just before the process was spawned.
    pub spawned_at: Instant,
    /// From spawning until the TCP port first accepted a connection.
    pub tcp_ready_after: Duration,
    /// From spawning until [`BrokerOpts::log_marker`] appeared in its log.
    pub marker_after: Option<Duration>,
    /// Removed when the broker is dropped (its data directory).
    scratch: Option<ScratchDir>,
}

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerOpts {
    /// An on-disk store in this directory (`--data-dir`); `None` starts
    /// the broker with `--memory-store`.
    pub data_dir: Option<PathBuf>,
    /// A configuration file (`--config`).
    pub config: Option<PathBuf>,
    /// `--log-level`.
    pub log_level: String,
    /// How long to wait for the listeners.
    pub start_timeout: Duration,
    /// Text to watch for in the log while waiting (timed).
    pub log_marker: Option<String>,
    /// Open the admin HTTP listener on a free port too, and wait until its
    /// `GET /readyz` answers 200 (a cluster node: Kafka reachable, topics
    /// present).
    pub admin: bool,
    /// Names the log file: `$TMPDIR/stompede-bench-<tag>-<run>.log`.
    pub log_tag: String,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        BrokerOpts {
            data_dir: None,
            config: None,
            log_level: "warn".into(),
            start_timeout: Duration::from_secs(15),
            log_marker: None,
            admin: false,
            log_tag: "broker".into(),
        }
    }
}

/// A temporary directory, removed (with its contents) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `$TMPDIR/stompede-bench-<what>-<run_id>-<n>`.
    pub fn new(what: &str, run_id: &str) -> Result<ScratchDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("stompede-bench-{what}-{run_id}-{n}"));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("remove the old {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        crate::cleanup::register_dir(&path);
        Ok(ScratchDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to a file in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let file = self.path.join(name);
        std::fs::write(&file, text).with_context(|| format!("write {}", file.display()))?;
        Ok(file)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        crate::cleanup::unregister_dir(&self.path);
    }
}

/// Bytes of the files under `dir` (recursively).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The `[store]` section for a started broker with an on-disk store.
pub fn store_config(fsync: &str, fsync_interval_ms: Option<u64>) -> String {
    let mut text = format!("[store]\nfsync = \"{fsync}\"\n");
    if let Some(ms) = fsync_interval_ms {
        text.push_str(&format!("fsync_interval_ms = {ms}\n"));
    }
    text
}

/// Raises this process's open-file limit to the hard limit (children, such
/// as a started broker, inherit it). Returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            let want = hard.min(1 << 20);
            match rlimit::setrlimit(rlimit::Resource::NOFILE, want, hard) {
                Ok(()) => want,
                Err(_) => soft,
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl ManagedBroker {
    /// Starts `binary --tcp-listen 127.0.0.1:P1 --ws-listen 127.0.0.1:P2
    /// --log-level warn --memory-store` and waits until both ports accept
    /// connections.
    pub fn start(binary: &Path, run_id: &str) -> Result<Self> {
        Self::start_with(binary, run_id, &BrokerOpts::default())
    }

    /// Starts a broker on a fresh temporary data directory (removed when
    /// the broker is dropped), with `config_text` (if not empty) as its
    /// configuration file.
    pub fn start_on_disk(binary: &Path, run_id: &str, config_text: &str) -> Result<Self> {
        let scratch = ScratchDir::new("data", run_id)?;
        let opts = BrokerOpts {
            data_dir: Some(scratch.path().join("store")),
            config: if config_text.is_empty() {
                None
            } else {
                Some(scratch.write("stompede.toml", config_text)?)
            },
            ..BrokerOpts::default()
        };
        let mut b = Self::start_with(binary, run_id, &opts)?;
        b.scratch = Some(scratch);
        Ok(b)
    }

    /// Starts `binary` on two free ports (three with the admin listener) as
    /// `opts` says and waits until both ports accept connections (the TCP
    /// port first, timed) and, with the admin listener, until `/readyz`
    /// answers 200.
    pub fn start_with(binary: &Path, run_id: &str, opts: &BrokerOpts) -> Result<Self> {
        if crate::cleanup::interrupted() {
            bail!("interrupted");
        }
        let (tcp_port, ws_port) = (free_port()?, free_port()?);
        let admin_port = if opts.admin { Some(free_port()?) } else { None };
        if tcp_port == ws_port || admin_port.is_some_and(|p| p == tcp_port || p == ws_port) {
            bail!("got the same free port twice; try again");
        }
        let admin_addr = admin_port.map(|p| format!("127.0.0.1:{p}"));
        let log_path =
            std::env::temp_dir().join(format!("stompede-bench-{}-{run_id}.log", opts.log_tag));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err = log.try_clone()?;
        let tcp_addr = format!("127.0.0.1:{tcp_port}");
        let ws_addr = format!("127.0.0.1:{ws_port}");
        let mut cmd = Command::new(binary);
        // The store and the log format are ours to choose, not the
        // environment's.
        for var in [
            "STOMPEDE_CONFIG",
            "STOMPEDE_DATA_DIR",
            "STOMPEDE_MEMORY_STORE",
            "STOMPEDE_LOG_FORMAT",
            "STOMPEDE_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.arg("--tcp-listen")
            .arg(&tcp_addr)
            .arg("--ws-listen")
            .arg(&ws_addr)
            .arg("--admin-listen")
            .arg(admin_addr.as_deref().unwrap_or(""))
            .arg("--log-level")
            .arg(&opts.log_level);
        match &opts.data_dir {
            Some(dir) => cmd.arg("--data-dir").arg(dir),
            None => cmd.arg("--memory-store"),
        };
        if let Some(config) = &opts.config {
            cmd.arg("--config").arg(config);
        }
        let spawned_at = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start broker {}", binary.display()))?;
        crate::cleanup::register_child(child.id());
        let mut broker = ManagedBroker {
            pid: child.id(),
            child,
            tcp_url: format!("tcp://{tcp_addr}"),
            ws_url: format!("ws://{ws_addr}/ws"),
            admin_addr,
            log_path,
            log_start,
            spawned_at,
            tcp_ready_after: Duration::ZERO,
            marker_after: None,
            scratch: None,
        };
        let deadline = spawned_at + opts.start_timeout;
        let up = |a: &str| std::net::TcpStream::connect(a).is_ok();
        let mut tcp_up = false;
        loop {
            broker.check_alive()?;
            if let (Some(marker), None) = (&opts.log_marker, broker.marker_after) {
                if broker.own_log().contains(marker.as_str()) {
                    broker.marker_after = Some(spawned_at.elapsed());
                }
            }
            if !tcp_up && up(&tcp_addr) {
                tcp_up = true;
                broker.tcp_ready_after = spawned_at.elapsed();
            }
            if tcp_up && up(&ws_addr) {
                match &broker.admin_addr {
                    None => return Ok(broker),
                    Some(admin) if http_status(admin, "/readyz").ok() == Some(200) => {
                        return Ok(broker)
                    }
                    Some(_) => {}
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "broker did not {} within {:.0} s; log tail:\n{}",
                    match &broker.admin_addr {
                        Some(admin) => format!("become ready (GET http://{admin}/readyz → 200)"),
                        None => format!("listen on {tcp_addr} and {ws_addr}"),
                    },
                    opts.start_timeout.as_secs_f64(),
                    broker.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// What this process has logged so far.
    pub fn own_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            if f.seek(SeekFrom::Start(self.log_start)).is_ok() {
                let _ = f.read_to_string(&mut text);
            }
        }
        text
    }

    /// Fails if the broker has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "broker (pid {}) exited: {status}; log tail:\n{}",
                self.pid,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the broker's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the broker with SIGTERM (SIGKILL after 10 s). Returns whether
    /// it stopped by itself in time.
    pub fn stop(mut self) -> Result<bool> {
        self.terminate()
    }

    /// [`ManagedBroker::stop`] without giving up the handle (the data
    /// directory stays until it is dropped).
    pub fn terminate(&mut self) -> Result<bool> {
        if self.child.try_wait()?.is_some() {
            crate::cleanup::unregister_child(self.pid);
            return Ok(false);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                crate::cleanup::unregister_child(self.pid);
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::cleanup::unregister_child(self.pid);
        Ok(false)
    }
}

impl Drop for ManagedBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        crate::cleanup::unregister_child(self.pid);
    }
}

/// The status code of `GET path` on the HTTP server at `addr` (one
/// request, `Connection: close`, 1 s timeouts).
pub fn http_status(addr: &str, path: &str) -> Result<u16> {
    use std::io::Write;
    let sock: std::net::SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
    let timeout = Duration::from_secs(1);
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    parse_status_line(&head[..got]).ok_or_else(|| anyhow::anyhow!("no HTTP status from {addr}"))
}

/// The code of an `HTTP/1.x NNN ...` status line.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 2"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH_9"), None);
    }
}
