//! An in-process client for embedders: a real STOMP session over a memory
//! pipe, so it behaves exactly like a network client without a socket.

use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::io;
use stompede_codec::{Command, Frame, Item, StompCodec, Version};
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;

/// A STOMP 1.2 client connected to an in-process broker. Obtain one from
/// [`crate::BrokerHandle::client`].
pub struct LocalClient {
    framed: Framed<DuplexStream, StompCodec>,
    /// Frames that arrived while waiting for a receipt.
    backlog: VecDeque<Frame>,
    next_receipt: u64,
}

fn protocol_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl LocalClient {
    pub(crate) async fn connect(stream: DuplexStream, login: Option<&str>) -> io::Result<Self> {
        let mut client = LocalClient {
            framed: Framed::new(stream, StompCodec::default()),
            backlog: VecDeque::new(),
            next_receipt: 1,
        };
        let mut connect = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost")
            .header("heart-beat", "0,0");
        if let Some(login) = login {
            connect = connect.header("login", login.to_owned());
        }
        client.framed.send(connect).await?;
        let reply = client.read_frame().await?;
        if reply.command != Command::Connected {
            return Err(protocol_error(format!(
                "CONNECT refused: {}",
                reply.get("message").unwrap_or("no reason given")
            )));
        }
        client.framed.codec_mut().set_version(Version::V1_2);
        Ok(client)
    }

    /// Sends `frame` with a `receipt` header and waits for the RECEIPT;
    /// MESSAGEs arriving meanwhile are kept for [`LocalClient::next_message`].
    pub async fn request(&mut self, frame: Frame) -> io::Result<()> {
        let id = format!("local-{}", self.next_receipt);
        self.next_receipt += 1;
        self.framed
            .send(frame.header("receipt", id.clone()))
            .await?;
        loop {
            let reply = self.read_frame().await?;
            match reply.command {
                Command::Receipt if reply.get("receipt-id") == Some(id.as_str()) => return Ok(()),
                Command::Error => {
                    return Err(protocol_error(format!(
                        "broker error: {}",
                        reply.get("message").unwrap_or("")
                    )))
                }
                _ => self.backlog.push_back(reply),
            }
        }
    }

    /// Publishes `body` to `destination` and waits until the broker has
    /// routed it.
    pub async fn send(
        &mut self,
        destination: &str,
        body: impl Into<bytes::Bytes>,
    ) -> io::Result<()> {
        let frame = Frame::new(Command::Send)
            .header("destination", destination.to_owned())
            .body(body);
        self.request(frame).await
    }

    /// Subscribes with `id` to `destination` in `ack` mode (`auto`,
    /// `client` or `client-individual`).
    pub async fn subscribe(&mut self, id: &str, destination: &str, ack: &str) -> io::Result<()> {
        let frame = Frame::new(Command::Subscribe)
            .header("id", id.to_owned())
            .header("destination", destination.to_owned())
            .header("ack", ack.to_owned());
        self.request(frame).await
    }

    /// Waits for the next MESSAGE.
    pub async fn next_message(&mut self) -> io::Result<Frame> {
        loop {
            let frame = match self.backlog.pop_front() {
                Some(f) => f,
                None => self.read_frame().await?,
            };
            match frame.command {
                Command::Message => return Ok(frame),
                Command::Error => {
                    return Err(protocol_error(format!(
                        "broker error: {}",
                        frame.get("message").unwrap_or("")
                    )))
                }
                _ => continue,
            }
        }
    }

    /// Acknowledges a MESSAGE received in a client ack mode.
    pub async fn ack(&mut self, message: &Frame) -> io::Result<()> {
        let id = message
            .get("ack")
            .ok_or_else(|| protocol_error("message has no ack header".into()))?;
        self.request(Frame::new(Command::Ack).header("id", id.to_owned()))
            .await
    }

    /// Disconnects politely, waiting for the broker's receipt.
    pub async fn disconnect(mut self) -> io::Result<()> {
        self.request(Frame::new(Command::Disconnect)).await
    }

    async fn read_frame(&mut self) -> io::Result<Frame> {
        loop {
            match self.framed.next().await {
                Some(Ok(Item::Frame(frame))) => return Ok(frame),
                Some(Ok(Item::HeartBeat)) => continue,
                Some(Err(e)) => return Err(protocol_error(e.to_string())),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }
}
