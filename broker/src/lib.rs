//! # Stompede
//!
//! A STOMP 1.0/1.1/1.2 message broker over TCP and WebSocket, as a library.
//! The `stompede` binary is a thin command line around it.
//!
//! ```
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! use stompede::Broker;
//!
//! // Port 0: any free port (use 61613 / 15674 for the usual ones).
//! let broker = Broker::builder()
//!     .tcp(Some("127.0.0.1:0"))
//!     .websocket(Some("127.0.0.1:0"))
//!     .admin(Some("127.0.0.1:0"))
//!     .store_in_memory()
//!     .build()
//!     .start()
//!     .await?;
//! println!("STOMP over TCP on {:?}", broker.tcp_addr());
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

mod access;
mod admin;
pub mod auth;
mod broker;
mod client;
pub mod cluster;
pub mod config;
mod plugin_host;
pub mod registry;
mod router;
pub mod security;
mod session;
pub mod stats;
pub mod store;
mod transport;

pub use broker::{Broker, BrokerBuilder, BrokerHandle};
pub use client::LocalClient;
pub use config::{Config, DEFAULT_CONFIG_TOML};
pub use stompede_codec as codec;
pub use stompede_plugin as plugin;
pub use stompede_plugin::Message;
