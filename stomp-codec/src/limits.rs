//! Configurable decoder limits. Every limit violation is a typed
//! [`crate::DecodeError`] that the broker turns into an ERROR frame.

/// Bounds on what the decoder accepts. The decoder never buffers more than
/// `max_frame_bytes` (plus one read) for a single frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame: command line, headers, body and terminator.
    pub max_frame_bytes: usize,
    /// Body alone.
    pub max_body_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
    /// Length of one header line (name, colon and value, escaped form).
    pub max_header_line_bytes: usize,
    /// Length of the command line.
    pub max_command_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 * 1024 * 1024 + 64 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            max_headers: 128,
            max_header_line_bytes: 8 * 1024,
            max_command_line_bytes: 64,
        }
    }
}
