//! Shared helpers and the specification fixtures.
#![allow(dead_code)]

use bytes::BytesMut;
use stompede_codec::{Command, DecodeError, Frame, Item, StompCodec, Version};
use tokio_util::codec::Decoder;

pub use Command::*;

pub const V10: Option<Version> = Some(Version::V1_0);
pub const V11: Option<Version> = Some(Version::V1_1);
pub const V12: Option<Version> = Some(Version::V1_2);
/// Not negotiated yet.
pub const PRE: Option<Version> = None;

/// A frame from a command, header pairs and a body.
pub fn f(command: Command, headers: &[(&str, &str)], body: &[u8]) -> Frame {
    let mut frame = Frame::new(command).body(body.to_vec());
    for (n, v) in headers {
        frame = frame.header(n.to_string(), v.to_string());
    }
    frame
}

pub fn codec(version: Option<Version>) -> StompCodec {
    let mut c = StompCodec::default();
    if let Some(v) = version {
        c.set_version(v);
    }
    c
}

/// A valid fixture: `bytes` decoded under `version` is exactly `frame`.
pub struct Valid {
    pub name: &'static str,
    pub version: Option<Version>,
    pub bytes: &'static [u8],
    pub frame: Frame,
}

/// An invalid fixture: decoding `bytes` under `version` fails with an
/// error accepted by `check`.
pub struct Invalid {
    pub name: &'static str,
    pub version: Option<Version>,
    pub bytes: &'static [u8],
    pub check: fn(&DecodeError) -> bool,
}

fn v(name: &'static str, version: Option<Version>, bytes: &'static [u8], frame: Frame) -> Valid {
    Valid {
        name,
        version,
        bytes,
        frame,
    }
}

fn inv(
    name: &'static str,
    version: Option<Version>,
    bytes: &'static [u8],
    check: fn(&DecodeError) -> bool,
) -> Invalid {
    Invalid {
        name,
        version,
        bytes,
        check,
    }
}

/// Every example frame of the STOMP 1.0, 1.1 and 1.2 specifications
/// (written from the frame definitions), plus edge cases.
pub fn valid() -> Vec<Valid> {
    vec![
        // ---------------- STOMP 1.0 ----------------
        v(
            "1.0 CONNECT login/passcode",
            PRE,
            b"CONNECT\nlogin:guest\npasscode:guest\n\n\0",
            f(Connect, &[("login", "guest"), ("passcode", "guest")], b""),
        ),
        v(
            "1.0 CONNECTED session",
            V10,
            b"CONNECTED\nsession:ID:host-1234-1\n\n\0",
            f(Connected, &[("session", "ID:host-1234-1")], b""),
        ),
        v(
            "1.0 SEND no content-length",
            V10,
            b"SEND\ndestination:/queue/a\n\nhello queue a\0",
            f(Send, &[("destination", "/queue/a")], b"hello queue a"),
        ),
        v(
            "1.0 SEND with receipt and content-length, NUL in body",
            V10,
            b"SEND\ndestination:/queue/a\nreceipt:r-1\ncontent-length:5\n\nab\0cd\0",
            f(
                Send,
                &[
                    ("destination", "/queue/a"),
                    ("receipt", "r-1"),
                    ("content-length", "5"),
                ],
                b"ab\0cd",
            ),
        ),
        v(
            "1.0 SEND in a transaction",
            V10,
            b"SEND\ndestination:/queue/a\ntransaction:tx1\n\nhi\0",
            f(
                Send,
                &[("destination", "/queue/a"), ("transaction", "tx1")],
                b"hi",
            ),
        ),
        v(
            "1.0 SUBSCRIBE ack auto",
            V10,
            b"SUBSCRIBE\ndestination:/queue/foo\nack:auto\n\n\0",
            f(Subscribe, &[("destination", "/queue/foo"), ("ack", "auto")], b""),
        ),
        v(
            "1.0 SUBSCRIBE ack client with id and selector",
            V10,
            b"SUBSCRIBE\ndestination:/queue/foo\nack:client\nid:sub-1\nselector:type = 'x'\n\n\0",
            f(
                Subscribe,
                &[
                    ("destination", "/queue/foo"),
                    ("ack", "client"),
                    ("id", "sub-1"),
                    ("selector", "type = 'x'"),
                ],
                b"",
            ),
        ),
        v(
            "1.0 UNSUBSCRIBE by destination",
            V10,
            b"UNSUBSCRIBE\ndestination:/queue/foo\n\n\0",
            f(Unsubscribe, &[("destination", "/queue/foo")], b""),
        ),
        v(
            "1.0 UNSUBSCRIBE by id",
            V10,
            b"UNSUBSCRIBE\nid:sub-1\n\n\0",
            f(Unsubscribe, &[("id", "sub-1")], b""),
        ),
        v(
            "1.0 BEGIN",
            V10,
            b"BEGIN\ntransaction:tx1\n\n\0",
            f(Begin, &[("transaction", "tx1")], b""),
        ),
        v(
            "1.0 COMMIT",
            V10,
            b"COMMIT\ntransaction:tx1\n\n\0",
            f(Commit, &[("transaction", "tx1")], b""),
        ),
        v(
            "1.0 ABORT",
            V10,
            b"ABORT\ntransaction:tx1\n\n\0",
            f(Abort, &[("transaction", "tx1")], b""),
        ),
        v(
            "1.0 ACK message-id in transaction",
            V10,
            b"ACK\nmessage-id:msg-12345\ntransaction:tx1\n\n\0",
            f(
                Ack,
                &[("message-id", "msg-12345"), ("transaction", "tx1")],
                b"",
            ),
        ),
        v(
            "1.0 DISCONNECT",
            V10,
            b"DISCONNECT\n\n\0",
            f(Disconnect, &[], b""),
        ),
        v(
            "1.0 MESSAGE",
            V10,
            b"MESSAGE\ndestination:/queue/a\nmessage-id:ID:host-1\n\nhello queue a\0",
            f(
                Message,
                &[("destination", "/queue/a"), ("message-id", "ID:host-1")],
                b"hello queue a",
            ),
        ),
        v(
            "1.0 RECEIPT",
            V10,
            b"RECEIPT\nreceipt-id:message-12345\n\n\0",
            f(Receipt, &[("receipt-id", "message-12345")], b""),
        ),
        v(
            "1.0 ERROR with body",
            V10,
            b"ERROR\nmessage:malformed frame received\n\nThe frame lacked a destination.\n\0",
            f(
                Error,
                &[("message", "malformed frame received")],
                b"The frame lacked a destination.\n",
            ),
        ),
        v(
            "1.0 value with colons and backslashes kept verbatim",
            V10,
            b"SEND\ndestination:/queue/a\nx-url:http://h:1/p\\c\\n\n\n\0",
            f(
                Send,
                &[("destination", "/queue/a"), ("x-url", "http://h:1/p\\c\\n")],
                b"",
            ),
        ),
        v(
            "1.0 CR before LF stays in the value",
            V10,
            b"SEND\ndestination:/queue/a\r\n\n\0",
            f(Send, &[("destination", "/queue/a\r")], b""),
        ),
        // ---------------- STOMP 1.1 ----------------
        v(
            "1.1 CONNECT accept-version host",
            PRE,
            b"CONNECT\naccept-version:1.1\nhost:stomp.example.org\n\n\0",
            f(
                Connect,
                &[("accept-version", "1.1"), ("host", "stomp.example.org")],
                b"",
            ),
        ),
        v(
            "1.1 CONNECT with heart-beat and credentials",
            PRE,
            b"CONNECT\naccept-version:1.0,1.1\nhost:vh\nlogin:u\npasscode:p\nheart-beat:5000,10000\n\n\0",
            f(
                Connect,
                &[
                    ("accept-version", "1.0,1.1"),
                    ("host", "vh"),
                    ("login", "u"),
                    ("passcode", "p"),
                    ("heart-beat", "5000,10000"),
                ],
                b"",
            ),
        ),
        v(
            "1.1 STOMP",
            PRE,
            b"STOMP\naccept-version:1.1\nhost:stomp.example.org\n\n\0",
            f(
                Stomp,
                &[("accept-version", "1.1"), ("host", "stomp.example.org")],
                b"",
            ),
        ),
        v(
            "1.1 CONNECTED version heart-beat server session",
            V11,
            b"CONNECTED\nversion:1.1\nheart-beat:0,0\nserver:stompede/0.1\nsession:s-1\n\n\0",
            f(
                Connected,
                &[
                    ("version", "1.1"),
                    ("heart-beat", "0,0"),
                    ("server", "stompede/0.1"),
                    ("session", "s-1"),
                ],
                b"",
            ),
        ),
        v(
            "1.1 CONNECTED headers are not unescaped",
            V11,
            b"CONNECTED\nversion:1.1\nserver:a\\cb\n\n\0",
            f(Connected, &[("version", "1.1"), ("server", "a\\cb")], b""),
        ),
        v(
            "1.1 SEND text/plain with content-length",
            V11,
            b"SEND\ndestination:/queue/a\ncontent-type:text/plain\ncontent-length:13\n\nhello queue a\0",
            f(
                Send,
                &[
                    ("destination", "/queue/a"),
                    ("content-type", "text/plain"),
                    ("content-length", "13"),
                ],
                b"hello queue a",
            ),
        ),
        v(
            "1.1 SUBSCRIBE ack client-individual",
            V11,
            b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client-individual\n\n\0",
            f(
                Subscribe,
                &[
                    ("id", "0"),
                    ("destination", "/queue/foo"),
                    ("ack", "client-individual"),
                ],
                b"",
            ),
        ),
        v(
            "1.1 UNSUBSCRIBE",
            V11,
            b"UNSUBSCRIBE\nid:0\n\n\0",
            f(Unsubscribe, &[("id", "0")], b""),
        ),
        v(
            "1.1 ACK subscription message-id",
            V11,
            b"ACK\nsubscription:0\nmessage-id:007\ntransaction:tx1\n\n\0",
            f(
                Ack,
                &[
                    ("subscription", "0"),
                    ("message-id", "007"),
                    ("transaction", "tx1"),
                ],
                b"",
            ),
        ),
        v(
            "1.1 NACK subscription message-id",
            V11,
            b"NACK\nsubscription:0\nmessage-id:007\n\n\0",
            f(Nack, &[("subscription", "0"), ("message-id", "007")], b""),
        ),
        v(
            "1.1 MESSAGE with subscription",
            V11,
            b"MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
            f(
                Message,
                &[
                    ("subscription", "0"),
                    ("message-id", "007"),
                    ("destination", "/queue/a"),
                    ("content-type", "text/plain"),
                ],
                b"hello queue a",
            ),
        ),
        v(
            "1.1 escaped header name and value",
            V11,
            b"MESSAGE\ndestination:/queue/a\na\\cb\\\\c:x\\ny\\cz\\\\\n\n\0",
            f(
                Message,
                &[("destination", "/queue/a"), ("a:b\\c", "x\ny:z\\")],
                b"",
            ),
        ),
        v(
            "1.1 repeated headers kept in order",
            V11,
            b"MESSAGE\nsubscription:0\nmessage-id:1\ndestination:/queue/a\nfoo:World\nfoo:Hello\n\n\0",
            f(
                Message,
                &[
                    ("subscription", "0"),
                    ("message-id", "1"),
                    ("destination", "/queue/a"),
                    ("foo", "World"),
                    ("foo", "Hello"),
                ],
                b"",
            ),
        ),
        v(
            "1.1 raw colon in value tolerated",
            V11,
            b"SEND\ndestination:/queue/a:b\n\n\0",
            f(Send, &[("destination", "/queue/a:b")], b""),
        ),
        v(
            "1.1 CR before LF stays in the value",
            V11,
            b"SEND\ndestination:/queue/a\r\n\n\0",
            f(Send, &[("destination", "/queue/a\r")], b""),
        ),
        v(
            "1.1 empty header value",
            V11,
            b"SEND\ndestination:/q\nx-empty:\n\n\0",
            f(Send, &[("destination", "/q"), ("x-empty", "")], b""),
        ),
        v(
            "1.1 ERROR with body and content-length",
            V11,
            b"ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:41\nmessage:malformed frame received\n\nThe frame:\n-----\nSEND\n\nhi\n-----\nNo dest.\n\0",
            f(
                Error,
                &[
                    ("receipt-id", "message-12345"),
                    ("content-type", "text/plain"),
                    ("content-length", "41"),
                    ("message", "malformed frame received"),
                ],
                b"The frame:\n-----\nSEND\n\nhi\n-----\nNo dest.\n",
            ),
        ),
        v(
            "1.1 DISCONNECT with receipt",
            V11,
            b"DISCONNECT\nreceipt:77\n\n\0",
            f(Disconnect, &[("receipt", "77")], b""),
        ),
        v(
            "1.1 RECEIPT",
            V11,
            b"RECEIPT\nreceipt-id:77\n\n\0",
            f(Receipt, &[("receipt-id", "77")], b""),
        ),
        v(
            "1.1 BEGIN/COMMIT/ABORT",
            V11,
            b"BEGIN\ntransaction:tx2\n\n\0",
            f(Begin, &[("transaction", "tx2")], b""),
        ),
        // ---------------- STOMP 1.2 ----------------
        v(
            "1.2 CONNECT accept-version list",
            PRE,
            b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:stomp.example.org\nheart-beat:0,1000\n\n\0",
            f(
                Connect,
                &[
                    ("accept-version", "1.0,1.1,1.2"),
                    ("host", "stomp.example.org"),
                    ("heart-beat", "0,1000"),
                ],
                b"",
            ),
        ),
        v(
            "1.2 STOMP with CRLF before negotiation",
            PRE,
            b"STOMP\r\naccept-version:1.2\r\nhost:vh\r\n\r\n\0",
            f(Stomp, &[("accept-version", "1.2"), ("host", "vh")], b""),
        ),
        v(
            "1.2 CONNECT headers never unescaped",
            PRE,
            b"CONNECT\naccept-version:1.2\nhost:vh\npasscode:a\\tb\\\n\n\0",
            f(
                Connect,
                &[("accept-version", "1.2"), ("host", "vh"), ("passcode", "a\\tb\\")],
                b"",
            ),
        ),
        v(
            "1.2 CONNECTED",
            V12,
            b"CONNECTED\nversion:1.2\nheart-beat:1000,0\nsession:s\nserver:stompede/0.1\n\n\0",
            f(
                Connected,
                &[
                    ("version", "1.2"),
                    ("heart-beat", "1000,0"),
                    ("session", "s"),
                    ("server", "stompede/0.1"),
                ],
                b"",
            ),
        ),
        v(
            "1.2 SEND with CRLF line ends",
            V12,
            b"SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhello queue a\0",
            f(
                Send,
                &[("destination", "/queue/a"), ("content-type", "text/plain")],
                b"hello queue a",
            ),
        ),
        v(
            "1.2 mixed LF and CRLF",
            V12,
            b"SEND\r\ndestination:/queue/a\nreceipt:1\r\n\n\0",
            f(Send, &[("destination", "/queue/a"), ("receipt", "1")], b""),
        ),
        v(
            "1.2 SEND binary body with content-length",
            V12,
            b"SEND\ndestination:/queue/a\ncontent-type:application/octet-stream\ncontent-length:4\n\n\0\x01\xff\0\0",
            f(
                Send,
                &[
                    ("destination", "/queue/a"),
                    ("content-type", "application/octet-stream"),
                    ("content-length", "4"),
                ],
                b"\0\x01\xff\0",
            ),
        ),
        v(
            "1.2 SEND content-length 0",
            V12,
            b"SEND\ndestination:/q\ncontent-length:0\n\n\0",
            f(Send, &[("destination", "/q"), ("content-length", "0")], b""),
        ),
        v(
            "1.2 first content-length wins",
            V12,
            b"SEND\ndestination:/q\ncontent-length:2\ncontent-length:9\n\nab\0",
            f(
                Send,
                &[
                    ("destination", "/q"),
                    ("content-length", "2"),
                    ("content-length", "9"),
                ],
                b"ab",
            ),
        ),
        v(
            "1.2 SUBSCRIBE ack client",
            V12,
            b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0",
            f(
                Subscribe,
                &[("id", "0"), ("destination", "/queue/foo"), ("ack", "client")],
                b"",
            ),
        ),
        v(
            "1.2 MESSAGE with ack header",
            V12,
            b"MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\nack:a-007\ncontent-type:text/plain\n\nhello queue a\0",
            f(
                Message,
                &[
                    ("subscription", "0"),
                    ("message-id", "007"),
                    ("destination", "/queue/a"),
                    ("ack", "a-007"),
                    ("content-type", "text/plain"),
                ],
                b"hello queue a",
            ),
        ),
        v(
            "1.2 ACK id transaction",
            V12,
            b"ACK\nid:12345\ntransaction:tx1\n\n\0",
            f(Ack, &[("id", "12345"), ("transaction", "tx1")], b""),
        ),
        v(
            "1.2 NACK id",
            V12,
            b"NACK\nid:12345\n\n\0",
            f(Nack, &[("id", "12345")], b""),
        ),
        v(
            "1.2 COMMIT",
            V12,
            b"COMMIT\ntransaction:tx1\n\n\0",
            f(Commit, &[("transaction", "tx1")], b""),
        ),
        v(
            "1.2 ABORT",
            V12,
            b"ABORT\ntransaction:tx1\n\n\0",
            f(Abort, &[("transaction", "tx1")], b""),
        ),
        v(
            "1.2 DISCONNECT receipt",
            V12,
            b"DISCONNECT\nreceipt:77\n\n\0",
            f(Disconnect, &[("receipt", "77")], b""),
        ),
        v(
            "1.2 RECEIPT",
            V12,
            b"RECEIPT\nreceipt-id:77\n\n\0",
            f(Receipt, &[("receipt-id", "77")], b""),
        ),
        v(
            "1.2 ERROR with receipt-id",
            V12,
            b"ERROR\nreceipt-id:77\nmessage:no such destination\ncontent-type:text/plain\n\nsee server log\0",
            f(
                Error,
                &[
                    ("receipt-id", "77"),
                    ("message", "no such destination"),
                    ("content-type", "text/plain"),
                ],
                b"see server log",
            ),
        ),
        v(
            "1.2 escapes including \\r",
            V12,
            b"MESSAGE\ndestination:/q\nk\\r\\n:v\\r\\n\\c\\\\\n\n\0",
            f(Message, &[("destination", "/q"), ("k\r\n", "v\r\n:\\")], b""),
        ),
        v(
            "1.2 escaped value with CRLF line end",
            V12,
            b"SEND\r\ndestination:/q\\c1\r\n\r\n\0",
            f(Send, &[("destination", "/q:1")], b""),
        ),
        v(
            "1.2 UTF-8 header and body",
            V12,
            "SEND\ndestination:/queue/caf\u{e9}\nx-greeting:\u{3053}\u{3093}\u{306b}\u{3061}\u{306f}\n\n\u{1f600}\0"
                .as_bytes(),
            f(
                Send,
                &[
                    ("destination", "/queue/caf\u{e9}"),
                    ("x-greeting", "\u{3053}\u{3093}\u{306b}\u{3061}\u{306f}"),
                ],
                "\u{1f600}".as_bytes(),
            ),
        ),
        v(
            "pre-negotiation SEND uses 1.2 rules",
            PRE,
            b"SEND\r\ndestination:/q\\c1\r\n\r\nx\0",
            f(Send, &[("destination", "/q:1")], b"x"),
        ),
    ]
}

/// Invalid frames and the error each must produce.
pub fn invalid() -> Vec<Invalid> {
    use DecodeError as E;
    vec![
        inv(
            "unknown command",
            V12,
            b"FOO\n\n\0",
            |e| matches!(e, E::UnknownCommand(s) if s == "FOO"),
        ),
        inv(
            "commands are case-sensitive",
            V12,
            b"send\ndestination:/q\n\n\0",
            |e| matches!(e, E::UnknownCommand(s) if s == "send"),
        ),
        inv(
            "long garbage command",
            V12,
            b"THIS IS NOT STOMP AT ALL\n\n\0",
            |e| matches!(e, E::UnknownCommand(_)),
        ),
        inv(
            "HTTP request",
            PRE,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            |e| matches!(e, E::UnknownCommand(_)),
        ),
        inv(
            "1.1 CRLF command line is not an EOL",
            V11,
            b"SEND\r\n\n\0",
            |e| matches!(e, E::UnknownCommand(s) if s == "SEND?"),
        ),
        inv(
            "1.0 CRLF command line is not an EOL",
            V10,
            b"SEND\r\n\n\0",
            |e| matches!(e, E::UnknownCommand(_)),
        ),
        inv(
            "header without colon",
            V12,
            b"SEND\ndestination\n\n\0",
            |e| matches!(e, E::MalformedHeader { line: 1 }),
        ),
        inv(
            "header with empty name",
            V12,
            b"SEND\ndestination:/q\n:v\n\n\0",
            |e| matches!(e, E::MalformedHeader { line: 2 }),
        ),
        inv(
            "1.1 CR line end is a malformed header",
            V11,
            b"SEND\ndestination:/q\n\r\n\0",
            |e| matches!(e, E::MalformedHeader { line: 2 }),
        ),
        inv("1.1 \\t escape", V11, b"SEND\nd:a\\tb\n\n\0", |e| {
            matches!(
                e,
                E::InvalidEscape {
                    escape: Some(b't'),
                    line: 1
                }
            )
        }),
        inv(
            "1.1 \\r escape undefined",
            V11,
            b"SEND\nd:a\\rb\n\n\0",
            |e| {
                matches!(
                    e,
                    E::InvalidEscape {
                        escape: Some(b'r'),
                        ..
                    }
                )
            },
        ),
        inv("1.2 \\t escape", V12, b"MESSAGE\nd:a\\tb\n\n\0", |e| {
            matches!(
                e,
                E::InvalidEscape {
                    escape: Some(b't'),
                    ..
                }
            )
        }),
        inv("1.2 trailing backslash", V12, b"SEND\nd:ab\\\n\n\0", |e| {
            matches!(e, E::InvalidEscape { escape: None, .. })
        }),
        inv(
            "1.2 trailing backslash before CRLF",
            V12,
            b"SEND\r\nd:ab\\\r\n\r\n\0",
            |e| matches!(e, E::InvalidEscape { escape: None, .. }),
        ),
        inv("escape in header name", V12, b"SEND\na\\xb:1\n\n\0", |e| {
            matches!(
                e,
                E::InvalidEscape {
                    escape: Some(b'x'),
                    ..
                }
            )
        }),
        inv(
            "pre-negotiation SEND with bad escape",
            PRE,
            b"SEND\nd:\\t\n\n\0",
            |e| matches!(e, E::InvalidEscape { .. }),
        ),
        inv("invalid UTF-8 value", V12, b"SEND\nd:\xff\xfe\n\n\0", |e| {
            matches!(e, E::InvalidUtf8)
        }),
        inv("invalid UTF-8 name", V10, b"SEND\n\xc3\x28:v\n\n\0", |e| {
            matches!(e, E::InvalidUtf8)
        }),
        inv(
            "invalid UTF-8 in escaped value",
            V11,
            b"SEND\nd:\\n\xff\n\n\0",
            |e| matches!(e, E::InvalidUtf8),
        ),
        inv(
            "negative content-length",
            V12,
            b"SEND\ncontent-length:-1\n\n\0",
            |e| matches!(e, E::InvalidContentLength),
        ),
        inv(
            "non-numeric content-length",
            V12,
            b"SEND\ncontent-length:abc\n\n\0",
            |e| matches!(e, E::InvalidContentLength),
        ),
        inv(
            "empty content-length",
            V12,
            b"SEND\ncontent-length:\n\n\0",
            |e| matches!(e, E::InvalidContentLength),
        ),
        inv(
            "content-length with spaces",
            V12,
            b"SEND\ncontent-length: 1\n\nx\0",
            |e| matches!(e, E::InvalidContentLength),
        ),
        inv(
            "overflowing content-length",
            V12,
            b"SEND\ncontent-length:999999999999999999999999999999\n\n\0",
            |e| matches!(e, E::InvalidContentLength),
        ),
        inv(
            "content-length too short",
            V12,
            b"SEND\ncontent-length:2\n\nabc\0",
            |e| matches!(e, E::FrameNotTerminated),
        ),
        inv(
            "content-length body too large",
            V12,
            b"SEND\ncontent-length:99999999999\n\n",
            |e| matches!(e, E::BodyTooLarge { .. }),
        ),
    ]
}

/// Decodes everything in `buf`, skipping heart-beats; fails on error.
pub fn decode_all(codec: &mut StompCodec, buf: &mut BytesMut) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(item) = codec.decode(buf).unwrap() {
        if let Item::Frame(f) = item {
            out.push(f);
        }
    }
    out
}

/// The frame without `content-length` headers (the encoder rewrites them).
pub fn without_cl(frame: &Frame) -> Frame {
    let mut f = frame.clone();
    f.headers.remove("content-length");
    f
}
