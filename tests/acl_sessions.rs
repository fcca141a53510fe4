//! Who stays logged in when passwords change, and the exact shapes of ACL LOG and ACL GETUSER
//! replies in RESP2 and RESP3: each step sent to a real redis-server 7.0 and to pocketkv, the
//! replies compared byte for byte.

mod common;

use common::redis::{text, Pair, Redis, Replies};
use common::{http_request, resp, Server};

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

/// The newest ACL LOG entry's fields up to its age (age and client-info are each server's own).
fn newest_entry(
    conn: &mut Replies<impl std::io::Read + std::io::Write + common::redis::Deadline>,
) -> String {
    let raw = text(&conn.call(&resp(&["ACL", "LOG", "1"])));
    raw[..raw.find("age-seconds").expect("an entry")].to_string()
}

#[test]
fn http_logins_and_metrics_are_checked_and_logged_as_auth_and_info_are() {
    let redis = Redis::start(&[]);
    let (ours, http) = Server::start_http(&[]);
    let mut admin = Pair::new(&redis, &ours);
    admin.same(&["ACL", "SETUSER", "dash", "on", ">dashpw", "~*", "+@read"]);
    // A wrong password: Redis's entry for AUTH dash nope, pocketkv's for Basic dash:nope.
    let mut tries = Pair::new(&redis, &ours);
    tries.redis.call(&resp(&["AUTH", "dash", "nope"]));
    let (status, _) = http_request(http, "GET", "/v1/keys/k", Some("Basic ZGFzaDpub3Bl"));
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        newest_entry(&mut admin.ours),
        newest_entry(&mut admin.redis)
    );
    // No credentials at all is no login attempt: nothing new is logged.
    let before = newest_entry(&mut admin.ours);
    admin.same(&["ACL", "SETUSER", "default", ">adminpw"]);
    let (status, _) = http_request(http, "GET", "/v1/keys/k", None);
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert_eq!(newest_entry(&mut admin.ours), before);
    // A wrong bearer password is a failed login of the default user.
    tries.redis.call(&resp(&["AUTH", "default", "nope"]));
    let (status, _) = http_request(http, "GET", "/metrics", Some("Bearer nope"));
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        newest_entry(&mut admin.ours),
        newest_entry(&mut admin.redis)
    );
    admin.same(&["ACL", "SETUSER", "default", "nopass"]);

    // /metrics shows what INFO shows: a user that may not run INFO is refused, as INFO is.
    let mut dash = Pair::new(&redis, &ours);
    dash.same(&["AUTH", "dash", "dashpw"]);
    let refusal = dash.same(&["INFO"]);
    let (status, body) = http_request(http, "GET", "/metrics", Some("Basic ZGFzaDpkYXNocHc="));
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    let refusal = text(&refusal);
    assert_eq!(format!("-{}", text(&body)), refusal.replace("\r\n", "\n"));
    // Counted in the same entry as a refused INFO: Redis's, after a second INFO.
    dash.redis.call(&resp(&["INFO"]));
    assert_eq!(
        newest_entry(&mut admin.ours),
        newest_entry(&mut admin.redis)
    );
    admin.same(&["ACL", "SETUSER", "dash", "+info"]);
    let (status, body) = http_request(http, "GET", "/metrics", Some("Basic ZGFzaDpkYXNocHc="));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(text(&body).contains("pocketkv_uptime_seconds"));
    let (status, _) = http_request(http, "GET", "/metrics", None);
    assert_eq!(
        status, "HTTP/1.1 200 OK",
        "the default user may run anything"
    );
}
