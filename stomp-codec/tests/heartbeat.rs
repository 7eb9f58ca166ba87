//! Heart-beats: EOLs between frames.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::*;
use stompede_codec::{encode_heartbeat, Item};
use tokio_util::codec::Decoder;

fn items(version: Option<stompede_codec::Version>, chunks: &[&[u8]]) -> Vec<Item> {
    let mut c = codec(version);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = c.decode(&mut buf).unwrap() {
            out.push(item);
        }
    }
    assert!(buf.is_empty(), "left: {buf:?}");
    out
}

fn count(items: &[Item]) -> (usize, usize) {
    let hb = items.iter().filter(|i| **i == Item::HeartBeat).count();
    (hb, items.len() - hb)
}

#[test]
fn single_lf() {
    for v in [PRE, V10, V11, V12] {
        assert_eq!(items(v, &[b"\n"]), vec![Item::HeartBeat]);
    }
    let mut b = BytesMut::new();
    encode_heartbeat(&mut b);
    assert_eq!(&b[..], b"\n");
}

#[test]
fn crlf_in_1_2_and_before_negotiation() {
    for v in [PRE, V12] {
        assert_eq!(items(v, &[b"\r\n"]), vec![Item::HeartBeat]);
        // CR and LF in separate reads.
        assert_eq!(items(v, &[b"\r", b"\n"]), vec![Item::HeartBeat]);
        let got = items(v, &[b"\r\n\n\r\n", b"\r", b"\nSEND\n\n\0"]);
        assert_eq!(count(&got), (2, 1));
    }
}

#[test]
fn cr_is_not_an_eol_in_1_0_and_1_1() {
    for v in [V10, V11] {
        let mut c = codec(v);
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        assert!(c.decode(&mut buf).is_err());
    }
}

#[test]
fn runs_of_eols_coalesce() {
    let got = items(V12, &[b"\n\n\n\n"]);
    assert_eq!(got, vec![Item::HeartBeat]);
    // One byte at a time: one heart-beat per byte.
    let got = items(V11, &[b"\n", b"\n", b"\n"]);
    assert_eq!(got, vec![Item::HeartBeat; 3]);
}

#[test]
fn eols_after_nul_are_heartbeats() {
    for v in [V10, V11, V12] {
        let got = items(
            v,
            &[b"SEND\ndestination:/q\n\nx\0\n\nSEND\ndestination:/q\n\ny\0\n"],
        );
        assert_eq!(count(&got), (2, 2), "{v:?}");
        assert!(matches!(got[0], Item::Frame(_)));
        assert_eq!(got[1], Item::HeartBeat);
        assert!(matches!(got[2], Item::Frame(_)));
        assert_eq!(got[3], Item::HeartBeat);
    }
    let got = items(V12, &[b"SEND\n\nx\0\r\n\r\n", b"SEND\n\n\0"]);
    assert_eq!(count(&got), (1, 2));
}

#[test]
fn heartbeats_between_content_length_frames() {
    let got = items(
        V12,
        &[b"\nSEND\ncontent-length:3\n\na\0b\0\n", b"\nMESSAGE\n\n\0"],
    );
    assert_eq!(count(&got), (3, 2));
}
