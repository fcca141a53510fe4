//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Most tests are differential: the same requests go to a real `redis-server` 7.0 and to
//! pocketkv, and every reply must be byte for byte the same. The rest check what Redis has no
//! counterpart for: the text dialect, `POST /v1/tx`, a transaction as one unit of the log across
//! kill -9, and redis-py's pipeline and `transaction()`.
//!
//! Intended differences, not compared: HELLO's reply (it names the server), and SUBSCRIBE inside
//! MULTI (pub/sub lands separately).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use common::redis::{connect_pocket, text, Deadline, Redis, Replies};
use common::{resp, Server, DEADLINE};

/// A redis-server and a pocketkv started with the same extra settings.
struct Both {
    redis: Redis,
    pocketkv: Server,
}

impl Both {
    fn start(extra: &[&str]) -> Both {
        Both {
            redis: Redis::start(extra),
            pocketkv: Server::start(extra),
        }
    }

    /// One new connection to each.
    fn connect(&self) -> (Replies<UnixStream>, Replies<TcpStream>) {
        (self.redis.connect(), connect_pocket(&self.pocketkv))
    }
}

/// A request from a command line split at spaces.
fn req(line: &str) -> Vec<u8> {
    resp(&line.split(' ').collect::<Vec<_>>())
}

/// Sends `lines` (joined by `;`) pipelined, in one write, and reads one reply per request.
fn pipeline<S: Read + Write + Deadline>(conn: &mut Replies<S>, lines: &str) -> Vec<Vec<u8>> {
    let requests: Vec<&str> = lines.split(';').filter(|l| !l.is_empty()).collect();
    let bytes: Vec<u8> = requests.iter().flat_map(|l| req(l)).collect();
    conn.send(&bytes);
    requests.iter().map(|_| conn.reply()).collect()
}

/// Bytes as a quoted string for failure messages.
fn show(bytes: &[u8]) -> String {
    format!("{:?}", text(bytes))
}

/// Sends the same pipeline on both connections and asserts the same replies.
fn same(
    redis: &mut Replies<UnixStream>,
    pocketkv: &mut Replies<TcpStream>,
    lines: &str,
) -> Vec<Vec<u8>> {
    let expected = pipeline(redis, lines);
    let got = pipeline(pocketkv, lines);
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(
            e,
            g,
            "{lines}: reply {} differs\nredis:    {}\npocketkv: {}",
            i + 1,
            show(e),
            show(g)
        );
    }
    expected
}

#[test]
fn replies_and_errors_match_redis() {
    let both = Both::start(&[]);
    // Each scenario on fresh connections, pipelined in one write.
    let scenarios = [
        "MULTI;SET a 1;INCR a;GET a;EXEC;GET a",
        "MULTI;MULTI;SET a 1;EXEC",
        "EXEC;DISCARD;EXEC x",
        "MULTI;WATCH a;EXEC",
        "MULTI;GET;EXEC",
        "MULTI;FOO bar;SET a 2;EXEC;GET a",
        "MULTI;CLIENT NOPE;EXEC",
        "MULTI;EXEC x;EXEC",
        "MULTI;DISCARD x;DISCARD;EXEC",
        "MULTI;DISCARD x;EXEC",
        "MULTI;SET a x;INCR a;GET a;APPEND a y;EXEC",
        "WATCH;UNWATCH x;MULTI x;EXEC",
        "MULTI;UNWATCH;EXEC",
        "MULTI;SAVE;EXEC",
        "MULTI;SHUTDOWN NOSAVE;PING;EXEC",
        "MULTI;EXEC",
        "MULTI;DISCARD;EXEC",
        "MULTI;SELECT 0;PING;ECHO hi;DBSIZE;EXEC",
        "MULTI;AUTH x;PING;EXEC",
        "MULTI;SET a 1;DEL a b;EXISTS a;MSET b 1 c 2;MGET a b c;EXEC",
        "MULTI;SET a 1 EX 100;TTL a;PERSIST a;TTL a;EXEC",
        "MULTI;SET n 5;INCRBY n x;INCRBY n 2;DECR n;EXEC",
        "MULTI;RENAME missing b;SET b 1;RENAME b c;GET c;EXEC",
        "MULTI;FLUSHALL;SET z 1;DBSIZE;EXEC",
        "multi;set a 1;exec",
        "MULTI;MULTI x;EXEC",
        "MULTI;WATCH;EXEC",
        "MULTI;UNWATCH x;EXEC",
        "MULTI;SET a b c d;GET a;PING a b c;EXEC",
        "MULTI;EXEC;EXEC",
        "MULTI;DEL a;FLUSHALL;EXEC",
        "MULTI;ECHO;PING;DISCARD",
        "WATCH a b;MULTI;EXEC",
        "MULTI;SET k v;GETDEL k;GETDEL k;RENAME k j;EXEC",
        "MULTI;CLIENT SETNAME x y;EXEC",
        "MULTI;CLIENT ID x;EXEC",
        "MULTI;SET a 1;QUIT",
        // Several transactions back to back in one write.
        "MULTI;INCR c;INCR c;EXEC;MULTI;GET c;EXEC;GET c;MULTI;INCR c;DISCARD;GET c",
    ];
    for scenario in scenarios {
        let (mut redis, mut pocketkv) = both.connect();
        same(&mut redis, &mut pocketkv, "FLUSHALL");
        same(&mut redis, &mut pocketkv, scenario);
    }
}

#[test]
fn resp3_replies_match_redis() {
    let both = Both::start(&[]);
    let (mut redis, mut pocketkv) = both.connect();
    // HELLO's own reply names the server; everything after it is compared.
    pipeline(&mut redis, "HELLO 3");
    pipeline(&mut pocketkv, "HELLO 3");
    for scenario in [
        "FLUSHALL",
        "MULTI;SET a 1;GET missing;MGET a missing;INCR a;EXEC",
        "MULTI;GET;EXEC",
        "MULTI;EXEC",
        "WATCH a;SET a 2;MULTI;GET a;EXEC",
        "EXEC",
    ] {
        same(&mut redis, &mut pocketkv, scenario);
    }
}

#[test]
fn refusals_at_maxmemory_and_without_auth_match_redis() {
    let both = Both::start(&["--maxmemory-policy", "noeviction"]);
    let (mut redis, mut pocketkv) = both.connect();
    let (mut redis_admin, mut pocketkv_admin) = both.connect();
    let full = "CONFIG SET maxmemory 1";
    let room = "CONFIG SET maxmemory 0";
    same(
        &mut redis_admin,
        &mut pocketkv_admin,
        &format!("SET filler x;{full}"),
    );
    // Over maxmemory everything queued is refused (a queue must not grow unbounded), EXEC and
    // DISCARD are not.
    same(&mut redis, &mut pocketkv, "MULTI;GET a;SET b 1;EXEC");
    same(&mut redis, &mut pocketkv, "MULTI;DISCARD;MULTI;EXEC");
    // Queued while there was room, refused as a whole once there is none.
    same(&mut redis_admin, &mut pocketkv_admin, room);
    same(&mut redis, &mut pocketkv, "MULTI;SET a 1;GET a");
    same(&mut redis_admin, &mut pocketkv_admin, full);
    same(&mut redis, &mut pocketkv, "EXEC;EXEC");
    // A read-only queue is not refused at EXEC.
    same(&mut redis_admin, &mut pocketkv_admin, room);
    same(&mut redis, &mut pocketkv, "MULTI;GET a;DBSIZE");
    same(&mut redis_admin, &mut pocketkv_admin, full);
    same(&mut redis, &mut pocketkv, "EXEC");

    let both = Both::start(&["--requirepass", "pw"]);
    let (mut redis, mut pocketkv) = both.connect();
    same(&mut redis, &mut pocketkv, "MULTI;GET a;EXEC;DISCARD");
    same(
        &mut redis,
        &mut pocketkv,
        "AUTH pw;MULTI;AUTH nope;SET a 1;GET a;EXEC",
    );
}

/// A WATCH scenario on two connections per server: `b` prepares, `a` watches, `b` writes (or
/// not), then `a` runs a transaction. Returns redis's last replies, which pocketkv matched.
fn watch_case(both: &Both, setup: &str, watch: &str, other: &str, then: &str) -> Vec<Vec<u8>> {
    let (mut redis_a, mut pocketkv_a) = both.connect();
    let (mut redis_b, mut pocketkv_b) = both.connect();
    same(&mut redis_b, &mut pocketkv_b, &format!("FLUSHALL;{setup}"));
    same(&mut redis_a, &mut pocketkv_a, watch);
    same(&mut redis_b, &mut pocketkv_b, other);
    same(&mut redis_a, &mut pocketkv_a, then)
}

const TX: &str = "MULTI;PING;EXEC";
const ABORTED: &[u8] = b"*-1\r\n";
const RAN: &[u8] = b"*1\r\n+PONG\r\n";

#[test]
fn watch_matches_redis() {
    let both = Both::start(&[]);
    // (setup, watch, the other client's writes, whether EXEC must be aborted)
    let cases: &[(&str, &str, &str, bool)] = &[
        ("SET a 1", "WATCH a", "GET a", false),
        ("SET a 1", "WATCH a", "SET a 2", true),
        ("SET a 1", "WATCH a", "SET a 1", true),
        ("SET a 1", "WATCH x y a", "DEL a", true),
        ("", "WATCH x", "DEL x y", false),
        ("SET x 1", "WATCH y", "DEL x y", false),
        ("SET b 1", "WATCH a", "RENAME b a", true),
        ("SET b 1", "WATCH b", "RENAME b a", true),
        ("SET a 1", "WATCH a", "RENAME a a", false),
        ("SET a 1;SET b 1", "WATCH a", "RENAMENX b a", false),
        ("SET x 1", "WATCH x", "FLUSHALL", true),
        ("SET x 1", "WATCH x", "FLUSHDB", true),
        ("SET y 1", "WATCH x", "FLUSHALL", false),
        ("SET a 1", "WATCH a", "EXPIRE a 100", true),
        ("SET a 1", "WATCH a", "PERSIST a", false),
        ("SET a 1", "WATCH a", "EXPIRE a -1", true),
        ("SET a 1", "WATCH a", "SET a 2 NX", false),
        ("SET a x", "WATCH a", "INCR a", false),
        ("SET a 1", "WATCH a", "MULTI;SET a 5;EXEC", true),
        ("SET a 1", "WATCH a;UNWATCH", "SET a 5", false),
        ("SET a 1", "WATCH a;MULTI;DISCARD", "SET a 5", false),
        ("SET a 1", "WATCH a", "GETDEL a", true),
        ("SET a 1", "WATCH a", "APPEND a ", true),
        ("SET a 1", "WATCH a", "SETRANGE a 0 ", false),
        ("SET a 1", "WATCH a", "MSET b 1 a 1", true),
        ("SET a 1", "WATCH a", "GETEX a PERSIST", false),
        ("SET a 1", "WATCH a", "INCRBY a 0", true),
    ];
    for &(setup, watch, other, aborted) in cases {
        let replies = watch_case(&both, setup, watch, other, TX);
        let exec = replies.last().cloned().unwrap_or_default();
        let want: &[u8] = if aborted { ABORTED } else { RAN };
        assert_eq!(exec, want, "{setup} | {watch} | {other}: {}", show(&exec));
    }
    // A client's own write aborts its transaction too; EXEC forgets the watches either way.
    let (mut redis, mut pocketkv) = both.connect();
    let own = "SET a 1;WATCH a;SET a 2;MULTI;PING;EXEC;MULTI;PING;EXEC";
    let replies = same(&mut redis, &mut pocketkv, own);
    assert_eq!(replies[5], ABORTED);
    assert_eq!(replies[8], RAN);
}

/// Waits until `key` is gone on both servers (EXISTS removes it once its time has passed).
fn wait_gone(both: &Both, key: &str) {
    let (mut redis, mut pocketkv) = both.connect();
    let deadline = Instant::now() + DEADLINE;
    while pipeline(&mut redis, &format!("EXISTS {key}"))[0] != b":0\r\n" {
        assert!(Instant::now() < deadline, "{key} did not expire in redis");
        std::thread::yield_now();
    }
    while pipeline(&mut pocketkv, &format!("EXISTS {key}"))[0] != b":0\r\n" {
        assert!(
            Instant::now() < deadline,
            "{key} did not expire in pocketkv"
        );
        std::thread::yield_now();
    }
}

#[test]
fn watch_and_expiry_match_redis() {
    let both = Both::start(&[]);
    let (mut redis_a, mut pocketkv_a) = both.connect();
    let (mut redis_b, mut pocketkv_b) = both.connect();
    // A key alive at WATCH that expires before EXEC aborts it.
    same(&mut redis_b, &mut pocketkv_b, "FLUSHALL;SET a 1 PX 1000");
    same(&mut redis_a, &mut pocketkv_a, "WATCH a");
    wait_gone(&both, "a");
    let replies = same(&mut redis_a, &mut pocketkv_a, TX);
    assert_eq!(replies[2], ABORTED);
    // A key already expired at WATCH: its removal is no change, writing it is.
    for (other, aborted) in [
        ("GET a", false),
        ("DEL a", false),
        ("FLUSHALL", false),
        ("SET a 2", true),
        ("GET a;SET a 3", true),
    ] {
        same(&mut redis_b, &mut pocketkv_b, "FLUSHALL;SET a 1 PX 1");
        wait_gone(&both, "a");
        same(&mut redis_a, &mut pocketkv_a, "WATCH a");
        same(&mut redis_b, &mut pocketkv_b, other);
        let replies = same(&mut redis_a, &mut pocketkv_a, TX);
        let want: &[u8] = if aborted { ABORTED } else { RAN };
        assert_eq!(replies[2], want, "expired before WATCH, then {other}");
    }
}

#[test]
fn a_watch_race_between_two_clients_matches_redis() {
    let both = Both::start(&[]);
    let (mut redis_a, mut pocketkv_a) = both.connect();
    let (mut redis_b, mut pocketkv_b) = both.connect();
    same(&mut redis_a, &mut pocketkv_a, "SET counter 10");
    // Both read the counter under WATCH; A commits first, so B's update must fail.
    same(&mut redis_a, &mut pocketkv_a, "WATCH counter;GET counter");
    same(&mut redis_b, &mut pocketkv_b, "WATCH counter;GET counter");
    let a = same(&mut redis_a, &mut pocketkv_a, "MULTI;SET counter 11;EXEC");
    let b = same(&mut redis_b, &mut pocketkv_b, "MULTI;SET counter 11;EXEC");
    assert_eq!(a[2], b"*1\r\n+OK\r\n");
    assert_eq!(b[2], ABORTED);
    // B retries and wins.
    let retry = same(
        &mut redis_b,
        &mut pocketkv_b,
        "WATCH counter;GET counter;MULTI;SET counter 12;EXEC;GET counter",
    );
    assert_eq!(retry[4], b"*1\r\n+OK\r\n");
    assert_eq!(retry[5], b"$2\r\n12\r\n");
}

#[test]
fn optimistic_increments_from_many_clients_lose_nothing() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = common::Client::connect(addr);
                let mut retries = 0u64;
                for _ in 0..50 {
                    loop {
                        client.send(&resp(&["WATCH", "n"]));
                        client.expect(b"+OK\r\n");
                        client.send(&resp(&["GET", "n"]));
                        let line = client.read_line();
                        let value: u64 = if line.starts_with("$-1") {
                            0
                        } else {
                            client.read_line().trim().parse().expect("a number")
                        };
                        let next = (value + 1).to_string();
                        client.send(
                            &[
                                resp(&["MULTI"]),
                                resp(&["SET", "n", &next]),
                                resp(&["EXEC"]),
                            ]
                            .concat(),
                        );
                        client.expect(b"+OK\r\n+QUEUED\r\n");
                        let exec = client.read_line();
                        if exec.starts_with("*-1") {
                            retries += 1;
                            continue;
                        }
                        client.expect(b"+OK\r\n");
                        break;
                    }
                }
                retries
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    let mut client = server.connect();
    client.cmd(&["GET", "n"], b"$3\r\n200\r\n");
}

#[test]
fn text_dialect_prints_queued_and_a_numbered_list() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.send(b"MULTI\nSET t 5\nINCR t\nMGET t nope\nEXEC\n");
    client.expect(b"OK\nQUEUED\nQUEUED\nQUEUED\n1) OK\n2) (integer) 6\n3) 1) 6\n   2) (nil)\n");
    client.send(b"MULTI\nNOPE\nEXEC\nMULTI\nEXEC\nEXEC\n");
    client.expect(
        b"OK\n(error) ERR unknown command 'NOPE', with args beginning with: \n\
          (error) EXECABORT Transaction discarded because of previous errors.\n\
          OK\n(empty array)\n(error) ERR EXEC without MULTI\n",
    );
    client.send(b"WATCH t\nSET t 1\nMULTI\nGET t\nEXEC\n");
    client.expect(b"OK\nOK\nOK\nQUEUED\n(nil)\n");
}

/// Sends one HTTP request and reads the whole response (the request asks to close).
fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn http_server() -> (Server, std::net::SocketAddr) {
    let mut server = Server::start(&["--http-port", "0"]);
    let line = server.wait_log("HTTP on ");
    let addr = line
        .split("HTTP on ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .expect("HTTP address in the start-up line")
        .parse()
        .expect("socket address");
    (server, addr)
}

#[test]
fn http_tx_runs_a_json_array_of_commands() {
    let (server, addr) = http_server();
    let ok = http(
        addr,
        "POST",
        "/v1/tx",
        r#"[["SET","a","1"],["INCR","a"],["GET","nope"],["SET","s","x"],["INCR","s"],["MGET","a","nope"],["SET","n",5]]"#,
    );
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("Content-Type: application/json\r\n"), "{ok}");
    assert!(
        ok.ends_with(
            "\r\n\r\n[\"OK\",2,null,\"OK\",{\"error\":\"ERR value is not an integer or out of range\"},[\"2\",null],\"OK\"]\n"
        ),
        "{ok}"
    );
    // Nothing of a refused body runs.
    for body in [
        r#"[["SET","b","1"],["NOPE"]]"#,
        r#"[["SET","b","1"],["GET"]]"#,
        r#"[["SET","b","1"],["SAVE"]]"#,
        r#"[["SET","b","1"],["MULTI"]]"#,
        r#"[["SET","b","1"],[true]]"#,
        r#"{"SET":"b"}"#,
        r#"[["SET","b","1"]"#,
    ] {
        let refused = http(addr, "POST", "/v1/tx", body);
        assert!(refused.starts_with("HTTP/1.1 400 "), "{body}: {refused}");
    }
    let wrong_method = http(addr, "GET", "/v1/tx", "");
    assert!(wrong_method.starts_with("HTTP/1.1 405 "), "{wrong_method}");
    let mut client = server.connect();
    client.cmd(&["EXISTS", "b"], b":0\r\n");
    client.cmd(&["GET", "a"], b"$1\r\n2\r\n");
    let empty = http(addr, "POST", "/v1/tx", "[]");
    assert!(empty.ends_with("\r\n\r\n[]\n"), "{empty}");
}

#[test]
fn a_queue_counts_against_the_query_buffer_limit() {
    let server = Server::start(&["--client-query-buffer-limit", "65536"]);
    let mut client = server.connect();
    let mut other = server.connect();
    client.send(&resp(&["MULTI"]));
    client.expect(b"+OK\r\n");
    // Each queued SET is about 1 KB: 100 of them cannot stay queued under a 64 KB limit.
    let value = "v".repeat(1000);
    let set = resp(&["SET", "k", &value]);
    let mut answered = 0;
    for _ in 0..100 {
        client.send(&set);
        other.cmd(&["PING"], b"+PONG\r\n");
        let line = client.read_line();
        if line != "+QUEUED\r\n" {
            assert!(line.starts_with("-ERR"), "{line}");
            break;
        }
        answered += 1;
    }
    assert!((50..70).contains(&answered), "queued {answered}");
    client.expect_closed();
    other.cmd(&["EXISTS", "k"], b":0\r\n");
    assert_eq!(
        other.info_field("stats", "client_query_buffer_limit_disconnections"),
        "1"
    );
    // Watches count too: a client cannot hold unbounded watch state.
    let mut watcher = server.connect();
    let mut closed = false;
    for i in 0..100 {
        let keys: Vec<String> = (0..100).map(|j| format!("key-{i}-{j}")).collect();
        let mut args = vec!["WATCH"];
        args.extend(keys.iter().map(String::as_str));
        watcher.send(&resp(&args));
        let line = watcher.read_line();
        if line != "+OK\r\n" {
            assert!(line.starts_with("-ERR"), "{line}");
            closed = true;
            break;
        }
    }
    assert!(closed, "10,000 watched keys fit in a 64 KB limit");
    watcher.expect_closed();
    other.cmd(&["PING"], b"+PONG\r\n");
}

/// kill -9 at random moments while clients run `MULTI; INCR a; INCR b; EXEC` with `appendfsync
/// always`: after every restart a and b are equal (no half-applied transaction) and at least
/// every acknowledged transaction is there.
#[test]
fn a_crash_never_leaves_half_a_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut acknowledged = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for round in 0..6 {
        let mut server = Server::start_in(dir.path(), &flags);
        let mut client = server.connect();
        let a = get_number(&mut client, "a");
        let b = get_number(&mut client, "b");
        assert_eq!(a, b, "round {round}: a transaction was half applied");
        assert!(
            a >= acknowledged,
            "round {round}: {a} < {acknowledged} acknowledged"
        );
        acknowledged = a;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let transactions = 20 + seed % 200;
        let addr = server.addr;
        let writer = std::thread::spawn(move || {
            let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            let tx = [
                resp(&["MULTI"]),
                resp(&["INCR", "a"]),
                resp(&["INCR", "b"]),
                resp(&["EXEC"]),
            ]
            .concat();
            let mut acked = 0u64;
            let mut buf = [0u8; 4096];
            // Pipelined without waiting, so the kill lands at any point of a stream of them.
            loop {
                if stream.write_all(&tx).is_err() {
                    return acked;
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return acked,
                    Ok(n) => acked += buf[..n].windows(3).filter(|w| w == b"*2\r").count() as u64,
                }
            }
        });
        // Let a random number of transactions through, then kill.
        let deadline = Instant::now() + DEADLINE;
        while get_number(&mut client, "a") < acknowledged + transactions {
            assert!(Instant::now() < deadline, "transactions did not run");
        }
        server.signal("KILL");
        server.wait_exit();
        // Replies to EXEC left only once the transaction was durable: the next round checks them.
        acknowledged += writer.join().expect("writer");
    }
    let server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    assert_eq!(get_number(&mut client, "a"), get_number(&mut client, "b"));
}

fn get_number(client: &mut common::Client, key: &str) -> u64 {
    client.send(&resp(&["GET", key]));
    let line = client.read_line();
    if line.starts_with("$-1") {
        return 0;
    }
    client.read_line().trim().parse().expect("a number")
}

/// The transaction's writes are one record: a torn copy of it at any byte is dropped whole.
#[test]
fn a_transaction_torn_at_any_byte_replays_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--appendonly", "yes", "--appendfsync", "always"];
    {
        let server = Server::start_in(dir.path(), &flags);
        let mut client = server.connect();
        client.send(
            &[
                resp(&["MULTI"]),
                resp(&["SET", "a", "1"]),
                resp(&["SET", "b", "1"]),
                resp(&["EXEC"]),
            ]
            .concat(),
        );
        client.expect(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n");
    }
    let segment = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "aof"))
        .expect("a log segment");
    let whole = std::fs::read(&segment).expect("segment");
    let header = b"POCKETKV-LOG 1\n".len();
    // One record after the header, holding MULTI, both SETs and EXEC.
    let payload = &whole[header + 8..];
    assert_eq!(
        payload,
        [
            resp(&["MULTI"]),
            resp(&["SET", "a", "1"]),
            resp(&["SET", "b", "1"]),
            resp(&["EXEC"])
        ]
        .concat()
    );
    for cut in [
        header + 1,
        header + 8,
        header + 20,
        whole.len() - 30,
        whole.len() - 1,
    ] {
        std::fs::write(&segment, &whole[..cut]).expect("cut");
        let server = Server::start_in(dir.path(), &flags);
        let mut client = server.connect();
        client.cmd(&["DBSIZE"], b":0\r\n");
    }
    std::fs::write(&segment, &whole).expect("restore");
    let server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    client.cmd(&["MGET", "a", "b"], b"*2\r\n$1\r\n1\r\n$1\r\n1\r\n");
}

#[test]
fn redis_py_pipeline_and_transaction_work_unchanged() {
    let script = r#"
import sys, redis
r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]))
p = r.pipeline()
p.set("a", 1).incr("a").get("a")
assert p.execute() == [True, 2, b"2"], "pipeline"
def bump(pipe):
    value = int(pipe.get("counter") or 0)
    pipe.multi()
    pipe.set("counter", value + 1)
assert r.transaction(bump, "counter") == [True]
assert r.get("counter") == b"1"
# A watched key changed by someone else makes the transaction retry.
calls = []
def racy(pipe):
    calls.append(1)
    value = int(pipe.get("counter"))
    if len(calls) == 1:
        redis.Redis(host=sys.argv[1], port=int(sys.argv[2])).set("counter", 100)
    pipe.multi()
    pipe.set("counter", value + 1)
r.transaction(racy, "counter")
assert len(calls) == 2 and r.get("counter") == b"101", (calls, r.get("counter"))
p = r.pipeline()
p.set("x", "y").incr("x")
try:
    p.execute()
    raise SystemExit("no error")
except redis.ResponseError:
    pass
print("ok")
"#;
    for redis_py in common::python::REDIS_PY {
        let server = Server::start(&[]);
        let output = redis_py
            .python()
            .arg("-c")
            .arg(script)
            .arg(server.addr.ip().to_string())
            .arg(server.addr.port().to_string())
            .output()
            .expect("python3");
        assert!(
            output.status.success() && output.stdout == b"ok\n",
            "{}:\nstdout: {}\nstderr: {}",
            redis_py.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn eviction_of_a_watched_key_aborts_the_transaction() {
    let server = Server::start(&["--maxmemory-policy", "allkeys-random"]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.cmd(&["SET", "watched", "1"], b"+OK\r\n");
    a.cmd(&["WATCH", "watched"], b"+OK\r\n");
    b.cmd(&["SET", "filler", "x"], b"+OK\r\n");
    b.cmd(&["CONFIG", "SET", "maxmemory", "1"], b"+OK\r\n");
    // Every write now evicts at random until memory fits: the watched key goes soon.
    let deadline = Instant::now() + DEADLINE;
    let mut i = 0;
    loop {
        b.send(&resp(&["EXISTS", "watched"]));
        if b.read_line() == ":0\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watched key was never evicted"
        );
        i += 1;
        b.send(&resp(&["SET", &format!("k{i}"), "v"]));
        b.read_line();
    }
    b.cmd(&["CONFIG", "SET", "maxmemory", "0"], b"+OK\r\n");
    a.send(
        &[
            resp(&["MULTI"]),
            resp(&["SET", "watched", "2"]),
            resp(&["EXEC"]),
        ]
        .concat(),
    );
    a.expect(b"+OK\r\n+QUEUED\r\n*-1\r\n");
    a.cmd(&["EXISTS", "watched"], b":0\r\n");
}

/// A client queueing a million commands is served by the same loop as everyone else: others
/// get their replies while it queues, and its EXEC then runs them all. (EXEC itself runs its
/// queue in one go, as it must to be atomic: nobody is served during it, so the other client
/// stops asking before it.)
#[test]
fn a_million_queued_commands_leave_others_served() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const N: usize = 1_000_000;
    // Generous: a debug build under qemu runs a million commands slowly.
    let patience = DEADLINE * 30;
    let server = Server::start(&[]);
    let addr = server.addr;
    let all_queued = Arc::new(AtomicBool::new(false));
    let (go, exec_now) = std::sync::mpsc::channel::<()>();
    let flag = Arc::clone(&all_queued);
    let queuer = std::thread::spawn(move || {
        let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        stream.set_read_timeout(Some(patience)).unwrap();
        let mut reader = stream.try_clone().expect("clone");
        // Replies are read on another thread while the commands are written.
        let reading = std::thread::spawn(move || {
            let queued = b"+OK\r\n".len() + b"+QUEUED\r\n".len() * N;
            let last = format!(":{N}\r\n");
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 1 << 16];
            while got.len() <= queued || !got.ends_with(last.as_bytes()) {
                if got.len() >= queued {
                    flag.store(true, Ordering::SeqCst);
                }
                let n = reader.read(&mut chunk).expect("replies");
                assert!(n > 0, "closed after {} bytes", got.len());
                got.extend_from_slice(&chunk[..n]);
            }
            let exec = &got[queued..];
            got[..queued].ends_with(b"+QUEUED\r\n")
                && exec.starts_with(format!("*{N}\r\n:1\r\n:2\r\n").as_bytes())
        });
        stream.write_all(&resp(&["MULTI"])).expect("MULTI");
        let batch: Vec<u8> = resp(&["INCR", "c"]).repeat(10_000);
        for _ in 0..N / 10_000 {
            stream.write_all(&batch).expect("queue");
        }
        exec_now.recv().expect("go");
        stream.write_all(&resp(&["EXEC"])).expect("EXEC");
        reading.join().expect("reader")
    });
    let mut other = server.connect();
    let mut served = 0;
    let deadline = Instant::now() + patience;
    while !all_queued.load(Ordering::SeqCst) {
        other.cmd(&["PING"], b"+PONG\r\n");
        served += 1;
        assert!(Instant::now() < deadline, "the queue did not fill");
    }
    go.send(()).expect("go");
    assert!(queuer.join().expect("queuer"), "EXEC's reply");
    assert!(served > 1, "the other client waited for the whole queue");
    other.cmd(&["GET", "c"], b"$7\r\n1000000\r\n");
}
