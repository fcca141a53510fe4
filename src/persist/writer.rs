//! The snapshot writer: one helper thread, started by the first snapshot, that serializes
//! point-in-time images and replaces the snapshot file atomically, so the event loop never waits
//! on the disk.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::Image;

/// One snapshot to write.
#[derive(Debug)]
pub struct Job {
    /// The data, as it was when the job was made.
    pub image: Image,
    /// Where the file goes.
    pub path: PathBuf,
    /// The store's change counter when the image was taken.
    pub dirty: u64,
    /// The first log segment the image does not contain.
    pub log_seq: u64,
    /// Base name of the log segments: once the snapshot is durable, the segments before
    /// `log_seq` are deleted.
    pub log_base: Option<String>,
    /// Whether the file is compressed.
    pub compression: super::Compression,
    /// The replication history and offset the image holds.
    pub repl: Option<(String, u64)>,
}

/// What became of a [`Job`].
#[derive(Debug)]
pub struct Done {
    /// Ok with the file's size, or why it failed.
    pub result: Result<u64, String>,
    /// The job's change counter, echoed back.
    pub dirty: u64,
    /// Keys written.
    pub keys: usize,
    /// Time spent serializing and syncing.
    pub elapsed: Duration,
    /// The image, handed back for the store to reuse its tables (`Store::retire`).
    pub image: Option<Image>,
}

/// What the writer thread calls with each finished job.
type Notify = Arc<dyn Fn(Done) + Send + Sync>;

/// Handle to the writer thread. The thread starts with the first job, not with the server: a
/// server that never snapshots has no thread, and an idle one holds no stack and no malloc arena
/// for it (about 12 KB of RSS; docs/performance.md, "Memory").
pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    notify: Notify,
    /// Set by `finish`: no thread is started after it.
    finished: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("started", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer whose thread will call `notify` with each finished job; no thread yet.
    pub fn new(notify: impl Fn(Done) + Send + Sync + 'static) -> Writer {
        Writer {
            jobs: None,
            thread: None,
            notify: Arc::new(notify),
            finished: false,
        }
    }

    /// True once the thread has been started (by the first job).
    pub fn started(&self) -> bool {
        self.thread.is_some()
    }

    /// Queues a job, starting the thread first if this is the first one; why not, if the
    /// thread cannot be started or is gone.
    pub fn submit(&mut self, job: Job) -> Result<(), String> {
        if self.thread.is_none() && !self.finished {
            self.spawn()
                .map_err(|e| format!("cannot start the snapshot thread: {e}"))?;
        }
        match &self.jobs {
            Some(jobs) if jobs.send(job).is_ok() => Ok(()),
            _ => Err("the snapshot thread has stopped".into()),
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let notify = Arc::clone(&self.notify);
        let thread = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                for job in queue {
                    let started = Instant::now();
                    let result = write_atomically(&job.path, |out| {
                        let position = job.repl.as_ref().map(|(id, offset)| (id.as_str(), *offset));
                        super::write_snapshot(
                            &job.image,
                            job.log_seq,
                            position,
                            job.compression,
                            out,
                        )
                    });
                    if let (Ok(_), Some(base)) = (&result, &job.log_base) {
                        prune_segments(&job.path, base, job.log_seq);
                    }
                    notify(Done {
                        result: result.map_err(|e| e.to_string()),
                        dirty: job.dirty,
                        keys: job.image.len(),
                        elapsed: started.elapsed(),
                        image: Some(job.image),
                    });
                }
            })?;
        self.jobs = Some(jobs);
        self.thread = Some(thread);
        Ok(())
    }

    /// Lets queued jobs finish, then stops the thread.
    pub fn finish(&mut self) {
        self.finished = true;
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Deletes the log segments next to `snapshot` that come before `first_kept`: the snapshot, now
/// durable, holds everything they recorded.
pub fn prune_segments(snapshot: &Path, base: &str, first_kept: u64) {
    for (seq, path) in super::log::list_segments(dir_of(snapshot), base) {
        if seq < first_kept {
            match fs::remove_file(&path) {
                Ok(()) => log::info!(
                    "removed log segment {} (in the snapshot now)",
                    path.display()
                ),
                Err(e) => log::warn!("cannot remove old log segment {}: {e}", path.display()),
            }
        }
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes a file so that a crash at any moment leaves either the old file or the new one:
/// temp file in the same directory, fsync, rename over the target, fsync the directory.
/// Returns the new file's size.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let dir = dir_of(path);
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    let result = (|| {
        let file = File::create(&temp)?;
        let mut out = BufWriter::with_capacity(1 << 16, &file);
        fill(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        let size = file.metadata()?.len();
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn writes_replace_the_file_and_leave_no_temp() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let path = dir.join("data.json");
        fs::write(&path, b"old").unwrap();
        let size = write_atomically(&path, |out| out.write_all(b"new!")).unwrap();
        assert_eq!(size, 4);
        assert_eq!(fs::read(&path).unwrap(), b"new!");
        assert!(!dir.join("data.json.tmp").exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let path = dir.join("data.json");
        fs::write(&path, b"old").unwrap();
        let err = write_atomically(&path, |_| Err(std::io::Error::other("disk on fire")));
        assert!(err.unwrap_err().to_string().contains("disk on fire"));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!dir.join("data.json.tmp").exists());
    }

    #[test]
    fn the_thread_writes_a_loadable_snapshot() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let path = dir.join("data.json");
        let mut store = Store::new();
        store.set(b"k", b"v");
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer::new(move |done| tx.send(done).unwrap());
        assert!(!writer.started(), "no thread before the first job");
        let mut job = |path: &Path| Job {
            image: store.image(),
            path: path.to_path_buf(),
            dirty: 7,
            log_seq: 0,
            log_base: None,
            compression: crate::persist::Compression::Lz4,
            repl: None,
        };
        assert_eq!(writer.submit(job(&path)), Ok(()));
        assert!(writer.started());
        let done = rx.recv().unwrap();
        assert!(done.result.is_ok());
        assert_eq!((done.dirty, done.keys), (7, 1));
        writer.finish();
        assert_eq!(
            writer.submit(job(&path)),
            Err("the snapshot thread has stopped".to_string())
        );
        assert!(fs::read(&path).unwrap().starts_with(b"\x89pkv-lz4"));
        let snapshot = crate::persist::load_file(&path).unwrap().unwrap();
        let entry = crate::store::Entry::new(b"v".to_vec(), None);
        assert_eq!(snapshot.pairs, vec![(b"k".to_vec(), entry)]);
    }
}
