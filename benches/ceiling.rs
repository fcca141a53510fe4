//! The ceiling reference for `make bench`: a minimal mio server that answers `+OK\r\n` to every
//! complete request and does nothing else. No command is looked at and no map is touched, so its
//! throughput is what one thread of this machine can do in syscalls (epoll_wait, read, write) and
//! loopback TCP; pocketkv's throughput is printed as a fraction of it.
//!
//! ```text
//! cargo run --release --example ceiling -- [--port 0] [--bind 127.0.0.1] [--drain]
//! ```
//!
//! It prints `ceiling listening on ADDR:PORT` on stderr (the format pocketkv's start-up line has,
//! so scripts find the port the same way) and runs until killed.
//!
//! Requests are counted by their framing, exactly enough to know where one ends:
//! a RESP request is `*N\r\n` followed by N bulk strings `$LEN\r\n<LEN bytes>\r\n`; anything else
//! is one text line ended by LF. `*0` and `*-1` are no request (Redis ignores them too), so they
//! get no reply. A malformed RESP header closes the connection.
//!
//! Per readable event it reads once: a read that returns less than the room it was given has
//! emptied the socket, and new data raises a new edge, so no second read is needed to see
//! `WouldBlock`. That is the fewest syscalls a correct edge-triggered server can make per turn
//! (one read, one write). `--drain` reads until `WouldBlock` instead, as the mio documentation
//! describes, to measure what that extra read costs.
//!
//! What it does not do: bound anything (a client that never reads its replies grows the output
//! buffer), handle more than one thread, or care about fairness between clients. It is a
//! measuring stick, not a server.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX - 1);
const READ_CHUNK: usize = 16 * 1024;
const OK: &[u8] = b"+OK\r\n";

struct Conn {
    stream: TcpStream,
    /// Received bytes `input[..filled]`; the rest is room to read into.
    input: Vec<u8>,
    filled: usize,
    /// Replies `output[written..]` still to send.
    output: Vec<u8>,
    written: usize,
    /// Whether WRITABLE interest is registered (only while output is pending).
    wants_write: bool,
}

/// What `frame` found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A complete request of this many bytes; `counts` is false for `*0` and `*-1`.
    Request {
        len: usize,
        counts: bool,
    },
    Incomplete,
    Malformed,
}

/// Parses a decimal integer ended by CRLF at `buf[at..]`; returns it and the index after CRLF.
fn number_line(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ()> {
    let Some(nl) = memchr::memchr(b'\n', &buf[at..]) else {
        // A header longer than any valid integer line is garbage, not an incomplete request.
        return if buf.len() - at > 32 {
            Err(())
        } else {
            Ok(None)
        };
    };
    let end = at + nl;
    if end == at || buf[end - 1] != b'\r' {
        return Err(());
    }
    let digits = std::str::from_utf8(&buf[at..end - 1]).map_err(|_| ())?;
    let n = digits.parse::<i64>().map_err(|_| ())?;
    Ok(Some((n, end + 1)))
}

/// Finds the extent of the request at the start of `buf`.
fn frame(buf: &[u8]) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete;
    }
    if buf[0] != b'*' {
        return match memchr::memchr(b'\n', buf) {
            Some(nl) => Frame::Request {
                len: nl + 1,
                counts: true,
            },
            None => Frame::Incomplete,
        };
    }
    let (count, mut at) = match number_line(buf, 1) {
        Ok(Some(v)) => v,
        Ok(None) => return Frame::Incomplete,
        Err(()) => return Frame::Malformed,
    };
    if count <= 0 {
        return Frame::Request {
            len: at,
            counts: false,
        };
    }
    for _ in 0..count {
        if at >= buf.len() {
            return Frame::Incomplete;
        }
        if buf[at] != b'$' {
            return Frame::Malformed;
        }
        let (len, body) = match number_line(buf, at + 1) {
            Ok(Some((len, body))) if len >= 0 => (len as usize, body),
            Ok(Some(_)) | Err(()) => return Frame::Malformed,
            Ok(None) => return Frame::Incomplete,
        };
        at = body + len + 2;
        if at > buf.len() {
            return Frame::Incomplete;
        }
    }
    Frame::Request {
        len: at,
        counts: true,
    }
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            input: vec![0; READ_CHUNK],
            filled: 0,
            output: Vec::with_capacity(READ_CHUNK),
            written: 0,
            wants_write: false,
        }
    }

    /// Reads what is there (once, or until `WouldBlock` with `drain`), answers every complete
    /// request. Returns false when the connection is finished.
    fn on_readable(&mut self, drain: bool) -> bool {
        loop {
            if self.input.len() - self.filled < READ_CHUNK {
                let size = self.input.len() * 2;
                self.input.resize(size, 0);
            }
            let room = self.input.len() - self.filled;
            match self.stream.read(&mut self.input[self.filled..]) {
                Ok(0) => return false,
                Ok(n) => {
                    self.filled += n;
                    if !self.answer() {
                        return false;
                    }
                    if n < room && !drain {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Counts complete requests, queues one `+OK` each and writes. False on malformed input.
    fn answer(&mut self) -> bool {
        let mut at = 0;
        let mut replies = 0;
        let ok = loop {
            match frame(&self.input[at..self.filled]) {
                Frame::Request { len, counts } => {
                    at += len;
                    replies += usize::from(counts);
                }
                Frame::Incomplete => break true,
                Frame::Malformed => break false,
            }
        };
        self.input.copy_within(at..self.filled, 0);
        self.filled -= at;
        for _ in 0..replies {
            self.output.extend_from_slice(OK);
        }
        ok && self.flush()
    }

    /// Writes pending output until done or `WouldBlock`. False on a write error.
    fn flush(&mut self) -> bool {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
        true
    }
}

fn usage() -> ! {
    eprintln!("usage: ceiling [--port PORT] [--bind ADDR] [--drain]");
    std::process::exit(2);
}

fn main() -> io::Result<()> {
    let mut port = "0".to_string();
    let mut bind = "127.0.0.1".to_string();
    let mut drain = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().unwrap_or_else(|| usage()),
            "--bind" => bind = args.next().unwrap_or_else(|| usage()),
            "--drain" => drain = true,
            _ => usage(),
        }
    }
    let addr: SocketAddr = format!("{bind}:{port}").parse().unwrap_or_else(|_| usage());
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("ceiling listening on {}", listener.local_addr()?);

    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE,
                            )?;
                            entry.insert(Conn::new(stream));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Out of descriptors and the like: try again on the next event.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let mut alive = true;
            if event.is_writable() {
                alive = conn.flush();
            }
            if alive && (event.is_readable() || event.is_read_closed()) {
                alive = conn.on_readable(drain);
            }
            if alive {
                let pending = !conn.output.is_empty();
                if pending != conn.wants_write {
                    let interest = if pending {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    poll.registry()
                        .reregister(&mut conn.stream, Token(key), interest)?;
                    conn.wants_write = pending;
                }
            } else {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let get = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        assert_eq!(
            frame(get),
            Frame::Request {
                len: get.len(),
                counts: true
            }
        );
        for cut in 0..get.len() {
            assert_eq!(frame(&get[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        assert_eq!(
            frame(b"PING\r\nPING"),
            Frame::Request {
                len: 6,
                counts: true
            }
        );
        assert_eq!(
            frame(b"*0\r\n"),
            Frame::Request {
                len: 4,
                counts: false
            }
        );
        assert_eq!(frame(b"*x\r\n"), Frame::Malformed);
        assert_eq!(frame(b"*1\r\n+OK\r\n"), Frame::Malformed);
    }
}
