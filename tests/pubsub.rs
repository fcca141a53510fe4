//! Pub/Sub against a real redis-server: the same commands from several clients go to both, and
//! every frame each client receives (replies, subscribe confirmations, messages, RESP3 pushes,
//! errors) must be byte for byte the same. Also keyspace notifications for every command
//! pocketkv has, CLIENT LIST/KILL by type, and what only pocketkv has: the text dialect's
//! rendering and the subscription bound.
//!
//! Each step is followed by a PING on every client: its reply (`+PONG`, or `pong` in the shape
//! of a message while subscribed) ends what that client got for the step, so no step waits on
//! time.

mod common;

use common::frames::{compare, redis_frames, run_until_pong, setup, step, Frames};
use common::redis::Redis;
use common::Server;

#[test]
fn frames_and_errors_match_redis_in_resp2_and_resp3() {
    let steps = [
        step(0, &["SUBSCRIBE", "a", "b"]),
        step(0, &["SUBSCRIBE", "a"]),
        step(1, &["PUBLISH", "a", "hello"]),
        step(1, &["PUBLISH", "nobody", "x"]),
        step(1, &["PUBLISH", "b", ""]),
        step(0, &["GET", "k"]),
        step(0, &["CLIENT", "LIST"]),
        step(0, &["PUBSUB", "NUMPAT"]),
        step(0, &["PING", "hi"]),
        step(0, &["GET"]),
        step(0, &["NOSUCH"]),
        step(0, &["PSUBSCRIBE", "h*", "a*"]),
        step(1, &["PUBLISH", "a", "both"]),
        step(1, &["PUBLISH", "hat", "pattern only"]),
        step(1, &["PUBSUB", "NUMSUB", "a", "b", "c"]),
        step(1, &["PUBSUB", "NUMSUB"]),
        step(1, &["PUBSUB", "NUMPAT"]),
        step(1, &["PUBSUB", "CHANNELS", "b"]),
        step(1, &["PUBSUB", "CHANNELS", "z*"]),
        step(0, &["UNSUBSCRIBE", "a"]),
        step(0, &["PUNSUBSCRIBE", "h*", "nope"]),
        step(0, &["UNSUBSCRIBE", "never"]),
        step(0, &["PUNSUBSCRIBE"]),
        step(1, &["PUBSUB", "NUMPAT"]),
        step(0, &["UNSUBSCRIBE"]),
        step(0, &["UNSUBSCRIBE"]),
        step(0, &["PUNSUBSCRIBE"]),
        step(0, &["GET", "k"]),
        // RESP3: pushes, and any command allowed while subscribed.
        setup(2, &["HELLO", "3"]),
        step(2, &["UNSUBSCRIBE"]),
        step(2, &["SUBSCRIBE", "a"]),
        step(2, &["GET", "k"]),
        step(2, &["PUBLISH", "a", "to myself"]),
        step(1, &["PUBLISH", "a", "to resp3"]),
        step(2, &["PSUBSCRIBE", "*"]),
        step(1, &["PUBLISH", "a", "twice"]),
        step(2, &["PUNSUBSCRIBE", "*"]),
        step(2, &["RESET"]),
        step(2, &["GET", "k"]),
        // RESET in RESP2 while subscribed.
        step(0, &["SUBSCRIBE", "r"]),
        step(0, &["RESET"]),
        step(1, &["PUBLISH", "r", "gone"]),
        step(0, &["GET", "k"]),
        // Malformed forms.
        step(1, &["SUBSCRIBE"]),
        step(1, &["PSUBSCRIBE"]),
        step(1, &["PUBLISH", "a"]),
        step(1, &["PUBLISH", "a", "b", "c"]),
        step(1, &["PUBSUB"]),
        step(1, &["PUBSUB", "NOSUCH"]),
        step(1, &["PUBSUB", "NUMPAT", "x"]),
        step(1, &["RESET", "x"]),
        step(1, &["CLIENT", "KILL", "TYPE", "bogus"]),
        step(1, &["CLIENT", "LIST", "TYPE", "bogus"]),
        step(1, &["CLIENT", "KILL", "TYPE", "master"]),
        step(1, &["CLIENT", "KILL", "TYPE", "replica"]),
        step(1, &["CLIENT", "KILL", "TYPE", "slave"]),
        step(1, &["CLIENT", "LIST", "TYPE", "pubsub"]),
    ];
    compare(3, &steps, &[], &[]);
}

#[test]
fn auth_applies_while_subscribed_and_reset_forgets_it() {
    let redis = Redis::start(&[]);
    redis_frames(&redis).call(&["CONFIG", "SET", "requirepass", "pw"]);
    let server = Server::start(&["--requirepass", "pw"]);
    for (side, mut conn) in [
        ("pocketkv", Frames::tcp(server.addr)),
        ("redis", redis_frames(&redis)),
    ] {
        assert_eq!(conn.call(&["AUTH", "pw"]), b"+OK\r\n", "{side}");
        conn.cmd(&["SUBSCRIBE", "a"]);
        conn.frame().unwrap();
        assert_eq!(conn.call(&["RESET"]), b"+RESET\r\n", "{side}");
        assert_eq!(
            conn.call(&["GET", "k"]),
            b"-NOAUTH Authentication required.\r\n",
            "{side}"
        );
    }
}

#[test]
fn client_list_shows_subscriptions_and_kill_by_type_takes_only_subscribers() {
    let server = Server::start(&[]);
    let mut sub = Frames::tcp(server.addr);
    let mut other = Frames::tcp(server.addr);
    let mut admin = Frames::tcp(server.addr);
    sub.cmd(&["SUBSCRIBE", "a", "b"]);
    sub.frame().unwrap();
    sub.frame().unwrap();
    sub.cmd(&["PSUBSCRIBE", "c*"]);
    sub.frame().unwrap();
    assert_eq!(other.call(&["PING"]), b"+PONG\r\n");
    let list = String::from_utf8(admin.call(&["CLIENT", "LIST", "TYPE", "pubsub"])).unwrap();
    assert_eq!(list.matches("id=").count(), 1, "one client: {list}");
    assert!(
        list.contains(" flags=P db=0 sub=2 psub=1 ssub=0 "),
        "{list}"
    );
    let normal = String::from_utf8(admin.call(&["CLIENT", "LIST", "TYPE", "normal"])).unwrap();
    assert_eq!(normal.matches("flags=N").count(), 2, "{normal}");
    assert_eq!(admin.call(&["CLIENT", "KILL", "TYPE", "pubsub"]), b":1\r\n");
    assert!(sub.frame().is_err(), "the subscriber is closed");
    // TYPE normal skips the caller, as in Redis.
    assert_eq!(admin.call(&["CLIENT", "KILL", "TYPE", "normal"]), b":1\r\n");
    assert!(other.frame().is_err());
    assert_eq!(admin.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        admin.call(&["PUBSUB", "NUMSUB", "a"]),
        b"*2\r\n$1\r\na\r\n:0\r\n"
    );
    assert_eq!(
        admin.call(&["PUBSUB", "NUMPAT"]),
        b":0\r\n",
        "closed clients leave no trace"
    );
}

#[test]
fn client_setinfo_is_accepted() {
    let server = Server::start(&[]);
    let mut c = Frames::tcp(server.addr);
    assert_eq!(
        c.call(&["CLIENT", "SETINFO", "lib-name", "redis-py"]),
        b"+OK\r\n"
    );
    assert_eq!(
        c.call(&["CLIENT", "SETINFO", "LIB-VER", "8.2.0"]),
        b"+OK\r\n"
    );
    assert_eq!(
        c.call(&["CLIENT", "SETINFO", "color", "x"]),
        b"-ERR Unrecognized option\r\n"
    );
    assert_eq!(
        c.call(&["CLIENT", "SETINFO", "lib-name"]),
        b"-ERR wrong number of arguments for 'client|setinfo' command\r\n"
    );
}

#[test]
fn a_person_on_a_text_line_reads_messages_as_numbered_lists() {
    let server = Server::start(&[]);
    let mut person = server.connect();
    person.send(b"SUBSCRIBE news\n");
    person.expect(b"1) subscribe\n2) news\n3) (integer) 1\n");
    let mut publisher = server.connect();
    publisher.roundtrip(b"PUBLISH news hello\n", b"(integer) 1\n");
    publisher.roundtrip(b"PUBLISH news \"two words\"\n", b"(integer) 1\n");
    person.expect(b"1) message\n2) news\n3) hello\n");
    person.expect(b"1) message\n2) news\n3) \"two words\"\n");
    person.send(b"GET k\n");
    person.expect(
        b"(error) ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT \
          / RESET are allowed in this context\n",
    );
    person.send(b"PING\n");
    person.expect(b"1) pong\n2) \"\"\n");
    person.send(b"UNSUBSCRIBE\n");
    person.expect(b"1) unsubscribe\n2) news\n3) (integer) 0\n");
    person.send(b"UNSUBSCRIBE\n");
    person.expect(b"1) unsubscribe\n2) (nil)\n3) (integer) 0\n");
}

#[test]
fn subscriptions_per_client_are_bounded_by_the_setting() {
    let server = Server::start(&["--pubsub-max-subscriptions", "3"]);
    let mut c = Frames::tcp(server.addr);
    c.cmd(&["SUBSCRIBE", "a", "b"]);
    c.frame().unwrap();
    c.frame().unwrap();
    c.cmd(&["PSUBSCRIBE", "p*", "q*", "r*"]);
    assert_eq!(
        c.frame().unwrap(),
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n"
    );
    assert_eq!(
        c.frame().unwrap(),
        b"-ERR too many subscriptions for this client (pubsub-max-subscriptions)\r\n"
    );
    // Already held: not a new subscription, so allowed at the limit.
    c.cmd(&["SUBSCRIBE", "a"]);
    assert_eq!(
        c.frame().unwrap(),
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:3\r\n"
    );
    let mut admin = Frames::tcp(server.addr);
    assert_eq!(admin.call(&["PUBSUB", "NUMPAT"]), b":1\r\n");
    assert_eq!(
        admin.call(&["CONFIG", "GET", "pubsub-max-subscriptions"]),
        b"*2\r\n$24\r\npubsub-max-subscriptions\r\n$1\r\n3\r\n"
    );
}

#[test]
fn subscribe_inside_a_transaction_and_reset_match_redis() {
    // One pipeline per server: MULTI is discarded by RESET; SUBSCRIBE is queued and runs at
    // EXEC (its frames inside EXEC's array, as Redis writes them); then the client is
    // subscribed until RESET. The only +PONG is the last reply.
    let commands: &[&[&str]] = &[
        &["MULTI"],
        &["RESET"],
        &["EXEC"],
        &["WATCH", "w"],
        &["MULTI"],
        &["SUBSCRIBE", "m1", "m2"],
        &["GET", "k"],
        &["EXEC"],
        &["PING"],
        &["GET", "k"],
        &["RESET"],
        &["PING"],
    ];
    let redis = Redis::start(&[]);
    let server = Server::start(&[]);
    let got: Vec<String> = [Frames::tcp(server.addr), redis_frames(&redis)]
        .into_iter()
        .map(|mut conn| run_until_pong(&mut conn, commands))
        .collect();
    assert_eq!(
        got[0], got[1],
        "pocketkv (left) and redis-server (right) differ"
    );
}
