//! The text dialect end to end: a person at `nc` or `telnet` typing lines at the real binary.
//!
//! Every reply is checked byte for byte. Replies whose length is not known up front (HELP, INFO,
//! KEYS, SCAN, TIME) are read up to the echo of a marker sent right after the request, so no test
//! waits on a timer. Replies whose element order the server does not fix (KEYS, SCAN) are checked
//! by parsing them, re-rendering the exact expected bytes in the order received, and comparing
//! the element sets.

mod common;

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{bulk, resp, resp_bytes, Client, Server};

/// Sent as `ECHO MARKER` after a request; its echo (bare, since it is all safe characters) ends
/// the request's reply.
const MARKER: &str = "--end-of-reply--";

const NOT_INTEGER: &str = "(error) ERR value is not an integer or out of range\n";

/// Sends `request` (line ending included) followed by `ECHO MARKER`, and returns everything the
/// server answered before the marker's echo: exactly the request's reply, however long.
fn ask_raw(c: &mut Client, request: &[u8]) -> String {
    let mut out = request.to_vec();
    out.extend_from_slice(format!("ECHO {MARKER}\n").as_bytes());
    c.send(&out);
    let end = format!("{MARKER}\n");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(end.as_bytes()) {
        match c.stream.read(&mut chunk) {
            Ok(0) => panic!(
                "connection closed before the end of the reply to {:?}; got {:?}",
                String::from_utf8_lossy(request),
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "no complete reply to {:?} ({e}); got {:?}",
                String::from_utf8_lossy(request),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    got.truncate(got.len() - end.len());
    String::from_utf8(got).expect("text replies are ASCII unless a value is printed raw")
}

/// The full reply to one LF-terminated line.
fn ask(c: &mut Client, line: &str) -> String {
    ask_raw(c, format!("{line}\n").as_bytes())
}

/// Sends `line` and asserts the reply is exactly `expected`.
#[track_caller]
fn say(c: &mut Client, line: &str, expected: &str) {
    assert_eq!(ask(c, line), expected, "reply to {line:?}");
}

/// The `(integer) N` reply's N, after checking the reply is exactly that form.
#[track_caller]
fn integer_reply(reply: &str) -> i64 {
    let n: i64 = reply
        .strip_prefix("(integer) ")
        .and_then(|r| r.strip_suffix('\n'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"));
    assert_eq!(reply, format!("(integer) {n}\n"));
    n
}

/// Renders `items` (already in their printed form) as redis-cli numbers an array: right-aligned
/// numbers as wide as the largest, lines after the first indented by `indent` columns.
fn numbered(items: &[String], indent: usize) -> String {
    if items.is_empty() {
        return "(empty array)\n".to_string();
    }
    let width = items.len().to_string().len();
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&format!("{:>width$}) {item}\n", i + 1));
    }
    out
}

/// The printed elements of a flat array reply, after checking its numbering is exact.
#[track_caller]
fn array_items(reply: &str) -> Vec<String> {
    if reply == "(empty array)\n" {
        return Vec::new();
    }
    let items: Vec<String> = reply
        .lines()
        .map(|line| {
            let (_, item) = line
                .trim_start()
                .split_once(") ")
                .unwrap_or_else(|| panic!("not an array line: {line:?} in {reply:?}"));
            item.to_string()
        })
        .collect();
    assert_eq!(reply, numbered(&items, 0), "array layout");
    items
}

/// Asserts `reply` is an array holding exactly `expected` (printed forms) in some order.
#[track_caller]
fn assert_unordered(reply: &str, expected: &[&str]) {
    let mut got = array_items(reply);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "elements of {reply:?}");
}

/// Parses one SCAN reply, checking its exact nested layout; returns the cursor and printed keys.
#[track_caller]
fn scan_page(reply: &str) -> (String, Vec<String>) {
    let (first, rest) = reply
        .split_once('\n')
        .unwrap_or_else(|| panic!("not a SCAN reply: {reply:?}"));
    let cursor = first
        .strip_prefix("1) ")
        .unwrap_or_else(|| panic!("no cursor line in {reply:?}"))
        .to_string();
    assert!(
        !cursor.is_empty() && cursor.bytes().all(|b| b.is_ascii_digit()),
        "cursor {cursor:?} in {reply:?}"
    );
    let keys: Vec<String> = if rest == "2) (empty array)\n" {
        Vec::new()
    } else {
        rest.lines()
            .map(|line| {
                let (_, key) = line
                    .get(3..)
                    .and_then(|l| l.trim_start().split_once(") "))
                    .unwrap_or_else(|| panic!("not a key line: {line:?} in {reply:?}"));
                key.to_string()
            })
            .collect()
    };
    let expected = format!("1) {cursor}\n2) {}", numbered(&keys, 3));
    assert_eq!(reply, expected, "SCAN reply layout");
    (cursor, keys)
}

/// Runs a full SCAN with `options` (`MATCH p COUNT n`), returning every key printed, sorted.
fn scan_all(c: &mut Client, options: &str) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    for _ in 0..10_000 {
        let (next, page) = scan_page(&ask(c, &format!("SCAN {cursor} {options}")));
        keys.extend(page);
        cursor = next;
        if cursor == "0" {
            keys.sort();
            keys.dedup();
            return keys;
        }
    }
    panic!("SCAN {options} never returned cursor 0");
}

/// How the text dialect prints a bulk string, written out from the documented rule: bare when
/// non-empty and made only of `[A-Za-z0-9-_.:/@+=,]`, else double-quoted with escapes.
fn printed(bytes: &[u8]) -> String {
    let bare = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:/@+=,".contains(b);
    if !bytes.is_empty() && bytes.iter().all(bare) {
        return String::from_utf8(bytes.to_vec()).unwrap();
    }
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn connection_commands() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    say(&mut c, "PING", "PONG\n");
    say(&mut c, "ping", "PONG\n");
    say(&mut c, "PiNg", "PONG\n");
    say(&mut c, "PING hello", "hello\n");
    say(&mut c, "PING \"hello world\"", "\"hello world\"\n");
    say(
        &mut c,
        "PING a b",
        "(error) ERR wrong number of arguments for 'ping' command\n",
    );

    say(&mut c, "ECHO hi", "hi\n");
    say(&mut c, "ECHO \"\"", "\"\"\n");
    say(&mut c, "ECHO ''", "\"\"\n");
    say(&mut c, "ECHO \"a\\nb\"", "\"a\\nb\"\n");
    say(&mut c, "ECHO \"\\xff\"", "\"\\xff\"\n");
    say(&mut c, "ECHO 42", "42\n");
    say(&mut c, "ECHO -7", "-7\n");
    say(
        &mut c,
        "ECHO",
        "(error) ERR wrong number of arguments for 'echo' command\n",
    );
    say(
        &mut c,
        "ECHO a b",
        "(error) ERR wrong number of arguments for 'echo' command\n",
    );

    say(&mut c, "SELECT 0", "OK\n");
    say(&mut c, "select 0", "OK\n");
    say(&mut c, "SELECT 1", "(error) ERR DB index is out of range\n");
    say(
        &mut c,
        "SELECT -1",
        "(error) ERR DB index is out of range\n",
    );
    say(
        &mut c,
        "SELECT x",
        "(error) ERR value is not an integer or out of range\n",
    );
    say(
        &mut c,
        "SELECT",
        "(error) ERR wrong number of arguments for 'select' command\n",
    );
    say(
        &mut c,
        "SELECT 0 1",
        "(error) ERR wrong number of arguments for 'select' command\n",
    );

    say(&mut c, "CLIENT GETNAME", "(nil)\n");
    say(&mut c, "CLIENT SETNAME bob", "OK\n");
    say(&mut c, "CLIENT GETNAME", "bob\n");
    say(&mut c, "client getname", "bob\n");
    say(
        &mut c,
        "CLIENT SETNAME \"a b\"",
        "(error) ERR Client names cannot contain spaces, newlines or special characters.\n",
    );
    say(
        &mut c,
        "CLIENT SETNAME \"a\\nb\"",
        "(error) ERR Client names cannot contain spaces, newlines or special characters.\n",
    );
    say(&mut c, "CLIENT GETNAME", "bob\n");
    say(&mut c, "CLIENT SETNAME \"\"", "OK\n");
    say(&mut c, "CLIENT GETNAME", "(nil)\n");
    say(
        &mut c,
        "CLIENT FOO",
        "(error) ERR unknown subcommand 'FOO'. Try CLIENT HELP.\n",
    );
    say(
        &mut c,
        "CLIENT",
        "(error) ERR wrong number of arguments for 'client' command\n",
    );
    say(
        &mut c,
        "CLIENT SETNAME",
        "(error) ERR wrong number of arguments for 'client|setname' command\n",
    );
    say(
        &mut c,
        "CLIENT GETNAME x",
        "(error) ERR wrong number of arguments for 'client|getname' command\n",
    );
    say(
        &mut c,
        "CLIENT ID x",
        "(error) ERR wrong number of arguments for 'client|id' command\n",
    );

    // Ids are per connection, stable, and increase with each new connection.
    let first = integer_reply(&ask(&mut c, "CLIENT ID"));
    assert!(first >= 1, "client id {first}");
    say(&mut c, "CLIENT ID", &format!("(integer) {first}\n"));
    let mut other = server.connect();
    let second = integer_reply(&ask(&mut other, "client id"));
    assert!(second > first, "ids {first} then {second}");
    // Names are per connection too.
    say(&mut other, "CLIENT SETNAME alice", "OK\n");
    say(&mut c, "CLIENT GETNAME", "(nil)\n");
    say(&mut other, "CLIENT GETNAME", "alice\n");

    // HELP: a header, then one line per command in table order.
    let help = ask(&mut c, "HELP");
    assert!(help.starts_with("pocketkv "), "{help:?}");
    assert!(help.ends_with('\n'), "{help:?}");
    let lines: Vec<&str> = help.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "pocketkv {}: commands are case-insensitive; quote arguments with spaces (\"a b\").",
            env!("CARGO_PKG_VERSION")
        )
    );
    // Entries are "  NAME usage   summary"; a long usage may push the summary to the next line.
    for (start, summary) in [
        ("  GET key ", "the value of key, or nil"),
        (
            "  SETEX key seconds value ",
            "SET with an expiry in seconds",
        ),
        ("  DEL key [key ...] ", "delete keys; how many existed"),
    ] {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(start) && line.ends_with(&format!(" {summary}"))),
            "no {start:?} line in {help:?}"
        );
    }
    assert_eq!(ask(&mut c, "help"), help);

    // QUIT answers, then closes; a request pipelined behind it is never answered.
    c.roundtrip(b"QUIT\nPING\n", b"OK\n");
    c.expect_closed();
    other.roundtrip(b"quit extra args\r\n", b"OK\n");
    other.expect_closed();
    // The server is still there for others.
    let mut third = server.connect();
    say(&mut third, "PING", "PONG\n");
}

#[test]
fn string_commands() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    // GET / SET / PUT.
    say(&mut c, "GET k", "(nil)\n");
    say(&mut c, "SET k v", "OK\n");
    say(&mut c, "GET k", "v\n");
    say(&mut c, "get k", "v\n");
    say(&mut c, "SET k \"hello world\"", "OK\n");
    say(&mut c, "GET k", "\"hello world\"\n");
    say(&mut c, "PUT name Alice", "OK\n");
    say(&mut c, "GET name", "Alice\n");
    say(&mut c, "put name Bob", "OK\n");
    say(&mut c, "GET name", "Bob\n");
    say(&mut c, "PUT name Carol NX", "(nil)\n");
    say(&mut c, "PUT name Carol XX GET", "Bob\n");
    say(&mut c, "GET name", "Carol\n");
    say(
        &mut c,
        "GET",
        "(error) ERR wrong number of arguments for 'get' command\n",
    );
    say(
        &mut c,
        "GET a b",
        "(error) ERR wrong number of arguments for 'get' command\n",
    );
    say(
        &mut c,
        "SET k",
        "(error) ERR wrong number of arguments for 'set' command\n",
    );
    say(
        &mut c,
        "PUT k",
        "(error) ERR wrong number of arguments for 'put' command\n",
    );

    // SET NX / XX / GET.
    say(&mut c, "SET s v1", "OK\n");
    say(&mut c, "SET s v2 NX", "(nil)\n");
    say(&mut c, "GET s", "v1\n");
    say(&mut c, "SET s v3 XX", "OK\n");
    say(&mut c, "GET s", "v3\n");
    say(&mut c, "SET missing v XX", "(nil)\n");
    say(&mut c, "EXISTS missing", "(integer) 0\n");
    say(&mut c, "SET fresh v nx", "OK\n");
    say(&mut c, "GET fresh", "v\n");
    say(&mut c, "SET s v4 GET", "v3\n");
    say(&mut c, "GET s", "v4\n");
    say(&mut c, "SET new1 v GET", "(nil)\n");
    say(&mut c, "GET new1", "v\n");
    say(&mut c, "SET s v5 NX GET", "v4\n");
    say(&mut c, "GET s", "v4\n");
    say(&mut c, "SET new2 v NX GET", "(nil)\n");
    say(&mut c, "GET new2", "v\n");
    say(&mut c, "SET new3 v XX GET", "(nil)\n");
    say(&mut c, "EXISTS new3", "(integer) 0\n");
    say(&mut c, "SET s \"a b\" xx get", "v4\n");
    say(&mut c, "GET s", "\"a b\"\n");
    say(&mut c, "SET s v NX XX", "(error) ERR syntax error\n");
    say(&mut c, "SET s v XX NX", "(error) ERR syntax error\n");
    say(&mut c, "SET s v FOO", "(error) ERR syntax error\n");
    say(&mut c, "SET s other EX 100", "OK\n");
    say(&mut c, "ttl s", "(integer) 100\n");
    say(&mut c, "SET s \"a b\" keepttl", "OK\n");
    say(&mut c, "TTL s", "(integer) 100\n");
    say(&mut c, "SET s other EXAT 4102444800", "OK\n");
    say(&mut c, "EXPIRETIME s", "(integer) 4102444800\n");
    say(&mut c, "PERSIST s", "(integer) 1\n");
    say(&mut c, "EXPIRE s 10 GT", "(integer) 0\n");
    say(
        &mut c,
        "SET s \"a b\" PX 0",
        "(error) ERR invalid expire time in 'set' command\n",
    );
    say(&mut c, "GET s", "other\n");
    say(&mut c, "SET s \"a b\"", "OK\n");

    // SETNX / GETSET / GETDEL.
    say(&mut c, "SETNX nx1 first", "(integer) 1\n");
    say(&mut c, "SETNX nx1 second", "(integer) 0\n");
    say(&mut c, "GET nx1", "first\n");
    say(&mut c, "GETSET nx1 \"third one\"", "first\n");
    say(&mut c, "GET nx1", "\"third one\"\n");
    say(&mut c, "GETSET gs1 v", "(nil)\n");
    say(&mut c, "GET gs1", "v\n");
    say(&mut c, "GETDEL nx1", "\"third one\"\n");
    say(&mut c, "GETDEL nx1", "(nil)\n");
    say(&mut c, "GET nx1", "(nil)\n");
    say(
        &mut c,
        "SETNX a",
        "(error) ERR wrong number of arguments for 'setnx' command\n",
    );

    // MSET / MGET / MSETNX.
    say(&mut c, "MSET a 1 b \"hello world\" c \"\"", "OK\n");
    say(
        &mut c,
        "MGET a b c nosuch",
        "1) 1\n2) \"hello world\"\n3) \"\"\n4) (nil)\n",
    );
    say(&mut c, "MGET nosuch", "1) (nil)\n");
    say(
        &mut c,
        "MSET a 1 b",
        "(error) ERR wrong number of arguments for 'mset' command\n",
    );
    say(
        &mut c,
        "MSET a",
        "(error) ERR wrong number of arguments for 'mset' command\n",
    );
    say(
        &mut c,
        "MGET",
        "(error) ERR wrong number of arguments for 'mget' command\n",
    );
    say(&mut c, "MSETNX a 9 z1 9", "(integer) 0\n");
    say(&mut c, "MGET a z1", "1) 1\n2) (nil)\n");
    say(&mut c, "MSETNX z1 x z2 y", "(integer) 1\n");
    say(&mut c, "MGET z1 z2", "1) x\n2) y\n");
    say(
        &mut c,
        "MSETNX z3",
        "(error) ERR wrong number of arguments for 'msetnx' command\n",
    );
    say(
        &mut c,
        "MSETNX z3 a z4",
        "(error) ERR wrong number of arguments for 'msetnx' command\n",
    );
    // Ten or more elements: numbers are right-aligned like redis-cli's.
    say(
        &mut c,
        "MSET m1 a m2 b m3 c m4 d m5 e m6 f m7 g m8 h m9 i m10 j",
        "OK\n",
    );
    say(
        &mut c,
        "MGET m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11",
        " 1) a\n 2) b\n 3) c\n 4) d\n 5) e\n 6) f\n 7) g\n 8) h\n 9) i\n10) j\n11) (nil)\n",
    );

    // Counters.
    say(&mut c, "INCR ctr", "(integer) 1\n");
    say(&mut c, "INCR ctr", "(integer) 2\n");
    say(&mut c, "INCRBY ctr 10", "(integer) 12\n");
    say(&mut c, "INCRBY ctr -20", "(integer) -8\n");
    say(&mut c, "DECR ctr", "(integer) -9\n");
    say(&mut c, "DECRBY ctr -10", "(integer) 1\n");
    say(&mut c, "DECRBY ctr 5", "(integer) -4\n");
    say(&mut c, "GET ctr", "-4\n");
    say(&mut c, "DECR fresh_ctr", "(integer) -1\n");
    say(&mut c, "incrby other_ctr 7", "(integer) 7\n");
    say(&mut c, "INCRBY ctr abc", NOT_INTEGER);
    say(&mut c, "INCRBY ctr 1.5", NOT_INTEGER);
    say(&mut c, "INCRBY ctr \"\"", NOT_INTEGER);
    say(&mut c, "INCRBY ctr +1", NOT_INTEGER);
    say(&mut c, "INCRBY ctr 007", NOT_INTEGER);
    say(&mut c, "INCRBY ctr 9223372036854775808", NOT_INTEGER);
    say(&mut c, "DECRBY ctr x", NOT_INTEGER);
    say(&mut c, "GET ctr", "-4\n");
    say(&mut c, "SET word hello", "OK\n");
    say(&mut c, "INCR word", NOT_INTEGER);
    say(&mut c, "DECR word", NOT_INTEGER);
    say(&mut c, "SET spaced \" 1\"", "OK\n");
    say(&mut c, "INCR spaced", NOT_INTEGER);
    say(&mut c, "SET float 1.5", "OK\n");
    say(&mut c, "INCR float", NOT_INTEGER);
    say(&mut c, "SET empty \"\"", "OK\n");
    say(&mut c, "INCR empty", NOT_INTEGER);
    say(&mut c, "GET word", "hello\n");
    let overflow = "(error) ERR increment or decrement would overflow\n";
    say(&mut c, "SET big 9223372036854775807", "OK\n");
    say(&mut c, "INCR big", overflow);
    say(&mut c, "INCRBY big 1", overflow);
    say(&mut c, "GET big", "9223372036854775807\n");
    say(&mut c, "DECRBY big 9223372036854775807", "(integer) 0\n");
    say(&mut c, "SET small -9223372036854775808", "OK\n");
    say(&mut c, "DECR small", overflow);
    say(&mut c, "INCRBY small -1", overflow);
    say(&mut c, "GET small", "-9223372036854775808\n");
    say(
        &mut c,
        "DECRBY small -9223372036854775808",
        "(error) ERR decrement would overflow\n",
    );
    say(
        &mut c,
        "DECRBY ctr -9223372036854775808",
        "(error) ERR decrement would overflow\n",
    );
    say(
        &mut c,
        "INCRBY zero -9223372036854775808",
        "(integer) -9223372036854775808\n",
    );
    say(
        &mut c,
        "INCR",
        "(error) ERR wrong number of arguments for 'incr' command\n",
    );
    say(
        &mut c,
        "INCRBY ctr",
        "(error) ERR wrong number of arguments for 'incrby' command\n",
    );

    // APPEND / STRLEN.
    say(&mut c, "APPEND ap hello", "(integer) 5\n");
    say(&mut c, "APPEND ap \" world\"", "(integer) 11\n");
    say(&mut c, "APPEND ap \"\"", "(integer) 11\n");
    say(&mut c, "GET ap", "\"hello world\"\n");
    say(&mut c, "STRLEN ap", "(integer) 11\n");
    say(&mut c, "STRLEN nosuch", "(integer) 0\n");
    say(&mut c, "STRLEN empty", "(integer) 0\n");
    say(&mut c, "APPEND ap \"\\x00!\"", "(integer) 13\n");
    say(&mut c, "GET ap", "\"hello world\\x00!\"\n");
    say(&mut c, "STRLEN ap", "(integer) 13\n");

    // GETRANGE, negative indexes counting from the end.
    say(&mut c, "SET gr \"hello world\"", "OK\n");
    say(&mut c, "GETRANGE gr 0 4", "hello\n");
    say(&mut c, "GETRANGE gr -5 -1", "world\n");
    say(&mut c, "GETRANGE gr 0 -1", "\"hello world\"\n");
    say(&mut c, "GETRANGE gr 3 -3", "\"lo wor\"\n");
    say(&mut c, "GETRANGE gr -3 100", "rld\n");
    say(&mut c, "GETRANGE gr -100 -50", "h\n");
    say(&mut c, "GETRANGE gr 0 0", "h\n");
    say(&mut c, "GETRANGE gr -1 -1", "d\n");
    say(&mut c, "GETRANGE gr -1 -5", "\"\"\n");
    say(&mut c, "GETRANGE gr 5 3", "\"\"\n");
    say(&mut c, "GETRANGE gr 100 200", "\"\"\n");
    say(&mut c, "GETRANGE nosuch 0 -1", "\"\"\n");
    say(&mut c, "GETRANGE empty 0 -1", "\"\"\n");
    say(&mut c, "GETRANGE gr x 1", NOT_INTEGER);
    say(&mut c, "GETRANGE gr 0 y", NOT_INTEGER);
    say(
        &mut c,
        "GETRANGE gr 0",
        "(error) ERR wrong number of arguments for 'getrange' command\n",
    );

    // SETRANGE pads with zero bytes, which print as \x00.
    say(&mut c, "SETRANGE pad 3 abc", "(integer) 6\n");
    say(&mut c, "GET pad", "\"\\x00\\x00\\x00abc\"\n");
    say(&mut c, "SETRANGE gr 6 W", "(integer) 11\n");
    say(&mut c, "GET gr", "\"hello World\"\n");
    say(&mut c, "SETRANGE gr 13 \"!!\"", "(integer) 15\n");
    say(&mut c, "GET gr", "\"hello World\\x00\\x00!!\"\n");
    say(&mut c, "SETRANGE gr 0 J", "(integer) 15\n");
    say(&mut c, "GETRANGE gr 0 4", "Jello\n");
    say(&mut c, "SETRANGE gr 100 \"\"", "(integer) 15\n");
    say(&mut c, "SETRANGE nokey 5 \"\"", "(integer) 0\n");
    say(&mut c, "EXISTS nokey", "(integer) 0\n");
    say(
        &mut c,
        "SETRANGE gr -1 x",
        "(error) ERR offset is out of range\n",
    );
    say(&mut c, "SETRANGE gr x x", NOT_INTEGER);
    say(
        &mut c,
        "SETRANGE huge 536870912 x",
        "(error) ERR string exceeds maximum allowed size (proto-max-bulk-len)\n",
    );
    say(&mut c, "EXISTS huge", "(integer) 0\n");
}

#[test]
fn keyspace_commands() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    // DEL and UNLINK are variadic and count each existing key once.
    say(&mut c, "MSET a 1 b 2 c 3 d 4", "OK\n");
    say(&mut c, "DEL a nosuch a b", "(integer) 2\n");
    say(&mut c, "DEL a", "(integer) 0\n");
    say(&mut c, "UNLINK c d c nosuch", "(integer) 2\n");
    say(&mut c, "unlink c", "(integer) 0\n");
    say(&mut c, "DBSIZE", "(integer) 0\n");
    say(
        &mut c,
        "DEL",
        "(error) ERR wrong number of arguments for 'del' command\n",
    );
    say(
        &mut c,
        "UNLINK",
        "(error) ERR wrong number of arguments for 'unlink' command\n",
    );

    // EXISTS counts duplicates each time.
    say(&mut c, "MSET x 1 y 2", "OK\n");
    say(&mut c, "EXISTS x", "(integer) 1\n");
    say(&mut c, "EXISTS x x x nosuch y", "(integer) 4\n");
    say(&mut c, "EXISTS nosuch", "(integer) 0\n");
    say(
        &mut c,
        "EXISTS",
        "(error) ERR wrong number of arguments for 'exists' command\n",
    );

    // TYPE.
    say(&mut c, "TYPE x", "string\n");
    say(&mut c, "TYPE nosuch", "none\n");
    say(
        &mut c,
        "TYPE",
        "(error) ERR wrong number of arguments for 'type' command\n",
    );

    // RENAME / RENAMENX.
    say(&mut c, "RENAME x x2", "OK\n");
    say(&mut c, "MGET x x2", "1) (nil)\n2) 1\n");
    say(&mut c, "RENAME x2 y", "OK\n");
    say(&mut c, "MGET x2 y", "1) (nil)\n2) 1\n");
    say(&mut c, "RENAME y y", "OK\n");
    say(&mut c, "GET y", "1\n");
    say(&mut c, "RENAME nosuch z", "(error) ERR no such key\n");
    say(&mut c, "SET other v", "OK\n");
    say(&mut c, "RENAMENX y other", "(integer) 0\n");
    say(&mut c, "MGET y other", "1) 1\n2) v\n");
    say(&mut c, "RENAMENX y \"new name\"", "(integer) 1\n");
    say(&mut c, "GET \"new name\"", "1\n");
    say(
        &mut c,
        "RENAMENX \"new name\" \"new name\"",
        "(integer) 0\n",
    );
    say(&mut c, "RENAMENX nosuch z", "(error) ERR no such key\n");
    say(
        &mut c,
        "RENAME a",
        "(error) ERR wrong number of arguments for 'rename' command\n",
    );
    say(
        &mut c,
        "RENAMENX a",
        "(error) ERR wrong number of arguments for 'renamenx' command\n",
    );

    // DBSIZE / FLUSHDB / FLUSHALL / RANDOMKEY.
    say(&mut c, "DBSIZE", "(integer) 2\n");
    say(
        &mut c,
        "DBSIZE x",
        "(error) ERR wrong number of arguments for 'dbsize' command\n",
    );
    say(&mut c, "FLUSHDB", "OK\n");
    say(&mut c, "DBSIZE", "(integer) 0\n");
    say(&mut c, "RANDOMKEY", "(nil)\n");
    say(&mut c, "SET only one", "OK\n");
    say(&mut c, "RANDOMKEY", "only\n");
    say(&mut c, "FLUSHALL", "OK\n");
    say(&mut c, "DBSIZE", "(integer) 0\n");
    say(&mut c, "MSET r1 a r2 b \"r 3\" c", "OK\n");
    for _ in 0..20 {
        let got = ask(&mut c, "RANDOMKEY");
        assert!(
            ["r1\n", "r2\n", "\"r 3\"\n"].contains(&got.as_str()),
            "RANDOMKEY gave {got:?}"
        );
    }
    say(&mut c, "FLUSHDB ASYNC", "OK\n");
    say(&mut c, "SET k v", "OK\n");
    say(&mut c, "FLUSHDB sync", "OK\n");
    say(&mut c, "SET k v", "OK\n");
    say(&mut c, "FLUSHALL SYNC", "OK\n");
    say(&mut c, "SET k v", "OK\n");
    say(&mut c, "FLUSHALL async", "OK\n");
    say(&mut c, "DBSIZE", "(integer) 0\n");
    say(&mut c, "FLUSHDB foo", "(error) ERR syntax error\n");
    say(&mut c, "FLUSHALL ASYNC extra", "(error) ERR syntax error\n");
    say(
        &mut c,
        "RANDOMKEY x",
        "(error) ERR wrong number of arguments for 'randomkey' command\n",
    );

    // KEYS with glob patterns.
    say(&mut c, "KEYS *", "(empty array)\n");
    say(
        &mut c,
        "MSET hello 1 hallo 2 hxllo 3 hllo 4 heeeello 5 h*llo 6 \"hi there\" 7",
        "OK\n",
    );
    say(&mut c, "KEYS hi*", "1) \"hi there\"\n");
    assert_unordered(&ask(&mut c, "KEYS h[ae]llo"), &["hello", "hallo"]);
    assert_unordered(
        &ask(&mut c, "KEYS h?llo"),
        &["hello", "hallo", "hxllo", "\"h*llo\""],
    );
    assert_unordered(
        &ask(&mut c, "KEYS h*llo"),
        &["hello", "hallo", "hxllo", "hllo", "heeeello", "\"h*llo\""],
    );
    assert_unordered(
        &ask(&mut c, "KEYS h[^e]llo"),
        &["hallo", "hxllo", "\"h*llo\""],
    );
    assert_unordered(&ask(&mut c, "KEYS h[a-b]llo"), &["hallo"]);
    say(&mut c, "KEYS 'h\\*llo'", "1) \"h*llo\"\n");
    say(&mut c, "KEYS \"h\\\\*llo\"", "1) \"h*llo\"\n");
    say(&mut c, "KEYS nomatch*", "(empty array)\n");
    say(&mut c, "KEYS hello", "1) hello\n");
    assert_unordered(
        &ask(&mut c, "KEYS *"),
        &[
            "hello",
            "hallo",
            "hxllo",
            "hllo",
            "heeeello",
            "\"h*llo\"",
            "\"hi there\"",
        ],
    );
    say(
        &mut c,
        "KEYS",
        "(error) ERR wrong number of arguments for 'keys' command\n",
    );
    say(
        &mut c,
        "KEYS a b",
        "(error) ERR wrong number of arguments for 'keys' command\n",
    );

    // SCAN: the nested reply is indented like redis-cli's.
    say(&mut c, "FLUSHALL", "OK\n");
    say(&mut c, "SCAN 0", "1) 0\n2) (empty array)\n");
    say(&mut c, "SET only one", "OK\n");
    say(&mut c, "SCAN 0", "1) 0\n2) 1) only\n");
    say(&mut c, "SCAN 0 MATCH o* COUNT 100", "1) 0\n2) 1) only\n");
    say(&mut c, "scan 0 match zz*", "1) 0\n2) (empty array)\n");
    say(&mut c, "SCAN 0 TYPE string", "1) 0\n2) 1) only\n");
    say(&mut c, "SCAN 0 TYPE hash", "1) 0\n2) (empty array)\n");
    say(
        &mut c,
        "SCAN 0 COUNT 5 MATCH * TYPE STRING",
        "1) 0\n2) 1) only\n",
    );
    say(&mut c, "SCAN x", "(error) ERR invalid cursor\n");
    say(&mut c, "SCAN 1x", "(error) ERR invalid cursor\n");
    say(&mut c, "SCAN 0 COUNT 0", "(error) ERR syntax error\n");
    say(&mut c, "SCAN 0 COUNT x", NOT_INTEGER);
    say(&mut c, "SCAN 0 MATCH", "(error) ERR syntax error\n");
    say(&mut c, "SCAN 0 FOO bar", "(error) ERR syntax error\n");
    say(
        &mut c,
        "SCAN",
        "(error) ERR wrong number of arguments for 'scan' command\n",
    );
    say(&mut c, "SET \"with space\" v", "OK\n");
    assert_unordered(&ask(&mut c, "KEYS *"), &["only", "\"with space\""]);
    let (cursor, mut keys) = scan_page(&ask(&mut c, "SCAN 0 COUNT 1000"));
    assert_eq!(cursor, "0");
    keys.sort();
    assert_eq!(keys, ["\"with space\"", "only"]);

    // Many keys: page through with small COUNTs until the cursor comes back to 0.
    say(&mut c, "FLUSHALL", "OK\n");
    let mut mset = String::from("MSET");
    let mut all = Vec::new();
    for i in 0..150 {
        mset.push_str(&format!(" user:{i} v{i}"));
        all.push(format!("user:{i}"));
    }
    for i in 0..20 {
        mset.push_str(&format!(" \"other {i}\" x"));
    }
    say(&mut c, &mset, "OK\n");
    say(&mut c, "DBSIZE", "(integer) 170\n");
    all.sort();
    assert_eq!(scan_all(&mut c, "MATCH user:* COUNT 3"), all);
    assert_eq!(scan_all(&mut c, "match user:* count 50"), all);
    let mut everything = all.clone();
    everything.extend((0..20).map(|i| format!("\"other {i}\"")));
    everything.sort();
    assert_eq!(scan_all(&mut c, "COUNT 7"), everything);
    let mut teens: Vec<String> = (10..20).map(|i| format!("user:{i}")).collect();
    teens.sort();
    assert_eq!(scan_all(&mut c, "MATCH user:1? COUNT 4"), teens);
    assert!(scan_all(&mut c, "MATCH nothing* COUNT 10").is_empty());
    assert!(scan_all(&mut c, "TYPE list").is_empty());
    // A single big page: ten or more keys widen the inner numbers, as redis-cli does.
    let (cursor, keys) = scan_page(&ask(&mut c, "SCAN 0 COUNT 100000"));
    assert_eq!(cursor, "0");
    assert_eq!(keys.len(), 170);
    assert_unordered(
        &ask(&mut c, "KEYS user:1?"),
        &teens.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

#[test]
fn server_commands() {
    let before_start = unix_now();
    let mut server = Server::start(&[]);
    let mut c = server.connect();

    // LASTSAVE starts at the server's start time; SAVE answers once a snapshot is on disk.
    let lastsave = integer_reply(&ask(&mut c, "LASTSAVE"));
    assert!(
        (before_start as i64..=unix_now() as i64).contains(&lastsave),
        "LASTSAVE {lastsave} not within the test's run"
    );
    say(
        &mut c,
        "LASTSAVE x",
        "(error) ERR wrong number of arguments for 'lastsave' command\n",
    );
    say(&mut c, "SET saved yes", "OK\n");
    say(&mut c, "SAVE", "OK\n");
    let after_save = integer_reply(&ask(&mut c, "lastsave"));
    assert!(
        after_save >= lastsave && after_save <= unix_now() as i64,
        "LASTSAVE after SAVE: {after_save}"
    );
    assert!(server.snapshot_path().exists(), "SAVE wrote no snapshot");
    say(
        &mut c,
        "SAVE now",
        "(error) ERR wrong number of arguments for 'save' command\n",
    );
    say(&mut c, "BGSAVE foo", "(error) ERR syntax error\n");
    say(&mut c, "BGSAVE", "Background saving started\n");

    // TIME: seconds and microseconds, as a two-element array of bare numbers.
    let lower = unix_now();
    let time = ask(&mut c, "TIME");
    let upper = unix_now();
    let numbers: Vec<u64> = time
        .lines()
        .map(|line| {
            line.split_once(") ")
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or_else(|| panic!("TIME reply {time:?}"))
        })
        .collect();
    assert_eq!(numbers.len(), 2, "TIME reply {time:?}");
    assert_eq!(time, format!("1) {}\n2) {}\n", numbers[0], numbers[1]));
    assert!((lower..=upper).contains(&numbers[0]), "TIME {time:?}");
    assert!(numbers[1] < 1_000_000, "TIME {time:?}");
    say(
        &mut c,
        "TIME x",
        "(error) ERR wrong number of arguments for 'time' command\n",
    );

    // INFO is multi-line text printed as it is, CRLF lines included.
    let info = ask(&mut c, "INFO");
    assert!(
        info.starts_with("# Server\r\nredis_version:7.0.0\r\n"),
        "{info:?}"
    );
    assert!(info.ends_with("\r\n"), "{info:?}");
    for section in [
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Keyspace",
    ] {
        assert!(
            info.contains(&format!("\r\n\r\n{section}\r\n")),
            "{section} not in {info:?}"
        );
    }
    let server_info = ask(&mut c, "INFO server");
    assert!(
        server_info.starts_with(&format!(
            "# Server\r\nredis_version:7.0.0\r\npocketkv_version:{}\r\nredis_mode:standalone\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{server_info:?}"
    );
    assert!(
        server_info.contains(&format!("\r\ntcp_port:{}\r\n", server.addr.port())),
        "{server_info:?}"
    );
    assert!(!server_info.contains("# Keyspace"), "{server_info:?}");
    say(
        &mut c,
        "INFO keyspace",
        "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n",
    );
    say(&mut c, "SET second 2", "OK\n");
    say(
        &mut c,
        "info KEYSPACE",
        "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n",
    );
    say(&mut c, "FLUSHALL", "OK\n");
    say(&mut c, "INFO keyspace", "# Keyspace\r\n");
    // No section matches: the reply is still one (empty) line, so a person sees an answer.
    say(&mut c, "INFO nosuchsection", "\n");

    // COMMAND: one entry per HELP line after the header, in the same order.
    let help = ask(&mut c, "HELP");
    let names: Vec<String> = help
        .lines()
        .skip(1)
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .map(|line| line.split_whitespace().next().unwrap().to_lowercase())
        .collect();
    assert!(names.len() >= 40, "{help:?}");
    say(
        &mut c,
        "COMMAND COUNT",
        &format!("(integer) {}\n", names.len()),
    );
    say(
        &mut c,
        "command count",
        &format!("(integer) {}\n", names.len()),
    );
    say(&mut c, "COMMAND LIST", &numbered(&names, 0));
    say(
        &mut c,
        "COMMAND INFO get",
        concat!(
            "1)  1) get\n",
            "    2) (integer) 2\n",
            "    3) 1) readonly\n",
            "       2) fast\n",
            "    4) (integer) 1\n",
            "    5) (integer) 1\n",
            "    6) (integer) 1\n",
            "    7) 1) @string\n",
            "    8) (empty array)\n",
            "    9) (empty array)\n",
            "   10) (empty array)\n",
        ),
    );
    say(&mut c, "COMMAND INFO nosuch", "1) (nil)\n");
    say(
        &mut c,
        "COMMAND DOCS get",
        concat!(
            "1) get\n",
            "2) 1) summary\n",
            "   2) \"the value of key, or nil\"\n",
            "   3) since\n",
            "   4) 0.1.0\n",
            "   5) group\n",
            "   6) string\n",
        ),
    );
    say(
        &mut c,
        "COMMAND FOO",
        "(error) ERR unknown subcommand 'FOO'. Try COMMAND HELP.\n",
    );
    say(
        &mut c,
        "COMMAND COUNT x",
        "(error) ERR wrong number of arguments for 'command|count' command\n",
    );

    // CONFIG.
    say(&mut c, "CONFIG GET save", "1) save\n2) \"60 1\"\n");
    say(&mut c, "config get SAVE", "1) save\n2) \"60 1\"\n");
    say(&mut c, "CONFIG GET databases", "1) databases\n2) 1\n");
    say(
        &mut c,
        "CONFIG GET save databases save",
        "1) save\n2) \"60 1\"\n3) databases\n4) 1\n",
    );
    say(&mut c, "CONFIG GET nosuch*", "(empty array)\n");
    say(&mut c, "CONFIG RESETSTAT", "OK\n");
    say(
        &mut c,
        "CONFIG GET",
        "(error) ERR wrong number of arguments for 'config|get' command\n",
    );
    say(
        &mut c,
        "CONFIG FOO",
        "(error) ERR unknown subcommand 'FOO'. Try CONFIG HELP.\n",
    );
    say(
        &mut c,
        "CONFIG",
        "(error) ERR wrong number of arguments for 'config' command\n",
    );

    // Unknown commands.
    say(
        &mut c,
        "FOOBAR a b",
        "(error) ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' \n",
    );
    say(
        &mut c,
        "foobar",
        "(error) ERR unknown command 'foobar', with args beginning with: \n",
    );
    say(
        &mut c,
        "NOPE \"a b\" 'c'",
        "(error) ERR unknown command 'NOPE', with args beginning with: 'a b' 'c' \n",
    );
    say(
        &mut c,
        "NOPE \"x\\ny\"",
        "(error) ERR unknown command 'NOPE', with args beginning with: 'x y' \n",
    );

    // SHUTDOWN: a bad option is refused; NOSAVE closes without a reply and stops the server.
    say(&mut c, "SHUTDOWN foo", "(error) ERR syntax error\n");
    say(&mut c, "PING", "PONG\n");
    c.send(b"SHUTDOWN NOSAVE\n");
    c.expect_closed();
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn quoting_and_round_trips() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    // Bare only when non-empty and every byte is one of [A-Za-z0-9-_.:/@+=,].
    say(&mut c, "ECHO Alice", "Alice\n");
    say(
        &mut c,
        "ECHO user:1/a@b.c+d=e,f_g-h",
        "user:1/a@b.c+d=e,f_g-h\n",
    );
    for quoted_char in [
        "!", "#", "*", "?", "'", "(", " ", "[", "~", "%", "&", ";", "<", "|", "$", "^", "`", "{",
    ] {
        say(
            &mut c,
            &format!("ECHO \"a{quoted_char}b\""),
            &format!("\"a{quoted_char}b\"\n"),
        );
    }
    say(&mut c, "ECHO \"hello world\"", "\"hello world\"\n");
    say(&mut c, "ECHO \"a\\nb\"", "\"a\\nb\"\n");
    say(&mut c, "ECHO \"\"", "\"\"\n");
    say(&mut c, "ECHO \"\\xff\"", "\"\\xff\"\n");
    say(
        &mut c,
        "ECHO \"\\xFF\\x00\\x7f\\x1b\"",
        "\"\\xff\\x00\\x7f\\x1b\"\n",
    );
    say(&mut c, "ECHO \"\\r\\t\\a\\b\"", "\"\\r\\t\\a\\b\"\n");
    say(
        &mut c,
        "ECHO \"say \\\"hi\\\" \\\\\"",
        "\"say \\\"hi\\\" \\\\\"\n",
    );
    say(&mut c, "ECHO 'it\\'s'", "\"it's\"\n");
    say(&mut c, "ECHO 'a\\nb'", "\"a\\\\nb\"\n");
    say(
        &mut c,
        "ECHO 'no \"escapes\" here'",
        "\"no \\\"escapes\\\" here\"\n",
    );
    say(&mut c, "ECHO a\"b c\"", "\"ab c\"\n");
    say(&mut c, "ECHO \"\\x4\"", "x4\n");
    say(&mut c, "ECHO \"\\q\"", "q\n");
    // UTF-8 is shown byte by byte, like redis-cli.
    say(&mut c, "ECHO \"caf\u{e9}\"", "\"caf\\xc3\\xa9\"\n");

    // Stored values print the same way, in every reply that carries them.
    say(&mut c, "MSET alpha alpha beta \"b c\"", "OK\n");
    say(&mut c, "MGET alpha beta", "1) alpha\n2) \"b c\"\n");
    say(&mut c, "SET greeting \"hello world\"", "OK\n");
    say(&mut c, "GET greeting", "\"hello world\"\n");
    say(&mut c, "SET \"\" \"empty key\"", "OK\n");
    say(&mut c, "GET \"\"", "\"empty key\"\n");
    say(&mut c, "KEYS \"\"", "1) \"\"\n");
    say(&mut c, "SET ten 10", "OK\n");
    say(&mut c, "GET ten", "10\n");
    say(
        &mut c,
        "MGET greeting \"\" ten nosuch",
        "1) \"hello world\"\n2) \"empty key\"\n3) 10\n4) (nil)\n",
    );
    say(&mut c, "GETSET greeting \"a\\tb\"", "\"hello world\"\n");
    say(&mut c, "GETDEL greeting", "\"a\\tb\"\n");

    // Every byte value: written over RESP, read as text, pasted back as text, read over RESP.
    let mut redis = server.connect();
    let all: Vec<u8> = (0..=255).collect();
    redis.roundtrip(&resp_bytes(&[b"SET", b"bytes", &all]), b"+OK\r\n");
    let shown = printed(&all);
    assert!(shown.starts_with("\"\\x00\\x01"), "{shown}");
    say(&mut c, "GET bytes", &format!("{shown}\n"));
    say(&mut c, &format!("SET copy {shown}"), "OK\n");
    say(&mut c, &format!("ECHO {shown}"), &format!("{shown}\n"));
    let mut expected = format!("${}\r\n", all.len()).into_bytes();
    expected.extend_from_slice(&all);
    expected.extend_from_slice(b"\r\n");
    redis.roundtrip(&resp(&["GET", "copy"]), &expected);
    say(&mut c, "STRLEN copy", "(integer) 256\n");

    // The same for a key: the quoted form KEYS prints names the key.
    let key: &[u8] = b"odd key\n\"\\\xfe";
    redis.roundtrip(&resp_bytes(&[b"SET", key, b"found"]), b"+OK\r\n");
    let shown_key = printed(key);
    assert_eq!(shown_key, "\"odd key\\n\\\"\\\\\\xfe\"");
    say(&mut c, "KEYS odd*", &format!("1) {shown_key}\n"));
    say(&mut c, &format!("GET {shown_key}"), "found\n");
    say(&mut c, &format!("TYPE {shown_key}"), "string\n");
    say(&mut c, &format!("DEL {shown_key}"), "(integer) 1\n");
    redis.roundtrip(&resp(&["EXISTS", "odd key"]), b":0\r\n");

    // Values made of bare characters only round-trip without quotes.
    let plain = "user:42/mail@example.com+tag=1,2_3-4.5";
    say(&mut c, &format!("SET plain {plain}"), "OK\n");
    say(&mut c, "GET plain", &format!("{plain}\n"));
    redis.roundtrip(&resp(&["GET", "plain"]), &bulk(plain));
}

#[test]
fn line_handling() {
    let server = Server::start(&[]);

    // LF and CRLF endings give the same replies.
    let script: &[(&str, &str)] = &[
        ("PING", "PONG\n"),
        ("SET k \"a b\"", "OK\n"),
        ("GET k", "\"a b\"\n"),
        ("APPEND k c", "(integer) 4\n"),
        ("MGET k nosuch", "1) \"a bc\"\n2) (nil)\n"),
        ("INCR n", "(integer) 1\n"),
        ("KEYS k", "1) k\n"),
        ("SCAN 0 MATCH k", "1) 0\n2) 1) k\n"),
        ("DEL k n", "(integer) 2\n"),
        ("GET k", "(nil)\n"),
        (
            "NOPE x",
            "(error) ERR unknown command 'NOPE', with args beginning with: 'x' \n",
        ),
        ("KEYS *", "(empty array)\n"),
    ];
    let mut lf = server.connect();
    for (line, expected) in script {
        assert_eq!(
            ask_raw(&mut lf, format!("{line}\n").as_bytes()),
            *expected,
            "{line:?} + LF"
        );
    }
    let mut crlf = server.connect();
    for (line, expected) in script {
        assert_eq!(
            ask_raw(&mut crlf, format!("{line}\r\n").as_bytes()),
            *expected,
            "{line:?} + CRLF"
        );
    }
    // A quoted last argument right before the CR.
    assert_eq!(ask_raw(&mut crlf, b"ECHO \"x y\"\r\n"), "\"x y\"\n");
    assert_eq!(ask_raw(&mut crlf, b"ECHO 'x y'\r\n"), "\"x y\"\n");

    // Empty and blank lines get no reply at all.
    let mut c = server.connect();
    c.roundtrip(b"\nPING\n", b"PONG\n");
    c.roundtrip(b"\r\nPING\r\n", b"PONG\n");
    c.roundtrip(b"   \n\t\n \t \r\n\n\nPING\n", b"PONG\n");
    // Blanks around and between arguments are ignored; tabs separate too.
    c.roundtrip(b"   SET\tk \t v  \nGET k\n", b"OK\nv\n");

    // Several requests in one write get their replies in order.
    c.roundtrip(
        b"SET a 1\nINCR a\r\nGET a\nDEL a\nGET a\n",
        b"OK\n(integer) 2\n2\n(integer) 1\n(nil)\n",
    );

    // A long burst in one write: every request answered, in order, nothing lost or repeated.
    let burst: Vec<u8> = (0..5000)
        .flat_map(|i| format!("ECHO n{i}\n").into_bytes())
        .collect();
    let replies: Vec<u8> = (0..5000)
        .flat_map(|i| format!("n{i}\n").into_bytes())
        .collect();
    c.roundtrip(&burst, &replies);

    // A request split across writes is answered once its line is complete. The PONG proves the
    // server already holds the partial line when the rest arrives.
    c.roundtrip(b"PING\nEC", b"PONG\n");
    c.roundtrip(b"HO \"spl", b"");
    c.roundtrip(b"it\"\r", b"");
    c.roundtrip(b"\n", b"split\n");

    // Unbalanced quotes: an error for that line, and the connection goes on.
    let unbalanced = "(error) ERR Protocol error: unbalanced quotes in request\n";
    for line in [
        "SET k \"abc",
        "SET k 'abc",
        "SET k \"abc\"d",
        "SET k 'abc'd",
        "SET k \"a\\\"",
        "ECHO \"",
    ] {
        say(&mut c, line, unbalanced);
        say(&mut c, "PING", "PONG\n");
    }
    say(&mut c, "GET k", "v\n");
    c.roundtrip(
        b"SET k \"abc\nPING\r\nSET k 'x\r\nGET k\n",
        format!("{unbalanced}PONG\n{unbalanced}v\n").as_bytes(),
    );

    // Text and RESP requests can even share one connection; each reply is in its request's
    // dialect.
    c.roundtrip(&resp(&["SET", "mixed", "a b"]), b"+OK\r\n");
    c.roundtrip(b"GET mixed\n", b"\"a b\"\n");
    c.roundtrip(&resp(&["GET", "mixed"]), b"$3\r\na b\r\n");
    c.roundtrip(b"PING\n", b"PONG\n");

    // A line longer than 64 KiB is a fatal error: the reply, then the connection closes.
    let mut long = server.connect();
    long.roundtrip(
        &vec![b'a'; 64 * 1024 + 1],
        b"(error) ERR Protocol error: too big inline request\n",
    );
    long.expect_closed();
    // A line of exactly 64 KiB is fine (here an unknown command).
    let mut edge = server.connect();
    let mut line = b"ECHO ".to_vec();
    line.resize(64 * 1024, b'x');
    line.push(b'\n');
    let mut expected = vec![b'x'; 64 * 1024 - 5];
    expected.push(b'\n');
    edge.roundtrip(&line, &expected);
    say(&mut edge, "PING", "PONG\n");
    say(&mut c, "PING", "PONG\n");
}

#[test]
fn text_and_resp_clients_share_one_keyspace() {
    let server = Server::start(&[]);
    let mut text = server.connect();
    let mut redis = server.connect();

    say(&mut text, "SET from:text \"hi there\"", "OK\n");
    redis.cmd(&["GET", "from:text"], &bulk("hi there"));
    redis.cmd(&["SET", "from:resp", "a\nb"], b"+OK\r\n");
    say(&mut text, "GET from:resp", "\"a\\nb\"\n");
    redis.cmd(&["INCRBY", "counter", "5"], b":5\r\n");
    say(&mut text, "INCR counter", "(integer) 6\n");
    redis.cmd(&["GET", "counter"], &bulk("6"));
    say(&mut text, "DBSIZE", "(integer) 3\n");
    redis.cmd(&["DBSIZE"], b":3\r\n");
    redis.cmd(&["DEL", "from:text"], b":1\r\n");
    say(&mut text, "EXISTS from:text from:resp", "(integer) 1\n");
    say(&mut text, "RENAME from:resp moved", "OK\n");
    redis.cmd(&["GET", "moved"], &bulk("a\nb"));
    redis.cmd(&["MSET", "x", "", "y", "1"], b"+OK\r\n");
    say(&mut text, "MGET x y from:resp", "1) \"\"\n2) 1\n3) (nil)\n");
    say(&mut text, "FLUSHALL", "OK\n");
    redis.cmd(&["DBSIZE"], b":0\r\n");
    redis.cmd(&["GET", "moved"], b"$-1\r\n");
    // Errors too come back in each client's own dialect.
    say(
        &mut text,
        "GET",
        "(error) ERR wrong number of arguments for 'get' command\n",
    );
    redis.cmd(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
}

/// Redis limits the quoted arguments of its unknown-command error to 128 bytes *of arguments*
/// (`sdslen(args) < 128`, `'%.*s'` with `128 - sdslen(args)`); pocketkv counts the message
/// prefix and command name against the same budget, so it quotes far less (or nothing).
#[test]
fn unknown_command_error_quotes_arguments_like_redis() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let a200 = "a".repeat(200);
    say(
        &mut c,
        &format!("FOO {a200}"),
        &format!(
            "(error) ERR unknown command 'FOO', with args beginning with: '{}' \n",
            "a".repeat(128)
        ),
    );
    let args: Vec<String> = (0..40).map(|i| format!("arg{i:02}")).collect();
    let quoted: String = args[..16].iter().map(|a| format!("'{a}' ")).collect();
    say(
        &mut c,
        &format!("FOO {}", args.join(" ")),
        &format!("(error) ERR unknown command 'FOO', with args beginning with: {quoted}\n"),
    );
    say(
        &mut c,
        &format!("{} x", "B".repeat(140)),
        &format!(
            "(error) ERR unknown command '{}', with args beginning with: 'x' \n",
            "B".repeat(128)
        ),
    );
    say(
        &mut c,
        &format!("FOO {} {} d", "b".repeat(120), "c".repeat(20)),
        &format!(
            "(error) ERR unknown command 'FOO', with args beginning with: '{}' 'ccccc' \n",
            "b".repeat(120)
        ),
    );
}

/// Redis only maps CR and LF to spaces in this error (`sdsmapchars(s, "\r\n", "  ", 2)`);
/// pocketkv turns every control character into a space.
#[test]
fn unknown_command_error_keeps_tabs_like_redis() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    say(
        &mut c,
        "FOO \"a\\tb\" \"c\\nd\"",
        "(error) ERR unknown command 'FOO', with args beginning with: 'a\tb' 'c d' \n",
    );
}
