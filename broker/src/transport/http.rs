//! The WebSocket listeners' HTTP/1.1 front (hyper). A `GET` on
//! `listeners.websocket_path` with a valid WebSocket upgrade becomes a STOMP
//! connection; every other request gets a proper HTTP error:
//!
//! | request                                         | answer |
//! |-------------------------------------------------|--------|
//! | another path                                    | a file of `websocket.static_dir` ([`static_file`]), else 404 |
//! | not `GET` on the path                           | 405, `Allow: GET` |
//! | `GET` without `Upgrade: websocket` / `Connection: upgrade` | 426, `Upgrade: websocket` |
//! | `Sec-WebSocket-Version` other than 13           | 426, `Sec-WebSocket-Version: 13` |
//! | no `Sec-WebSocket-Version`, bad key, HTTP/1.0, a body | 400 |
//! | `Origin` not in `websocket.allowed_origins`     | 403 |
//! | no STOMP subprotocol while one is required      | 400 |
//! | request head over [`MAX_REQUEST_HEAD`] bytes    | 431 (hyper) |
//! | the connection is refused (limits)              | 429 or 503, whatever was asked |
//!
//! One request per connection: error responses carry `Connection: close`. After the upgrade the
//! hyper connection is taken apart and the WebSocket runs on the original
//! stream, so an idle WebSocket costs no more than without the HTTP front.

use super::ws::{choose_subprotocol, WsTransport};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// Largest request line plus headers accepted (hyper answers 431 beyond).
pub(crate) const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Most header fields in a request.
const MAX_HEADERS: usize = 64;

/// Bytes the WebSocket layer reads from the socket at a time. Small, so
/// that idle connections stay cheap; busy ones still read many frames per
/// call.
const WS_READ_BUFFER: usize = 4 * 1024;

/// Outbound bytes gathered before a socket write (a flush always writes).
const WS_WRITE_BUFFER: usize = 64 * 1024;

/// What the front needs to know to answer a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// `listeners.websocket_path`.
    pub path: String,
    /// `websocket.require_subprotocol`.
    pub require_subprotocol: bool,
    /// `websocket.allowed_origins`; empty allows any.
    pub allowed_origins: Vec<String>,
    /// `websocket.static_dir`: files served on the other paths.
    pub static_dir: Option<std::path::PathBuf>,
}

/// A status and reason that answers every request of a connection a limit
/// refused.
pub(crate) type Refusal = (StatusCode, &'static str);

impl Policy {
    /// The policy `config` sets.
    pub(crate) fn from_config(config: &crate::config::Config) -> Policy {
        Policy {
            path: config.listeners.websocket_path.clone(),
            require_subprotocol: config.websocket.require_subprotocol,
            allowed_origins: config.websocket.allowed_origins.clone(),
            static_dir: Some(&config.websocket.static_dir)
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
        }
    }
}

/// The WebSocket options of `config` (buffers and message size limits).
pub(crate) fn ws_config(config: &crate::config::Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_message_size(Some(config.websocket.max_message_bytes))
        .max_frame_size(Some(config.websocket.max_message_bytes))
}

/// Serves one HTTP request on `stream`. `Ok(Some(..))` when it was a valid
/// WebSocket upgrade, `Ok(None)` when it got an HTTP answer instead (always
/// so with a `refusal`). The caller bounds the time this takes.
pub(crate) async fn accept<S>(
    config: &crate::config::Config,
    policy: &Policy,
    refusal: Option<Refusal>,
    stream: S,
) -> io::Result<Option<WsTransport<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgrade_slot = Mutex::new(None);
    let upgrade = &upgrade_slot;
    let service = hyper::service::service_fn(|mut request: Request<Incoming>| async move {
        let static_dir = policy.static_dir.as_deref();
        let response = match static_dir {
            Some(dir) if refusal.is_none() && request.uri().path() != policy.path => {
                static_file(dir, &request).await
            }
            _ => answer(policy, refusal, &request),
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let pending = hyper::upgrade::on(&mut request);
            *upgrade
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(pending);
        }
        Ok::<_, Infallible>(response)
    });
    hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
        .map_err(io::Error::other)?;
    let pending = upgrade_slot
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(pending) = pending else {
        return Ok(None);
    };
    let upgraded = pending.await.map_err(io::Error::other)?;
    // Take hyper's wrapping off: the WebSocket reads the socket directly,
    // with its own small buffer, and hyper's buffers are freed.
    let parts = upgraded
        .downcast::<TokioIo<S>>()
        .map_err(|_| io::Error::other("upgraded connection of an unexpected type"))?;
    let stream = parts.io.into_inner();
    let ws_config = Some(ws_config(config));
    let ws = if parts.read_buf.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Server, ws_config).await
    } else {
        // The client did not wait for the 101 before sending frames.
        WebSocketStream::from_partially_read(
            stream,
            parts.read_buf.to_vec(),
            Role::Server,
            ws_config,
        )
        .await
    };
    Ok(Some(WsTransport::new(ws, config.websocket.binary_frames)))
}

/// Requests to paths other than the WebSocket path when no static
/// directory is configured.
pub(crate) fn fallback(_request: &Request<Incoming>) -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "no WebSocket endpoint at this path")
}

/// Largest static file served.
const MAX_STATIC_FILE: u64 = 16 * 1024 * 1024;

/// A file under `dir` for a `GET`/`HEAD` of its path (`/` and paths ending
/// in `/` mean `index.html`). Only plain path segments are accepted: no
/// `..`, no hidden files, no backslashes.
pub(crate) async fn static_file(
    dir: &std::path::Path,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "static files are read-only");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(relative) = static_path(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let path = dir.join(relative);
    let body = match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_STATIC_FILE => tokio::fs::read(&path).await,
        _ => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    let Ok(body) = body else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The relative file path a request path names, if it is a safe one.
fn static_path(request_path: &str) -> Option<std::path::PathBuf> {
    let mut path = std::path::PathBuf::new();
    for segment in request_path.split('/').filter(|s| !s.is_empty()) {
        let plain_segment = !segment.starts_with('.')
            && !segment.contains('\\')
            && !segment.contains('%')
            && !segment.contains('\0');
        if !plain_segment {
            return None;
        }
        path.push(segment);
    }
    if request_path.ends_with('/') {
        path.push("index.html");
    }
    Some(path)
}

/// The `Content-Type` of a static file, by its extension.
fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// The response to `request`: 101 for a valid upgrade, an error otherwise.
fn answer(
    policy: &Policy,
    refusal: Option<Refusal>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some((status, why)) = refusal {
        return plain(status, why);
    }
    if request.uri().path() != policy.path {
        return fallback(request);
    }
    handshake(
        policy,
        request.method(),
        request.version(),
        request.headers(),
    )
}

/// Checks a request to the WebSocket path: a 101 response if it is a valid
/// upgrade, an error response otherwise.
fn handshake(
    policy: &Policy,
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    if method != Method::GET {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the WebSocket endpoint takes GET only",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if version != Version::HTTP_11 {
        return plain(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs HTTP/1.1",
        );
    }
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        let mut r = plain(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint: send Upgrade: websocket and Connection: Upgrade",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    }
    match headers.get(header::SEC_WEBSOCKET_VERSION) {
        None => return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Version"),
        Some(v) if v.as_bytes().trim_ascii() == b"13" => {}
        Some(_) => {
            let mut r = plain(
                StatusCode::UPGRADE_REQUIRED,
                "unsupported WebSocket version: only 13",
            );
            r.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return r;
        }
    }
    let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if valid_key(key.as_bytes()) => key.as_bytes(),
        _ => {
            return plain(
                StatusCode::BAD_REQUEST,
                "missing or malformed Sec-WebSocket-Key",
            )
        }
    };
    if headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return plain(StatusCode::BAD_REQUEST, "a WebSocket upgrade has no body");
    }
    if !origin_allowed(&policy.allowed_origins, headers.get(header::ORIGIN)) {
        return plain(
            StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket here",
        );
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let chosen = choose_subprotocol(offered);
    if chosen.is_none() && policy.require_subprotocol {
        return plain(
            StatusCode::BAD_REQUEST,
            "offer one of the subprotocols v12.stomp, v11.stomp, v10.stomp",
        );
    }
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key)) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot derive the accept key",
        );
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(chosen) = chosen {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(chosen),
        );
    }
    response
}

/// Whether any `name` header holds `token` in its comma-separated list.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A `Sec-WebSocket-Key` is 16 bytes in base64: 22 characters and `==`.
fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Whether `origin` may open a WebSocket: no header (not a browser) and an
/// empty allow-list allow anything; otherwise the origin must be listed
/// (compared without case and without a trailing slash).
fn origin_allowed(allowed: &[String], origin: Option<&HeaderValue>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.is_empty() {
        return true;
    }
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// A small plain-text response, after which the connection closes. (Not
/// hyper's `keep_alive(false)`: that would add `Connection: close` to the
/// 101 as well.)
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            path: "/ws".into(),
            require_subprotocol: false,
            allowed_origins: vec!["https://chat.example.com".into()],
            static_dir: None,
        }
    }

    fn upgrade_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        h
    }

    fn status(headers: &HeaderMap) -> StatusCode {
        handshake(&policy(), &Method::GET, Version::HTTP_11, headers).status()
    }

    #[test]
    fn a_valid_upgrade_gets_the_rfc_accept_key() {
        let mut h = upgrade_headers();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v10.stomp, v12.stomp"),
        );
        let r = handshake(&policy(), &Method::GET, Version::HTTP_11, &h);
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            r.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(r.headers()[header::SEC_WEBSOCKET_PROTOCOL], "v12.stomp");
    }

    #[test]
    fn malformed_upgrades_are_refused() {
        let mut h = upgrade_headers();
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
        assert_eq!(status(&h), StatusCode::BAD_REQUEST);
        let mut h = upgrade_headers();
        h.remove(header::SEC_WEBSOCKET_VERSION);
        assert_eq!(status(&h), StatusCode::BAD_REQUEST);
        let mut h = upgrade_headers();
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(status(&h), StatusCode::UPGRADE_REQUIRED);
        let mut h = upgrade_headers();
        h.remove(header::CONNECTION);
        assert_eq!(status(&h), StatusCode::UPGRADE_REQUIRED);
        let h = upgrade_headers();
        let r = handshake(&policy(), &Method::POST, Version::HTTP_11, &h);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let r = handshake(&policy(), &Method::GET, Version::HTTP_10, &h);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn origins_are_checked_against_the_allow_list() {
        let allowed = vec!["https://chat.example.com/".to_owned()];
        let o = |s: &'static str| HeaderValue::from_static(s);
        assert!(origin_allowed(&allowed, None));
        assert!(origin_allowed(
            &allowed,
            Some(&o("https://Chat.Example.com"))
        ));
        assert!(!origin_allowed(&allowed, Some(&o("https://evil.example"))));
        assert!(!origin_allowed(&allowed, Some(&o("null"))));
        assert!(origin_allowed(&[], Some(&o("https://evil.example"))));
        let mut h = upgrade_headers();
        h.insert(header::ORIGIN, o("https://evil.example"));
        assert_eq!(status(&h), StatusCode::FORBIDDEN);
    }

    #[test]
    fn only_plain_paths_name_static_files() {
        assert_eq!(
            static_path("/"),
            Some(std::path::PathBuf::from("index.html"))
        );
        assert_eq!(
            static_path("/chat/"),
            Some(std::path::PathBuf::from("chat/index.html"))
        );
        assert_eq!(
            static_path("/app.js"),
            Some(std::path::PathBuf::from("app.js"))
        );
        assert_eq!(static_path("/../etc/passwd"), None);
        assert_eq!(static_path("/.git/config"), None);
        assert_eq!(static_path("/a%2f..%2fb"), None);
        assert_eq!(static_path("/a\\b"), None);
    }
}
