//! A subscriber that does not read never slows the publisher or anyone else: the pub/sub output
//! limit closes it and INFO counts it; a client subscribing to 100,000 patterns is bounded the
//! same way while others are served.

mod common;

use std::time::Instant;

use common::{resp, resp_bytes, Server, DEADLINE};

#[test]
fn a_slow_subscriber_is_disconnected_at_the_limit_while_others_are_served() {
    let server = Server::start(&["--client-output-buffer-limit", "pubsub 1mb 256kb 60"]);
    let mut slow = server.connect();
    slow.cmd(
        &["SUBSCRIBE", "feed"],
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nfeed\r\n:1\r\n",
    );
    let mut fast = server.connect();
    fast.cmd(
        &["SUBSCRIBE", "feed"],
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nfeed\r\n:1\r\n",
    );
    let mut publisher = server.connect();
    let mut bystander = server.connect();
    let payload = vec![b'x'; 64 * 1024];
    let message = resp_bytes(&[b"PUBLISH", b"feed", &payload]);
    let mut frame = b"*3\r\n$7\r\nmessage\r\n$4\r\nfeed\r\n$65536\r\n".to_vec();
    frame.extend_from_slice(&payload);
    frame.extend_from_slice(b"\r\n");
    let deadline = Instant::now() + DEADLINE;
    let mut sent = 0;
    // Publish until the slow subscriber is gone: the publisher always gets its count at once,
    // the reading subscriber every message, and a bystander its replies.
    loop {
        publisher.send(&message);
        let count = publisher.read_line();
        sent += 1;
        fast.expect(&frame);
        bystander.cmd(&["PING"], b"+PONG\r\n");
        if count == ":1\r\n" {
            break;
        }
        assert_eq!(count, ":2\r\n");
        assert!(
            Instant::now() < deadline,
            "never disconnected after {sent} messages"
        );
    }
    assert_eq!(
        bystander.info_field("stats", "client_output_buffer_limit_disconnections"),
        "1"
    );
    // The slow subscriber gets what was sent before the close, then the end.
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match std::io::Read::read(&mut slow.stream, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < sent * frame.len(),
        "it did not get everything: {got} bytes"
    );
}

#[test]
fn one_hundred_thousand_patterns_are_bounded_by_the_limits_and_others_are_served() {
    let server = Server::start(&["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let mut greedy = server.connect();
    let patterns: Vec<String> = (0..100_000).map(|i| format!("p:{i}:*")).collect();
    let mut args: Vec<&[u8]> = vec![b"PSUBSCRIBE"];
    args.extend(patterns.iter().map(|p| p.as_bytes()));
    // 100,000 confirmations are about 3 MB: more than the pub/sub limit of a client that does
    // not read them.
    greedy.send(&resp_bytes(&args));
    let mut other = server.connect();
    other.cmd(&["PING"], b"+PONG\r\n");
    let deadline = Instant::now() + DEADLINE;
    while other.info_field("stats", "client_output_buffer_limit_disconnections") != "1" {
        other.cmd(&["SET", "k", "v"], b"+OK\r\n");
        assert!(
            Instant::now() < deadline,
            "the greedy client was never closed"
        );
    }
    other.cmd(&["PUBSUB", "NUMPAT"], b":0\r\n");
    other.cmd(&["PUBLISH", "p:1:x", "m"], b":0\r\n");

    // With room for the replies, the patterns stand, and a PUBLISH still answers.
    let server = Server::start(&[]);
    let mut reader = server.connect();
    reader.send(&resp_bytes(&args));
    let mut last = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let line = format!(
            "*3\r\n$10\r\npsubscribe\r\n${}\r\n{p}\r\n:{}\r\n",
            p.len(),
            i + 1
        );
        last = reader.read_n(line.len());
        if i == 0 || i == 99_999 {
            assert_eq!(last, line.as_bytes());
        }
    }
    assert!(!last.is_empty());
    let mut publisher = server.connect();
    publisher.cmd(&["PUBSUB", "NUMPAT"], b":100000\r\n");
    publisher.cmd(&["PUBLISH", "p:7:x", "m"], b":1\r\n");
    reader.expect(b"*4\r\n$8\r\npmessage\r\n$5\r\np:7:*\r\n$5\r\np:7:x\r\n$1\r\nm\r\n");
    // One more is past pubsub-max-subscriptions (100,000 by default).
    reader.send(&resp(&["PSUBSCRIBE", "extra"]));
    reader.expect(b"-ERR too many subscriptions for this client (pubsub-max-subscriptions)\r\n");
}
