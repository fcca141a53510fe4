//! Expiry against the real binary: keys vanish on time in both dialects, active expiry reclaims
//! keys nobody reads, times survive restarts as absolute times in the snapshot and the log, and a
//! mass expiry is reclaimed in slices that never stall the loop.

mod common;
mod load;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{resp, Client, Server, DEADLINE};
use load::{env_or, info, info_number};

/// Sends `args` and returns the integer reply.
fn integer(client: &mut Client, args: &[&str]) -> i64 {
    client.send(&resp(args));
    let line = client.read_line();
    line.strip_prefix(':')
        .and_then(|n| n.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("{args:?}: not an integer reply: {line:?}"))
}

/// Polls `args` until it answers `want`, failing after the deadline.
fn wait_for(client: &mut Client, args: &[&str], want: i64) {
    let until = Instant::now() + DEADLINE;
    loop {
        let got = integer(client, args);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < until,
            "{args:?} is still {got}, not {want}"
        );
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_key_is_returned_until_its_time_and_never_after() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    // Taken before sending, so the server's own time of the SET is no earlier.
    let set_at = Instant::now();
    client.cmd(&["SET", "k", "v", "PX", "300"], b"+OK\r\n");
    let ttl = integer(&mut client, &["PTTL", "k"]);
    // Gone (-2) only if this thread stalled past the key's time since the SET.
    assert!(
        (1..=300).contains(&ttl) || (ttl == -2 && set_at.elapsed() >= Duration::from_millis(300)),
        "PTTL {ttl}"
    );
    let mut gone_at = None;
    while gone_at.is_none() {
        client.send(&resp(&["GET", "k"]));
        match client.read_line().as_str() {
            "$1\r\n" => {
                client.expect(b"v\r\n");
                assert!(set_at.elapsed() < DEADLINE, "k never expired");
            }
            "$-1\r\n" => gone_at = Some(set_at.elapsed()),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(
        gone_at >= Some(Duration::from_millis(300)),
        "gone after {gone_at:?}"
    );
    for _ in 0..20 {
        client.cmd(&["GET", "k"], b"$-1\r\n");
        client.cmd(&["EXISTS", "k"], b":0\r\n");
        client.cmd(&["TTL", "k"], b":-2\r\n");
    }
}

#[test]
fn the_text_dialect_sets_and_reads_expiry() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.roundtrip(b"SET session abc EX 100\n", b"OK\n");
    client.roundtrip(b"TTL session\n", b"(integer) 100\n");
    client.roundtrip(b"PERSIST session\n", b"(integer) 1\n");
    client.roundtrip(b"TTL session\n", b"(integer) -1\n");
    client.roundtrip(b"EXPIRE session 5 GT\n", b"(integer) 0\n");
    client.roundtrip(b"TTL nothing\n", b"(integer) -2\n");
    client.roundtrip(
        b"SETEX session 0 x\n",
        b"(error) ERR invalid expire time in 'setex' command\n",
    );
}

#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend(resp(&["SET", &format!("temp:{i}"), "x", "PX", "50"]));
    }
    for i in 0..10 {
        batch.extend(resp(&["SET", &format!("keep:{i}"), "x"]));
    }
    client.send(&batch);
    client.expect(&b"+OK\r\n".repeat(2010));
    wait_for(&mut client, &["DBSIZE"], 10);
    let info = info(&mut client);
    assert_eq!(info_number(&info, "expired_keys"), 2000);
    assert!(
        info.contains("db0:keys=10,expires=0,avg_ttl=0\r\n"),
        "{info}"
    );
}

/// The RESP form of a request, as the log holds it.
fn record(args: &[&str]) -> Vec<u8> {
    resp(args)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn log_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("appendonly.1.aof")).expect("log segment")
}

#[test]
fn the_log_holds_absolute_times_and_replays_them_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    client.cmd(&["SET", "a", "1", "EX", "1000"], b"+OK\r\n");
    client.cmd(&["SET", "b", "2"], b"+OK\r\n");
    client.cmd(&["EXPIRE", "b", "2000"], b":1\r\n");
    client.cmd(&["SETEX", "c", "3000", "3"], b"+OK\r\n");
    client.cmd(&["SET", "d", "4", "PX", "100"], b"+OK\r\n");
    let a = integer(&mut client, &["PEXPIRETIME", "a"]).to_string();
    let b = integer(&mut client, &["PEXPIRETIME", "b"]).to_string();
    let c = integer(&mut client, &["PEXPIRETIME", "c"]).to_string();
    // Reclaimed (and logged) by active expiry, since nobody reads it.
    wait_for(&mut client, &["DBSIZE"], 3);
    let log = log_bytes(dir.path());
    for expected in [
        record(&["SET", "a", "1", "PXAT", &a]),
        record(&["PEXPIREAT", "b", &b]),
        record(&["SET", "c", "3", "PXAT", &c]),
        record(&["DEL", "d"]),
    ] {
        assert!(
            contains(&log, &expected),
            "log lacks {:?}",
            String::from_utf8_lossy(&expected)
        );
    }
    server.signal("KILL");
    server.wait_exit();
    let server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    for (key, at) in [("a", &a), ("b", &b), ("c", &c)] {
        client.cmd(&["PEXPIRETIME", key], format!(":{at}\r\n").as_bytes());
    }
    client.cmd(&["EXISTS", "d"], b":0\r\n");
    client.cmd(&["DBSIZE"], b":3\r\n");
}

#[test]
fn snapshots_keep_times_and_drop_what_expired_while_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let mut client = server.connect();
    client.cmd(&["SET", "long", "v", "EX", "1000"], b"+OK\r\n");
    // Long enough that no stall of a busy machine lets it expire before the SAVE: that would
    // test nothing (and two seconds is all the test then waits with the server down).
    client.cmd(&["SET", "short", "v", "PX", "2000"], b"+OK\r\n");
    client.cmd(&["SET", "plain", "v"], b"+OK\r\n");
    let long = integer(&mut client, &["PEXPIRETIME", "long"]);
    let short = integer(&mut client, &["PEXPIRETIME", "short"]);
    client.cmd(&["SAVE"], b"+OK\r\n");
    let text = std::fs::read_to_string(server.snapshot_path()).unwrap();
    assert!(text.contains(&format!(r#"["long","v",{long}]"#)), "{text}");
    assert!(text.contains(r#"["plain","v"]"#), "{text}");
    server.signal("KILL");
    server.wait_exit();
    // The time has to pass while the server is down: that is what is tested.
    let now_ms = || common_now_ms();
    while now_ms() <= short as u64 {
        sleep(Duration::from_millis(20));
    }
    let mut server = Server::start_in(dir.path(), &[]);
    server.wait_log("1 expired while stopped and dropped");
    let mut client = server.connect();
    client.cmd(&["DBSIZE"], b":2\r\n");
    client.cmd(&["PEXPIRETIME", "long"], format!(":{long}\r\n").as_bytes());
    client.cmd(&["TTL", "plain"], b":-1\r\n");
}

/// A key that expired while the server was down is dropped at start, and the log says so
/// before the commands that follow: found by the model test, where after a second kill -9 the
/// replay of a DECR of such a key failed ("value is not an integer") and the server would not
/// start.
#[test]
fn keys_dropped_at_start_are_logged_before_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    // Two seconds, so it is still there for PEXPIRETIME however busy the machine.
    client.cmd(&["SET", "n", "not a number", "PX", "2000"], b"+OK\r\n");
    let at = integer(&mut client, &["PEXPIRETIME", "n"]);
    assert!(at > 0, "n expired before PEXPIRETIME: {at}");
    let at = at as u64;
    server.signal("KILL");
    server.wait_exit();
    while common_now_ms() <= at {
        sleep(Duration::from_millis(20));
    }
    let mut server = Server::start_in(dir.path(), &flags);
    server.wait_log("1 expired while stopped and dropped");
    let mut client = server.connect();
    client.cmd(&["DECR", "n"], b":-1\r\n");
    server.signal("KILL");
    server.wait_exit();
    assert!(contains(&log_bytes(dir.path()), &record(&["DEL", "n"])));
    let server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    client.cmd(&["GET", "n"], b"$2\r\n-1\r\n");
}

fn common_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A mass expiry is reclaimed while a client keeps getting answers, every key is counted as
/// expired, and none is left. That the longest loop turn (the server's own CPU measure) stays
/// where loading put it is a timing target, asserted by `make soak` (a million keys,
/// POCKETKV_EXPIRY_KEYS, release build): in a debug build on a busy machine a turn's CPU time
/// stretches with the machine's load (page faults, cache misses), so here it is printed.
#[test]
fn a_mass_expiry_never_stalls_the_loop() {
    let keys: usize = env_or("POCKETKV_EXPIRY_KEYS", 200_000);
    let server = Server::start(&["--save-interval", "0"]);
    let mut loader = server.connect();
    let ttl_ms = 1500;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(10_000) {
        let mut batch = Vec::new();
        for i in chunk {
            batch.extend(resp(&[
                "SET",
                &format!("key:{i:08}"),
                "value-16-bytes!!",
                "PX",
                &ttl_ms.to_string(),
            ]));
        }
        loader.send(&batch);
        loader.expect(&b"+OK\r\n".repeat(chunk.len()));
    }
    let loaded = info_number(&info(&mut loader), "longest_loop_turn_cpu_usec");
    let mut probe = server.connect();
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + DEADLINE * 3;
    loop {
        let asked = Instant::now();
        let size = integer(&mut probe, &["DBSIZE"]);
        slowest = slowest.max(asked.elapsed());
        if size == 0 {
            break;
        }
        assert!(Instant::now() < until, "{size} keys still there");
        sleep(Duration::from_millis(5));
    }
    let info = info(&mut probe);
    assert_eq!(info_number(&info, "expired_keys"), keys as u64);
    let longest = info_number(&info, "longest_loop_turn_cpu_usec");
    eprintln!(
        "{keys} keys: longest loop turn {loaded} µs CPU after loading, {longest} µs after the \
         expiry; slowest DBSIZE during it {slowest:?}"
    );
    load::timing_target(
        longest <= loaded.max(20_000),
        &format!("a loop turn took {longest} µs of CPU during the expiry (loading: {loaded} µs)"),
    );
}
