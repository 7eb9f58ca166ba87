//! The incremental frame decoder.
//!
//! The decoder is a small state machine that keeps its progress between
//! calls, so a frame arriving in many reads is parsed once:
//!
//! * `Idle`: between frames. EOLs are heart-beats; otherwise the command
//!   line is parsed once it is complete.
//! * `Headers`: header lines are parsed one by one as they complete; their
//!   name and value positions (offsets from the frame start) are kept in a
//!   reused vector, and the position of the next line is remembered.
//! * `Body`: with `content-length`, the decoder waits until `len + 1` bytes
//!   of body and terminator are buffered (no scanning at all); without it,
//!   it remembers how far it has already searched for the NUL.
//!
//! Only when the whole frame is buffered is it split off the read buffer
//! and frozen; header strings and the body are slices of that one buffer
//! (a header containing escapes is the only thing copied).
//!
//! Parsing uses `nom`-style parsers (`IResult`, `Incomplete` until the EOL
//! has arrived): the heart-beat EOLs are `nom` streaming `tag`s, and lines
//! are found with `memchr` (vectorised) rather than byte-by-byte
//! combinators (the first version used `take_till1`; it was slower). A
//! header's colon is found with an eight-bytes-at-a-time (SWAR) search, and
//! escapes are looked for once per header block, not per line.

use crate::error::DecodeError;
use crate::frame::{Command, Frame, Headers, Item, Version};
use crate::limits::Limits;
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use nom::{IResult, Needed, Parser};

/// Position of one raw (still escaped) header within the frame buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    name_start: usize,
    colon: usize,
    end: usize,
    /// The line holds a backslash and escaping is active for this frame.
    escaped: bool,
}

/// How the body's end is found.
#[derive(Debug, Clone, Copy)]
enum BodyKind {
    /// `content-length` given: the body is exactly this many bytes.
    Exact(usize),
    /// No `content-length`: the body ends at the first NUL; bytes before
    /// `scanned` (absolute offset) are known to hold none.
    Scan { scanned: usize },
}

#[derive(Debug, Clone, Copy, Default)]
enum Phase {
    #[default]
    Idle,
    Headers {
        command: Command,
        /// Offset of the first byte of the header line being parsed.
        pos: usize,
        /// Offset from which to keep searching for that line's LF.
        scan: usize,
        /// Offset of the first header line.
        first: usize,
        content_length: Option<usize>,
    },
    Body {
        command: Command,
        body_start: usize,
        kind: BodyKind,
    },
}

/// Decoder state kept between calls.
#[derive(Debug, Default)]
pub(crate) struct DecodeState {
    phase: Phase,
    spans: Vec<Span>,
}

// ---------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------

/// Streaming: the content of a line up to its LF (LF consumed, excluded).
/// `Incomplete` until a LF is present.
fn line(input: &[u8]) -> IResult<&[u8], &[u8]> {
    match memchr::memchr(b'\n', input) {
        Some(i) => match (input.get(..i), input.get(i + 1..)) {
            (Some(content), Some(rest)) => Ok((rest, content)),
            _ => Err(nom::Err::Incomplete(Needed::new(1))),
        },
        None => Err(nom::Err::Incomplete(Needed::new(1))),
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Position of the first `needle` in `hay`, eight bytes at a time (SWAR).
/// Header names are short: this beats both a byte loop and `memchr`'s
/// set-up there.
#[inline]
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ pattern;
        // The lowest set bit marks the first zero byte of `x` exactly.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

/// Whether `s` holds a backslash. Run once over a whole header block.
#[inline]
fn has_backslash(s: &[u8]) -> bool {
    memchr::memchr(b'\\', s).is_some()
}

/// A parsed header line: `(name, value)`.
type HeaderLine<'a> = IResult<&'a [u8], (&'a [u8], &'a [u8])>;

/// Complete: splits a header line whose first colon is at `colon` into a
/// non-empty name and the value (which may hold further colons).
fn header_line(input: &[u8], colon: usize) -> HeaderLine<'_> {
    match input.split_at_checked(colon) {
        Some((name, [b':', value @ ..])) if !name.is_empty() => Ok((&[], (name, value))),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

/// Streaming: one EOL (LF, or CRLF when `crlf`). `Incomplete` on a lone CR
/// at the end of the input.
fn eol(crlf: bool) -> impl Fn(&[u8]) -> IResult<&[u8], ()> {
    move |input: &[u8]| {
        use nom::branch::alt;
        use nom::bytes::streaming::tag;
        use nom::combinator::value;
        if crlf {
            alt((value((), tag(&b"\n"[..])), value((), tag(&b"\r\n"[..])))).parse(input)
        } else {
            value((), tag(&b"\n"[..])).parse(input)
        }
    }
}

/// Looks a command up by its exact wire name.
fn command(name: &[u8]) -> Option<Command> {
    Some(match name {
        b"SEND" => Command::Send,
        b"MESSAGE" => Command::Message,
        b"ACK" => Command::Ack,
        b"NACK" => Command::Nack,
        b"SUBSCRIBE" => Command::Subscribe,
        b"UNSUBSCRIBE" => Command::Unsubscribe,
        b"RECEIPT" => Command::Receipt,
        b"BEGIN" => Command::Begin,
        b"COMMIT" => Command::Commit,
        b"ABORT" => Command::Abort,
        b"CONNECT" => Command::Connect,
        b"STOMP" => Command::Stomp,
        b"CONNECTED" => Command::Connected,
        b"DISCONNECT" => Command::Disconnect,
        b"ERROR" => Command::Error,
        _ => return None,
    })
}

/// Parses a non-negative decimal `content-length` with checked arithmetic.
fn parse_content_length(v: &[u8]) -> Result<usize, DecodeError> {
    if v.is_empty() {
        return Err(DecodeError::InvalidContentLength);
    }
    let mut n: usize = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(DecodeError::InvalidContentLength);
        }
        // `let else`, not `ok_or`: building the error eagerly would drop a
        // `DecodeError` per digit.
        let Some(next) = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(b - b'0')))
        else {
            return Err(DecodeError::InvalidContentLength);
        };
        n = next;
    }
    Ok(n)
}

/// Checks that every backslash in `s` starts a defined escape.
fn validate_escapes(s: &[u8], version: Version, line: usize) -> Result<(), DecodeError> {
    let mut i = 0;
    while let Some(off) = s.get(i..).and_then(|t| memchr::memchr(b'\\', t)) {
        let at = i + off;
        match s.get(at + 1) {
            Some(b'n' | b'c' | b'\\') => {}
            Some(b'r') if version >= Version::V1_2 => {}
            other => {
                return Err(DecodeError::InvalidEscape {
                    escape: other.copied(),
                    line,
                })
            }
        }
        i = at + 2;
    }
    Ok(())
}

/// Unescapes an already validated string.
fn unescape(s: &str) -> ByteString {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('c') => out.push(':'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other), // `\\`; others were rejected
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    ByteString::from(out)
}

/// Strips one trailing CR when CRLF line ends are allowed.
#[inline]
fn strip_cr(content: &[u8], crlf: bool) -> &[u8] {
    match content {
        [rest @ .., b'\r'] if crlf => rest,
        _ => content,
    }
}

impl DecodeState {
    /// Whether a frame is partly parsed (used at end of stream).
    pub(crate) fn in_frame(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Decodes the next item of `src`. `version` `None` means not yet
    /// negotiated: STOMP 1.2 rules (LF or CRLF, escapes except in
    /// CONNECT/STOMP/CONNECTED) apply.
    pub(crate) fn decode(
        &mut self,
        src: &mut BytesMut,
        version: Option<Version>,
        limits: &Limits,
    ) -> Result<Option<Item>, DecodeError> {
        let r = self.decode_inner(src, version.unwrap_or(Version::V1_2), limits);
        if r.is_err() {
            self.phase = Phase::Idle;
            self.spans.clear();
        }
        r
    }

    fn decode_inner(
        &mut self,
        src: &mut BytesMut,
        version: Version,
        limits: &Limits,
    ) -> Result<Option<Item>, DecodeError> {
        let crlf = version >= Version::V1_2;
        loop {
            match self.phase {
                Phase::Idle => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    // Heart-beats: a run of EOLs.
                    let eol = eol(crlf);
                    let mut rest: &[u8] = src;
                    let mut incomplete = false;
                    loop {
                        match eol(rest) {
                            Ok((r, ())) => rest = r,
                            Err(nom::Err::Incomplete(_)) => {
                                incomplete = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let n = src.len() - rest.len();
                    if n > 0 {
                        src.advance(n);
                        return Ok(Some(Item::HeartBeat));
                    }
                    if incomplete {
                        // A lone CR: heart-beat or garbage, wait and see.
                        return Ok(None);
                    }
                    // Command line.
                    let max = limits.max_command_line_bytes;
                    let window = src.get(..max.saturating_add(2)).unwrap_or(src);
                    match line(window) {
                        Ok((_, content)) => {
                            let consumed = content.len() + 1;
                            let name = strip_cr(content, crlf);
                            if name.len() > max {
                                return Err(DecodeError::CommandLineTooLong { limit: max });
                            }
                            let command =
                                command(name).ok_or_else(|| DecodeError::unknown_command(name))?;
                            self.spans.clear();
                            self.phase = Phase::Headers {
                                command,
                                pos: consumed,
                                scan: consumed,
                                first: consumed,
                                content_length: None,
                            };
                        }
                        Err(_) => {
                            if window.len() >= max.saturating_add(2) {
                                return Err(DecodeError::CommandLineTooLong { limit: max });
                            }
                            if window.len() > 12 {
                                // The longest command plus CR is 12 bytes:
                                // this cannot become a valid command line.
                                return Err(DecodeError::unknown_command(window));
                            }
                            return Ok(None);
                        }
                    }
                }
                Phase::Headers {
                    command,
                    mut pos,
                    mut scan,
                    first,
                    mut content_length,
                } => {
                    let max_line = limits.max_header_line_bytes;
                    let result = loop {
                        let window_end = pos
                            .saturating_add(max_line)
                            .saturating_add(2)
                            .min(src.len());
                        let hay = src.get(scan..window_end).unwrap_or_default();
                        let Ok((_, before_lf)) = line(hay) else {
                            if window_end - pos >= max_line.saturating_add(2) {
                                return Err(DecodeError::HeaderLineTooLong { limit: max_line });
                            }
                            if src.len() > limits.max_frame_bytes {
                                return Err(DecodeError::FrameTooLarge {
                                    limit: limits.max_frame_bytes,
                                });
                            }
                            scan = window_end;
                            break None;
                        };
                        let lf = scan + before_lf.len();
                        if lf >= limits.max_frame_bytes {
                            return Err(DecodeError::FrameTooLarge {
                                limit: limits.max_frame_bytes,
                            });
                        }
                        let raw = src.get(pos..lf).unwrap_or_default();
                        let content = strip_cr(raw, crlf);
                        if content.is_empty() {
                            break Some(lf + 1);
                        }
                        if content.len() > max_line {
                            return Err(DecodeError::HeaderLineTooLong { limit: max_line });
                        }
                        if self.spans.len() >= limits.max_headers {
                            return Err(DecodeError::TooManyHeaders {
                                limit: limits.max_headers,
                            });
                        }
                        let colon = find_byte(content, b':').unwrap_or(0);
                        let Ok((_, (name, value))) = header_line(content, colon) else {
                            return Err(DecodeError::MalformedHeader {
                                line: self.spans.len() + 1,
                            });
                        };
                        if content_length.is_none() && name == b"content-length" {
                            let cl = parse_content_length(value)?;
                            if cl > limits.max_body_bytes {
                                return Err(DecodeError::BodyTooLarge {
                                    limit: limits.max_body_bytes,
                                });
                            }
                            content_length = Some(cl);
                        }
                        self.spans.push(Span {
                            name_start: pos,
                            colon: pos + colon,
                            end: pos + content.len(),
                            escaped: false,
                        });
                        pos = lf + 1;
                        scan = pos;
                    };
                    // Escapes: one vectorised pass over the whole block;
                    // only a block holding a backslash is examined per line.
                    if let Some(body_start) = result {
                        let escaping = version > Version::V1_0 && command.escapes_headers();
                        let block = src.get(first..body_start).unwrap_or_default();
                        if escaping && has_backslash(block) {
                            for (i, span) in self.spans.iter_mut().enumerate() {
                                let line = src.get(span.name_start..span.end).unwrap_or_default();
                                if has_backslash(line) {
                                    validate_escapes(line, version, i + 1)?;
                                    span.escaped = true;
                                }
                            }
                        }
                    }
                    match result {
                        None => {
                            self.phase = Phase::Headers {
                                command,
                                pos,
                                scan,
                                first,
                                content_length,
                            };
                            return Ok(None);
                        }
                        Some(body_start) => {
                            let kind = match content_length {
                                Some(cl) => {
                                    let total = body_start
                                        .checked_add(cl)
                                        .and_then(|t| t.checked_add(1))
                                        .unwrap_or(usize::MAX);
                                    if total > limits.max_frame_bytes {
                                        return Err(DecodeError::FrameTooLarge {
                                            limit: limits.max_frame_bytes,
                                        });
                                    }
                                    BodyKind::Exact(cl)
                                }
                                None => BodyKind::Scan {
                                    scanned: body_start,
                                },
                            };
                            self.phase = Phase::Body {
                                command,
                                body_start,
                                kind,
                            };
                        }
                    }
                }
                Phase::Body {
                    command,
                    body_start,
                    kind,
                } => {
                    let body_end = match kind {
                        BodyKind::Exact(cl) => {
                            let body_end = body_start + cl;
                            match src.get(body_end) {
                                None => {
                                    // Let the next read fill the whole body.
                                    src.reserve(body_end + 1 - src.len());
                                    return Ok(None);
                                }
                                Some(0) => body_end,
                                Some(_) => return Err(DecodeError::FrameNotTerminated),
                            }
                        }
                        BodyKind::Scan { scanned } => {
                            let hay = src.get(scanned..).unwrap_or_default();
                            match memchr::memchr(0, hay) {
                                Some(i) => scanned + i,
                                None => {
                                    let len = src.len();
                                    if len - body_start > limits.max_body_bytes {
                                        return Err(DecodeError::BodyTooLarge {
                                            limit: limits.max_body_bytes,
                                        });
                                    }
                                    if len >= limits.max_frame_bytes {
                                        return Err(DecodeError::FrameTooLarge {
                                            limit: limits.max_frame_bytes,
                                        });
                                    }
                                    self.phase = Phase::Body {
                                        command,
                                        body_start,
                                        kind: BodyKind::Scan { scanned: len },
                                    };
                                    return Ok(None);
                                }
                            }
                        }
                    };
                    if body_end - body_start > limits.max_body_bytes {
                        return Err(DecodeError::BodyTooLarge {
                            limit: limits.max_body_bytes,
                        });
                    }
                    if body_end >= limits.max_frame_bytes {
                        return Err(DecodeError::FrameTooLarge {
                            limit: limits.max_frame_bytes,
                        });
                    }
                    let buf = src.split_to(body_end + 1);
                    self.phase = Phase::Idle;
                    let frame = self.build(command, buf, body_start, body_end)?;
                    return Ok(Some(Item::Frame(frame)));
                }
            }
        }
    }

    /// Turns the frame buffer and the recorded spans into a frame: header
    /// strings are slices of the frozen buffer (validated as UTF-8 there),
    /// well-known names are static strings, and the buffer itself, trimmed,
    /// becomes the body.
    fn build(
        &mut self,
        command: Command,
        frame: BytesMut,
        body_start: usize,
        body_end: usize,
    ) -> Result<Frame, DecodeError> {
        // Allocate before touching `frame`: this gives the stores that
        // `split_to` just made time to leave the store buffer, so reading
        // the buffer back does not stall on store forwarding.
        let mut headers = Headers::with_capacity(self.spans.len());
        let mut buf = frame.freeze();
        let utf8 = |b: Bytes| ByteString::try_from(b).map_err(|_| DecodeError::InvalidUtf8);
        for span in &self.spans {
            // Spans lie inside the header block: name_start <= colon < end
            // <= body_start <= body_end < buf.len().
            let name = span.name_start..span.colon;
            let value = span.colon + 1..span.end;
            if span.escaped {
                let as_str = |r: std::ops::Range<usize>| match buf.get(r).map(std::str::from_utf8) {
                    Some(Ok(s)) => Ok(s),
                    _ => Err(DecodeError::InvalidUtf8),
                };
                headers.push(unescape(as_str(name)?), unescape(as_str(value)?));
            } else {
                let name = match buf.get(name.clone()).and_then(well_known) {
                    Some(known) => known,
                    None => utf8(buf.slice(name))?,
                };
                headers.push(name, utf8(buf.slice(value))?);
            }
        }
        self.spans.clear();
        buf.advance(body_start);
        buf.truncate(body_end - body_start);
        Ok(Frame {
            command,
            headers,
            body: buf,
        })
    }
}

/// The specification's header names as static strings: sharing them costs
/// no reference count, unlike a slice of the read buffer.
fn well_known(name: &[u8]) -> Option<ByteString> {
    // Dispatch on the length first: one comparison per candidate at most.
    let s: &'static str = match name.len() {
        2 => match name {
            b"id" => "id",
            _ => return None,
        },
        3 => match name {
            b"ack" => "ack",
            _ => return None,
        },
        4 => match name {
            b"host" => "host",
            _ => return None,
        },
        5 => match name {
            b"login" => "login",
            _ => return None,
        },
        6 => match name {
            b"server" => "server",
            _ => return None,
        },
        7 => match name {
            b"receipt" => "receipt",
            b"message" => "message",
            b"version" => "version",
            b"session" => "session",
            b"expires" => "expires",
            _ => return None,
        },
        8 => match name {
            b"passcode" => "passcode",
            b"reply-to" => "reply-to",
            b"priority" => "priority",
            b"selector" => "selector",
            _ => return None,
        },
        9 => match name {
            b"timestamp" => "timestamp",
            _ => return None,
        },
        10 => match name {
            b"receipt-id" => "receipt-id",
            b"message-id" => "message-id",
            b"heart-beat" => "heart-beat",
            b"persistent" => "persistent",
            _ => return None,
        },
        11 => match name {
            b"destination" => "destination",
            b"transaction" => "transaction",
            b"redelivered" => "redelivered",
            _ => return None,
        },
        12 => match name {
            b"content-type" => "content-type",
            b"subscription" => "subscription",
            _ => return None,
        },
        14 => match name {
            b"content-length" => "content-length",
            b"accept-version" => "accept-version",
            b"correlation-id" => "correlation-id",
            _ => return None,
        },
        _ => return None,
    };
    Some(ByteString::from_static(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_parsing() {
        assert_eq!(parse_content_length(b"0").unwrap(), 0);
        assert_eq!(parse_content_length(b"0012").unwrap(), 12);
        assert!(parse_content_length(b"").is_err());
        assert!(parse_content_length(b"-1").is_err());
        assert!(parse_content_length(b"+1").is_err());
        assert!(parse_content_length(b" 1").is_err());
        assert!(parse_content_length(b"1 ").is_err());
        assert!(parse_content_length(b"99999999999999999999999999").is_err());
    }

    #[test]
    fn header_line_parser() {
        assert_eq!(header_line(b"a:b", 1).unwrap().1, (&b"a"[..], &b"b"[..]));
        assert_eq!(
            header_line(b"a:b:c", 1).unwrap().1,
            (&b"a"[..], &b"b:c"[..])
        );
        assert_eq!(header_line(b"a:", 1).unwrap().1, (&b"a"[..], &b""[..]));
        assert!(header_line(b":b", 0).is_err());
        assert!(header_line(b"ab", 1).is_err());
        assert!(header_line(b"ab", 5).is_err());
    }

    #[test]
    fn swar_find() {
        let hay = b"0123456789abcdef:ghij:";
        for len in 0..hay.len() {
            for needle in [b':', b'0', b'f', b'j', b'z', 0x80, 0xff] {
                let h = &hay[..len];
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "{len} {needle}"
                );
            }
        }
        let high = [
            0x80u8, 0x01, 0xff, 0x3a, 0x3b, 0x39, 0x00, 0x3a, 0x3a, 0x3a, 0x00,
        ];
        for start in 0..high.len() {
            let h = &high[start..];
            for needle in [0x3a, 0x00, 0x01, 0xff, 0x80, 0x3b] {
                assert_eq!(find_byte(h, needle), h.iter().position(|&b| b == needle));
            }
        }
        assert!(has_backslash(b"abc\\"));
        assert!(!has_backslash(b"abc"));
    }

    #[test]
    fn escapes() {
        assert!(validate_escapes(b"a\\nb\\c\\\\", Version::V1_1, 1).is_ok());
        assert!(validate_escapes(b"\\r", Version::V1_1, 1).is_err());
        assert!(validate_escapes(b"\\r", Version::V1_2, 1).is_ok());
        assert!(validate_escapes(b"\\t", Version::V1_2, 1).is_err());
        assert!(validate_escapes(b"a\\", Version::V1_2, 1).is_err());
        assert_eq!(&unescape("a\\nb\\cc\\\\d\\r")[..], "a\nb:c\\d\r");
    }

    #[test]
    fn commands_match_model() {
        for c in Command::ALL {
            assert_eq!(command(c.as_str().as_bytes()), Some(c));
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
        }
        assert_eq!(command(b"send"), None);
    }
}
