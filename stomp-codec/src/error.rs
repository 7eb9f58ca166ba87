//! Decoding errors.
//!
//! Every variant's `Display` text is a single line without newlines, fit to
//! be sent as the `message` header of a STOMP `ERROR` frame.

/// Why the decoder rejected its input. After an error the connection's
/// stream is not resynchronisable: the broker sends an `ERROR` frame and
/// closes the connection.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// Reading from the transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The command line is not one of the STOMP commands (case-sensitive).
    /// The name is lossily converted to UTF-8, stripped of control
    /// characters and truncated.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),

    /// A header line has no colon or an empty name.
    #[error("malformed header line {line}: expected name:value with a non-empty name")]
    MalformedHeader {
        /// 1-based index of the header line within the frame's headers.
        line: usize,
    },

    /// An undefined escape sequence (`\` followed by `escape`) in a header.
    /// `escape` is `None` for a trailing lone backslash.
    #[error("invalid escape sequence {} in header line {line}", display_escape(*.escape))]
    InvalidEscape {
        /// The byte after the backslash, if any.
        escape: Option<u8>,
        /// 1-based index of the header line within the frame's headers.
        line: usize,
    },

    /// A header name or value (or the command line) is not valid UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,

    /// The `content-length` header is not a non-negative decimal integer
    /// that fits in memory.
    #[error("invalid content-length header")]
    InvalidContentLength,

    /// The byte after a `content-length` body is not the NUL terminator.
    #[error("frame not terminated by NUL after content-length body")]
    FrameNotTerminated,

    /// The whole frame exceeds `Limits::max_frame_bytes`.
    #[error("frame too large (limit {limit} bytes)")]
    FrameTooLarge {
        /// The configured limit.
        limit: usize,
    },

    /// The body exceeds `Limits::max_body_bytes`.
    #[error("body too large (limit {limit} bytes)")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },

    /// More header lines than `Limits::max_headers`.
    #[error("too many headers (limit {limit})")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },

    /// A header line exceeds `Limits::max_header_line_bytes`.
    #[error("header line too long (limit {limit} bytes)")]
    HeaderLineTooLong {
        /// The configured limit.
        limit: usize,
    },

    /// The command line exceeds `Limits::max_command_line_bytes`.
    #[error("command line too long (limit {limit} bytes)")]
    CommandLineTooLong {
        /// The configured limit.
        limit: usize,
    },

    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

fn display_escape(escape: Option<u8>) -> String {
    match escape {
        Some(b) if b.is_ascii_graphic() => format!("\\{}", b as char),
        Some(b) => format!("\\ followed by byte 0x{b:02x}"),
        None => "\\ at end of header".to_owned(),
    }
}

impl DecodeError {
    /// Whether this error is a [`crate::Limits`] violation (frame, body,
    /// header count, header line or command line too large).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            DecodeError::FrameTooLarge { .. }
                | DecodeError::BodyTooLarge { .. }
                | DecodeError::TooManyHeaders { .. }
                | DecodeError::HeaderLineTooLong { .. }
                | DecodeError::CommandLineTooLong { .. }
        )
    }

    /// Builds [`DecodeError::UnknownCommand`] from raw bytes: lossy UTF-8,
    /// control characters replaced, at most 32 characters.
    pub(crate) fn unknown_command(raw: &[u8]) -> DecodeError {
        let s: String = String::from_utf8_lossy(raw)
            .chars()
            .take(32)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        DecodeError::UnknownCommand(s)
    }
}
