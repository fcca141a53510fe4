//! Start-up against the real binary: `--help`, bad flags and values, the environment, a port in
//! use, an unusable data directory, the start-up log line, and `--maxclients`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{resp, Client, Server};

const BIN: &str = env!("CARGO_BIN_EXE_pocketkv");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The binary with exactly `args` and `env` (nothing inherited), run in `cwd`.
fn command(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs until exit (within the deadline) and returns the output.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    wait_output(command(cwd, args, env).spawn().expect("start pocketkv"))
}

/// Waits (within the deadline) for `child` to exit; returns its output.
fn wait_output(mut child: Child) -> Output {
    let deadline = Instant::now() + common::DEADLINE;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "pocketkv did not exit; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// Asserts the run failed with `code` and printed exactly one line, to stderr; returns it.
fn one_line_failure(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(output.stdout.is_empty(), "stdout: {:?}", output.stdout);
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.ends_with('\n'));
    stderr.trim_end().to_string()
}

/// A server started with our own command line and environment; killed on drop.
struct Started {
    child: Child,
    line: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and waits for its start-up line.
fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Started {
    let mut child = command(cwd, args, env).spawn().expect("start pocketkv");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + common::DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("listening on ") => return Started { child, line },
            Ok(line) => seen.push(line),
            Err(_) => panic!("no start-up line; stderr so far: {seen:?}"),
        }
    }
}

/// The `ip:port` the start-up line names.
fn address_in(line: &str) -> std::net::SocketAddr {
    line.split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

#[test]
fn help_lists_every_flag_with_its_default_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--help", "-h"] {
        let output = run(dir.path(), &[flag], &[]);
        assert_eq!(output.status.code(), Some(0));
        assert!(output.stderr.is_empty());
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.starts_with(&format!("pocketkv {VERSION}")), "{help}");
        let lines: Vec<&str> = help.lines().collect();
        for (name, default, var) in [
            ("port", "12345", "POCKETKV_PORT"),
            ("bind", "127.0.0.1", "POCKETKV_BIND"),
            ("dir", ".", "POCKETKV_DIR"),
            ("dbfilename", "data.json", "POCKETKV_DBFILENAME"),
            ("save-interval", "60", "POCKETKV_SAVE_INTERVAL"),
            ("loglevel", "notice", "POCKETKV_LOGLEVEL"),
            ("maxclients", "10000", "POCKETKV_MAXCLIENTS"),
            (
                "proto-max-bulk-len",
                "536870912",
                "POCKETKV_PROTO_MAX_BULK_LEN",
            ),
            (
                "client-query-buffer-limit",
                "1073741824",
                "POCKETKV_CLIENT_QUERY_BUFFER_LIMIT",
            ),
        ] {
            // The flag starts an entry; its default and variable follow on that line or the next.
            let at = lines
                .iter()
                .position(|l| l.split_whitespace().next() == Some(&format!("--{name}")))
                .unwrap_or_else(|| panic!("--{name} missing from --help:\n{help}"));
            let entry = lines[at..(at + 2).min(lines.len())].join(" ");
            assert!(
                entry.contains(&format!("default {default},")),
                "--{name}: {entry}"
            );
            assert!(entry.contains(&format!("env {var}")), "--{name}: {entry}");
        }
        for extra in ["--help", "--version"] {
            assert!(
                lines.iter().any(|l| l.trim_start().starts_with(extra)),
                "{extra} missing:\n{help}"
            );
        }
    }
    let output = run(dir.path(), &["--version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("pocketkv {VERSION}\n")
    );
    // Nothing was written where it ran.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_flags_and_values_exit_2_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--nope", "1"],
            "pocketkv: unknown flag '--nope' (pocketkv --help lists them)",
        ),
        (
            &["--port", "0", "-x"],
            "pocketkv: unknown flag '-x' (pocketkv --help lists them)",
        ),
        (
            &["--port", "http"],
            "pocketkv: invalid value 'http' for --port: expected a port 0-65535",
        ),
        (
            &["--port=70000"],
            "pocketkv: invalid value '70000' for --port: expected a port 0-65535",
        ),
        (
            &["--port", "-1"],
            "pocketkv: invalid value '-1' for --port: expected a port 0-65535",
        ),
        (&["--dir"], "pocketkv: flag '--dir' needs a value"),
        (
            &["--bind", "localhost:80"],
            "pocketkv: invalid value 'localhost:80' for --bind: expected an IP address",
        ),
        (
            &["--save-interval", "1m"],
            "pocketkv: invalid value '1m' for --save-interval: expected a number of seconds",
        ),
        (
            &["--loglevel", "loud"],
            "pocketkv: invalid value 'loud' for --loglevel: expected one of debug, verbose, notice, warning",
        ),
        (
            &["--dbfilename", "a/b.json"],
            "pocketkv: invalid value 'a/b.json' for --dbfilename: expected a file name without '/'",
        ),
        (
            &["--maxclients", "many"],
            "pocketkv: invalid value 'many' for --maxclients: expected a positive number",
        ),
    ];
    for (args, message) in cases {
        let output = run(dir.path(), args, &[]);
        assert_eq!(one_line_failure(&output, 2), *message, "{args:?}");
    }
    // A bad environment value names the variable.
    let output = run(dir.path(), &[], &[("POCKETKV_PORT", "http")]);
    assert_eq!(
        one_line_failure(&output, 2),
        "pocketkv: invalid value 'http' for POCKETKV_PORT: expected a port 0-65535"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_environment_is_read_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // A port we hold, so using it must fail: proof of which setting was taken.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let output = run(
        dir.path(),
        &[],
        &[("POCKETKV_PORT", &port), ("POCKETKV_DIR", data)],
    );
    let line = one_line_failure(&output, 1);
    assert!(
        line.starts_with(&format!("pocketkv: cannot listen on 127.0.0.1:{port}")),
        "{line}"
    );
    // The flag beats the variable.
    let server = start(
        dir.path(),
        &["--port", "0"],
        &[("POCKETKV_PORT", &port), ("POCKETKV_DIR", data)],
    );
    let addr = address_in(&server.line);
    assert_ne!(addr.port().to_string(), port);
    Client::connect(addr).cmd(&["PING"], b"+PONG\r\n");
    drop(server);
    // Variables alone configure the server: port, file name, limits.
    let server = start(
        dir.path(),
        &[],
        &[
            ("POCKETKV_PORT", "0"),
            ("POCKETKV_DIR", data),
            ("POCKETKV_DBFILENAME", "from-env.json"),
            ("POCKETKV_MAXCLIENTS", "7"),
            ("POCKETKV_SAVE_INTERVAL", "0"),
        ],
    );
    assert!(
        server
            .line
            .contains(&format!("data file {data}/from-env.json")),
        "{}",
        server.line
    );
    let mut client = Client::connect(address_in(&server.line));
    client.cmd(
        &["CONFIG", "GET", "maxclients"],
        b"*2\r\n$10\r\nmaxclients\r\n$1\r\n7\r\n",
    );
    client.cmd(
        &["CONFIG", "GET", "save"],
        b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
    );
}

#[test]
fn a_port_in_use_exits_1_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let output = wait_output(common::spawn(dir.path(), &["--port", &port]));
    let line = one_line_failure(&output, 1);
    assert!(
        line.starts_with(&format!("pocketkv: cannot listen on 127.0.0.1:{port}: ")),
        "{line}"
    );
    assert!(line.contains("in use"), "{line}");
    // The holder is unaffected.
    assert_eq!(held.local_addr().unwrap().port().to_string(), port);
}

#[test]
fn an_unusable_data_directory_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the directory should be (root ignores permissions, not file types).
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"keep me").unwrap();
    let missing = dir.path().join("missing").join("deeper");
    for (path, why) in [
        (&file, "Not a directory"),
        (&missing, "No such file or directory"),
    ] {
        let output = run(
            dir.path(),
            &["--port", "0", "--dir", path.to_str().unwrap()],
            &[],
        );
        let line = one_line_failure(&output, 1);
        assert_eq!(
            line,
            format!(
                "pocketkv: data directory {} is not writable: {why} (os error {})",
                path.display(),
                if why == "Not a directory" { 20 } else { 2 }
            )
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert!(!dir.path().join("missing").exists());
    // A snapshot path that is a directory cannot be read: also exit 1, naming it.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("data.json")).unwrap();
    let output = run(
        dir.path(),
        &["--port", "0", "--dir", data.to_str().unwrap()],
        &[],
    );
    let line = one_line_failure(&output, 1);
    assert!(
        line.contains(&data.join("data.json").display().to_string()),
        "{line}"
    );
}

/// Parses `... N keys loaded in F ms, ...` from the start-up line.
fn keys_and_time(line: &str) -> (usize, f64) {
    let (before, after) = line.split_once(" keys loaded in ").expect("keys loaded");
    let keys = before
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect("key count");
    let ms = after
        .split_once(" ms")
        .expect("ms")
        .0
        .parse()
        .expect("load time");
    (keys, ms)
}

#[test]
fn the_start_up_line_names_version_address_file_keys_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
    let line = server.wait_log("listening on");
    assert!(
        line.contains(&format!(
            "INFO  pocketkv {VERSION} listening on {}, data file {} (not found, starting empty), ",
            server.addr,
            file.display()
        )),
        "{line}"
    );
    let (keys, ms) = keys_and_time(&line);
    assert_eq!(keys, 0);
    assert!((0.0..10_000.0).contains(&ms), "{line}");
    // The address in the line is the one that answers.
    let mut client = server.connect();
    for i in 0..3 {
        client.cmd(&["SET", &format!("k{i}"), "v"], b"+OK\r\n");
    }
    server.signal("TERM");
    assert!(server.wait_exit().success());

    let mut again = Server::start_in(dir.path(), &[]);
    let line = again.wait_log("listening on");
    assert!(
        line.contains(&format!(
            "pocketkv {VERSION} listening on {}, data file {} (loaded), 3 keys loaded in ",
            again.addr,
            file.display()
        )),
        "{line}"
    );
    assert_eq!(keys_and_time(&line).0, 3);
}

#[test]
fn sigint_stops_cleanly_like_sigterm() {
    let mut server = Server::start(&["--save-interval", "0"]);
    server.connect().cmd(&["SET", "k", "v"], b"+OK\r\n");
    server.signal("INT");
    assert!(server.wait_exit().success());
    server.wait_log("SIGINT");
    server.wait_log("final snapshot saved");
}

/// Reads one CRLF-terminated line, or `None` when the connection ends first.
fn read_line(client: &mut Client) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        match client.stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
    Some(line)
}

#[test]
fn maxclients_refuses_the_extra_connection_with_an_error() {
    let server = Server::start(&["--maxclients", "2"]);
    let mut first = server.connect();
    let mut second = server.connect();
    first.cmd(&["PING"], b"+PONG\r\n");
    second.cmd(&["PING"], b"+PONG\r\n");
    let mut third = server.connect();
    third.expect(b"-ERR max number of clients reached\r\n");
    third.expect_closed();
    // The two admitted clients are unaffected.
    first.cmd(&["SET", "k", "v"], b"+OK\r\n");
    second.cmd(&["GET", "k"], b"$1\r\nv\r\n");
    // Once one leaves, a newcomer gets in (the server notices the close asynchronously).
    drop(first);
    let deadline = Instant::now() + common::DEADLINE;
    let mut newcomer = loop {
        let mut client = server.connect();
        client.send(&resp(&["PING"]));
        match read_line(&mut client).as_deref() {
            Some(b"+PONG\r\n") => break client,
            Some(b"-ERR max number of clients reached\r\n") | None => {}
            Some(other) => panic!("unexpected {:?}", String::from_utf8_lossy(other)),
        }
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        std::thread::yield_now();
    };
    newcomer.cmd(&["GET", "k"], b"$1\r\nv\r\n");
    newcomer.send(&resp(&["INFO", "stats"]));
    let header = read_line(&mut newcomer).unwrap();
    let len: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let info = String::from_utf8(newcomer.read_n(len + 2)).unwrap();
    let rejected = info
        .lines()
        .find_map(|l| l.strip_prefix("rejected_connections:"))
        .expect("rejected_connections in INFO stats");
    assert!(rejected.parse::<u64>().unwrap() >= 1, "{info}");
}

#[test]
fn maxclients_zero_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &[
            "--port",
            "0",
            "--dir",
            dir.path().to_str().unwrap(),
            "--maxclients",
            "0",
        ],
        &[],
    );
    assert_eq!(
        one_line_failure(&output, 2),
        "pocketkv: invalid value '0' for --maxclients: expected a positive number"
    );
}
