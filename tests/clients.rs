//! CLIENT LIST, CLIENT INFO and CLIENT KILL against the real binary.

mod common;

use common::{resp, Client, Server};

/// Sends `args` and returns the bulk reply's text.
fn bulk_text(client: &mut Client, args: &[&str]) -> String {
    client.send(&resp(args));
    let header = client.read_line();
    assert!(header.starts_with('$'), "not a bulk: {header:?}");
    let len: usize = header[1..].trim_end().parse().expect("bulk length");
    let mut body = client.read_n(len + 2);
    body.truncate(len);
    String::from_utf8(body).expect("utf-8")
}

/// `field=value` of one CLIENT LIST line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

#[test]
fn client_list_describes_every_connection_in_redis_format() {
    let server = Server::start(&[]);
    // Both connect after this: their age in seconds can be no more than the time since.
    let opened = std::time::Instant::now();
    let mut a = server.connect();
    let mut b = server.connect();
    a.cmd(&["CLIENT", "SETNAME", "alpha"], b"+OK\r\n");
    b.cmd(&["SET", "k", "v"], b"+OK\r\n");
    let list = bulk_text(&mut a, &["CLIENT", "LIST"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(list.ends_with('\n'));
    let (la, lb) = (lines[0], lines[1]);
    assert_eq!(field(la, "id"), "1");
    assert_eq!(field(lb, "id"), "2");
    assert_eq!(
        field(la, "addr"),
        a.stream.local_addr().unwrap().to_string()
    );
    assert_eq!(
        field(lb, "addr"),
        b.stream.local_addr().unwrap().to_string()
    );
    assert_eq!(field(la, "laddr"), server.addr.to_string());
    assert_eq!(field(la, "name"), "alpha");
    assert_eq!(field(lb, "name"), "");
    assert_eq!(field(la, "cmd"), "client|list");
    assert_eq!(field(lb, "cmd"), "set");
    for line in [la, lb] {
        for (name, value) in [
            ("flags", "N"),
            ("db", "0"),
            ("multi", "-1"),
            ("user", "default"),
            ("resp", "2"),
            ("events", "r"),
            ("oll", "0"),
        ] {
            assert_eq!(field(line, name), value, "{line}");
        }
        assert!(field(line, "fd").parse::<i32>().unwrap() > 2);
        assert!(field(line, "age").parse::<u64>().unwrap() <= opened.elapsed().as_secs());
    }
    // The order of the first fields is Redis's, which parsers of its output rely on.
    assert!(la.starts_with("id=1 addr="), "{la}");
    assert!(la.contains(" fd=") && la.find(" laddr=") < la.find(" fd="));
    // Filters.
    let only_b = bulk_text(&mut a, &["CLIENT", "LIST", "ID", "2", "99"]);
    assert_eq!(only_b.lines().count(), 1);
    assert!(only_b.starts_with("id=2 "));
    assert_eq!(bulk_text(&mut a, &["CLIENT", "LIST", "TYPE", "pubsub"]), "");
    assert_eq!(
        bulk_text(&mut a, &["CLIENT", "LIST", "TYPE", "normal"])
            .lines()
            .count(),
        2
    );
    // CLIENT INFO is the caller's own line.
    let info = bulk_text(&mut b, &["CLIENT", "INFO"]);
    assert_eq!(info.lines().count(), 1);
    assert_eq!(field(&info, "id"), "2");
    assert_eq!(field(&info, "cmd"), "client|info");
    assert_eq!(field(&info, "idle"), "0");
}

#[test]
fn client_list_shows_resp3_clients() {
    let server = Server::start(&[]);
    let mut a = server.connect();
    a.send(&resp(&["HELLO", "3"]));
    let _ = a.read_line();
    let mut b = server.connect();
    let list = bulk_text(&mut b, &["CLIENT", "LIST"]);
    let line_a = list.lines().next().expect("a's line");
    assert_eq!(field(line_a, "resp"), "3");
    assert_eq!(field(line_a, "cmd"), "hello");
}

#[test]
fn client_kill_old_form_and_filters() {
    let server = Server::start(&[]);
    let mut admin = server.connect();
    let mut victim = server.connect();
    let mut other = server.connect();
    victim.cmd(&["PING"], b"+PONG\r\n");
    other.cmd(&["PING"], b"+PONG\r\n");
    let victim_addr = victim.stream.local_addr().unwrap().to_string();
    admin.cmd(&["CLIENT", "KILL", &victim_addr], b"+OK\r\n");
    victim.expect_closed();
    admin.cmd(
        &["CLIENT", "KILL", &victim_addr],
        b"-ERR No such client\r\n",
    );
    // ID filter: a count, and the rest unharmed.
    admin.cmd(&["CLIENT", "KILL", "ID", "3"], b":1\r\n");
    other.expect_closed();
    admin.cmd(&["CLIENT", "KILL", "ID", "3"], b":0\r\n");
    // SKIPME yes (the default) spares the caller; ADDR names clients by address.
    let mut c = server.connect();
    c.cmd(&["PING"], b"+PONG\r\n");
    let admin_addr = admin.stream.local_addr().unwrap().to_string();
    admin.cmd(&["CLIENT", "KILL", "ADDR", &admin_addr], b":0\r\n");
    admin.cmd(
        &["CLIENT", "KILL", "LADDR", &server.addr.to_string()],
        b":1\r\n",
    );
    c.expect_closed();
    // SKIPME no: the caller gets its reply, then is closed.
    admin.cmd(&["CLIENT", "KILL", "ID", "1", "SKIPME", "no"], b":1\r\n");
    admin.expect_closed();
    let mut d = server.connect();
    let list = bulk_text(&mut d, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[test]
fn client_kill_in_the_text_dialect() {
    let server = Server::start(&[]);
    let mut admin = server.connect();
    let mut victim = server.connect();
    victim.roundtrip(b"PING\n", b"PONG\n");
    admin.roundtrip(b"CLIENT KILL ID 2\n", b"(integer) 1\n");
    victim.expect_closed();
    admin.send(b"CLIENT INFO\n");
    let mut line = String::new();
    while !line.ends_with('\n') {
        line.push(char::from(admin.read_n(1)[0]));
    }
    assert!(line.starts_with("id=1 addr="), "{line}");
}

/// `flags` and `multi` of every line of CLIENT LIST as seen by `watcher`, after `others` have
/// subscribed or queued commands: the same letters and counts from pocketkv and redis-server.
#[test]
fn client_list_flags_and_multi_match_redis() {
    use common::frames::{redis_frames, Frames};
    use common::redis::Redis;

    fn fields(mut c: [Frames; 4]) -> Vec<String> {
        let [watcher, queuer, subscriber, both] = &mut c;
        queuer.call(&["MULTI"]);
        queuer.call(&["SET", "a", "1"]);
        queuer.call(&["INCR", "a"]);
        subscriber.call(&["SUBSCRIBE", "news"]);
        both.call(&["MULTI"]);
        both.call(&["SUBSCRIBE", "x"]);
        let list = watcher.call(&["CLIENT", "LIST"]);
        let text = String::from_utf8_lossy(&list).into_owned();
        text.lines()
            .skip(1)
            .filter(|line| !line.is_empty())
            .map(|line| {
                format!(
                    "flags={} multi={}",
                    field(line, "flags"),
                    field(line, "multi")
                )
            })
            .collect()
    }

    let server = Server::start(&[]);
    let redis = Redis::start(&[]);
    let pocket = fields(std::array::from_fn(|_| Frames::tcp(server.addr)));
    // The reference is reached over its unix socket, which Redis flags `U`.
    let reference: Vec<String> = fields(std::array::from_fn(|_| redis_frames(&redis)))
        .into_iter()
        .map(|line| line.replacen("U multi", " multi", 1).replace("= ", "=N "))
        .collect();
    assert_eq!(pocket, reference);
    assert_eq!(pocket.len(), 4, "{pocket:?}");
}
