//! Reading another process's memory and CPU use from `/proc`, and finding
//! the process that listens on a TCP port.

use anyhow::{anyhow, bail, Context, Result};
use std::fs;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse_vmrss(&status).ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time of `pid` so far, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_cpu(&stat).ok_or_else(|| anyhow!("cannot parse /proc/{pid}/stat"))
}

fn parse_cpu(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is index 0; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// This process's own CPU time in seconds.
pub fn self_cpu_secs() -> f64 {
    cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// Sets the calling thread's timer slack (how late the kernel may fire its
/// timers to batch wake-ups; 50 µs by default) through
/// `/proc/<tid>/timerslack_ns`. Used by the latency producer's pacing
/// thread.
pub fn set_thread_timer_slack_ns(ns: u64) -> Result<()> {
    let link = fs::read_link("/proc/thread-self").context("read /proc/thread-self")?;
    let tid = link
        .file_name()
        .and_then(|t| t.to_str())
        .ok_or_else(|| anyhow!("unexpected /proc/thread-self link {}", link.display()))?
        .to_owned();
    fs::write(format!("/proc/{tid}/timerslack_ns"), ns.max(1).to_string())
        .with_context(|| format!("write /proc/{tid}/timerslack_ns"))
}

/// The kernel's count of connections dropped because a listen queue was
/// full (`TcpExt: ListenOverflows` in `/proc/net/netstat`, all processes).
pub fn listen_overflows() -> Option<u64> {
    let text = fs::read_to_string("/proc/net/netstat").ok()?;
    netstat_field(&text, "TcpExt:", "ListenOverflows")
}

fn netstat_field(text: &str, section: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(section));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
}

/// Finds the process listening on TCP `port` (any local address), through
/// `/proc/net/tcp{,6}` (socket inode) and `/proc/*/fd` (who holds it).
pub fn pid_listening_on(port: u16) -> Result<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        bail!("no socket listens on port {port}");
    }
    let me = std::process::id();
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").context("read /proc")?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path()) {
                if targets.iter().any(|t| link.as_os_str() == t.as_str()) {
                    return Ok(pid);
                }
            }
        }
    }
    bail!("the socket listening on port {port} belongs to no visible process")
}

/// Inodes of sockets in LISTEN state (`0A`) on `port` in a
/// `/proc/net/tcp`-style table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A")
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        assert_eq!(parse_vmrss("Name:\tx\nVmRSS:\t   1234 kB\n"), Some(1234));
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20";
        assert_eq!(parse_cpu(stat), Some(3.0));
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:F0CD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98765 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:F0CD 0100007F:0001 01 00000000:00000000 00:00000000 00000000     0        0 11111 1\n";
        assert_eq!(listening_inodes(table, 0xF0CD), vec![98765]);
        assert!(listening_inodes(table, 1).is_empty());
    }

    #[test]
    fn netstat() {
        let t = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 0 72\nIpExt: A\nIpExt: 1\n";
        assert_eq!(netstat_field(t, "TcpExt:", "ListenOverflows"), Some(72));
        assert_eq!(netstat_field(t, "TcpExt:", "Nope"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(cpu_secs(me).is_ok());
    }

    #[test]
    fn finds_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Our own process is skipped on purpose, so no pid is found.
        assert!(pid_listening_on(port).is_err());
    }
}
