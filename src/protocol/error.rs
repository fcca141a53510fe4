//! Typed parse failures. `Incomplete` is its own cheap variant: it happens on every partial read.

use std::fmt;

/// Why bytes did not yield a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed; nothing was consumed.
    Incomplete,
    /// The request is bad but its end is known: reply with the error and go on after `consumed`.
    Invalid {
        /// Bytes to skip, up to and including the bad line's newline.
        consumed: usize,
        /// What was wrong.
        error: ProtocolError,
    },
    /// Framing is lost: reply with the error, then close the connection (as Redis does).
    Fatal(ProtocolError),
}

/// A protocol violation; its `Display` is Redis's exact error text, without the `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*` not followed by a valid count.
    InvalidMultibulkLength,
    /// A `*` header line longer than the inline limit.
    MbulkCountTooBig,
    /// A `$` header line longer than the inline limit.
    BulkCountTooBig,
    /// An element that does not start with `$`.
    ExpectedDollar(u8),
    /// `$` not followed by a valid length, or a length above the limit.
    InvalidBulkLength,
    /// A header line, or a text line, longer than the limit.
    InlineTooBig,
    /// A bulk whose payload is not followed by CRLF.
    MissingCrlf,
    /// A text line with an unterminated or misplaced quote.
    UnbalancedQuotes,
    /// More unanswerable input than `client-query-buffer-limit` allows.
    QueryBufferLimit,
    /// A RESP request with too many arguments from a client that has not authenticated.
    UnauthenticatedMultibulkLength,
    /// A RESP argument too big from a client that has not authenticated.
    UnauthenticatedBulkLength,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ERR Protocol error: ")?;
        match self {
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::MbulkCountTooBig => f.write_str("too big mbulk count string"),
            ProtocolError::BulkCountTooBig => f.write_str("too big bulk count string"),
            ProtocolError::ExpectedDollar(got) => {
                write!(f, "expected '$', got '{}'", char::from(*got))
            }
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::InlineTooBig => f.write_str("too big inline request"),
            ProtocolError::MissingCrlf => f.write_str("expected CRLF after bulk"),
            ProtocolError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            ProtocolError::QueryBufferLimit => f.write_str("query buffer limit reached"),
            ProtocolError::UnauthenticatedMultibulkLength => {
                f.write_str("unauthenticated multibulk length")
            }
            ProtocolError::UnauthenticatedBulkLength => f.write_str("unauthenticated bulk length"),
        }
    }
}

impl std::error::Error for ProtocolError {}
