//! Connections read a frame at a time (RESP2 and RESP3, push frames included) keeping the raw
//! bytes, and differential scenarios: the same steps from several clients against pocketkv and a
//! real redis-server, every frame each client receives compared.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::redis::Redis;
use super::{resp_bytes, Server, DEADLINE};

/// A connection to `redis` read a frame at a time.
pub fn redis_frames(redis: &Redis) -> Frames {
    let stream = UnixStream::connect(redis.socket()).expect("connect to redis-server");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    Frames::new(Box::new(stream))
}

/// Anything a connection can be.
pub trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

/// A blocking connection read a frame at a time.
pub struct Frames {
    stream: Box<dyn Duplex>,
    buf: Vec<u8>,
}

impl Frames {
    /// Wraps a connected stream (its read timeout is the caller's).
    pub fn new(stream: Box<dyn Duplex>) -> Frames {
        Frames {
            stream,
            buf: Vec::new(),
        }
    }

    /// A TCP connection to `addr` with the test deadline as read timeout.
    pub fn tcp(addr: std::net::SocketAddr) -> Frames {
        let stream = std::net::TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Frames::new(Box::new(stream))
    }

    /// Sends raw bytes (a write error shows as a closed connection on the next read).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Sends a RESP command.
    pub fn cmd(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&resp_bytes(&args));
    }

    /// The raw bytes of the next complete frame, or why there is none.
    pub fn frame(&mut self) -> Result<Vec<u8>, String> {
        loop {
            match frame_end(&self.buf, 0) {
                Ok(Some(end)) => return Ok(self.buf.drain(..end).collect()),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(format!("closed after {:?}", show(&self.buf))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read failed ({e}) after {:?}", show(&self.buf))),
            }
        }
    }

    /// Sends a RESP command and returns its reply frame.
    pub fn call(&mut self, args: &[&str]) -> Vec<u8> {
        self.cmd(args);
        self.frame().unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

/// Bytes as printable text, for failure messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// Where the frame starting at `buf[at]` ends; `Ok(None)` while incomplete.
fn frame_end(buf: &[u8], at: usize) -> Result<Option<usize>, String> {
    let Some(rest) = buf.get(at..) else {
        return Ok(None);
    };
    let Some(cr) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line_end = at + cr + 2;
    let Some(&kind) = rest.first() else {
        return Ok(None);
    };
    let number = || -> Result<i64, String> {
        std::str::from_utf8(&rest[1..cr])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad length line {:?}", show(&rest[..cr])))
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Some(line_end)),
        b'$' | b'=' | b'!' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(line_end));
            }
            let end = line_end + n as usize + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n = number()?;
            let items = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = line_end;
            for _ in 0..items.max(0) {
                match frame_end(buf, pos)? {
                    Some(next) => pos = next,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos))
        }
        other => Err(format!("unknown frame type {:?}", other as char)),
    }
}

// Differential scenarios: the same steps against both servers, every client's frames compared.
// Each step is followed by a PING on every client: its reply (`+PONG`, or `pong` in the shape of
// a message while subscribed) ends what that client got for the step, so no step waits on time.

/// One step: a client and its command; `compare` false for set-up whose reply legitimately
/// differs (HELLO names the server).
pub struct Step {
    /// Which connection sends it.
    pub client: usize,
    /// The command.
    pub args: Vec<String>,
    /// Whether what the clients get for it is compared.
    pub compare: bool,
    /// Repeat the command until it answers this (polled with a deadline; the replies of the
    /// repeats are not compared, what other clients got meanwhile is).
    pub until: Option<Vec<u8>>,
}

/// A step repeated until its reply is `reply`: waits for a key to expire without a sleep.
pub fn poll(client: usize, args: &[&str], reply: &[u8]) -> Step {
    Step {
        until: Some(reply.to_vec()),
        ..step(client, args)
    }
}

pub fn step(client: usize, args: &[&str]) -> Step {
    Step {
        client,
        args: args.iter().map(|a| a.to_string()).collect(),
        compare: true,
        until: None,
    }
}

pub fn setup(client: usize, args: &[&str]) -> Step {
    Step {
        compare: false,
        ..step(client, args)
    }
}

fn is_pong(frame: &[u8]) -> bool {
    frame == b"+PONG\r\n" || frame == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
}

/// Sends `commands` on `conn` and returns, as text, everything received up to and including
/// the first `+PONG` (so the last command is a PING).
pub fn run_until_pong(conn: &mut Frames, commands: &[&[&str]]) -> String {
    for args in commands {
        conn.cmd(args);
    }
    let mut all = Vec::new();
    loop {
        let frame = conn.frame().expect("reply");
        let last = frame == b"+PONG\r\n";
        all.extend(frame);
        if last {
            return show(&all);
        }
    }
}

/// Everything `conn` received up to the reply of the PING sent after it.
pub fn until_pong(conn: &mut Frames, side: &str) -> Vec<u8> {
    conn.cmd(&["PING"]);
    let mut got = Vec::new();
    loop {
        let frame = conn
            .frame()
            .unwrap_or_else(|e| panic!("{side}: {e}; so far {}", show(&got)));
        if is_pong(&frame) {
            return got;
        }
        got.extend(frame);
    }
}

/// Runs `steps` with `clients` connections from `connect`; one transcript line per client per
/// compared step.
pub fn transcript(
    side: &str,
    clients: usize,
    connect: &dyn Fn() -> Frames,
    steps: &[Step],
) -> Vec<String> {
    let mut conns: Vec<Frames> = (0..clients).map(|_| connect()).collect();
    let mut lines = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
        if let Some(wanted) = &s.until {
            let deadline = std::time::Instant::now() + DEADLINE;
            while conns[s.client].call(&args) != *wanted {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{side}: {args:?} never gave {}",
                    show(wanted)
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        conns[s.client].cmd(&args);
        for offset in 0..clients {
            // The stepping client first: what it caused reaches the others before their PING.
            let c = (offset + s.client) % clients;
            let got = until_pong(&mut conns[c], side);
            if s.compare {
                lines.push(format!("step {i} {args:?} client {c}: {}", show(&got)));
            }
        }
    }
    lines
}

pub fn compare(clients: usize, steps: &[Step], pocketkv_args: &[&str], redis_args: &[&str]) {
    let redis = Redis::start(redis_args);
    let server = Server::start(pocketkv_args);
    let ours = transcript("pocketkv", clients, &|| Frames::tcp(server.addr), steps);
    let theirs = transcript("redis", clients, &|| redis_frames(&redis), steps);
    for (ours, theirs) in ours.iter().zip(&theirs) {
        assert_eq!(
            ours, theirs,
            "pocketkv (left) and redis-server (right) differ"
        );
    }
    assert_eq!(ours.len(), theirs.len());
}
