//! A real Kafka-protocol server for the cluster tests: Tansu 0.6.0 with its
//! SQLite storage engine, on a free loopback port, from an empty directory.
//! Installed by `scripts/install-tansu.sh`; a test that cannot start it
//! fails (it is never skipped).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped, to be restarted) Tansu server.
pub struct Tansu {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// The Tansu binary: `$TANSU_BIN`, else the install script's cached root.
fn binary() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var("STOMPEDE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/stompede")
        });
    cache.join("tansu/bin/tansu")
}

impl Tansu {
    /// Starts a fresh server (empty storage) on a free loopback port.
    pub async fn start() -> Tansu {
        let bin = binary();
        assert!(
            bin.exists(),
            "the Kafka-protocol test server is missing at {}: run scripts/install-tansu.sh",
            bin.display()
        );
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("stompede-tansu-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tansu dir");
        let mut tansu = Tansu {
            child: None,
            addr: format!("127.0.0.1:{}", super::free_port())
                .parse()
                .expect("addr"),
            dir,
        };
        // A port picked free may be taken by another test's server in the
        // meantime: then try another.
        for _attempt in 0..3 {
            match tansu.run().await {
                Ok(()) => return tansu,
                Err(e) => eprintln!("tansu did not start on {}: {e}", tansu.addr),
            }
            tansu.stop();
            tansu.addr = format!("127.0.0.1:{}", super::free_port())
                .parse()
                .expect("addr");
        }
        panic!("tansu did not start on free ports:\n{}", tansu.log());
    }

    /// `host:port` for `bootstrap_servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    async fn run(&mut self) -> Result<(), String> {
        let url = format!("tcp://{}", self.addr);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("tansu log");
        let child = Command::new(binary())
            .arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            // Relative to the working directory (Tansu joins the path to it).
            .arg("sqlite://tansu.db")
            // Tansu reads ./.env: run it where there is none.
            .current_dir(&self.dir)
            .env_remove("STORAGE_ENGINE")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                // Ours, not another process on the same port: ours would
                // have exited on its failed bind.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if let Some(Ok(None)) = self.child.as_mut().map(|c| c.try_wait()) {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("tansu exited with {status}:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("tansu did not listen within 30 s:\n{}", self.log()))
    }

    /// Stops the server (SIGKILL: as abrupt as a crash); storage is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same storage.
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.run().await {
            panic!("tansu did not restart on {}: {e}", self.addr);
        }
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
