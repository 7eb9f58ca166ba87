//! Starting and stopping Tansu, the Kafka-protocol server the cluster
//! scenarios run against: SQLite storage in a fresh temporary directory,
//! a free loopback port.

use crate::broker::{free_port, ScratchDir};
use crate::cleanup;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Tansu may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A Tansu process this tool started.
pub struct ManagedTansu {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// `127.0.0.1:PORT`: the Kafka bootstrap address.
    pub bootstrap: String,
    /// Where its output goes (kept after the run).
    pub log_path: PathBuf,
    /// Its working directory and storage (removed on drop, after the
    /// process).
    dir: ScratchDir,
}

impl ManagedTansu {
    /// Starts `binary broker` on a free port, from an empty directory (it
    /// reads `./.env`) with `sqlite://tansu.db` storage there, and waits
    /// until the port accepts connections.
    pub fn start(binary: &Path, run_id: &str) -> Result<Self> {
        if !binary.exists() {
            bail!(
                "the Kafka-protocol server is missing at {} (run scripts/install-tansu.sh, or \
                 pass --tansu PATH)",
                binary.display()
            );
        }
        if crate::cleanup::interrupted() {
            bail!("interrupted");
        }
        let dir = ScratchDir::new("tansu", run_id)?;
        let bootstrap = format!("127.0.0.1:{}", free_port()?);
        let url = format!("tcp://{bootstrap}");
        let log_path = std::env::temp_dir().join(format!("stompede-bench-tansu-{run_id}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let child = Command::new(binary)
            .arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            // Relative to the working directory.
            .arg("sqlite://tansu.db")
            .current_dir(dir.path())
            .env_remove("STORAGE_ENGINE")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        cleanup::register_child(child.id());
        let mut tansu = ManagedTansu {
            pid: child.id(),
            child,
            bootstrap,
            log_path,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            tansu.check_alive()?;
            if std::net::TcpStream::connect(&tansu.bootstrap).is_ok() {
                return Ok(tansu);
            }
            if Instant::now() > deadline {
                bail!(
                    "tansu did not listen on {} within {} s; log tail:\n{}",
                    tansu.bootstrap,
                    START_TIMEOUT.as_secs(),
                    tansu.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails if the server has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            cleanup::unregister_child(self.pid);
            bail!(
                "tansu (pid {}) exited: {status}; log tail:\n{}",
                self.pid,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Bytes of its storage directory.
    pub fn storage_bytes(&self) -> u64 {
        crate::broker::dir_bytes(self.dir.path())
    }

    /// Stops the server (SIGKILL: its storage is thrown away anyway).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        cleanup::unregister_child(self.pid);
    }
}

impl Drop for ManagedTansu {
    fn drop(&mut self) {
        // Before `dir` (a field) is removed.
        self.kill();
    }
}
