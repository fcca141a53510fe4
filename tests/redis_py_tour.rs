//! What a new redis-py user tries first (tests/scripts/redis_py_tour.py: strings, expiry
//! options, scan_iter, pipelines and transactions, WATCH, a Lock, INFO, CLIENT INFO and LIST,
//! CONFIG GET/SET, ACL LOG, pub/sub with get_message, listen and a handler thread, sharded
//! pub/sub, keyspace notifications, the asyncio client), run against pocketkv and against
//! redis-server 7.0 with each redis-py the tests know (tests/common/python.rs): Debian's 4.3.4
//! (RESP2), and 8.2.0 with its default RESP3 (HELLO 3, CLIENT SETINFO, push messages) and with
//! `protocol=2`. The script prints one result per line; both servers must make it print the same
//! lines.

mod common;

use common::python::{script, RedisPy};
use common::redis::{text, Pair, Redis};
use common::{resp, Server};

/// Runs the tour with `redis_py` and `protocol` against one server; its stdout, which must end
/// with "done".
fn tour(redis_py: RedisPy, protocol: &str, place: &[&str], server: &str) -> String {
    let output = redis_py
        .python()
        .arg(script("redis_py_tour.py"))
        .args(place)
        .arg(protocol)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.ends_with("done\n"),
        "{} (protocol {protocol}) against {server} stopped:\n{stdout}{}",
        redis_py.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn redis_py_prints_the_same_against_pocketkv_and_redis_server() {
    for (redis_py, protocol) in [
        (RedisPy::Debian, "default"),
        (RedisPy::V8, "default"),
        (RedisPy::V8, "2"),
    ] {
        let ours = Server::start(&[]);
        let redis = Redis::start(&[]);
        let port = ours.addr.port().to_string();
        let socket = redis.socket().to_str().expect("utf-8 path").to_string();
        let theirs = tour(redis_py, protocol, &["unix", &socket], "redis-server");
        let got = tour(redis_py, protocol, &["tcp", &port], "pocketkv");
        for (line, (a, b)) in got.lines().zip(theirs.lines()).enumerate() {
            assert_eq!(
                a,
                b,
                "{} (protocol {protocol}), line {}: pocketkv (left) and redis-server (right) \
                 differ",
                redis_py.name(),
                line + 1
            );
        }
        assert_eq!(got.lines().count(), theirs.lines().count());
    }
}

/// The field names of a CLIENT LIST or CLIENT INFO line, in order.
fn field_names(reply: &[u8]) -> Vec<String> {
    let line = text(reply);
    let body = line.split_once("\r\n").map_or("", |(_, body)| body);
    body.split_whitespace()
        .filter_map(|field| field.split_once('=').map(|(name, _)| name.to_string()))
        .collect()
}

/// The value of `name` in a CLIENT LIST or CLIENT INFO line.
fn field(reply: &[u8], name: &str) -> String {
    let line = text(reply);
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// redis-py (4.x) reads argv-mem and tot-mem from CLIENT INFO and ACL LOG as integers, and
/// fails without them: every field Redis 7.0 prints, in its order, and argv-mem counted as
/// Redis counts it (the bytes of the running command's arguments).
#[test]
fn client_list_and_info_have_redis_fields_in_redis_order() {
    let ours = Server::start(&[]);
    let redis = Redis::start(&[]);
    let mut pair = Pair::new(&redis, &ours);
    for args in [&["CLIENT", "LIST"][..], &["CLIENT", "INFO"]] {
        let (theirs, got) = pair.both(args);
        assert_eq!(field_names(&got), field_names(&theirs), "{args:?}");
        assert_eq!(field(&got, "argv-mem"), "10", "{args:?}: {}", text(&got));
        assert_eq!(field(&got, "argv-mem"), field(&theirs, "argv-mem"));
    }
    // In MULTI, multi-mem counts the queued commands, and tot-mem includes them (seen by
    // another client: CLIENT LIST itself would be queued).
    let mut c = ours.connect();
    let id = c.call(&["CLIENT", "ID"]);
    let id = id.trim_start_matches(':');
    c.cmd(&["MULTI"], b"+OK\r\n");
    c.cmd(&["SET", "key", "value"], b"+QUEUED\r\n");
    let line = ours.connect().call(&["CLIENT", "LIST", "ID", id]);
    let number = |name: &str| -> usize {
        field(line.as_bytes(), name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} in {line:?}"))
    };
    assert_eq!(number("multi"), 1, "{line}");
    assert_eq!(
        number("multi-mem"),
        resp(&["SET", "key", "value"]).len(),
        "{line}"
    );
    assert_eq!(number("argv-mem"), 0, "{line}");
    assert_eq!(
        number("tot-mem"),
        number("rbs") + number("omem") + number("multi-mem")
    );
    assert!(
        number("rbp") >= resp(&["SET", "key", "value"]).len(),
        "{line}"
    );
}
