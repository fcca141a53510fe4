//! Replication, as Redis does it: replicas follow a primary over the RESP port, get a full
//! image once, then the stream of every change; a replica that reconnects within the backlog
//! gets only what it missed.
//!
//! This module holds what commands and INFO see (the state, the settings, the backlog, the
//! PSYNC decision and the link's reply parser); the event loop's side, the sockets, is in
//! `server/replicate.rs`.

mod backlog;
mod info;
pub mod link;
mod settings;

use std::time::Instant;

pub use backlog::Backlog;
pub use info::{role_reply, write_info};
pub use settings::{parse_replicaof, Settings};

/// A replication id as Redis shows an unset one.
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// Replication state every command may read: the role, ids and offsets, the backlog, the
/// replicas as INFO lists them, and what REPLICAOF asked the loop to do.
#[derive(Debug)]
pub struct ReplState {
    /// This process's id (INFO server `run_id`), new at every start.
    pub run_id: String,
    /// The history the data follows (`master_replid`).
    pub replid: String,
    /// The history before the last promotion (`master_replid2`), for PSYNC2.
    pub replid2: String,
    /// The first offset not shared with `replid2`'s history; -1 when there is none.
    pub second_offset: i64,
    /// Stream bytes of `replid`'s history the data holds (`master_repl_offset`).
    pub offset: u64,
    /// Recent stream bytes, once there is a replica or a primary (`repl_backlog_*`).
    pub backlog: Option<Backlog>,
    /// Since when a primary's backlog has had no replica (for `repl-backlog-ttl`).
    pub lonely_since: Option<Instant>,
    /// Set on a replica: the primary it follows and the link's state.
    pub master: Option<MasterStatus>,
    /// The replicas following this server, as INFO and ROLE list them.
    pub replicas: Vec<ReplicaRow>,
    /// Full syncs served (INFO stats `sync_full`).
    pub sync_full: u64,
    /// PSYNCs answered with +CONTINUE.
    pub sync_partial_ok: u64,
    /// PSYNCs that asked to continue but got a full sync.
    pub sync_partial_err: u64,
    /// Stream bytes of this turn not yet handed to the replicas' connections.
    pub outgoing: Vec<u8>,
    /// A change of role asked for by REPLICAOF, for the loop to carry out.
    pub asked: Option<Asked>,
    /// `replid` and `offset` describe the data exactly, so a PSYNC may ask to continue them.
    pub resumable: bool,
}

/// A change of role for the loop to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Drop the link and follow this primary.
    Follow,
    /// Drop the link and become a primary.
    Promote,
}

/// How a replica's link to its primary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected; the next attempt is due.
    Connect,
    /// The TCP connection is being made.
    Connecting,
    /// PING, AUTH, REPLCONF and PSYNC are being exchanged.
    Handshake,
    /// A full image is arriving or loading.
    Sync,
    /// The stream flows.
    Connected,
}

impl LinkState {
    /// ROLE's name for it.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// A replica's view of its primary, as INFO replication shows it.
#[derive(Debug, Clone)]
pub struct MasterStatus {
    /// The host as REPLICAOF gave it.
    pub host: String,
    /// The primary's port.
    pub port: u16,
    /// Where the link stands.
    pub state: LinkState,
    /// When the primary last sent anything.
    pub last_io: Option<Instant>,
    /// Since when the link has been down; None before it was ever up.
    pub down_since: Option<Instant>,
    /// Bytes of a full sync received so far.
    pub sync_read: u64,
    /// Its size when known.
    pub sync_total: Option<u64>,
}

impl MasterStatus {
    /// A primary not connected yet.
    pub fn new(host: String, port: u16) -> MasterStatus {
        MasterStatus {
            host,
            port,
            state: LinkState::Connect,
            last_io: None,
            down_since: None,
            sync_read: 0,
            sync_total: None,
        }
    }
}

/// One replica of this server, as INFO lists it.
#[derive(Debug, Clone)]
pub struct ReplicaRow {
    /// The connection's slab key and client id.
    pub key: usize,
    /// Client id, since keys are reused.
    pub id: u64,
    /// The address it is reported at (`replica-announce-ip`, or the one seen).
    pub ip: String,
    /// Its listening port (REPLCONF listening-port).
    pub port: u16,
    /// `wait_bgsave`, `send_bulk` or `online`.
    pub state: &'static str,
    /// The offset it last acknowledged.
    pub ack: u64,
    /// When it last acknowledged.
    pub ack_at: Instant,
}

/// What PSYNC gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Psync {
    /// `+CONTINUE`: send the backlog from this offset on.
    Continue(u64),
    /// `+FULLRESYNC`: send an image; true when the replica had asked to continue.
    Full(bool),
}

impl Default for ReplState {
    fn default() -> Self {
        ReplState {
            run_id: random_id(),
            replid: random_id(),
            replid2: NO_REPLID.to_string(),
            second_offset: -1,
            offset: 0,
            backlog: None,
            lonely_since: None,
            master: None,
            replicas: Vec::new(),
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
            outgoing: Vec::new(),
            asked: None,
            resumable: false,
        }
    }
}

impl ReplState {
    /// True while following a primary.
    pub fn is_replica(&self) -> bool {
        self.master.is_some()
    }

    /// True when a primary has a replica that has not acknowledged the whole stream yet: its
    /// shutdown waits for it (Redis's `isReadyToShutdown`, false).
    pub fn replicas_lag(&self) -> bool {
        !self.is_replica() && self.replicas.iter().any(|r| r.ack < self.offset)
    }

    /// True when the link to the primary is up and the stream flows.
    pub fn link_up(&self) -> bool {
        self.master
            .as_ref()
            .is_some_and(|m| m.state == LinkState::Connected)
    }

    /// Whether this turn's changes must be put in the stream: a primary with a backlog.
    pub fn streaming(&self) -> bool {
        self.backlog.is_some() && self.master.is_none()
    }

    /// Adds bytes to the stream: they move the offset, join the backlog, and go to the
    /// replicas at the end of the step.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        if let Some(backlog) = &mut self.backlog {
            backlog.push(bytes);
        }
        if !self.replicas.is_empty() {
            self.outgoing.extend_from_slice(bytes);
        }
    }

    /// Creates the backlog if there is none, starting after the current offset.
    pub fn ensure_backlog(&mut self, size: usize) {
        if self.backlog.is_none() {
            self.backlog = Some(Backlog::new(size, self.offset + 1));
        }
    }

    /// Starts a new history (a promotion): the old id becomes `replid2`, so replicas that
    /// followed it may continue with this server (PSYNC2).
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, random_id());
        self.second_offset = self.offset as i64 + 1;
    }

    /// Forgets `replid2`: the data now follows only `replid`.
    pub fn clear_replid2(&mut self) {
        self.replid2 = NO_REPLID.to_string();
        self.second_offset = -1;
    }

    /// Whether a replica asking for `replid` from offset `from` can continue, as Redis's
    /// `masterTryPartialResynchronization` decides.
    pub fn decide(&self, replid: &[u8], from: i64) -> Psync {
        let asked = replid != b"?";
        let ours = replid == self.replid.as_bytes();
        let before_promotion =
            replid == self.replid2.as_bytes() && from <= self.second_offset && from > 0;
        let Some(backlog) = &self.backlog else {
            return Psync::Full(asked);
        };
        if !(ours || before_promotion) || from < 0 {
            return Psync::Full(asked);
        }
        let from = from as u64;
        match backlog.since(from) {
            Some(_) => Psync::Continue(from),
            None => Psync::Full(asked),
        }
    }

    /// Replicas that acknowledged within `max_lag` seconds (`min-replicas-max-lag`).
    pub fn good_replicas(&self, max_lag: u64, now: Instant) -> u64 {
        self.replicas
            .iter()
            .filter(|r| r.state == "online" && now.duration_since(r.ack_at).as_secs() <= max_lag)
            .count() as u64
    }

    /// Replicas that acknowledged at least `offset`.
    pub fn acknowledged(&self, offset: u64) -> u64 {
        self.replicas
            .iter()
            .filter(|r| r.state == "online" && r.ack >= offset)
            .count() as u64
    }
}

/// 40 random hex digits, as Redis's run ids and replication ids are.
pub fn random_id() -> String {
    let mut bytes = [0u8; 20];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer passed.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        // No getrandom (very old kernel): the time and the process id are unique enough for an
        // id that only has to differ from other servers' ids.
        let seed = crate::command::unix_time().as_nanos() ^ u128::from(std::process::id()) << 64;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    let mut id = String::with_capacity(40);
    for b in bytes {
        id.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        id.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psync_continues_only_a_known_history_within_the_backlog() {
        let mut state = ReplState::default();
        assert_eq!(state.decide(b"?", -1), Psync::Full(false));
        state.ensure_backlog(16);
        state.feed(b"0123456789");
        let id = state.replid.clone();
        assert_eq!(state.decide(id.as_bytes(), 11), Psync::Continue(11));
        assert_eq!(state.decide(id.as_bytes(), 5), Psync::Continue(5));
        assert_eq!(state.decide(id.as_bytes(), 12), Psync::Full(true));
        assert_eq!(state.decide(b"other", 5), Psync::Full(true));
        state.shift_replid();
        state.feed(b"abc");
        assert_eq!(state.decide(id.as_bytes(), 11), Psync::Continue(11));
        assert_eq!(
            state.decide(id.as_bytes(), 12),
            Psync::Full(true),
            "past the fork"
        );
        assert_eq!(random_id().len(), 40);
        assert_ne!(random_id(), random_id());
    }
}
