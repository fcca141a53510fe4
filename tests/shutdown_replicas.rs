//! A primary's shutdown while it waits for lagging replicas, as in Redis 7.0: writes wait (they
//! are not refused), reads and other commands run, new clients connect, SHUTDOWN ABORT cancels
//! (the SHUTDOWN callers get an error, the held writes run), and otherwise the process exits,
//! saved, once the replicas acknowledge or `shutdown-timeout` passes. The replica's
//! acknowledgements are made to lag by stopping it (SIGSTOP). Nothing waits by sleeping: every
//! step polls with a deadline (INFO's `blocked_clients` says when a request is being held).

mod common;

use std::io::{Read, Write};

use common::http::request;
use common::redis::{
    await_blocked as blocked, await_replica_online as online, connect_pocket, text, until,
    Deadline, Redis, Replies,
};
use common::{free_port, resp, signal, Server};

/// Waits until INFO shows a shutdown waiting for replicas (`shutdown_in_milliseconds`).
fn shutdown_waits<S: Read + Write + Deadline>(conn: &mut Replies<S>) {
    until(conn, "the shutdown waiting for replicas", |c| {
        text(&c.call(&resp(&["INFO", "server"]))).contains("\r\nshutdown_in_milliseconds:")
    });
}

/// The differential scenario, on a primary (`connect`) whose replica is process `replica`:
/// each reply, labelled.
fn scenario<S: Read + Write + Deadline>(
    connect: &dyn Fn() -> Replies<S>,
    replica: u32,
) -> (Vec<(&'static str, String)>, Replies<S>) {
    let mut log = Vec::new();
    let mut note = |what: &'static str, reply: Vec<u8>| log.push((what, text(&reply)));
    let mut reader = connect();
    online(&mut reader);
    note(
        "abort, none in progress",
        reader.call(&resp(&["SHUTDOWN", "ABORT"])),
    );
    signal(replica, "STOP");
    note(
        "a write the replica misses",
        reader.call(&resp(&["SET", "k", "before"])),
    );

    let mut shut = connect();
    shut.send(&resp(&["SHUTDOWN"]));
    blocked(&mut reader, 1);
    note("a read during the wait", reader.call(&resp(&["GET", "k"])));
    let mut writer = connect();
    writer.send(&resp(&["SET", "k", "during"]));
    blocked(&mut reader, 2);
    let held = reader.call(&resp(&["GET", "k"]));
    assert_eq!(text(&held), "$6\r\nbefore\r\n", "the write waits");
    note("the write has not run", held);
    let mut txn = connect();
    note("MULTI", txn.call(&resp(&["MULTI"])));
    txn.send(&resp(&["SET", "t", "1"]));
    blocked(&mut reader, 3);
    let mut publisher = connect();
    publisher.send(&resp(&["PUBLISH", "ch", "m"]));
    blocked(&mut reader, 4);
    let mut second = connect();
    second.send(&resp(&["SHUTDOWN", "NOW"]));
    blocked(&mut reader, 5);
    note("PING", reader.call(&resp(&["PING"])));
    note("DBSIZE", reader.call(&resp(&["DBSIZE"])));
    note("WAIT", reader.call(&resp(&["WAIT", "0", "1"])));

    let mut aborter = connect();
    note(
        "abort with NOW",
        aborter.call(&resp(&["SHUTDOWN", "ABORT", "NOW"])),
    );
    let aborted = aborter.call(&resp(&["SHUTDOWN", "ABORT"]));
    assert_eq!(text(&aborted), "+OK\r\n");
    note("abort", aborted);
    note("the SHUTDOWN caller", shut.reply());
    note("the SHUTDOWN NOW caller", second.reply());
    note("the held write", writer.reply());
    note("the held queued write", txn.reply());
    note("EXEC", txn.call(&resp(&["EXEC"])));
    note("the held PUBLISH", publisher.reply());
    note("a read after", reader.call(&resp(&["GET", "k"])));
    note("abort again", reader.call(&resp(&["SHUTDOWN", "ABORT"])));
    note("a write after", reader.call(&resp(&["SET", "k", "after"])));
    blocked(&mut reader, 0);
    signal(replica, "CONT");
    (log, shut)
}

/// A redis-server primary (`shutdown-timeout 600`) and its replica.
fn redis_pair() -> (Redis, Redis) {
    let port = free_port().to_string();
    let primary = Redis::start(&[
        "--port",
        &port,
        "--shutdown-timeout",
        "600",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &port]);
    (primary, replica)
}

#[test]
fn replies_during_the_wait_and_after_shutdown_abort_are_redis_s() {
    let (redis, redis_replica) = redis_pair();
    // Redis 7.0.15 fails an assertion (and exits) when a client whose SHUTDOWN was aborted
    // sends its next command: its connection is left alone here.
    let (theirs, _) = scenario(&|| redis.connect(), redis_replica.pid());

    let primary = Server::start(&["--shutdown-timeout", "600"]);
    let replica = Server::replica_of(&primary, &[]);
    let (ours, mut shut) = scenario(&|| connect_pocket(&primary), replica.child.id());
    assert_eq!(ours, theirs, "left: pocketkv, right: redis-server");
    assert!(ours.contains(&(
        "the SHUTDOWN caller",
        "-ERR Errors trying to SHUTDOWN. Check logs.\r\n".to_string()
    )));
    // Here the SHUTDOWN caller's connection goes on.
    assert_eq!(shut.call(&resp(&["GET", "k"])), b"$5\r\nafter\r\n");
}

/// A primary with a replica that is online and then stopped, so it acknowledges nothing more.
fn stopped_replica(dir: &std::path::Path, timeout: &str) -> (Server, Server) {
    let primary = Server::start_in(dir, &["--shutdown-timeout", timeout]);
    let replica = Server::replica_of(&primary, &[]);
    online(&mut connect_pocket(&primary));
    replica.signal("STOP");
    (primary, replica)
}

#[test]
fn the_shutdown_finishes_saved_once_the_replica_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let (mut primary, replica) = stopped_replica(dir.path(), "600");
    let mut c = primary.connect();
    c.cmd(&["SET", "last", "write"], b"+OK\r\n");
    let mut shut = primary.connect();
    shut.send(&resp(&["SHUTDOWN"]));
    let mut writer = primary.connect();
    writer.send(&resp(&["SET", "never", "ran"]));
    blocked(&mut connect_pocket(&primary), 2);
    c.cmd(&["GET", "last"], b"$5\r\nwrite\r\n");
    replica.signal("CONT");
    primary.wait_log("replicas caught up");
    assert!(primary.wait_exit().success());
    shut.expect_closed();
    writer.expect_closed();
    replica.connect().cmd(&["GET", "last"], b"$5\r\nwrite\r\n");
    let restarted = Server::start_in(dir.path(), &[]);
    let mut c = restarted.connect();
    c.cmd(&["GET", "last"], b"$5\r\nwrite\r\n");
    c.cmd(&["GET", "never"], b"$-1\r\n");
}

#[test]
fn the_shutdown_finishes_saved_once_shutdown_timeout_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut primary, replica) = stopped_replica(dir.path(), "1");
    let mut c = primary.connect();
    c.cmd(&["SET", "last", "write"], b"+OK\r\n");
    c.send(&resp(&["SHUTDOWN"]));
    primary.wait_log("has not caught up");
    assert!(primary.wait_exit().success());
    c.expect_closed();
    replica.signal("CONT");
    let restarted = Server::start_in(dir.path(), &[]);
    restarted
        .connect()
        .cmd(&["GET", "last"], b"$5\r\nwrite\r\n");
}

#[test]
fn sigterm_waits_as_shutdown_does_and_shutdown_abort_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut primary, replica) = stopped_replica(dir.path(), "600");
    let mut c = primary.connect();
    c.cmd(&["SET", "k", "before"], b"+OK\r\n");
    primary.signal("TERM");
    primary.wait_log("SIGTERM: waiting for replicas");
    let mut writer = primary.connect();
    writer.send(&resp(&["SET", "k", "during"]));
    blocked(&mut connect_pocket(&primary), 1);
    c.cmd(&["GET", "k"], b"$6\r\nbefore\r\n");
    // A second signal changes nothing, as in Redis.
    primary.signal("TERM");
    primary.wait_log("SIGTERM: a shutdown already waits");
    c.cmd(&["GET", "k"], b"$6\r\nbefore\r\n");
    c.cmd(&["SHUTDOWN", "ABORT"], b"+OK\r\n");
    writer.expect(b"+OK\r\n");
    c.cmd(&["GET", "k"], b"$6\r\nduring\r\n");
    c.cmd(&["SET", "k", "after"], b"+OK\r\n");
    assert!(primary.child.try_wait().unwrap().is_none(), "it runs on");
    // Once the replica is back, a shutdown waits for it and goes.
    replica.signal("CONT");
    c.send(&resp(&["SHUTDOWN"]));
    assert!(primary.wait_exit().success());
    let restarted = Server::start_in(dir.path(), &[]);
    restarted.connect().cmd(&["GET", "k"], b"$5\r\nafter\r\n");
}

#[test]
fn http_writes_wait_and_http_reads_are_served_during_the_wait() {
    let (mut primary, http) = Server::start_http(&["--shutdown-timeout", "600"]);
    let replica = Server::replica_of(&primary, &[]);
    online(&mut connect_pocket(&primary));
    replica.signal("STOP");
    let mut c = primary.connect();
    c.cmd(&["SET", "k", "before"], b"+OK\r\n");
    let mut shut = primary.connect();
    shut.send(&resp(&["SHUTDOWN"]));
    blocked(&mut connect_pocket(&primary), 1);
    let get = request(http, "GET", "/v1/keys/k", &[], b"");
    assert_eq!((get.status, get.body.as_slice()), (200, &b"before"[..]));
    let console = request(http, "POST", "/v1/command", &[], b"GET k");
    assert_eq!(
        (console.status, console.body.as_slice()),
        (200, &b"before\n"[..])
    );
    // A key write and a console write wait.
    let mut put = common::Client::connect(http);
    put.send(b"PUT /v1/keys/k HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nduring");
    blocked(&mut connect_pocket(&primary), 2);
    let mut console_write = common::Client::connect(http);
    console_write
        .send(b"POST /v1/command HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nINCR hits");
    blocked(&mut connect_pocket(&primary), 3);
    c.cmd(&["GET", "k"], b"$6\r\nbefore\r\n");
    c.cmd(&["SHUTDOWN", "ABORT"], b"+OK\r\n");
    assert_eq!(put.read_line(), "HTTP/1.1 204 No Content\r\n");
    assert_eq!(console_write.read_line(), "HTTP/1.1 200 OK\r\n");
    c.cmd(&["GET", "k"], b"$6\r\nduring\r\n");
    c.cmd(&["GET", "hits"], b"$1\r\n1\r\n");
    shut.expect(b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n");
    replica.signal("CONT");
    primary.wait_log("SHUTDOWN ABORT");
}

/// Ctrl-C twice: a SIGINT while a signal's shutdown waits for the replicas exits at once, with
/// status 1 and without the final snapshot, as redis-server does ("You insist...").
#[test]
fn a_second_sigint_during_the_wait_exits_at_once_unsaved_as_redis_does() {
    let (mut redis, redis_replica) = redis_pair();
    online(&mut redis.connect());
    signal(redis_replica.pid(), "STOP");
    // Written after the replica stopped: it lags, so the shutdown waits.
    let set = resp(&["SET", "before", "signals"]);
    assert_eq!(redis.connect().call(&set), b"+OK\r\n");
    signal(redis.pid(), "INT");
    shutdown_waits(&mut redis.connect());
    let mut writer = redis.connect();
    writer.send(&resp(&["SET", "k", "v"]));
    blocked(&mut redis.connect(), 1);
    signal(redis.pid(), "INT");
    let theirs = redis.wait_exit().code();
    signal(redis_replica.pid(), "CONT");

    let dir = tempfile::tempdir().unwrap();
    // Snapshots only at shutdown, no log: what the final snapshot would have kept is lost.
    let mut primary = Server::start_in(
        dir.path(),
        &["--shutdown-timeout", "600", "--save-interval", "0"],
    );
    let replica = Server::replica_of(&primary, &[]);
    online(&mut connect_pocket(&primary));
    replica.signal("STOP");
    primary
        .connect()
        .cmd(&["SET", "before", "signals"], b"+OK\r\n");
    primary.signal("INT");
    shutdown_waits(&mut connect_pocket(&primary));
    let mut writer = primary.connect();
    writer.send(&resp(&["SET", "k", "v"]));
    blocked(&mut connect_pocket(&primary), 1);
    primary.signal("INT");
    primary.wait_log("SIGINT again: exiting now");
    let ours = primary.wait_exit().code();
    assert_eq!(
        ours, theirs,
        "exit status: left pocketkv, right redis-server"
    );
    assert_eq!(ours, Some(1));
    replica.signal("CONT");
    let restarted = Server::start_in(dir.path(), &[]);
    restarted.connect().cmd(&["GET", "before"], b"$-1\r\n");
}
