//! STOMP conformance suite (being written).
