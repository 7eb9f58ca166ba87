//! Specification fixtures: every valid example decodes to its frame however
//! it is split; every invalid one fails with its specific error.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::*;
use stompede_codec::{encode_frame, DecodeError, Item, StompCodec, Version};
use tokio_util::codec::{Decoder, Encoder};

fn expect_frame(codec: &mut StompCodec, buf: &mut BytesMut, fx: &Valid, how: &str) {
    match codec.decode(buf) {
        Ok(Some(Item::Frame(frame))) => assert_eq!(frame, fx.frame, "{} ({how})", fx.name),
        other => panic!("{} ({how}): expected frame, got {other:?}", fx.name),
    }
    assert!(buf.is_empty(), "{} ({how}): bytes left", fx.name);
    assert!(matches!(codec.decode(buf), Ok(None)), "{} ({how})", fx.name);
}

#[test]
fn valid_fixtures_whole() {
    for fx in valid() {
        let mut c = codec(fx.version);
        let mut buf = BytesMut::from(fx.bytes);
        expect_frame(&mut c, &mut buf, &fx, "whole");
    }
}

#[test]
fn valid_fixtures_split_at_every_offset() {
    for fx in valid() {
        for k in 1..fx.bytes.len() {
            let mut c = codec(fx.version);
            let mut buf = BytesMut::from(&fx.bytes[..k]);
            match c.decode(&mut buf) {
                Ok(None) => {}
                other => panic!("{} (prefix {k}): expected None, got {other:?}", fx.name),
            }
            buf.extend_from_slice(&fx.bytes[k..]);
            expect_frame(&mut c, &mut buf, &fx, &format!("split at {k}"));
        }
    }
}

#[test]
fn valid_fixtures_one_byte_at_a_time() {
    for fx in valid() {
        let mut c = codec(fx.version);
        let mut buf = BytesMut::new();
        let (last, init) = fx.bytes.split_last().unwrap();
        for (i, b) in init.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            match c.decode(&mut buf) {
                Ok(None) => {}
                other => panic!("{} (byte {i}): expected None, got {other:?}", fx.name),
            }
        }
        buf.extend_from_slice(&[*last]);
        expect_frame(&mut c, &mut buf, &fx, "byte by byte");
    }
}

#[test]
fn valid_fixtures_concatenated_with_heartbeats() {
    for version in [PRE, V10, V11, V12] {
        let fixtures: Vec<_> = valid()
            .into_iter()
            .filter(|fx| fx.version == version)
            .collect();
        let mut buf = BytesMut::new();
        for fx in &fixtures {
            buf.extend_from_slice(fx.bytes);
            buf.extend_from_slice(b"\n\n");
        }
        let mut c = codec(version);
        let frames = decode_all(&mut c, &mut buf);
        assert!(buf.is_empty());
        let expected: Vec<_> = fixtures.iter().map(|fx| fx.frame.clone()).collect();
        assert_eq!(frames, expected, "{version:?}");
    }
}

#[test]
fn valid_fixtures_reencode_roundtrip() {
    for fx in valid() {
        let version = fx.version.unwrap_or(Version::V1_2);
        // 1.0 and 1.1 cannot express a CR before LF once re-encoded... they
        // can: it is written raw and read back raw. Only 1.0 LF/colon in
        // names are inexpressible, and no fixture has them.
        let mut out = BytesMut::new();
        encode_frame(&fx.frame, version, &mut out);
        let mut c = codec(fx.version);
        let frames = decode_all(&mut c, &mut out);
        assert_eq!(frames.len(), 1, "{}", fx.name);
        assert_eq!(without_cl(&frames[0]), without_cl(&fx.frame), "{}", fx.name);
    }
}

#[test]
fn codec_encoder_uses_negotiated_version() {
    let frame = f(Send, &[("k", "a:b")], b"x");
    let mut c = StompCodec::default();
    let mut out = BytesMut::new();
    c.encode(&frame, &mut out).unwrap();
    assert_eq!(&out[..], b"SEND\nk:a\\cb\ncontent-length:1\n\nx\0");
    c.set_version(Version::V1_0);
    let mut out = BytesMut::new();
    c.encode(frame, &mut out).unwrap();
    assert_eq!(&out[..], b"SEND\nk:a:b\ncontent-length:1\n\nx\0");
}

fn decode_error(version: Option<Version>, chunks: impl Iterator<Item = Vec<u8>>) -> DecodeError {
    let mut c = codec(version);
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(&chunk);
        match c.decode(&mut buf) {
            Ok(Some(item)) => panic!("unexpected {item:?}"),
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    match c.decode_eof(&mut buf) {
        Err(e) => e,
        other => panic!("expected error at eof, got {other:?}"),
    }
}

#[test]
fn invalid_fixtures() {
    for fx in invalid() {
        let e = decode_error(fx.version, std::iter::once(fx.bytes.to_vec()));
        assert!((fx.check)(&e), "{}: got {e:?}", fx.name);
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
        let e = decode_error(fx.version, fx.bytes.iter().map(|b| vec![*b]));
        assert!((fx.check)(&e), "{} (byte by byte): got {e:?}", fx.name);
    }
}

#[test]
fn error_messages_are_one_line() {
    let errors = [
        DecodeError::UnknownCommand("X\nY".into()),
        DecodeError::MalformedHeader { line: 3 },
        DecodeError::InvalidEscape {
            escape: Some(b'\n'),
            line: 1,
        },
        DecodeError::InvalidEscape {
            escape: Some(b't'),
            line: 1,
        },
        DecodeError::InvalidEscape {
            escape: None,
            line: 1,
        },
        DecodeError::InvalidUtf8,
        DecodeError::InvalidContentLength,
        DecodeError::FrameNotTerminated,
        DecodeError::FrameTooLarge { limit: 1 },
        DecodeError::BodyTooLarge { limit: 1 },
        DecodeError::TooManyHeaders { limit: 1 },
        DecodeError::HeaderLineTooLong { limit: 1 },
        DecodeError::CommandLineTooLong { limit: 1 },
        DecodeError::Truncated,
        DecodeError::Io(std::io::Error::other("boom")),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    }
    assert!(DecodeError::BodyTooLarge { limit: 1 }.is_limit());
    assert!(!DecodeError::InvalidUtf8.is_limit());
}

#[test]
fn truncated_at_eof() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\n\nabc"[..]);
    assert!(matches!(c.decode(&mut buf), Ok(None)));
    assert!(matches!(
        c.decode_eof(&mut buf),
        Err(DecodeError::Truncated)
    ));
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"\n"[..]);
    assert!(matches!(c.decode_eof(&mut buf), Ok(Some(Item::HeartBeat))));
    assert!(matches!(c.decode_eof(&mut buf), Ok(None)));
}

#[test]
fn zero_copy_slices() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\nk:a\\cb\n\nhello\0"[..]);
    let base = buf.as_ptr() as usize;
    let Some(Item::Frame(frame)) = c.decode(&mut buf).unwrap() else {
        panic!()
    };
    let body = frame.body.as_ptr() as usize;
    assert_eq!(body, base + "SEND\ndestination:/q\nk:a\\cb\n\n".len());
    let (_, dest) = frame.headers.iter_shared().next().unwrap();
    assert_eq!(dest.as_ptr() as usize, base + "SEND\ndestination:".len());
    // The escaped value is a fresh allocation.
    assert_eq!(frame.get("k"), Some("a:b"));
}

/// Writes the fixtures as the fuzzer's seed corpus
/// (`STOMP_DUMP_CORPUS=1 cargo test -p stompede-codec --test fixtures -- --ignored`).
#[test]
#[ignore]
fn dump_fuzz_corpus() {
    if std::env::var_os("STOMP_DUMP_CORPUS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    std::fs::create_dir_all(&dir).unwrap();
    let selector = |v: Option<Version>| match v {
        None => 0u8,
        Some(Version::V1_0) => 1,
        Some(Version::V1_1) => 2,
        Some(Version::V1_2) => 3,
    };
    let mut n = 0;
    for (i, fx) in valid().iter().enumerate() {
        // Whole reads, then 3-byte reads with small limits.
        for extra in [0u8, 4 | (3 << 3)] {
            let mut data = vec![selector(fx.version) | extra];
            data.extend_from_slice(fx.bytes);
            std::fs::write(dir.join(format!("valid-{i:03}-{extra}")), data).unwrap();
            n += 1;
        }
    }
    for (i, fx) in invalid().iter().enumerate() {
        let mut data = vec![selector(fx.version)];
        data.extend_from_slice(fx.bytes);
        std::fs::write(dir.join(format!("invalid-{i:03}")), data).unwrap();
        n += 1;
    }
    assert!(n > 0);
}
