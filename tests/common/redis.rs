//! A real `redis-server` for differential tests, and a connection that reads whole RESP2/RESP3
//! replies as raw bytes, so the same requests can be sent to Redis and to pocketkv and the
//! replies compared byte for byte. (tests/redis_compat.rs has grown its own copy of this; new
//! differential tests use this module.)

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{resp_bytes, Server, DEADLINE};

/// A `redis-server` on a Unix socket in its own temporary directory; killed on drop.
pub struct Redis {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The `redis-server` on PATH, or a failure that says how to install it.
fn redis_server_binary() -> PathBuf {
    const HOW: &str = "redis-server (Redis 7.x) is required by the differential tests; \
                       run `bash ci/install-deps.sh` to install it";
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file());
    let Some(binary) = found else {
        panic!("redis-server not found on PATH. {HOW}");
    };
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}. {HOW}", binary.display()));
    let version = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        version.contains(" v=7."),
        "{} is not Redis 7.x ({}). {HOW}",
        binary.display(),
        version.trim()
    );
    binary
}

impl Redis {
    /// A redis-server with extra arguments (`--requirepass x`).
    pub fn start_with(extra: &[&str]) -> Redis {
        let binary = redis_server_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("redis.sock");
        let log = dir.path().join("redis.log");
        let out = File::create(&log).expect("redis log file");
        let err = out.try_clone().expect("redis log file");
        let child = Command::new(&binary)
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        // From here on, drop kills the process whatever happens.
        let mut redis = Redis {
            child,
            socket,
            log,
            _dir: dir,
        };
        redis.wait_ready();
        redis
    }

    /// Retries connecting until the socket accepts and answers PING, within the deadline.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait redis-server") {
                panic!(
                    "redis-server exited ({status}) before accepting connections; log:\n{}",
                    self.log_text()
                );
            }
            if let Ok(stream) = UnixStream::connect(&self.socket) {
                let mut conn = Conn::unix("redis", stream);
                conn.send(&resp_bytes(&[b"PING"]));
                match conn.reply() {
                    Ok(reply) if reply == b"+PONG\r\n" => return,
                    Ok(reply) if reply.starts_with(b"-NOAUTH") => return,
                    other => panic!(
                        "redis-server answered PING with {other:?}; log:\n{}",
                        self.log_text()
                    ),
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not accept connections on {} within {DEADLINE:?}; log:\n{}",
                self.socket.display(),
                self.log_text()
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> Conn {
        let stream = UnixStream::connect(&self.socket).expect("connect to redis-server");
        Conn::unix("redis", stream)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Connections and the RESP reply reader
// ---------------------------------------------------------------------------------------------

trait Duplex: Read + Write {}
impl<T: Read + Write> Duplex for T {}

/// A blocking connection that reads whole RESP replies and keeps their raw bytes.
pub struct Conn {
    side: &'static str,
    stream: Box<dyn Duplex>,
    buf: Vec<u8>,
}

impl Conn {
    fn unix(side: &'static str, stream: UnixStream) -> Conn {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Conn {
            side,
            stream: Box::new(stream),
            buf: Vec::new(),
        }
    }

    pub fn tcp(side: &'static str, server: &Server) -> Conn {
        let stream = TcpStream::connect_timeout(&server.addr, DEADLINE).expect("connect pocketkv");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            side,
            stream: Box::new(stream),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // A write error shows up as a closed connection on the next read.
        let _ = self.stream.write_all(bytes);
    }

    /// Reads more bytes into the buffer; `Ok(false)` at EOF.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = vec![0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(format!("<{}: read failed: {e}>", self.side)),
        }
    }

    /// The raw bytes of exactly one complete reply, or a description of what went wrong.
    pub fn reply(&mut self) -> Result<Vec<u8>, String> {
        loop {
            match reply_end(&self.buf, 0) {
                Ok(Some(end)) => return Ok(self.buf.drain(..end).collect()),
                Ok(None) => {}
                Err(e) => return Err(format!("<{}: malformed reply: {e}>", self.side)),
            }
            if !self.fill()? {
                return Err(format!(
                    "<{}: connection closed{}>",
                    self.side,
                    if self.buf.is_empty() {
                        String::new()
                    } else {
                        format!(" after partial reply {}", show(&self.buf))
                    }
                ));
            }
        }
    }

    /// Sends `bytes` and reads one reply.
    pub fn reply_to(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        self.send(bytes);
        self.reply()
    }

    /// Everything the server sends until it closes the connection.
    pub fn until_closed(&mut self) -> Result<Vec<u8>, String> {
        while self.fill()? {}
        Ok(std::mem::take(&mut self.buf))
    }
}

/// Where the RESP2 reply starting at `buf[at]` ends: `Ok(None)` while incomplete.
pub fn reply_end(buf: &[u8], at: usize) -> Result<Option<usize>, String> {
    let rest = buf.get(at..).unwrap_or_default();
    let Some(cr) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &rest[..cr];
    let next = at + cr + 2;
    let number = || -> Result<i64, String> {
        std::str::from_utf8(&line[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad length line {}", show(line)))
    };
    match line.first() {
        // RESP3 null, double and boolean are one line too.
        Some(b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(') => Ok(Some(next)),
        Some(b'$' | b'=') => {
            let len = number()?;
            if len < 0 {
                return Ok(Some(next));
            }
            let end = next + len as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(format!("bulk of {len} bytes not followed by CRLF"));
            }
            Ok(Some(end))
        }
        Some(b'*' | b'%' | b'~' | b'>') => {
            let mut pos = next;
            // A RESP3 map holds a field and a value per entry.
            let per_entry = if line.first() == Some(&b'%') { 2 } else { 1 };
            for _ in 0..number()?.max(0) * per_entry {
                match reply_end(buf, pos)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos))
        }
        _ => Err(format!("unexpected reply line {}", show(line))),
    }
}

/// Bytes as an escaped, quoted string, shortened when long.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    if bytes.len() <= MAX {
        format!("\"{}\"", bytes.escape_ascii())
    } else {
        format!(
            "\"{}\"...({} bytes)",
            bytes[..MAX].escape_ascii(),
            bytes.len()
        )
    }
}
