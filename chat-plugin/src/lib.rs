//! # stompede-chat
//!
//! The chat plugin for Stompede (rooms, membership, history replay, read
//! receipts). Its implementation is tracked by the chat-plugin issue; this
//! crate only reserves the package name and place in the workspace until then.
