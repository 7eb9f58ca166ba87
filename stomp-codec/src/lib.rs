//! # stompede-codec
//!
//! A zero-I/O codec for STOMP 1.0, 1.1 and 1.2 frames, built on `bytes`,
//! `memchr` and `nom`-style streaming parsers.
//!
//! * [`StompCodec`] implements `tokio_util::codec::{Decoder, Encoder}`: it
//!   yields [`Item::Frame`] or [`Item::HeartBeat`] and writes frames with the
//!   escaping of the negotiated [`Version`] (set it with
//!   [`StompCodec::set_version`] once CONNECT has been answered; before that
//!   the decoder accepts LF or CRLF and applies 1.2 rules, and CONNECT, STOMP
//!   and CONNECTED headers are never escaped).
//! * Incomplete input is `Ok(None)`, never an error. Parse progress is kept
//!   between calls: headers are parsed once, a `content-length` body is not
//!   scanned at all and a NUL-terminated body is not rescanned.
//! * Zero-copy: a complete frame is split off the read buffer and frozen;
//!   header strings and the body are `Bytes` slices of it (only headers that
//!   contained escapes are copied; well-known names are static strings).
//! * Every [`Limits`] violation is a typed [`DecodeError`] (see
//!   [`DecodeError::is_limit`]); the decoder never buffers more than the
//!   limits allow. Every error's `Display` is one line, fit for the
//!   `message` header of an ERROR frame.
//! * The free functions [`encode_frame`], [`encode_header`], [`escape_into`]
//!   and [`encode_heartbeat`] write into a `BytesMut` without a codec, e.g.
//!   to pre-encode a header block shared by many deliveries.
//!
//! ```
//! use bytes::BytesMut;
//! use stompede_codec::{Command, Item, StompCodec};
//! use tokio_util::codec::Decoder;
//!
//! let mut codec = StompCodec::default();
//! let mut buf = BytesMut::from(&b"SEND\ndestination:/queue/a\n\nhello\0"[..]);
//! match codec.decode(&mut buf).unwrap() {
//!     Some(Item::Frame(frame)) => {
//!         assert_eq!(frame.command, Command::Send);
//!         assert_eq!(frame.get("destination"), Some("/queue/a"));
//!         assert_eq!(&frame.body[..], b"hello");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! // After negotiation, 1.1 escapes apply to both directions.
//! codec.set_version(stompede_codec::Version::V1_1);
//! let mut out = BytesMut::new();
//! let frame = stompede_codec::Frame::new(Command::Message).header("k", "a:b");
//! tokio_util::codec::Encoder::encode(&mut codec, &frame, &mut out).unwrap();
//! assert_eq!(&out[..], b"MESSAGE\nk:a\\cb\n\n\0");
//! ```

mod codec;
mod decode;
mod encode;
mod error;
mod frame;
mod limits;

pub use codec::StompCodec;
pub use encode::{encode_frame, encode_header, encode_heartbeat, escape_into};
pub use error::DecodeError;
pub use frame::{Command, Frame, Headers, Item, Version};
pub use limits::Limits;
