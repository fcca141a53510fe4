//! Test harness: starts the real `pocketkv` binary on a free port in a fresh directory and talks
//! to it over TCP. Readiness and log events are awaited with deadlines, never with fixed sleeps.

#![allow(dead_code)]

pub mod frames;
pub mod http;
pub mod python;
pub mod redis;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything in a test may take before it counts as a hang: generous, for a busy
/// 2-core machine running a debug build or a binary under qemu-user (some 20x slower).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running server process.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    log: mpsc::Receiver<String>,
    pub log_lines: Vec<String>,
}

impl Server {
    /// Starts a server in a new temporary directory with extra flags.
    pub fn start(args: &[&str]) -> Server {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path().to_path_buf();
        let mut server = Server::start_in(&dir, args);
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts a server whose data directory is `dir` (kept by the caller across restarts).
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        Server::attach(spawn(dir, args), dir)
    }

    /// Starts a server reading the config file `config` (the first argument), in a new
    /// temporary directory; `--port 0` and `--dir` follow it, then `args`.
    pub fn start_with_config(config: &Path, args: &[&str]) -> Server {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path().to_path_buf();
        let mut all = vec![config.to_str().expect("utf-8 path")];
        all.extend_from_slice(&["--port", "0", "--dir", dir.to_str().expect("utf-8 dir")]);
        all.extend_from_slice(args);
        let child = server_command()
            .args(&all)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pocketkv");
        let mut server = Server::attach(child, &dir);
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts `command` (from `server_command`, with its flags, `--port 0` among them) with its
    /// output piped; the server keeps `tempdir` alive.
    pub fn start_command(mut command: Command, tempdir: tempfile::TempDir) -> Server {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pocketkv");
        let mut server = Server::attach(child, tempdir.path());
        server._tempdir = Some(tempdir);
        server
    }

    /// Follows a started child's log until it names its address.
    fn attach(mut child: Child, dir: &Path) -> Server {
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir: dir.to_path_buf(),
            _tempdir: None,
            log,
            log_lines: Vec::new(),
        };
        let line = server.wait_log("listening on ");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .expect("address in start-up line");
        server.addr = addr.parse().expect("socket address");
        server
    }

    /// Waits until a log line containing `needle` appears; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.log_lines.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.log_lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line containing {needle:?} within {DEADLINE:?}; log so far:\n{}",
                    self.log_lines.join("\n")
                ),
            }
        }
    }

    /// A new client connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends a signal by name (TERM, INT, KILL).
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect the remaining log for assertions.
                while let Ok(line) = self.log.recv_timeout(Duration::from_millis(200)) {
                    self.log_lines.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Path of the snapshot file under the default name.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join("data.json")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary under test: `POCKETKV_BIN` when set (a cross-built binary, say), else the
/// one cargo built for these tests.
pub fn server_binary() -> PathBuf {
    match std::env::var_os("POCKETKV_BIN").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_pocketkv")),
    }
}

/// The program that runs the binary when it cannot run by itself: `POCKETKV_RUNNER` (for example
/// `qemu-aarch64-static`), or None.
pub fn runner() -> Option<std::ffi::OsString> {
    std::env::var_os("POCKETKV_RUNNER").filter(|v| !v.is_empty())
}

/// A command that starts the server binary: the runner with the binary as its first argument
/// when `POCKETKV_RUNNER` is set. Under a runner the child's PID is the runner's (qemu-user runs
/// the guest in its own process, forwards signals to it and exits with its status).
pub fn server_command() -> Command {
    match runner() {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.arg(server_binary());
            command
        }
        None => Command::new(server_binary()),
    }
}

/// Starts the binary with `args` in `dir` with stderr piped (for tests of start-up failures).
pub fn spawn(dir: &Path, args: &[&str]) -> Child {
    let mut all = vec!["--port", "0", "--dir", dir.to_str().expect("utf-8 dir")];
    all.extend_from_slice(args);
    server_command()
        .args(&all)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pocketkv")
}

/// A blocking TCP client with read deadlines.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `n` bytes, failing the test on timeout or close.
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => panic!(
                    "connection closed after {got} of {n} bytes: {:?}",
                    String::from_utf8_lossy(&buf[..got])
                ),
                Ok(k) => got += k,
                // A signal (a stop and continue, say) interrupts a read with a timeout set.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "read failed after {got} of {n} bytes ({e}): {:?}",
                    String::from_utf8_lossy(&buf[..got])
                ),
            }
        }
        buf
    }

    /// Reads one line, CRLF included (a RESP header or simple reply).
    pub fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            line.extend(self.read_n(1));
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Reads exactly as many bytes as `expected` and asserts they are equal.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_n(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply bytes differ"
        );
    }

    /// Sends `request` and asserts the reply is exactly `expected`.
    pub fn roundtrip(&mut self, request: &[u8], expected: &[u8]) {
        self.send(request);
        self.expect(expected);
    }

    /// Sends a RESP command built from `args` and asserts the exact reply.
    pub fn cmd(&mut self, args: &[&str], expected: &[u8]) {
        self.roundtrip(&resp(args), expected);
    }

    /// The value of `field` in `INFO section`.
    pub fn info_field(&mut self, section: &str, field: &str) -> String {
        self.send(&resp(&["INFO", section]));
        let header = self.read_line();
        let len: usize = header[1..].trim_end().parse().expect("bulk length");
        let text = String::from_utf8(self.read_n(len + 2)).expect("utf-8 INFO");
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{text}"))
            .to_string()
    }

    /// Asserts the server closes the connection (EOF) within the deadline.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => panic!(
                    "expected close, got {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("expected close, got error {e}"),
            }
        }
    }
}

/// User plus system CPU seconds the process `pid` has used, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (in parentheses, which may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second
}

/// The names of the threads of process `pid`, sorted, from /proc/PID/task/*/comm.
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect();
    names.sort();
    names
}

/// Encodes `args` as a RESP multi-bulk request.
pub fn resp(args: &[&str]) -> Vec<u8> {
    resp_bytes(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
}

/// Encodes binary `args` as a RESP multi-bulk request.
pub fn resp_bytes(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The RESP bulk-string reply for `s`.
pub fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

/// How long replication tests wait for something to happen (generous: qemu in CI).
pub const REPL_DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it is true; fails the test with `what` after `REPL_DEADLINE`.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + REPL_DEADLINE;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not so within {REPL_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    /// Starts a replica of `primary` in a new temporary directory.
    pub fn replica_of(primary: &Server, args: &[&str]) -> Server {
        let target = format!("127.0.0.1 {}", primary.addr.port());
        let mut all = vec!["--replicaof", target.as_str()];
        all.extend_from_slice(args);
        Server::start(&all)
    }

    /// The lines of `INFO section` as (field, value) pairs, in order.
    pub fn info(&self, section: &str) -> Vec<(String, String)> {
        self.connect().info(section)
    }
}

impl Client {
    /// The lines of `INFO section` as (field, value) pairs, in order.
    pub fn info(&mut self, section: &str) -> Vec<(String, String)> {
        self.send(&resp(&["INFO", section]));
        let header = self.read_line();
        let len: usize = header[1..].trim_end().parse().expect("bulk length");
        let text = String::from_utf8(self.read_n(len + 2)).expect("utf-8 INFO");
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Sends a command and returns its reply line (a status, error or integer; a bulk
    /// string's payload).
    pub fn call(&mut self, args: &[&str]) -> String {
        self.send(&resp(args));
        let line = self.read_line();
        match line.as_bytes().first() {
            Some(b'$') if line.starts_with("$-1") => String::new(),
            Some(b'$') => {
                let len: usize = line[1..].trim_end().parse().expect("bulk length");
                let body = self.read_n(len + 2);
                String::from_utf8_lossy(&body[..len]).into_owned()
            }
            _ => line.trim_end().to_string(),
        }
    }
}

impl Server {
    /// Starts a server with HTTP on a free port (and extra flags); the HTTP address.
    pub fn start_http(extra: &[&str]) -> (Server, SocketAddr) {
        let mut args = vec!["--http-port", "0"];
        args.extend_from_slice(extra);
        let mut server = Server::start(&args);
        let line = server.wait_log("HTTP on ");
        let addr = line
            .split("HTTP on ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .expect("HTTP address in the start-up line")
            .parse()
            .expect("socket address");
        (server, addr)
    }
}

/// One HTTP/1.1 request with an empty body (and `Authorization: auth` when given) on a new
/// connection: the response's status line and its body (read up to its Content-Length).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (String, Vec<u8>) {
    let mut c = Client::connect(addr);
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    c.send(
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    let status = c.read_line().trim_end().to_string();
    let mut length = 0;
    loop {
        let header = c.read_line();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("Content-Length");
            }
        }
    }
    (status, c.read_n(length))
}

/// A loopback port free a moment ago (for programs that cannot listen on port 0 and say where).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Sends a signal by name (STOP, CONT, TERM, INT) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}
