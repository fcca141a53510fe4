//! Log lines (ISO-8601 UTC time, level, message), `loglevel` by Redis's names, `--logfile`,
//! `--audit-log` and SIGHUP reopening both, against the real binary.

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
    let listening = server.wait_log("listening on");
    assert!(
        text.lines().any(|line| line == listening),
        "the same line as stderr: {listening:?} in {text}"
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

/// Checks `line` is `YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL message`: the time's shape digit by digit,
/// then one of the levels, then text.
fn assert_log_line(line: &str) {
    let (time, rest) = line.split_at_checked(24).unwrap_or((line, ""));
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    let fits = time.len() == shape.len()
        && time.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        });
    assert!(fits, "not an ISO-8601 UTC time with milliseconds: {line:?}");
    let level = rest.trim_start().split(' ').next().unwrap_or("");
    assert!(
        rest.starts_with(' ') && ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
        "no level after the time: {line:?}"
    );
    assert!(rest.len() > level.len() + 2, "no message: {line:?}");
}

/// The date part of `now` as `date -u +%F` would print it, from the system clock.
fn today_utc() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn log_lines_carry_an_iso_8601_utc_time_with_milliseconds_and_the_level() {
    let before = today_utc();
    let mut server = Server::start(&[]);
    let line = server.wait_log("listening on");
    let after = today_utc();
    assert_log_line(&line);
    // Today's date (or yesterday's, when the test ran across midnight UTC).
    assert!(
        line.starts_with(&before) || line.starts_with(&after),
        "{line:?} is not dated {before} or {after}"
    );
    assert!(line[24..].starts_with(" INFO  pocketkv "), "{line:?}");
    server.signal("TERM");
    server.wait_exit();
    assert!(!server.log_lines.is_empty());
    for line in &server.log_lines {
        assert_log_line(line);
    }
}

/// A server started with `args` and without RUST_LOG, so that `loglevel` decides.
fn start_without_rust_log(args: &[&str]) -> Server {
    let tempdir = tempfile::tempdir().unwrap();
    let mut all = vec!["--port", "0", "--dir", tempdir.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let mut command = common::server_command();
    command.args(&all).env_remove("RUST_LOG");
    Server::start_command(command, tempdir)
}

#[test]
fn loglevel_takes_redis_names_and_config_set_changes_what_is_logged() {
    // At verbose, a client connecting is logged (at warning the start-up line would be missing,
    // and with it the port).
    let mut server = start_without_rust_log(&["--loglevel", "verbose"]);
    let mut c = server.connect();
    let first = c.stream.local_addr().unwrap().to_string();
    let line = server.wait_log(&format!("client {first} connected"));
    assert_log_line(&line);
    assert!(line[24..].starts_with(" DEBUG "), "{line:?}");
    c.cmd(
        &["CONFIG", "GET", "loglevel"],
        b"*2\r\n$8\r\nloglevel\r\n$7\r\nverbose\r\n",
    );
    // At warning it is not. The loop writes its lines in order, so once a later client's line is
    // there, the quiet one's would have been before it.
    c.cmd(&["CONFIG", "SET", "loglevel", "WARNING"], b"+OK\r\n");
    let mut quiet = server.connect();
    let quiet_addr = quiet.stream.local_addr().unwrap().to_string();
    quiet.cmd(&["PING"], b"+PONG\r\n");
    c.cmd(&["CONFIG", "SET", "loglevel", "verbose"], b"+OK\r\n");
    let loud = server.connect();
    let loud_addr = loud.stream.local_addr().unwrap().to_string();
    server.wait_log(&format!("client {loud_addr} connected"));
    assert!(
        !server.log_lines.iter().any(|l| l.contains(&quiet_addr)),
        "logged at warning: {:?}",
        server.log_lines
    );
    for (name, shown) in [
        ("debug", "debug"),
        ("notice", "notice"),
        ("Warning", "warning"),
    ] {
        c.cmd(&["CONFIG", "SET", "loglevel", name], b"+OK\r\n");
        let expected = format!("*2\r\n$8\r\nloglevel\r\n${}\r\n{shown}\r\n", shown.len());
        c.cmd(&["CONFIG", "GET", "loglevel"], expected.as_bytes());
    }
    c.cmd(
        &["CONFIG", "SET", "loglevel", "loud"],
        b"-ERR CONFIG SET failed (possibly related to argument 'loglevel') - argument must be \
          one of debug, verbose, notice, warning\r\n",
    );
}

#[test]
fn rust_log_wins_over_loglevel_at_start() {
    // Server::start sets RUST_LOG=info, as every test does.
    let server = Server::start(&["--loglevel", "warning"]);
    server.connect().cmd(
        &["CONFIG", "GET", "loglevel"],
        b"*2\r\n$8\r\nloglevel\r\n$6\r\nnotice\r\n",
    );
}

#[test]
fn a_bad_loglevel_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::spawn(dir.path(), &["--loglevel", "chatty"]);
    assert_eq!(child.wait().unwrap().code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(
            "invalid value 'chatty' for --loglevel: expected one of debug, verbose, notice, warning"
        ),
        "{err}"
    );
}
