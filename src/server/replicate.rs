//! The loop's side of replication: replicas of this server are client connections that sent
//! PSYNC (followers, `primary.rs`), and the link to the primary this server follows is a
//! connection in the same slab with its own state machine (`replica.rs`). No thread touches a
//! client socket: an image for a full sync is serialized by a helper thread into a socket pair
//! the loop reads from and sends, and a received image is decoded by a helper thread into a
//! fresh store the loop swaps in. This file holds what both sides share: timers and helpers.
//!
//! Link states, as ROLE names them: connect → connecting → handshake → sync (full only) →
//! connected; any failure goes back to connect, with a growing pause before the next attempt.

mod primary;
mod replica;

use std::io::{self, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Interest, Token};

use super::connection::{Closing, Connection, ReadOutcome};
use super::execute::execute_args;
use super::{Handle, News, Server};
use crate::command::{unix_ms, ClientState};
use crate::protocol::{self, Dialect, ParseError, Reply};
use crate::replication::link::{self, Framing, PsyncReply, Step, EOF_MARK};
use crate::replication::{Asked, Backlog, LinkState, Psync, ReplicaRow};
use crate::store::{Image, Store};

pub(super) use primary::{Follower, Waiting};
pub(super) use replica::{Link, POSITION_RECORD, RETRY_FIRST};

/// How often the replication timers run while replication is in use.
pub(super) const CRON: Duration = Duration::from_millis(100);

/// Reads one link or follower gets per turn before others have their go.
const READS_PER_TURN: usize = 16;

/// What a primary puts in the stream to keep quiet links alive.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// What a primary puts in the stream when a WAIT needs the replicas' offsets now.
pub(super) const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

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
    /// Counts link attempts, so a late image or name from an old one is thrown away.
    generation: u64,
    /// A helper thread is resolving the primary's name for attempt `generation`.
    resolving: bool,
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
            resolving: false,
            positions_after_save: 0,
        }
    }
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
    /// True while replication needs the timers to run often.
    pub(super) fn replicating(&self) -> bool {
        let repl = &self.state.repl;
        repl.master.is_some() || !repl.replicas.is_empty() || !self.repl.waiters.is_empty()
    }

    /// Once per turn: ask for acknowledgements if a WAIT came, send the turn's stream.
    pub(super) fn replication_turn(&mut self) {
        // Not while paused (Redis's rule): the stream stays still; asked once the pause ends,
        // and replicas acknowledge every second meanwhile anyway.
        if !self.state.paused()
            && std::mem::take(&mut self.repl.getack)
            && !self.state.repl.is_replica()
            && !self.state.repl.replicas.is_empty()
        {
            self.state.repl.feed(GETACK);
        }
        self.propagate();
    }

    /// Carries out the change of role REPLICAOF asked for, if any.
    pub(super) fn change_role(&mut self) {
        match self.state.repl.asked.take() {
            Some(Asked::Follow) => self.follow(),
            Some(Asked::Promote) => self.promote(),
            None => {}
        }
    }

    /// Timers: role changes asked for, link attempts and timeouts, acknowledgements, pings to
    /// replicas, the backlog's time to live, and WAIT deadlines.
    pub(super) fn replication_cron(&mut self, now: Instant) {
        self.change_role();
        if now < self.repl.next_cron {
            return;
        }
        self.repl.next_cron = now + CRON;
        let settings = self.state.config.repl.clone();
        let timeout = Duration::from_secs(settings.timeout);
        if self.state.repl.master.is_some()
            && self.repl.link.is_none()
            && !self.repl.resolving
            && now >= self.repl.retry_at
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

    fn drop_followers(&mut self, why: &str) {
        let keys: Vec<usize> = self.state.repl.replicas.iter().map(|r| r.key).collect();
        for key in keys {
            self.close(key, why);
        }
    }

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
