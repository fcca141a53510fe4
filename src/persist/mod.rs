//! Persistence: the JSON snapshot format, its atomic writer thread, and snapshot bookkeeping.

pub mod compress;
pub mod log;
mod log_writer;
mod snapshot;
mod writer;

use std::time::{Duration, Instant};

pub use compress::Compression;
pub use log_writer::{FsyncPolicy, LogWriter, Order, Report};
pub use snapshot::{
    decode, decode_json_each, decode_snapshot, encode, encode_positioned, encode_snapshot,
    load_file, write_snapshot, Header, LoadError, Pairs, Position, Records, Sink, Snapshot, FORMAT,
    VERSION,
};
pub use writer::{prune_segments, write_atomically, Done, Job, Writer};

/// Snapshot progress and history, as INFO persistence and LASTSAVE report it.
#[derive(Debug, Clone)]
pub struct SnapshotStatus {
    /// A command or the timer asked for a snapshot; the loop starts one when none is running.
    pub wanted: bool,
    /// When the snapshot in flight started.
    pub running_since: Option<Instant>,
    /// Whether the last snapshot succeeded.
    pub last_ok: bool,
    /// Why the last snapshot failed.
    pub last_error: Option<String>,
    /// Unix seconds of the last successful snapshot (or of start-up).
    pub last_save_unix: u64,
    /// How long the last snapshot took from copy to durable rename.
    pub last_duration: Option<Duration>,
    /// How long the loop paused to take the last point-in-time copy (wall time).
    pub last_copy: Duration,
    /// The same in the loop thread's CPU time, which leaves out moments the OS ran others.
    pub last_copy_cpu: Duration,
    /// The store's change counter when the last successful snapshot's copy was taken.
    pub dirty_at_last_save: u64,
    /// Successful snapshots since start.
    pub saves_ok: u64,
}

impl Default for SnapshotStatus {
    fn default() -> Self {
        SnapshotStatus {
            wanted: false,
            running_since: None,
            last_ok: true,
            last_error: None,
            last_save_unix: crate::command::unix_time().as_secs(),
            last_duration: None,
            last_copy: Duration::ZERO,
            last_copy_cpu: Duration::ZERO,
            dirty_at_last_save: 0,
            saves_ok: 0,
        }
    }
}

/// The append-only log's progress, as INFO persistence reports it.
#[derive(Debug, Clone, Default)]
pub struct LogStatus {
    /// Whether the log is on.
    pub enabled: bool,
    /// The fsync policy.
    pub policy: Option<FsyncPolicy>,
    /// The segment records go to.
    pub segment: u64,
    /// Its size, as last reported by the log thread.
    pub segment_bytes: u64,
    /// Sequence number of the last record appended by the loop.
    pub last_seq: u64,
    /// Highest sequence number written to the file.
    pub written_seq: u64,
    /// Highest sequence number fsynced.
    pub durable_seq: u64,
    /// When the oldest record not yet fsynced was appended.
    pub unsynced_since: Option<Instant>,
    /// Why writing the log fails, while it does.
    pub failing: Option<String>,
    /// Records replayed at start.
    pub replayed: u64,
    /// Torn tails cut off at start.
    pub torn_tails: u64,
}
