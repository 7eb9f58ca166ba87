// The fuzz harness, shared by the cargo-fuzz target (`fuzz_targets/decode.rs`)
// and the regression test (`stomp-codec/tests/fuzz_regressions.rs`).
//
// Input layout: the first byte selects the setup, the rest is the stream.
// * bits 0-1: version (0 = not negotiated, 1 = 1.0, 2 = 1.1, 3 = 1.2);
// * bit 2: small limits instead of the defaults;
// * bits 3-7: read size (0 = the whole stream at once, else 1..=31 bytes,
//   varied per read).
//
// Checks: no panic; decoded frames respect the limits; every decoded frame,
// re-encoded in the same version and decoded again, is equal (ignoring
// `content-length`, which the encoder rewrites).

use bytes::BytesMut;
use stompede_codec::{encode_frame, Frame, Item, Limits, StompCodec, Version};
use tokio_util::codec::Decoder;

fn small_limits() -> Limits {
    Limits {
        max_frame_bytes: 300,
        max_body_bytes: 120,
        max_headers: 6,
        max_header_line_bytes: 40,
        max_command_line_bytes: 12,
    }
}

fn generous_limits() -> Limits {
    Limits {
        max_frame_bytes: 1 << 24,
        max_body_bytes: 1 << 24,
        max_headers: 1 << 16,
        max_header_line_bytes: 1 << 20,
        max_command_line_bytes: 64,
    }
}

fn strip_cl(frame: &Frame) -> Frame {
    let mut f = frame.clone();
    f.headers.remove("content-length");
    f
}

/// Whether `frame` can be written and read back unchanged in `version`.
fn expressible(frame: &Frame, version: Version) -> bool {
    // Unescaped headers (1.0, or CONNECT/STOMP/CONNECTED) cannot carry a
    // value ending in CR where CRLF is an EOL (1.2 and before negotiation).
    let escaped = frame.command.escapes_headers() && version != Version::V1_0;
    !(version == Version::V1_2 && !escaped && frame.headers.iter().any(|(_, v)| v.ends_with('\r')))
}

fn codec(version: Option<Version>, limits: Limits) -> StompCodec {
    let mut c = StompCodec::new(limits);
    if let Some(v) = version {
        c.set_version(v);
    }
    c
}

/// Runs one fuzz input; panics on a violated property.
pub fn run(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else {
        return;
    };
    let version = match setup & 3 {
        0 => None,
        1 => Some(Version::V1_0),
        2 => Some(Version::V1_1),
        _ => Some(Version::V1_2),
    };
    let limits = if setup & 4 != 0 {
        small_limits()
    } else {
        Limits::default()
    };
    let read = usize::from(setup >> 3);

    let mut dec = codec(version, limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut n = 0usize;
    'feed: while pos < stream.len() {
        let size = if read == 0 {
            stream.len()
        } else {
            1 + (read + n * 7) % 31
        };
        n += 1;
        let end = stream.len().min(pos + size);
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(Item::Frame(f))) => {
                    assert!(before - buf.len() <= limits.max_frame_bytes);
                    assert!(f.body.len() <= limits.max_body_bytes);
                    assert!(f.headers.len() <= limits.max_headers);
                    frames.push(f);
                }
                Ok(Some(Item::HeartBeat)) => assert!(buf.len() < before),
                Ok(None) => break,
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!msg.contains('\n') && !msg.contains('\r'));
                    break 'feed;
                }
            }
        }
        assert!(buf.len() <= limits.max_frame_bytes + 32);
    }

    let enc_version = version.unwrap_or(Version::V1_2);
    for frame in frames {
        if !expressible(&frame, enc_version) {
            continue;
        }
        let mut wire = BytesMut::new();
        encode_frame(&frame, enc_version, &mut wire);
        let mut again = codec(version, generous_limits());
        match again.decode(&mut wire) {
            Ok(Some(Item::Frame(g))) => {
                assert_eq!(strip_cl(&g), strip_cl(&frame));
                assert!(wire.is_empty());
            }
            other => panic!("re-encoded frame did not decode: {other:?} from {frame:?}"),
        }
    }
}
