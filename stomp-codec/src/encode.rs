//! Frame encoding: escaping per version, `content-length`, NUL terminator.

use crate::frame::{Frame, Version};
use bytes::{BufMut, BytesMut};

/// Writes `s` into `dst`, escaped per `version`:
///
/// * 1.0: verbatim (1.0 has no escapes; a LF or `:` cannot be expressed);
/// * 1.1: LF → `\n`, `:` → `\c`, `\` → `\\` (a CR is written raw);
/// * 1.2: additionally CR → `\r`.
pub fn escape_into(s: &str, version: Version, dst: &mut BytesMut) {
    let bytes = s.as_bytes();
    if version == Version::V1_0 {
        dst.extend_from_slice(bytes);
        return;
    }
    let cr = version >= Version::V1_2;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\n' => b"\\n",
            b':' => b"\\c",
            b'\\' => b"\\\\",
            b'\r' if cr => b"\\r",
            _ => continue,
        };
        dst.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        dst.extend_from_slice(esc);
        start = i + 1;
    }
    dst.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

/// Whether `s` holds a byte that `version` escapes. A branch-free fold
/// the compiler vectorises: header strings are short, where `memchr`'s
/// set-up costs more than the scan.
#[inline]
fn needs_escape(s: &[u8], version: Version) -> bool {
    match version {
        Version::V1_0 => false,
        Version::V1_1 => s.iter().fold(false, |acc, &b| {
            acc | (b == b'\n') | (b == b':') | (b == b'\\')
        }),
        Version::V1_2 => s.iter().fold(false, |acc, &b| {
            acc | (b == b'\n') | (b == b':') | (b == b'\\') | (b == b'\r')
        }),
    }
}

#[inline]
fn put_escaped(s: &str, version: Version, escape: bool, dst: &mut BytesMut) {
    if escape && needs_escape(s.as_bytes(), version) {
        escape_into(s, version, dst);
    } else {
        dst.extend_from_slice(s.as_bytes());
    }
}

/// Writes one header line `name:value\n`, escaping both per `version` when
/// `escape` is true (pass false for CONNECT, STOMP and CONNECTED frames,
/// whose headers are never escaped).
pub fn encode_header(name: &str, value: &str, version: Version, escape: bool, dst: &mut BytesMut) {
    dst.reserve(name.len() + value.len() + 2);
    put_escaped(name, version, escape, dst);
    dst.put_u8(b':');
    put_escaped(value, version, escape, dst);
    dst.put_u8(b'\n');
}

/// Writes a heart-beat (a single LF).
pub fn encode_heartbeat(dst: &mut BytesMut) {
    dst.put_u8(b'\n');
}

/// Writes `n` in decimal.
fn put_decimal(mut n: usize, dst: &mut BytesMut) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            // n % 10 < 10, so the cast cannot truncate.
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    dst.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Encodes `frame` for `version` into `dst`.
///
/// Headers are written in order, escaped per `version` unless the command
/// is CONNECT, STOMP or CONNECTED. Any `content-length` header the frame
/// carries is dropped; a correct `content-length` is written for a
/// non-empty body (an empty body gets none). The frame ends with NUL.
/// `dst` is reserved once for the whole frame.
pub fn encode_frame(frame: &Frame, version: Version, dst: &mut BytesMut) {
    let command = frame.command.as_str().as_bytes();
    let escape = frame.command.escapes_headers() && version != Version::V1_0;
    // Unescaped size; escapes may add a little more.
    let mut size = command.len() + 1 + 1 + frame.body.len() + 1;
    for (n, v) in frame.headers.iter() {
        size += n.len() + v.len() + 2;
    }
    if !frame.body.is_empty() {
        size += "content-length:".len() + 21;
    }
    dst.reserve(size);

    dst.extend_from_slice(command);
    dst.put_u8(b'\n');
    for (n, v) in frame.headers.iter() {
        if n == "content-length" {
            continue;
        }
        put_escaped(n, version, escape, dst);
        dst.put_u8(b':');
        put_escaped(v, version, escape, dst);
        dst.put_u8(b'\n');
    }
    if !frame.body.is_empty() {
        dst.extend_from_slice(b"content-length:");
        put_decimal(frame.body.len(), dst);
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
    dst.extend_from_slice(&frame.body);
    dst.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Command;

    fn esc(s: &str, v: Version) -> String {
        let mut b = BytesMut::new();
        escape_into(s, v, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn escapes_per_version() {
        let s = "a:b\nc\\d\re";
        assert_eq!(esc(s, Version::V1_0), s);
        assert_eq!(esc(s, Version::V1_1), "a\\cb\\nc\\\\d\re");
        assert_eq!(esc(s, Version::V1_2), "a\\cb\\nc\\\\d\\re");
        assert_eq!(esc("", Version::V1_2), "");
        assert_eq!(esc("plain", Version::V1_2), "plain");
    }

    #[test]
    fn decimal() {
        for n in [0usize, 1, 9, 10, 99, 100, 12345, usize::MAX] {
            let mut b = BytesMut::new();
            put_decimal(n, &mut b);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn content_length_rewritten() {
        let f = Frame::new(Command::Send)
            .header("content-length", "999")
            .header("destination", "/q")
            .body(&b"hi"[..]);
        let mut b = BytesMut::new();
        encode_frame(&f, Version::V1_2, &mut b);
        assert_eq!(&b[..], b"SEND\ndestination:/q\ncontent-length:2\n\nhi\0");
        let f = Frame::new(Command::Disconnect).header("content-length", "0");
        let mut b = BytesMut::new();
        encode_frame(&f, Version::V1_2, &mut b);
        assert_eq!(&b[..], b"DISCONNECT\n\n\0");
    }

    #[test]
    fn connect_not_escaped() {
        let f = Frame::new(Command::Connected).header("server", "a:b");
        let mut b = BytesMut::new();
        encode_frame(&f, Version::V1_2, &mut b);
        assert_eq!(&b[..], b"CONNECTED\nserver:a:b\n\n\0");
        let mut b = BytesMut::new();
        encode_header("a:b", "c\nd", Version::V1_1, true, &mut b);
        assert_eq!(&b[..], b"a\\cb:c\\nd\n");
        let mut b = BytesMut::new();
        encode_header("a", "c:d", Version::V1_1, false, &mut b);
        assert_eq!(&b[..], b"a:c:d\n");
    }
}
