//! The benchmark message body and pre-encoded SEND frames.
//!
//! Every body starts with a fixed-width ASCII record that identifies the
//! message, followed by `.` padding up to the configured size:
//!
//! ```text
//! P0000S0000000000000042T00000000000001234567A00000000000001234600....
//! ```
//!
//! * `P` — producer number (4 digits),
//! * `S` — sequence number of the message for that producer (16 digits),
//! * `T` — scheduled send time, nanoseconds since the run's clock base
//!   (20 digits; only the latency scenario fills it in, zero otherwise),
//! * `A` — actual send time (just before the write), same unit.
//!
//! Fixed offsets let the producer patch a copy of a pre-encoded SEND frame
//! instead of encoding each frame, and let receivers decode the record
//! without searching.

use anyhow::{bail, Result};
use bytes::BytesMut;

/// Offset of the producer digits in the body.
const PRODUCER_AT: usize = 1;
/// Width of the producer number.
const PRODUCER_DIGITS: usize = 4;
/// Offset of the sequence digits.
const SEQ_AT: usize = PRODUCER_AT + PRODUCER_DIGITS + 1;
/// Width of the sequence number.
const SEQ_DIGITS: usize = 16;
/// Offset of the scheduled-time digits.
const SCHED_AT: usize = SEQ_AT + SEQ_DIGITS + 1;
/// Width of a timestamp.
const TIME_DIGITS: usize = 20;
/// Offset of the actual-send-time digits.
const ACTUAL_AT: usize = SCHED_AT + TIME_DIGITS + 1;

/// The smallest body that holds the record.
pub const MIN_BODY: usize = ACTUAL_AT + TIME_DIGITS;

/// What a received body says about its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The producer number.
    pub producer: u32,
    /// The sequence number within that producer's stream (from 0).
    pub seq: u64,
    /// Scheduled send time (ns since the clock base); 0 when unused.
    pub scheduled_ns: u64,
    /// Actual send time (ns since the clock base); 0 when unused.
    pub actual_ns: u64,
}

/// Writes `v` as exactly `dst.len()` decimal digits (the high digits of
/// larger values are cut; callers size fields so this never happens).
#[inline]
fn put_digits(dst: &mut [u8], mut v: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Reads a fixed-width decimal field.
#[inline]
fn get_digits(src: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in src {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Builds a body of `size` bytes (at least [`MIN_BODY`]) for `producer`,
/// with sequence and times zero.
pub fn template_body(producer: u32, size: usize) -> Vec<u8> {
    let size = size.max(MIN_BODY);
    let mut body = vec![b'.'; size];
    body[0] = b'P';
    put_digits(
        &mut body[PRODUCER_AT..PRODUCER_AT + PRODUCER_DIGITS],
        u64::from(producer),
    );
    body[SEQ_AT - 1] = b'S';
    put_digits(&mut body[SEQ_AT..SEQ_AT + SEQ_DIGITS], 0);
    body[SCHED_AT - 1] = b'T';
    put_digits(&mut body[SCHED_AT..SCHED_AT + TIME_DIGITS], 0);
    body[ACTUAL_AT - 1] = b'A';
    put_digits(&mut body[ACTUAL_AT..ACTUAL_AT + TIME_DIGITS], 0);
    body
}

/// Writes the sequence number and the times into a body made by
/// [`template_body`] (a shorter one is left alone).
pub fn write_stamp(body: &mut [u8], seq: u64, scheduled_ns: u64, actual_ns: u64) {
    if body.len() < MIN_BODY {
        return;
    }
    put_digits(&mut body[SEQ_AT..SEQ_AT + SEQ_DIGITS], seq);
    put_digits(&mut body[SCHED_AT..SCHED_AT + TIME_DIGITS], scheduled_ns);
    put_digits(&mut body[ACTUAL_AT..ACTUAL_AT + TIME_DIGITS], actual_ns);
}

/// Decodes the record at the start of a received body.
pub fn parse_stamp(body: &[u8]) -> Result<Stamp> {
    if body.len() < MIN_BODY
        || body[0] != b'P'
        || body[SEQ_AT - 1] != b'S'
        || body[SCHED_AT - 1] != b'T'
        || body[ACTUAL_AT - 1] != b'A'
    {
        bail!(
            "unexpected message body (len {}): {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(MIN_BODY)])
        );
    }
    let field = |at: usize, len: usize| get_digits(&body[at..at + len]);
    match (
        field(PRODUCER_AT, PRODUCER_DIGITS),
        field(SEQ_AT, SEQ_DIGITS),
        field(SCHED_AT, TIME_DIGITS),
        field(ACTUAL_AT, TIME_DIGITS),
    ) {
        (Some(p), Some(seq), Some(scheduled_ns), Some(actual_ns)) => Ok(Stamp {
            producer: u32::try_from(p).unwrap_or(u32::MAX),
            seq,
            scheduled_ns,
            actual_ns,
        }),
        _ => bail!(
            "malformed stamp in message body: {:?}",
            String::from_utf8_lossy(&body[..MIN_BODY])
        ),
    }
}

/// A SEND frame encoded once; each message is a copy with its sequence
/// number (and optionally times) patched in place.
#[derive(Debug, Clone)]
pub struct SendTemplate {
    frame: Vec<u8>,
    /// Offset of the body within `frame`.
    body_at: usize,
    /// Offset of the receipt number digits, if the frame asks for one.
    receipt_at: Option<usize>,
}

/// Width of the number in a `receipt:r<digits>` header.
pub const RECEIPT_DIGITS: usize = 16;

impl SendTemplate {
    /// A SEND to `destination` with a body of `body_size` bytes from
    /// `producer`; with `receipt`, the frame carries a `receipt` header
    /// whose value is `r` followed by the sequence number.
    pub fn new(destination: &str, producer: u32, body_size: usize, receipt: bool) -> Self {
        Self::with_headers(destination, producer, body_size, receipt, &[])
    }

    /// Like [`SendTemplate::new`], with `extra` headers (names and values
    /// written as given: they must need no escaping).
    pub fn with_headers(
        destination: &str,
        producer: u32,
        body_size: usize,
        receipt: bool,
        extra: &[(&str, &str)],
    ) -> Self {
        let body = template_body(producer, body_size);
        let mut frame = Vec::with_capacity(body.len() + destination.len() + 96);
        frame.extend_from_slice(b"SEND\ndestination:");
        frame.extend_from_slice(destination.as_bytes());
        for (name, value) in extra {
            frame.push(b'\n');
            frame.extend_from_slice(name.as_bytes());
            frame.push(b':');
            frame.extend_from_slice(value.as_bytes());
        }
        frame.extend_from_slice(b"\ncontent-type:text/plain\ncontent-length:");
        frame.extend_from_slice(body.len().to_string().as_bytes());
        frame.push(b'\n');
        let receipt_at = if receipt {
            frame.extend_from_slice(b"receipt:r");
            let at = frame.len();
            frame.extend_from_slice(&[b'0'; RECEIPT_DIGITS]);
            frame.push(b'\n');
            Some(at)
        } else {
            None
        };
        frame.push(b'\n');
        let body_at = frame.len();
        frame.extend_from_slice(&body);
        frame.push(0);
        SendTemplate {
            frame,
            body_at,
            receipt_at,
        }
    }

    /// Encoded length of one frame.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Always false: a frame is never empty.
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Appends the frame for message `seq` to `dst`; nonzero times are
    /// written into the body (zero leaves the template's zeros).
    #[inline]
    pub fn encode(&self, seq: u64, scheduled_ns: u64, actual_ns: u64, dst: &mut BytesMut) {
        let start = dst.len();
        dst.extend_from_slice(&self.frame);
        let frame = &mut dst[start..];
        let body = self.body_at;
        put_digits(&mut frame[body + SEQ_AT..body + SEQ_AT + SEQ_DIGITS], seq);
        if scheduled_ns != 0 {
            put_digits(
                &mut frame[body + SCHED_AT..body + SCHED_AT + TIME_DIGITS],
                scheduled_ns,
            );
        }
        if actual_ns != 0 {
            put_digits(
                &mut frame[body + ACTUAL_AT..body + ACTUAL_AT + TIME_DIGITS],
                actual_ns,
            );
        }
        if let Some(at) = self.receipt_at {
            put_digits(&mut frame[at..at + RECEIPT_DIGITS], seq);
        }
    }
}

/// Parses the number out of a `receipt-id` written by [`SendTemplate`]
/// (`r` + digits).
pub fn parse_receipt_seq(receipt_id: &[u8]) -> Option<u64> {
    match receipt_id.split_first() {
        Some((b'r', digits)) if !digits.is_empty() => get_digits(digits),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() -> Result<()> {
        let t = SendTemplate::new("/topic/x", 7, 100, true);
        let mut buf = BytesMut::new();
        t.encode(123_456, 42, 43, &mut buf);
        assert_eq!(buf.len(), t.len());
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(text.starts_with("SEND\ndestination:/topic/x\n"));
        assert!(text.contains("content-length:100\n"));
        assert!(text.contains("receipt:r0000000000123456\n"));
        let p = SendTemplate::with_headers("/queue/x", 1, 100, false, &[("persistent", "true")]);
        let mut pbuf = BytesMut::new();
        p.encode(5, 0, 0, &mut pbuf);
        assert!(pbuf.starts_with(b"SEND\ndestination:/queue/x\npersistent:true\n"));
        let body_start = text.find("\n\n").map(|i| i + 2).unwrap_or(0);
        let body = &buf[body_start..buf.len() - 1];
        assert_eq!(body.len(), 100);
        let s = parse_stamp(body)?;
        assert_eq!(
            s,
            Stamp {
                producer: 7,
                seq: 123_456,
                scheduled_ns: 42,
                actual_ns: 43
            }
        );
        assert_eq!(parse_receipt_seq(b"r0000000000123456"), Some(123_456));
        Ok(())
    }

    #[test]
    fn stamped_bodies() -> Result<()> {
        let mut b = template_body(0, 80);
        write_stamp(&mut b, 9, 10, 11);
        let st = parse_stamp(&b)?;
        assert_eq!((st.seq, st.scheduled_ns, st.actual_ns), (9, 10, 11));
        let mut short = vec![b'.'; 10];
        write_stamp(&mut short, 1, 2, 3);
        assert_eq!(short, vec![b'.'; 10]);
        Ok(())
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(parse_stamp(b"hello").is_err());
        let mut b = template_body(1, 100);
        b[SEQ_AT + 3] = b'x';
        assert!(parse_stamp(&b).is_err());
    }
}
