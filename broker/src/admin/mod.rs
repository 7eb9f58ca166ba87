//! The admin HTTP listener. On loopback it is open unless `[admin]
//! require_login` is set; on any other address every request but
//! `/healthz` and `/readyz` needs HTTP basic credentials of a users-file
//! user with the `[admin] role`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | a status page (live rates, destinations, connections) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once serving, 503 while shutting down |
//! | `GET /metrics` | Prometheus text (`docs/metrics.md`) |
//! | `GET /api/connections` | JSON list of connections with counters and rates |
//! | `POST /api/connections/close?id=N` | closes connection N with an ERROR |
//! | `GET /api/destinations` | JSON `{topics, queues}` |
//! | `GET /api/topics` | JSON list of topics and patterns with subscriber counts |
//! | `GET /api/queues` | JSON list of queues with depth, unacked, consumers |
//! | `POST /api/queues/purge?name=/queue/x` | drops the queue's ready messages |
//! | `GET /api/durable-subscriptions` | JSON list of `{queue, topic}` |
//! | `POST /api/durable-subscriptions/delete?queue=/durable/u/n` | removes one |
//! | `GET /api/trace` | JSON list of frame-trace rules |
//! | `POST /api/trace?user=NAME` or `?address=IP` | traces matching sessions, now and later |
//! | `DELETE /api/trace?...` or `POST /api/trace/off?...` | removes that rule |

mod metrics;

use crate::broker::Shared;
use crate::registry::TraceRule;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// The status page: static HTML that polls `/metrics` and the JSON API.
const STATUS_PAGE: &str = include_str!("status.html");

/// Accepts admin connections until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, tracker: TaskTracker) {
    let require_login = shared.config.admin.require_login
        || listener
            .local_addr()
            .map_or(true, |addr| !addr.ip().is_loopback());
    loop {
        let (stream, peer) = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
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
                async move {
                    if require_login
                        && !is_probe(&request)
                        && !authorized(&shared, &request, peer).await
                    {
                        return Ok::<_, Infallible>(unauthorized());
                    }
                    Ok::<_, Infallible>(respond(&shared, &request).await)
                }
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

/// Health probes stay open: orchestrators poll them without credentials.
fn is_probe(request: &Request<Incoming>) -> bool {
    request.method() == Method::GET && matches!(request.uri().path(), "/healthz" | "/readyz")
}

async fn authorized(shared: &Shared, request: &Request<Incoming>, peer: SocketAddr) -> bool {
    let header = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    shared
        .access
        .check_admin(header, Some(peer.ip()), &shared.config.admin.role)
        .await
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::UNAUTHORIZED, "credentials required\n".into());
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"stompede admin\""),
    );
    response
}

async fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => {
            let mut response = text(StatusCode::OK, STATUS_PAGE.to_owned());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/readyz") if shared.shutdown.is_cancelled() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
        }
        // The store is recovered and the listeners are open before this
        // listener starts, so being here means ready.
        (&Method::GET, "/readyz") => match &shared.cluster {
            Some(bridge) if !bridge.gauges().ready => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "kafka unreachable\n".into(),
            ),
            _ => text(StatusCode::OK, "ready\n".into()),
        },
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, metrics::render(shared).await);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (&Method::GET, "/api/connections") => json(&shared.sessions.list()),
        (&Method::POST, "/api/connections/close") => {
            match param("id").and_then(|id| id.parse::<u64>().ok()) {
                Some(id)
                    if shared
                        .sessions
                        .close(id, "connection closed by an administrator") =>
                {
                    json(&serde_json::json!({ "closed": id }))
                }
                Some(id) => text(StatusCode::NOT_FOUND, format!("no connection {id}\n")),
                None => text(StatusCode::BAD_REQUEST, "give ?id=N\n".into()),
            }
        }
        (&Method::GET, "/api/destinations") => json(&serde_json::json!({
            "topics": shared.router.topics.destinations(),
            "queues": shared.router.queues.info().await,
        })),
        (&Method::GET, "/api/topics") => json(&shared.router.topics.destinations()),
        (&Method::GET, "/api/queues") => json(&shared.router.queues.info().await),
        (&Method::POST, "/api/queues/purge") => match param("name") {
            Some(name) => match shared.router.queues.purge(name).await {
                Some(purged) => json(&serde_json::json!({ "queue": name, "purged": purged })),
                None => text(StatusCode::NOT_FOUND, format!("no queue {name}\n")),
            },
            None => text(StatusCode::BAD_REQUEST, "give ?name=/queue/...\n".into()),
        },
        (&Method::GET, "/api/durable-subscriptions") => {
            let list: Vec<_> = shared
                .router
                .durable
                .list()
                .into_iter()
                .map(|(queue, topic)| serde_json::json!({ "queue": queue, "topic": topic }))
                .collect();
            json(&list)
        }
        (&Method::POST, "/api/durable-subscriptions/delete") => match param("queue") {
            Some(queue) => match shared.router.durable.unbind(queue) {
                Ok(()) => json(&serde_json::json!({ "deleted": queue })),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            },
            None => text(StatusCode::BAD_REQUEST, "give ?queue=/durable/...\n".into()),
        },
        (&Method::GET, "/api/trace") => json(&shared.sessions.trace_rules()),
        (&Method::POST, "/api/trace") => match trace_rule(param("user"), param("address")) {
            Ok(rule) => {
                let sessions = shared.sessions.trace_on(rule.clone());
                tracing::info!(?rule, sessions, "frame trace on");
                json(&serde_json::json!({ "tracing": rule, "sessions": sessions }))
            }
            Err(e) => text(StatusCode::BAD_REQUEST, e),
        },
        (&Method::DELETE, "/api/trace") | (&Method::POST, "/api/trace/off") => {
            match trace_rule(param("user"), param("address")) {
                Ok(rule) => match shared.sessions.trace_off(&rule) {
                    Some(sessions) => {
                        tracing::info!(?rule, sessions, "frame trace off");
                        json(&serde_json::json!({ "removed": rule, "sessions": sessions }))
                    }
                    None => text(StatusCode::NOT_FOUND, "no such trace rule\n".into()),
                },
                Err(e) => text(StatusCode::BAD_REQUEST, e),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: see the admin API in README.md (/metrics, /healthz, /readyz, /api/...)\n"
                .into(),
        ),
    }
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_string_pretty(value) {
        Ok(body) => {
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// The trace rule named by `?user=NAME` or `?address=IP` (exactly one);
/// the error is the 400 answer's text.
fn trace_rule(user: Option<&str>, address: Option<&str>) -> Result<TraceRule, String> {
    match (user, address) {
        (Some(user), None) if !user.is_empty() => Ok(TraceRule::User(user.to_owned())),
        (None, Some(address)) => address
            .parse::<std::net::IpAddr>()
            .map(TraceRule::address)
            .map_err(|_| format!("'{address}' is not an IP address\n")),
        _ => Err("give ?user=NAME or ?address=IP\n".into()),
    }
}
