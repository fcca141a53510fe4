//! `--maxmemory` against the real binary: with noeviction, commands that add data are refused
//! with Redis's OOM error while reads and deletes go on; with the eviction policies, keys go
//! (least recently used first, or only those with an expiry time) and the data stays under the
//! limit; evictions reach the log as deletions.

mod common;
mod load;

use std::thread::sleep;
use std::time::Duration;

use common::{resp, Client, Server};
use load::{info, info_number};

const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";

/// A 1 KiB value.
fn kib() -> String {
    "x".repeat(1024)
}

/// SETs `key`, returning the raw reply line.
fn set(client: &mut Client, key: &str, args: &[&str]) -> String {
    let value = kib();
    let mut request = vec!["SET", key, value.as_str()];
    request.extend_from_slice(args);
    client.send(&resp(&request));
    client.read_line()
}

#[test]
fn noeviction_refuses_growth_but_serves_reads_and_deletes() {
    let server = Server::start(&["--maxmemory", "100kb"]);
    let mut client = server.connect();
    let mut stored = 0;
    loop {
        let reply = set(&mut client, &format!("k{stored}"), &[]);
        if reply.as_bytes() == OOM {
            break;
        }
        assert_eq!(reply, "+OK\r\n");
        stored += 1;
        assert!(stored < 200, "never refused");
    }
    assert!(
        (80..=100).contains(&stored),
        "{stored} KiB values fit in 100 KiB"
    );
    client.cmd(&["GET", "k0"], format!("$1024\r\n{}\r\n", kib()).as_bytes());
    client.cmd(&["APPEND", "k0", "more"], OOM);
    client.cmd(&["INCR", "n"], OOM);
    client.roundtrip(
        b"INCR n\n",
        b"(error) OOM command not allowed when used memory > 'maxmemory'.\n",
    );
    client.cmd(&["EXPIRE", "k0", "100"], b":1\r\n");
    client.cmd(&["DEL", "k0", "k1"], b":2\r\n");
    client.cmd(&["SET", "small", "v"], b"+OK\r\n");
    let info = info(&mut client);
    assert!(info.contains("maxmemory:102400\r\n"), "{info}");
    assert!(info.contains("maxmemory_policy:noeviction\r\n"), "{info}");
    assert_eq!(info_number(&info, "evicted_keys"), 0);
}

#[test]
fn allkeys_lru_keeps_the_keys_in_use_and_the_data_under_the_limit() {
    // Ten samples, as Redis advises for near-true LRU: with five, all five samples of one
    // eviction can be hot or newer than the hot keys about 1 run in 50 (of ~170 keys, ~30 are).
    let server = Server::start(&[
        "--maxmemory",
        "200kb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--maxmemory-samples",
        "10",
    ]);
    let mut client = server.connect();
    for i in 0..100 {
        assert_eq!(set(&mut client, &format!("cold{i}"), &[]), "+OK\r\n");
    }
    for i in 0..20 {
        assert_eq!(set(&mut client, &format!("hot{i}"), &[]), "+OK\r\n");
    }
    for round in 0..300 {
        // The hot keys are read between writes, so they stay the most recently used.
        if round % 10 == 0 {
            sleep(Duration::from_millis(2));
            for i in 0..20 {
                client.send(&resp(&["GET", &format!("hot{i}")]));
                assert_eq!(client.read_line(), "$1024\r\n", "hot{i} was evicted");
                client.read_n(1026);
            }
        }
        assert_eq!(set(&mut client, &format!("new{round}"), &[]), "+OK\r\n");
    }
    let info = info(&mut client);
    let used = info_number(&info, "used_memory");
    assert!(used <= 200 * 1024, "used_memory {used} over the limit");
    assert!(info_number(&info, "evicted_keys") >= 200, "{info}");
}

#[test]
fn volatile_policies_evict_only_keys_with_an_expiry() {
    for policy in ["volatile-lru", "volatile-ttl", "volatile-random"] {
        let server = Server::start(&["--maxmemory", "100kb", "--maxmemory-policy", policy]);
        let mut client = server.connect();
        for i in 0..40 {
            assert_eq!(set(&mut client, &format!("keep{i}"), &[]), "+OK\r\n");
        }
        let mut refused = false;
        for i in 0..200 {
            let reply = set(&mut client, &format!("temp{i}"), &["EX", "1000"]);
            if reply.as_bytes() == OOM {
                refused = true;
                break;
            }
            assert_eq!(reply, "+OK\r\n");
        }
        assert!(!refused, "{policy}: keys with an expiry could be evicted");
        for i in 0..40 {
            client.cmd(&["EXISTS", &format!("keep{i}")], b":1\r\n");
        }
        // Only persistent keys left to choose from: growth is refused.
        client.cmd(&["PERSIST", "nothing"], b":0\r\n");
        let mut last = String::new();
        for i in 0..200 {
            last = set(&mut client, &format!("more{i}"), &[]);
            if last.as_bytes() == OOM {
                break;
            }
        }
        assert_eq!(
            last.as_bytes(),
            OOM,
            "{policy}: growth past the limit with nothing to evict"
        );
    }
}

#[test]
fn evictions_are_logged_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--maxmemory",
        "50kb",
        "--maxmemory-policy",
        "allkeys-random",
        "--appendonly",
        "yes",
        // Every reply, DBSIZE's included (it may evict first), waits for its records on disk.
        "--appendfsync",
        "always",
    ];
    let mut server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    for i in 0..200 {
        assert_eq!(set(&mut client, &format!("k{i}"), &[]), "+OK\r\n");
    }
    client.send(&resp(&["DBSIZE"]));
    let size = client.read_line();
    server.signal("KILL");
    server.wait_exit();
    // No limit now: what was evicted is gone because the log says so, not by a new eviction.
    let server = Server::start_in(dir.path(), &flags[4..]);
    let mut client = server.connect();
    client.send(&resp(&["DBSIZE"]));
    assert_eq!(client.read_line(), size);
}

#[test]
fn config_set_changes_the_limit_and_policy_at_run_time() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    for i in 0..50 {
        assert_eq!(set(&mut client, &format!("k{i}"), &[]), "+OK\r\n");
    }
    client.cmd(&["CONFIG", "SET", "maxmemory", "20kb"], b"+OK\r\n");
    client.cmd(&["SET", "x", "y"], OOM);
    client.cmd(
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        b"+OK\r\n",
    );
    client.cmd(&["SET", "x", "y"], b"+OK\r\n");
    let info = info(&mut client);
    assert!(info_number(&info, "used_memory") <= 20 * 1024, "{info}");
    client.cmd(&["CONFIG", "GET", "maxmemory*"], b"*6\r\n$9\r\nmaxmemory\r\n$5\r\n20480\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n$17\r\nmaxmemory-samples\r\n$1\r\n5\r\n");
    client.cmd(&["CONFIG", "SET", "maxmemory-policy", "lfu"], b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument must be one of noeviction, allkeys-lru, allkeys-random, volatile-lru, volatile-random, volatile-ttl\r\n");
}
