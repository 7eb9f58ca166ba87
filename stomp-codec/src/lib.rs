//! # stompede-codec
//!
//! A zero-I/O codec for STOMP 1.0, 1.1 and 1.2 frames, built on `nom`
//! streaming parsers and `bytes`.
//!
//! * [`StompCodec`] implements `tokio_util::codec::{Decoder, Encoder}`: it
//!   yields [`Item::Frame`] or [`Item::HeartBeat`] and writes frames with the
//!   escaping of the negotiated [`Version`].
//! * Incomplete input is `Ok(None)`, never an error; a large body is not
//!   rescanned on every read; header strings and the body are `Bytes` slices
//!   of the read buffer.
//! * Every [`Limits`] violation is a typed [`DecodeError`].
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
