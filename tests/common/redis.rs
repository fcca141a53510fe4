//! A real `redis-server` (7.x, on a Unix socket in its own directory) for differential tests,
//! and a connection that reads whole RESP replies as raw bytes, so both servers' answers can be
//! compared byte for byte. `tests/redis_compat.rs` has the full scenario driver; this is the
//! small part other test files need.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Server, DEADLINE};

/// A redis-server, killed on drop.
pub struct Redis {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server 7.x from PATH with extra flags, and waits until it answers PING.
    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_with_config(None, extra)
    }

    /// Starts redis-server reading the config file `config` (its first argument), if given, with
    /// extra flags; waits until it answers PING.
    pub fn start_with_config(config: Option<&std::path::Path>, extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(config)
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Redis 7.x) on PATH; run `bash ci/install-deps.sh`");
        let redis = Redis {
            child,
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(stream) = UnixStream::connect(&redis.socket) {
                let mut conn = Replies::new(stream);
                conn.send(b"*1\r\n$4\r\nPING\r\n");
                let pong = conn.reply();
                if pong.starts_with(b"-NOAUTH") {
                    // Started with --requirepass: ready, but INFO would need the password too.
                    return redis;
                }
                assert_eq!(pong, b"+PONG\r\n", "redis-server answers PING");
                let mut conn = redis.connect();
                conn.send(b"*1\r\n$4\r\nINFO\r\n");
                let info = String::from_utf8_lossy(&conn.reply()).into_owned();
                assert!(info.contains("redis_version:7."), "redis-server is not 7.x");
                return redis;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to the deadline) for the process to exit, and returns how.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("redis-server's status") {
                return status;
            }
            assert!(Instant::now() < deadline, "redis-server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Unix socket it listens on.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// A new connection.
    pub fn connect(&self) -> Replies<UnixStream> {
        Replies::new(UnixStream::connect(&self.socket).expect("connect to redis-server"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to pocketkv that reads whole replies.
pub fn connect_pocket(server: &Server) -> Replies<TcpStream> {
    let stream = TcpStream::connect_timeout(&server.addr, DEADLINE).expect("connect pocketkv");
    stream.set_nodelay(true).expect("nodelay");
    Replies::new(stream)
}

/// One connection to redis-server and one to pocketkv, for sending both the same requests.
pub struct Pair {
    pub redis: Replies<UnixStream>,
    pub ours: Replies<TcpStream>,
}

impl Pair {
    pub fn new(redis: &Redis, ours: &Server) -> Pair {
        Pair {
            redis: redis.connect(),
            ours: connect_pocket(ours),
        }
    }

    /// Both replies to `args`: redis-server's, then pocketkv's.
    pub fn both(&mut self, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let request = super::resp(args);
        (self.redis.call(&request), self.ours.call(&request))
    }

    /// Sends `args` to both and asserts the replies are the same bytes; pocketkv's reply.
    pub fn same(&mut self, args: &[&str]) -> Vec<u8> {
        let (redis, ours) = self.both(args);
        assert_eq!(
            text(&ours),
            text(&redis),
            "replies to {args:?} differ (left: pocketkv, right: redis)"
        );
        ours
    }
}

/// A blocking connection that returns each RESP reply's raw bytes.
pub struct Replies<S: Read + Write> {
    stream: S,
    buf: Vec<u8>,
}

/// Sets the read deadline of either kind of socket.
pub trait Deadline {
    fn deadline(&self);
}

impl Deadline for UnixStream {
    fn deadline(&self) {
        self.set_read_timeout(Some(DEADLINE)).expect("timeout");
    }
}

impl Deadline for TcpStream {
    fn deadline(&self) {
        self.set_read_timeout(Some(DEADLINE)).expect("timeout");
    }
}

impl<S: Read + Write + Deadline> Replies<S> {
    pub fn new(stream: S) -> Self {
        stream.deadline();
        Replies {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The raw bytes of the next complete reply; fails the test on close or timeout.
    pub fn reply(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = reply_end(&self.buf, 0) {
                return self.buf.drain(..end).collect();
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed; partial reply {:?}", text(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read failed ({e}); partial reply {:?}", text(&self.buf)),
            }
        }
    }

    /// Sends `request` and returns its reply.
    pub fn call(&mut self, request: &[u8]) -> Vec<u8> {
        self.send(request);
        self.reply()
    }

    /// Sends `request` and returns its reply, or `None` when the server has closed the
    /// connection (EOF or reset before a whole reply).
    pub fn call_or_closed(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        if self.stream.write_all(request).is_err() {
            return None;
        }
        loop {
            if let Some(end) = reply_end(&self.buf, 0) {
                return Some(self.buf.drain(..end).collect());
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed ({e}); partial reply {:?}", text(&self.buf)),
            }
        }
    }
}

/// Where the RESP2/RESP3 reply starting at `buf[at]` ends, once it is complete.
pub fn reply_end(buf: &[u8], at: usize) -> Option<usize> {
    let rest = buf.get(at..)?;
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    let next = at + cr + 2;
    let number = || -> i64 {
        std::str::from_utf8(&rest[1..cr])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad length line {:?}", text(&rest[..cr])))
    };
    match rest.first()? {
        b'$' | b'=' | b'!' => {
            let len = number();
            let end = next + len.max(0) as usize + if len < 0 { 0 } else { 2 };
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' => {
            let per = if rest[0] == b'%' { 2 } else { 1 };
            let mut pos = next;
            for _ in 0..number().max(0) * per {
                pos = reply_end(buf, pos)?;
            }
            Some(pos)
        }
        _ => Some(next),
    }
}

/// Bytes shown as text for failure messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` on `conn` until it holds; fails the test after `REPL_DEADLINE`.
pub fn until<S: Read + Write + Deadline>(
    conn: &mut Replies<S>,
    what: &str,
    mut check: impl FnMut(&mut Replies<S>) -> bool,
) {
    let deadline = Instant::now() + super::REPL_DEADLINE;
    while !check(conn) {
        assert!(
            Instant::now() < deadline,
            "{what}: not so within {:?}",
            super::REPL_DEADLINE
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of `field` in `INFO section`, asked on `conn`.
pub fn info_field<S: Read + Write + Deadline>(
    conn: &mut Replies<S>,
    section: &str,
    field: &str,
) -> String {
    let info = text(&conn.call(&super::resp(&["INFO", section])));
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{info}"))
        .to_string()
}

/// Waits until `n` clients are blocked (INFO `blocked_clients`): held by WAIT, a pause or a
/// shutdown's wait for replicas.
pub fn await_blocked<S: Read + Write + Deadline>(conn: &mut Replies<S>, n: usize) {
    until(conn, &format!("{n} clients blocked"), |c| {
        info_field(c, "clients", "blocked_clients") == n.to_string()
    });
}

/// Waits until the primary on `conn` lists a replica online.
pub fn await_replica_online<S: Read + Write + Deadline>(conn: &mut Replies<S>) {
    until(conn, "the replica is online", |c| {
        text(&c.call(&super::resp(&["INFO", "replication"]))).contains("state=online")
    });
}
