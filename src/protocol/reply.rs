//! The value a command returns, before it is encoded for a dialect.

use std::borrow::Cow;

/// A command's answer, independent of the wire format it will be sent in.
///
/// Bulk payloads may borrow from the store so a `GET` copies its value once, straight into the
/// connection's output buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A short status line such as `OK` or `PONG` (RESP `+`).
    Status(Cow<'static, str>),
    /// An error whose text starts with its code, e.g. `ERR syntax error` (RESP `-`). Bytes, not
    /// text, because Redis echoes a client's bytes in some errors exactly as they came.
    Error(Cow<'static, [u8]>),
    /// A signed integer (RESP `:`).
    Integer(i64),
    /// A binary-safe string (RESP `$`).
    Bulk(Cow<'a, [u8]>),
    /// A missing value (RESP `$-1`).
    Nil,
    /// A missing array: EXEC of a transaction a watched key aborted (RESP2 `*-1`, RESP3 `_`).
    NilArray,
    /// An ordered list of replies (RESP `*`).
    Array(Vec<Reply<'a>>),
    /// An unordered collection (ACL GETUSER's flags): a RESP3 set (`~`), an array otherwise.
    Set(Vec<Reply<'a>>),
    /// A floating-point number, already formatted as Redis formats it: a RESP3 double (`,`), a
    /// bulk string otherwise.
    Double(Cow<'a, [u8]>),
    /// Field-value pairs (HELLO, CONFIG GET): a RESP3 map (`%`), a flat array in RESP2.
    Map(Vec<(Reply<'a>, Reply<'a>)>),
    /// Out-of-band data (pub/sub frames): a RESP3 push (`>`), an array in RESP2 and in text.
    Push(Vec<Reply<'a>>),
    /// Several replies sent back to back, as SUBSCRIBE's one frame per channel.
    Many(Vec<Reply<'a>>),
    /// Multi-line text meant for people (INFO, HELP): a bulk string in RESP2, a verbatim `txt`
    /// string in RESP3, printed raw as text.
    Text(String),
}

impl<'a> Reply<'a> {
    /// `+OK`.
    pub const OK: Reply<'static> = Reply::Status(Cow::Borrowed("OK"));

    /// An error reply from a static message.
    pub const fn error(message: &'static str) -> Self {
        Reply::Error(Cow::Borrowed(message.as_bytes()))
    }

    /// An error reply from a formatted message.
    pub fn error_owned(message: String) -> Self {
        Reply::Error(Cow::Owned(message.into_bytes()))
    }

    /// An error reply from raw bytes (which must hold no CR or LF).
    pub fn error_bytes(message: Vec<u8>) -> Self {
        Reply::Error(Cow::Owned(message))
    }

    /// A bulk reply borrowing its bytes.
    pub fn bulk(bytes: &'a [u8]) -> Self {
        Reply::Bulk(Cow::Borrowed(bytes))
    }

    /// A bulk reply owning its bytes.
    pub fn bulk_owned(bytes: Vec<u8>) -> Self {
        Reply::Bulk(Cow::Owned(bytes))
    }

    /// A bulk reply, or `Nil` when there is no value.
    pub fn from_option(value: Option<&'a [u8]>) -> Self {
        value.map_or(Reply::Nil, Reply::bulk)
    }

    /// True for error replies (counted in INFO stats).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}
