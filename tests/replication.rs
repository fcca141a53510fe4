//! Replication with real processes on loopback: a primary and replicas, each a pocketkv binary.
//! Convergence is judged by DEBUG DIGEST (the whole keyspace) plus sampled values; nothing waits
//! by sleeping, everything polls with a deadline.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, resp, Server};

fn field(server: &Server, section: &str, name: &str) -> String {
    server
        .info(section)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
}

fn number(server: &Server, section: &str, name: &str) -> u64 {
    field(server, section, name).parse().expect("a number")
}

fn digest(server: &Server) -> String {
    server.connect().call(&["DEBUG", "DIGEST"])
}

/// Waits until `replica` holds exactly what `primary` holds, at the same offset.
fn converged(primary: &Server, replica: &Server) {
    eventually("the replica's link is up", || {
        field(replica, "replication", "master_link_status") == "up"
    });
    let deadline = std::time::Instant::now() + common::REPL_DEADLINE;
    loop {
        let offset = field(primary, "replication", "master_repl_offset");
        if digest(primary) == digest(replica)
            && field(replica, "replication", "master_repl_offset") == offset
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica does not get the primary's data:\nprimary {:?}\nreplica {:?}",
            primary.info("replication"),
            replica.info("replication")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a mix of commands, some on the same keys, from one client.
fn write_load(primary: &Server, rounds: usize) {
    let mut c = primary.connect();
    let mut batch = Vec::new();
    for i in 0..rounds {
        let key = format!("k{}", i % 300);
        batch.extend(resp(&["SET", &key, &format!("v{i}")]));
        batch.extend(resp(&["INCR", &format!("n{}", i % 7)]));
        batch.extend(resp(&["APPEND", "log", "x"]));
        if i % 10 == 0 {
            batch.extend(resp(&["DEL", &format!("k{}", (i / 10) % 300)]));
            batch.extend(resp(&["EXPIRE", &format!("k{}", i % 300), "1000"]));
        }
    }
    c.send(&batch);
    // Every reply: the writes are all done once the last one is read.
    c.send(&resp(&["PING"]));
    let mut seen = Vec::new();
    while !seen.ends_with(b"+PONG\r\n") {
        seen.extend(c.read_n(1));
    }
}

#[test]
fn two_replicas_converge_under_writes_and_wait_counts_them() {
    let primary = Server::start(&[]);
    let r1 = Server::replica_of(&primary, &[]);
    let r2 = Server::replica_of(
        &primary,
        &["--appendonly", "yes", "--replica-announce-ip", "10.1.2.3"],
    );
    write_load(&primary, 500);
    let writer = {
        let addr = primary.addr;
        std::thread::spawn(move || {
            let mut c = common::Client::connect(addr);
            for i in 0..500 {
                c.cmd(&["SET", &format!("w{i}"), "x"], b"+OK\r\n");
            }
        })
    };
    write_load(&primary, 500);
    writer.join().unwrap();
    converged(&primary, &r1);
    converged(&primary, &r2);
    assert_ne!(digest(&primary), "0".repeat(40), "the data is not empty");
    for key in ["k5", "n3", "log", "w499"] {
        let want = primary.connect().call(&["GET", key]);
        assert_eq!(r1.connect().call(&["GET", key]), want, "{key}");
        assert_eq!(r2.connect().call(&["GET", key]), want, "{key}");
    }
    let mut c = primary.connect();
    assert_eq!(c.call(&["SET", "last", "1"]), "+OK");
    assert_eq!(c.call(&["WAIT", "2", "0"]), ":2");
    assert_eq!(r1.connect().call(&["GET", "last"]), "1");
    assert_eq!(r2.connect().call(&["GET", "last"]), "1");
    assert_eq!(
        c.call(&["WAIT", "3", "300"]),
        ":2",
        "only two replicas exist"
    );
    let info = primary.info("replication");
    assert_eq!(info[0], ("role".into(), "master".into()));
    assert_eq!(info[1], ("connected_slaves".into(), "2".into()));
    for (replica, ip) in [(&r1, "127.0.0.1"), (&r2, "10.1.2.3")] {
        let want = format!("ip={ip},port={},state=online,offset=", replica.addr.port());
        let lines = [&info[2], &info[3]];
        assert!(
            lines
                .iter()
                .any(|(k, v)| k.starts_with("slave") && v.starts_with(&want)),
            "{want} in {lines:?}"
        );
    }
    assert_eq!(number(&primary, "stats", "sync_full"), 2);
}

#[test]
fn replicas_refuse_writes_and_primaries_without_enough_replicas_too() {
    let primary = Server::start(&[]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    let mut r = replica.connect();
    r.cmd(
        &["SET", "k", "v"],
        b"-READONLY You can't write against a read only replica.\r\n",
    );
    r.cmd(&["WAIT", "1", "0"], b"-ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.\r\n");
    let mut p = primary.connect();
    p.cmd(&["CONFIG", "SET", "min-replicas-to-write", "2"], b"+OK\r\n");
    p.cmd(
        &["SET", "k", "v"],
        b"-NOREPLICAS Not enough good replicas to write.\r\n",
    );
    p.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"], b"+OK\r\n");
    p.cmd(&["SET", "k", "v"], b"+OK\r\n");
    p.cmd(&["WAIT", "1", "0"], b":1\r\n");
    // A writable replica takes local writes.
    r.cmd(&["CONFIG", "SET", "replica-read-only", "no"], b"+OK\r\n");
    r.cmd(&["SET", "local", "1"], b"+OK\r\n");
    // With stale data refused, a replica whose primary is gone answers MASTERDOWN.
    r.cmd(
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
        b"+OK\r\n",
    );
    drop(primary);
    eventually("the link is down", || {
        field(&replica, "replication", "master_link_status") == "down"
    });
    r.cmd(
        &["GET", "k"],
        b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
    );
    // PING too, as redis-server 7.0 answers (tests/sentinel.rs compares them): only commands
    // flagged `stale` run.
    r.cmd(
        &["PING"],
        b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
    );
    r.cmd(
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
        b"+OK\r\n",
    );
    r.cmd(&["GET", "k"], b"$1\r\nv\r\n");
}

#[test]
fn a_promoted_replica_continues_its_siblings_partially() {
    let primary = Server::start(&[]);
    let r1 = Server::replica_of(&primary, &[]);
    let r2 = Server::replica_of(&primary, &[]);
    write_load(&primary, 200);
    converged(&primary, &r1);
    converged(&primary, &r2);
    let old_id = field(&primary, "replication", "master_replid");
    drop(primary); // kill -9
    let mut c1 = r1.connect();
    c1.cmd(&["REPLICAOF", "NO", "ONE"], b"+OK\r\n");
    assert_eq!(field(&r1, "replication", "role"), "master", "at once");
    assert_eq!(field(&r1, "replication", "master_replid2"), old_id);
    let port = r1.addr.port().to_string();
    r2.connect()
        .cmd(&["REPLICAOF", "127.0.0.1", &port], b"+OK\r\n");
    converged(&r1, &r2);
    assert_eq!(number(&r1, "stats", "sync_partial_ok"), 1);
    assert_eq!(number(&r1, "stats", "sync_full"), 0);
    c1.cmd(&["SET", "after", "promotion"], b"+OK\r\n");
    assert_eq!(c1.call(&["WAIT", "1", "0"]), ":1");
    assert_eq!(r2.connect().call(&["GET", "after"]), "promotion");
}

#[test]
fn a_restarted_replica_resyncs_partially_and_a_long_break_fully() {
    let primary = Server::start(&["--repl-backlog-size", "16kb"]);
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1 {}", primary.addr.port());
    let args = ["--replicaof", target.as_str()];
    let mut replica = Server::start_in(dir.path(), &args);
    write_load(&primary, 100);
    converged(&primary, &replica);
    replica.connect().send(&resp(&["SHUTDOWN"]));
    replica.wait_exit();
    primary
        .connect()
        .cmd(&["SET", "meanwhile", "1"], b"+OK\r\n");
    let mut replica = Server::start_in(dir.path(), &args);
    converged(&primary, &replica);
    assert_eq!(number(&primary, "stats", "sync_partial_ok"), 1);
    assert_eq!(number(&primary, "stats", "sync_full"), 1);
    // Longer than the backlog: a full sync.
    replica.connect().send(&resp(&["SHUTDOWN"]));
    replica.wait_exit();
    write_load(&primary, 300);
    let replica = Server::start_in(dir.path(), &args);
    converged(&primary, &replica);
    assert_eq!(number(&primary, "stats", "sync_full"), 2);
    assert_eq!(number(&primary, "stats", "sync_partial_err"), 1);
}

#[test]
fn a_replica_killed_with_its_log_on_continues_from_the_logged_offset() {
    let primary = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1 {}", primary.addr.port());
    let args = [
        "--replicaof",
        target.as_str(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let mut replica = Server::start_in(dir.path(), &args);
    write_load(&primary, 100);
    converged(&primary, &replica);
    // Until the loaded image is in a snapshot, the log's positions are not trusted.
    eventually("the replica saved the image it loaded", || {
        number(&replica, "persistence", "rdb_saves") >= 1
    });
    primary.connect().call(&["INCR", "n2"]);
    converged(&primary, &replica);
    replica.signal("KILL");
    replica.wait_exit();
    primary.connect().call(&["INCR", "n1"]);
    let replica = Server::start_in(dir.path(), &args);
    converged(&primary, &replica);
    assert_eq!(number(&primary, "stats", "sync_partial_ok"), 1);
    assert_eq!(number(&primary, "stats", "sync_full"), 1);
    let want = primary.connect().call(&["GET", "n1"]);
    assert_eq!(replica.connect().call(&["GET", "n1"]), want);
}

#[test]
fn expiry_is_the_primarys_alone() {
    let primary = Server::start(&[]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    let mut p = primary.connect();
    p.cmd(&["SET", "short", "1", "PX", "200"], b"+OK\r\n");
    p.cmd(&["SET", "long", "1", "EX", "1000"], b"+OK\r\n");
    p.cmd(&["EXPIRE", "long", "2000"], b":1\r\n");
    converged(&primary, &replica);
    let ttl = replica.connect().call(&["TTL", "long"]);
    assert!(ttl == ":2000" || ttl == ":1999", "{ttl}");
    // Once its time has passed the replica reads the key as missing, though it keeps it until
    // the primary's DEL comes.
    eventually("the replica reads the expired key as missing", || {
        replica.connect().call(&["GET", "short"]).is_empty()
    });
    eventually("the primary deleted it", || {
        number(&primary, "stats", "expired_keys") == 1
    });
    converged(&primary, &replica);
    assert_eq!(replica.connect().call(&["DBSIZE"]), ":1");
    assert_eq!(
        number(&replica, "stats", "expired_keys"),
        0,
        "no expiry of its own"
    );
}

#[test]
fn replication_commands_from_plain_clients_are_refused_cleanly() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.cmd(
        &["PSYNC", "?", "-1"],
        b"-ERR PSYNC needs REPLCONF capa eof first: this server sends full syncs diskless only\r\n",
    );
    // ACK and GETACK from a client that is no replica get no reply, as in Redis.
    c.send(&resp(&["REPLCONF", "ACK", "5"]));
    c.send(&resp(&["REPLCONF", "GETACK", "*"]));
    c.cmd(&["PING"], b"+PONG\r\n");
    c.cmd(
        &["REPLCONF", "foo", "1"],
        b"-ERR Unrecognized REPLCONF option: foo\r\n",
    );
    c.cmd(&["REPLCONF", "listening-port", "1"], b"+OK\r\n");
    c.cmd(
        &["REPLICAOF", "localhost", "abc"],
        b"-ERR Invalid master port\r\n",
    );
    let port = server.addr.port().to_string();
    c.cmd(
        &["REPLICAOF", "127.0.0.1", &port],
        b"-ERR REPLICAOF would make this server a replica of itself; give another server's address\r\n",
    );
    c.cmd(&["REPLICAOF", "NO", "ONE"], b"+OK\r\n");
    c.cmd(&["WAIT", "1", "-1"], b"-ERR timeout is negative\r\n");
    c.cmd(&["WAIT", "0", "0"], b":0\r\n");
    c.cmd(&["ROLE"], b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
    assert_eq!(field(&server, "replication", "role"), "master");
}

/// A peer that answers every connection with `reply` and keeps it open.
fn fake_primary(reply: &'static [u8]) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(2) {
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(reply);
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    (port, thread)
}

#[test]
fn a_replica_of_something_else_keeps_serving_and_retries() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let mut replica = Server::start(&["--replicaof", &format!("127.0.0.1 {closed_port}")]);
    replica.wait_log("cannot connect");
    replica.wait_log("retrying in");
    let mut c = replica.connect();
    c.cmd(&["GET", "k"], b"$-1\r\n");
    assert_eq!(field(&replica, "replication", "master_link_status"), "down");
    // An HTTP server.
    let (http, _t1) = fake_primary(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    c.cmd(&["REPLICAOF", "127.0.0.1", &http.to_string()], b"+OK\r\n");
    replica.wait_log("is not a pocketkv primary");
    // A peer that gets through the handshake, then sends garbage in place of the image.
    let (garbage, _t2) = fake_primary(
        b"+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC 0123456789012345678901234567890123456789 9\r\n$5\r\nxxxxx",
    );
    c.cmd(
        &["REPLICAOF", "127.0.0.1", &garbage.to_string()],
        b"+OK\r\n",
    );
    replica.wait_log("the full sync cannot be loaded");
    c.cmd(&["PING"], b"+PONG\r\n");
    c.cmd(&["DBSIZE"], b":0\r\n");
    assert_eq!(field(&replica, "replication", "master_link_status"), "down");
    // A redis-server: the handshake works, its RDB image is refused, the data stays.
    c.cmd(&["CONFIG", "SET", "replica-read-only", "no"], b"+OK\r\n");
    c.cmd(&["SET", "mine", "1"], b"+OK\r\n");
    let redis = redis(&[]);
    let redis_port = redis.2.to_string();
    common::Client::connect(([127, 0, 0, 1], redis.2).into())
        .cmd(&["SET", "theirs", "1"], b"+OK\r\n");
    c.cmd(&["REPLICAOF", "127.0.0.1", &redis_port], b"+OK\r\n");
    eventually("the redis-server's image is refused", || {
        replica.connect().call(&["PING"]) == "+PONG"
            && field(&replica, "replication", "master_link_status") == "down"
            && redis
                .info("stats")
                .iter()
                .any(|(k, v)| k == "sync_full" && v != "0")
    });
    c.cmd(&["GET", "mine"], b"$1\r\n1\r\n");
    c.cmd(&["GET", "theirs"], b"$-1\r\n");
}

/// A handshake's answers, then a full sync of `image` framed as `framing` says.
fn fake_full_sync(framing: &str, image: &str) -> (u16, std::thread::JoinHandle<()>) {
    let mark = "m".repeat(40);
    let mut reply =
        b"+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC 0123456789012345678901234567890123456789 9\r\n"
            .to_vec();
    match framing {
        "eof" => reply.extend(format!("$EOF:{mark}\r\n{image}{mark}").into_bytes()),
        _ => reply.extend(format!("${}\r\n{image}", image.len()).into_bytes()),
    }
    fake_primary(Vec::leak(reply))
}

#[test]
fn a_full_sync_is_loaded_record_by_record_and_a_bad_one_changes_nothing() {
    let mut replica = Server::start(&["--proto-max-bulk-len", "1000"]);
    let mut c = replica.connect();
    c.cmd(&["SET", "mine", "1"], b"+OK\r\n");
    let head = r#"{"format":"pocketkv-snapshot","version":1,"saved_at_unix_ms":1,"log_seq":0"#;
    // The same key twice: refused, whatever the framing.
    let twice = format!(r#"{head},"keys":2,"data":[["a","1"],["a","2"]]}}"#);
    let (port, _t) = fake_full_sync("length", &twice);
    c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()], b"+OK\r\n");
    replica.wait_log(r#"key "a" appears more than once"#);
    c.cmd(&["REPLICAOF", "NO", "ONE"], b"+OK\r\n");
    c.cmd(&["GET", "mine"], b"$1\r\n1\r\n");
    c.cmd(&["DBSIZE"], b":1\r\n");
    // A value over proto-max-bulk-len, as the stream is held to.
    let big = format!(r#"{head},"keys":1,"data":[["b","{}"]]}}"#, "x".repeat(1001));
    let (port, _t) = fake_full_sync("eof", &big);
    c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()], b"+OK\r\n");
    replica.wait_log("over proto-max-bulk-len (1000 bytes)");
    c.cmd(&["REPLICAOF", "NO", "ONE"], b"+OK\r\n");
    c.cmd(&["GET", "mine"], b"$1\r\n1\r\n");
    c.cmd(&["DBSIZE"], b":1\r\n");
    // A good image, in either framing, replaces the data.
    for framing in ["length", "eof"] {
        let good =
            format!(r#"{head},"keys":2,"data":[["a","1"],["b","{framing}",99999999999999]]}}"#);
        let (port, _t) = fake_full_sync(framing, &good);
        c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()], b"+OK\r\n");
        eventually("the image is loaded", || {
            replica.connect().call(&["GET", "b"]) == framing
        });
        c.cmd(&["GET", "mine"], b"$-1\r\n");
        c.cmd(&["DBSIZE"], b":2\r\n");
        c.cmd(&["PEXPIRETIME", "b"], b":99999999999999\r\n");
        c.cmd(&["REPLICAOF", "NO", "ONE"], b"+OK\r\n");
    }
}

// ---------------------------------------------------------------------------------------------
// The same topology with redis-server: INFO replication must have Redis's fields in its order.
// ---------------------------------------------------------------------------------------------

/// A redis-server process, its data directory (removed on drop) and its port.
struct Redis(Child, #[allow(dead_code)] tempfile::TempDir, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis(extra: &[&str]) -> Redis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--save", "", "--dir"])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (ci/install-deps.sh installs it)");
    let redis = Redis(child, dir, port);
    eventually("redis-server answers", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    redis
}

impl Redis {
    fn info(&self, section: &str) -> Vec<(String, String)> {
        common::Client::connect(([127, 0, 0, 1], self.2).into()).info(section)
    }
}

fn redis_info(port: u16) -> Vec<(String, String)> {
    common::Client::connect(([127, 0, 0, 1], port).into()).info("replication")
}

/// Field names, with the `slaveN` lines' keys inside them.
fn shape(info: &[(String, String)]) -> Vec<String> {
    info.iter()
        .map(|(k, v)| {
            if k.starts_with("slave") && v.starts_with("ip=") {
                let keys: Vec<&str> = v
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|p| p.0)
                    .collect();
                format!("{k}:{}", keys.join(","))
            } else {
                k.clone()
            }
        })
        .collect()
}

/// INFO clients' `connected_clients` as a fresh client sees it.
fn connected_clients(port: u16) -> String {
    let info = common::Client::connect(([127, 0, 0, 1], port).into()).info("clients");
    info.into_iter()
        .find(|(k, _)| k == "connected_clients")
        .map(|(_, v)| v)
        .expect("connected_clients")
}

#[test]
fn info_replication_has_redis_fields_in_redis_order() {
    let primary = Server::start(&[]);
    let replica = Server::replica_of(&primary, &[]);
    let rp = redis(&[]);
    let rr = redis(&["--replicaof", "127.0.0.1", &rp.2.to_string()]);
    converged(&primary, &replica);
    eventually("redis-server's replica is online", || {
        redis_info(rp.2)
            .iter()
            .any(|(_, v)| v.contains("state=online"))
            && redis_info(rr.2)
                .iter()
                .any(|(k, v)| k == "master_link_status" && v == "up")
    });
    for (ours, theirs) in [
        (primary.info("replication"), redis_info(rp.2)),
        (replica.info("replication"), redis_info(rr.2)),
    ] {
        assert_eq!(shape(&ours), shape(&theirs), "field names and order");
        for name in [
            "role",
            "connected_slaves",
            "master_link_status",
            "master_sync_in_progress",
            "slave_priority",
            "slave_read_only",
            "replica_announced",
            "master_failover_state",
            "repl_backlog_active",
            "repl_backlog_size",
            "second_repl_offset",
        ] {
            let get = |info: &[(String, String)]| {
                info.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            };
            assert_eq!(get(&ours), get(&theirs), "{name}");
        }
    }
    // Replicas are not clients there (Redis: "excluding connections from replicas"); a
    // replica's link to its primary is.
    assert_eq!(
        connected_clients(primary.addr.port()),
        connected_clients(rp.2)
    );
    assert_eq!(
        connected_clients(replica.addr.port()),
        connected_clients(rr.2)
    );
    assert_eq!(connected_clients(primary.addr.port()), "1");
    // The replica side of a link that is down, too.
    drop(primary);
    drop(rp);
    eventually("both links are down", || {
        field(&replica, "replication", "master_link_status") == "down"
            && redis_info(rr.2)
                .iter()
                .any(|(k, v)| k == "master_link_status" && v == "down")
    });
    assert_eq!(
        shape(&replica.info("replication")),
        shape(&redis_info(rr.2))
    );
    let stats = |info: Vec<(String, String)>| -> Vec<String> {
        info.into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("sync_"))
            .collect()
    };
    let redis_stats = common::Client::connect(([127, 0, 0, 1], rr.2).into()).info("stats");
    assert_eq!(stats(replica.info("stats")), stats(redis_stats));
    let run_id = field(&replica, "server", "run_id");
    assert!(
        run_id.len() == 40 && run_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{run_id}"
    );
}

#[test]
fn a_replica_of_a_replica_gets_the_same_stream() {
    let primary = Server::start(&[]);
    let middle = Server::replica_of(&primary, &[]);
    converged(&primary, &middle);
    let leaf = Server::replica_of(&middle, &[]);
    write_load(&primary, 300);
    converged(&primary, &middle);
    converged(&middle, &leaf);
    assert_eq!(digest(&leaf), digest(&primary));
    assert_eq!(
        field(&leaf, "replication", "master_replid"),
        field(&primary, "replication", "master_replid"),
        "one history along the chain"
    );
}

#[test]
fn a_primary_paused_past_repl_timeout_is_reconnected_to() {
    let primary = Server::start(&["--repl-ping-replica-period", "1"]);
    let replica = Server::replica_of(&primary, &["--repl-timeout", "2"]);
    write_load(&primary, 50);
    converged(&primary, &replica);
    primary.signal("STOP");
    eventually("the replica gives the link up", || {
        field(&replica, "replication", "master_link_status") == "down"
    });
    replica.connect().cmd(&["GET", "k5"], b"$2\r\nv5\r\n");
    primary.signal("CONT");
    primary
        .connect()
        .cmd(&["SET", "after", "pause"], b"+OK\r\n");
    converged(&primary, &replica);
    assert_eq!(replica.connect().call(&["GET", "after"]), "pause");
    assert_eq!(
        number(&primary, "stats", "sync_full"),
        1,
        "no second full sync"
    );
}

#[test]
fn a_replica_too_slow_for_its_output_limit_is_dropped_and_resyncs() {
    let primary = Server::start(&["--client-output-buffer-limit", "replica 256kb 0 0"]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    replica.signal("STOP");
    let value = "x".repeat(64 * 1024);
    let mut c = primary.connect();
    for i in 0..100 {
        c.cmd(&["SET", &format!("big{i}"), &value], b"+OK\r\n");
    }
    eventually("the slow replica is dropped", || {
        number(
            &primary,
            "stats",
            "client_output_buffer_limit_disconnections",
        ) == 1
    });
    replica.signal("CONT");
    converged(&primary, &replica);
    assert_eq!(number(&primary, "stats", "sync_full"), 2);
}

/// Keys for the full-sync test: POCKETKV_REPL_SYNC_KEYS (`make soak` runs it with 1,000,000 in
/// a release build), else 100,000, which a debug build under qemu still syncs in seconds.
fn sync_keys() -> usize {
    match std::env::var("POCKETKV_REPL_SYNC_KEYS") {
        Ok(v) => v.parse().expect("POCKETKV_REPL_SYNC_KEYS is a number"),
        Err(_) => 100_000,
    }
}

#[test]
fn a_full_sync_of_many_keys_while_clients_write() {
    let keys = sync_keys();
    let primary = Server::start(&[]);
    let mut c = primary.connect();
    // In batches, so the test's own buffers stay small at a million keys.
    for start in (0..keys).step_by(50_000) {
        let mut batch = Vec::new();
        for i in start..keys.min(start + 50_000) {
            batch.extend(resp(&["SET", &format!("key:{i}"), &format!("value:{i}")]));
        }
        batch.extend(resp(&["DBSIZE"]));
        c.send(&batch);
        let end = format!(":{}\r\n", keys.min(start + 50_000));
        let mut seen = Vec::new();
        while !seen.ends_with(end.as_bytes()) {
            seen.extend(c.read_n(1));
        }
    }
    let writer = {
        let addr = primary.addr;
        std::thread::spawn(move || {
            let mut c = common::Client::connect(addr);
            for i in 0..2000 {
                c.cmd(&["SET", &format!("key:{i}"), "changed"], b"+OK\r\n");
            }
        })
    };
    let started = std::time::Instant::now();
    let replica = Server::replica_of(&primary, &[]);
    writer.join().unwrap();
    converged(&primary, &replica);
    println!(
        "full sync of {keys} keys with writes: {:?}",
        started.elapsed()
    );
    assert_eq!(replica.connect().call(&["DBSIZE"]), format!(":{keys}"));
    assert_eq!(replica.connect().call(&["GET", "key:1999"]), "changed");
    let last = format!("key:{}", keys - 1);
    let value = format!("value:{}", keys - 1);
    assert_eq!(replica.connect().call(&["GET", &last]), value);
    // The image went through a spool file that is gone once loaded (unlinked at creation).
    let left: Vec<_> = std::fs::read_dir(&replica.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("fullsync"))
        .collect();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
}

#[test]
fn client_kill_type_normal_spares_replicas_and_type_replica_reaches_them() {
    let primary = Server::start(&[]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    let mut c = primary.connect();
    let listed = c.call(&["CLIENT", "LIST", "TYPE", "replica"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains(" flags=S "), "{listed}");
    let _other = primary.connect();
    assert_eq!(c.call(&["CLIENT", "KILL", "TYPE", "normal"]), ":1");
    assert_eq!(field(&primary, "replication", "connected_slaves"), "1");
    assert_eq!(c.call(&["CLIENT", "KILL", "TYPE", "replica"]), ":1");
    c.cmd(&["SET", "after", "kill"], b"+OK\r\n");
    converged(&primary, &replica);
    assert_eq!(number(&primary, "stats", "sync_partial_ok"), 1);
    assert_eq!(number(&primary, "stats", "sync_full"), 1);
}

#[test]
fn a_transaction_reaches_replicas_as_one_unit_and_wait_counts_it() {
    let primary = Server::start(&[]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    let mut c = primary.connect();
    c.cmd(&["MULTI"], b"+OK\r\n");
    c.cmd(&["SET", "t1", "a"], b"+QUEUED\r\n");
    c.cmd(&["INCR", "t2"], b"+QUEUED\r\n");
    c.cmd(&["WAIT", "1", "0"], b"+QUEUED\r\n");
    c.send(&resp(&["EXEC"]));
    let reply = c.read_line();
    assert_eq!(reply, "*3\r\n");
    c.expect(b"+OK\r\n:1\r\n");
    let _in_exec = c.read_line(); // WAIT inside EXEC answers at once, whatever the count.
    assert_eq!(
        c.call(&["WAIT", "1", "0"]),
        ":1",
        "after EXEC it waits for all of it"
    );
    assert_eq!(replica.connect().call(&["GET", "t1"]), "a");
    assert_eq!(replica.connect().call(&["GET", "t2"]), "1");
    converged(&primary, &replica);
}

#[test]
fn a_replica_over_maxmemory_keeps_what_its_primary_keeps_unless_told_otherwise() {
    let primary = Server::start(&[]);
    let replica = Server::replica_of(
        &primary,
        &["--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let mut r = replica.connect();
    r.cmd(
        &["CONFIG", "GET", "replica-ignore-maxmemory"],
        b"*2\r\n$24\r\nreplica-ignore-maxmemory\r\n$3\r\nyes\r\n",
    );
    let value = "x".repeat(1024);
    let mut c = primary.connect();
    for i in 0..3000 {
        c.cmd(&["SET", &format!("big{i}"), &value], b"+OK\r\n");
    }
    converged(&primary, &replica);
    r.cmd(&["DBSIZE"], b":3000\r\n");
    assert_eq!(number(&replica, "stats", "evicted_keys"), 0);
    // The primary's DELs are what shrink it.
    for i in 0..100 {
        c.cmd(&["DEL", &format!("big{i}")], b":1\r\n");
    }
    converged(&primary, &replica);
    r.cmd(&["DBSIZE"], b":2900\r\n");
    // Told otherwise, it evicts on its own, as a primary would.
    r.cmd(
        &["CONFIG", "SET", "replica-ignore-maxmemory", "no"],
        b"+OK\r\n",
    );
    c.cmd(&["SET", "one-more", "1"], b"+OK\r\n");
    eventually("the replica evicts on its own", || {
        number(&replica, "stats", "evicted_keys") > 0
    });
    assert_ne!(digest(&primary), digest(&replica));
    // The same setting, the same default and reply in Redis.
    let redis = redis(&[]);
    let mut theirs = common::Client::connect(([127, 0, 0, 1], redis.2).into());
    theirs.cmd(
        &["CONFIG", "GET", "replica-ignore-maxmemory"],
        b"*2\r\n$24\r\nreplica-ignore-maxmemory\r\n$3\r\nyes\r\n",
    );
}

#[test]
fn a_primary_named_by_host_name_is_resolved_off_the_loop() {
    let primary = Server::start(&[]);
    primary.connect().cmd(&["SET", "k", "v"], b"+OK\r\n");
    let port = primary.addr.port().to_string();
    let mut replica = Server::start(&["--replicaof", &format!("localhost {port}")]);
    converged(&primary, &replica);
    replica.connect().cmd(&["GET", "k"], b"$1\r\nv\r\n");
    // A name that never resolves: a log line, retries, and the data served meanwhile.
    let mut c = replica.connect();
    c.cmd(&["REPLICAOF", "no-such-host.invalid", &port], b"+OK\r\n");
    replica.wait_log("cannot resolve no-such-host.invalid");
    replica.wait_log("retrying in");
    c.cmd(&["GET", "k"], b"$1\r\nv\r\n");
    assert_eq!(field(&replica, "replication", "master_link_status"), "down");
    // And back to a name that does.
    c.cmd(&["REPLICAOF", "localhost", &port], b"+OK\r\n");
    converged(&primary, &replica);
}

#[test]
fn a_primary_shutting_down_waits_for_its_replicas_unless_told_now() {
    let mut primary = Server::start(&["--shutdown-timeout", "60"]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    replica.signal("STOP");
    let mut c = primary.connect();
    c.cmd(&["SET", "last", "write"], b"+OK\r\n");
    c.send(&resp(&["SHUTDOWN"]));
    primary.wait_log("waiting for replicas before shutting down");
    assert!(primary.child.try_wait().unwrap().is_none(), "it waits");
    replica.signal("CONT");
    primary.wait_log("replicas caught up");
    assert!(primary.wait_exit().success());
    replica.connect().cmd(&["GET", "last"], b"$5\r\nwrite\r\n");

    // Past shutdown-timeout it goes anyway, naming the replica left behind.
    let mut primary = Server::start(&["--shutdown-timeout", "1"]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    replica.signal("STOP");
    primary.connect().cmd(&["SET", "k", "v"], b"+OK\r\n");
    primary.connect().send(&resp(&["SHUTDOWN"]));
    primary.wait_log("has not caught up");
    assert!(primary.wait_exit().success());
    replica.signal("CONT");

    // SHUTDOWN NOW does not wait.
    let mut primary = Server::start(&["--shutdown-timeout", "60"]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    replica.signal("STOP");
    primary.connect().cmd(&["SET", "k", "v"], b"+OK\r\n");
    primary.connect().send(&resp(&["SHUTDOWN", "NOW"]));
    assert!(primary.wait_exit().success());
    assert!(
        !primary
            .log_lines
            .iter()
            .any(|l| l.contains("waiting for replicas")),
        "{:?}",
        primary.log_lines
    );
    replica.signal("CONT");
}

#[test]
fn a_replica_that_stops_reading_during_a_full_sync_is_dropped_after_repl_timeout() {
    let mut primary = Server::start(&["--repl-timeout", "1"]);
    // About 20 MB of data: more than the sockets' buffers hold between the two ends.
    let mut c = primary.connect();
    let value = "x".repeat(1000);
    let mut batch = Vec::new();
    for i in 0..20_000 {
        batch.extend(resp(&["SET", &format!("k{i}"), &value]));
    }
    batch.extend(resp(&["DBSIZE"]));
    c.send(&batch);
    let mut seen = Vec::new();
    while !seen.ends_with(b":20000\r\n") {
        seen.extend(c.read_n(1));
    }
    // A replica that asks for a full sync, then never reads.
    let mut stuck = std::net::TcpStream::connect(primary.addr).unwrap();
    let mut hello = resp(&["REPLCONF", "capa", "eof"]);
    hello.extend(resp(&["PSYNC", "?", "-1"]));
    stuck.write_all(&hello).unwrap();
    primary.wait_log("gets a full sync");
    // The loop serves everyone else while the sync thread waits on the stuck socket (no
    // assertion on the replica count here: under qemu the timeout may already have passed).
    c.cmd(&["SET", "during", "sync"], b"+OK\r\n");
    primary.wait_log("full sync to a replica failed: the replica read nothing for repl-timeout");
    eventually("the stuck replica is dropped", || {
        number(&primary, "replication", "connected_slaves") == 0
    });
    c.cmd(&["GET", "during"], b"$4\r\nsync\r\n");
    drop(stuck);
}

/// A replica lists its link to the primary as Redis lists its master client (`flags=M`, user
/// `(superuser)`, the primary's address), `CLIENT KILL TYPE normal` and `USER default` spare it,
/// and `CLIENT KILL TYPE master` drops it: the replica reconnects and continues partially. The same steps on a
/// redis-server pair give the same replies and fields.
#[test]
fn a_replica_lists_its_link_as_type_master_and_can_kill_it() {
    /// What one replica shows and answers: `(flags, user, addr is the primary's, kill normal
    /// and kill user default (both sparing the link), kill master)`.
    fn observe(replica_port: u16, primary_port: u16) -> (String, String, bool, String, String) {
        let mut c = common::Client::connect(([127, 0, 0, 1], replica_port).into());
        let line = c.call(&["CLIENT", "LIST", "TYPE", "master"]);
        assert_eq!(line.lines().count(), 1, "{line}");
        let value = |name: &str| {
            line.split(' ')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_string()
        };
        let from_primary = value("addr") == format!("127.0.0.1:{primary_port}");
        let normal = c.call(&["CLIENT", "KILL", "TYPE", "normal"])
            + &c.call(&["CLIENT", "KILL", "USER", "default"]);
        let master = c.call(&["CLIENT", "KILL", "TYPE", "master"]);
        (value("flags"), value("user"), from_primary, normal, master)
    }

    let primary = Server::start(&[]);
    let replica = Server::replica_of(&primary, &[]);
    converged(&primary, &replica);
    let mine = observe(replica.addr.port(), primary.addr.port());
    primary.connect().cmd(&["SET", "after", "kill"], b"+OK\r\n");
    converged(&primary, &replica);
    assert_eq!(number(&primary, "stats", "sync_partial_ok"), 1);
    assert_eq!(number(&primary, "stats", "sync_full"), 1);

    let rp = redis(&[]);
    let rr = redis(&["--replicaof", "127.0.0.1", &rp.2.to_string()]);
    eventually("redis-server's replica is online", || {
        redis_info(rr.2)
            .iter()
            .any(|(k, v)| k == "master_link_status" && v == "up")
    });
    let theirs = observe(rr.2, rp.2);
    assert_eq!(mine, theirs);
    assert_eq!(
        mine,
        (
            "M".into(),
            "(superuser)".into(),
            true,
            ":0:0".into(),
            ":1".into()
        )
    );
}

/// A TCP relay between a replica and its primary that can hold the primary's bytes back, and
/// keeps what the replica sent upstream.
struct Relay {
    port: u16,
    shared: std::sync::Arc<std::sync::Mutex<Relayed>>,
}

#[derive(Default)]
struct Relayed {
    /// The primary's bytes held back, while holding; None while they pass.
    held: Option<Vec<u8>>,
    /// The replica's end, where the primary's bytes go.
    to_replica: Option<std::net::TcpStream>,
    /// Everything the replica sent.
    upstream: Vec<u8>,
    /// The replica closed the link.
    replica_closed: bool,
}

impl Relay {
    /// Relays the first connection it gets to `primary`'s port.
    fn start(primary: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Relayed::default()));
        let state = shared.clone();
        std::thread::spawn(move || {
            let Ok((mut replica, _)) = listener.accept() else {
                return;
            };
            let Ok(mut upstream) = std::net::TcpStream::connect(("127.0.0.1", primary)) else {
                return;
            };
            let (Ok(mut downstream), Ok(to_replica)) = (upstream.try_clone(), replica.try_clone())
            else {
                return;
            };
            state.lock().unwrap().to_replica = Some(to_replica);
            let down_state = state.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = downstream.read(&mut buf) {
                    let mut s = down_state.lock().unwrap();
                    if let Some(held) = s.held.as_mut() {
                        held.extend_from_slice(&buf[..n]);
                    } else if let Some(to) = s.to_replica.as_mut() {
                        let _ = to.write_all(&buf[..n]);
                    }
                }
            });
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = replica.read(&mut buf) {
                state.lock().unwrap().upstream.extend_from_slice(&buf[..n]);
                let _ = upstream.write_all(&buf[..n]);
            }
            state.lock().unwrap().replica_closed = true;
            let _ = upstream.shutdown(std::net::Shutdown::Both);
        });
        Relay { port, shared }
    }

    /// From now on the primary's bytes wait at the relay.
    fn hold(&self) {
        self.shared.lock().unwrap().held = Some(Vec::new());
    }

    fn held_contains(&self, needle: &[u8]) -> bool {
        let s = self.shared.lock().unwrap();
        s.held
            .as_ref()
            .is_some_and(|held| held.windows(needle.len()).any(|w| w == needle))
    }

    /// Sends the replica what was held, and lets the rest pass.
    fn release(&self) {
        let mut s = self.shared.lock().unwrap();
        let held = s.held.take().unwrap_or_default();
        if let Some(to) = s.to_replica.as_mut() {
            to.write_all(&held).expect("to the replica");
        }
    }

    fn replica_closed(&self) -> bool {
        self.shared.lock().unwrap().replica_closed
    }

    /// The offsets of every `REPLCONF ACK` the replica sent.
    fn acks(&self) -> Vec<u64> {
        let s = self.shared.lock().unwrap();
        let text = String::from_utf8_lossy(&s.upstream).into_owned();
        let lines: Vec<&str> = text.split("\r\n").collect();
        lines
            .windows(3)
            .filter(|w| w[0].eq_ignore_ascii_case("ACK") && w[1].starts_with('$'))
            .map(|w| w[2].parse().expect("an ACK's offset"))
            .collect()
    }
}

/// A replica told REPLICAOF NO ONE takes nothing more from its old primary: not the stream
/// bytes already on their way (it would apply them as its own writes), and no acknowledgement
/// for them (the old primary would count it for writes the new one never had, and WAIT
/// would confirm them). The replica is stopped while the command and the held stream bytes
/// reach it, so it finds both ready at once, the command first.
#[test]
fn a_promoted_replica_takes_nothing_more_from_its_old_primary() {
    let primary = Server::start(&[]);
    let relay = Relay::start(primary.addr.port());
    let target = format!("127.0.0.1 {}", relay.port);
    let replica = Server::start(&["--replicaof", &target]);
    primary.connect().cmd(&["SET", "before", "1"], b"+OK\r\n");
    converged(&primary, &replica);

    relay.hold();
    let mut writer = primary.connect();
    writer.cmd(&["SET", "after", "1"], b"+OK\r\n");
    // Never answered with the replica's acknowledgement held back: its GETACK is held too.
    writer.send(&resp(&["WAIT", "1", "0"]));
    eventually("the GETACK held at the relay", || {
        relay.held_contains(b"GETACK")
    });
    let had = number(&replica, "replication", "master_repl_offset");
    let sent = number(&primary, "replication", "master_repl_offset");
    let mut promoter = replica.connect();
    promoter.cmd(&["PING"], b"+PONG\r\n");
    replica.signal("STOP");
    promoter.send(&resp(&["REPLICAOF", "NO", "ONE"]));
    relay.release();
    replica.signal("CONT");
    promoter.expect(b"+OK\r\n");
    eventually("the promoted replica closing its link", || {
        relay.replica_closed()
    });

    // Had the stream's bytes come first, it would have applied them all, as a replica.
    let offset = number(&replica, "replication", "master_repl_offset");
    let after = promoter.call(&["EXISTS", "after"]);
    assert!(
        (offset, after.as_str()) == (had, ":0") || (offset, after.as_str()) == (sent, ":1"),
        "the promoted replica is at offset {offset} with EXISTS after {after}: it held {had} \
         before, the primary had sent {sent}"
    );
    let acks = relay.acks();
    assert!(
        acks.iter().all(|&ack| ack <= sent),
        "the replica acknowledged {acks:?}, past the {sent} bytes its primary sent"
    );
}

/// A WAIT held when its server becomes a replica is answered as Redis answers it, and its
/// connection closed; the blocked client shows in INFO and CLIENT LIST meanwhile.
#[test]
fn a_held_wait_is_unblocked_when_its_server_becomes_a_replica_as_in_redis() {
    fn observe(port: u16) -> (String, String, Vec<u8>) {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut waiter = common::Client::connect(addr);
        waiter.cmd(&["SET", "k", "v"], b"+OK\r\n");
        waiter.send(&resp(&["WAIT", "1", "0"]));
        let mut admin = common::Client::connect(addr);
        eventually("the WAIT held", || {
            admin.info_field("clients", "blocked_clients") == "1"
        });
        let list = admin.call(&["CLIENT", "LIST"]);
        let flags = list
            .lines()
            .find(|l| l.contains("cmd=wait"))
            .and_then(|l| l.split(' ').find_map(|p| p.strip_prefix("flags=")))
            .unwrap_or_default()
            .to_string();
        // Nothing listens there: the server stays a replica trying to connect.
        let nowhere = free_port().to_string();
        let demoted = admin.call(&["REPLICAOF", "127.0.0.1", &nowhere]);
        let mut reply = Vec::new();
        let _ = waiter.stream.read_to_end(&mut reply);
        (flags, demoted, reply)
    }

    let server = Server::start(&[]);
    let mine = observe(server.addr.port());
    let redis = redis(&[]);
    let theirs = observe(redis.2);
    assert_eq!(mine, theirs);
    assert_eq!(
        String::from_utf8_lossy(&mine.2),
        "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> \
         replica?)\r\n"
    );
    assert_eq!(mine.0, "b");
}
