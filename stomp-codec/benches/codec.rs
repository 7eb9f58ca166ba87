#![allow(missing_docs)]
//! Criterion benchmarks of the STOMP codec.
//!
//! Run: `cargo bench -p stompede-codec --bench codec -- --warm-up-time 1 --measurement-time 3`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stompede_codec::{encode_frame, Command, Frame, Item, StompCodec, Version};
use tokio_util::codec::Decoder;

/// A typical SEND: 5 headers (content-length included) and a 100-byte body.
fn typical_send() -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/queue/orders.eu-west")
        .header("content-type", "application/json")
        .header("receipt", "r-000123")
        .header("correlation-id", "c-4f9a2b71")
        .body(Bytes::from(vec![b'x'; 100]))
}

/// The MESSAGE the broker sends for it.
fn matching_message() -> Frame {
    Frame::new(Command::Message)
        .header("destination", "/queue/orders.eu-west")
        .header("content-type", "application/json")
        .header("correlation-id", "c-4f9a2b71")
        .header("subscription", "sub-0")
        .header("message-id", "m-00000000001234")
        .header("ack", "a-00000000001234")
        .body(Bytes::from(vec![b'x'; 100]))
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_frame(frame, Version::V1_2, &mut b);
    b.to_vec()
}

fn codec() -> StompCodec {
    let mut c = StompCodec::default();
    c.set_version(Version::V1_2);
    c
}

fn bench_small(c: &mut Criterion) {
    let send = encoded(&typical_send());
    let mut g = c.benchmark_group("typical");
    g.throughput(Throughput::Elements(1));

    // Decode: the read buffer holds many frames, as after a large read.
    const BATCH: usize = 1024;
    let mut stream = Vec::with_capacity(send.len() * BATCH);
    for _ in 0..BATCH {
        stream.extend_from_slice(&send);
    }
    let mut dec = codec();
    let mut buf = BytesMut::with_capacity(stream.len());
    g.bench_function("decode_send", |b| {
        b.iter(|| {
            if buf.is_empty() {
                buf.reserve(stream.len());
                buf.extend_from_slice(&stream);
            }
            match dec.decode(&mut buf) {
                Ok(Some(Item::Frame(f))) => black_box(f),
                other => panic!("{other:?}"),
            };
        })
    });

    let frame = typical_send();
    let mut out = BytesMut::with_capacity(1 << 20);
    g.bench_function("encode_send", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 512 {
                out.clear();
            }
            encode_frame(black_box(&frame), Version::V1_2, &mut out);
        })
    });

    let msg = matching_message();
    g.bench_function("encode_message", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 512 {
                out.clear();
            }
            encode_frame(black_box(&msg), Version::V1_2, &mut out);
        })
    });
    g.finish();
}

fn large(len: usize) -> Vec<u8> {
    let frame = Frame::new(Command::Send)
        .header("destination", "/queue/big")
        .body(Bytes::from(vec![b'y'; len]));
    encoded(&frame)
}

fn bench_large(c: &mut Criterion) {
    let mut g = c.benchmark_group("large");

    // 64 KiB body arriving in 4 KiB reads, with content-length.
    let wire = large(64 * 1024);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode_64k_in_4k_reads", |b| {
        let mut dec = codec();
        let mut buf = BytesMut::with_capacity(wire.len() + 4096);
        b.iter(|| {
            let mut got = None;
            for chunk in wire.chunks(4096) {
                buf.extend_from_slice(chunk);
                if let Some(item) = dec.decode(&mut buf).unwrap_or(None) {
                    got = Some(item);
                }
            }
            black_box(got.expect("frame"));
        })
    });

    // Same, without content-length: the NUL search resumes where it stopped.
    let mut nocl = b"SEND\ndestination:/queue/big\n\n".to_vec();
    nocl.extend(std::iter::repeat_n(b'y', 64 * 1024));
    nocl.push(0);
    g.throughput(Throughput::Bytes(nocl.len() as u64));
    g.bench_function("decode_64k_in_4k_reads_no_content_length", |b| {
        let mut dec = codec();
        let mut buf = BytesMut::with_capacity(nocl.len() + 4096);
        b.iter(|| {
            let mut got = None;
            for chunk in nocl.chunks(4096) {
                buf.extend_from_slice(chunk);
                if let Some(item) = dec.decode(&mut buf).unwrap_or(None) {
                    got = Some(item);
                }
            }
            black_box(got.expect("frame"));
        })
    });

    // 1 MiB body with content-length, whole frame in the buffer: no byte of
    // the body is read or copied (the time is the header parse and split).
    let wire = large(1024 * 1024);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode_1m", |b| {
        let mut dec = codec();
        b.iter_batched_ref(
            || BytesMut::from(&wire[..]),
            |buf| black_box(dec.decode(buf).unwrap_or(None).expect("frame")),
            BatchSize::LargeInput,
        )
    });
    // 1 MiB without content-length: the NUL is searched once.
    let mut nocl = b"SEND\ndestination:/queue/big\n\n".to_vec();
    nocl.extend(std::iter::repeat_n(b'y', 1024 * 1024));
    nocl.push(0);
    g.throughput(Throughput::Bytes(nocl.len() as u64));
    g.bench_function("decode_1m_no_content_length", |b| {
        let mut dec = codec();
        b.iter_batched_ref(
            || BytesMut::from(&nocl[..]),
            |buf| black_box(dec.decode(buf).unwrap_or(None).expect("frame")),
            BatchSize::LargeInput,
        )
    });

    g.throughput(Throughput::Bytes(wire.len() as u64));
    let frame = Frame::new(Command::Message)
        .header("destination", "/queue/big")
        .body(Bytes::from(vec![b'y'; 1024 * 1024]));
    g.bench_function("encode_1m", |b| {
        let mut out = BytesMut::with_capacity(wire.len() + 1024);
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&frame), Version::V1_2, &mut out);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_small, bench_large);
criterion_main!(benches);
