//! Pub/Sub over HTTP: `GET /v1/subscribe/{channel}` streams a channel as Server-Sent Events,
//! read here by a plain HTTP client over TCP, with bearer authentication and a clean end when
//! the server stops.

mod common;

use common::{resp, Client, Server};

fn head(c: &mut Client) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(c.read_n(1));
    }
    String::from_utf8(head).expect("ASCII head")
}

const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                           Cache-Control: no-cache\r\nConnection: close\r\n\r\n";

/// Publishes `message` and checks how many received it.
fn publish(server: &Server, channel: &str, message: &[u8], receivers: usize) {
    let mut c = server.connect();
    let args: [&[u8]; 3] = [b"PUBLISH", channel.as_bytes(), message];
    c.roundtrip(
        &common::resp_bytes(&args),
        format!(":{receivers}\r\n").as_bytes(),
    );
}

#[test]
fn a_channel_streams_as_server_sent_events_and_ends_when_the_server_stops() {
    let (mut server, http) = Server::start_http(&[]);
    let mut stream = Client::connect(http);
    stream.send(
        b"GET /v1/subscribe/news%2Fdesk HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    );
    assert_eq!(head(&mut stream), STREAM_HEAD);
    stream.expect(b": subscribed\n\n");
    publish(&server, "news/desk", b"hello", 1);
    stream.expect(b"data: \"hello\"\n\n");
    publish(&server, "news/desk", b"line\nbreak \"quoted\"", 1);
    stream.expect(b"data: \"line\\nbreak \\\"quoted\\\"\"\n\n");
    publish(&server, "news/desk", b"\xff\x00", 1);
    stream.expect(b"data: {\"base64\":\"/wA=\"}\n\n");
    // Another channel does not reach it; RESP subscribers and the stream count alike.
    publish(&server, "other", b"x", 0);
    let mut admin = server.connect();
    admin.cmd(
        &["PUBSUB", "NUMSUB", "news/desk"],
        b"*2\r\n$9\r\nnews/desk\r\n:1\r\n",
    );
    admin.send(&resp(&["SHUTDOWN", "NOSAVE"]));
    stream.expect_closed();
    assert!(server.wait_exit().success());
}

#[test]
fn the_stream_needs_the_bearer_password_and_a_get() {
    let (server, http) = Server::start_http(&["--requirepass", "pw"]);
    let mut c = Client::connect(http);
    c.send(b"GET /v1/subscribe/a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(head(&mut c).starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    let mut c = Client::connect(http);
    c.send(b"POST /v1/subscribe/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer pw\r\nContent-Length: 0\r\n\r\n");
    assert!(head(&mut c).starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    let mut c = Client::connect(http);
    c.send(b"GET /v1/subscribe/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer pw\r\n\r\n");
    assert_eq!(head(&mut c), STREAM_HEAD);
    c.expect(b": subscribed\n\n");
    let mut admin = server.connect();
    admin.cmd(&["AUTH", "pw"], b"+OK\r\n");
    admin.cmd(&["PUBLISH", "a", "ok"], b":1\r\n");
    c.expect(b"data: \"ok\"\n\n");
    // A closed stream leaves no subscription behind.
    drop(c);
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        admin.send(&resp(&["PUBLISH", "a", "x"]));
        if admin.read_line() == ":0\r\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "subscription kept");
    }
}
