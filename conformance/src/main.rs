//! `stompede-conformance`: runs the STOMP conformance suite against a
//! broker URL and prints one line per case, then `N passed, N failed, N
//! skipped`. Exits non-zero if any case failed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use stompede_conformance::{case_list, run_with, SuiteConfig};

/// Run the STOMP 1.0/1.1/1.2 conformance suite against a broker.
#[derive(Debug, Parser)]
#[command(name = "stompede-conformance", version)]
struct Args {
    /// Broker URL: tcp://host:port or ws://host:port/path.
    #[arg(long, default_value = "tcp://127.0.0.1:61613", env = "STOMP_URL")]
    url: String,
    /// `login` header for CONNECT.
    #[arg(long)]
    login: Option<String>,
    /// `passcode` header for CONNECT.
    #[arg(long)]
    passcode: Option<String>,
    /// `host` header for CONNECT (default: the URL's host; RabbitMQ wants a
    /// virtual host such as `/`).
    #[arg(long)]
    host: Option<String>,
    /// Only run cases whose name contains this substring.
    #[arg(long)]
    filter: Option<String>,
    /// Timeout of each expected frame, close or write, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// How long to listen before concluding that a frame does not come, in
    /// milliseconds.
    #[arg(long, default_value_t = 500)]
    quiet_ms: u64,
    /// Also run slow cases (e.g. the server dropping a silent client).
    #[arg(long)]
    slow: bool,
    /// Skip the `ext/` cases (behaviour the spec leaves to the broker).
    #[arg(long)]
    no_extensions: bool,
    /// Prefix of topic destinations.
    #[arg(long, default_value = "/topic/")]
    topic_prefix: String,
    /// Prefix of queue destinations.
    #[arg(long, default_value = "/queue/")]
    queue_prefix: String,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for case in case_list() {
            println!("{:<45} {}", case.name, case.summary);
        }
        return ExitCode::SUCCESS;
    }
    let config = SuiteConfig {
        url: args.url,
        login: args.login,
        passcode: args.passcode,
        host: args.host,
        filter: args.filter,
        timeout: Duration::from_millis(args.timeout_ms),
        quiet: Duration::from_millis(args.quiet_ms),
        slow: args.slow,
        extensions: !args.no_extensions,
        topic_prefix: args.topic_prefix,
        queue_prefix: args.queue_prefix,
    };
    println!("STOMP conformance suite against {}", config.url);
    let report = run_with(&config, |result| println!("{}", result.line())).await;
    println!("{}", report.summary());
    if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
