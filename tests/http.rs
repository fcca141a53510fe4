//! The HTTP listener (`--http-port`): REST routes, /healthz, /metrics, bearer authentication
//! and every error path, over real TCP with exact response bytes.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::{bulk, resp_bytes, Client, Server};

/// Reads one response: its head (status line and headers, CRLFs included) and its body.
fn read_response(c: &mut Client) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(c.read_n(1));
    }
    let head = String::from_utf8(head).expect("ASCII head");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.trim().parse().expect("length"));
    let body = c.read_n(length);
    (head, body)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn put(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn delete(path: &str) -> Vec<u8> {
    format!("DELETE {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// The exact bytes of a response with a body.
fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn text(status: &str, body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", body.as_bytes())
}

/// A text response after which the server closes.
fn closing(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

fn not_found() -> Vec<u8> {
    text("404 Not Found", "not found\n")
}

#[test]
fn http_is_off_by_default() {
    let server = Server::start(&[]);
    assert!(
        !server.log_lines.iter().any(|l| l.contains("HTTP on")),
        "{:?}",
        server.log_lines
    );
    let mut c = server.connect();
    c.cmd(
        &["CONFIG", "GET", "http-port"],
        &[&b"*2\r\n"[..], &bulk("http-port"), &bulk("off")].concat(),
    );
}

#[test]
fn put_get_delete_a_key() {
    let (server, http) = Server::start_http(&[]);
    let mut c = Client::connect(http);
    c.roundtrip(&put("/v1/keys/greeting", b"hello world"), NO_CONTENT);
    c.roundtrip(
        &get("/v1/keys/greeting"),
        &response("200 OK", "application/octet-stream", b"hello world"),
    );
    // The same key through RESP: one keyspace, one set of commands.
    let mut r = server.connect();
    r.cmd(&["GET", "greeting"], &bulk("hello world"));
    r.cmd(&["SET", "greeting", "changed"], b"+OK\r\n");
    c.roundtrip(
        &get("/v1/keys/greeting"),
        &response("200 OK", "application/octet-stream", b"changed"),
    );
    c.roundtrip(&delete("/v1/keys/greeting"), NO_CONTENT);
    c.roundtrip(&delete("/v1/keys/greeting"), &not_found());
    c.roundtrip(&get("/v1/keys/greeting"), &not_found());
    r.cmd(&["EXISTS", "greeting"], b":0\r\n");
    // Binary values and the empty value go through unchanged.
    let value: Vec<u8> = (0..=255).collect();
    c.roundtrip(&put("/v1/keys/bin", &value), NO_CONTENT);
    c.roundtrip(
        &get("/v1/keys/bin"),
        &response("200 OK", "application/octet-stream", &value),
    );
    c.roundtrip(&put("/v1/keys/empty", b""), NO_CONTENT);
    c.roundtrip(
        &get("/v1/keys/empty"),
        &response("200 OK", "application/octet-stream", b""),
    );
    // The requests ran as commands: counted as SET, GET and DEL.
    r.send(&resp_bytes(&[b"INFO", b"commandstats"]));
    let header = r.read_line();
    let len: usize = header[1..].trim_end().parse().unwrap();
    let info = String::from_utf8(r.read_n(len + 2)).unwrap();
    // HTTP: 3 PUTs, 5 GETs, 2 DELETEs; RESP: one GET, one SET.
    for (name, calls) in [("set", 4), ("get", 6), ("del", 2)] {
        assert!(
            info.contains(&format!("cmdstat_{name}:calls={calls},")),
            "{name} {calls}: {info}"
        );
    }
}

#[test]
fn keys_are_percent_decoded() {
    let (server, http) = Server::start_http(&[]);
    let mut c = Client::connect(http);
    let mut r = server.connect();
    c.roundtrip(&put("/v1/keys/a%20b%2Fc%00%FF", b"1"), NO_CONTENT);
    r.roundtrip(&resp_bytes(&[b"GET", b"a b/c\x00\xff"]), b"$1\r\n1\r\n");
    // A raw slash belongs to the key; '+' is a plus in a path.
    c.roundtrip(&put("/v1/keys/x/y+z", b"2"), NO_CONTENT);
    r.cmd(&["GET", "x/y+z"], &bulk("2"));
    c.roundtrip(
        &get("/v1/keys/a%20b%2fc%00%ff"),
        &response("200 OK", "application/octet-stream", b"1"),
    );
    for bad in ["/v1/keys/%zz", "/v1/keys/a%2", "/v1/keys/%"] {
        c.roundtrip(
            &get(bad),
            &text(
                "400 Bad Request",
                "bad request: invalid percent-encoding in the key\n",
            ),
        );
    }
    // The empty key is a key, as in Redis.
    c.roundtrip(&put("/v1/keys/", b"e"), NO_CONTENT);
    r.roundtrip(&resp_bytes(&[b"GET", b""]), &bulk("e"));
}

#[test]
fn list_keys_by_prefix_sorted_and_limited() {
    let (server, http) = Server::start_http(&[]);
    let mut r = server.connect();
    for key in ["user:3", "user:1", "user:2", "order:1", "user*x", "user"] {
        r.cmd(&["SET", key, "v"], b"+OK\r\n");
    }
    r.roundtrip(&resp_bytes(&[b"SET", b"user:\xff", b"v"]), b"+OK\r\n");
    r.roundtrip(&resp_bytes(&[b"SET", b"user:\"q\"\n", b"v"]), b"+OK\r\n");
    let mut c = Client::connect(http);
    let json = |body: &str| response("200 OK", "application/json", body.as_bytes());
    c.roundtrip(
        &get("/v1/keys?prefix=user%3A"),
        &json(
            "[\"user:\\\"q\\\"\\n\",\"user:1\",\"user:2\",\"user:3\",{\"base64\":\"dXNlcjr/\"}]\n",
        ),
    );
    c.roundtrip(
        &get("/v1/keys?prefix=user:&limit=2"),
        &json("[\"user:\\\"q\\\"\\n\",\"user:1\"]\n"),
    );
    // Glob characters in a prefix are literal.
    c.roundtrip(&get("/v1/keys?prefix=user*"), &json("[\"user*x\"]\n"));
    c.roundtrip(&get("/v1/keys?prefix=nothing"), &json("[]\n"));
    c.roundtrip(&get("/v1/keys?limit=0"), &json("[]\n"));
    c.roundtrip(
        &get("/v1/keys?limit=3"),
        &json("[\"order:1\",\"user\",\"user*x\"]\n"),
    );
    c.roundtrip(&get("/v1/keys?prefix=ord%65r"), &json("[\"order:1\"]\n"));
    for (query, why) in [
        ("limit=x", "limit must be a number from 0 to 1000000"),
        ("limit=-1", "limit must be a number from 0 to 1000000"),
        ("limit=1000001", "limit must be a number from 0 to 1000000"),
        ("prefix=%g", "invalid percent-encoding in prefix"),
        ("pattern=*", "unknown query parameter"),
    ] {
        c.roundtrip(
            &get(&format!("/v1/keys?{query}")),
            &text("400 Bad Request", &format!("bad request: {why}\n")),
        );
    }
}

#[test]
fn ttl_sets_a_time_to_live() {
    let (server, http) = Server::start_http(&[]);
    let mut c = Client::connect(http);
    for bad in ["0", "-1", "x", "", "1.5", "9999999999999999999"] {
        c.roundtrip(
            &put(&format!("/v1/keys/k?ttl={bad}"), b"v"),
            &text(
                "400 Bad Request",
                "bad request: ttl must be a positive number of seconds\n",
            ),
        );
    }
    c.roundtrip(
        &put("/v1/keys/k?other=1", b"v"),
        &text("400 Bad Request", "bad request: unknown query parameter\n"),
    );
    // A valid ttl becomes SET k v EX ttl: the key has that time to live, then is gone.
    c.roundtrip(&put("/v1/keys/k?ttl=100", b"v"), NO_CONTENT);
    let mut r = server.connect();
    r.cmd(&["TTL", "k"], b":100\r\n");
    c.roundtrip(&put("/v1/keys/short?ttl=1", b"v"), NO_CONTENT);
    // Still there, unless this thread stalled for the whole second since the PUT.
    c.send(&get("/v1/keys/short"));
    let (head, body) = read_response(&mut c);
    assert!(
        (head.starts_with("HTTP/1.1 200 ") && body == b"v") || head.starts_with("HTTP/1.1 404 "),
        "{head}"
    );
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        c.send(&get("/v1/keys/short"));
        let (head, _) = read_response(&mut c);
        if head.starts_with("HTTP/1.1 404 ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never expired");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        value(&scrape(http), "pocketkv_expired_keys_total", None),
        1.0
    );
    // A PUT without ttl replaces the time to live too, as SET does.
    c.roundtrip(&put("/v1/keys/k", b"w"), NO_CONTENT);
    r.cmd(&["TTL", "k"], b":-1\r\n");
}

#[test]
fn healthz_head_methods_and_unknown_paths() {
    let (_server, http) = Server::start_http(&[]);
    let mut c = Client::connect(http);
    c.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
    c.roundtrip(
        b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\n",
    );
    c.roundtrip(&put("/v1/keys/h", b"abc"), NO_CONTENT);
    c.roundtrip(
        b"HEAD /v1/keys/h HTTP/1.1\r\nHost: t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\n",
    );
    c.roundtrip(&get("/nope"), &not_found());
    c.roundtrip(&get("/v1/key"), &not_found());
    c.roundtrip(
        &get("/healthz?x=1"),
        &text("400 Bad Request", "bad request: unknown query parameter\n"),
    );
    let allow = |allow: &str| {
        format!(
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 19\r\nAllow: {allow}\r\n\r\nmethod not allowed\n"
        )
        .into_bytes()
    };
    c.roundtrip(
        b"POST /v1/keys/h HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        &allow("GET, HEAD, PUT, DELETE"),
    );
    c.roundtrip(&delete("/healthz"), &allow("GET, HEAD"));
    c.roundtrip(&put("/metrics", b""), &allow("GET, HEAD"));
    c.roundtrip(&delete("/v1/keys"), &allow("GET, HEAD"));
    // PUT without Content-Length cannot know its value.
    c.roundtrip(
        b"PUT /v1/keys/h HTTP/1.1\r\nHost: t\r\n\r\n",
        &text(
            "411 Length Required",
            "length required: send the value with a Content-Length\n",
        ),
    );
    // After all those, the connection is still fine.
    c.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
}

#[test]
fn broken_requests_get_a_4xx_and_the_connection_closed() {
    let (server, http) = Server::start_http(&[
        "--http-max-header-bytes",
        "256",
        "--proto-max-bulk-len",
        "10",
    ]);
    // A bystander in the middle of its own request, on each listener.
    let mut bystander = Client::connect(http);
    bystander.send(b"GET /healthz HTTP/1.1\r\n");
    let mut resp_client = server.connect();
    resp_client.cmd(&["SET", "k", "v"], b"+OK\r\n");
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), closing("400 Bad Request", "bad request: malformed request line\n")),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), closing("400 Bad Request", "bad request: HTTP/1.1 request without Host\n")),
        (b"GET / HTTP/1.1\r\nHost: t\r\nNo colon\r\n\r\n".to_vec(), closing("400 Bad Request", "bad request: header without ':'\n")),
        (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n".to_vec(), closing("505 HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are supported\n")),
        (b"PUT /v1/keys/k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(), closing("501 Not Implemented", "Transfer-Encoding is not supported\n")),
        (b"PUT /v1/keys/k HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx".to_vec(), closing("417 Expectation Failed", "only Expect: 100-continue is supported\n")),
        (put("/v1/keys/k", b"eleven byte"), closing("413 Content Too Large", "request body too large\n")),
        (format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(300)).into_bytes(), closing("431 Request Header Fields Too Large", "request head too large\n")),
        // No end of head ever comes: refused once it passes the bound, without waiting.
        (vec![b'A'; 1000], closing("431 Request Header Fields Too Large", "request head too large\n")),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n".to_vec(), closing("400 Bad Request", "bad request: invalid Content-Length\n")),
    ];
    for (request, expected) in cases {
        let mut c = Client::connect(http);
        c.roundtrip(&request, &expected);
        c.expect_closed();
    }
    // A good request before a broken one is answered; the broken one closes.
    let mut c = Client::connect(http);
    let mut both = get("/healthz");
    both.extend_from_slice(b"BROKEN\r\n\r\n");
    c.send(&both);
    c.expect(&text("200 OK", "ok\n"));
    c.expect(&closing(
        "400 Bad Request",
        "bad request: malformed request line\n",
    ));
    c.expect_closed();
    // Nobody else noticed.
    bystander.roundtrip(b"Host: t\r\n\r\n", &text("200 OK", "ok\n"));
    resp_client.cmd(&["GET", "k"], &bulk("v"));
    // A body of exactly the limit is fine.
    let mut c = Client::connect(http);
    c.roundtrip(&put("/v1/keys/ten", b"0123456789"), NO_CONTENT);
}

#[test]
fn expect_100_continue() {
    let (_server, http) = Server::start_http(&["--proto-max-bulk-len", "100"]);
    let mut c = Client::connect(http);
    c.roundtrip(
        b"PUT /v1/keys/big HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    );
    c.roundtrip(b"hello", NO_CONTENT);
    c.roundtrip(
        &get("/v1/keys/big"),
        &response("200 OK", "application/octet-stream", b"hello"),
    );
    // Too big: refused at once instead of a 100.
    c.roundtrip(
        b"PUT /v1/keys/big HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\nExpect: 100-continue\r\n\r\n",
        &closing("413 Content Too Large", "request body too large\n"),
    );
    c.expect_closed();
}

#[test]
fn keep_alive_pipelining_close_and_http_1_0() {
    let (_server, http) = Server::start_http(&[]);
    let mut c = Client::connect(http);
    // Three requests in one write, answered in order on the same connection.
    let mut pipeline = put("/v1/keys/p", b"1");
    pipeline.extend(get("/v1/keys/p"));
    pipeline.extend(delete("/v1/keys/p"));
    pipeline.extend(get("/v1/keys/p"));
    c.send(&pipeline);
    c.expect(NO_CONTENT);
    c.expect(&response("200 OK", "application/octet-stream", b"1"));
    c.expect(NO_CONTENT);
    c.expect(&not_found());
    // Split at every byte: the same answer.
    let request = put("/v1/keys/s", b"split");
    for byte in &request {
        c.send(&[*byte]);
    }
    c.expect(NO_CONTENT);
    // Connection: close is honoured.
    c.roundtrip(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        &closing("200 OK", "ok\n"),
    );
    c.expect_closed();
    // HTTP/1.0 closes by default, stays with keep-alive.
    let mut c = Client::connect(http);
    c.roundtrip(b"GET /healthz HTTP/1.0\r\n\r\n", &closing("200 OK", "ok\n"));
    c.expect_closed();
    let mut c = Client::connect(http);
    let kept =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
                 Connection: keep-alive\r\n\r\nok\n";
    c.roundtrip(
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        kept,
    );
    c.roundtrip(
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        kept,
    );
    // Blank lines between requests are skipped.
    c.roundtrip(
        b"\r\n\r\nGET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        kept,
    );
}

#[test]
fn bearer_token_when_a_password_is_set() {
    let (server, http) = Server::start_http(&["--requirepass", "s3cret"]);
    let mut c = Client::connect(http);
    let unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n\
                         Content-Length: 13\r\nWWW-Authenticate: Bearer realm=\"pocketkv\"\r\n\r\n\
                         unauthorized\n";
    c.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
    for path in ["/v1/keys/a", "/v1/keys", "/metrics", "/nope"] {
        c.roundtrip(&get(path), unauthorized);
    }
    let with = |auth: &str, request: &[u8]| {
        let text = String::from_utf8_lossy(request).into_owned();
        text.replacen(
            "Host: t\r\n",
            &format!("Host: t\r\nAuthorization: {auth}\r\n"),
            1,
        )
        .into_bytes()
    };
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "Bearer",
        "s3cret",
        "Bearer  s3cret",
    ] {
        c.roundtrip(&with(wrong, &get("/v1/keys/a")), unauthorized);
    }
    c.roundtrip(&with("Bearer s3cret", &put("/v1/keys/a", b"v")), NO_CONTENT);
    c.roundtrip(
        &with("bearer s3cret", &get("/v1/keys/a")),
        &response("200 OK", "application/octet-stream", b"v"),
    );
    // Nothing is remembered between requests.
    c.roundtrip(&get("/v1/keys/a"), unauthorized);
    // The password follows CONFIG SET at run time.
    let mut r = server.connect();
    r.cmd(&["AUTH", "s3cret"], b"+OK\r\n");
    r.cmd(&["CONFIG", "SET", "requirepass", "new"], b"+OK\r\n");
    c.roundtrip(&with("Bearer s3cret", &get("/v1/keys/a")), unauthorized);
    c.roundtrip(
        &with("Bearer new", &get("/v1/keys/a")),
        &response("200 OK", "application/octet-stream", b"v"),
    );
    r.cmd(&["CONFIG", "SET", "requirepass", ""], b"+OK\r\n");
    c.roundtrip(
        &get("/v1/keys/a"),
        &response("200 OK", "application/octet-stream", b"v"),
    );
}

#[test]
fn http_writes_are_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--http-port",
        "0",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save-interval",
        "0",
    ];
    {
        let mut server = Server::start_in(dir.path(), &flags);
        let line = server.wait_log("HTTP on ");
        let http: SocketAddr = line
            .split("HTTP on ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut c = Client::connect(http);
        c.roundtrip(&put("/v1/keys/durable", b"yes"), NO_CONTENT);
        c.roundtrip(&put("/v1/keys/gone", b"x"), NO_CONTENT);
        c.roundtrip(&delete("/v1/keys/gone"), NO_CONTENT);
        server.signal("KILL");
        server.wait_exit();
    }
    let server = Server::start_in(dir.path(), &flags);
    let mut r = server.connect();
    r.cmd(&["GET", "durable"], &bulk("yes"));
    r.cmd(&["EXISTS", "gone"], b":0\r\n");
}

#[test]
fn maxclients_refusal_in_http() {
    let (server, http) = Server::start_http(&["--maxclients", "1"]);
    let mut first = server.connect();
    first.cmd(&["PING"], b"+PONG\r\n");
    let mut c = Client::connect(http);
    c.expect(&closing(
        "503 Service Unavailable",
        "max number of clients reached\n",
    ));
    c.expect_closed();
}

// ---------------------------------------------------------------------------------------------
// /metrics, read by a small parser of Prometheus's text format (0.0.4).

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    help: HashMap<String, String>,
    kind: HashMap<String, String>,
    samples: Vec<Sample>,
}

/// Parses every line or fails: comments must be HELP or TYPE, samples `name{labels} value`.
fn parse_exposition(text: &str) -> Exposition {
    let mut exp = Exposition::default();
    assert!(text.ends_with('\n'), "ends with a newline");
    for line in text.lines() {
        assert!(!line.is_empty(), "no blank lines");
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').expect("# KEYWORD name ...");
            let (name, value) = rest.split_once(' ').expect("# KEYWORD name value");
            assert!(valid_name(name), "{line}");
            match keyword {
                "HELP" => assert!(
                    exp.help.insert(name.into(), value.into()).is_none(),
                    "one HELP per family: {line}"
                ),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&value),
                        "{line}"
                    );
                    assert!(
                        !exp.samples.iter().any(|s| family_of(&s.name, &exp) == name),
                        "TYPE before samples: {line}"
                    );
                    assert!(
                        exp.kind.insert(name.into(), value.into()).is_none(),
                        "one TYPE per family: {line}"
                    );
                }
                _ => panic!("unexpected comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let labels = body
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        assert!(valid_name(k) && !v.contains(['"', '\\', '\n']), "{line}");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(valid_name(name), "{line}");
        exp.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    for sample in &exp.samples {
        let family = family_of(&sample.name, &exp);
        assert!(exp.help.contains_key(&family), "HELP for {}", sample.name);
        assert!(exp.kind.contains_key(&family), "TYPE for {}", sample.name);
    }
    exp
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The family a sample belongs to: histograms' `_bucket`, `_sum` and `_count` belong to theirs.
fn family_of(name: &str, exp: &Exposition) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if exp.kind.get(base).map(String::as_str) == Some("histogram") {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

fn label<'a>(sample: &'a Sample, key: &str) -> Option<&'a str> {
    sample
        .labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn value(exp: &Exposition, name: &str, command: Option<&str>) -> f64 {
    exp.samples
        .iter()
        .find(|s| s.name == name && command.is_none_or(|c| label(s, "command") == Some(c)))
        .unwrap_or_else(|| panic!("no sample {name} {command:?}"))
        .value
}

/// `connected_clients` from INFO clients, asked through `r`.
fn connected(r: &mut Client) -> usize {
    r.send(&resp_bytes(&[b"INFO", b"clients"]));
    let header = r.read_line();
    let len: usize = header[1..].trim_end().parse().unwrap();
    let info = String::from_utf8(r.read_n(len + 2)).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.parse().ok())
        .expect("connected_clients")
}

fn scrape(http: SocketAddr) -> Exposition {
    let mut c = Client::connect(http);
    c.send(&get("/metrics"));
    let (head, body) = read_response(&mut c);
    assert!(
        head.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        ),
        "{head}"
    );
    parse_exposition(&String::from_utf8(body).expect("UTF-8 exposition"))
}

#[test]
fn metrics_parse_and_add_up() {
    let (server, http) = Server::start_http(&["--maxclients", "3"]);
    let mut r = server.connect();
    for i in 0..10 {
        r.cmd(&["SET", &format!("k{i}"), "value"], b"+OK\r\n");
    }
    r.cmd(&["GET", "k1"], &bulk("value"));
    r.cmd(&["GET", "missing"], b"$-1\r\n");
    r.cmd(
        &["INCR", "k1"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    r.cmd(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    let mut c = Client::connect(http);
    c.roundtrip(&get("/nope"), &not_found());
    let exp = scrape(http);

    assert_eq!(value(&exp, "pocketkv_keys", None), 10.0);
    assert_eq!(
        value(&exp, "pocketkv_command_calls_total", Some("set")),
        10.0
    );
    assert_eq!(
        value(&exp, "pocketkv_command_calls_total", Some("get")),
        2.0
    );
    assert_eq!(
        value(&exp, "pocketkv_command_rejected_calls_total", Some("get")),
        1.0
    );
    assert_eq!(
        value(&exp, "pocketkv_command_failed_calls_total", Some("incr")),
        1.0
    );
    // GET k1 and INCR k1 found it; GET missing did not.
    assert_eq!(value(&exp, "pocketkv_keyspace_hits_total", None), 2.0);
    assert_eq!(value(&exp, "pocketkv_keyspace_misses_total", None), 1.0);
    assert_eq!(value(&exp, "pocketkv_error_replies_total", None), 2.0);
    assert_eq!(value(&exp, "pocketkv_http_errors_total", None), 1.0);
    assert_eq!(value(&exp, "pocketkv_expired_keys_total", None), 0.0);
    assert_eq!(value(&exp, "pocketkv_evicted_keys_total", None), 0.0);
    assert!(value(&exp, "pocketkv_memory_used_bytes", None) > 0.0);
    assert!(value(&exp, "pocketkv_memory_rss_bytes", None) >= 0.0);
    assert_eq!(value(&exp, "pocketkv_snapshot_in_progress", None), 0.0);
    assert_eq!(value(&exp, "pocketkv_aof_enabled", None), 0.0);
    assert_eq!(exp.kind["pocketkv_connections_received_total"], "counter");
    assert_eq!(exp.kind["pocketkv_keys"], "gauge");
    // Clients now: r, c and the scraper.
    assert_eq!(value(&exp, "pocketkv_connected_clients", None), 3.0);
    // Once the scraper's close is seen, a third client fills the server and a fourth is
    // refused and counted.
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while connected(&mut r) != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "scraper's close never seen"
        );
    }
    let mut third = Client::connect(http);
    third.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
    let mut refused = server.connect();
    refused.expect(b"-ERR max number of clients reached\r\n");
    drop(third);
    while connected(&mut r) != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "third's close never seen"
        );
    }
    let exp = scrape(http);
    assert_eq!(
        value(&exp, "pocketkv_connections_rejected_total", None),
        1.0
    );
    assert!(value(&exp, "pocketkv_connections_received_total", None) >= 4.0);

    // Histograms: per command, cumulative buckets ending in +Inf equal to _count, a _sum.
    assert_eq!(exp.kind["pocketkv_command_duration_seconds"], "histogram");
    let mut commands: Vec<&str> = exp
        .samples
        .iter()
        .filter(|s| s.name == "pocketkv_command_duration_seconds_count")
        .map(|s| label(s, "command").expect("command label"))
        .collect();
    commands.sort();
    assert_eq!(commands, ["get", "incr", "info", "set"]);
    for command in commands {
        let buckets: Vec<&Sample> = exp
            .samples
            .iter()
            .filter(|s| {
                s.name == "pocketkv_command_duration_seconds_bucket"
                    && label(s, "command") == Some(command)
            })
            .collect();
        assert!(buckets.len() > 10);
        let mut previous_le = f64::NEG_INFINITY;
        let mut previous_count = 0.0;
        for bucket in &buckets {
            let le = match label(bucket, "le").expect("le") {
                "+Inf" => f64::INFINITY,
                le => le.parse().expect("le is a number"),
            };
            assert!(le > previous_le, "{command}: le increasing");
            assert!(bucket.value >= previous_count, "{command}: cumulative");
            previous_le = le;
            previous_count = bucket.value;
        }
        assert_eq!(label(buckets.last().unwrap(), "le"), Some("+Inf"));
        let count = value(
            &exp,
            "pocketkv_command_duration_seconds_count",
            Some(command),
        );
        assert_eq!(previous_count, count, "{command}: +Inf equals _count");
        let calls = value(&exp, "pocketkv_command_calls_total", Some(command));
        assert_eq!(count, calls, "{command}: one observation per call");
        let sum = value(&exp, "pocketkv_command_duration_seconds_sum", Some(command));
        assert!(sum > 0.0 && sum < count, "{command}: sum {sum} s");
    }
}

#[test]
fn protected_mode_answers_outside_http_clients_with_403() {
    let (_server, http) = Server::start_http(&["--bind", "0.0.0.0"]);
    // This machine's address on a non-loopback interface, if it has one.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    let outside = probe
        .connect("192.0.2.1:9")
        .ok()
        .and_then(|()| probe.local_addr().ok())
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let Some(ip) = outside else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let mut outsider = Client::connect(SocketAddr::new(ip, http.port()));
    let (head, body) = read_response(&mut outsider);
    assert!(
        head.starts_with("HTTP/1.1 403 Forbidden\r\n") && head.contains("Connection: close\r\n"),
        "{head}"
    );
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.starts_with("DENIED Redis is running in protected mode")
            && body.ends_with("outside.\n"),
        "{body}"
    );
    outsider.expect_closed();
    let mut local = Client::connect(http);
    local.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
}

#[test]
fn memory_limit_refuses_http_writes_with_507_and_evictions_are_counted() {
    let (server, http) = Server::start_http(&["--maxmemory", "1kb"]);
    let mut c = Client::connect(http);
    let big = vec![b'x'; 2048];
    c.roundtrip(&put("/v1/keys/a", &big), NO_CONTENT);
    c.roundtrip(
        &put("/v1/keys/b", b"v"),
        &text(
            "507 Insufficient Storage",
            "OOM command not allowed when used memory > 'maxmemory'.\n",
        ),
    );
    // Reads and deletes go on.
    c.roundtrip(
        &get("/v1/keys/a"),
        &response("200 OK", "application/octet-stream", &big),
    );
    c.roundtrip(&delete("/v1/keys/a"), NO_CONTENT);
    c.roundtrip(&put("/v1/keys/b", b"v"), NO_CONTENT);
    drop(server);

    let (_server, http) =
        Server::start_http(&["--maxmemory", "1kb", "--maxmemory-policy", "allkeys-random"]);
    let mut c = Client::connect(http);
    for i in 0..20 {
        c.roundtrip(&put(&format!("/v1/keys/k{i}"), &[b'y'; 200]), NO_CONTENT);
    }
    let exp = scrape(http);
    let evicted = value(&exp, "pocketkv_evicted_keys_total", None);
    let keys = value(&exp, "pocketkv_keys", None);
    assert!(
        evicted > 0.0 && evicted + keys == 20.0,
        "{evicted} evicted, {keys} left"
    );
}

#[test]
fn routes_of_renamed_or_disabled_commands_are_refused() {
    let (server, http) = Server::start_http(&[
        "--rename-command",
        "KEYS",
        "",
        "--rename-command",
        "DEL",
        "zap",
    ]);
    let mut c = Client::connect(http);
    c.roundtrip(
        &get("/v1/keys?prefix=a"),
        &text(
            "403 Forbidden",
            "the keys command is renamed or disabled on this server\n",
        ),
    );
    c.roundtrip(&put("/v1/keys/a", b"1"), NO_CONTENT);
    c.roundtrip(
        &delete("/v1/keys/a"),
        &text(
            "403 Forbidden",
            "the del command is renamed or disabled on this server\n",
        ),
    );
    let mut r = server.connect();
    r.cmd(&["ZAP", "a"], b":1\r\n");
}

#[test]
fn a_long_pipeline_of_big_responses_arrives_whole_and_in_order() {
    let (_server, http) = Server::start_http(&[]);
    let mut c = Client::connect(http);
    let values: Vec<Vec<u8>> = (0..4u8)
        .map(|i| vec![b'a' + i; 100 * 1024 + usize::from(i)])
        .collect();
    for (i, value) in values.iter().enumerate() {
        c.roundtrip(&put(&format!("/v1/keys/big{i}"), value), NO_CONTENT);
    }
    // 200 GETs in one write: far more response bytes than the loop buffers before it stops
    // reading, so the server must alternate between sending and parsing.
    let mut pipeline = Vec::new();
    for n in 0..200 {
        pipeline.extend(get(&format!("/v1/keys/big{}", n % 4)));
    }
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &pipeline))
    };
    for n in 0..200 {
        let (head, body) = read_response(&mut c);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{n}: {head}");
        assert!(body == values[n % 4], "response {n} has the wrong body");
    }
    writer.join().unwrap().unwrap();
    c.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
}

#[test]
fn idle_keep_alive_connections_follow_the_timeout() {
    let (_server, http) = Server::start_http(&["--timeout", "1"]);
    let mut c = Client::connect(http);
    // Taken before the request, so the server's last sight of the client is later: the close
    // comes a second after this at the earliest, however long the machine takes to answer. No
    // upper bound: expect_closed's read times out after DEADLINE if the close never comes.
    let idle = std::time::Instant::now();
    c.roundtrip(&get("/healthz"), &text("200 OK", "ok\n"));
    c.expect_closed();
    let waited = idle.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(1),
        "closed after {waited:?}"
    );
}
