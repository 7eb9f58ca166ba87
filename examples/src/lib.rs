//! Examples for Stompede; see the `examples/` folder.
