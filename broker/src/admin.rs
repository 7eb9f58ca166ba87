//! The admin HTTP listener: `/healthz`, `/readyz` and Prometheus
//! `/metrics`. Loopback by default; it carries no credentials yet, so the
//! broker refuses to put it on a non-loopback address.

use crate::broker::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// Accepts admin connections until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, tracker: TaskTracker) {
    loop {
        let stream = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(respond(&shared, &request)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" if shared.shutdown.is_cancelled() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
        }
        // The store is recovered and the listeners are open before this
        // listener starts, so being here means ready.
        "/readyz" => text(StatusCode::OK, "ready\n".into()),
        "/metrics" => {
            let mut response = text(StatusCode::OK, render_metrics(shared));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// The broker's counters in the Prometheus text format.
fn render_metrics(shared: &Shared) -> String {
    let s = &shared.stats;
    let counters: [(&str, &str, u64); 11] = [
        (
            "connections_accepted_total",
            "Connections accepted.",
            s.connections_accepted.get(),
        ),
        (
            "connections_refused_total",
            "Connections refused at max_connections.",
            s.connections_refused.get(),
        ),
        (
            "messages_published_total",
            "SEND frames routed.",
            s.messages_published.get(),
        ),
        (
            "messages_delivered_total",
            "MESSAGE frames written to clients.",
            s.messages_delivered.get(),
        ),
        (
            "messages_redelivered_total",
            "Queue messages put back for redelivery.",
            s.messages_redelivered.get(),
        ),
        (
            "messages_expired_total",
            "Queue messages expired before delivery.",
            s.messages_expired.get(),
        ),
        (
            "messages_dead_lettered_total",
            "Queue messages moved to a dead-letter queue.",
            s.messages_dead_lettered.get(),
        ),
        (
            "queue_overflows_total",
            "Messages refused or dropped by a queue's overflow policy.",
            s.queue_overflows.get(),
        ),
        (
            "slow_consumer_drops_total",
            "Topic messages dropped from slow subscribers.",
            s.slow_consumer_drops.get(),
        ),
        (
            "slow_consumer_disconnects_total",
            "Slow subscribers disconnected.",
            s.slow_consumer_disconnects.get(),
        ),
        (
            "errors_sent_total",
            "ERROR frames sent.",
            s.errors_sent.get(),
        ),
    ];
    let gauges: [(&str, &str, u64); 2] = [
        (
            "connections_open",
            "Connections open now.",
            s.connections_open.get(),
        ),
        (
            "queues",
            "Queues with an actor (in use or holding messages).",
            shared.router.queues.len() as u64,
        ),
    ];
    let mut out = String::with_capacity(2048);
    for (kind, list) in [("counter", &counters[..]), ("gauge", &gauges[..])] {
        for (name, help, value) in list {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP stompede_{name} {help}\n# TYPE stompede_{name} {kind}\nstompede_{name} {value}");
        }
    }
    out
}
