//! The properties the fuzz targets check, in one file that both the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the stable replay test (`tests/fuzz_regressions.rs`) include,
//! so a saved input is judged by exactly the same rules on nightly and on stable.
//!
//! Each check takes arbitrary bytes and returns `Err(Violation)` when a property fails. A panic
//! inside pocketkv is a failure too (libFuzzer reports it as a crash; the replay test fails).
//! Hangs and allocations beyond a limit are caught around the check: by libFuzzer's `-timeout`,
//! `-rss_limit_mb` and `-malloc_limit_mb`, and by the replay test's own timeout and allocation
//! counter.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use pocketkv::persist;
use pocketkv::persist::log::{self as aof, LogError, Segment, LOG_HEADER};
use pocketkv::protocol::http::{self, HttpError, HttpLimits, HttpParse, HttpRequest, Method};
use pocketkv::protocol::{
    self, Dialect, Limits, ParseError, Progress, ProtocolError, Reply, Request,
};
use pocketkv::server::console::{self, Answer};
use pocketkv::store::Store;

/// One fuzz target; its name is the cargo-fuzz binary and the folder under `fuzz/corpus/` and
/// `fuzz/regressions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Bytes through the front door, whole and in chunks with a kept `Progress`.
    RespParser,
    /// Text lines through the splitter, and the human encoder's quoting back through it.
    TextParser,
    /// Bytes as a snapshot file, and an accepted snapshot written and read back.
    SnapshotLoader,
    /// Bytes as an append-only log segment, with and without repair.
    LogLoader,
    /// Bytes through the HTTP request parser, whole, pipelined and cut short; percent-decoding;
    /// each request through the web console's file lookup, and the bytes as the figures of its
    /// stats endpoint.
    HttpParser,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 5] = [
        Target::RespParser,
        Target::TextParser,
        Target::SnapshotLoader,
        Target::LogLoader,
        Target::HttpParser,
    ];

    /// The cargo-fuzz name.
    pub fn name(self) -> &'static str {
        match self {
            Target::RespParser => "resp_parser",
            Target::TextParser => "text_parser",
            Target::SnapshotLoader => "snapshot_loader",
            Target::LogLoader => "log_loader",
            Target::HttpParser => "http_parser",
        }
    }
}

/// A failed property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property, in a few words.
    pub property: &'static str,
    /// What happened, with the inputs that show it.
    pub detail: String,
    /// `Some(reason)` when this is a server bug already reported (listed in `tests/fuzz_regressions.rs`): the fuzz
    /// targets go on past it, the stable replay does not.
    pub known: Option<&'static str>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "property failed: {}: {}", self.property, self.detail)?;
        if let Some(known) = self.known {
            write!(f, " [known server bug: {known}]")?;
        }
        Ok(())
    }
}

fn violation(property: &'static str, detail: String) -> Violation {
    Violation {
        property,
        detail,
        known: None,
    }
}

/// Runs `target`'s check on `data`.
pub fn check(target: Target, data: &[u8]) -> Result<(), Violation> {
    match target {
        Target::RespParser => resp_parser(data),
        Target::TextParser => text_parser(data),
        Target::SnapshotLoader => snapshot_loader(data),
        Target::LogLoader => log_loader(data),
        Target::HttpParser => http_parser(data),
    }
}

/// The fuzz targets' body: panic (a crash to libFuzzer) on any violation not already known, or
/// on any violation at all when `FUZZ_STRICT` is set (to see whether the fuzzer finds the known
/// ones, or to check a fix).
#[allow(dead_code)] // used by the fuzz targets, not by the stable replay
pub fn fuzz_one(target: Target, data: &[u8]) {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if let Err(v) = check(target, data) {
        if v.known.is_none() || *STRICT.get_or_init(|| std::env::var_os("FUZZ_STRICT").is_some()) {
            panic!("{v}");
        }
    }
}

/// The limits the server runs with, and small ones so that inputs of a few hundred bytes reach
/// every limit (a 64 KiB line is beyond a fuzzer's `-max_len`).
fn limit_sets() -> [(&'static str, Limits); 2] {
    [
        ("default limits", Limits::default()),
        (
            "small limits",
            Limits {
                max_inline_len: 32,
                max_bulk_len: 64,
                max_multibulk_len: 8,
                unauthenticated: false,
            },
        ),
    ]
}

/// Printable bytes for messages: `"a\r\n"` style, cut after `max` bytes.
fn show(bytes: &[u8], max: usize) -> String {
    let mut text = String::from("\"");
    for &b in bytes.iter().take(max) {
        text.extend(std::ascii::escape_default(b).map(char::from));
    }
    text.push('"');
    if bytes.len() > max {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// resp_parser

/// What the connection does with its input, one step at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A request parsed at offset `at`, `used` bytes long.
    Request {
        at: usize,
        used: usize,
        dialect: Dialect,
        args: Vec<Vec<u8>>,
    },
    /// A bad request whose end is known: an error, and the input goes on after it.
    Invalid {
        at: usize,
        consumed: usize,
        error: ProtocolError,
    },
    /// Framing lost at `at`: an error, and the connection closes.
    Fatal { at: usize, error: ProtocolError },
    /// The input ended with `at..` still incomplete.
    Waiting { at: usize },
}

type Owned = Result<(Dialect, Vec<Vec<u8>>, usize), ParseError>;

fn owned(result: &Result<(Request<'_>, usize), ParseError>) -> Owned {
    match result {
        Ok((request, used)) => Ok((
            request.dialect,
            request.args.iter().map(|a| a.to_vec()).collect(),
            *used,
        )),
        Err(e) => Err(*e),
    }
}

/// Feeds `data` to the front door as a connection does when the bytes arrive so that the
/// buffer holds `data[..end]` for each `end` in `ends` in turn (the last is `data.len()`): after
/// each arrival, parse until `Incomplete`, keeping one `Progress` throughout. Every call is also
/// compared with a fresh `parse_request` of the same bytes.
fn feed(data: &[u8], ends: &[usize], limits: &Limits) -> Result<Vec<Event>, Violation> {
    let mut events = Vec::new();
    let mut progress = Progress::default();
    let mut at = 0;
    for &end in ends {
        if end < at {
            continue;
        }
        loop {
            let input = &data[at..end];
            let resumed = protocol::parse_request_resuming(input, limits, &mut progress);
            let resumed_owned = owned(&resumed);
            let fresh = owned(&protocol::parse_request(input, limits));
            if resumed_owned != fresh {
                return Err(violation(
                    "resuming with a kept Progress gives what a fresh parse gives",
                    format!(
                        "at offset {at} with {} bytes {}: resumed {resumed_owned:?}, fresh {fresh:?}",
                        input.len(),
                        show(input, 80)
                    ),
                ));
            }
            match resumed {
                Ok((request, used)) => {
                    if used == 0 || used > input.len() {
                        return Err(violation(
                            "a parsed request uses between 1 and all of the input's bytes",
                            format!("used {used} of {} bytes: {}", input.len(), show(input, 80)),
                        ));
                    }
                    if progress != Progress::default() {
                        return Err(violation(
                            "a complete request leaves the Progress empty",
                            format!("after {}: {progress:?}", show(&input[..used], 80)),
                        ));
                    }
                    within_limits(&request, &input[..used], limits)?;
                    events.push(Event::Request {
                        at,
                        used,
                        dialect: request.dialect,
                        args: request.args.iter().map(|a| a.to_vec()).collect(),
                    });
                    at += used;
                }
                Err(ParseError::Invalid { consumed, error }) => {
                    if consumed == 0 || consumed > input.len() {
                        return Err(violation(
                            "a bad request consumes between 1 and all of the input's bytes",
                            format!(
                                "consumed {consumed} of {} bytes: {}",
                                input.len(),
                                show(input, 80)
                            ),
                        ));
                    }
                    events.push(Event::Invalid {
                        at,
                        consumed,
                        error,
                    });
                    at += consumed;
                }
                Err(ParseError::Fatal(error)) => {
                    events.push(Event::Fatal { at, error });
                    return Ok(events);
                }
                Err(ParseError::Incomplete) => break,
            }
        }
    }
    events.push(Event::Waiting { at });
    Ok(events)
}

/// A parsed request respects `limits`: a RESP request has at most `max_multibulk_len` arguments
/// of at most `max_bulk_len` bytes; a text line is at most `max_inline_len` bytes, CR and LF
/// excluded.
fn within_limits(request: &Request<'_>, bytes: &[u8], limits: &Limits) -> Result<(), Violation> {
    let fits = match request.dialect {
        Dialect::Resp | Dialect::Resp3 => {
            request.args.len() <= limits.max_multibulk_len
                && request.args.iter().all(|a| a.len() <= limits.max_bulk_len)
        }
        Dialect::Text => {
            let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.len() <= limits.max_inline_len
        }
    };
    if fits {
        Ok(())
    } else {
        Err(violation(
            "a parsed request is within the limits",
            format!("{limits:?}: {}", show(bytes, 120)),
        ))
    }
}

/// Two runs agree when their events are equal, except where Redis differs by arrival too: a
/// header line (`*<count>` or `$<len>`) longer than the inline limit is "too big ... count
/// string" when the limit is reached before its CR arrives, but "invalid ... length" when the
/// CR is already there, and a wait for the LF when the CR is the last byte so far
/// (`processMultibulkBuffer` in Redis's networking.c checks in the same order). Either way the
/// framing is lost at the same request and the connection closes once the next byte comes.
fn same_event(data: &[u8], whole: &Event, chunked: &Event) -> bool {
    use ProtocolError::*;
    match (whole, chunked) {
        (Event::Fatal { at: a, error: e }, Event::Fatal { at: b, error: f }) if a == b => {
            e == f
                || matches!(
                    (e, f),
                    (InvalidMultibulkLength, MbulkCountTooBig)
                        | (InvalidBulkLength, BulkCountTooBig)
                )
        }
        (
            Event::Waiting { at: a },
            Event::Fatal {
                at: b,
                error: MbulkCountTooBig | BulkCountTooBig,
            },
        ) => a == b && data.last() == Some(&b'\r'),
        _ => whole == chunked,
    }
}

/// A small deterministic generator seeded by the input, so the chunk sizes change with every
/// mutation and a saved input replays with the very same cuts.
struct Cuts(u64);

impl Cuts {
    fn new(data: &[u8], salt: u64) -> Self {
        // FNV-1a over the input, then the salt.
        let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ salt;
        for &b in data {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Cuts(hash | 1)
    }

    fn next(&mut self, bound: usize) -> usize {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }

    /// Increasing ends with gaps of 1..=max_chunk, the last one `len`.
    fn ends(mut self, len: usize, max_chunk: usize) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut end = 0;
        while end < len {
            end = (end + 1 + self.next(max_chunk)).min(len);
            ends.push(end);
        }
        ends
    }
}

/// Split points for `data`: one byte at a time, chunk sizes drawn from the input's hash (small
/// and large), and a cut right after every CR and every LF.
fn splits(data: &[u8]) -> Vec<(&'static str, Vec<usize>)> {
    let len = data.len();
    let mut at_line_ends: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\r' || b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    at_line_ends.push(len);
    vec![
        (
            "one byte at a time",
            (1..=len.max(1)).map(|e| e.min(len)).collect(),
        ),
        ("chunks of 1-8 bytes", Cuts::new(data, 1).ends(len, 8)),
        ("chunks of 1-200 bytes", Cuts::new(data, 2).ends(len, 200)),
        ("cut after every CR and LF", at_line_ends),
    ]
}

/// `resp_parser`: any bytes through `parse_request` and `parse_request_resuming`.
///
/// - never panics, never loops without consuming;
/// - every result uses or consumes between 1 and all of the bytes it was given;
/// - every parsed request is within the limits (argument count and size, line length);
/// - resuming with a kept `Progress` gives, at every call, what a fresh parse gives;
/// - the whole buffer at once and the same bytes arriving in chunks give the same requests and
///   errors at the same offsets;
/// - every parsed request, re-encoded with `encode_request`, parses back to equal arguments.
pub fn resp_parser(data: &[u8]) -> Result<(), Violation> {
    for (limits_name, limits) in limit_sets() {
        let whole = feed(data, &[data.len()], &limits)?;
        for (split_name, ends) in splits(data) {
            let chunked = feed(data, &ends, &limits)?;
            let differ = whole.len() != chunked.len()
                || whole
                    .iter()
                    .zip(&chunked)
                    .any(|(w, c)| !same_event(data, w, c));
            if differ {
                let first = whole
                    .iter()
                    .zip(&chunked)
                    .position(|(w, c)| !same_event(data, w, c))
                    .unwrap_or(whole.len().min(chunked.len()));
                return Err(violation(
                    "parsing the whole buffer and parsing it in chunks give the same requests",
                    format!(
                        "{limits_name}, {split_name}, input {}: event {first} is {:?} whole but {:?} in chunks",
                        show(data, 120),
                        whole.get(first),
                        chunked.get(first)
                    ),
                ));
            }
        }
        for event in &whole {
            if let Event::Request { args, .. } = event {
                reencodes(args)?;
            }
        }
    }
    Ok(())
}

/// `args` encoded with `encode_request` parse back, with the server's limits, to `args`.
fn reencodes(args: &[Vec<u8>]) -> Result<(), Violation> {
    let borrowed: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let mut encoded = Vec::new();
    protocol::encode_request(&borrowed, &mut encoded);
    let back = owned(&protocol::parse_request(&encoded, &Limits::default()));
    match back {
        Ok((Dialect::Resp, back, used)) if back == args && used == encoded.len() => Ok(()),
        other => Err(violation(
            "a parsed request re-encoded with encode_request parses back to equal args",
            format!("{} gave {other:?}", show(&encoded, 200)),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// text_parser

/// The human (text dialect) form of a bulk string, without its newline.
fn human_bulk(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::encode_reply(&Reply::Bulk(Cow::Borrowed(bytes)), Dialect::Text, &mut out);
    if out.pop() != Some(b'\n') {
        out.push(b'?'); // cannot round-trip: caught by the caller
    }
    out
}

/// `args` printed the way the human encoder prints bulks, blank-separated, parse back as one
/// text line to `args`.
fn quotes_back(args: &[Vec<u8>]) -> Result<(), Violation> {
    let mut line = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(&human_bulk(arg));
    }
    line.push(b'\n');
    let back = owned(&protocol::parse_request(&line, &Limits::default()));
    match back {
        Ok((Dialect::Text, back, used)) if back == args && used == line.len() => Ok(()),
        other => Err(violation(
            "what the human encoder prints for a bulk parses back to the same bytes",
            format!(
                "args {:?} printed as {} parse as {other:?}",
                args.iter().map(|a| show(a, 40)).collect::<Vec<_>>(),
                show(&line, 200)
            ),
        )),
    }
}

/// `text_parser`: any bytes, split into lines, each through the front door as a text line.
///
/// - never panics;
/// - a line with its LF is a request using exactly the line, or an unbalanced-quotes error
///   consuming exactly the line, or, only when it is longer than the limit (CR excluded), a
///   fatal "too big inline request";
/// - the last piece, with no LF, is incomplete unless it is already longer than the limit;
/// - the arguments of every parsed line, printed by the human encoder (its quoting rules),
///   parse back to the same arguments; so does the whole input taken as one bulk string.
pub fn text_parser(data: &[u8]) -> Result<(), Violation> {
    quotes_back(&[b"ECHO".to_vec(), data.to_vec()])?;
    for piece in data.split_inclusive(|&b| b == b'\n') {
        // A `*` would choose RESP; a leading blank is skipped by the splitter.
        let line: Cow<'_, [u8]> = if piece.first() == Some(&b'*') {
            Cow::Owned([&b" "[..], piece].concat())
        } else {
            Cow::Borrowed(piece)
        };
        let has_lf = line.last() == Some(&b'\n');
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content_len = content.strip_suffix(b"\r").unwrap_or(content).len();
        for (limits_name, limits) in limit_sets() {
            let too_long = content_len > limits.max_inline_len;
            let result = owned(&protocol::parse_request(&line, &limits));
            let fine = match &result {
                Ok((dialect, args, used)) => {
                    if *dialect == Dialect::Text && has_lf && !too_long && *used == line.len() {
                        quotes_back(args)?;
                        true
                    } else {
                        false
                    }
                }
                Err(ParseError::Invalid { consumed, error }) => {
                    has_lf
                        && !too_long
                        && *consumed == line.len()
                        && *error == ProtocolError::UnbalancedQuotes
                }
                Err(ParseError::Fatal(ProtocolError::InlineTooBig)) => too_long,
                Err(ParseError::Fatal(_)) => false,
                Err(ParseError::Incomplete) => !has_lf && !too_long,
            };
            if !fine {
                return Err(violation(
                    "a text line is a request, a quoting error, or too long, by its length",
                    format!(
                        "{limits_name}: {} ({} bytes before the newline, CR excluded) gave {result:?}",
                        show(&line, 120),
                        content_len
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// snapshot_loader

/// `snapshot_loader`: any bytes as a snapshot file.
///
/// - never panics; an error names the file;
/// - an accepted snapshot, loaded into a `Store` and written back with `persist::encode`,
///   decodes to the same pairs.
pub fn snapshot_loader(data: &[u8]) -> Result<(), Violation> {
    let path = Path::new("/fuzz/snapshot.json");
    let pairs = match persist::decode(path, data) {
        Ok(pairs) => pairs,
        Err(e) => {
            let message = e.to_string();
            return if message.contains("/fuzz/snapshot.json") {
                Ok(())
            } else {
                Err(violation(
                    "a refused snapshot's error names the file",
                    format!("{}: {message}", show(data, 200)),
                ))
            };
        }
    };
    let mut store = Store::new();
    store.load(pairs.clone());
    let mut written = Vec::new();
    if let Err(e) = persist::encode(&store.image(), &mut written) {
        return Err(violation(
            "an accepted snapshot can be written back",
            format!("{}: {e}", show(data, 200)),
        ));
    }
    let mut back = match persist::decode(path, &written) {
        Ok(back) => back,
        Err(e) => {
            return Err(violation(
                "a snapshot pocketkv wrote loads back",
                format!(
                    "{} written as {}: {e}",
                    show(data, 200),
                    show(&written, 200)
                ),
            ))
        }
    };
    let mut expected = pairs;
    expected.sort();
    back.sort();
    // The same written back compressed (`snapshot-compression lz4`) loads to the same pairs.
    let packed = persist::compress::pack(&written).map(|packed| persist::decode(path, &packed));
    let mut unpacked = match packed {
        Ok(Ok(pairs)) => pairs,
        Ok(Err(e)) => return Err(violation("a compressed snapshot loads back", e.to_string())),
        Err(e) => return Err(violation("a snapshot can be compressed", e.to_string())),
    };
    unpacked.sort();
    if unpacked != back {
        return Err(violation(
            "a compressed snapshot loads to the same pairs",
            show(data, 200),
        ));
    }
    if back == expected {
        return Ok(());
    }
    Err(violation(
        "an accepted snapshot written back decodes to the same pairs",
        format!(
            "{} loaded {} pairs, wrote back {} pairs: {}",
            show(data, 200),
            expected.len(),
            back.len(),
            show(&written, 200)
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// log_loader

fn decode_log(data: &[u8], max_record: usize, repair: bool) -> Result<Segment, LogError> {
    aof::decode_segment(
        Path::new("/fuzz/appendonly.1.aof"),
        data,
        max_record,
        repair,
    )
}

/// `log_loader`: any bytes as an append-only log segment, read with a large and a small record
/// bound, with and without repair.
///
/// - never panics; an error names the file;
/// - "not a log" exactly when the bytes neither start with the header nor are a prefix of it;
/// - "damaged" only without repair, and then repair cuts at exactly that offset;
/// - the good prefix is the header followed by exactly the records read (re-encoded with
///   `encode_record`), each within the bound; what was dropped is exactly the rest;
/// - cutting the file to its good prefix, as start-up does, reads back the same records with
///   nothing dropped.
pub fn log_loader(data: &[u8]) -> Result<(), Violation> {
    let partial_header = data.len() < LOG_HEADER.len() && LOG_HEADER.starts_with(data);
    let is_log = partial_header || data.starts_with(LOG_HEADER);
    for max_record in [1 << 20, 16] {
        for repair in [false, true] {
            let setting = format!("max_record {max_record}, repair {repair}");
            let fail = |property: &'static str, what: String| {
                Err(violation(
                    property,
                    format!("{setting}: {what}; input {}", show(data, 200)),
                ))
            };
            let segment = match decode_log(data, max_record, repair) {
                Ok(segment) => segment,
                Err(e) => {
                    if !e.to_string().contains("/fuzz/appendonly.1.aof") {
                        return fail("a refused log's error names the file", e.to_string());
                    }
                    match e {
                        LogError::WrongFormat(_) if !is_log => continue,
                        LogError::Damaged { offset, .. }
                            if is_log && !repair && offset as usize >= LOG_HEADER.len() =>
                        {
                            let repaired = decode_log(data, max_record, true);
                            let cut_there = matches!(&repaired, Ok(Segment {
                                good_len,
                                dropped: Some(d),
                                ..
                            }) if *good_len == offset && d.offset == offset && !d.torn_tail);
                            if !cut_there {
                                return fail(
                                    "repair cuts a damaged log where the damage starts",
                                    format!("damaged at {offset}, repaired: {repaired:?}"),
                                );
                            }
                            continue;
                        }
                        e => return fail(
                            "a log is refused only when it is not one, or damaged without repair",
                            format!("{e:?}"),
                        ),
                    }
                }
            };
            if !is_log {
                return fail(
                    "bytes that are not a log are refused",
                    format!("{segment:?}"),
                );
            }
            let good_len = segment.good_len as usize;
            let mut rebuilt = Vec::new();
            if good_len > 0 {
                rebuilt.extend_from_slice(LOG_HEADER);
            }
            for record in &segment.records {
                if record.len() > max_record {
                    return fail(
                        "every record read is within the bound",
                        format!("a record of {} bytes", record.len()),
                    );
                }
                aof::encode_record(record, &mut rebuilt);
            }
            if good_len > data.len() || rebuilt != data[..good_len] {
                return fail(
                    "the good prefix is the header and exactly the records read",
                    format!(
                        "good_len {good_len}, {} records re-encoded as {}",
                        segment.records.len(),
                        show(&rebuilt, 120)
                    ),
                );
            }
            let rest_ok = match &segment.dropped {
                None => good_len == data.len(),
                Some(d) => {
                    d.offset as usize == good_len
                        && d.bytes as usize == data.len() - good_len
                        && d.bytes > 0
                }
            };
            if !rest_ok {
                return fail(
                    "what is dropped is exactly what follows the good prefix",
                    format!("good_len {good_len}, dropped {:?}", segment.dropped),
                );
            }
            let cut = decode_log(&data[..good_len], max_record, repair);
            let same = matches!(&cut, Ok(again)
                if again.records == segment.records
                    && again.good_len == segment.good_len
                    && again.dropped.is_none());
            if !same {
                return fail(
                    "a log cut to its good prefix reads back the same records, nothing dropped",
                    format!("cut to {good_len} bytes: {cut:?}"),
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// http_parser

/// A parse result with owned bytes, to compare two parses.
type HttpOwned = Result<Option<(String, Vec<u8>, usize)>, HttpError>;

fn http_owned(result: &Result<HttpParse<'_>, HttpError>) -> HttpOwned {
    match result {
        Ok(HttpParse::Request(request, used)) => Ok(Some((
            format!(
                "{:?} {:?} {:?} keep_alive={} length={:?} auth={:?}",
                request.method,
                request.target,
                request.version,
                request.keep_alive,
                request.content_length,
                request.authorization
            ),
            request.body.to_vec(),
            *used,
        ))),
        Ok(HttpParse::Incomplete { .. }) => Ok(None),
        Err(e) => Err(*e),
    }
}

/// The console's answer to a parsed request: a file only for exactly one of its paths (any
/// other path is not the console's: the server's 404, with nothing read from disk), and then
/// the answer its method and headers call for.
fn console_answer(request: &HttpRequest<'_>) -> Result<(), Violation> {
    let (path, _) = http::split_target(request.target);
    let answer = console::answer(request);
    let asset = console::ASSETS.iter().find(|a| a.path.as_bytes() == path);
    let get = matches!(request.method, Method::Get | Method::Head);
    let fresh = asset.is_some_and(|a| {
        request
            .if_none_match
            .is_some_and(|tags| console::etag_matches(tags, a.etag))
    });
    let expected = asset.map(|asset| match () {
        _ if !get => Answer::NotAllowed,
        _ if fresh => Answer::NotModified(asset),
        _ if !console::accepts_gzip(request.accept_encoding) => Answer::NotAcceptable,
        _ => Answer::File(asset),
    });
    if answer != expected {
        return Err(violation(
            "the console answers exactly its own paths, as method and headers say",
            format!("{request:?}: {answer:?}, expected {expected:?}"),
        ));
    }
    if let Some(Answer::File(asset)) = answer {
        if asset.gzip.get(..3) != Some(&[0x1f, 0x8b, 8][..]) {
            return Err(violation("a console file is gzip", asset.path.to_string()));
        }
    }
    Ok(())
}

/// The stats endpoint's JSON for figures taken from `data` (eight bytes each) is JSON holding
/// exactly those figures.
fn stats_json(data: &[u8]) -> Result<(), Violation> {
    let mut numbers = data.chunks(8).map(|chunk| {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(bytes)
    });
    let mut next = || numbers.next().unwrap_or(0);
    let sample = console::Sample {
        uptime_ms: next(),
        commands: next(),
        keys: next(),
        used_memory: next(),
        maxmemory: next(),
        rss: next(),
        clients: next(),
        net_input: next(),
        net_output: next(),
        latency: (0..23).map(|_| next()).collect(),
    };
    let mut out = Vec::new();
    console::stats_json(&sample, &mut out);
    let parsed: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        violation(
            "the stats endpoint writes JSON",
            format!("{e}: {}", show(&out, 400)),
        )
    })?;
    let figures = [
        ("uptime_ms", sample.uptime_ms),
        ("commands", sample.commands),
        ("keys", sample.keys),
        ("used_memory", sample.used_memory),
        ("maxmemory", sample.maxmemory),
        ("rss", sample.rss),
        ("clients", sample.clients),
        ("net_input", sample.net_input),
        ("net_output", sample.net_output),
    ];
    let latency: Option<Vec<u64>> = parsed["latency"]
        .as_array()
        .map(|list| list.iter().filter_map(serde_json::Value::as_u64).collect());
    let same = figures
        .iter()
        .all(|(name, value)| parsed[*name].as_u64() == Some(*value))
        && latency.as_ref() == Some(&sample.latency);
    if !same {
        return Err(violation(
            "the stats endpoint's JSON holds the figures given",
            format!("{sample:?} became {}", show(&out, 400)),
        ));
    }
    Ok(())
}

/// The HTTP parser on `data` as a connection's buffer, with the server's default bounds and with
/// small ones: no panic; a request uses at least one byte and at most all of them, and its body
/// is the `Content-Length` bytes just before its end; the bounds hold; every cut of a request
/// short of its end is incomplete (never an error, never another request); bytes after a
/// request do not change it; requests taken one after another (pipelining) each use bytes.
/// Then percent-decoding: no panic, never longer than its input, and every byte string
/// percent-encoded decodes back to itself.
pub fn http_parser(data: &[u8]) -> Result<(), Violation> {
    let limit_sets = [
        HttpLimits {
            max_head: 8192,
            max_body: 512 * 1024 * 1024,
        },
        HttpLimits {
            max_head: 64,
            max_body: 16,
        },
    ];
    for limits in &limit_sets {
        let mut at = 0;
        while at < data.len() {
            let input = &data[at..];
            let result = http::parse_http(input, limits);
            let (request, used) = match &result {
                Ok(HttpParse::Request(request, used)) => (request, *used),
                Ok(HttpParse::Incomplete { .. }) | Err(_) => break,
            };
            if used == 0 || used > input.len() {
                return Err(violation(
                    "a request uses 1 to all of its bytes",
                    format!("used {used} of {} in {}", input.len(), show(input, 120)),
                ));
            }
            let body_len = request.content_length.unwrap_or(0);
            if request.body.len() != body_len
                || input.get(used - body_len..used) != Some(request.body)
            {
                return Err(violation(
                    "the body is the Content-Length bytes at the end of the request",
                    format!("{:?} used {used} in {}", request, show(input, 120)),
                ));
            }
            if body_len > limits.max_body || used - body_len > limits.max_head {
                return Err(violation(
                    "requests stay within the limits",
                    format!("{limits:?}: {request:?}"),
                ));
            }
            console_answer(request)?;
            let alone = http_owned(&http::parse_http(&input[..used], limits));
            if alone != http_owned(&result) {
                return Err(violation(
                    "bytes after a request do not change it",
                    format!("alone {alone:?}, followed {:?}", http_owned(&result)),
                ));
            }
            // Cuts: every one near the start and the end, a few in between.
            let cuts = (0..used.min(48))
                .chain(used.saturating_sub(48)..used)
                .chain((1..16).map(|i| used * i / 16));
            for cut in cuts.filter(|&c| c < used) {
                let partial = http::parse_http(&input[..cut], limits);
                if !matches!(partial, Ok(HttpParse::Incomplete { .. })) {
                    return Err(violation(
                        "a request cut short is incomplete",
                        format!(
                            "cut at {cut} of {used}: {:?} for {}",
                            http_owned(&partial),
                            show(&input[..used], 120)
                        ),
                    ));
                }
            }
            at += used;
        }
    }
    for plus_is_space in [false, true] {
        if let Some(decoded) = http::percent_decode(data, plus_is_space) {
            if decoded.len() > data.len() {
                return Err(violation(
                    "percent-decoding never grows its input",
                    show(data, 120),
                ));
            }
        }
    }
    stats_json(data)?;
    let mut encoded = Vec::with_capacity(data.len() * 3);
    for &b in data {
        encoded.extend_from_slice(format!("%{b:02X}").as_bytes());
    }
    let back = http::percent_decode(&encoded, true);
    if back.as_deref() != Some(data) {
        return Err(violation(
            "percent-encoded bytes decode back to themselves",
            format!("{} came back as {back:?}", show(data, 120)),
        ));
    }
    Ok(())
}
