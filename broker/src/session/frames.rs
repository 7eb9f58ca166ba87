//! Building the frames the broker sends on its own account.

use bytes::{BufMut, BytesMut};
use stompede_codec::{encode_header, Command, Frame, Version};

/// Appends a RECEIPT for `receipt_id`.
pub(crate) fn receipt(receipt_id: &str, version: Version, dst: &mut BytesMut) {
    dst.put_slice(b"RECEIPT\n");
    encode_header("receipt-id", receipt_id, version, true, dst);
    dst.put_slice(b"\n\0");
}

/// An ERROR frame with a one-line `message`, a plain-text body explaining
/// it, and the `receipt-id` of the frame that failed, if it asked for one.
pub(crate) fn error(message: &str, detail: &str, receipt_id: Option<&str>) -> Frame {
    let mut frame = Frame::new(Command::Error)
        .header("message", message.replace(['\r', '\n'], " "))
        .header("content-type", "text/plain");
    if let Some(id) = receipt_id {
        frame = frame.header("receipt-id", id.to_owned());
    }
    let body = if detail.is_empty() { message } else { detail };
    frame.body(body.to_owned())
}

/// The one MESSAGE a refused subscription gets when refusals are
/// non-fatal: `x-event:denied` and the reason, on the subscription's id.
pub(crate) fn denied_subscription(
    subscription: &str,
    destination: &str,
    reason: &str,
    session_id: u64,
) -> Frame {
    Frame::new(Command::Message)
        .header("subscription", subscription.to_owned())
        .header("message-id", format!("denied-{session_id}-{subscription}"))
        .header("destination", destination.to_owned())
        .header("x-event", "denied")
        .header("x-error", reason.replace(['\r', '\n'], " "))
        .header("content-type", "text/plain")
        .body(reason.to_owned())
}

/// Appends a RECEIPT for `receipt_id` with extra `headers` (from a plugin).
pub(crate) fn receipt_with_headers(
    receipt_id: &str,
    headers: &stompede_codec::Headers,
    version: Version,
    dst: &mut BytesMut,
) {
    dst.put_slice(b"RECEIPT\n");
    encode_header("receipt-id", receipt_id, version, true, dst);
    for (name, value) in headers.iter() {
        if name != "receipt-id" {
            encode_header(name, value, version, true, dst);
        }
    }
    dst.put_slice(b"\n\0");
}
