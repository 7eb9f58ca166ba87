//! Reading server frames: a minimal allocation-free scanner, and an adapter
//! over the project's `stompede-codec` decoder. Both produce a
//! [`FrameView`] with just the fields the benchmark needs.
//!
//! The scanner trusts `content-length` when present (the broker writes it on
//! every MESSAGE with a body), otherwise searches for the NUL. Header values
//! are returned raw (still escaped): the benchmark only echoes `ack` ids and
//! compares ids it chose itself, so unescaping is never needed.

use anyhow::{bail, Result};
use bytes::{Buf, BytesMut};
use stompede_codec::{Command, Item, StompCodec};
use tokio_util::codec::Decoder;

/// The server commands the benchmark tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// MESSAGE.
    Message,
    /// RECEIPT.
    Receipt,
    /// CONNECTED.
    Connected,
    /// ERROR.
    Error,
    /// Anything else (unexpected from a broker).
    Other,
}

/// The parts of a received frame the benchmark looks at.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    /// The command.
    pub command: Cmd,
    /// `subscription` header (empty if absent).
    pub subscription: &'a [u8],
    /// `ack` header (empty if absent).
    pub ack: &'a [u8],
    /// `receipt-id` header (empty if absent).
    pub receipt_id: &'a [u8],
    /// `message` header of an ERROR (empty if absent).
    pub message: &'a [u8],
    /// Whether `redelivered:true` was present.
    pub redelivered: bool,
    /// The body.
    pub body: &'a [u8],
    /// Every header line, raw (escaped), up to the blank line: for the
    /// headers not given above ([`FrameView::header`]).
    pub headers: &'a [u8],
}

impl<'a> FrameView<'a> {
    fn empty(command: Cmd) -> Self {
        FrameView {
            command,
            subscription: b"",
            ack: b"",
            receipt_id: b"",
            message: b"",
            redelivered: false,
            body: b"",
            headers: b"",
        }
    }

    /// The raw value of the first header called `name`, if any (a linear
    /// search of the header lines).
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        find_header(self.headers, name)
    }

    /// A one-line description for error reports.
    pub fn describe(&self) -> String {
        let body = &self.body[..self.body.len().min(200)];
        format!(
            "{:?} message={:?} receipt-id={:?} body={:?}",
            self.command,
            String::from_utf8_lossy(self.message),
            String::from_utf8_lossy(self.receipt_id),
            String::from_utf8_lossy(body)
        )
    }
}

/// The raw value of the first header called `name` in `headers` (header
/// lines as received), if any.
pub fn find_header<'a>(headers: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for line in headers.split(|&b| b == b'\n') {
        let line = strip_cr(line);
        if line.len() > name.len() && line[name.len()] == b':' && line.starts_with(name) {
            return Some(&line[name.len() + 1..]);
        }
    }
    None
}

/// Which frame parser receivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParserKind {
    /// The allocation-free scanner in this crate.
    Fast,
    /// `stompede_codec::StompCodec`.
    Codec,
}

/// One step of the scanner.
#[derive(Debug)]
pub enum Scanned<'a> {
    /// A frame, and how many bytes it used.
    Frame(FrameView<'a>, usize),
    /// A heart-beat EOL, and its length.
    HeartBeat(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Largest frame the scanner accepts before giving up (a broken stream
/// would otherwise buffer forever).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

fn command_of(line: &[u8]) -> Cmd {
    match line {
        b"MESSAGE" => Cmd::Message,
        b"RECEIPT" => Cmd::Receipt,
        b"CONNECTED" => Cmd::Connected,
        b"ERROR" => Cmd::Error,
        _ => Cmd::Other,
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

fn parse_len(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 12 {
        return None;
    }
    let mut n = 0usize;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(c - b'0');
    }
    Some(n)
}

/// Scans one frame (or heart-beat) at the start of `buf`.
pub fn scan(buf: &[u8]) -> Result<Scanned<'_>> {
    match buf.first() {
        None => return Ok(Scanned::Incomplete),
        Some(b'\n') => return Ok(Scanned::HeartBeat(1)),
        Some(b'\r') => {
            return match buf.get(1) {
                None => Ok(Scanned::Incomplete),
                Some(b'\n') => Ok(Scanned::HeartBeat(2)),
                Some(_) => bail!("stray CR between frames"),
            }
        }
        Some(_) => {}
    }
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > 1024 {
            bail!("no command line in {} bytes", buf.len());
        }
        return Ok(Scanned::Incomplete);
    };
    let mut view = FrameView::empty(command_of(strip_cr(&buf[..nl])));
    let mut pos = nl + 1;
    let headers_at = pos;
    let mut content_length = None;
    let (mut seen_sub, mut seen_ack, mut seen_rid, mut seen_msg, mut seen_len) =
        (false, false, false, false, false);
    loop {
        let Some(off) = memchr::memchr(b'\n', &buf[pos..]) else {
            if buf.len() > MAX_FRAME {
                bail!("frame headers exceed {MAX_FRAME} bytes");
            }
            return Ok(Scanned::Incomplete);
        };
        let line = strip_cr(&buf[pos..pos + off]);
        if line.is_empty() {
            view.headers = &buf[headers_at..pos];
            pos += off + 1;
            break;
        }
        pos += off + 1;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            bail!(
                "header line without colon: {:?}",
                String::from_utf8_lossy(line)
            );
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // The first occurrence of a header wins.
        match name {
            b"subscription" if !seen_sub => {
                seen_sub = true;
                view.subscription = value;
            }
            b"ack" if !seen_ack => {
                seen_ack = true;
                view.ack = value;
            }
            b"receipt-id" if !seen_rid => {
                seen_rid = true;
                view.receipt_id = value;
            }
            b"message" if !seen_msg => {
                seen_msg = true;
                view.message = value;
            }
            b"redelivered" => view.redelivered |= value == b"true",
            b"content-length" if !seen_len => {
                seen_len = true;
                match parse_len(value) {
                    Some(n) => content_length = Some(n),
                    None => bail!("bad content-length {:?}", String::from_utf8_lossy(value)),
                }
            }
            _ => {}
        }
    }
    let body_start = pos;
    let body_end = match content_length {
        Some(n) => {
            if n > MAX_FRAME {
                bail!("content-length {n} exceeds {MAX_FRAME}");
            }
            if buf.len() < body_start + n + 1 {
                return Ok(Scanned::Incomplete);
            }
            if buf[body_start + n] != 0 {
                bail!("frame body not followed by NUL (content-length {n})");
            }
            body_start + n
        }
        None => match memchr::memchr(0, &buf[body_start..]) {
            Some(i) => body_start + i,
            None => {
                if buf.len() > MAX_FRAME {
                    bail!("frame exceeds {MAX_FRAME} bytes");
                }
                return Ok(Scanned::Incomplete);
            }
        },
    };
    view.body = &buf[body_start..body_end];
    Ok(Scanned::Frame(view, body_end + 1))
}

/// Calls `f` for every complete frame at the start of `buf` using the
/// scanner, then removes the bytes used. Heart-beats are skipped.
pub fn drain_fast<F>(buf: &mut BytesMut, mut f: F) -> Result<usize>
where
    F: FnMut(&FrameView<'_>) -> Result<()>,
{
    let mut pos = 0;
    let mut frames = 0;
    loop {
        match scan(&buf[pos..])? {
            Scanned::Frame(view, used) => {
                f(&view)?;
                frames += 1;
                pos += used;
            }
            Scanned::HeartBeat(used) => pos += used,
            Scanned::Incomplete => break,
        }
    }
    buf.advance(pos);
    Ok(frames)
}

/// Like [`drain_fast`], with the project's codec doing the parsing.
pub fn drain_codec<F>(codec: &mut StompCodec, buf: &mut BytesMut, mut f: F) -> Result<usize>
where
    F: FnMut(&FrameView<'_>) -> Result<()>,
{
    let mut frames = 0;
    while let Some(item) = codec.decode(buf)? {
        let Item::Frame(frame) = item else { continue };
        let get = |name: &str| frame.get(name).map(str::as_bytes).unwrap_or(b"");
        // The raw header lines again, for FrameView::header (values are
        // unescaped here: the benchmark's values need no escaping).
        let mut raw = Vec::new();
        for (name, value) in frame.headers.iter() {
            raw.extend_from_slice(name.as_bytes());
            raw.push(b':');
            raw.extend_from_slice(value.as_bytes());
            raw.push(b'\n');
        }
        let command = match frame.command {
            Command::Message => Cmd::Message,
            Command::Receipt => Cmd::Receipt,
            Command::Connected => Cmd::Connected,
            Command::Error => Cmd::Error,
            _ => Cmd::Other,
        };
        let view = FrameView {
            command,
            subscription: get("subscription"),
            ack: get("ack"),
            receipt_id: get("receipt-id"),
            message: get("message"),
            redelivered: frame.get("redelivered") == Some("true"),
            body: &frame.body,
            headers: &raw,
        };
        f(&view)?;
        frames += 1;
    }
    Ok(frames)
}

/// Encodes `n` MESSAGE frames like the broker writes them (for parser
/// tests and `--measure-parsers`).
pub fn sample_messages(n: usize, body_size: usize) -> BytesMut {
    let body = crate::body::template_body(0, body_size);
    let mut out = BytesMut::with_capacity(n * (body.len() + 128));
    for i in 0..n {
        out.extend_from_slice(b"MESSAGE\nsubscription:s3\nack:");
        out.extend_from_slice(i.to_string().as_bytes());
        out.extend_from_slice(b"\ndestination:/topic/bench.x\nmessage-id:m-");
        out.extend_from_slice(i.to_string().as_bytes());
        out.extend_from_slice(b"\ncontent-type:text/plain\ncontent-length:");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\0\n");
    }
    out
}

/// Times both parsers: `rounds` times, a 1000-frame chunk (about what one
/// 256 KiB read holds) is copied into a buffer, as a read would, and
/// parsed. Returns ns per frame for the scanner and for the codec.
pub fn measure_parsers(rounds: usize) -> Result<(f64, f64)> {
    const CHUNK: usize = 1000;
    let sample = sample_messages(CHUNK, 100);
    let run = |fast: bool| -> Result<f64> {
        let mut buf = BytesMut::with_capacity(sample.len());
        let mut codec = StompCodec::default();
        codec.set_version(stompede_codec::Version::V1_2);
        let mut acc = 0usize;
        let mut n = 0;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            buf.clear();
            buf.extend_from_slice(&sample);
            n += if fast {
                drain_fast(&mut buf, |v| {
                    acc += v.ack.len() + v.body.len();
                    Ok(())
                })?
            } else {
                drain_codec(&mut codec, &mut buf, |v| {
                    acc += v.ack.len() + v.body.len();
                    Ok(())
                })?
            };
        }
        let ns = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
        if n != rounds * CHUNK || acc == 0 {
            bail!("parser self-check failed: {n} of {} frames", rounds * CHUNK);
        }
        Ok(ns)
    };
    Ok((run(true)?, run(false)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Command, subscription, ack and body of a parsed frame.
    type Parsed = (Cmd, Vec<u8>, Vec<u8>, Vec<u8>);

    fn collect(data: &[u8], chunk: usize, fast: bool) -> Vec<Parsed> {
        let mut buf = BytesMut::new();
        let mut codec = StompCodec::default();
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            let f = |v: &FrameView<'_>| {
                out.push((
                    v.command,
                    v.subscription.to_vec(),
                    v.ack.to_vec(),
                    v.body.to_vec(),
                ));
                Ok(())
            };
            if fast {
                drain_fast(&mut buf, f).unwrap();
            } else {
                drain_codec(&mut codec, &mut buf, f).unwrap();
            }
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn scanner_agrees_with_codec_on_any_split() {
        let mut data = sample_messages(20, 100);
        data.extend_from_slice(b"RECEIPT\r\nreceipt-id:r1\r\n\r\n\0\r\n");
        data.extend_from_slice(b"ERROR\nmessage:bad\n\nno length\0");
        let all = collect(&data, data.len(), true);
        assert_eq!(all.len(), 22);
        assert_eq!(all[21].0, Cmd::Error);
        assert_eq!(all[21].3, b"no length");
        assert_eq!(all[3].2, b"3");
        let mut one =
            BytesMut::from(&b"MESSAGE\r\nx-seq:42\r\nx-seqx:1\r\nx-event:message\n\nhi\0"[..]);
        drain_fast(&mut one, |v| {
            assert_eq!(v.header(b"x-seq"), Some(&b"42"[..]));
            assert_eq!(v.header(b"x-event"), Some(&b"message"[..]));
            assert_eq!(v.header(b"x-se"), None);
            assert_eq!(v.body, b"hi");
            Ok(())
        })
        .unwrap();
        for chunk in [1, 7, 64, 1000] {
            assert_eq!(collect(&data, chunk, true), all);
            assert_eq!(collect(&data, chunk, false), all);
        }
    }

    #[test]
    fn scanner_rejects_garbage() {
        assert!(scan(b"MESSAGE\nnocolon\n\n\0").is_err());
        assert!(scan(b"MESSAGE\ncontent-length:3\n\nabcd\0").is_err());
        assert!(scan(b"MESSAGE\ncontent-length:x\n\n\0").is_err());
    }
}
