//! # Stompede
//!
//! A STOMP 1.0/1.1/1.2 message broker over TCP and WebSocket, as a library.
//! The `stompede` binary is a thin command line around it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use stompede::Broker;
//!
//! let broker = Broker::builder()
//!     .tcp(Some("127.0.0.1:61613"))
//!     .websocket(Some("127.0.0.1:15674"))
//!     .build()
//!     .start()
//!     .await?;
//!
//! // An in-process client: no socket involved.
//! let mut client = broker.client(Some("app")).await?;
//! client.subscribe("s1", "/topic/greetings", "auto").await?;
//! client.send("/topic/greetings", "hello").await?;
//! let message = client.next_message().await?;
//! assert_eq!(&message.body[..], b"hello");
//!
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See `ARCHITECTURE.md` in the repository for the tour of the modules.

pub mod auth;
mod broker;
mod client;
pub mod config;
mod message;
pub mod plugin;
mod router;
mod session;
pub mod stats;
mod transport;

pub use broker::{Broker, BrokerBuilder, BrokerHandle};
pub use client::LocalClient;
pub use config::{Config, DEFAULT_CONFIG_TOML};
pub use stompede_codec as codec;
