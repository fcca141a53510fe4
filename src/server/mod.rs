//! The event loop: one thread, one `mio::Poll`, every client in a slab keyed by its token.
//!
//! Each step is a short function: accept, drive (read, execute, write), close. News from other
//! threads (finished snapshots, log writes) arrives through a channel and the poll's `Waker`;
//! signals through a socket the poll watches.

mod connection;
pub mod console;
mod execute;
mod http;
mod metrics;
mod persistence;
mod pubsub;
mod recover;
mod replicate;
mod shutdown;
mod signals;
mod transaction;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::command::{unix_ms, ClientInfo, ClientState, ServerState};
use crate::config::Config;
use crate::config::OutputLimit;
use crate::persist::{Done, LogWriter, Report, Writer};
use crate::protocol::Dialect;
use crate::store::Store;
use connection::{Closing, Connection, ReadOutcome};
use execute::{execute_pending, Stopped};
use persistence::Journal;
pub use recover::{recover, Recovered};

const SIGNALS: Token = Token(usize::MAX - 3);
const HTTP_LISTENER: Token = Token(usize::MAX - 2);
const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// How long a stopping server keeps trying to deliver replies it already computed.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// Reads or reply flushes one client gets per loop turn before the others have their go.
const TURN_BUDGET: usize = 64;

/// Bytes read plus bytes written one client gets per loop turn, so a client moving big values
/// cannot make a turn long for everyone else.
const TURN_BYTES: usize = 64 * 1024;

/// Connections the kernel may queue before `accept`; std's default of 128 drops SYNs in a burst
/// (the kernel caps this at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// Shards a loop turn may copy for a snapshot in flight (each write to a shard the snapshot
/// still holds copies its table, about 1.2 KB at a million keys). When a turn has copied this
/// many, clients with requests left go on next turn: a burst of writes right after a snapshot
/// starts is spread over turns instead of making one long pause for everyone.
const COPY_BUDGET: u64 = 64;

/// Records kept for a finished snapshot that are freed at a time (or shards of a written image
/// taken apart), each slice followed by `settle_allocator`.
const RECLAIM_SLICE: usize = 256;

/// Time a loop turn spends freeing what a finished snapshot kept. Each record freed is a cache
/// miss or two, and how many a slice of time frees varies with the machine's other work; a
/// count alone made some turns 0.5 ms longer.
const RECLAIM_TIME: Duration = Duration::from_micros(200);

/// Longest the loop sleeps, so timers (snapshots, memory sampling) run on time.
const TICK: Duration = Duration::from_millis(500);

/// Keys with an expiry time one round of active expiry looks at: about 50-100 µs of work, so
/// reclaiming a million expired keys never shows as a pause.
const EXPIRE_BUDGET: usize = 1000;

/// How often active expiry runs while few of the keys it looks at have expired (Redis: 10 Hz).
const EXPIRE_PERIOD: Duration = Duration::from_millis(100);

/// How often the loop looks over its clients for idle timeouts and output held too long. Each
/// look covers the share of the clients due since the last one, so all are seen about once a
/// second and no turn walks every client.
const CLIENT_CRON: Duration = Duration::from_millis(100);

/// How long a client sends nothing before its buffers are freed (Redis frees idle query buffers
/// after 2 s too): 10,000 idle clients then hold no buffer memory, while a busy one keeps reusing
/// its buffer.
const IDLE_BUFFER_RELEASE: Duration = Duration::from_secs(2);

/// What a non-loopback client gets in protected mode: Redis 7.0's text, word for word.
const DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Messages to the loop from other threads.
#[derive(Debug)]
pub enum News {
    /// Stop: flush replies, write a final snapshot, return.
    Shutdown(&'static str),
    /// The snapshot thread finished a job.
    SnapshotDone(Done),
    /// The log thread wrote, fsynced, or failed.
    Log(Report),
    /// A full sync's thread finished for replica `key` (client `id`): whether all of the
    /// image went, and the image back.
    Sync {
        /// The replica's slab key.
        key: usize,
        /// Its client id (keys are reused).
        id: u64,
        /// Whether it all went, and the image.
        done: (bool, crate::store::Image),
    },
    /// A full sync received from the primary was decoded (for link attempt N).
    Loaded(u64, Result<Box<Store>, String>),
    /// The primary's name was resolved (for link attempt N).
    Resolved(u64, Result<SocketAddr, String>),
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
    /// The HTTP listener, when `--http-port` is on.
    http_listener: Option<TcpListener>,
    http_addr: Option<SocketAddr>,
    conns: Slab<Connection>,
    store: Store,
    state: ServerState,
    handle: Handle,
    news: mpsc::Receiver<News>,
    /// SIGINT, SIGTERM and SIGHUP, once `stop_on_signals` asked for them.
    signals: Option<signals::Signals>,
    writer: Writer,
    /// The log thread, when the append-only log is on.
    log: Option<LogWriter>,
    /// This turn's changes, for the log.
    journal: Journal,
    /// Clients whose replies wait for the log to be fsynced.
    held: Vec<usize>,
    /// Clients held by a pause, as (slab key, client id), in the order they were held: they
    /// resume in that order.
    paused: Vec<(usize, u64)>,
    /// SAVE callers whose snapshot has not started yet, and those of the one in flight.
    waiting_next: Vec<Waiter>,
    waiting_current: Vec<Waiter>,
    next_client_id: u64,
    /// When the snapshot timer next looks for changes to save.
    next_timed_snapshot: Instant,
    last_sample: Option<Instant>,
    /// When the client cron last ran, and the slab key it goes on from.
    last_client_cron: Instant,
    client_cursor: usize,
    /// The save interval the snapshot timer was last set for (CONFIG SET may change it).
    applied_save_interval: u64,
    stopping: Option<Instant>,
    /// SIGINT or SIGTERM asked for the shutdown under way (a second SIGINT then exits at once).
    shutdown_signalled: bool,
    skip_final_save: bool,
    /// Clients that used their read budget with input possibly left in the socket.
    unfinished: Vec<usize>,
    /// When active expiry next runs.
    next_expire_round: Instant,
    /// The store's copy count at which this turn's copy-on-write budget is spent.
    copy_limit: u64,
    /// Subscribers that got messages this turn, flushed once at its end.
    to_flush: Vec<usize>,
    /// Replication: the link, held WAITs, timers.
    repl: replicate::ReplLoop,
}

impl Server {
    /// A server on an already-bound listener, serving what start-up recovered.
    pub fn new(
        listener: std::net::TcpListener,
        config: Config,
        recovered: Recovered,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        // SAFETY: listen on a socket that is already listening only changes its backlog.
        if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let listening = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (http_listener, http_addr) = match config.http_port {
            Some(port) => {
                let http = std::net::TcpListener::bind((config.bind.as_str(), port))?;
                http.set_nonblocking(true)?;
                let addr = http.local_addr()?;
                let mut http = TcpListener::from_std(http);
                poll.registry()
                    .register(&mut http, HTTP_LISTENER, Interest::READABLE)?;
                (Some(http), Some(addr))
            }
            None => (None, None),
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, news) = mpsc::channel();
        let handle = Handle { news: tx, waker };
        let notify = handle.clone();
        let writer = Writer::new(move |done| {
            notify.send(News::SnapshotDone(done));
        });
        let mut state = ServerState::new(config, listening);
        state
            .acl
            .configure(&state.config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if !state.config.audit_log.is_empty() {
            let path = std::path::Path::new(&state.config.audit_log);
            let audit = crate::audit::AuditLog::start(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open audit log {}: {e}", path.display()),
                )
            })?;
            state.audit = Some(audit);
        }
        state.log.enabled = state.config.appendonly;
        state.log.policy = state.log.enabled.then_some(state.config.appendfsync);
        state.log.segment = recovered.segment;
        state.log.replayed = recovered.replayed;
        state.log.torn_tails = recovered.torn_tails;
        let save_interval = Duration::from_secs(state.config.save_interval);
        let mut server = Server {
            poll,
            listener: Some(listener),
            http_listener,
            http_addr,
            conns: Slab::new(),
            store: recovered.store,
            state,
            handle,
            news,
            signals: None,
            writer,
            log: None,
            journal: Journal::default(),
            held: Vec::new(),
            paused: Vec::new(),
            waiting_next: Vec::new(),
            waiting_current: Vec::new(),
            next_client_id: 1,
            next_timed_snapshot: Instant::now() + save_interval,
            last_sample: None,
            last_client_cron: Instant::now(),
            client_cursor: 0,
            applied_save_interval: save_interval.as_secs(),
            stopping: None,
            shutdown_signalled: false,
            skip_final_save: false,
            unfinished: Vec::new(),
            next_expire_round: Instant::now(),
            copy_limit: COPY_BUDGET,
            to_flush: Vec::new(),
            repl: replicate::ReplLoop::default(),
        };
        server.restore_replication(recovered.repl);
        server.log = persistence::start_log(&server)?;
        // Keys whose time passed while the server was down were dropped after the replay. New
        // records go on the end of the same log segment, so it must say they are gone first:
        // else the next replay would bring them back, and a later INCR of one would not replay.
        persistence::record_dropped(&mut server.store, &mut server.state, &mut server.journal);
        server.submit_log();
        Ok(server)
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.listening
    }

    /// The address HTTP clients connect to, when HTTP is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Keys in the store.
    pub fn keys(&self) -> usize {
        self.store.len()
    }

    /// A handle for stopping the server from another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Routes SIGINT and SIGTERM to a graceful shutdown, and SIGHUP to reopening the log files.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let mut signals = signals::Signals::catch()?;
        self.poll
            .registry()
            .register(signals.source(), SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
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
            let turn = Instant::now();
            let cpu = thread_cpu_time();
            self.copy_limit = self.store.copied().shards + COPY_BUDGET;
            // Clients left over from the last turn go first, so one that ran out of copy budget
            // is not put off again by clients with new events.
            for key in std::mem::take(&mut self.unfinished) {
                self.drive(key);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(false),
                    HTTP_LISTENER => self.accept(true),
                    WAKER => self.read_news(),
                    SIGNALS => self.read_signals(),
                    Token(key) => {
                        if event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(key) {
                                conn.hangup = true;
                            }
                        }
                        self.drive(key)
                    }
                }
            }
            self.expire_keys();
            self.deliver();
            self.flush_receivers();
            self.replication_turn();
            self.reclaim();
            self.submit_log();
            self.tick();
            let stats = &mut self.state.stats;
            stats.longest_turn = stats.longest_turn.max(turn.elapsed());
            stats.longest_turn_cpu = stats
                .longest_turn_cpu
                .max(thread_cpu_time().saturating_sub(cpu));
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
        let now = Instant::now();
        let mut timeout = TICK;
        if self.state.config.save_interval > 0 && self.state.snapshot.running_since.is_none() {
            timeout = timeout.min(self.next_timed_snapshot.saturating_duration_since(now));
        }
        if self.store.volatile() > 0 {
            timeout = timeout.min(self.next_expire_round.saturating_duration_since(now));
        }
        if self.store.reclaiming() {
            timeout = Duration::ZERO; // Take back what the last snapshot kept, a slice per turn.
        }
        if self.replicating() {
            timeout = timeout.min(replicate::CRON);
        }
        if let Some(left) = self.pause_timer(now) {
            timeout = timeout.min(left);
        }
        timeout
    }

    /// Frees what the last snapshot kept, a slice at a time, for at most `RECLAIM_TIME`.
    fn reclaim(&mut self) {
        if !self.store.reclaiming() {
            return;
        }
        let started = Instant::now();
        while self.store.reclaim(RECLAIM_SLICE) > 0 {
            settle_allocator();
            if started.elapsed() >= RECLAIM_TIME {
                break;
            }
        }
    }

    /// A round of active expiry when one is due. Rounds follow each other turn after turn while
    /// more than a tenth of the keys looked at had expired (as Redis repeats its cycle), so a mass
    /// expiry is reclaimed quickly, but in slices that leave clients served in between.
    fn expire_keys(&mut self) {
        let now = Instant::now();
        if self.stopping.is_some() || now < self.next_expire_round || self.store.volatile() == 0 {
            return;
        }
        self.store.set_clock(unix_ms());
        let round = self.store.expire_some(EXPIRE_BUDGET);
        persistence::record_dropped(&mut self.store, &mut self.state, &mut self.journal);
        let busy = round.removed * 10 > round.examined && !round.wrapped;
        self.next_expire_round = if busy { now } else { now + EXPIRE_PERIOD };
    }

    fn accept(&mut self, http: bool) {
        loop {
            let listener = if http {
                &self.http_listener
            } else {
                &self.listener
            };
            let Some(listener) = listener else {
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
            self.admit(stream, peer, http);
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: SocketAddr, http: bool) {
        self.state.stats.connections_received += 1;
        if self.conns.len() >= self.state.config.maxclients {
            self.state.stats.rejected_connections += 1;
            // Best effort: a fresh socket's send buffer takes this short reply.
            let refusal = if http {
                http::refusal_response(
                    503,
                    "Service Unavailable",
                    b"max number of clients reached\n",
                )
            } else {
                b"-ERR max number of clients reached\r\n".to_vec()
            };
            let _ = io::Write::write(&mut stream, &refusal);
            return;
        }
        let config = &self.state.config;
        if config.protected_mode && self.state.acl.default_nopass() && !is_loopback(peer.ip()) {
            self.state.stats.rejected_connections += 1;
            let refusal = if http {
                // The same explanation, as an HTTP answer.
                let text = DENIED.strip_prefix(b"-").unwrap_or(DENIED);
                let text = [text.strip_suffix(b"\r\n").unwrap_or(text), b"\n"].concat();
                http::refusal_response(403, "Forbidden", &text)
            } else {
                DENIED.to_vec()
            };
            let _ = io::Write::write(&mut stream, &refusal);
            debug!("client {peer} refused: protected mode");
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
            peer: Some(peer),
            slot: key,
            // As Redis: logged in as the default user when it needs no password now, and
            // staying so when a password is set later (requirepass, ACL SETUSER default).
            authenticated: self.state.acl.default_open(),
            ..ClientState::default()
        };
        let now = Instant::now();
        let laddr = stream.local_addr().unwrap_or(self.state.listening);
        let info = ClientInfo::new(client.id, peer, laddr, stream.as_raw_fd(), now);
        list_client(&mut self.state.clients, key, info);
        self.next_client_id += 1;
        let mut conn = Connection::new(stream, peer, client);
        conn.http = http;
        entry.insert(conn);
        self.count_clients();
        debug!("client {peer} connected");
    }

    /// Serves one connection: a client, a replica following us, or our link to a primary.
    fn drive(&mut self, key: usize) {
        match self.conns.get(key) {
            None => return,
            Some(conn) if conn.link.is_some() => self.drive_link(key),
            Some(conn) if conn.follower.is_some() => self.drive_follower(key),
            Some(_) => self.drive_client(key),
        }
        // A role change REPLICAOF asked for takes effect before any other connection is
        // served, as Redis drops the old link inside the command: a promoted replica that
        // went on reading its old primary's stream would apply it as its own writes and
        // acknowledge, to the old primary, writes it never received.
        self.change_role();
    }

    /// Reads, executes and writes for one client until it has nothing more to do for now.
    ///
    /// It reads only when every complete request already read has been executed, so input never
    /// piles up behind a backlog of replies.
    fn drive_client(&mut self, key: usize) {
        let high_water = self.state.config.output_buffer_high_water;
        let (mut turns, mut bytes) = (TURN_BUDGET, TURN_BYTES);
        // A short read emptied the socket: the next read would only say WouldBlock, a third
        // syscall per request at pipeline 1. Data arriving later raises a new edge.
        let mut drained = false;
        let mut backlogged = false;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return; // A spurious event for a connection already closed.
            };
            let stopped = if self.stopping.is_some() {
                Stopped::Held
            } else {
                self.store.set_clock(unix_ms());
                let was_waiting = conn.awaiting_snapshot.is_some();
                let was_held = conn.hold.is_some();
                let was_waiting_repl = conn.waiting.is_some();
                let was_postponed = conn.postponed;
                let (store, state, journal) = (&mut self.store, &mut self.state, &mut self.journal);
                let stopped = if conn.http {
                    http::execute_pending(conn, store, state, journal, self.copy_limit)
                } else {
                    execute_pending(conn, store, state, journal, self.copy_limit)
                };
                if let (false, Some(dialect)) = (was_waiting, conn.awaiting_snapshot) {
                    self.waiting_next.push((key, conn.client.id, dialect));
                }
                if !was_held && conn.hold.is_some() {
                    self.held.push(key);
                }
                if !was_waiting_repl && conn.waiting.is_some() {
                    self.repl.add_waiter(key, conn.client.id);
                }
                if !was_postponed && conn.postponed {
                    self.paused.push((key, conn.client.id));
                }
                stopped
            };
            let hard = if conn.client.subs.active() {
                self.state.config.pubsub_output_limit.hard
            } else {
                self.state.config.output_limit.hard
            };
            if hard > 0 && conn.pending_output() >= hard {
                // Before any of it is sent, as in Redis: a reader as fast as the loop must not
                // slip a reply past the hard limit.
                self.over_output_limit(key, Instant::now());
                return;
            }
            if stopped == Stopped::Held && conn.postponed && conn.hangup {
                // Redis reads on from a held client and frees it at end of input: what it
                // sent never runs, and it no longer counts as blocked.
                return self.close(key, "closed by the client while held by a pause");
            }
            if stopped == Stopped::Held || stopped == Stopped::NeedInput && conn.peer_closed {
                break;
            }
            if turns == 0 || bytes == 0 || stopped == Stopped::Yield {
                // Edge-triggered: no new event will come for work already waiting, so revisit.
                self.unfinished.push(key);
                break;
            }
            turns -= 1;
            if stopped == Stopped::Backlog {
                match self.flush(key) {
                    Ok(written) => {
                        self.touch(key, written);
                        bytes = bytes.saturating_sub(written);
                    }
                    Err(e) => return self.close(key, &e.to_string()),
                }
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.pending_output() >= high_water)
                {
                    backlogged = true;
                    break; // The client is not reading; WRITABLE will bring us back.
                }
                continue;
            }
            if drained {
                break;
            }
            match conn.read_once() {
                Ok(ReadOutcome::Data { n, drained: short }) => {
                    drained = short && !conn.hangup;
                    self.state.stats.net_input_bytes += n as u64;
                    bytes = bytes.saturating_sub(n);
                    self.touch(key, n);
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => conn.peer_closed = true,
                Err(e) => return self.close(key, &e.to_string()),
            }
        }
        // What this client published goes out before its own replies, as in Redis: a publisher
        // that waits for its counts is paced by delivery, not ahead of it.
        self.deliver();
        self.flush_receivers();
        self.after_io(key);
        if self.conns.get(key).is_some_and(|c| c.follower.is_some()) {
            // It sent PSYNC: from now on it is a replica.
            return self.start_follower(key);
        }
        if backlogged
            && self
                .conns
                .get(key)
                .is_some_and(|c| c.pending_output() < high_water)
        {
            // The client read meanwhile and after_io's flush sent the backlog: no WRITABLE event
            // will come, and requests already read raise no READABLE one. Seen as a 10 s hang
            // of a pipelined HTTP client in CI.
            self.unfinished.push(key);
        }
    }

    /// Flushes, then closes or sets WRITABLE interest as the connection's state requires.
    fn after_io(&mut self, key: usize) {
        match self.flush(key) {
            Ok(written) => self.touch(key, written),
            Err(e) => return self.close(key, &e.to_string()),
        }
        if self.over_output_limit(key, Instant::now()) {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(Some(info)) = self.state.clients.get_mut(key) {
            describe(conn, info);
        }
        let pending = conn.pending_output() > 0;
        if !pending && conn.closing == Closing::AfterFlush {
            return self.close(key, "closed by request");
        }
        if !pending && conn.peer_closed && conn.awaiting_snapshot.is_none() {
            return self.close(key, "peer closed");
        }
        // Held replies wait for the log, not for the socket: no WRITABLE wake-ups for them.
        let sendable = conn.sendable() > 0;
        if sendable != conn.wants_writable {
            let interest = if sendable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            conn.wants_writable = sendable;
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
            {
                self.close(key, &e.to_string());
            }
        }
    }

    /// Writes what `key` may send now; returns the bytes written.
    fn flush(&mut self, key: usize) -> io::Result<usize> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(0);
        };
        let written = conn.flush()?;
        self.state.stats.net_output_bytes += written as u64;
        Ok(written)
    }

    /// Notes that `key` moved `bytes` (for `--timeout` and CLIENT LIST's `idle=`).
    fn touch(&mut self, key: usize, bytes: usize) {
        if bytes > 0 {
            if let Some(Some(info)) = self.state.clients.get_mut(key) {
                info.last_active = Instant::now();
            }
        }
    }

    /// Closes `key` if its unsent replies break `client-output-buffer-limit`; true if closed.
    fn over_output_limit(&mut self, key: usize, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        // Redis's classes: a subscribed client is held to the pub/sub limit.
        let limit = if conn.client.subs.active() {
            self.state.config.pubsub_output_limit
        } else {
            self.state.config.output_limit
        };
        if conn.follower.is_some() || conn.link.is_some() {
            return false; // Replicas have limits of their own, checked as the stream grows.
        }
        let Some(which) = output_limit_broken(conn, &limit, now) else {
            return false;
        };
        self.state.stats.output_buffer_limit_disconnections += 1;
        warn!(
            "client {} closed for overcoming of output buffer limits ({which} limit, {} bytes pending)",
            conn.peer,
            conn.pending_output()
        );
        self.close(key, "output buffer limit");
        true
    }

    /// Looks at the share of clients due: idle ones past `--timeout` are closed, and so are
    /// ones that held replies above the soft output limit for too long without reading.
    fn client_cron(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_client_cron);
        if elapsed < CLIENT_CRON {
            return;
        }
        self.last_client_cron = now;
        let slots = self.conns.capacity();
        if slots == 0 || self.stopping.is_some() {
            return;
        }
        let due = (slots as u128 * elapsed.as_millis() / 1000).max(16) as usize;
        let idle_limit = Duration::from_secs(self.state.config.timeout);
        for _ in 0..due.min(slots) {
            let key = self.client_cursor % slots;
            self.client_cursor = key + 1;
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            let waiting = conn.awaiting_snapshot.is_some()
                || conn.awaiting_shutdown.is_some()
                || conn.postponed
                || conn.hold.is_some()
                || conn.waiting.is_some()
                || conn.follower.is_some();
            let idle = match self.state.clients.get(key) {
                Some(Some(info)) => now.saturating_duration_since(info.last_active),
                _ => Duration::ZERO,
            };
            if !idle_limit.is_zero() && idle > idle_limit && !waiting {
                self.close(key, "idle timeout");
                continue;
            }
            if idle > IDLE_BUFFER_RELEASE {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.release_idle_buffers();
                    if let Some(Some(info)) = self.state.clients.get_mut(key) {
                        describe(conn, info);
                    }
                }
            }
            self.over_output_limit(key, now);
        }
    }

    /// Closes the clients CLIENT KILL named; their unsent replies are dropped, as in Redis.
    fn kill_clients(&mut self) {
        for (key, id, why) in std::mem::take(&mut self.state.kill) {
            // The id check: the slot may hold a newer client if the named one left meanwhile.
            if let Some(Some(info)) = self.state.clients.get(key) {
                if info.id == id {
                    self.close(key, why);
                }
            }
        }
    }

    /// INFO's `connected_clients`: connections, excluding replicas of this server, as Redis
    /// counts them (a replica's link to its primary is counted, as Redis counts its master).
    fn count_clients(&mut self) {
        let replicas = self.state.repl.replicas.len();
        self.state.connected_clients = self.conns.len().saturating_sub(replicas);
    }

    fn close(&mut self, key: usize, why: &str) {
        if let Some(Some(_)) = self.state.clients.get(key) {
            self.state.clients[key] = None;
        }
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.forget_subscriptions(&conn.client);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.state.watches.unwatch_all(&mut conn.client);
            debug!("client {} closed: {why}", conn.peer);
            if let Some(link) = conn.link.take() {
                self.link_closed(key, &link, why);
            }
            if let Some(follower) = &conn.follower {
                if follower.sending {
                    // The sync thread writes to a duplicate of the socket: shutting it down
                    // ends the thread's writes and tells the replica at once.
                    // SAFETY: the descriptor is open until `conn` drops, below.
                    unsafe { libc::shutdown(conn.stream.as_raw_fd(), libc::SHUT_RDWR) };
                }
                info!("replica {} disconnected: {why}", conn.peer);
                self.state.repl.replicas.retain(|r| r.key != key);
            }
        }
        self.count_clients();
    }

    fn read_news(&mut self) {
        while let Ok(news) = self.news.try_recv() {
            match news {
                News::Shutdown(why) => self.begin_shutdown(why, false),
                News::SnapshotDone(done) => self.snapshot_done(done),
                News::Log(report) => self.log_report(report),
                News::Sync { key, id, done } => self.sync_news(key, id, done),
                News::Loaded(generation, result) => self.image_loaded(generation, result),
                News::Resolved(generation, addr) => self.resolved(generation, addr),
            }
        }
    }

    fn read_signals(&mut self) {
        let asked = self
            .signals
            .as_mut()
            .map(|s| s.pending())
            .unwrap_or_default();
        for asked in asked {
            match asked {
                signals::Asked::Shutdown(name) => self.shutdown_signal(name),
                signals::Asked::Reopen => self.reopen_files(),
            }
        }
    }

    fn reopen_files(&mut self) {
        if let Err(e) = crate::logging::reopen() {
            warn!("SIGHUP: cannot reopen {}: {e}", self.state.config.logfile);
        }
        if let Some(audit) = &self.state.audit {
            audit.reopen();
        }
        info!("SIGHUP: log files reopened");
    }

    /// Timers and deferred work, once per loop turn.
    fn tick(&mut self) {
        let now = Instant::now();
        self.shutdown_turn(now);
        self.pause_turn(now);
        if self
            .last_sample
            .is_none_or(|t| now - t >= Duration::from_secs(1))
        {
            self.state.rss_bytes = resident_bytes();
            self.last_sample = Some(now);
        }
        self.snapshot_timer(now);
        self.kill_clients();
        self.client_cron(now);
        self.replication_cron(now);
        self.apply_config_changes(now);
    }

    /// Carries out what a CONFIG SET of a setting with side effects asks for. Settings the loop
    /// and the commands read live from `state.config` (timeout, maxclients, requirepass, output
    /// limits, ...) need nothing here; one whose change must reach a thread or a timer gets a
    /// comparison against the value last applied.
    fn apply_config_changes(&mut self, now: Instant) {
        let config = &self.state.config;
        if config.save_interval != self.applied_save_interval {
            self.applied_save_interval = config.save_interval;
            self.next_timed_snapshot = now + Duration::from_secs(config.save_interval);
        }
        let log = &mut self.state.log;
        if log.enabled && log.policy != Some(config.appendfsync) {
            log.policy = Some(config.appendfsync);
            if let Some(writer) = &self.log {
                writer.send(crate::persist::Order::Policy(config.appendfsync));
            }
        }
    }
}

/// Which output limit `conn` breaks at `now`, if any; starts or clears its soft-limit clock.
fn output_limit_broken(
    conn: &mut Connection,
    limit: &OutputLimit,
    now: Instant,
) -> Option<&'static str> {
    let pending = conn.pending_output();
    if limit.hard > 0 && pending >= limit.hard {
        return Some("hard");
    }
    if limit.soft == 0 || pending < limit.soft {
        conn.over_soft_limit_since = None;
        return None;
    }
    let since = *conn.over_soft_limit_since.get_or_insert(now);
    (now.saturating_duration_since(since) > Duration::from_secs(limit.soft_seconds))
        .then_some("soft")
}

/// Puts `info` in CLIENT LIST's slot `key`.
fn list_client(clients: &mut Vec<Option<ClientInfo>>, key: usize, info: ClientInfo) {
    if clients.len() <= key {
        clients.resize(key + 1, None);
    }
    if let Some(slot) = clients.get_mut(key) {
        *slot = Some(info);
    }
}

/// Copies what CLIENT LIST shows of `conn` into `info`.
fn describe(conn: &Connection, info: &mut ClientInfo) {
    let (size, free) = conn.input.sizes();
    info.qbuf = conn.input.pending().len();
    info.qbuf_free = free.min(size);
    info.rbs = size;
    info.rbp = conn.input.peak();
    info.multi_mem = conn.client.multi.as_ref().map_or(0, |q| q.requests.len());
    info.obl = conn.pending_output();
    info.omem = conn.output_capacity();
    info.writable = conn.wants_writable;
    info.cmd = conn.client.last_cmd;
    info.resp = if conn.client.resp3 { 3 } else { 2 };
    info.sub = conn.client.subs.channels.len();
    info.psub = conn.client.subs.patterns.len();
    info.ssub = conn.client.subs.shard.len();
    info.multi = conn.client.multi.as_ref().map(|queue| queue.count);
    info.blocked = conn.waiting.is_some() || conn.awaiting_shutdown.is_some() || conn.postponed;
    info.user = conn.client.user;
    if info.name != conn.client.name {
        info.name.clone_from(&conn.client.name);
    }
}

/// True for 127.0.0.0/8 and ::1, also when written as an IPv4-mapped IPv6 address.
fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
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

/// Makes glibc sort the blocks just freed into its bins now. glibc keeps freed blocks on one
/// unsorted list and sorts them inside the next allocation no bin serves exactly: after a
/// snapshot's kept records were freed, that was one allocation of 10-15 ms on the loop (the next
/// point-in-time copy, or a connection's buffer growing). One throwaway allocation of that kind
/// right after each bounded slice of frees sorts the slice in the turn that freed it. It only
/// pays since a written image's tables are kept for reuse (`Store::retire`) instead of joining
/// the backlog; an earlier version also lost to the compiler, which removes a `malloc` whose
/// block is never used. musl needs nothing.
fn settle_allocator() {
    // black_box: the compiler may otherwise remove an allocation nothing uses.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    drop(std::hint::black_box(Vec::<u8>::with_capacity(
        std::hint::black_box(1100),
    )));
}

/// CPU time this thread has used: unlike wall time, it leaves out moments the OS ran others.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct passed to it.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}
