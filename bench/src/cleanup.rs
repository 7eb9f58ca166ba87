//! What to clean up if the run is interrupted: the processes this tool
//! started (brokers, cluster nodes, the Kafka server) and their scratch
//! directories. Normal exits clean up through `Drop`; on Ctrl-C or SIGTERM
//! [`install_signal_handler`]'s thread stops every registered process by
//! its id (SIGTERM, then SIGKILL after a grace period), removes the
//! registered directories and exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Process ids of running children.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Scratch directories to remove.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Set once the run is being interrupted: children started from then on
/// are killed at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long interrupted children get to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(3);

/// Whether the run is being interrupted (start nothing new).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Acquire)
}

/// Remembers a child process to stop if the run is interrupted.
pub fn register_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
    if INTERRUPTED.load(Ordering::Acquire) {
        signal(pid, "-KILL");
    }
}

/// Forgets a child process (it has exited and was waited for).
pub fn unregister_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|&p| p != pid);
    }
}

/// Remembers a directory to remove if the run is interrupted.
pub fn register_dir(path: &Path) {
    if let Ok(mut d) = DIRS.lock() {
        d.push(path.to_owned());
    }
}

/// Forgets a directory (it was removed).
pub fn unregister_dir(path: &Path) {
    if let Ok(mut d) = DIRS.lock() {
        d.retain(|p| p != path);
    }
}

/// Starts a thread that, on SIGINT or SIGTERM, stops the registered
/// children, removes the registered directories and exits the process
/// (status 130). Call once, before starting any child.
pub fn install_signal_handler() {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let signal = rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate()).ok()?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r.ok().map(|()| "SIGINT"),
                    r = term.recv() => r.map(|()| "SIGTERM"),
                }
            });
            if let Some(name) = signal {
                eprintln!("stompede-bench: {name}: stopping the processes it started");
                clean_up_now();
                std::process::exit(130);
            }
        });
    if let Err(e) = spawned {
        eprintln!("warning: no signal handler ({e}): an interrupted run may leave processes");
    }
}

/// Stops every registered child and removes every registered directory.
pub fn clean_up_now() {
    INTERRUPTED.store(true, Ordering::Release);
    let pids: Vec<u32> = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for &pid in &pids {
        signal(pid, "-TERM");
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && pids.iter().any(|&p| running(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Including any started meanwhile by the main thread.
    let pids: Vec<u32> = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for &pid in pids.iter().filter(|&&p| running(p)) {
        signal(pid, "-KILL");
    }
    let dirs: Vec<PathBuf> = DIRS.lock().map(|d| d.clone()).unwrap_or_default();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Sends `sig` (`-TERM`, `-KILL`) to `pid`.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

/// Whether `pid` is still running (not gone, not a zombie).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_liveness() {
        register_child(u32::MAX - 1);
        unregister_child(u32::MAX - 1);
        assert!(CHILDREN
            .lock()
            .map(|c| !c.contains(&(u32::MAX - 1)))
            .unwrap_or(false));
        assert!(running(std::process::id()));
        assert!(!running(u32::MAX - 1));
    }
}
