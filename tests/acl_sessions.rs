//! Who stays logged in when passwords change, and the exact shapes of ACL LOG and ACL GETUSER
//! replies in RESP2 and RESP3: each step sent to a real redis-server 7.0 and to pocketkv, the
//! replies compared byte for byte.

mod common;

use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use common::redis::{connect_pocket, text, Redis, Replies};
use common::{resp, Server};

/// One connection to each server.
struct Pair {
    redis: Replies<UnixStream>,
    ours: Replies<TcpStream>,
}

impl Pair {
    fn new(redis: &Redis, ours: &Server) -> Pair {
        Pair {
            redis: redis.connect(),
            ours: connect_pocket(ours),
        }
    }

    /// Both replies to `args`.
    fn both(&mut self, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let request = resp(args);
        (self.redis.call(&request), self.ours.call(&request))
    }

    /// Sends `args` to both and asserts the replies are the same bytes.
    fn same(&mut self, args: &[&str]) -> Vec<u8> {
        let (redis, ours) = self.both(args);
        assert_eq!(
            text(&ours),
            text(&redis),
            "replies to {args:?} differ (left: pocketkv, right: redis)"
        );
        ours
    }
}

#[test]
fn clients_logged_in_stay_logged_in_when_a_password_is_set() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut early = Pair::new(&redis, &ours);
    early.same(&["PING"]);
    let mut admin = Pair::new(&redis, &ours);
    admin.same(&["CONFIG", "SET", "requirepass", "pw"]);
    // Connected while no password was needed: still the default user, logged in.
    early.same(&["PING"]);
    early.same(&["SET", "k", "v"]);
    admin.same(&["ACL", "WHOAMI"]);
    let mut late = Pair::new(&redis, &ours);
    late.same(&["PING"]);
    late.same(&["HELLO", "2"]);
    // The same for a password set by ACL SETUSER, and for a default user switched off.
    admin.same(&["ACL", "SETUSER", "default", ">other"]);
    early.same(&["GET", "k"]);
    admin.same(&["ACL", "SETUSER", "default", "off"]);
    early.same(&["GET", "k"]);
    admin.same(&["ACL", "SETUSER", "default", "on"]);
    // Once the password is gone, HELLO still wants a client that never logged in to log in,
    // while other commands need no login.
    admin.same(&["CONFIG", "SET", "requirepass", ""]);
    late.same(&["PING"]);
    late.same(&["HELLO", "2"]);
    late.same(&["AUTH", "x"]);
    late.same(&["HELLO", "2"]);
    // RESET logs a client in as the default user only if it needs no password now.
    admin.same(&["CONFIG", "SET", "requirepass", "pw"]);
    early.same(&["RESET"]);
    early.same(&["PING"]);
    early.same(&["AUTH", "pw"]);
    early.same(&["PING"]);
    admin.same(&["CONFIG", "SET", "requirepass", ""]);
}

/// `raw` with the value after each `field` bulk string (a RESP2 bulk or a RESP3 double) and
/// after `client-info` replaced by `<...>`: they describe each server's own clock and client.
fn masked(raw: &[u8]) -> String {
    let text = text(raw);
    let mut out = String::new();
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push_str("\r\n");
        if line == "age-seconds" || line == "client-info" {
            let value = lines.next().unwrap_or("");
            if let Some(double) = value.strip_prefix(',') {
                assert!(double.parse::<f64>().is_ok(), "a double: {double}");
                out.push_str(",<...>\r\n");
            } else {
                // A bulk string: its length line, then its text.
                let body = lines.next().unwrap_or("");
                assert_eq!(value, format!("${}", body.len()));
                if line == "age-seconds" {
                    assert!(body.parse::<f64>().is_ok(), "seconds: {body}");
                }
                out.push_str("$<...>\r\n");
            }
        }
    }
    out
}

#[test]
fn acl_log_and_getuser_replies_have_redis_shapes_in_resp2_and_resp3() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut admin = Pair::new(&redis, &ours);
    admin.same(&["ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "&c"]);
    admin.same(&[
        "ACL",
        "SETUSER",
        "ro",
        "on",
        "nopass",
        "skip-sanitize-payload",
        "%R~*",
        "+get",
        "(~x +set)",
    ]);
    let mut app = Pair::new(&redis, &ours);
    app.same(&["AUTH", "app", "nope"]);
    app.same(&["AUTH", "app", "pw"]);
    app.same(&["GET", "other"]);
    app.same(&["SET", "app:1", "v"]);
    for protocol in ["2", "3"] {
        let (r, o) = admin.both(&["HELLO", protocol]);
        assert_eq!(r.first(), o.first(), "HELLO {protocol}");
        for user in ["app", "ro", "default"] {
            admin.same(&["ACL", "GETUSER", user]);
        }
        let (r, o) = admin.both(&["ACL", "LOG"]);
        assert_eq!(masked(&o), masked(&r), "ACL LOG in RESP{protocol}");
    }
}
