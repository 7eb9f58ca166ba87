//! Examples for Stompede. The programs live beside this crate:
//! `embed.rs` (`cargo run -p stompede-examples --example embed`).
