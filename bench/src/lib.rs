//! Load benchmark (being written).
