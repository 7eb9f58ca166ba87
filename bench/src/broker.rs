//! Starting and stopping a `stompede` broker for a benchmark run.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// Where its stderr goes.
    pub log_path: PathBuf,
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
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl ManagedBroker {
    /// Starts `binary --tcp-listen 127.0.0.1:P1 --ws-listen 127.0.0.1:P2
    /// --log-level warn` and waits until both ports accept connections.
    pub fn start(binary: &Path, run_id: &str) -> Result<Self> {
        let (tcp_port, ws_port) = (free_port()?, free_port()?);
        if tcp_port == ws_port {
            bail!("got the same free port twice; try again");
        }
        let log_path = std::env::temp_dir().join(format!("stompede-bench-broker-{run_id}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let err = log.try_clone()?;
        let tcp_addr = format!("127.0.0.1:{tcp_port}");
        let ws_addr = format!("127.0.0.1:{ws_port}");
        let child = Command::new(binary)
            .arg("--tcp-listen")
            .arg(&tcp_addr)
            .arg("--ws-listen")
            .arg(&ws_addr)
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start broker {}", binary.display()))?;
        let mut broker = ManagedBroker {
            pid: child.id(),
            child,
            tcp_url: format!("tcp://{tcp_addr}"),
            ws_url: format!("ws://{ws_addr}/ws"),
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            broker.check_alive()?;
            let up = |a: &str| std::net::TcpStream::connect(a).is_ok();
            if up(&tcp_addr) && up(&ws_addr) {
                return Ok(broker);
            }
            if Instant::now() > deadline {
                let _ = broker.child.kill();
                bail!("broker did not listen on {tcp_addr} and {ws_addr} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
        if self.child.try_wait()?.is_some() {
            return Ok(false);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(false)
    }
}

impl Drop for ManagedBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
