//! Many clients at once against the real binary: 200 threads writing their own keys and
//! incrementing one shared counter, in both dialects, then a consistency check of everything.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use common::{resp, Client, Server};

const CLIENTS: usize = 200;
const ROUNDS: usize = 40;
/// Keys each client owns and rewrites round-robin.
const OWN_KEYS: usize = 4;

/// Reads one RESP integer reply (`:<n>\r\n`).
fn read_resp_integer(client: &mut Client) -> i64 {
    assert_eq!(client.read_n(1), b":", "not a RESP integer reply");
    read_number_until(client, b"\r\n")
}

/// Reads one text-dialect integer reply (`(integer) <n>\n`).
fn read_text_integer(client: &mut Client) -> i64 {
    let prefix = client.read_n(b"(integer) ".len());
    assert_eq!(prefix, b"(integer) ", "not a text integer reply");
    read_number_until(client, b"\n")
}

/// Reads a decimal number followed by `end`.
fn read_number_until(client: &mut Client, end: &[u8]) -> i64 {
    let mut line = Vec::new();
    while !line.ends_with(end) {
        line.extend(client.read_n(1));
        assert!(line.len() < 32, "runaway line {line:?}");
    }
    let digits = std::str::from_utf8(&line[..line.len() - end.len()]).unwrap();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("bad integer {digits:?}"))
}

fn own_key(client: usize, k: usize) -> String {
    format!("c{client}:k{k}")
}

fn own_value(client: usize, round: usize) -> String {
    format!("v{client}.{round}")
}

/// One client's workload; returns every value the shared counter had after its INCRs.
fn workload(mut conn: Client, me: usize, start: &Barrier) -> Vec<i64> {
    let text = me % 2 == 1;
    let mut seen = Vec::with_capacity(ROUNDS * 2);
    start.wait();
    for round in 0..ROUNDS {
        let key = own_key(me, round % OWN_KEYS);
        let value = own_value(me, round);
        if text {
            conn.roundtrip(format!("SET {key} {value}\n").as_bytes(), b"OK\n");
            conn.send(b"INCR shared\n");
            seen.push(read_text_integer(&mut conn));
            conn.roundtrip(
                format!("GET {key}\n").as_bytes(),
                format!("{value}\n").as_bytes(),
            );
        } else {
            conn.cmd(&["SET", &key, &value], b"+OK\r\n");
            conn.send(&resp(&["INCR", "shared"]));
            seen.push(read_resp_integer(&mut conn));
            conn.cmd(&["GET", &key], &common::bulk(&value));
        }
        // Every fourth round, a small pipeline: an APPEND to a private log, another INCR and a
        // read of the private log, all in one write.
        if round % 4 == 3 {
            let log = format!("c{me}:log");
            let mut request = resp(&["APPEND", &log, "x"]);
            request.extend(resp(&["INCR", "shared"]));
            request.extend(resp(&["STRLEN", &log]));
            conn.send(&request);
            let appends = (round / 4 + 1) as i64;
            conn.expect(format!(":{appends}\r\n").as_bytes());
            seen.push(read_resp_integer(&mut conn));
            conn.expect(format!(":{appends}\r\n").as_bytes());
        }
    }
    seen
}

#[test]
fn two_hundred_clients_mixed_writes_stay_consistent() {
    let server = Server::start(&[]);
    let start = Arc::new(Barrier::new(CLIENTS));
    // Everyone connects (and is served once) before anyone starts, so all 200 really overlap.
    let mut workers = Vec::new();
    for me in 0..CLIENTS {
        let mut conn = server.connect();
        conn.cmd(&["PING"], b"+PONG\r\n");
        let start = Arc::clone(&start);
        workers.push(
            thread::Builder::new()
                .name(format!("client-{me}"))
                .stack_size(256 * 1024)
                .spawn(move || workload(conn, me, &start))
                .expect("spawn client thread"),
        );
    }
    let mut seen: Vec<i64> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("client thread"))
        .collect();

    // Each INCR was atomic: the replies are exactly 1..=N, each once.
    let incrs_per_client = ROUNDS + ROUNDS / 4;
    let total = (CLIENTS * incrs_per_client) as i64;
    seen.sort_unstable();
    assert_eq!(seen.len() as i64, total);
    assert!(
        seen.iter().copied().eq(1..=total),
        "INCR replies are not exactly 1..={total}"
    );

    let mut check = server.connect();
    check.cmd(&["GET", "shared"], &common::bulk(&total.to_string()));
    // Every owned key holds the value from the last round that wrote it.
    for me in 0..CLIENTS {
        let keys: Vec<String> = (0..OWN_KEYS).map(|k| own_key(me, k)).collect();
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        let mut expected = format!("*{OWN_KEYS}\r\n").into_bytes();
        for k in 0..OWN_KEYS {
            let last_round = (0..ROUNDS).rev().find(|r| r % OWN_KEYS == k).unwrap();
            expected.extend(common::bulk(&own_value(me, last_round)));
        }
        check.cmd(&args, &expected);
        let log = "x".repeat(ROUNDS / 4);
        check.cmd(&["GET", &format!("c{me}:log")], &common::bulk(&log));
    }
    // Owned keys, one log per client, and the shared counter; nothing else.
    let keys = CLIENTS * (OWN_KEYS + 1) + 1;
    check.cmd(&["DBSIZE"], format!(":{keys}\r\n").as_bytes());
    check.cmd(&["EXISTS", "shared"], b":1\r\n");
}

#[test]
fn connection_churn_alongside_steady_clients() {
    const CHURNERS: usize = 40;
    const CONNECTIONS_EACH: usize = 25;
    let server = Server::start(&[]);
    let addr = server.addr;
    let steady = thread::spawn(move || {
        let mut conn = Client::connect(addr);
        for i in 0..500 {
            conn.cmd(&["INCR", "steady"], format!(":{}\r\n", i + 1).as_bytes());
        }
    });
    let churners: Vec<_> = (0..CHURNERS)
        .map(|me| {
            thread::spawn(move || {
                for n in 0..CONNECTIONS_EACH {
                    let mut conn = Client::connect(addr);
                    // Half say goodbye with QUIT, half just hang up after their reply.
                    conn.cmd(&["SET", &format!("churn:{me}"), &n.to_string()], b"+OK\r\n");
                    if n % 2 == 0 {
                        conn.cmd(&["QUIT"], b"+OK\r\n");
                        conn.expect_closed();
                    }
                }
            })
        })
        .collect();
    for churner in churners {
        churner.join().expect("churn thread");
    }
    steady.join().expect("steady thread");
    let mut check = server.connect();
    check.cmd(&["GET", "steady"], &common::bulk("500"));
    for me in 0..CHURNERS {
        check.cmd(
            &["GET", &format!("churn:{me}")],
            &common::bulk(&(CONNECTIONS_EACH - 1).to_string()),
        );
    }
    check.cmd(&["DBSIZE"], format!(":{}\r\n", CHURNERS + 1).as_bytes());
    // Every closed connection is let go: only `check` remains, soon (closes are asynchronous).
    let deadline = Instant::now() + common::DEADLINE;
    loop {
        check.send(&resp(&["INFO", "clients"]));
        let info = read_bulk(&mut check);
        if info.contains("connected_clients:1\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "clients never released:\n{info}");
        thread::yield_now();
    }
}

/// Reads one RESP bulk reply as text.
fn read_bulk(client: &mut Client) -> String {
    assert_eq!(client.read_n(1), b"$", "not a bulk reply");
    let len = read_number_until(client, b"\r\n") as usize;
    let body = client.read_n(len + 2);
    assert!(body.ends_with(b"\r\n"));
    String::from_utf8(body[..len].to_vec()).expect("utf-8 INFO")
}
