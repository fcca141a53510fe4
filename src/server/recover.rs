//! Start-up recovery: the snapshot, then the append-only log segments written after it.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::command::{self, ClientState, Ctx, ServerState};
use crate::config::Config;
use crate::persist;
use crate::persist::log::{decode_segment, list_segments, LogError};
use crate::protocol::{self, Limits};
use crate::store::Store;

/// What start-up found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// The data: snapshot plus replayed log.
    pub store: Store,
    /// Whether a snapshot file was there.
    pub snapshot_found: bool,
    /// The segment new records go to (appendonly yes), or the first segment a new snapshot does
    /// not contain (appendonly no).
    pub segment: u64,
    /// Records replayed from the log.
    pub replayed: u64,
    /// Torn tails cut off (a crash in the middle of an append).
    pub torn_tails: u64,
    /// Keys dropped because their time passed while the server was down.
    pub expired: usize,
    /// Time spent loading.
    pub elapsed: Duration,
    /// The replication history and offset the data holds, when the snapshot or the log says
    /// so exactly.
    pub repl: Option<(String, u64)>,
}

/// Loads the snapshot and replays the log after it, as the configuration says.
pub fn recover(config: &Config) -> Result<Recovered, String> {
    let started = Instant::now();
    let snapshot = persist::load_file(&config.snapshot_path()).map_err(|e| e.to_string())?;
    let snapshot_found = snapshot.is_some();
    let snapshot = snapshot.unwrap_or_default();
    let first = snapshot.log_seq;
    let mut store = Store::new();
    // Nothing expires until the log has been replayed: its records were executed with the keys
    // they saw, and the deletions logged after them say when those keys expired.
    store.pause_expiry(true);
    store.load(snapshot.pairs);
    let segments: Vec<(u64, PathBuf)> = list_segments(&config.dir, &config.appendfilename);
    let newest = segments.last().map_or(0, |(seq, _)| *seq);
    let mut found = Recovered {
        store,
        snapshot_found,
        segment: first.max(1),
        replayed: 0,
        torn_tails: 0,
        expired: 0,
        elapsed: Duration::ZERO,
        repl: snapshot.repl.clone(),
    };
    if !config.appendonly {
        let ignored = segments.iter().filter(|(seq, _)| *seq >= first).count();
        if ignored > 0 {
            warn!(
                "appendonly is off: ignoring {ignored} log segment(s) ({}.N.aof) newer than the snapshot",
                config.appendfilename
            );
        }
        // A snapshot taken now must not be followed by those segments if the log is turned on.
        found.segment = found.segment.max(newest + 1);
        return Ok(found.finish(started, config));
    }
    let live: Vec<&(u64, PathBuf)> = segments.iter().filter(|(seq, _)| *seq >= first).collect();
    for (seq, path) in segments.iter().filter(|(seq, _)| *seq < first) {
        // Left behind by a crash between a snapshot's rename and its clean-up.
        match std::fs::remove_file(path) {
            Ok(()) => info!(
                "removed log segment {seq} ({}): the snapshot holds it",
                path.display()
            ),
            Err(e) => warn!("cannot remove old log segment {}: {e}", path.display()),
        }
    }
    let mut replayer = Replayer::new(config);
    replayer.position = found.repl.take();
    for (i, (_, path)) in live.iter().enumerate() {
        let last = i + 1 == live.len();
        replay_segment(path, last, config, &mut replayer, &mut found)?;
    }
    // Changes after the last recorded position (local writes, or a tail whose position record
    // was torn off) make it wrong: better a full sync than applying bytes twice.
    found.repl = replayer
        .position
        .take()
        .filter(|_| replayer.since_position == 0);
    found.segment = live
        .last()
        .map_or(found.segment.max(newest + 1), |(seq, _)| *seq);
    Ok(found.finish(started, config))
}

impl Recovered {
    /// Resumes expiry and drops the keys whose time passed while the server was down (not on
    /// a replica: its primary's DELs say when keys go).
    fn finish(mut self, started: Instant, config: &Config) -> Self {
        self.store.pause_expiry(false);
        self.store.set_clock(command::unix_ms());
        if config.repl.replicaof.is_none() {
            self.expired = self.store.purge_expired();
        }
        self.elapsed = started.elapsed();
        self
    }
}

/// Replays one segment into `found.store`; cuts a torn tail (or, with repair, damage) off the
/// last segment so appends continue after its good records.
fn replay_segment(
    path: &Path,
    last: bool,
    config: &Config,
    replayer: &mut Replayer,
    found: &mut Recovered,
) -> Result<(), String> {
    let bytes =
        std::fs::read(path).map_err(|e| LogError::Unreadable(path.to_path_buf(), e).to_string())?;
    // A transaction's record holds its queue, bounded by the query buffer limit, plus the
    // deletions of keys it found expired.
    let max_record = config
        .limits
        .max_bulk_len
        .max(config.query_buffer_limit)
        .saturating_mul(2)
        .saturating_add(1 << 20);
    let segment =
        decode_segment(path, &bytes, max_record, config.aof_repair).map_err(|e| e.to_string())?;
    for (index, record) in segment.records.iter().enumerate() {
        replayer.execute(&mut found.store, record).map_err(|why| {
            format!(
                "{}: record {} cannot be replayed ({why}); the file was left untouched",
                path.display(),
                index + 1
            )
        })?;
        found.replayed += 1;
    }
    let Some(dropped) = segment.dropped else {
        return Ok(());
    };
    if !last && !config.aof_repair {
        return Err(format!(
            "{} ends in a torn record at byte {} although later segments follow; start with \
             --aof-repair yes to cut it there, or restore the file",
            path.display(),
            dropped.offset
        ));
    }
    let what = if dropped.torn_tail {
        "torn last record (a crash during an append)"
    } else {
        "damaged records (--aof-repair yes)"
    };
    warn!(
        "{}: cutting {} bytes of {what} at byte {}",
        path.display(),
        dropped.bytes,
        dropped.offset
    );
    if dropped.torn_tail {
        found.torn_tails += 1;
    }
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| {
            file.set_len(segment.good_len)?;
            file.sync_all()
        })
        .map_err(|e| format!("cannot cut {}: {e}", path.display()))
}

/// Runs logged commands as a client would, with a server state of its own.
struct Replayer {
    client: ClientState,
    server: ServerState,
    limits: Limits,
    /// The last replication position recorded (snapshot, then the log's position records).
    position: Option<(String, u64)>,
    /// Records replayed since it.
    since_position: u64,
}

impl Replayer {
    fn new(config: &Config) -> Self {
        let unbound = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        Replayer {
            // The log holds what authenticated clients did; replaying needs no password.
            // Nor is it refused for want of replicas (min-replicas-to-write): it already happened.
            client: ClientState {
                authenticated: true,
                is_master: true,
                ..ClientState::default()
            },
            // The log holds the evictions that happened (as DEL); replay must not add its own.
            server: ServerState::new(
                Config {
                    maxmemory: 0,
                    ..config.clone()
                },
                unbound,
            ),
            // The log only holds what the server accepted, whatever the limits are now.
            limits: Limits {
                max_bulk_len: usize::MAX,
                max_multibulk_len: usize::MAX,
                ..config.limits
            },
            position: None,
            since_position: 0,
        }
    }

    /// Runs the commands of one record against `store`: one request, or a transaction's
    /// requests between `MULTI` and `EXEC`, which only mark the unit's bounds here (the record
    /// is whole, so all of it applies).
    fn execute(&mut self, store: &mut Store, record: &[u8]) -> Result<(), String> {
        let mut rest = record;
        while !rest.is_empty() {
            let (request, used) = protocol::parse_request(rest, &self.limits)
                .map_err(|e| format!("not a request: {e:?}"))?;
            rest = rest.get(used..).unwrap_or_default();
            let name = request.args.first().map_or(&b""[..], |a| a.as_ref());
            if name.is_empty() {
                return Err("an empty request".to_string());
            }
            if name.eq_ignore_ascii_case(b"multi") || name.eq_ignore_ascii_case(b"exec") {
                continue;
            }
            if let [name, replid, offset] = request.args.as_slice() {
                if name.as_ref() == super::replicate::POSITION_RECORD {
                    let offset = protocol::parse_i64(offset).and_then(|o| u64::try_from(o).ok());
                    let replid = String::from_utf8_lossy(replid).into_owned();
                    self.position = offset.map(|offset| (replid, offset));
                    self.since_position = 0;
                    continue;
                }
            }
            self.since_position += 1;
            let mut ctx = Ctx::new(store, &mut self.client, &mut self.server);
            let reply = command::execute(&mut ctx, &request.args);
            if reply.is_error() {
                return Err(format!("it failed: {reply:?}"));
            }
        }
        Ok(())
    }
}
