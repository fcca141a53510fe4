//! The loop's side of replication: replicas of this server are client connections that sent
//! PSYNC (followers), and the link to the primary this server follows is a connection in the
//! same slab with its own state machine. No thread touches a socket: an image for a full sync
//! is serialized by a helper thread into a bounded channel the loop sends from, and a received
//! image is decoded by a helper thread into a fresh store the loop swaps in.
//!
//! Link states, as ROLE names them: connect → connecting → handshake → sync (full only) →
//! connected; any failure goes back to connect, with a growing pause before the next attempt.

use std::io::{self, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Interest, Token};

use super::connection::{Connection, ReadOutcome};
use super::execute::execute_args;
use super::{Handle, News, Server};
use crate::command::{unix_ms, ClientState};
use crate::protocol::{self, Dialect, ParseError, Reply};
use crate::replication::link::{self, Framing, PsyncReply, Step, EOF_MARK};
use crate::replication::{Asked, Backlog, LinkState, Psync, ReplicaRow};
use crate::store::{Image, Store};

/// Bytes of image a sync thread writes to its pipe at a time.
const SYNC_CHUNK: usize = 64 * 1024;

/// Unsent output above which the loop leaves the image in the pipe: the thread then blocks on
/// the full pipe, so a slow replica slows its sync thread, not the server's memory.
const SYNC_HIGH_WATER: usize = 1 << 20;

/// Tokens of full-sync pipes: this plus the replica's slab key.
pub(super) const SYNC_TOKENS: usize = usize::MAX / 2;

/// How often a replica acknowledges its offset (Redis: every second).
const ACK_PERIOD: Duration = Duration::from_secs(1);

/// How often the replication timers run while replication is in use.
pub(super) const CRON: Duration = Duration::from_millis(100);

/// First pause before a failed link is tried again; it doubles up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Reads one link or follower gets per turn before others have their go.
const READS_PER_TURN: usize = 16;

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

/// The log record a replica appends after the changes it applied: the history and offset they
/// reach, so a replica restarted even after kill -9 knows exactly what it holds.
pub const POSITION_RECORD: &[u8] = b"REPLPOS";

/// A WAIT whose reply is held.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    /// Replicas wanted.
    pub replicas: u64,
    /// The offset they must have acknowledged.
    pub offset: u64,
    /// When to answer anyway.
    pub deadline: Option<Instant>,
    /// How the reply is encoded.
    pub dialect: Dialect,
}

/// A replica of this server, on its client connection.
#[derive(Debug)]
pub struct Follower {
    psync: Psync,
    /// Registered in the replica list, its sync started.
    started: bool,
    /// The read end of the pipe the sync thread writes the image into.
    pipe: Option<mio::net::UnixStream>,
    /// The thread sent the whole image.
    image_sent: bool,
    /// Stream bytes that came while the image was being sent.
    pending: Vec<u8>,
    /// The image is sent: stream bytes go straight to the output.
    online: bool,
}

impl Follower {
    /// A follower that PSYNC answered with `psync`.
    pub fn new(psync: Psync) -> Follower {
        Follower {
            psync,
            started: false,
            pipe: None,
            image_sent: false,
            pending: Vec::new(),
            online: false,
        }
    }
}

/// Where the link to our primary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshake,
    Payload,
    Loading,
    Online,
}

/// Our link to the primary, on its connection.
#[derive(Debug)]
pub struct Link {
    phase: Phase,
    /// Replies still due, in order.
    steps: Vec<Step>,
    framing: Option<Framing>,
    payload: Vec<u8>,
    /// The FULLRESYNC's id and offset, taken on once the image is loaded.
    full: Option<(String, u64)>,
    since: Instant,
}

/// The loop's replication bookkeeping.
#[derive(Debug)]
pub(super) struct ReplLoop {
    /// The link's slab key.
    link: Option<usize>,
    retry_at: Instant,
    backoff: Duration,
    /// Clients whose WAIT is held: slab key and client id.
    waiters: Vec<(usize, u64)>,
    next_cron: Instant,
    last_ping: Instant,
    last_ack: Instant,
    /// A WAIT came this turn: ask the replicas for their offsets.
    getack: bool,
    /// Counts link attempts, so a late image from an old link is thrown away.
    generation: u64,
    /// Successful snapshots needed before the log may record positions again: after a full
    /// sync the log's older segments hold another history, so until a snapshot of the loaded
    /// data is durable a restart must not trust a position (it gets a full sync instead).
    positions_after_save: u64,
}

impl ReplLoop {
    /// Notes a client whose WAIT is now held.
    pub(super) fn add_waiter(&mut self, key: usize, id: u64) {
        self.waiters.push((key, id));
        self.getack = true;
    }
}

impl Default for ReplLoop {
    fn default() -> Self {
        let now = Instant::now();
        ReplLoop {
            link: None,
            retry_at: now,
            backoff: RETRY_FIRST,
            waiters: Vec::new(),
            next_cron: now,
            last_ping: now,
            last_ack: now,
            getack: false,
            generation: 0,
            positions_after_save: 0,
        }
    }
}

impl Server {
    /// True while replication needs the timers to run often.
    pub(super) fn replicating(&self) -> bool {
        let repl = &self.state.repl;
        repl.master.is_some() || !repl.replicas.is_empty() || !self.repl.waiters.is_empty()
    }

    /// Once per turn: ask for acknowledgements if a WAIT came, send the turn's stream.
    pub(super) fn replication_turn(&mut self) {
        if std::mem::take(&mut self.repl.getack)
            && !self.state.repl.is_replica()
            && !self.state.repl.replicas.is_empty()
        {
            self.state.repl.feed(GETACK);
        }
        self.propagate();
    }

    /// Timers: role changes asked for, link attempts and timeouts, acknowledgements, pings to
    /// replicas, the backlog's time to live, and WAIT deadlines.
    pub(super) fn replication_cron(&mut self, now: Instant) {
        if let Some(asked) = self.state.repl.asked.take() {
            match asked {
                Asked::Follow => self.follow(),
                Asked::Promote => self.promote(),
            }
        }
        if now < self.repl.next_cron {
            return;
        }
        self.repl.next_cron = now + CRON;
        let settings = self.state.config.repl.clone();
        let timeout = Duration::from_secs(settings.timeout);
        if self.state.repl.master.is_some() && self.repl.link.is_none() && now >= self.repl.retry_at
        {
            self.connect_link(now);
        }
        if let Some(key) = self.repl.link {
            self.link_timers(key, now, timeout);
        }
        let repl = &mut self.state.repl;
        if !repl.is_replica()
            && !repl.replicas.is_empty()
            && now.duration_since(self.repl.last_ping).as_secs() >= settings.ping_period
        {
            self.repl.last_ping = now;
            repl.feed(PING);
        }
        let late: Vec<usize> = repl
            .replicas
            .iter()
            .filter(|r| r.state == "online" && now.duration_since(r.ack_at) > timeout)
            .map(|r| r.key)
            .collect();
        for key in late {
            self.close(key, "replica timed out (repl-timeout)");
        }
        let repl = &mut self.state.repl;
        if repl.replicas.is_empty() && !repl.is_replica() && repl.backlog.is_some() {
            let since = *repl.lonely_since.get_or_insert(now);
            if settings.backlog_ttl > 0
                && now.duration_since(since).as_secs() >= settings.backlog_ttl
            {
                info!(
                    "replication: no replica for {} s: backlog freed",
                    settings.backlog_ttl
                );
                repl.backlog = None;
            }
        }
        if let Some(backlog) = &repl.backlog {
            if backlog.size() != settings.backlog_size {
                repl.backlog = Some(backlog.resized(settings.backlog_size));
            }
        }
        self.answer_waiters(now);
        self.propagate();
    }

    /// Sends the stream bytes of this turn to every replica; ones that fall too far behind
    /// (`client-output-buffer-limit replica`) are disconnected.
    fn propagate(&mut self) {
        if self.state.repl.outgoing.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.state.repl.outgoing);
        let limit = self.state.config.repl.output_limit;
        let now = Instant::now();
        let keys: Vec<usize> = self.state.repl.replicas.iter().map(|r| r.key).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Some(follower) = conn.follower.as_mut() else {
                continue;
            };
            if follower.online {
                conn.output.extend_from_slice(&bytes);
            } else {
                follower.pending.extend_from_slice(&bytes);
            }
            // During a full sync the image's chunks are not counted: they are bounded apart.
            let held = if follower.online {
                conn.pending_output()
            } else {
                follower.pending.len()
            };
            let soft_broken = limit.soft > 0 && held >= limit.soft && {
                let since = *conn.over_soft_limit_since.get_or_insert(now);
                now.duration_since(since).as_secs() > limit.soft_seconds
            };
            if limit.soft == 0 || held < limit.soft {
                conn.over_soft_limit_since = None;
            }
            if limit.hard > 0 && held >= limit.hard || soft_broken {
                self.state.stats.output_buffer_limit_disconnections += 1;
                warn!(
                    "replica {} closed for overcoming of output buffer limits ({held} bytes \
                     pending): it will resync",
                    conn.peer
                );
                self.close(key, "replica output buffer limit");
                continue;
            }
            self.after_io(key);
        }
        let mut outgoing = bytes;
        outgoing.clear();
        if self.state.repl.outgoing.is_empty() && outgoing.capacity() <= 1 << 20 {
            self.state.repl.outgoing = outgoing; // Keep the allocation for the next turn.
        }
    }

    /// A client just became a replica: list it, and send it the backlog or an image.
    pub(super) fn start_follower(&mut self, key: usize) {
        // Bytes already in this turn's stream are in the image or the backlog it gets.
        self.propagate();
        let backlog_size = self.state.config.repl.backlog_size;
        self.state.repl.ensure_backlog(backlog_size);
        self.state.repl.lonely_since = None;
        let announce_ip = self.state.config.repl.announce_ip.parse().ok();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(follower) = conn.follower.as_mut() else {
            return;
        };
        follower.started = true;
        let now = Instant::now();
        let mut row = ReplicaRow {
            key,
            id: conn.client.id,
            ip: announce_ip.unwrap_or(conn.peer.ip()),
            port: conn.client.replica_port.unwrap_or(conn.peer.port()),
            state: "send_bulk",
            ack: 0,
            ack_at: now,
        };
        match follower.psync {
            Psync::Continue(from) => {
                let repl = &self.state.repl;
                if let Some((a, b)) = repl.backlog.as_ref().and_then(|b| b.since(from)) {
                    conn.output.extend_from_slice(a);
                    conn.output.extend_from_slice(b);
                }
                follower.online = true;
                row.state = "online";
                row.ack = from.saturating_sub(1);
                info!(
                    "replica {} continues from offset {from} (partial resync)",
                    conn.peer
                );
            }
            Psync::Full(_) => {
                let image = self.store.image();
                let mark: [u8; EOF_MARK] = crate::replication::random_id()
                    .as_bytes()
                    .try_into()
                    .unwrap_or([b'0'; EOF_MARK]);
                conn.output.extend_from_slice(b"$EOF:");
                conn.output.extend_from_slice(&mark);
                conn.output.extend_from_slice(b"\r\n");
                let id = conn.client.id;
                let pipe =
                    spawn_sync(self.handle.clone(), key, id, image, mark).and_then(|mut pipe| {
                        let token = Token(SYNC_TOKENS + key);
                        let registry = self.poll.registry();
                        registry.register(&mut pipe, token, Interest::READABLE)?;
                        Ok(pipe)
                    });
                match pipe {
                    Ok(pipe) => follower.pipe = Some(pipe),
                    Err(e) => {
                        warn!("replica {}: cannot start a full sync: {e}", conn.peer);
                        self.close(key, "full sync failed to start");
                        return;
                    }
                }
                info!(
                    "replica {} gets a full sync at offset {}",
                    conn.peer, self.state.repl.offset
                );
            }
        }
        self.state.repl.replicas.push(row);
        self.after_io(key);
    }

    /// Reads a replica's acknowledgements and sends what it is due.
    pub(super) fn drive_follower(&mut self, key: usize) {
        let mut acked = None;
        let mut reads = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if reads == READS_PER_TURN {
                // Edge-triggered: no new event comes for what is left; go on next turn.
                self.unfinished.push(key);
                break;
            }
            reads += 1;
            match conn.read_once() {
                Ok(ReadOutcome::Data { n, .. }) => self.state.stats.net_input_bytes += n as u64,
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => {
                    conn.peer_closed = true;
                    break;
                }
                Err(e) => return self.close(key, &e.to_string()),
            }
            acked = acked.max(read_acks(conn));
        }
        if let Some(conn) = self.conns.get_mut(key) {
            acked = acked.max(read_acks(conn));
        }
        if let Some(offset) = acked {
            if let Some(row) = self.state.repl.replicas.iter_mut().find(|r| r.key == key) {
                row.ack = row.ack.max(offset);
                row.ack_at = Instant::now();
            }
            self.answer_waiters(Instant::now());
        }
        self.pump(key);
        self.after_io(key);
    }

    /// Moves the image from the sync thread's pipe into a replica's output while it keeps up;
    /// once the image is out, the stream that came meanwhile follows and the replica is online.
    pub(super) fn pump(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(follower) = conn.follower.as_mut() else {
            return;
        };
        let Some(pipe) = follower.pipe.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        while conn.output.len() < SYNC_HIGH_WATER {
            match io::Read::read(pipe, &mut chunk) {
                Ok(0) => {
                    if !follower.image_sent {
                        return; // The thread's news says whether it all went.
                    }
                    if let Some(mut pipe) = follower.pipe.take() {
                        let _ = self.poll.registry().deregister(&mut pipe);
                    }
                    conn.output.append(&mut follower.pending);
                    follower.online = true;
                    if let Some(row) = self.state.repl.replicas.iter_mut().find(|r| r.key == key) {
                        row.state = "online";
                        row.ack_at = Instant::now();
                    }
                    info!("replica {} is online (full sync sent)", conn.peer);
                    return;
                }
                Ok(n) => conn
                    .output
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return, // WouldBlock: more comes with the next READABLE.
            }
        }
    }

    /// A sync thread is done: whether all of the image went, and the image back.
    pub(super) fn sync_news(&mut self, key: usize, id: u64, done: (bool, Image)) {
        let (ok, image) = done;
        self.store.retire(image);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.client.id != id {
            return;
        }
        let Some(follower) = conn.follower.as_mut() else {
            return;
        };
        if !ok {
            return self.close(key, "the full sync could not be serialized");
        }
        follower.image_sent = true;
        self.pump(key);
        self.after_io(key);
    }

    /// Answers held WAITs that are satisfied or past their deadline.
    fn answer_waiters(&mut self, now: Instant) {
        for (key, id) in std::mem::take(&mut self.repl.waiters) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Some(wait) = conn.waiting.filter(|_| conn.client.id == id) else {
                continue;
            };
            let acked = self.state.repl.acknowledged(wait.offset);
            let late = wait.deadline.is_some_and(|d| now >= d);
            if acked < wait.replicas && !late && self.state.repl.master.is_none() {
                self.repl.waiters.push((key, id));
                continue;
            }
            conn.waiting = None;
            protocol::encode_reply(
                &Reply::Integer(acked as i64),
                wait.dialect,
                &mut conn.output,
            );
            self.drive(key);
        }
    }

    /// REPLICAOF host port: drop the old link and replicas, and connect (on the next cron).
    fn follow(&mut self) {
        if let Some(key) = self.repl.link.take() {
            self.close(key, "REPLICAOF changed the primary");
        }
        let keys: Vec<usize> = self.state.repl.replicas.iter().map(|r| r.key).collect();
        for key in keys {
            // They follow a history that is about to change; they reconnect and resync.
            self.close(key, "this server follows another primary now");
        }
        self.store.defer_expiry(true);
        self.repl.retry_at = Instant::now();
        self.repl.backoff = RETRY_FIRST;
        self.repl.next_cron = Instant::now();
        self.answer_waiters(Instant::now());
    }

    /// REPLICAOF NO ONE: drop the link; the data stays, and so do this server's replicas.
    fn promote(&mut self) {
        if let Some(key) = self.repl.link.take() {
            self.close(key, "REPLICAOF NO ONE");
        }
        self.store.defer_expiry(false);
    }

    /// Opens the link's TCP connection, without waiting for it.
    fn connect_link(&mut self, now: Instant) {
        let Some(master) = self.state.repl.master.as_mut() else {
            return;
        };
        let target = format!("{}:{}", master.host, master.port);
        let addr = match (master.host.as_str(), master.port).to_socket_addrs() {
            Ok(mut addrs) => addrs.next(),
            Err(e) => return self.link_failed(&format!("cannot resolve {target}: {e}"), now),
        };
        let Some(addr) = addr else {
            return self.link_failed(&format!("{target} resolves to no address"), now);
        };
        let mut stream = match mio::net::TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.link_failed(&format!("cannot connect to {target}: {e}"), now),
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), interest)
        {
            return self.link_failed(&format!("cannot register the link: {e}"), now);
        }
        let client = ClientState {
            id: self.next_client_id,
            peer: Some(addr),
            authenticated: true,
            is_master: true,
            ..ClientState::default()
        };
        self.next_client_id += 1;
        let mut conn = Connection::new(stream, addr, client);
        conn.wants_writable = true;
        conn.link = Some(Box::new(Link {
            phase: Phase::Connecting,
            steps: Vec::new(),
            framing: None,
            payload: Vec::new(),
            full: None,
            since: now,
        }));
        entry.insert(conn);
        self.repl.link = Some(key);
        self.repl.generation += 1;
        master.state = LinkState::Connecting;
        info!("replication: connecting to primary {target}");
    }

    /// Notes a failed attempt and when the next one is due.
    fn link_failed(&mut self, why: &str, now: Instant) {
        let backoff = self.repl.backoff;
        warn!(
            "replication: {why}; serving the data held, retrying in {:.1} s",
            backoff.as_secs_f64()
        );
        self.repl.retry_at = now + backoff;
        self.repl.backoff = (backoff * 2).min(RETRY_MAX);
        if let Some(master) = self.state.repl.master.as_mut() {
            master.state = LinkState::Connect;
        }
    }

    /// The link's connection was closed, for whatever reason.
    pub(super) fn link_closed(&mut self, key: usize, link: &Link, why: &str) {
        if self.repl.link != Some(key) {
            return;
        }
        self.repl.link = None;
        let now = Instant::now();
        if link.phase == Phase::Online {
            if let Some(master) = self.state.repl.master.as_mut() {
                master.down_since = Some(now);
            }
            self.repl.backoff = RETRY_FIRST;
        }
        let Some(master) = &self.state.repl.master else {
            return;
        };
        let target = format!("{}:{}", master.host, master.port);
        let what = match link.phase {
            Phase::Connecting => format!("cannot connect to primary {target} ({why})"),
            Phase::Handshake => format!("handshake with primary {target} failed: {why}"),
            Phase::Payload | Phase::Loading => {
                format!("full sync from primary {target} failed: {why}")
            }
            Phase::Online => format!("lost the link to primary {target} ({why})"),
        };
        self.link_failed(&what, now);
    }

    /// Closes a link that went quiet for `repl-timeout`, and acknowledges every second.
    fn link_timers(&mut self, key: usize, now: Instant, timeout: Duration) {
        let offset = self.state.repl.offset;
        let last_io = self.state.repl.master.as_ref().and_then(|m| m.last_io);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(link) = conn.link.as_ref() else {
            return;
        };
        let heard = last_io.map_or(link.since, |at| at.max(link.since));
        if link.phase != Phase::Loading && now.duration_since(heard) > timeout {
            return self.close(key, "no news from the primary for repl-timeout");
        }
        if link.phase == Phase::Online && now.duration_since(self.repl.last_ack) >= ACK_PERIOD {
            self.repl.last_ack = now;
            send_ack(conn, offset);
            self.after_io(key);
        }
    }

    /// Reads and handles what the primary sent, whatever the link's phase.
    pub(super) fn drive_link(&mut self, key: usize) {
        let now = Instant::now();
        let mut reads = 0;
        loop {
            if reads == READS_PER_TURN {
                // Edge-triggered: no new event comes for what is left; go on next turn.
                self.unfinished.push(key);
                break;
            }
            reads += 1;
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Some(link) = conn.link.as_mut() else {
                return;
            };
            match link.phase {
                Phase::Connecting => match conn.stream.take_error() {
                    Ok(Some(e)) | Err(e) => return self.close(key, &format!("connect: {e}")),
                    // Not connected yet: WRITABLE stays registered and says when it is.
                    Ok(None) if conn.stream.peer_addr().is_err() => return,
                    Ok(None) => {
                        link.phase = Phase::Handshake;
                        link.steps = vec![Step::Pong];
                        link.since = now;
                        protocol::encode_request(&["PING"], &mut conn.output);
                        self.set_link_state(LinkState::Handshake);
                        continue;
                    }
                },
                // Stream bytes wait in the socket until the image is in.
                Phase::Loading => break,
                _ => {}
            }
            let more = match conn.read_once() {
                Ok(ReadOutcome::Data { n, .. }) => {
                    self.state.stats.net_input_bytes += n as u64;
                    if let Some(master) = self.state.repl.master.as_mut() {
                        master.last_io = Some(now);
                    }
                    true
                }
                Ok(ReadOutcome::WouldBlock) => false,
                Ok(ReadOutcome::Closed) => {
                    conn.peer_closed = true;
                    false
                }
                Err(e) => return self.close(key, &e.to_string()),
            };
            if let Err(why) = self.link_input(key) {
                return self.close(key, &why);
            }
            if !more {
                break;
            }
        }
        self.after_io(key);
    }

    /// Handles the input the link holds; an error closes it.
    fn link_input(&mut self, key: usize) -> Result<(), String> {
        loop {
            let Some(phase) = self
                .conns
                .get(key)
                .and_then(|c| c.link.as_ref())
                .map(|l| l.phase)
            else {
                return Ok(());
            };
            let progressed = match phase {
                Phase::Handshake => self.handshake(key)?,
                Phase::Payload => self.payload(key)?,
                Phase::Online => return self.apply_stream(key),
                Phase::Connecting | Phase::Loading => return Ok(()),
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Checks the next handshake reply; true if one was complete.
    fn handshake(&mut self, key: usize) -> Result<bool, String> {
        let settings = &self.state.config.repl;
        let repl = &self.state.repl;
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(false);
        };
        let Some(link) = conn.link.as_mut() else {
            return Ok(false);
        };
        let Some(&step) = link.steps.first() else {
            return Ok(false);
        };
        let Some((line, used)) = link::line(conn.input.pending()).map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let answer = link::check(step, line).map_err(|e| e.to_string())?;
        conn.input.consume(used);
        link.steps.remove(0);
        if step == Step::Pong {
            // The rest in one write, as Redis 7 does.
            let out = &mut conn.output;
            if !settings.masterauth.is_empty() {
                link.steps.push(Step::Auth);
                if settings.masteruser.is_empty() {
                    protocol::encode_request(&["AUTH", &settings.masterauth], out);
                } else {
                    let (user, pass) = (&settings.masteruser, &settings.masterauth);
                    protocol::encode_request(&["AUTH", user, pass], out);
                }
            }
            let port = match settings.announce_port {
                0 => self.state.listening.port(),
                port => port,
            }
            .to_string();
            protocol::encode_request(&["REPLCONF", "listening-port", &port], out);
            protocol::encode_request(&["REPLCONF", "capa", "eof", "capa", "psync2"], out);
            link.steps.extend([Step::Port, Step::Capa]);
            return Ok(true);
        }
        if step == Step::Capa {
            // PSYNC goes alone once the rest is answered: Redis refuses a PSYNC that arrives
            // while replies to the client are still pending.
            let offset = (repl.offset + 1).to_string();
            let (replid, offset) = if repl.resumable {
                (repl.replid.as_str(), offset.as_str())
            } else {
                ("?", "-1")
            };
            protocol::encode_request(&["PSYNC", replid, offset], &mut conn.output);
            link.steps.push(Step::Psync);
            return Ok(true);
        }
        match answer {
            Some(PsyncReply::Full { replid, offset }) => {
                info!("replication: the primary sends a full sync ({replid} at offset {offset})");
                link.full = Some((replid, offset));
                link.phase = Phase::Payload;
                link.since = Instant::now();
                self.set_link_state(LinkState::Sync);
                if let Some(master) = self.state.repl.master.as_mut() {
                    master.sync_read = 0;
                    master.sync_total = None;
                }
            }
            Some(PsyncReply::Continue(new_id)) => {
                link.phase = Phase::Online;
                let repl = &mut self.state.repl;
                if let Some(new_id) = new_id.filter(|id| *id != repl.replid) {
                    // The primary was promoted: our history goes on under its new id.
                    repl.replid2 = std::mem::replace(&mut repl.replid, new_id);
                    repl.second_offset = repl.offset as i64 + 1;
                    self.drop_followers("the primary's history has a new id");
                }
                let repl = &mut self.state.repl;
                repl.ensure_backlog(self.state.config.repl.backlog_size);
                info!(
                    "replication: partial resync from offset {}: the link is up",
                    repl.offset + 1
                );
                self.link_up();
            }
            None => {}
        }
        Ok(true)
    }

    /// Takes in payload bytes of a full sync; true if it made progress.
    fn payload(&mut self, key: usize) -> Result<bool, String> {
        let limit = self.state.config.query_buffer_limit;
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(false);
        };
        let Some(link) = conn.link.as_mut() else {
            return Ok(false);
        };
        let Some(framing) = link.framing.clone() else {
            let Some((line, used)) = link::line(conn.input.pending()).map_err(|e| e.to_string())?
            else {
                return Ok(false);
            };
            // Redis primaries send newlines to keep the link alive while they prepare.
            if !line.is_empty() {
                let framing = link::framing(line).map_err(|e| e.to_string())?;
                if let (Framing::Length(n), Some(master)) =
                    (&framing, self.state.repl.master.as_mut())
                {
                    master.sync_total = Some(*n);
                }
                link.framing = Some(framing);
            }
            conn.input.consume(used);
            return Ok(true);
        };
        let input = conn.input.pending();
        if input.is_empty() {
            return Ok(false);
        }
        let (take, done) = match &framing {
            Framing::Length(n) => {
                let left = (*n as usize).saturating_sub(link.payload.len());
                let take = left.min(input.len());
                (take, take == left)
            }
            Framing::Eof(mark) => {
                // The mark may straddle reads: look in the payload's tail and the input.
                let tail = link.payload.len().min(EOF_MARK - 1);
                let mut window = link.payload[link.payload.len() - tail..].to_vec();
                window.extend_from_slice(input);
                match window.windows(EOF_MARK).position(|w| w == mark) {
                    Some(at) if at < tail => {
                        link.payload.truncate(link.payload.len() - (tail - at));
                        (at + EOF_MARK - tail, true)
                    }
                    Some(at) => {
                        link.payload.extend_from_slice(&input[..at - tail]);
                        (at - tail + EOF_MARK, true)
                    }
                    None => {
                        link.payload.extend_from_slice(input);
                        (input.len(), false)
                    }
                }
            }
        };
        if let Framing::Length(_) = framing {
            link.payload.extend_from_slice(&input[..take]);
        }
        conn.input.consume(take);
        let size = link.payload.len();
        if let Some(master) = self.state.repl.master.as_mut() {
            master.sync_read = size as u64;
        }
        if size > limit {
            return Err(format!(
                "the full sync is larger than client-query-buffer-limit ({limit} bytes)"
            ));
        }
        if done {
            link.phase = Phase::Loading;
            let payload = std::mem::take(&mut link.payload);
            let handle = self.handle.clone();
            let generation = self.repl.generation;
            let spawned = helper(
                "replload",
                Box::new(move || {
                    let result = load_image(&payload);
                    drop(payload);
                    handle.send(News::Loaded(generation, result));
                }),
            );
            if let Err(e) = spawned {
                return Err(format!("cannot start loading the full sync: {e}"));
            }
        }
        Ok(!done)
    }

    /// A received image was decoded: swap it in and let the stream flow.
    pub(super) fn image_loaded(&mut self, generation: u64, result: Result<Box<Store>, String>) {
        let Some(key) = self
            .repl
            .link
            .filter(|_| generation == self.repl.generation)
        else {
            return; // From a link given up since.
        };
        let full = self
            .conns
            .get_mut(key)
            .and_then(|c| c.link.as_mut())
            .and_then(|l| l.full.take());
        let (store, Some((replid, offset))) = (result, full) else {
            return;
        };
        let mut store = match store {
            Ok(store) => store,
            Err(why) => {
                warn!("replication: the full sync cannot be loaded: {why}; the data held is kept");
                return self.close(key, "bad full sync");
            }
        };
        store.defer_expiry(true);
        store.set_clock(unix_ms());
        let keys = store.len();
        let old = std::mem::replace(&mut self.store, *store);
        // Freeing millions of records takes a while: not on the loop.
        if let Err(e) = helper("replfree", Box::new(move || drop(old))) {
            warn!("replication: the old data was freed on the loop ({e})");
        }
        let size = self.state.config.repl.backlog_size;
        let repl = &mut self.state.repl;
        repl.replid = replid;
        repl.offset = offset;
        repl.clear_replid2();
        repl.backlog = Some(Backlog::new(size, offset + 1));
        repl.resumable = true;
        // Their data follows the old history.
        self.drop_followers("this server loaded a full sync");
        // The new data, with its position, goes to disk as a snapshot (and rotates the log).
        let snapshot = &mut self.state.snapshot;
        snapshot.wanted = true;
        self.repl.positions_after_save =
            snapshot.saves_ok + 1 + u64::from(snapshot.running_since.is_some());
        info!("replication: full sync loaded ({keys} keys at offset {offset}): the link is up");
        if let Some(link) = self.conns.get_mut(key).and_then(|c| c.link.as_mut()) {
            link.phase = Phase::Online;
        }
        self.link_up();
        self.drive_link(key);
    }

    fn link_up(&mut self) {
        self.repl.backoff = RETRY_FIRST;
        if let Some(master) = self.state.repl.master.as_mut() {
            master.state = LinkState::Connected;
            master.down_since = None;
            master.last_io = Some(Instant::now());
        }
    }

    fn set_link_state(&mut self, state: LinkState) {
        if let Some(master) = self.state.repl.master.as_mut() {
            master.state = state;
        }
    }

    fn drop_followers(&mut self, why: &str) {
        let keys: Vec<usize> = self.state.repl.replicas.iter().map(|r| r.key).collect();
        for key in keys {
            self.close(key, why);
        }
    }

    /// Applies the primary's stream: each complete request runs as the primary's client (a
    /// transaction only once all of it is in), and its bytes go on to our own backlog and
    /// replicas unchanged, so offsets agree along a chain.
    fn apply_stream(&mut self, key: usize) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        let limits = crate::protocol::Limits {
            unauthenticated: false,
            ..self.state.config.limits
        };
        self.store.set_clock(unix_ms());
        // Keys live on the primary must be seen as live by what it sends, whatever our clock.
        self.store.pause_expiry(true);
        let mut discard = Vec::new();
        let mut applied = false;
        let mut ack = false;
        let Connection { input, client, .. } = conn;
        let result = loop {
            let pending = input.pending();
            if pending.is_empty() {
                break Ok(());
            }
            if pending.first() != Some(&b'*') {
                break Err(format!(
                    "the primary sent something that is not a RESP request: {:?}",
                    String::from_utf8_lossy(&pending[..pending.len().min(40)])
                ));
            }
            let unit = match transaction_len(pending, &limits) {
                Ok(Some(unit)) => unit,
                Ok(None) => break Ok(()),
                Err(why) => break Err(why),
            };
            let mut at = 0;
            while at < unit {
                let Ok((request, used)) = protocol::parse_request(&pending[at..], &limits) else {
                    break;
                };
                at += used;
                let args = &request.args;
                let name = args.first().map_or(&b""[..], |a| a.as_ref());
                if name.eq_ignore_ascii_case(b"PING")
                    || name.eq_ignore_ascii_case(b"MULTI")
                    || name.eq_ignore_ascii_case(b"EXEC")
                {
                    continue;
                }
                if name.eq_ignore_ascii_case(b"REPLCONF") {
                    ack |= args
                        .get(1)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"));
                    continue;
                }
                discard.clear();
                let (store, state, journal) = (&mut self.store, &mut self.state, &mut self.journal);
                execute_args(
                    args,
                    client,
                    &mut discard,
                    store,
                    state,
                    journal,
                    &mut |_, _| {},
                );
                applied = true;
            }
            self.state.repl.feed(&pending[..unit]);
            input.consume(unit);
        };
        self.store.pause_expiry(false);
        super::persistence::record_dropped(&mut self.store, &mut self.state, &mut self.journal);
        let trusted = self.state.snapshot.saves_ok >= self.repl.positions_after_save;
        if applied && self.state.log.enabled && trusted {
            let repl = &self.state.repl;
            let position = [
                POSITION_RECORD.to_vec(),
                repl.replid.as_bytes().to_vec(),
                repl.offset.to_string().into_bytes(),
            ];
            self.journal.record(&position, &mut self.state);
        }
        if ack {
            let offset = self.state.repl.offset;
            if let Some(conn) = self.conns.get_mut(key) {
                send_ack(conn, offset);
            }
            self.repl.last_ack = Instant::now();
        }
        result
    }
}

/// `REPLCONF ACK <offset>` onto the link's output.
fn send_ack(conn: &mut Connection, offset: u64) {
    protocol::encode_request(&["REPLCONF", "ACK", &offset.to_string()], &mut conn.output);
}

/// Bytes of the unit starting `input`: one request, or a whole MULTI ... EXEC; None until all
/// of it is in.
fn transaction_len(
    input: &[u8],
    limits: &crate::protocol::Limits,
) -> Result<Option<usize>, String> {
    let mut at = 0;
    let mut open = false;
    loop {
        match protocol::parse_request(&input[at..], limits) {
            Ok((request, used)) => {
                at += used;
                let name = request.args.first().map_or(&b""[..], |a| a.as_ref());
                if name.eq_ignore_ascii_case(b"MULTI") {
                    open = true;
                } else if name.eq_ignore_ascii_case(b"EXEC") || !open {
                    return Ok(Some(at));
                }
            }
            Err(ParseError::Incomplete) => return Ok(None),
            Err(e) => return Err(format!("the primary sent a bad request: {e:?}")),
        }
    }
}

/// The highest `REPLCONF ACK` offset in a replica's input (all of which is consumed: a replica
/// sends nothing else that needs an answer).
fn read_acks(conn: &mut Connection) -> Option<u64> {
    let limits = crate::protocol::Limits::default();
    let mut best = None;
    loop {
        let input = conn.input.pending();
        match protocol::parse_request(input, &limits) {
            Ok((request, used)) => {
                if let [name, option, offset, ..] = request.args.as_slice() {
                    if name.eq_ignore_ascii_case(b"REPLCONF") && option.eq_ignore_ascii_case(b"ACK")
                    {
                        let offset =
                            protocol::parse_i64(offset).and_then(|o| u64::try_from(o).ok());
                        best = best.max(offset);
                    }
                }
                conn.input.consume(used);
            }
            Err(ParseError::Incomplete) => return best,
            Err(_) => {
                let all = conn.input.pending().len();
                conn.input.consume(all);
                return best;
            }
        }
    }
}

/// Decodes a full sync's image into a fresh store (on the loader thread).
fn load_image(payload: &[u8]) -> Result<Box<Store>, String> {
    let snapshot = crate::persist::decode_snapshot(std::path::Path::new("the full sync"), payload)
        .map_err(|e| e.to_string())?;
    let mut store = Box::new(Store::new());
    store.load(snapshot.pairs);
    Ok(store)
}

/// Starts a thread that serializes `image` into a pipe the loop reads, ending with `mark`;
/// returns the pipe's read end. The pipe is the bound: the thread blocks while it is full.
fn spawn_sync(
    handle: Handle,
    key: usize,
    id: u64,
    image: Image,
    mark: [u8; EOF_MARK],
) -> io::Result<mio::net::UnixStream> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    helper(
        "replsync",
        Box::new(move || {
            let mut out = io::BufWriter::with_capacity(SYNC_CHUNK, theirs);
            let ok = crate::persist::encode(&image, &mut out)
                .and_then(|()| out.write_all(&mark))
                .and_then(|()| out.flush())
                .is_ok();
            // Closing the pipe tells the loop the image ended; the news says how.
            drop(out);
            handle.send(News::Sync {
                key,
                id,
                done: (ok, image),
            });
        }),
    )?;
    Ok(mio::net::UnixStream::from_std(ours))
}

/// Starts a named helper thread. One function for every replication helper, so the thread
/// machinery is compiled once (binary size).
fn helper(name: &str, work: Box<dyn FnOnce() + Send>) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .map(drop)
}

impl Server {
    /// At start: follow the primary the settings name, and take up the replication position
    /// the snapshot or the log recorded, so a restarted replica continues with PSYNC.
    pub(super) fn restore_replication(&mut self, position: Option<(String, u64)>) {
        if let Some((host, port)) = self.state.config.repl.replicaof.clone() {
            self.state.repl.master = Some(crate::replication::MasterStatus::new(host, port));
            self.store.defer_expiry(true);
        }
        if let Some((replid, offset)) = position {
            let size = self.state.config.repl.backlog_size;
            let repl = &mut self.state.repl;
            repl.replid = replid;
            repl.offset = offset;
            repl.resumable = true;
            repl.backlog = Some(Backlog::new(size, offset + 1));
        }
    }

    /// The replication position a snapshot taken now records: the history and offset the data
    /// holds, when they are known (not in the middle of a full sync).
    pub(super) fn replication_position(&self) -> Option<(String, u64)> {
        let repl = &self.state.repl;
        (repl.resumable || !repl.is_replica()).then(|| (repl.replid.clone(), repl.offset))
    }
}
