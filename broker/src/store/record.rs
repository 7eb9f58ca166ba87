//! How a message is written into the store: as a STOMP 1.2 frame, encoded
//! and decoded by the project's own codec (one format, already tested).

use bytes::BytesMut;
use bytestring::ByteString;
use stompede_codec::{encode_frame, Command, Frame, Item, StompCodec, Version};
use stompede_plugin::Message;
use tokio_util::codec::Decoder;

use super::StoreError;

/// Header carrying the broker's message id inside a record.
const ID_HEADER: &str = "message-id";
/// Header carrying the destination inside a record.
const DESTINATION_HEADER: &str = "destination";

/// Encodes `message` as a record.
pub(crate) fn encode_message(message: &Message) -> Vec<u8> {
    let mut frame = Frame::new(Command::Send)
        .header(DESTINATION_HEADER, message.destination.clone())
        .header(ID_HEADER, message.message_id.clone());
    for (name, value) in message.headers.iter_shared() {
        frame.headers.push(name.clone(), value.clone());
    }
    frame.body = message.body.clone();
    let mut buf = BytesMut::with_capacity(64 + message.body.len());
    encode_frame(&frame, Version::V1_2, &mut buf);
    buf.to_vec()
}

/// Decodes a record made by [`encode_message`].
pub(crate) fn decode_message(record: &[u8]) -> Result<Message, StoreError> {
    let corrupt = |why: &str| StoreError(format!("corrupt message record: {why}"));
    let mut codec = StompCodec::default();
    codec.set_version(Version::V1_2);
    let mut buf = BytesMut::from(record);
    let frame = match codec.decode(&mut buf) {
        Ok(Some(Item::Frame(f))) => f,
        Ok(_) => return Err(corrupt("incomplete")),
        Err(e) => return Err(corrupt(&e.to_string())),
    };
    let destination = frame
        .headers
        .get_shared(DESTINATION_HEADER)
        .cloned()
        .ok_or_else(|| corrupt("no destination"))?;
    let id: ByteString = frame
        .headers
        .get_shared(ID_HEADER)
        .cloned()
        .ok_or_else(|| corrupt("no message-id"))?;
    let mut headers = frame.headers;
    headers.remove(DESTINATION_HEADER);
    headers.remove(ID_HEADER);
    headers.remove("content-length");
    Ok(Message::restored(destination, id, headers, frame.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stompede_codec::Headers;

    #[test]
    fn records_round_trip() {
        let mut headers = Headers::new();
        headers.push("persistent", "true");
        headers.push("odd", "a:b\nc");
        let m = Message::new(
            ByteString::from_static("/queue/q"),
            headers,
            bytes::Bytes::from_static(b"bo\0dy"),
        );
        let back = decode_message(&encode_message(&m)).unwrap();
        assert_eq!(back.destination, m.destination);
        assert_eq!(back.message_id, m.message_id);
        assert_eq!(back.headers, m.headers);
        assert_eq!(back.body, m.body);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_message(b"\xff\xfe").is_err());
        assert!(decode_message(b"SEND\n\n\0").is_err());
    }
}
