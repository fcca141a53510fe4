//! The loop's side of persistence: the journal of each turn's changes and the log thread that
//! makes them durable, snapshots (with log rotation at their point in time), the write gate
//! while either fails, and the final save.

use std::io;
use std::time::{Duration, Instant};

use log::{error, info};

use super::{News, Server};
use crate::command::{self, ServerState};
use crate::persist::log::{encode_record, LOG_HEADER};
use crate::persist::{self, Done, Job, LogWriter, Order, Report};
use crate::protocol::{self, Reply};
use crate::pubsub::Events;
use crate::store::Store;

/// How soon a failed snapshot is tried again (Redis waits 5 s too).
const SNAPSHOT_RETRY: Duration = Duration::from_secs(5);

/// The changes of the current loop turn: encoded as log records, waiting to be handed to the
/// log thread in one batch (group commit), and fed to the replication stream as they happen.
///
/// A record is the RESP bytes of one unit: one request, or a transaction's writes between a
/// `MULTI` and an `EXEC` request. A torn tail drops a record whole, so a replay applies all of a
/// transaction or none of it; replicas are sent the same records, and apply a transaction only
/// once all of it has arrived. A request recorded with [`Journal::replicate`] (PUBLISH) goes to
/// the stream alone, inside its transaction's unit there, and is left out of the log's record.
#[derive(Debug, Default)]
pub(super) struct Journal {
    pending: Vec<u8>,
    scratch: Vec<u8>,
    /// Inside a transaction: its requests so far, and how many.
    unit: Option<(Vec<u8>, usize)>,
    /// Inside a transaction that has replicated a request it does not log: the requests for
    /// the log, kept apart from then on (`unit` has them all, for the stream).
    logged: Option<(Vec<u8>, usize)>,
}

impl Journal {
    /// True when changes must be recorded: the log is on, or this is a primary with a
    /// replication backlog (its replicas, and those that will reconnect, need the stream).
    pub(super) fn active(state: &ServerState) -> bool {
        state.log.enabled || state.repl.streaming()
    }

    /// Records a command that changed data.
    pub(super) fn record<A: AsRef<[u8]>>(&mut self, args: &[A], state: &mut ServerState) {
        self.add(args, true, state);
    }

    /// Records a command for the replication stream only (Redis's `PROPAGATE_REPL`): PUBLISH
    /// changes no data, so a replay has nothing to do with it, but replicas deliver it to their
    /// own subscribers. Only on a primary that streams.
    pub(super) fn replicate<A: AsRef<[u8]>>(&mut self, args: &[A], state: &mut ServerState) {
        self.add(args, false, state);
    }

    fn add<A: AsRef<[u8]>>(&mut self, args: &[A], log: bool, state: &mut ServerState) {
        if let Some((unit, count)) = &mut self.unit {
            if !log && self.logged.is_none() {
                // Everything so far is logged too: the log's copy starts as the stream's.
                self.logged = Some((unit.clone(), *count));
            }
            protocol::encode_request(args, unit);
            *count += 1;
            if let (true, Some((logged, count))) = (log, &mut self.logged) {
                protocol::encode_request(args, logged);
                *count += 1;
            }
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        protocol::encode_request(args, &mut scratch);
        self.push(&scratch, log, true, state);
        self.scratch = scratch;
    }

    /// Records one unit whose payload is RESP bytes, as it is: to the log when it is on (and
    /// `log`), to the replication stream on a primary that has one (and `stream`).
    fn push(&mut self, payload: &[u8], log: bool, stream: bool, state: &mut ServerState) {
        if log && state.log.enabled {
            encode_record(payload, &mut self.pending);
            state.log.last_seq += 1;
            state.log.unsynced_since.get_or_insert_with(Instant::now);
        }
        if stream && state.repl.streaming() {
            state.repl.feed(payload);
        }
    }

    /// Starts a unit: what is recorded until [`Journal::end_unit`] becomes one record.
    pub(super) fn begin_unit(&mut self) {
        self.unit = Some((std::mem::take(&mut self.scratch), 0));
        if let Some((unit, _)) = &mut self.unit {
            unit.clear();
        }
    }

    /// Ends the unit begun last; returns whether it recorded anything for the log.
    pub(super) fn end_unit(&mut self, state: &mut ServerState) -> bool {
        let Some((unit, count)) = self.unit.take() else {
            return false;
        };
        let logged = self.logged.take();
        self.scratch = self.push_unit(unit, count, logged.is_none(), true, state);
        let Some((logged, logged_count)) = logged else {
            return count > 0;
        };
        self.scratch = self.push_unit(logged, logged_count, true, false, state);
        logged_count > 0
    }

    /// Pushes a unit's `count` requests: as they are for one, between `MULTI` and `EXEC` for
    /// more, as Redis propagates a transaction. Returns the buffer, emptied, for reuse.
    fn push_unit(
        &mut self,
        mut unit: Vec<u8>,
        count: usize,
        log: bool,
        stream: bool,
        state: &mut ServerState,
    ) -> Vec<u8> {
        if count == 1 {
            self.push(&unit, log, stream, state);
        } else if count > 1 {
            let mut whole = std::mem::take(&mut self.scratch);
            whole.clear();
            protocol::encode_request(&[&b"MULTI"[..]], &mut whole);
            whole.append(&mut unit);
            protocol::encode_request(&[&b"EXEC"[..]], &mut whole);
            self.push(&whole, log, stream, state);
            unit = whole;
        }
        unit.clear();
        unit
    }
}

/// Counts the keys the store removed by expiry or eviction since last asked and, when changes
/// are recorded, records each as a `DEL` (as Redis propagates both), so a replay or a replica
/// removes them at the same point in the history; returns how many there were.
pub(super) fn record_dropped(
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> usize {
    let expired = store.take_expired();
    let evicted = store.take_evicted();
    state.stats.expired_keys += expired.len() as u64;
    state.stats.evicted_keys += evicted.len() as u64;
    // Keyspace notifications hang off the same place: `expired` when a key is actually removed
    // (on access or by active expiry), `evicted` when maxmemory takes it.
    let events = state.config.notify_keyspace_events;
    if events.wants(Events::EXPIRED) {
        for key in &expired {
            state.pubsub.notify(events, "expired", key);
        }
    }
    if events.wants(Events::EVICTED) {
        for key in &evicted {
            state.pubsub.notify(events, "evicted", key);
        }
    }
    if !state.watches.is_empty() {
        for key in expired.iter().chain(&evicted) {
            state.watches.touch(key, false);
        }
    }
    if Journal::active(state) {
        for key in expired.iter().chain(&evicted) {
            journal.record(&[&b"DEL"[..], key], state);
        }
    }
    expired.len() + evicted.len()
}

/// Starts the log thread when the log is on; its reports come back as news.
pub(super) fn start_log(server: &Server) -> io::Result<Option<LogWriter>> {
    let config = &server.state.config;
    if !config.appendonly {
        return Ok(None);
    }
    let handle = server.handle();
    LogWriter::start(
        &config.dir,
        &config.appendfilename,
        server.state.log.segment,
        config.appendfsync,
        move |report| {
            handle.send(News::Log(report));
        },
    )
    .map(Some)
}

impl Server {
    /// Hands this turn's records to the log thread.
    pub(super) fn submit_log(&mut self) {
        if self.journal.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.journal.pending);
        let seq = self.state.log.last_seq;
        if !self
            .log
            .as_ref()
            .is_some_and(|log| log.send(Order::Append { bytes, seq }))
        {
            self.log_report(Report::Failed {
                error: "the log thread has stopped".into(),
            });
        }
    }

    /// Takes in what the log thread says.
    pub(super) fn log_report(&mut self, report: Report) {
        let status = &mut self.state.log;
        match report {
            Report::Written {
                seq,
                synced,
                segment_bytes,
            } => {
                status.written_seq = status.written_seq.max(seq);
                status.segment_bytes = segment_bytes;
                if synced {
                    status.durable_seq = status.durable_seq.max(seq);
                    status.unsynced_since =
                        (status.durable_seq < status.last_seq).then(Instant::now);
                }
                if let Some(was) = status.failing.take() {
                    info!("writing the log works again (it failed with: {was})");
                }
                if synced {
                    self.release_held();
                }
            }
            Report::Failed { error } => {
                if status.failing.is_none() {
                    error!("{error}; refusing writes until the log can be written (retried every second)");
                }
                status.failing = Some(error);
            }
        }
        self.update_write_gate();
    }

    /// Sends replies that were waiting for the log to be fsynced.
    fn release_held(&mut self) {
        let durable = self.state.log.durable_seq;
        for key in std::mem::take(&mut self.held) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.release(durable) {
                self.drive(key);
            } else if conn.hold.is_some() {
                self.held.push(key);
            }
        }
    }

    /// Refuses writes, with Redis's `MISCONF` error, while the log or the timed snapshots fail.
    pub(super) fn update_write_gate(&mut self) {
        let state = &mut self.state;
        state.refuse_writes =
            if let Some(error) = &state.log.failing {
                Some(format!("MISCONF Errors writing to the AOF file: {error}"))
            } else if !state.snapshot.last_ok && state.config.save_interval > 0 {
                Some(format!(
                "MISCONF Errors writing the snapshot ({}). Commands that change data are refused \
                 until a snapshot succeeds; see the server log",
                state.snapshot.last_error.as_deref().unwrap_or("unknown error")
            ))
            } else {
                None
            };
    }

    /// Starts the snapshot a command asked for, or the timer's: when the interval has passed and
    /// data changed, or to retry a failure.
    pub(super) fn snapshot_timer(&mut self, now: Instant) {
        let interval = Duration::from_secs(self.state.config.save_interval);
        let status = &mut self.state.snapshot;
        if status.running_since.is_some() || self.stopping.is_some() {
            return;
        }
        if !interval.is_zero() && now >= self.next_timed_snapshot {
            if status.last_ok && self.store.dirty() == status.dirty_at_last_save {
                // Nothing to save: look again one interval from now, not on every turn.
                self.next_timed_snapshot = now + interval;
            } else {
                status.wanted = true;
            }
        }
        if status.wanted {
            self.start_snapshot();
        }
    }

    /// Takes the point-in-time copy and hands it to the writer thread. With the log on, the log
    /// moves to a new segment at the same instant, so the snapshot plus the segments from that
    /// one on are the whole data.
    pub(super) fn start_snapshot(&mut self) {
        self.submit_log();
        let status = &mut self.state.snapshot;
        status.wanted = false;
        let started = Instant::now();
        let cpu = super::thread_cpu_time();
        let image = self.store.image();
        status.last_copy = started.elapsed();
        status.last_copy_cpu = super::thread_cpu_time().saturating_sub(cpu);
        status.running_since = Some(started);
        self.next_timed_snapshot = started + Duration::from_secs(self.state.config.save_interval);
        self.waiting_current.append(&mut self.waiting_next);
        let (log_seq, log_base) = match &self.log {
            Some(log) => {
                let next = self.state.log.segment + 1;
                log.send(Order::Rotate { next });
                self.state.log.segment = next;
                self.state.log.segment_bytes = LOG_HEADER.len() as u64;
                (next, Some(self.state.config.appendfilename.clone()))
            }
            None => (self.state.log.segment, None),
        };
        let job = Job {
            image,
            path: self.state.config.snapshot_path(),
            dirty: self.store.dirty(),
            log_seq,
            log_base,
            compression: self.state.config.snapshot_compression,
            repl: self.replication_position(),
        };
        if let Err(why) = self.writer.submit(job) {
            self.snapshot_done(Done {
                result: Err(why),
                dirty: 0,
                keys: 0,
                elapsed: Duration::ZERO,
                image: None,
            });
        }
    }

    /// Records a finished snapshot and answers the SAVE callers waiting for it.
    pub(super) fn snapshot_done(&mut self, mut done: Done) {
        if let Some(image) = done.image.take() {
            self.store.retire(image);
        }
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
                self.next_timed_snapshot = Instant::now() + SNAPSHOT_RETRY;
                Reply::error_owned(format!("ERR snapshot failed: {why}"))
            }
        };
        self.update_write_gate();
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

    /// Stops for good: the log is written and fsynced, then a final snapshot is taken when data
    /// changed since the last one, and the log segments it holds are removed.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.writer.finish();
        self.submit_log();
        if let Some(mut log) = self.log.take() {
            log.finish();
        }
        self.read_news();
        if self.skip_final_save {
            info!("SHUTDOWN NOSAVE: exiting without a final snapshot");
            return Ok(());
        }
        // A replica's offset moves without its data changing (PINGs): its snapshot must record
        // where it stopped, or a restart would ask for bytes it already applied.
        let replica = self.state.repl.is_replica();
        if !replica && self.store.dirty() == self.state.snapshot.dirty_at_last_save {
            info!("no changes since the last snapshot; exiting");
            return Ok(());
        }
        let position = self.replication_position();
        let position = position.as_ref().map(|(id, offset)| (id.as_str(), *offset));
        let config = &self.state.config;
        let path = config.snapshot_path();
        let log_seq = self.state.log.segment + u64::from(config.appendonly);
        let started = Instant::now();
        let image = self.store.image();
        let compression = config.snapshot_compression;
        let size = persist::write_atomically(&path, |out| {
            persist::write_snapshot(&image, log_seq, position, compression, out)
        })?;
        if config.appendonly {
            persist::prune_segments(&path, &config.appendfilename, log_seq);
        }
        info!(
            "final snapshot saved: {} keys, {size} bytes in {:.1} ms; exiting",
            image.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }
}
