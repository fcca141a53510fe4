//! The log thread: writes the event loop's batches of records to the current segment and
//! fsyncs them as the policy says, so the loop never waits on the disk.
//!
//! Group commit: every batch already queued is written before one fsync, and the loop is told
//! the highest sequence number that is now durable. A failed write is undone (the file is cut back
//! to its last good length) and retried every second with the same bytes, so nothing already on
//! disk is damaged and nothing acknowledged is lost when space returns.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::log::{segment_name, LOG_HEADER};

/// When the log is fsynced (Redis's `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch, before its replies are released.
    Always,
    /// Once a second; up to about a second of acknowledged writes can be lost on power failure.
    EverySec,
    /// Never explicitly; the OS writes back when it likes.
    No,
}

impl FsyncPolicy {
    /// Redis's name for the policy.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// What the loop asks of the log thread.
#[derive(Debug)]
pub enum Order {
    /// Append these encoded records; `seq` is the sequence number of the last one.
    Append {
        /// Encoded records.
        bytes: Vec<u8>,
        /// Sequence number of the last record in `bytes`.
        seq: u64,
    },
    /// Finish the current segment (written and fsynced) and continue in segment `next`.
    Rotate {
        /// The new segment's number.
        next: u64,
    },
    /// Fsync by this policy from now on (CONFIG SET appendfsync).
    Policy(FsyncPolicy),
}

/// What the log thread tells the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Records up to `seq` are written; `synced` says whether they are also fsynced.
    Written {
        /// Highest sequence number written.
        seq: u64,
        /// True when fsynced too.
        synced: bool,
        /// Size of the current segment after the write.
        segment_bytes: u64,
    },
    /// A write, fsync or rotation failed; it is retried every second.
    Failed {
        /// What went wrong, naming the file.
        error: String,
    },
}

/// Handle to the log thread.
#[derive(Debug)]
pub struct LogWriter {
    orders: Option<mpsc::Sender<Order>>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Opens segment `seq` in `dir` for appending (creating it with its header when new) and
    /// starts the thread; `report` is called on the thread with its news.
    pub fn start(
        dir: &Path,
        base: &str,
        seq: u64,
        policy: FsyncPolicy,
        report: impl Fn(Report) + Send + 'static,
    ) -> std::io::Result<LogWriter> {
        let segment = Segment::open(dir, base, seq)?;
        let (orders, queue) = mpsc::channel();
        let mut worker = Worker {
            dir: dir.to_path_buf(),
            base: base.to_string(),
            segment,
            policy,
            unwritten: Vec::new(),
            unwritten_seq: 0,
            rotating: None,
            queued: VecDeque::new(),
            unsynced_seq: None,
            last_sync: Instant::now(),
            failing: false,
            report: Box::new(report),
        };
        let thread = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || worker.run(queue))?;
        Ok(LogWriter {
            orders: Some(orders),
            thread: Some(thread),
        })
    }

    /// Queues an order; false if the thread is gone.
    pub fn send(&self, order: Order) -> bool {
        self.orders.as_ref().is_some_and(|o| o.send(order).is_ok())
    }

    /// Writes and fsyncs everything queued, then stops the thread.
    pub fn finish(&mut self) {
        self.orders = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The open segment file and how much of it is known good.
struct Segment {
    file: File,
    path: PathBuf,
    good_len: u64,
}

impl Segment {
    fn open(dir: &Path, base: &str, seq: u64) -> std::io::Result<Segment> {
        let path = dir.join(segment_name(base, seq));
        let named = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("opening {}: {e}", path.display()))
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(named)?;
        let mut good_len = file.metadata().map_err(named)?.len();
        if good_len == 0 {
            file.write_all(LOG_HEADER).map_err(named)?;
            file.sync_all().map_err(named)?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(named)?;
            good_len = LOG_HEADER.len() as u64;
        }
        Ok(Segment {
            file,
            path,
            good_len,
        })
    }

    /// Appends `bytes`; on failure cuts the file back so no partial record stays behind.
    fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.good_len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.good_len);
                Err(format!("writing {}: {e}", self.path.display()))
            }
        }
    }

    fn sync(&self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| format!("fsync of {}: {e}", self.path.display()))
    }
}

/// The thread's state.
struct Worker {
    dir: PathBuf,
    base: String,
    segment: Segment,
    policy: FsyncPolicy,
    /// Records for the current segment not yet written (kept across failures for the retry).
    unwritten: Vec<u8>,
    unwritten_seq: u64,
    /// A rotation asked for but not done yet; orders after it wait in `queued`, so a record never
    /// lands in a segment other than the one it was sent for.
    rotating: Option<u64>,
    queued: VecDeque<Order>,
    /// Highest written sequence not yet fsynced.
    unsynced_seq: Option<u64>,
    last_sync: Instant,
    failing: bool,
    report: Box<dyn Fn(Report) + Send>,
}

const SECOND: Duration = Duration::from_secs(1);

impl Worker {
    fn run(&mut self, queue: mpsc::Receiver<Order>) {
        loop {
            let wait = if self.failing || self.unsynced_seq.is_some() {
                SECOND.saturating_sub(self.last_sync.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            match queue.recv_timeout(wait) {
                Ok(order) => {
                    self.take(order);
                    // Group commit: everything already queued shares this write and fsync.
                    while let Ok(order) = queue.try_recv() {
                        self.take(order);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_out(true);
                    return;
                }
            }
            self.write_out(false);
        }
    }

    fn take(&mut self, order: Order) {
        if self.rotating.is_some() {
            self.queued.push_back(order);
            return;
        }
        match order {
            Order::Append { bytes, seq } => {
                self.unwritten.extend_from_slice(&bytes);
                self.unwritten_seq = seq;
            }
            Order::Rotate { next } => self.rotating = Some(next),
            Order::Policy(policy) => self.policy = policy,
        }
    }

    /// Writes what is pending, rotating where asked; fsyncs as the policy says, and always before
    /// a rotation and when `closing`. Stops at the first failure, to be retried.
    fn write_out(&mut self, closing: bool) {
        loop {
            if !self.write_current(closing || self.rotating.is_some()) {
                return;
            }
            let Some(next) = self.rotating else {
                return;
            };
            match Segment::open(&self.dir, &self.base, next) {
                Ok(segment) => self.segment = segment,
                Err(e) => return self.fail(e.to_string()),
            }
            self.rotating = None;
            while self.rotating.is_none() {
                let Some(order) = self.queued.pop_front() else {
                    break;
                };
                self.take(order);
            }
        }
    }

    /// Writes `unwritten` to the current segment and fsyncs when due or `sync_now`; false on
    /// failure.
    fn write_current(&mut self, sync_now: bool) -> bool {
        if !self.unwritten.is_empty() {
            if let Err(e) = self.segment.append(&self.unwritten) {
                self.fail(e);
                return false;
            }
            self.unwritten.clear();
            self.unsynced_seq = Some(self.unwritten_seq);
            if self.policy != FsyncPolicy::Always && !sync_now {
                self.failing = false;
                (self.report)(Report::Written {
                    seq: self.unwritten_seq,
                    synced: false,
                    segment_bytes: self.segment.good_len,
                });
            }
        }
        let Some(seq) = self.unsynced_seq else {
            return true;
        };
        let due = sync_now
            || match self.policy {
                FsyncPolicy::Always => true,
                FsyncPolicy::EverySec => self.last_sync.elapsed() >= SECOND,
                FsyncPolicy::No => false,
            };
        if !due {
            return true;
        }
        if let Err(e) = self.segment.sync() {
            self.fail(e);
            return false;
        }
        self.last_sync = Instant::now();
        self.unsynced_seq = None;
        self.failing = false;
        (self.report)(Report::Written {
            seq,
            synced: true,
            segment_bytes: self.segment.good_len,
        });
        true
    }

    fn fail(&mut self, error: String) {
        self.failing = true;
        self.last_sync = Instant::now();
        (self.report)(Report::Failed { error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::log::{decode_segment, encode_record};

    fn batch(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_record(p, &mut out);
        }
        out
    }

    #[test]
    fn always_reports_each_group_durable_and_the_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut writer =
            LogWriter::start(dir.path(), "appendonly", 1, FsyncPolicy::Always, move |r| {
                let _ = tx.send(r);
            })
            .unwrap();
        assert!(writer.send(Order::Append {
            bytes: batch(&[b"a", b"b"]),
            seq: 2
        }));
        // A hang bound only: an fsync on a disk busy with other builds can take seconds.
        let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(
            matches!(
                first,
                Report::Written {
                    seq: 2,
                    synced: true,
                    ..
                }
            ),
            "{first:?}"
        );
        assert!(writer.send(Order::Rotate { next: 2 }));
        assert!(writer.send(Order::Append {
            bytes: batch(&[b"c"]),
            seq: 3
        }));
        writer.finish();
        let one = std::fs::read(dir.path().join("appendonly.1.aof")).unwrap();
        let two = std::fs::read(dir.path().join("appendonly.2.aof")).unwrap();
        let read = |bytes: &[u8]| {
            decode_segment(Path::new("x"), bytes, 1 << 20, false)
                .unwrap()
                .records
        };
        assert_eq!(read(&one), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(read(&two), vec![b"c".to_vec()]);
    }

    #[test]
    fn everysec_reports_writes_then_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut writer = LogWriter::start(dir.path(), "log", 5, FsyncPolicy::EverySec, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
        assert!(writer.send(Order::Append {
            bytes: batch(&[b"x"]),
            seq: 1
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut synced = false;
        while !synced && Instant::now() < deadline {
            if let Ok(Report::Written {
                seq: 1,
                synced: true,
                ..
            }) = rx.recv_timeout(Duration::from_millis(100))
            {
                synced = true;
            }
        }
        assert!(synced, "no fsync within a few seconds");
        writer.finish();
    }

    #[test]
    fn a_failed_open_is_reported_at_start() {
        let missing = Path::new("/nonexistent/pocketkv");
        let err = LogWriter::start(missing, "appendonly", 1, FsyncPolicy::No, |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/pocketkv/appendonly.1.aof"),
            "{err}"
        );
    }
}
