//! Every limit yields its typed error, and memory stays bounded.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::*;
use stompede_codec::{DecodeError, Item, Limits, StompCodec};
use tokio_util::codec::Decoder;

fn small() -> Limits {
    Limits {
        max_frame_bytes: 256,
        max_body_bytes: 100,
        max_headers: 4,
        max_header_line_bytes: 32,
        max_command_line_bytes: 16,
    }
}

/// Feeds `bytes` in `chunk`-sized pieces; returns the first error.
fn run(limits: Limits, bytes: &[u8], chunk: usize) -> Result<Vec<Item>, DecodeError> {
    let mut c = StompCodec::new(limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = c.decode(&mut buf)? {
            items.push(item);
        }
    }
    Ok(items)
}

fn each_chunking(bytes: &[u8], check: impl Fn(&DecodeError) -> bool) {
    for chunk in [1, 3, 7, 64, bytes.len().max(1)] {
        match run(small(), bytes, chunk) {
            Err(e) => {
                assert!(check(&e), "chunk {chunk}: {e:?}");
                assert!(e.is_limit(), "{e:?}");
            }
            Ok(items) => panic!("chunk {chunk}: expected error, got {items:?}"),
        }
    }
}

#[test]
fn limits_accessor() {
    let c = StompCodec::new(small());
    assert_eq!(*c.limits(), small());
    assert_eq!(c.version(), None);
    assert_eq!(*StompCodec::default().limits(), Limits::default());
}

#[test]
fn at_limits_is_fine() {
    // 4 headers, 32-byte header line, 100-byte body, 16-byte command line
    // cannot all be hit with valid commands, but the others can.
    let mut frame = b"SEND\n".to_vec();
    for i in 0..3 {
        frame.extend_from_slice(format!("h{i}:").as_bytes());
        frame.extend_from_slice(&[b'x'; 29]);
        frame.push(b'\n');
    }
    frame.extend_from_slice(b"\n");
    frame.extend_from_slice(&[b'b'; 100]);
    frame.push(0);
    for chunk in [1, 5, frame.len()] {
        let items = run(small(), &frame, chunk).unwrap();
        assert_eq!(items.len(), 1);
    }
    let mut with_cl = b"SEND\ncontent-length:100\n\n".to_vec();
    with_cl.extend_from_slice(&[0; 100]);
    with_cl.push(0);
    assert_eq!(run(small(), &with_cl, 9).unwrap().len(), 1);
}

#[test]
fn command_line_too_long() {
    let mut limits = small();
    limits.max_command_line_bytes = 5;
    let r = run(limits, b"SUBSCRIBE\nid:1\n\n\0", 100);
    assert!(
        matches!(r, Err(DecodeError::CommandLineTooLong { limit: 5 })),
        "{r:?}"
    );
    let r = run(limits, b"SUBSCRIBE", 1);
    assert!(
        matches!(r, Err(DecodeError::CommandLineTooLong { limit: 5 })),
        "{r:?}"
    );
    // A never-ending command line fails early.
    let r = run(Limits::default(), &[b'A'; 1000], 1);
    assert!(matches!(r, Err(DecodeError::UnknownCommand(_))), "{r:?}");
}

#[test]
fn too_many_headers() {
    each_chunking(b"SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0", |e| {
        matches!(e, DecodeError::TooManyHeaders { limit: 4 })
    });
}

#[test]
fn header_line_too_long() {
    let mut frame = b"SEND\nh:".to_vec();
    frame.extend_from_slice(&[b'x'; 31]);
    frame.extend_from_slice(b"\n\n\0");
    each_chunking(&frame, |e| {
        matches!(e, DecodeError::HeaderLineTooLong { limit: 32 })
    });
    // Never-ending line: fails as soon as the limit is passed.
    let mut endless = b"SEND\nh:".to_vec();
    endless.extend_from_slice(&[b'x'; 1000]);
    each_chunking(&endless, |e| {
        matches!(e, DecodeError::HeaderLineTooLong { limit: 32 })
    });
}

#[test]
fn body_too_large_with_content_length_is_immediate() {
    // No body bytes at all: the content-length alone is rejected.
    each_chunking(b"SEND\ncontent-length:101\n\n", |e| {
        matches!(e, DecodeError::BodyTooLarge { limit: 100 })
    });
}

#[test]
fn body_too_large_without_content_length() {
    let mut frame = b"SEND\n\n".to_vec();
    frame.extend_from_slice(&[b'b'; 101]);
    frame.push(0);
    each_chunking(&frame, |e| {
        matches!(e, DecodeError::BodyTooLarge { limit: 100 })
    });
    // Never-ending body.
    let mut endless = b"SEND\n\n".to_vec();
    endless.extend_from_slice(&[b'b'; 10_000]);
    each_chunking(&endless, |e| {
        matches!(e, DecodeError::BodyTooLarge { limit: 100 })
    });
}

#[test]
fn frame_too_large() {
    // 4 headers of 32 bytes + 100 body bytes > 256.
    let mut frame = b"SEND\n".to_vec();
    for i in 0..4 {
        frame.extend_from_slice(format!("h{i}:").as_bytes());
        frame.extend_from_slice(&[b'x'; 29]);
        frame.push(b'\n');
    }
    frame.extend_from_slice(b"content-length:100\n");
    let mut limits = small();
    limits.max_headers = 5;
    limits.max_header_line_bytes = 40;
    // With content-length, the error comes right after the blank line.
    frame.push(b'\n');
    let r = run(limits, &frame, 3);
    assert!(
        matches!(r, Err(DecodeError::FrameTooLarge { limit: 256 })),
        "{r:?}"
    );
    // Without: once the buffered frame passes the limit.
    let mut frame = b"SEND\n".to_vec();
    for i in 0..4 {
        frame.extend_from_slice(format!("h{i}:").as_bytes());
        frame.extend_from_slice(&[b'x'; 35]);
        frame.push(b'\n');
    }
    frame.push(b'\n');
    frame.extend_from_slice(&[b'b'; 99]);
    for chunk in [1, 4, 1000] {
        let r = run(limits, &frame, chunk);
        assert!(
            matches!(r, Err(DecodeError::FrameTooLarge { limit: 256 })),
            "{r:?}"
        );
    }
    // Header block alone too large.
    let mut limits = small();
    limits.max_frame_bytes = 50;
    let r = run(
        limits,
        b"SEND\na:1234567890\nb:1234567890\nc:1234567890\nd:1234567890\n",
        2,
    );
    assert!(
        matches!(r, Err(DecodeError::FrameTooLarge { limit: 50 })),
        "{r:?}"
    );
}

/// A 100 MB stream of header bytes without a blank line fails early with
/// default limits, and the buffer never grows past the limits.
#[test]
fn endless_header_block_fails_early() {
    let limits = Limits::default();
    let bound = limits.max_headers * (limits.max_header_line_bytes + 2) + 1024;
    let line = b"x-header:0123456789abcdef0123456789abcdef\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
    let mut c = StompCodec::new(limits);
    let mut buf = BytesMut::from(&b"SEND\n"[..]);
    let mut fed = 0usize;
    let err = loop {
        assert!(fed < 100 * 1024 * 1024, "never failed");
        buf.extend_from_slice(&chunk);
        fed += chunk.len();
        match c.decode(&mut buf) {
            Ok(None) => assert!(buf.len() <= bound + chunk.len()),
            Ok(Some(item)) => panic!("{item:?}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, DecodeError::TooManyHeaders { .. }), "{err:?}");
    assert!(fed <= bound + chunk.len(), "fed {fed}");

    // One endless header line.
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\nx:"[..]);
    let chunk = vec![b'y'; 64 * 1024];
    let mut fed = 0usize;
    let err = loop {
        assert!(fed < 100 * 1024 * 1024, "never failed");
        buf.extend_from_slice(&chunk);
        fed += chunk.len();
        if let Err(e) = c.decode(&mut buf) {
            break e;
        }
    };
    assert!(
        matches!(err, DecodeError::HeaderLineTooLong { .. }),
        "{err:?}"
    );
    assert!(fed <= 2 * chunk.len());
}

/// An endless body without content-length fails once past max_body_bytes.
#[test]
fn endless_body_fails_at_limit() {
    let limits = Limits::default();
    let mut c = StompCodec::new(limits);
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\n\n"[..]);
    let chunk = vec![b'z'; 1024 * 1024];
    let mut fed = 0usize;
    let err = loop {
        buf.extend_from_slice(&chunk);
        fed += chunk.len();
        assert!(
            fed <= limits.max_body_bytes + 2 * chunk.len(),
            "never failed"
        );
        if let Err(e) = c.decode(&mut buf) {
            break e;
        }
    };
    assert!(matches!(err, DecodeError::BodyTooLarge { .. }), "{err:?}");
}

#[test]
fn decoder_resets_after_frame() {
    // Limits apply per frame, not per connection.
    let mut stream = Vec::new();
    for _ in 0..50 {
        stream.extend_from_slice(b"SEND\na:1\nb:2\nc:3\nd:4\n\n0123456789\0\n");
    }
    let items = run(small(), &stream, 13).unwrap();
    assert_eq!(items.len(), 100);
    let _ = V12;
}
