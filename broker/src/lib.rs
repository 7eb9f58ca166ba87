//! Stompede broker (being written).
