//! One client connection: its socket, bounded input and output buffers, and its state.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::command::ClientState;
use crate::protocol::{Dialect, Progress};

/// The input buffer's first size; kept between requests, and freed once a client is idle.
const READ_CHUNK: usize = 16 * 1024;

/// Free room below which the buffer is compacted or grown before a read, so a slow client with
/// a few bytes pending does not double its buffer.
const MIN_READ: usize = 4 * 1024;

/// Input: `buf[start..end]` holds bytes read but not yet parsed.
#[derive(Debug, Default)]
pub struct InputBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The most bytes pending at once since the connection opened (CLIENT LIST `rbp`; Redis
    /// forgets its peak every few seconds, pocketkv keeps the connection's).
    peak: usize,
}

impl InputBuffer {
    /// The bytes waiting to be parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` parsed bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > READ_CHUNK {
                // A burst is over: give back what it needed.
                self.buf = Vec::new();
            }
        }
    }

    /// Frees the buffer when nothing is pending: an idle client then costs no input memory
    /// until it sends again.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Bytes allocated, and bytes free after the pending ones.
    pub fn sizes(&self) -> (usize, usize) {
        (self.buf.len(), self.buf.len() - self.end)
    }

    /// The most bytes pending at once since the connection opened.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Counts `n` bytes just read into the room `space` offered.
    fn filled(&mut self, n: usize) {
        self.end += n;
        self.peak = self.peak.max(self.end - self.start);
    }

    /// Room to read into, at least `MIN_READ` bytes; moves or grows the buffer as needed.
    fn space(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < MIN_READ {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < MIN_READ {
                let size = (self.buf.len() * 2).max(self.end + READ_CHUNK);
                self.buf.resize(size, 0);
            }
        }
        &mut self.buf[self.end..]
    }
}

/// The result of one attempt to read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` bytes arrived; `drained` when they did not fill the room offered, which on a
    /// stream socket means the kernel had no more.
    Data {
        /// Bytes read.
        n: usize,
        /// The read was short.
        drained: bool,
    },
    /// Nothing more for now.
    WouldBlock,
    /// The peer closed its side.
    Closed,
}

/// Output held back until the append-only log is fsynced (`appendfsync always`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Where the held bytes start in `output`.
    pub from: usize,
    /// The log sequence number that must be durable before they are sent.
    pub seq: u64,
}

impl Hold {
    /// A hold of everything from `from` (or from where `held` already starts) until record
    /// `seq` is durable.
    pub fn until(held: Option<Hold>, seq: u64, from: usize) -> Hold {
        Hold {
            from: held.map_or(from, |hold| hold.from),
            seq,
        }
    }
}

/// Why a connection is being closed, for the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Still open.
    No,
    /// Close once the output is flushed (QUIT, a fatal protocol error).
    AfterFlush,
}

/// A client and its buffers; lives in the slab, its key is its token.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Bytes read, not yet parsed.
    pub input: InputBuffer,
    /// How far the parse of a partly received request got.
    pub progress: Progress,
    /// Encoded replies; `output[written..]` is still to be sent.
    pub output: Vec<u8>,
    written: usize,
    /// Replies that may not leave before the log is durable up to a sequence number.
    pub hold: Option<Hold>,
    /// State commands can see.
    pub client: ClientState,
    /// Waiting for a snapshot; holds the dialect the SAVE came in.
    pub awaiting_snapshot: Option<Dialect>,
    /// Sent SHUTDOWN: held until the process exits, or answered with an error if SHUTDOWN
    /// ABORT cancels it; holds the dialect the SHUTDOWN came in.
    pub awaiting_shutdown: Option<Dialect>,
    /// A request of this client waits, unread, for a pause to end (a shutdown waiting for
    /// replicas, CLIENT PAUSE).
    pub postponed: bool,
    /// Close after flushing.
    pub closing: Closing,
    /// The peer shut down its sending side.
    pub peer_closed: bool,
    /// The poll reported the peer's FIN or a socket error: read until the read itself shows
    /// it, because no further event will come for it.
    pub hangup: bool,
    /// Whether WRITABLE interest is registered.
    pub wants_writable: bool,
    /// Since when the unsent replies have been above the soft output limit.
    pub over_soft_limit_since: Option<std::time::Instant>,
    /// Came in on the HTTP listener: its input is HTTP requests.
    pub http: bool,
    /// A `100 Continue` went out for the request whose body is awaited.
    pub continue_sent: bool,
    /// On the loop's list of subscribers to flush at the end of the turn.
    pub queued_flush: bool,
    /// WAIT holds this client's reply until replicas acknowledge.
    pub waiting: Option<super::replicate::Waiting>,
    /// This client is a replica of ours (it sent PSYNC).
    pub follower: Option<Box<super::replicate::Follower>>,
    /// This is our link to the primary we follow.
    pub link: Option<Box<super::replicate::Link>>,
}

impl Connection {
    /// A new connection for `stream`.
    pub fn new(stream: TcpStream, peer: SocketAddr, client: ClientState) -> Self {
        Connection {
            stream,
            peer,
            input: InputBuffer::default(),
            progress: Progress::default(),
            output: Vec::new(),
            written: 0,
            hold: None,
            client,
            awaiting_snapshot: None,
            awaiting_shutdown: None,
            postponed: false,
            closing: Closing::No,
            peer_closed: false,
            hangup: false,
            wants_writable: false,
            over_soft_limit_since: None,
            http: false,
            continue_sent: false,
            queued_flush: false,
            waiting: None,
            follower: None,
            link: None,
        }
    }

    /// Bytes of output not yet sent, held or not.
    pub fn pending_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Frees what an idle connection's buffers hold while nothing is pending in them.
    pub fn release_idle_buffers(&mut self) {
        self.input.release_if_empty();
        if self.pending_output() == 0 {
            self.output = Vec::new();
            self.written = 0;
        }
    }

    /// Bytes allocated for output.
    pub fn output_capacity(&self) -> usize {
        self.output.capacity()
    }

    /// Bytes of output that may be sent now.
    pub fn sendable(&self) -> usize {
        self.send_limit() - self.written
    }

    fn send_limit(&self) -> usize {
        self.hold.map_or(self.output.len(), |hold| hold.from)
    }

    /// Releases held replies once the log is durable up to `durable`; true if released.
    pub fn release(&mut self, durable: u64) -> bool {
        match self.hold {
            Some(hold) if hold.seq <= durable => {
                self.hold = None;
                true
            }
            _ => false,
        }
    }

    /// One `read` into the input buffer.
    pub fn read_once(&mut self) -> io::Result<ReadOutcome> {
        loop {
            let space = self.input.space();
            let room = space.len();
            return match self.stream.read(space) {
                Ok(0) => Ok(ReadOutcome::Closed),
                Ok(n) => {
                    self.input.filled(n);
                    let drained = n < room;
                    Ok(ReadOutcome::Data { n, drained })
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Drops output already sent from the front of the buffer once it is most of it: a
    /// replica's stream is appended to while earlier bytes are still going out, so the buffer
    /// might never empty, and would otherwise grow with everything ever sent to it.
    pub fn compact_sent(&mut self) {
        if self.written > 0 && self.written >= self.output.len() / 2 {
            self.output.drain(..self.written);
            if let Some(hold) = &mut self.hold {
                hold.from = hold.from.saturating_sub(self.written);
            }
            self.written = 0;
        }
    }

    /// Takes the output not yet sent, leaving none (a full sync's thread sends it first).
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let mut unsent = std::mem::take(&mut self.output);
        unsent.drain(..self.written.min(unsent.len()));
        self.written = 0;
        unsent
    }

    /// Writes pending output until done or `WouldBlock`; returns bytes written.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut total = 0;
        let limit = self.send_limit();
        while self.written < limit {
            match self.stream.write(&self.output[self.written..limit]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.written == self.output.len() {
            self.written = 0;
            self.output.clear();
            if self.output.capacity() > 4 * READ_CHUNK {
                self.output = Vec::new();
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_buffer_compacts_grows_and_shrinks() {
        let mut input = InputBuffer::default();
        let space = input.space();
        assert_eq!(space.len(), READ_CHUNK);
        space[0] = b'*';
        input.end += 1;
        assert_eq!(input.buf.len(), READ_CHUNK);
        assert_eq!(
            input.space().len(),
            READ_CHUNK - 1,
            "a pending byte does not grow it"
        );
        input.consume(1);
        let space = input.space();
        space[..3].copy_from_slice(b"abc");
        input.end += 3;
        input.consume(1);
        assert_eq!(input.pending(), b"bc");
        // Fill past one chunk so the buffer must grow while keeping the pending bytes.
        let n = input.space().len();
        input.end += n;
        assert!(input.space().len() >= MIN_READ);
        assert_eq!(&input.pending()[..2], b"bc");
        let all = input.pending().len();
        input.consume(all);
        assert!(input.pending().is_empty());
        assert!(
            input.buf.is_empty(),
            "a big buffer is released when drained"
        );
    }
}
