//! The `tokio_util::codec` glue.

use crate::decode::DecodeState;
use crate::encode::encode_frame;
use crate::error::DecodeError;
use crate::frame::{Frame, Item, Version};
use crate::limits::Limits;
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// A STOMP frame codec for one connection.
///
/// * As a [`Decoder`] it yields [`Item::Frame`] and [`Item::HeartBeat`];
///   incomplete input is `Ok(None)`. Parse progress is kept between calls.
/// * As an [`Encoder`] it writes frames (owned or borrowed) escaped for the
///   negotiated version.
///
/// Before [`StompCodec::set_version`] is called, the decoder accepts LF or
/// CRLF line ends and applies STOMP 1.2 rules (CONNECT, STOMP and CONNECTED
/// headers are never unescaped); the encoder likewise uses 1.2 escaping
/// (never applied to CONNECT, STOMP and CONNECTED).
#[derive(Debug, Default)]
pub struct StompCodec {
    limits: Limits,
    version: Option<Version>,
    state: DecodeState,
}

impl StompCodec {
    /// A codec with the given limits and no version negotiated yet.
    pub fn new(limits: Limits) -> Self {
        StompCodec {
            limits,
            version: None,
            state: DecodeState::default(),
        }
    }

    /// Sets the negotiated version (after CONNECT). It governs header
    /// escaping and line ends for both decoding and encoding.
    pub fn set_version(&mut self, v: Version) {
        self.version = Some(v);
    }

    /// The negotiated version, if any.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The decoder limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The version used to encode: the negotiated one, else 1.2.
    fn encode_version(&self) -> Version {
        self.version.unwrap_or(Version::V1_2)
    }
}

impl Decoder for StompCodec {
    type Item = Item;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        self.state.decode(src, self.version, &self.limits)
    }

    /// Like `decode`; at end of stream, leftover bytes of an unfinished
    /// frame are [`DecodeError::Truncated`]. A trailing lone CR is ignored.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() && !self.state.in_frame() => Ok(None),
            None if &src[..] == b"\r" && !self.state.in_frame() => {
                src.clear();
                Ok(None)
            }
            None => Err(DecodeError::Truncated),
        }
    }
}

impl Encoder<&Frame> for StompCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        encode_frame(frame, self.encode_version(), dst);
        Ok(())
    }
}

impl Encoder<Frame> for StompCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        encode_frame(&frame, self.encode_version(), dst);
        Ok(())
    }
}
