//! Wire formats: one front door that turns bytes into a [`Request`], and encoders that turn a
//! [`Reply`] back into bytes for the dialect the request arrived in.
//!
//! Parsers here are pure functions of a byte slice; they never touch a socket.

mod error;
pub mod http;
mod human;
pub mod json;
mod reply;
mod resp;
mod text;

use std::borrow::Cow;

pub use error::{ParseError, ProtocolError};
pub use human::quote;
pub use reply::Reply;
pub use resp::{parse_i64, Progress};
pub use text::split_args;

/// Which wire format a request arrived in; its reply is encoded in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// RESP2 multi-bulk, as Redis clients send it; replies are exact RESP2.
    Resp,
    /// A human text line (`PUT name Alice`); replies are redis-cli style text.
    Text,
    /// RESP requests from a client that chose RESP3 replies with `HELLO 3`. The parser never
    /// produces it: the connection's choice turns `Resp` into this when replies are encoded.
    Resp3,
}

/// One parsed request: the command name followed by its arguments, all binary-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The dialect the request was written in.
    pub dialect: Dialect,
    /// `args[0]` is the command name. Arguments borrow from the input unless unescaping changed them.
    pub args: Vec<Cow<'a, [u8]>>,
}

/// Bounds on what a client may send, so a length prefix or a missing newline cannot make the
/// server allocate without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest text line, newline excluded (Redis: 64 KiB).
    pub max_inline_len: usize,
    /// Largest single RESP bulk argument (Redis's `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Most arguments in one RESP request (Redis: 1,048,576).
    pub max_multibulk_len: usize,
    /// The client must still authenticate: like Redis, allow it RESP requests of at most
    /// `UNAUTHENTICATED_MULTIBULK` arguments of at most `UNAUTHENTICATED_BULK` bytes, so nobody
    /// without the password can make the server buffer big requests.
    pub unauthenticated: bool,
}

/// Most arguments in a RESP request from a client that has not authenticated (Redis: 10).
pub const UNAUTHENTICATED_MULTIBULK: i64 = 10;
/// Largest RESP argument from a client that has not authenticated (Redis: 16 KiB).
pub const UNAUTHENTICATED_BULK: usize = 16 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inline_len: 64 * 1024,
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// The front door: parses one request from the start of `input`, choosing the dialect by its
/// first byte (`*` is RESP, anything else a text line).
///
/// Returns the request and how many bytes it used. A text line that holds nothing but blanks
/// yields a request with no arguments, which the caller skips.
pub fn parse_request<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<(Request<'a>, usize), ParseError> {
    parse_request_resuming(input, limits, &mut Progress::default())
}

/// [`parse_request`] for a connection that keeps `progress` between reads, so a request that
/// arrives in many pieces is parsed once overall, not once per piece.
pub fn parse_request_resuming<'a>(
    input: &'a [u8],
    limits: &Limits,
    progress: &mut Progress,
) -> Result<(Request<'a>, usize), ParseError> {
    match input.first() {
        None => Err(ParseError::Incomplete),
        Some(b'*') => resp::parse(input, limits, progress),
        Some(_) => text::parse(input, limits),
    }
}

/// The keys of the complete RESP requests at the start of `input`, read without parsing them,
/// so the loop can start loading what they will look up while it runs the ones before: fills
/// `keys` with those of up to `keys.len()` requests; returns how many requests that walked and
/// how many keys it found.
pub fn peek_keys<'a>(input: &'a [u8], keys: &mut [&'a [u8]]) -> (usize, usize) {
    resp::peek_keys(input, keys)
}

/// Appends `reply` to `out`, encoded for `dialect`.
pub fn encode_reply(reply: &Reply<'_>, dialect: Dialect, out: &mut Vec<u8>) {
    match dialect {
        Dialect::Resp => resp::encode(reply, false, out),
        Dialect::Resp3 => resp::encode(reply, true, out),
        Dialect::Text => human::encode(reply, out),
    }
}

/// Appends the start of an array of `count` elements that will follow one by one through
/// [`encode_item`] (EXEC's reply, whose elements are produced as its commands run).
pub fn encode_array_start(count: usize, dialect: Dialect, out: &mut Vec<u8>) {
    match dialect {
        Dialect::Resp | Dialect::Resp3 => {
            out.push(b'*');
            out.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Dialect::Text if count == 0 => human::encode(&Reply::Array(Vec::new()), out),
        Dialect::Text => {}
    }
}

/// Appends element `index` of the array [`encode_array_start`] began, in `dialect`.
pub fn encode_item(
    reply: &Reply<'_>,
    dialect: Dialect,
    index: usize,
    count: usize,
    out: &mut Vec<u8>,
) {
    match dialect {
        Dialect::Text => human::encode_item(reply, index, count, out),
        resp => encode_reply(reply, resp, out),
    }
}

/// Encodes `args` as a RESP multi-bulk request, the form Redis clients send and the log stores.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    resp::encode_request(args, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(input: &[u8]) -> Vec<Vec<u8>> {
        let (req, used) = parse_request(input, &Limits::default()).expect("parses");
        assert_eq!(used, input.len());
        req.args.into_iter().map(|a| a.into_owned()).collect()
    }

    #[test]
    fn both_dialects_give_the_same_request() {
        let cases: &[(&[u8], &[u8])] = &[
            (
                b"*3\r\n$3\r\nPUT\r\n$4\r\nname\r\n$5\r\nAlice\r\n",
                b"PUT name Alice\n",
            ),
            (b"*1\r\n$4\r\nPING\r\n", b"PING\r\n"),
            (
                b"*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$11\r\nhello world\r\n",
                b"SET greeting \"hello world\"\r\n",
            ),
            (
                b"*2\r\n$3\r\nGET\r\n$2\r\n\xff\n\r\n",
                b"GET \"\\xff\\n\"\n",
            ),
            (b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", b"ECHO \"\"\n"),
        ];
        for (resp, text) in cases {
            assert_eq!(
                args_of(resp),
                args_of(text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn dialect_follows_the_first_byte() {
        let limits = Limits::default();
        let (req, _) = parse_request(b"*1\r\n$4\r\nPING\r\n", &limits).unwrap();
        assert_eq!(req.dialect, Dialect::Resp);
        let (req, _) = parse_request(b"PING\n", &limits).unwrap();
        assert_eq!(req.dialect, Dialect::Text);
        assert_eq!(parse_request(b"", &limits), Err(ParseError::Incomplete));
    }

    #[test]
    fn encoded_request_parses_back() {
        let mut out = Vec::new();
        encode_request(&[&b"SET"[..], b"k", b"a b\r\n"], &mut out);
        assert_eq!(
            args_of(&out),
            vec![b"SET".to_vec(), b"k".to_vec(), b"a b\r\n".to_vec()]
        );
    }
}
