//! Keyspace notifications against a real redis-server: a client subscribed to every keyspace
//! and keyevent channel must receive exactly the frames Redis sends for each write of every
//! command pocketkv has (including `new`, lazy `expired`, and none for reads or failed writes),
//! and `notify-keyspace-events` reads back normalized as Redis shows it. Eviction (whose timing
//! depends on each server's memory accounting) is checked on pocketkv alone.

mod common;

use common::frames::{compare, poll, setup, step, Frames, Step};
use common::Server;

fn future_seconds() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now.as_secs() + 100_000).to_string()
}

#[test]
fn every_write_command_notifies_as_redis_does() {
    let at = future_seconds();
    let at_ms = format!("{at}000");
    let steps: Vec<Step> = vec![
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        step(1, &["CONFIG", "GET", "notify-keyspace-events"]),
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "AKEn"]),
        step(1, &["CONFIG", "GET", "notify-keyspace-events"]),
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "E$gxKn"]),
        step(1, &["CONFIG", "GET", "notify-keyspace-events"]),
        setup(0, &["PSUBSCRIBE", "__key*"]),
        step(1, &["SET", "a", "1"]),
        step(1, &["SET", "a", "2"]),
        step(1, &["SET", "a", "3", "EX", "100"]),
        step(1, &["SET", "a", "4", "KEEPTTL"]),
        step(1, &["SET", "a", "5", "NX"]),
        step(1, &["SET", "n", "v", "XX"]),
        step(1, &["SET", "n", "v", "NX", "GET"]),
        step(1, &["SET", "n", "w", "PXAT", &at_ms]),
        step(1, &["SETEX", "b", "100", "v"]),
        step(1, &["PSETEX", "c", "100000", "v"]),
        step(1, &["SETNX", "d", "v"]),
        step(1, &["SETNX", "d", "v"]),
        step(1, &["GETSET", "d", "w"]),
        step(1, &["GETSET", "e", "w"]),
        step(1, &["GETDEL", "e"]),
        step(1, &["GETDEL", "e"]),
        step(1, &["MSET", "f", "1", "g", "2", "f", "3"]),
        step(1, &["MSETNX", "h", "1", "i", "2"]),
        step(1, &["MSETNX", "h", "1", "j", "2"]),
        step(1, &["INCR", "j"]),
        step(1, &["INCRBY", "j", "5"]),
        step(1, &["DECR", "j"]),
        step(1, &["DECRBY", "j", "2"]),
        step(1, &["INCR", "a"]),
        step(1, &["INCRBYFLOAT", "j", "1.5"]),
        step(1, &["INCRBYFLOAT", "fl", "0.1"]),
        step(1, &["INCRBYFLOAT", "fl", "x"]),
        step(1, &["APPEND", "k", "x"]),
        step(1, &["APPEND", "k", "y"]),
        step(1, &["SETRANGE", "l", "2", "ab"]),
        step(1, &["SETRANGE", "l", "0", "z"]),
        step(1, &["SETRANGE", "l", "0", ""]),
        step(1, &["SETRANGE", "m", "0", ""]),
        step(1, &["GET", "a"]),
        step(1, &["GET", "missing"]),
        step(1, &["MGET", "a", "b"]),
        step(1, &["GETEX", "a", "EX", "100"]),
        step(1, &["GETEX", "a", "PERSIST"]),
        step(1, &["GETEX", "a", "PERSIST"]),
        step(1, &["GETEX", "a"]),
        step(1, &["GETEX", "a", "PXAT", "1"]),
        step(1, &["GETEX", "missing", "EX", "1"]),
        step(1, &["EXPIRE", "b", "200"]),
        step(1, &["PEXPIRE", "b", "200000"]),
        step(1, &["EXPIREAT", "b", &at]),
        step(1, &["PEXPIREAT", "b", &at_ms]),
        step(1, &["EXPIRE", "b", "100", "NX"]),
        step(1, &["EXPIRE", "missing", "100"]),
        step(1, &["EXPIRE", "b", "-1"]),
        step(1, &["PERSIST", "c"]),
        step(1, &["PERSIST", "c"]),
        step(1, &["RENAME", "c", "c2"]),
        step(1, &["RENAME", "c2", "d"]),
        step(1, &["RENAME", "d", "d"]),
        step(1, &["RENAMENX", "d", "f"]),
        step(1, &["RENAMENX", "d", "z"]),
        step(1, &["RENAME", "missing", "z2"]),
        step(1, &["DEL", "f", "g", "missing"]),
        step(1, &["UNLINK", "h"]),
        step(1, &["EXISTS", "i"]),
        step(1, &["TYPE", "i"]),
        // Lazy expiry: the key is removed (and `expired` sent) when it is next touched.
        step(1, &["SET", "x", "v", "PX", "30"]),
        poll(1, &["EXISTS", "x"], b":0\r\n"),
        step(1, &["SET", "y", "v", "PX", "30"]),
        poll(1, &["PTTL", "y"], b":-2\r\n"),
        step(1, &["SET", "y", "again"]),
        step(1, &["FLUSHALL"]),
        // Only the keyevent channel, and only some classes.
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "Eg"]),
        step(1, &["SET", "a", "1"]),
        step(1, &["EXPIRE", "a", "100"]),
        step(1, &["DEL", "a"]),
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "K$"]),
        step(1, &["SET", "a", "1"]),
        step(1, &["DEL", "a"]),
        step(1, &["CONFIG", "SET", "notify-keyspace-events", ""]),
        step(1, &["SET", "a", "1"]),
        step(1, &["CONFIG", "GET", "notify-keyspace-events"]),
    ];
    compare(2, &steps, &[], &[]);
}

#[test]
fn reads_of_missing_keys_notify_keymiss_as_redis_does() {
    let steps: Vec<Step> = vec![
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "KEm$g"]),
        step(1, &["CONFIG", "GET", "notify-keyspace-events"]),
        setup(0, &["PSUBSCRIBE", "__key*"]),
        step(1, &["SET", "a", "1"]),
        step(1, &["GET", "a"]),
        step(1, &["GET", "nope"]),
        step(1, &["MGET", "a", "b", "c", "a"]),
        step(1, &["STRLEN", "s"]),
        step(1, &["GETRANGE", "r", "0", "-1"]),
        step(1, &["GETRANGE", "r", "x", "-1"]),
        step(1, &["EXISTS", "a", "e", "e"]),
        step(1, &["TYPE", "t"]),
        step(1, &["TTL", "t"]),
        step(1, &["PTTL", "a"]),
        step(1, &["EXPIRETIME", "t"]),
        step(1, &["PEXPIRETIME", "t"]),
        step(1, &["LCS", "a", "l"]),
        step(1, &["GETEX", "g", "PERSIST"]),
        step(1, &["GETEX", "g", "EX", "x"]),
        step(1, &["GETEX", "g", "BOGUS"]),
        step(1, &["GETDEL", "d"]),
        step(1, &["GETSET", "gs", "v"]),
        step(1, &["SET", "sg", "v", "GET"]),
        step(1, &["SET", "sg", "w", "NX", "GET"]),
        step(1, &["SET", "sg2", "w", "XX", "GET"]),
        step(1, &["SET", "sg3", "w", "EX", "x", "GET"]),
        // Writes look keys up for writing: no keymiss.
        step(1, &["INCR", "i"]),
        step(1, &["APPEND", "ap", "x"]),
        step(1, &["DEL", "x"]),
        step(1, &["EXPIRE", "x", "10"]),
        step(1, &["RENAME", "x", "y"]),
        step(1, &["MSETNX", "m1", "1"]),
        step(1, &["SETNX", "n1", "1"]),
        step(1, &["SET", "s1", "1", "NX"]),
        // `A` does not include `m`.
        step(1, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        step(1, &["GET", "nope"]),
        step(1, &["SET", "done", "1"]),
    ];
    compare(2, &steps, &[], &[]);
}

#[test]
fn resp3_subscriber_gets_its_own_events_before_the_reply_as_in_redis() {
    let steps = [
        setup(0, &["HELLO", "3"]),
        step(0, &["CONFIG", "SET", "notify-keyspace-events", "KA"]),
        step(0, &["SUBSCRIBE", "__keyspace@0__:k"]),
        step(0, &["SET", "k", "v", "EX", "10"]),
        step(1, &["DEL", "k"]),
        step(0, &["SET", "k", "v", "PX", "20"]),
        poll(1, &["EXISTS", "k"], b":0\r\n"),
    ];
    compare(2, &steps, &[], &[]);
}

#[test]
fn notify_keyspace_events_comes_from_flags_and_bad_letters_are_refused() {
    let server = Server::start(&["--notify-keyspace-events", "KEA"]);
    let mut c = Frames::tcp(server.addr);
    assert_eq!(
        c.call(&["CONFIG", "GET", "notify-keyspace-events"]),
        b"*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nAKE\r\n"
    );
    let refused = c.call(&["CONFIG", "SET", "notify-keyspace-events", "Kq"]);
    assert!(refused.starts_with(b"-ERR"), "{refused:?}");
    assert_eq!(
        c.call(&["CONFIG", "GET", "notify-keyspace-events"]),
        b"*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nAKE\r\n",
        "unchanged"
    );
}

#[test]
fn eviction_and_active_expiry_are_notified() {
    let server = Server::start(&["--notify-keyspace-events", "Exe"]);
    let mut sub = Frames::tcp(server.addr);
    sub.cmd(&[
        "SUBSCRIBE",
        "__keyevent@0__:evicted",
        "__keyevent@0__:expired",
    ]);
    sub.frame().unwrap();
    sub.frame().unwrap();
    let mut c = Frames::tcp(server.addr);
    // Active expiry: nobody touches the key again.
    assert_eq!(c.call(&["SET", "soon", "v", "PX", "10"]), b"+OK\r\n");
    assert_eq!(
        sub.frame().unwrap(),
        b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$4\r\nsoon\r\n"
    );
    let value = "v".repeat(1000);
    for i in 0..50 {
        c.call(&["SET", &format!("key:{i}"), &value]);
    }
    c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
    c.call(&["CONFIG", "SET", "maxmemory", "20000"]);
    // The next command evicts down to the limit; each key evicted is announced.
    c.call(&["PING"]);
    let frame = sub.frame().unwrap();
    let text = String::from_utf8_lossy(&frame).into_owned();
    assert!(
        text.starts_with("*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:evicted\r\n$")
            && text.contains("key:"),
        "{text}"
    );
}
