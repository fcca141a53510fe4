//! The event loop: one thread, one `mio::Poll`, every client in a slab keyed by its token.
//!
//! Each step is a short function: accept, drive (read, execute, write), close. News from other
//! threads (signals, finished snapshots) arrives through a channel and the poll's `Waker`.

mod connection;
mod signals;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::command::{self, ClientState, Ctx, Flow, ServerState};
use crate::config::Config;
use crate::persist::{self, Done, Job, Writer};
use crate::protocol::{self, Dialect, ParseError, ProtocolError, Reply, Request};
use crate::store::Store;
use connection::{Closing, Connection, ReadOutcome};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// How long a stopping server keeps trying to deliver replies it already computed.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// Reads or reply flushes one client gets per loop turn before the others have their go.
const TURN_BUDGET: usize = 64;

/// Longest the loop sleeps, so timers (snapshots, memory sampling) run on time.
const TICK: Duration = Duration::from_millis(500);

/// Messages to the loop from other threads.
#[derive(Debug)]
pub enum News {
    /// Stop: flush replies, write a final snapshot, return.
    Shutdown(&'static str),
    /// The snapshot thread finished a job.
    SnapshotDone(Done),
}

/// A way to reach a running server from another thread.
#[derive(Debug, Clone)]
pub struct Handle {
    news: mpsc::Sender<News>,
    waker: Arc<Waker>,
}

impl Handle {
    /// Sends `news` and wakes the loop; false when the server is gone.
    pub fn send(&self, news: News) -> bool {
        self.news.send(news).is_ok() && self.waker.wake().is_ok()
    }

    /// Asks the server to stop as SIGTERM would.
    pub fn shutdown(&self) -> bool {
        self.send(News::Shutdown("shutdown requested"))
    }
}

/// A client waiting for SAVE: its slab key, its id (keys are reused), and its dialect.
type Waiter = (usize, u64, Dialect);

/// The server and everything the loop owns.
#[derive(Debug)]
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Connection>,
    store: Store,
    state: ServerState,
    handle: Handle,
    news: mpsc::Receiver<News>,
    writer: Writer,
    /// SAVE callers whose snapshot has not started yet, and those of the one in flight.
    waiting_next: Vec<Waiter>,
    waiting_current: Vec<Waiter>,
    next_client_id: u64,
    /// When the snapshot timer next looks for changes to save.
    next_timed_snapshot: Instant,
    last_sample: Option<Instant>,
    stopping: Option<Instant>,
    skip_final_save: bool,
    /// Clients that used their read budget with input possibly left in the socket.
    unfinished: Vec<usize>,
}

impl Server {
    /// A server on an already-bound listener, serving `store`.
    pub fn new(listener: std::net::TcpListener, config: Config, store: Store) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listening = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let save_interval = config.save_interval;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, news) = mpsc::channel();
        let handle = Handle { news: tx, waker };
        let notify = handle.clone();
        let writer = Writer::start(move |done| {
            notify.send(News::SnapshotDone(done));
        })?;
        Ok(Server {
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            store,
            state: ServerState::new(config, listening),
            handle,
            news,
            writer,
            waiting_next: Vec::new(),
            waiting_current: Vec::new(),
            next_client_id: 1,
            next_timed_snapshot: Instant::now() + Duration::from_secs(save_interval),
            last_sample: None,
            stopping: None,
            skip_final_save: false,
            unfinished: Vec::new(),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.listening
    }

    /// Keys in the store.
    pub fn keys(&self) -> usize {
        self.store.len()
    }

    /// A handle for stopping the server from another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Routes SIGINT and SIGTERM to a graceful shutdown.
    pub fn stop_on_signals(&self) -> io::Result<()> {
        signals::forward(self.handle())
    }

    /// Runs until shut down; then flushes replies and writes the final snapshot.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.unfinished.is_empty() {
                self.timeout()
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.read_news(),
                    Token(key) => self.drive(key),
                }
            }
            for key in std::mem::take(&mut self.unfinished) {
                self.drive(key);
            }
            self.tick();
            if let Some(since) = self.stopping {
                let drained = self.conns.iter().all(|(_, c)| c.pending_output() == 0);
                if drained || since.elapsed() >= DRAIN_DEADLINE {
                    return self.finish();
                }
            }
        }
    }

    fn timeout(&self) -> Duration {
        if self.stopping.is_some() {
            return Duration::from_millis(50);
        }
        if self.state.config.save_interval == 0 || self.state.snapshot.running_since.is_some() {
            return TICK;
        }
        self.next_timed_snapshot
            .saturating_duration_since(Instant::now())
            .min(TICK)
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the pending connection stays queued; retry next turn.
                    warn!("accept failed: {e}");
                    return;
                }
            };
            self.admit(stream, peer);
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: SocketAddr) {
        self.state.stats.connections_received += 1;
        if self.conns.len() >= self.state.config.maxclients {
            self.state.stats.rejected_connections += 1;
            // Best effort: a fresh socket's send buffer takes this short line.
            let _ = io::Write::write(&mut stream, b"-ERR max number of clients reached\r\n");
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            warn!("cannot register client {peer}: {e}");
            return;
        }
        let client = ClientState {
            id: self.next_client_id,
            ..ClientState::default()
        };
        self.next_client_id += 1;
        entry.insert(Connection::new(stream, peer, client));
        self.state.connected_clients = self.conns.len();
        debug!("client {peer} connected");
    }

    /// Reads, executes and writes for one client until it has nothing more to do for now.
    ///
    /// It reads only when every complete request already read has been executed, so input never
    /// piles up behind a backlog of replies.
    fn drive(&mut self, key: usize) {
        let high_water = self.state.config.output_buffer_high_water;
        let mut budget = TURN_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return; // A spurious event for a connection already closed.
            };
            let stopped = if self.stopping.is_some() {
                Stopped::Held
            } else {
                let was_waiting = conn.awaiting_snapshot.is_some();
                let stopped = execute_pending(conn, &mut self.store, &mut self.state);
                if let (false, Some(dialect)) = (was_waiting, conn.awaiting_snapshot) {
                    self.waiting_next.push((key, conn.client.id, dialect));
                }
                stopped
            };
            if stopped == Stopped::Held || stopped == Stopped::NeedInput && conn.peer_closed {
                break;
            }
            if budget == 0 {
                // Edge-triggered: no new event will come for work already waiting, so revisit.
                self.unfinished.push(key);
                break;
            }
            budget -= 1;
            if stopped == Stopped::Backlog {
                if let Err(e) = self.flush(key) {
                    return self.close(key, &e.to_string());
                }
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.pending_output() >= high_water)
                {
                    break; // The client is not reading; WRITABLE will bring us back.
                }
                continue;
            }
            match conn.read_once() {
                Ok(ReadOutcome::Data(n)) => self.state.stats.net_input_bytes += n as u64,
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => conn.peer_closed = true,
                Err(e) => return self.close(key, &e.to_string()),
            }
        }
        self.after_io(key);
    }

    /// Flushes, then closes or sets WRITABLE interest as the connection's state requires.
    fn after_io(&mut self, key: usize) {
        if let Err(e) = self.flush(key) {
            return self.close(key, &e.to_string());
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let pending = conn.pending_output() > 0;
        if !pending && conn.closing == Closing::AfterFlush {
            return self.close(key, "closed by request");
        }
        if !pending && conn.peer_closed && conn.awaiting_snapshot.is_none() {
            return self.close(key, "peer closed");
        }
        if pending != conn.wants_writable {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            conn.wants_writable = pending;
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
            {
                self.close(key, &e.to_string());
            }
        }
    }

    fn flush(&mut self, key: usize) -> io::Result<()> {
        if let Some(conn) = self.conns.get_mut(key) {
            let written = conn.flush()?;
            self.state.stats.net_output_bytes += written as u64;
        }
        Ok(())
    }

    fn close(&mut self, key: usize, why: &str) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            debug!("client {} closed: {why}", conn.peer);
        }
        self.state.connected_clients = self.conns.len();
    }

    fn read_news(&mut self) {
        while let Ok(news) = self.news.try_recv() {
            match news {
                News::Shutdown(why) => self.begin_shutdown(why),
                News::SnapshotDone(done) => self.snapshot_done(done),
            }
        }
    }

    fn begin_shutdown(&mut self, why: &str) {
        if self.stopping.is_some() {
            return;
        }
        info!("{why}: no longer accepting, flushing replies, then saving");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.stopping = Some(Instant::now());
    }

    /// Timers and deferred work, once per loop turn.
    fn tick(&mut self) {
        if let Some(save) = self.state.shutdown {
            if !save {
                self.skip_final_save = true;
            }
            self.begin_shutdown("SHUTDOWN command");
        }
        let now = Instant::now();
        if self
            .last_sample
            .is_none_or(|t| now - t >= Duration::from_secs(1))
        {
            self.state.rss_bytes = resident_bytes();
            self.last_sample = Some(now);
        }
        let interval = Duration::from_secs(self.state.config.save_interval);
        if !interval.is_zero()
            && now >= self.next_timed_snapshot
            && self.state.snapshot.running_since.is_none()
        {
            if self.store.dirty() == self.state.snapshot.dirty_at_last_save {
                // Nothing to save: look again one interval from now, not on every turn.
                self.next_timed_snapshot = now + interval;
            } else {
                self.state.snapshot.wanted = true;
            }
        }
        if self.state.snapshot.wanted
            && self.state.snapshot.running_since.is_none()
            && self.stopping.is_none()
        {
            self.start_snapshot();
        }
    }

    /// Takes the point-in-time copy and hands it to the writer thread.
    fn start_snapshot(&mut self) {
        let status = &mut self.state.snapshot;
        status.wanted = false;
        let started = Instant::now();
        let image = self.store.image();
        status.last_copy = started.elapsed();
        status.running_since = Some(started);
        self.next_timed_snapshot = started + Duration::from_secs(self.state.config.save_interval);
        self.waiting_current.append(&mut self.waiting_next);
        let job = Job {
            image,
            path: self.state.config.snapshot_path(),
            dirty: self.store.dirty(),
        };
        if !self.writer.submit(job) {
            self.snapshot_done(Done {
                result: Err("the snapshot thread has stopped".into()),
                dirty: 0,
                keys: 0,
                elapsed: Duration::ZERO,
            });
        }
    }

    fn snapshot_done(&mut self, done: Done) {
        let status = &mut self.state.snapshot;
        status.running_since = None;
        status.last_duration = Some(done.elapsed);
        let reply = match &done.result {
            Ok(bytes) => {
                info!(
                    "snapshot saved: {} keys, {bytes} bytes in {:.1} ms (copy {} us)",
                    done.keys,
                    done.elapsed.as_secs_f64() * 1e3,
                    status.last_copy.as_micros()
                );
                status.last_ok = true;
                status.last_error = None;
                status.last_save_unix = command::unix_time().as_secs();
                status.dirty_at_last_save = done.dirty;
                status.saves_ok += 1;
                Reply::OK
            }
            Err(why) => {
                error!("snapshot failed: {why}");
                status.last_ok = false;
                status.last_error = Some(why.clone());
                Reply::error_owned(format!("ERR snapshot failed: {why}"))
            }
        };
        for (key, id, dialect) in std::mem::take(&mut self.waiting_current) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.client.id != id {
                continue;
            }
            protocol::encode_reply(&reply, dialect, &mut conn.output);
            conn.awaiting_snapshot = None;
            self.drive(key);
        }
    }

    /// Stops for good: final snapshot when data changed since the last one.
    fn finish(mut self) -> io::Result<()> {
        self.writer.finish();
        self.read_news();
        let path = self.state.config.snapshot_path();
        if self.skip_final_save {
            info!("SHUTDOWN NOSAVE: exiting without a final snapshot");
            return Ok(());
        }
        if self.store.dirty() == self.state.snapshot.dirty_at_last_save {
            info!("no changes since the last snapshot; exiting");
            return Ok(());
        }
        let started = Instant::now();
        let image = self.store.image();
        let size = persist::write_atomically(&path, |out| persist::encode(&image, out))?;
        info!(
            "final snapshot saved: {} keys, {size} bytes in {:.1} ms; exiting",
            image.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }
}

/// Why [`execute_pending`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// Every complete request ran; more input is needed.
    NeedInput,
    /// Replies are piling up; send them before executing more.
    Backlog,
    /// The client waits for a snapshot, or is closing.
    Held,
}

/// Parses and executes every complete request in `conn`'s input, appending the replies.
fn execute_pending(conn: &mut Connection, store: &mut Store, state: &mut ServerState) -> Stopped {
    let limits = state.config.limits;
    loop {
        if conn.awaiting_snapshot.is_some() || conn.closing != Closing::No {
            return Stopped::Held;
        }
        if conn.pending_output() >= state.config.output_buffer_high_water {
            return Stopped::Backlog;
        }
        let input = conn.input.pending();
        let parsed = protocol::parse_request_resuming(input, &limits, &mut conn.progress);
        let used = match parsed {
            Ok((request, used)) => {
                if !request.args.is_empty() {
                    let flow =
                        execute_one(&request, &mut conn.client, &mut conn.output, store, state);
                    match flow {
                        Flow::AwaitSnapshot => conn.awaiting_snapshot = Some(request.dialect),
                        Flow::Shutdown { .. } | Flow::Close => conn.closing = Closing::AfterFlush,
                        Flow::Continue => {}
                    }
                }
                used
            }
            Err(ParseError::Incomplete) if input.len() < state.config.query_buffer_limit => {
                return Stopped::NeedInput;
            }
            Err(ParseError::Incomplete) => {
                fail(conn, ProtocolError::QueryBufferLimit, state);
                return Stopped::Held;
            }
            Err(ParseError::Invalid { consumed, error }) => {
                let reply = Reply::error_owned(error.to_string());
                protocol::encode_reply(&reply, Dialect::Text, &mut conn.output);
                state.stats.error_replies += 1;
                consumed
            }
            Err(ParseError::Fatal(error)) => {
                fail(conn, error, state);
                return Stopped::Held;
            }
        };
        conn.input.consume(used);
    }
}

/// Runs one request and appends its reply to `output`, unless the command holds it (SAVE) or
/// suppresses it (SHUTDOWN); returns what the connection must do next.
fn execute_one(
    request: &Request<'_>,
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
) -> Flow {
    let mut ctx = Ctx {
        db: store,
        client,
        server: state,
    };
    // Every change to data is made by the command executed here; a write log or replica
    // stream would take `request.args` when `Store::dirty` moves.
    let reply = command::execute(&mut ctx, &request.args);
    let is_error = reply.is_error();
    let mark = output.len();
    protocol::encode_reply(&reply, request.dialect, output);
    drop(reply);
    if is_error {
        state.stats.error_replies += 1;
    }
    let flow = std::mem::take(&mut client.flow);
    match flow {
        Flow::AwaitSnapshot => output.truncate(mark),
        Flow::Shutdown { save } => {
            output.truncate(mark);
            state.shutdown = Some(save);
        }
        Flow::Close | Flow::Continue => {}
    }
    flow
}

/// Answers a request whose framing is lost, in the dialect it seems to be in, and closes.
fn fail(conn: &mut Connection, error: ProtocolError, state: &mut ServerState) {
    let dialect = match conn.input.pending().first() {
        Some(b'*') => Dialect::Resp,
        _ => Dialect::Text,
    };
    let reply = Reply::error_owned(error.to_string());
    protocol::encode_reply(&reply, dialect, &mut conn.output);
    state.stats.error_replies += 1;
    conn.closing = Closing::AfterFlush;
}

/// Resident set size from /proc (0 where there is no /proc).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}
