//! # stompede-conformance
//!
//! A STOMP 1.0/1.1/1.2 conformance suite that runs against any broker
//! reachable at a `tcp://host:port` or `ws://host:port/path` URL.
//!
//! Every case writes raw STOMP bytes by hand and reads the server's frames
//! with `stompede-codec`, so what is checked is the wire. Each case uses
//! destinations with a random suffix, so cases can run against a shared
//! broker without interfering with each other or with other traffic.
//!
//! ```no_run
//! # async fn demo() {
//! use stompede_conformance::{run, SuiteConfig};
//!
//! let config = SuiteConfig {
//!     url: "tcp://127.0.0.1:61613".into(),
//!     ..SuiteConfig::default()
//! };
//! let report = run(&config).await;
//! assert!(report.is_success(), "{}", report.summary());
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

mod cases;
pub mod client;

pub use cases::{case_list, CaseInfo, CaseKind};

/// How to reach the broker and which cases to run.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// `tcp://host:port` or `ws://host:port/path`.
    pub url: String,
    /// `login` header sent in every CONNECT, if any.
    pub login: Option<String>,
    /// `passcode` header sent in every CONNECT, if any.
    pub passcode: Option<String>,
    /// `host` header sent in every CONNECT; defaults to the URL's host.
    /// (RabbitMQ reads it as a virtual host name: use `/` there.)
    pub host: Option<String>,
    /// Only run cases whose name contains this substring.
    pub filter: Option<String>,
    /// How long any single expected frame, close or write may take.
    pub timeout: Duration,
    /// How long the suite listens to conclude that a frame does *not* come.
    pub quiet: Duration,
    /// Run slow cases (e.g. waiting for the server to drop a client that
    /// stopped heart-beating; when false they are reported as skipped) and
    /// let the client keep-alive case outlast the server's grace period.
    pub slow: bool,
    /// Run cases for behaviour the specification leaves to the broker
    /// (marked `ext/`). When false they are reported as skipped.
    pub extensions: bool,
    /// Prefix of publish/subscribe destinations (default `/topic/`).
    pub topic_prefix: String,
    /// Prefix of point-to-point destinations (default `/queue/`).
    pub queue_prefix: String,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            url: "tcp://127.0.0.1:61613".into(),
            login: None,
            passcode: None,
            host: None,
            filter: None,
            timeout: Duration::from_secs(2),
            quiet: Duration::from_millis(500),
            slow: false,
            extensions: true,
            topic_prefix: "/topic/".into(),
            queue_prefix: "/queue/".into(),
        }
    }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The broker behaved as required.
    Pass,
    /// The broker did not; the string says what went wrong.
    Fail(String),
    /// The case was not run; the string says why.
    Skip(String),
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name, `section/case`.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
}

impl CaseResult {
    /// One line for a human: `ok name`, `FAIL name: reason` or
    /// `skip name: reason`.
    pub fn line(&self) -> String {
        let ms = self.duration.as_millis();
        match &self.outcome {
            Outcome::Pass => format!("ok   {} ({ms} ms)", self.name),
            Outcome::Fail(reason) => format!("FAIL {} ({ms} ms): {reason}", self.name),
            Outcome::Skip(reason) => format!("skip {}: {reason}", self.name),
        }
    }
}

/// The results of a suite run, in case order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per selected case.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// Number of cases that passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }

    /// Number of cases that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }

    /// Number of cases that were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }

    fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| pred(&r.outcome)).count()
    }

    /// Whether no case failed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }

    /// The failed cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
    }

    /// The result of the case called `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// A case chose not to run; the runner reports it as [`Outcome::Skip`].
#[derive(Debug)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// Runs every selected case against `config.url`, one after the other.
pub async fn run(config: &SuiteConfig) -> Report {
    run_with(config, |_| {}).await
}

/// Like [`run`], calling `on_result` as soon as each case ends (the CLI
/// prints from there).
pub async fn run_with(config: &SuiteConfig, mut on_result: impl FnMut(&CaseResult)) -> Report {
    let mut report = Report::default();
    let endpoint = match client::Endpoint::parse(&config.url) {
        Ok(endpoint) => Arc::new(endpoint),
        Err(e) => {
            let result = CaseResult {
                name: "setup/url".into(),
                outcome: Outcome::Fail(format!("{e:#}")),
                duration: Duration::ZERO,
            };
            on_result(&result);
            report.results.push(result);
            return report;
        }
    };
    let shared = Arc::new(config.clone());
    for case in cases::all() {
        if let Some(filter) = &config.filter {
            if !case.info.name.contains(filter.as_str()) {
                continue;
            }
        }
        let started = Instant::now();
        let outcome = match case.info.kind {
            CaseKind::Slow if !config.slow => {
                Outcome::Skip("slow case: run with --slow to include it".into())
            }
            CaseKind::Extension if !config.extensions => Outcome::Skip(
                "broker-specific behaviour the spec leaves open (extensions disabled)".into(),
            ),
            _ => {
                let ctx = cases::Ctx::new(shared.clone(), endpoint.clone());
                let limit = case_time_limit(config, case.info.kind);
                match tokio::time::timeout(limit, (case.run)(ctx)).await {
                    Err(_) => Outcome::Fail(format!(
                        "the case did not finish within {} ms",
                        limit.as_millis()
                    )),
                    Ok(Ok(())) => Outcome::Pass,
                    Ok(Err(e)) => match e.downcast_ref::<Skip>() {
                        Some(skip) => Outcome::Skip(skip.0.clone()),
                        None => Outcome::Fail(format!("{e:#}")),
                    },
                }
            }
        };
        let result = CaseResult {
            name: case.info.name.to_owned(),
            outcome,
            duration: started.elapsed(),
        };
        on_result(&result);
        report.results.push(result);
    }
    report
}

fn case_time_limit(config: &SuiteConfig, kind: CaseKind) -> Duration {
    let base = config.timeout * 12 + config.quiet * 6 + Duration::from_secs(5);
    // --slow also stretches some core cases (the client keep-alive one).
    if config.slow || kind == CaseKind::Slow {
        base + Duration::from_secs(120)
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_and_sectioned() {
        let cases = case_list();
        assert!(cases.len() > 50);
        let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len(), "duplicate case names");
        for case in &cases {
            assert!(case.name.contains('/'), "{} has no section", case.name);
            assert_eq!(
                case.name.starts_with("ext/"),
                case.kind == CaseKind::Extension,
                "{}: ext/ prefix and Extension kind go together",
                case.name
            );
        }
    }

    #[test]
    fn summary_line() {
        let mk = |outcome| CaseResult {
            name: "a/b".into(),
            outcome,
            duration: Duration::ZERO,
        };
        let report = Report {
            results: vec![
                mk(Outcome::Pass),
                mk(Outcome::Fail("x".into())),
                mk(Outcome::Skip("y".into())),
                mk(Outcome::Pass),
            ],
        };
        assert_eq!(report.summary(), "2 passed, 1 failed, 1 skipped");
        assert!(!report.is_success());
        assert_eq!(report.failures().count(), 1);
    }

    #[tokio::test]
    async fn bad_url_is_one_failure() {
        let config = SuiteConfig {
            url: "http://nope".into(),
            ..SuiteConfig::default()
        };
        let report = run(&config).await;
        assert_eq!(report.failed(), 1);
        assert_eq!(report.results[0].name, "setup/url");
    }

    #[tokio::test]
    async fn unreachable_broker_fails_fast_and_skips_what_it_should() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let config = SuiteConfig {
            url: format!("tcp://127.0.0.1:{port}"),
            filter: Some("heart-beat/".into()),
            timeout: Duration::from_millis(300),
            ..SuiteConfig::default()
        };
        let report = run(&config).await;
        assert_eq!(report.results.len(), 4);
        assert_eq!(report.skipped(), 1, "the slow case is skipped by default");
        assert_eq!(report.failed(), 3);
        assert!(report
            .get("heart-beat/silent-client-dropped")
            .is_some_and(|r| matches!(r.outcome, Outcome::Skip(_))));
    }
}
