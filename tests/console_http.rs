//! The web console's server side over real TCP: the page's files (gzip, ETag and 304, security
//! headers, no password needed, 404 for anything else, off with `http-console no`), the stats
//! endpoint its charts poll, and the command line route that answers in the text dialect.

mod common;

use std::fs;

use common::http::{request, start_http, Response};
use common::{resp, resp_bytes};

const SECURITY: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
];

fn assert_secure(response: &Response) {
    for (name, value) in SECURITY {
        assert_eq!(response.header(name), Some(value), "{}", response.head);
    }
}

/// RFC 1952 by hand: the 10-byte header this server's build writes, deflate, CRC-32, length.
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(
        &bytes[..4],
        &[0x1f, 0x8b, 8, 0],
        "gzip header without name or extras"
    );
    let data = miniz_oxide::inflate::decompress_to_vec(&bytes[10..bytes.len() - 8])
        .expect("valid deflate data");
    let size = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
    assert_eq!(size as usize, data.len(), "ISIZE trailer");
    data
}

#[test]
fn page_files_are_served_compressed_with_security_headers() {
    let (_server, http) = start_http(&[]);
    let files = [
        ("/", "text/html; charset=utf-8", "index.html"),
        (
            "/console.js",
            "text/javascript; charset=utf-8",
            "console.js",
        ),
        ("/console.css", "text/css; charset=utf-8", "console.css"),
        ("/favicon.svg", "image/svg+xml", "favicon.svg"),
    ];
    for (path, content_type, file) in files {
        let response = request(http, "GET", path, &["Accept-Encoding: gzip, br"], b"");
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("Content-Type"), Some(content_type));
        assert_eq!(response.header("Content-Encoding"), Some("gzip"));
        assert_eq!(response.header("Cache-Control"), Some("no-cache"));
        assert_eq!(response.header("Vary"), Some("Accept-Encoding"));
        let length: usize = response.header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(length, response.body.len());
        assert_secure(&response);
        // Every line of the source is in what is served (build.rs only drops indentation,
        // blank lines and whole-line comments).
        let served = String::from_utf8(gunzip(&response.body)).expect("UTF-8 text");
        let source = fs::read_to_string(format!("console/{file}")).unwrap();
        let first = source
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("/*"))
            .unwrap();
        assert!(served.contains(first), "{path}: {first:?} not served");
        let etag = response.header("ETag").expect("an ETag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18);

        // HEAD: the same head, no body.
        let head = request(http, "HEAD", path, &[], b"");
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("Content-Length"),
            Some(length.to_string().as_str())
        );
        assert_eq!(head.header("ETag"), Some(etag.as_str()));
        assert!(head.body.is_empty());
    }
    // The page runs no inline script: only the file the policy allows.
    let page = String::from_utf8(gunzip(&request(http, "GET", "/", &[], b"").body)).unwrap();
    assert!(page.contains("<script src=\"/console.js\""), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    // No inline event handlers (`onclick=` and the like): the policy would block them anyway.
    let inline_handler = page.split(" on").skip(1).any(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(!inline_handler, "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "offline: {page}"
    );
}

#[test]
fn etag_revalidation_gives_304_without_body() {
    let (_server, http) = start_http(&[]);
    let first = request(http, "GET", "/", &[], b"");
    let etag = first.header("ETag").unwrap().to_string();
    for header in [
        format!("If-None-Match: {etag}"),
        format!("If-None-Match: \"other\", W/{etag}"),
        "If-None-Match: *".to_string(),
    ] {
        let again = request(http, "GET", "/", &[&header], b"");
        assert_eq!(again.status, 304, "{header}");
        assert_eq!(
            again.head,
            format!(
                "HTTP/1.1 304 Not Modified\r\nVary: Accept-Encoding\r\nETag: {etag}\r\n\
                 Cache-Control: no-cache\r\nContent-Security-Policy: {}\r\n\
                 X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
                 Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
                SECURITY[0].1
            )
        );
        assert!(again.body.is_empty());
    }
    let stale = request(
        http,
        "GET",
        "/",
        &["If-None-Match: \"0000000000000000\""],
        b"",
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
}

#[test]
fn refusals_for_page_files() {
    let (_server, http) = start_http(&[]);
    let identity = request(http, "GET", "/", &["Accept-Encoding: identity"], b"");
    assert_eq!(identity.status, 406);
    assert_eq!(
        identity.body,
        b"the console is served gzip-compressed only\n"
    );
    assert_secure(&identity);
    let refused = request(http, "GET", "/", &["Accept-Encoding: gzip;q=0"], b"");
    assert_eq!(refused.status, 406);

    let post = request(http, "POST", "/", &[], b"x");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));

    // Nothing else is a file: no disk lookups, no directory tricks, the same 404 as before.
    for path in [
        "/index.html",
        "/console.js/",
        "/console.js.gz",
        "/../Cargo.toml",
        "/console/console.js",
        "/favicon.ico",
        "//",
        "/%2e%2e/etc/passwd",
    ] {
        let response = request(http, "GET", path, &[], b"");
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.body, b"not found\n", "{path}");
    }
    // A query string does not change which file it is.
    assert_eq!(
        request(http, "GET", "/console.css?v=2", &[], b"").status,
        200
    );
}

#[test]
fn page_needs_no_password_but_its_data_does() {
    let (_server, http) = start_http(&["--requirepass", "s3cret"]);
    assert_eq!(request(http, "GET", "/", &[], b"").status, 200);
    assert_eq!(request(http, "GET", "/console.js", &[], b"").status, 200);
    for (method, path) in [("GET", "/v1/stats"), ("POST", "/v1/command")] {
        let refused = request(http, method, path, &[], b"DBSIZE");
        assert_eq!(refused.status, 401, "{path}");
        let wrong = request(
            http,
            method,
            path,
            &["Authorization: Bearer nope"],
            b"DBSIZE",
        );
        assert_eq!(wrong.status, 401, "{path}");
        let right = request(
            http,
            method,
            path,
            &["Authorization: Bearer s3cret"],
            b"DBSIZE",
        );
        assert_eq!(right.status, 200, "{path}");
        // user:password as Basic credentials: "default:s3cret".
        let basic = request(
            http,
            method,
            path,
            &["Authorization: Basic ZGVmYXVsdDpzM2NyZXQ="],
            b"DBSIZE",
        );
        assert_eq!(basic.status, 200, "{path}");
    }
}

#[test]
fn console_off_leaves_only_the_api() {
    let (server, http) = start_http(&["--http-console", "no"]);
    let response = request(http, "GET", "/", &[], b"");
    assert_eq!(response.status, 404);
    assert_eq!(response.body, b"not found\n");
    assert_eq!(request(http, "GET", "/console.js", &[], b"").status, 404);
    assert_eq!(request(http, "GET", "/v1/stats", &[], b"").status, 200);
    // And back on at run time.
    let mut c = server.connect();
    c.roundtrip(
        &resp(&["CONFIG", "GET", "http-console"]),
        b"*2\r\n$12\r\nhttp-console\r\n$2\r\nno\r\n",
    );
    c.roundtrip(&resp(&["CONFIG", "SET", "http-console", "yes"]), b"+OK\r\n");
    assert_eq!(request(http, "GET", "/", &[], b"").status, 200);
}

fn stats(http: std::net::SocketAddr) -> serde_json::Value {
    let response = request(http, "GET", "/v1/stats", &[], b"");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    assert_eq!(response.header("Cache-Control"), Some("no-store"));
    assert_secure(&response);
    serde_json::from_slice(&response.body).expect("stats are JSON")
}

#[test]
fn stats_report_what_info_reports() {
    let (server, http) = start_http(&[]);
    let mut c = server.connect();
    for key in ["a", "b", "c"] {
        c.roundtrip(&resp(&["SET", key, "value"]), b"+OK\r\n");
    }
    let before = stats(http);
    assert_eq!(before["keys"], 3);
    let bounds = before["latency_bounds_us"].as_array().unwrap();
    let latency = before["latency"].as_array().unwrap();
    assert_eq!(latency.len(), bounds.len() + 1);
    let timed: u64 = latency.iter().map(|n| n.as_u64().unwrap()).sum();
    assert!(timed >= 3, "the three SETs are timed: {before}");
    let clients = before["clients"].as_u64().unwrap();
    assert!(
        clients >= 2,
        "this RESP client and the HTTP request: {before}"
    );
    let used: u64 = c.info_field("memory", "used_memory").parse().unwrap();
    assert_eq!(before["used_memory"], used);

    for _ in 0..10 {
        c.roundtrip(&resp(&["GET", "a"]), b"$5\r\nvalue\r\n");
    }
    let after = stats(http);
    let ran = after["commands"].as_u64().unwrap() - before["commands"].as_u64().unwrap();
    assert!(ran >= 10, "{before} then {after}");
    assert!(after["uptime_ms"].as_u64() >= before["uptime_ms"].as_u64());
    for (method, body) in [("POST", &b"x"[..]), ("PUT", b"x"), ("DELETE", b"")] {
        assert_eq!(request(http, method, "/v1/stats", &[], body).status, 405);
    }
    assert_eq!(request(http, "GET", "/v1/stats?x=1", &[], b"").status, 400);
}

/// The command route answers exactly what the text dialect answers on the RESP port.
#[test]
fn command_route_answers_in_the_text_dialect() {
    let (server, http) = start_http(&[]);
    let mut c = server.connect();
    c.roundtrip(
        &resp_bytes(&[b"SET", b"bin", b"\xff\x00a\"b\n"]),
        b"+OK\r\n",
    );
    let lines: [&[u8]; 7] = [
        b"SET greeting \"hello world\"",
        b"GET greeting",
        b"GET bin",
        b"GET missing",
        b"INCR greeting",
        b"MGET greeting bin missing",
        b"SCAN 0 MATCH gr* COUNT 100",
    ];
    for line in lines {
        let shown = String::from_utf8_lossy(line);
        let response = request(http, "POST", "/v1/command", &[], line);
        assert_eq!(response.status, 200, "{shown}");
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        // The same line on the RESP port, as a text line: the reply is as long as the HTTP
        // body if it is the same (and the next comparison says whether it is).
        c.send(&[line, b"\r\n"].concat());
        let text_port = c.read_n(response.body.len());
        assert_eq!(
            String::from_utf8_lossy(&response.body),
            String::from_utf8_lossy(&text_port),
            "{shown}"
        );
        c.roundtrip(b"PING\r\n", b"PONG\n");
    }
    // An unknown command is refused before anything runs, with the error the text port prints.
    let unknown = request(http, "POST", "/v1/command", &[], b"nosuchcommand a b");
    assert_eq!(unknown.status, 400);
    c.send(b"nosuchcommand a b\r\n");
    let reason = unknown
        .body
        .strip_prefix(b"bad request: ")
        .expect("the reason");
    c.expect(&[&b"(error) "[..], reason].concat());
    for (line, why) in [
        (&b"GET \"open"[..], "bad request: unbalanced quotes in the command\n"),
        (b"  ", "bad request: the body must be a command\n"),
        (
            b"subscribe news",
            "bad request: SUBSCRIBE and PSUBSCRIBE cannot run here: follow a channel with GET /v1/subscribe/{channel}\n",
        ),
        (
            b"MULTI",
            "bad request: MULTI, EXEC, DISCARD, WATCH, UNWATCH, SAVE and SHUTDOWN cannot be in a transaction\n",
        ),
    ] {
        let response = request(http, "POST", "/v1/command", &[], line);
        assert_eq!(response.status, 400);
        assert_eq!(String::from_utf8_lossy(&response.body), why);
    }
    assert_eq!(request(http, "GET", "/v1/command", &[], b"").status, 405);
}

/// `POST /v1/tx` takes `{"base64": ...}` arguments, the form its replies use for bytes that are
/// not UTF-8, so a key the listing shows that way can be named again.
#[test]
fn transactions_take_base64_arguments() {
    let (server, http) = start_http(&[]);
    let body = br#"[["SET",{"base64":"/wA="},{"base64":"AAEC/w=="}],["GET",{"base64":"/wA="}],["STRLEN",{"base64":"/wA="}]]"#;
    let response = request(http, "POST", "/v1/tx", &[], body);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"[\"OK\",{\"base64\":\"AAEC/w==\"},4]\n");
    let mut c = server.connect();
    c.roundtrip(
        &resp_bytes(&[b"GET", b"\xff\x00"]),
        b"$4\r\n\x00\x01\x02\xff\r\n",
    );
}

/// The command line runs as the user signed in, under that user's rules.
#[test]
fn command_route_runs_as_the_acl_user() {
    let (server, http) = start_http(&[]);
    let mut c = server.connect();
    c.cmd(
        &[
            "ACL", "SETUSER", "viewer", "on", ">vpw", "~*", "+get", "+scan",
        ],
        b"+OK\r\n",
    );
    // viewer:vpw and viewer:bad as Basic credentials.
    let viewer = "Authorization: Basic dmlld2VyOnZwdw==";
    let set = request(http, "POST", "/v1/command", &[viewer], b"SET a b");
    assert_eq!(set.status, 200);
    assert_eq!(
        set.body,
        b"(error) NOPERM this user has no permissions to run the 'set' command\n"
    );
    let get = request(http, "POST", "/v1/command", &[viewer], b"GET a");
    assert_eq!(get.body, b"(nil)\n");
    let wrong = request(
        http,
        "POST",
        "/v1/command",
        &["Authorization: Basic dmlld2VyOmJhZA=="],
        b"GET a",
    );
    assert_eq!(wrong.status, 401);
}
