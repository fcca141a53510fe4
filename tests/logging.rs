//! `--logfile`, `--audit-log` and SIGHUP reopening both, against the real binary.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{Server, DEADLINE};

/// Waits until the file at `path` holds a line containing `needle`; returns the file's text.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.contains(needle)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got a line with {needle:?}; it holds:\n{text}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_log_file_gets_the_log_lines_and_is_reopened_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pocketkv.log");
    let mut server = Server::start(&[
        "--logfile",
        log.to_str().unwrap(),
        "--requirepass",
        "hunter2",
    ]);
    let text = wait_for_line(&log, "listening on");
    assert!(
        text.contains(" INFO  pocketkv "),
        "same format as stderr: {text}"
    );
    let mut c = server.connect();
    c.cmd(
        &["AUTH", "wrong-guess"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.cmd(&["AUTH", "hunter2"], b"+OK\r\n");
    // Rotation: move the file away, then SIGHUP; new lines go to a new file of the old name.
    let rotated = dir.path().join("pocketkv.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    server.signal("HUP");
    server.wait_log("SIGHUP: log files reopened");
    let fresh = wait_for_line(&log, "SIGHUP: log files reopened");
    assert!(!fresh.contains("listening on"));
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("reopened"));
    // The server goes on, and no file ever saw the password or the wrong guess.
    c.cmd(&["PING"], b"+PONG\r\n");
    server.signal("TERM");
    server.wait_exit();
    for path in [&log, &rotated] {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("wrong-guess"),
            "{text}"
        );
    }
}

#[test]
fn the_audit_log_has_one_line_per_write_and_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let mut server = Server::start(&[
        "--audit-log",
        audit.to_str().unwrap(),
        "--requirepass",
        "pw",
    ]);
    let mut c = server.connect();
    let me = c.stream.local_addr().unwrap().to_string();
    c.cmd(&["AUTH", "pw"], b"+OK\r\n");
    c.cmd(&["SET", "user:1", "top-secret-value"], b"+OK\r\n");
    c.cmd(&["GET", "user:1"], b"$16\r\ntop-secret-value\r\n");
    c.cmd(&["MSET", "a b", "v1", "c", "v2"], b"+OK\r\n");
    c.cmd(
        &["INCR", "user:1"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    c.cmd(&["CONFIG", "SET", "requirepass", "pw2"], b"+OK\r\n");
    c.cmd(&["FLUSHALL"], b"+OK\r\n");
    c.roundtrip(b"DEL gone\n", b"(integer) 0\n");
    let text = wait_for_line(&audit, " del ");
    let lines: Vec<&str> = text.lines().collect();
    let tails: Vec<String> = lines
        .iter()
        .map(|line| {
            let (time, rest) = line.split_once(' ').expect("time first");
            let ms: u128 = time.parse().expect("unix milliseconds");
            assert!(ms > 1_700_000_000_000, "{line}");
            let rest = rest
                .strip_prefix(&format!("{me} "))
                .expect("client address");
            rest.to_string()
        })
        .collect();
    assert_eq!(
        tails,
        [
            "set user:1 ok",
            "mset \"a b\" ok",
            "incr user:1 err",
            "flushall - ok",
            "del gone ok"
        ]
    );
    for secret in ["top-secret-value", "v1", "pw2", "auth", "config"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
    // Rotation.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    server.signal("HUP");
    server.wait_log("SIGHUP: log files reopened");
    c.cmd(&["AUTH", "pw2"], b"+OK\r\n");
    c.cmd(&["SET", "after", "x"], b"+OK\r\n");
    let fresh = wait_for_line(&audit, "set after ok");
    assert_eq!(fresh.lines().count(), 1, "{fresh}");
    assert!(!std::fs::read_to_string(&rotated).unwrap().contains("after"));
    c.send(&common::resp(&["INFO", "stats"]));
    let header = c.read_line();
    let len: usize = header[1..].trim_end().parse().unwrap();
    let info = String::from_utf8(c.read_n(len + 2)).unwrap();
    assert!(info.contains("audit_log_dropped_lines:0\r\n"), "{info}");
}

#[test]
fn an_unwritable_audit_log_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::spawn(dir.path(), &["--audit-log", "/nonexistent-dir/audit.log"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("cannot open audit log /nonexistent-dir/audit.log"),
        "{err}"
    );
}
