//! RESP2: the multi-bulk request parser and the reply encoder.

use std::borrow::Cow;

use super::{Dialect, Limits, ParseError, ProtocolError, Reply, Request};

/// How far the parse of a partly received request got, so the next attempt resumes there
/// instead of re-reading every argument: without it, a huge request trickling in costs
/// quadratic time on the event loop.
///
/// Offsets are relative to the start of the request, which stays put in the caller's buffer
/// until the request is complete.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Elements announced by the `*` header; 0 while the header is still unread.
    count: usize,
    /// Where the next element starts.
    pos: usize,
    /// `(start, end)` of each complete element so far.
    spans: Vec<(usize, usize)>,
}

/// Parses one `*<n>\r\n($<len>\r\n<bytes>\r\n){n}` request from the start of `input`,
/// resuming from `progress` (left empty when this returns anything but `Incomplete`).
///
/// The length prefixes are checked against `limits` but never used to allocate: arguments borrow
/// from `input`, and until all of a bulk has arrived the answer is `Incomplete`.
pub(super) fn parse<'a>(
    input: &'a [u8],
    limits: &Limits,
    progress: &mut Progress,
) -> Result<(Request<'a>, usize), ParseError> {
    let result = parse_elements(input, limits, progress);
    if !matches!(result, Err(ParseError::Incomplete)) {
        progress.count = 0;
        progress.pos = 0;
    }
    if result.is_err() && progress.pos == 0 {
        progress.spans.clear();
    }
    let used = result?;
    let args = progress
        .spans
        .drain(..)
        .map(|(start, end)| Cow::Borrowed(&input[start..end]))
        .collect();
    Ok((
        Request {
            dialect: Dialect::Resp,
            args,
        },
        used,
    ))
}

/// Requests with more elements than this end a [`peek_keys`] walk: finding their end would
/// read every header, for a hint.
const PEEK_ELEMENTS: usize = 8;

/// The keys (second elements) of the complete RESP requests at the start of `input`, found
/// without allocating or checking more than their headers: fills `keys` from the start with
/// those of up to `keys.len()` requests, and returns how many requests it walked and how many
/// keys it found. A hint for prefetching, never for running anything: it stops at the first
/// request that has not fully arrived, is not RESP, or is long.
pub(super) fn peek_keys<'a>(input: &'a [u8], keys: &mut [&'a [u8]]) -> (usize, usize) {
    let (mut requests, mut found, mut at) = (0, 0, 0);
    while requests < keys.len() {
        let Some((count, mut pos)) = peek_number(input, at, b'*') else {
            break;
        };
        if count == 0 || count > PEEK_ELEMENTS {
            break;
        }
        let mut key = None;
        for element in 0..count {
            let Some((len, start)) = peek_number(input, pos, b'$') else {
                return (requests, found);
            };
            let next = start.checked_add(len).and_then(|end| end.checked_add(2));
            let Some(next) = next.filter(|&next| next <= input.len()) else {
                return (requests, found);
            };
            if element == 1 {
                key = input.get(start..start + len);
            }
            pos = next;
        }
        if let (Some(key), Some(slot)) = (key, keys.get_mut(found)) {
            *slot = key;
            found += 1;
        }
        requests += 1;
        at = pos;
    }
    (requests, found)
}

/// `<kind><digits>\r\n` at `at`: the number and where the line ends.
fn peek_number(input: &[u8], at: usize, kind: u8) -> Option<(usize, usize)> {
    let rest = input.get(at..)?;
    if rest.first() != Some(&kind) {
        return None;
    }
    // A length has at most 20 digits: never scan further for the line's end.
    let cr = memchr::memchr(b'\r', rest.get(..rest.len().min(24))?)?;
    let number = usize::try_from(parse_i64(rest.get(1..cr)?)?).ok()?;
    Some((number, at + cr + 2))
}

/// Fills `progress.spans` with every element of the request; returns the request's length.
fn parse_elements(
    input: &[u8],
    limits: &Limits,
    progress: &mut Progress,
) -> Result<usize, ParseError> {
    if progress.pos > input.len() {
        // Progress from some other input: start over rather than trust it.
        progress.pos = 0;
    }
    if progress.pos == 0 {
        progress.spans.clear();
        let (count, pos) = header(input, 1, limits, ProtocolError::MbulkCountTooBig)?;
        progress.count = match count {
            // Redis treats `*0` and `*-1` as a request with nothing in it.
            n if n <= 0 => 0,
            n if n as u64 > limits.max_multibulk_len as u64 => {
                return Err(ParseError::Fatal(ProtocolError::InvalidMultibulkLength))
            }
            n if limits.unauthenticated && n > super::UNAUTHENTICATED_MULTIBULK => {
                return Err(ParseError::Fatal(
                    ProtocolError::UnauthenticatedMultibulkLength,
                ))
            }
            n => n as usize,
        };
        progress.pos = pos;
    }
    while progress.spans.len() < progress.count {
        let pos = progress.pos;
        match input.get(pos) {
            None => return Err(ParseError::Incomplete),
            Some(b'$') => {}
            Some(&other) => return Err(ParseError::Fatal(ProtocolError::ExpectedDollar(other))),
        }
        let (len, start) = header(input, pos + 1, limits, ProtocolError::BulkCountTooBig)?;
        let len = match usize::try_from(len) {
            // Redis's order: a length past every limit is invalid before it is unauthenticated.
            Ok(len) if len <= limits.max_bulk_len => {
                if limits.unauthenticated && len > super::UNAUTHENTICATED_BULK {
                    return Err(ParseError::Fatal(ProtocolError::UnauthenticatedBulkLength));
                }
                len
            }
            _ => return Err(ParseError::Fatal(ProtocolError::InvalidBulkLength)),
        };
        let end = start + len;
        match input.get(end..end + 2) {
            None => return Err(ParseError::Incomplete),
            Some(b"\r\n") => {}
            Some(_) => return Err(ParseError::Fatal(ProtocolError::MissingCrlf)),
        }
        progress.spans.push((start, end));
        progress.pos = end + 2;
    }
    Ok(progress.pos)
}

/// Reads the decimal number that starts at `input[at]` and runs up to CRLF.
/// Returns the number and the position after the CRLF.
fn header(
    input: &[u8],
    at: usize,
    limits: &Limits,
    too_long: ProtocolError,
) -> Result<(i64, usize), ParseError> {
    let rest = input.get(at..).unwrap_or_default();
    let Some(cr) = memchr::memchr(b'\r', rest) else {
        return if rest.len() > limits.max_inline_len {
            Err(ParseError::Fatal(too_long))
        } else {
            Err(ParseError::Incomplete)
        };
    };
    let invalid = match too_long {
        ProtocolError::MbulkCountTooBig => ProtocolError::InvalidMultibulkLength,
        _ => ProtocolError::InvalidBulkLength,
    };
    match rest.get(cr + 1) {
        None => return Err(ParseError::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(ParseError::Fatal(invalid)),
    }
    let number = parse_i64(&rest[..cr]).ok_or(ParseError::Fatal(invalid))?;
    Ok((number, at + cr + 2))
}

/// Parses a decimal integer the way Redis's `string2ll` does: optional `-`, digits, no spaces,
/// no `+`, no leading zeros, no overflow.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Appends the RESP2 encoding of `reply` to `out`, or the RESP3 one when `resp3`.
pub(super) fn encode(reply: &Reply<'_>, resp3: bool, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(s) => line(out, b'+', s.as_bytes()),
        Reply::Error(e) => line(out, b'-', e),
        Reply::Integer(n) => line(out, b':', itoa::Buffer::new().format(*n).as_bytes()),
        Reply::Bulk(bytes) => bulk(out, bytes),
        Reply::Double(text) if resp3 => line(out, b',', text),
        Reply::Double(text) => bulk(out, text),
        Reply::Text(text) if resp3 => {
            // A verbatim string: clients show it as text, not as quoted bytes.
            let len = text.len() + 4;
            line(out, b'=', itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"txt:");
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Text(text) => bulk(out, text.as_bytes()),
        Reply::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(items) | Reply::Push(items) | Reply::Set(items) => {
            let kind = match reply {
                Reply::Push(_) if resp3 => b'>',
                Reply::Set(_) if resp3 => b'~',
                _ => b'*',
            };
            line(
                out,
                kind,
                itoa::Buffer::new().format(items.len()).as_bytes(),
            );
            for item in items {
                encode(item, resp3, out);
            }
        }
        Reply::Many(replies) => {
            for reply in replies {
                encode(reply, resp3, out);
            }
        }
        Reply::Map(pairs) => {
            let (kind, len) = if resp3 {
                (b'%', pairs.len())
            } else {
                (b'*', pairs.len() * 2)
            };
            line(out, kind, itoa::Buffer::new().format(len).as_bytes());
            for (field, value) in pairs {
                encode(field, resp3, out);
                encode(value, resp3, out);
            }
        }
    }
}

/// Appends a RESP multi-bulk request holding `args`.
pub(super) fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    line(out, b'*', itoa::Buffer::new().format(args.len()).as_bytes());
    for arg in args {
        bulk(out, arg.as_ref());
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    line(
        out,
        b'$',
        itoa::Buffer::new().format(bytes.len()).as_bytes(),
    );
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";

    #[test]
    fn every_split_point_is_incomplete_until_the_end() {
        for cut in 0..SET.len() {
            assert_eq!(
                parse(&SET[..cut], &limits(), &mut Progress::default()),
                Err(ParseError::Incomplete),
                "cut at {cut}"
            );
        }
        let (req, used) = parse(SET, &limits(), &mut Progress::default()).unwrap();
        assert_eq!(used, SET.len());
        assert_eq!(req.args, vec![&b"SET"[..], b"key", b"va\r\nl"]);
    }

    #[test]
    fn peek_keys_finds_the_keys_of_the_requests_that_have_fully_arrived_and_nothing_else() {
        let two = [
            SET,
            b"*1\r\n$4\r\nPING\r\n",
            b"*2\r\n$3\r\nGET\r\n$2\r\nk2\r\n",
        ]
        .concat();
        for cut in 0..=two.len() {
            let mut keys = [&b""[..]; 4];
            let walked = peek_keys(&two[..cut], &mut keys);
            let expected = match cut {
                c if c < SET.len() => (0, 0),
                c if c < SET.len() + 14 => (1, 1),
                c if c < two.len() => (2, 1),
                _ => (3, 2),
            };
            assert_eq!(walked, expected, "cut at {cut}");
            assert_eq!(&keys[..walked.1], &[&b"key"[..], b"k2"][..walked.1]);
        }
        let mut one = [&b""[..]; 1];
        assert_eq!(peek_keys(&two, &mut one), (1, 1), "no more than asked for");
        for not_walked in [
            &b"GET key\r\n"[..],
            b"*0\r\n",
            b"*9\r\n$1\r\na\r\n",
            b"*2\r\n$3\r\nGET\r\n:1\r\n",
            b"*2\r\n$-1\r\n$3\r\nkey\r\n",
            b"*2\r\n$99999999999999999999\r\nGET\r\n$3\r\nkey\r\n",
            b"*2\r\n$3\r\nGET\r\n$0000000000000000000000003\r\nkey\r\n",
            b"*2\r\n$3\r\nGET\r\n$18446744073709551615\r\nkey\r\n",
        ] {
            let mut keys = [&b""[..]; 4];
            assert_eq!(
                peek_keys(not_walked, &mut keys),
                (0, 0),
                "{:?}",
                String::from_utf8_lossy(not_walked)
            );
        }
    }

    #[test]
    fn a_trickled_request_resumes_where_it_stopped() {
        let mut progress = Progress::default();
        for cut in 0..SET.len() {
            assert_eq!(
                parse(&SET[..cut], &limits(), &mut progress),
                Err(ParseError::Incomplete)
            );
        }
        assert_eq!(progress.spans.len(), 2, "SET and key were kept");
        let (req, used) = parse(SET, &limits(), &mut progress).unwrap();
        assert_eq!((req.args.len(), used), (3, SET.len()));
        assert_eq!(
            progress,
            Progress {
                count: 0,
                pos: 0,
                spans: Vec::new()
            }
        );
        // A failure clears the progress too.
        let bad = b"*2\r\n$1\r\na\r\nx";
        assert_eq!(
            parse(&bad[..bad.len() - 1], &limits(), &mut progress),
            Err(ParseError::Incomplete)
        );
        assert!(parse(bad, &limits(), &mut progress).is_err());
        assert_eq!(progress, Progress::default());
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let mut two = SET.to_vec();
        two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let (_, used) = parse(&two, &limits(), &mut Progress::default()).unwrap();
        let (req, rest) = parse(&two[used..], &limits(), &mut Progress::default()).unwrap();
        assert_eq!(req.args, vec![&b"PING"[..]]);
        assert_eq!(used + rest, two.len());
    }

    #[test]
    fn bad_framing_is_fatal_with_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
            (
                b"*2147483648\r\n",
                "ERR Protocol error: invalid multibulk length",
            ),
            (b"*1\r\nx\r\n", "ERR Protocol error: expected '$', got 'x'"),
            (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
            (
                b"*1\r\n$99999999999999999999\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$600000000\r\n",
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$1\r\nab\r\n",
                "ERR Protocol error: expected CRLF after bulk",
            ),
        ];
        for (input, text) in cases {
            match parse(input, &limits(), &mut Progress::default()) {
                Err(ParseError::Fatal(e)) => assert_eq!(e.to_string(), *text),
                other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(input)),
            }
        }
    }

    #[test]
    fn huge_length_prefixes_do_not_allocate_or_complete() {
        assert_eq!(
            parse(b"*1048576\r\n", &limits(), &mut Progress::default()),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            parse(
                b"*1\r\n$536870912\r\nab",
                &limits(),
                &mut Progress::default()
            ),
            Err(ParseError::Incomplete)
        );
    }

    #[test]
    fn a_header_without_newline_is_bounded() {
        let mut input = b"*".to_vec();
        input.resize(70 * 1024, b'1');
        assert_eq!(
            parse(&input, &limits(), &mut Progress::default()),
            Err(ParseError::Fatal(ProtocolError::MbulkCountTooBig))
        );
    }

    #[test]
    fn empty_multibulk_is_an_empty_request() {
        let (req, used) = parse(b"*0\r\n", &limits(), &mut Progress::default()).unwrap();
        assert!(req.args.is_empty());
        assert_eq!(used, 4);
    }

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"01",
            b"-0",
            b"1a",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_encode_exactly() {
        let mut out = Vec::new();
        let reply = Reply::Array(vec![
            Reply::OK,
            Reply::error("ERR x"),
            Reply::Integer(-3),
            Reply::bulk(b"a\r\nb"),
            Reply::Nil,
            Reply::Array(vec![]),
        ]);
        encode(&reply, false, &mut out);
        assert_eq!(
            out,
            b"*6\r\n+OK\r\n-ERR x\r\n:-3\r\n$4\r\na\r\nb\r\n$-1\r\n*0\r\n"
        );
    }

    #[test]
    fn resp3_has_nulls_maps_and_verbatim_text() {
        let reply = Reply::Array(vec![
            Reply::Nil,
            Reply::Map(vec![(Reply::bulk(b"proto"), Reply::Integer(3))]),
            Reply::Text("a\r\n".into()),
        ]);
        let mut out = Vec::new();
        encode(&reply, true, &mut out);
        assert_eq!(
            out,
            b"*3\r\n_\r\n%1\r\n$5\r\nproto\r\n:3\r\n=7\r\ntxt:a\r\n\r\n"
        );
        out.clear();
        encode(&reply, false, &mut out);
        assert_eq!(
            out,
            b"*3\r\n$-1\r\n*2\r\n$5\r\nproto\r\n:3\r\n$3\r\na\r\n\r\n"
        );
    }
}
