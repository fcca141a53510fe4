//! HTTP/1.x requests: a pure parser of a byte slice, like the RESP and text ones.
//!
//! Hand-written rather than `httparse`: the server needs only the request line and a few headers
//! (Content-Length, Transfer-Encoding, Connection, Expect, Authorization, Host, and for the web
//! console If-None-Match and Accept-Encoding), its own bounds
//! on the head and the body, and the same `Incomplete` contract as the other parsers; that is
//! about as much code as adapting `httparse`'s result would be, with no dependency to audit.

use std::borrow::Cow;
use std::fmt;

/// Bounds on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request line plus headers, blank line included.
    pub max_head: usize,
    /// Largest body (a value: `proto-max-bulk-len`).
    pub max_body: usize,
}

/// Request methods the routes know; anything else is kept as `Other` for a 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: a GET without its body.
    Head,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// POST.
    Post,
    /// Any other token (POST, PATCH, ...).
    Other,
}

/// HTTP/1.0 or HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless asked to stay.
    Http10,
    /// HTTP/1.1: the connection stays unless asked to close.
    Http11,
}

/// One complete request; slices borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// The method.
    pub method: Method,
    /// The request target as sent (`/v1/keys/a%20b?ttl=5`).
    pub target: &'a [u8],
    /// The protocol version.
    pub version: Version,
    /// Whether the connection stays open after the response (version and `Connection`).
    pub keep_alive: bool,
    /// The `Content-Length`, when one was sent.
    pub content_length: Option<usize>,
    /// The `Authorization` header's value.
    pub authorization: Option<&'a [u8]>,
    /// The `If-None-Match` header's value (the console's pages are revalidated by `ETag`).
    pub if_none_match: Option<&'a [u8]>,
    /// The `Accept-Encoding` header's value (the console's pages are served gzip-compressed).
    pub accept_encoding: Option<&'a [u8]>,
    /// The body (empty without `Content-Length`).
    pub body: &'a [u8],
}

/// The parser's answer when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpParse<'a> {
    /// A whole request, and the bytes it used.
    Request(HttpRequest<'a>, usize),
    /// More bytes are needed. `continue_wanted` is true once the head is complete and asked for
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before sending its body.
    Incomplete {
        /// The head is in and holds `Expect: 100-continue`.
        continue_wanted: bool,
    },
}

/// Why a request cannot be served; each maps to a status, after which the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed syntax (400), with what was wrong.
    BadRequest(&'static str),
    /// The head is larger than the limit (431).
    HeadTooLarge,
    /// `Content-Length` above the limit (413).
    BodyTooLarge,
    /// A `Transfer-Encoding` (chunked bodies are not supported) (501).
    TransferEncoding,
    /// An `Expect` other than `100-continue` (417).
    Expectation,
    /// An HTTP version other than 1.0 and 1.1 (505).
    Version,
}

impl HttpError {
    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::BadRequest(_) => (400, "Bad Request"),
            HttpError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            HttpError::BodyTooLarge => (413, "Content Too Large"),
            HttpError::TransferEncoding => (501, "Not Implemented"),
            HttpError::Expectation => (417, "Expectation Failed"),
            HttpError::Version => (505, "HTTP Version Not Supported"),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::BodyTooLarge => f.write_str("request body too large"),
            HttpError::TransferEncoding => f.write_str("Transfer-Encoding is not supported"),
            HttpError::Expectation => f.write_str("only Expect: 100-continue is supported"),
            HttpError::Version => f.write_str("only HTTP/1.0 and HTTP/1.1 are supported"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Parses one request from the start of `input`.
///
/// Empty lines before a request line are skipped (RFC 9112 2.2). Lines may end in CRLF or a
/// bare LF. A body is read only by `Content-Length`.
pub fn parse_http<'a>(input: &'a [u8], limits: &HttpLimits) -> Result<HttpParse<'a>, HttpError> {
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len());
    // Blank lines before the request count against the head's bound too, so an endless stream
    // of them cannot grow the buffer.
    let Some(head_len) = head_end(&input[start..]) else {
        if input.len() > limits.max_head {
            return Err(HttpError::HeadTooLarge);
        }
        return Ok(HttpParse::Incomplete {
            continue_wanted: false,
        });
    };
    if start + head_len > limits.max_head {
        return Err(HttpError::HeadTooLarge);
    }
    let head = &input[start..start + head_len];
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let request_line = lines.next().unwrap_or_default();
    let (method, target, version) = request_line_parts(request_line)?;
    let mut request = HttpRequest {
        method,
        target,
        version,
        keep_alive: version == Version::Http11,
        content_length: None,
        authorization: None,
        if_none_match: None,
        accept_encoding: None,
        body: &[],
    };
    let mut host = false;
    let mut continue_wanted = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HttpError::BadRequest("obsolete header line folding"));
        }
        let colon =
            memchr::memchr(b':', line).ok_or(HttpError::BadRequest("header without ':'"))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::BadRequest("invalid header name"));
        }
        if value.iter().any(|&b| b < b' ' && b != b'\t' || b == 0x7f) {
            return Err(HttpError::BadRequest("control character in header value"));
        }
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
        if is("content-length") {
            let length = content_length(value)?;
            if request.content_length.is_some_and(|seen| seen != length) {
                return Err(HttpError::BadRequest("conflicting Content-Length"));
            }
            request.content_length = Some(length);
        } else if is("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        } else if is("connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                if token.eq_ignore_ascii_case(b"close") {
                    request.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::Http10 {
                    request.keep_alive = true;
                }
            }
        } else if is("expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(HttpError::Expectation);
            }
            continue_wanted = version == Version::Http11;
        } else if is("authorization") {
            request.authorization = Some(value);
        } else if is("if-none-match") {
            request.if_none_match = Some(value);
        } else if is("accept-encoding") {
            request.accept_encoding = Some(value);
        } else if is("host") {
            if host {
                return Err(HttpError::BadRequest("more than one Host"));
            }
            host = true;
        }
    }
    if version == Version::Http11 && !host {
        return Err(HttpError::BadRequest("HTTP/1.1 request without Host"));
    }
    let body_len = request.content_length.unwrap_or(0);
    if body_len > limits.max_body {
        return Err(HttpError::BodyTooLarge);
    }
    let body_start = start + head_len;
    let Some(body) = input.get(body_start..body_start + body_len) else {
        return Ok(HttpParse::Incomplete { continue_wanted });
    };
    request.body = body;
    Ok(HttpParse::Request(request, body_start + body_len))
}

/// The length of the head up to and including its blank line, if it is all there.
fn head_end(input: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(nl) = memchr::memchr(b'\n', &input[from..]) {
        let end = from + nl + 1;
        let rest = &input[end..];
        if rest.starts_with(b"\n") {
            return Some(end + 1);
        }
        if rest.starts_with(b"\r\n") {
            return Some(end + 2);
        }
        from = end;
    }
    None
}

fn request_line_parts(line: &[u8]) -> Result<(Method, &[u8], Version), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::BadRequest("invalid method"));
    }
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::BadRequest("invalid request target"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HttpError::Version)
        }
        _ => return Err(HttpError::BadRequest("invalid HTTP version")),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"PUT" => Method::Put,
        b"DELETE" => Method::Delete,
        b"POST" => Method::Post,
        _ => Method::Other,
    };
    Ok((method, target, version))
}

fn content_length(value: &[u8]) -> Result<usize, HttpError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    // Digits only, so the one failure left is a number beyond usize: too large for any limit.
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::BodyTooLarge)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// RFC 9110's `tchar`: what a method or header name may hold.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A percent-encoded string decoded (`%2F` is `/`); `+` becomes a space when `plus_is_space`
/// (query strings). None when a `%` is not followed by two hex digits.
pub fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<Cow<'_, [u8]>> {
    if !input
        .iter()
        .any(|&b| b == b'%' || plus_is_space && b == b'+')
    {
        return Some(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => {
                let hi = input.get(i + 1).and_then(|&h| hex(h))?;
                let lo = input.get(i + 2).and_then(|&l| hex(l))?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(out))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a request target into its path and its query (without the `?`).
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'?', target) {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &[]),
    }
}

/// The `name=value` pairs of a query string, still encoded.
pub fn query_pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match memchr::memchr(b'=', pair) {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        max_head: 256,
        max_body: 16,
    };

    fn parse(input: &[u8]) -> Result<HttpParse<'_>, HttpError> {
        parse_http(input, &LIMITS)
    }

    fn request(input: &[u8]) -> (HttpRequest<'_>, usize) {
        match parse(input) {
            Ok(HttpParse::Request(r, used)) => (r, used),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_get_and_a_put_with_body() {
        let input = b"GET /v1/keys/a HTTP/1.1\r\nHost: x\r\n\r\n";
        let (r, used) = request(input);
        assert_eq!(used, input.len());
        assert_eq!(
            (r.method, r.target, r.version),
            (Method::Get, &b"/v1/keys/a"[..], Version::Http11)
        );
        assert!(r.keep_alive);
        let input = b"PUT /k HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET";
        let (r, used) = request(input);
        assert_eq!((r.body, used), (&b"abc"[..], input.len() - 3));
        assert_eq!(r.content_length, Some(3));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let input = b"\r\nPUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nAuthorization: Bearer s\r\n\r\nabc";
        for cut in 0..input.len() {
            assert_eq!(
                parse(&input[..cut]),
                Ok(HttpParse::Incomplete {
                    continue_wanted: false
                }),
                "cut at {cut}"
            );
        }
        let (r, _) = request(input);
        assert_eq!(r.authorization, Some(&b"Bearer s"[..]));
    }

    #[test]
    fn versions_and_connection() {
        let (r, _) = request(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive);
        let (r, _) = request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive);
        let (r, _) = request(b"GET / HTTP/1.1\nHost: x\nConnection: foo, close\n\n");
        assert!(!r.keep_alive);
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::Version));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn expect_continue_is_reported_once_the_head_is_in() {
        let head =
            b"PUT /k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse(head),
            Ok(HttpParse::Incomplete {
                continue_wanted: true
            })
        );
        assert_eq!(
            parse(b"PUT /k HTTP/1.1\r\nHost: x\r\nExpect: other\r\n\r\n"),
            Err(HttpError::Expectation)
        );
    }

    #[test]
    fn bad_requests() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET / XTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HttpError::BadRequest(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::TransferEncoding)
        );
    }

    #[test]
    fn bounds() {
        let long = [b'a'; 300];
        assert_eq!(parse(&long), Err(HttpError::HeadTooLarge));
        let blank = [b'\n'; 300];
        assert_eq!(parse(&blank), Err(HttpError::HeadTooLarge));
        let mut big_head = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        big_head.extend_from_slice(&[b'a'; 250]);
        big_head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&big_head), Err(HttpError::HeadTooLarge));
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n"),
            Err(HttpError::BodyTooLarge)
        );
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn percent_decoding_and_queries() {
        assert_eq!(
            percent_decode(b"a%20b%2f", false).as_deref(),
            Some(&b"a b/"[..])
        );
        assert_eq!(percent_decode(b"a+b", false).as_deref(), Some(&b"a+b"[..]));
        assert_eq!(percent_decode(b"a+b", true).as_deref(), Some(&b"a b"[..]));
        assert_eq!(
            percent_decode(b"%ff%00", false).as_deref(),
            Some(&b"\xff\x00"[..])
        );
        assert_eq!(percent_decode(b"%g0", false), None);
        assert_eq!(percent_decode(b"%4", false), None);
        assert_eq!(split_target(b"/a?b=c"), (&b"/a"[..], &b"b=c"[..]));
        let pairs: Vec<_> = query_pairs(b"a=1&&b&c=").collect();
        assert_eq!(pairs, [(&b"a"[..], &b"1"[..]), (b"b", b""), (b"c", b"")]);
    }
}
