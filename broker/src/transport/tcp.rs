//! STOMP over TCP: bytes in, bytes out, one write per batch of frames.

use super::{OutBuf, Transport};
use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Read this much at least per `read` call.
const READ_CHUNK: usize = 8 * 1024;

/// Any byte stream (a `TcpStream`, an in-process duplex pipe).
pub(crate) struct StreamTransport<S> {
    stream: S,
}

impl<S> StreamTransport<S> {
    pub(crate) fn new(stream: S) -> Self {
        StreamTransport { stream }
    }
}

impl<S> Transport for StreamTransport<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        // `read_buf` is cancel-safe.
        self.stream.read_buf(buf).await
    }

    async fn write(&mut self, out: &mut OutBuf) -> io::Result<()> {
        self.stream.write_all(&out.bytes).await?;
        out.clear();
        self.stream.flush().await
    }

    async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    fn kind(&self) -> &'static str {
        "tcp"
    }
}
