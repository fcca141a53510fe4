//! The audit log: one line per write command (time, client, command, first key; never values
//! or passwords), written by a thread of its own so the event loop never waits for the disk.
//!
//! The loop hands each line over a bounded channel. When the channel is full (the disk is slower
//! than the writes for a while), the line is dropped and counted, never waited for: the audit log
//! must not slow or stop the server. The count is in INFO (`audit_log_dropped_lines`) and the
//! thread writes a `# dropped N lines` note into the file once it catches up, so a gap is visible
//! where it happened.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Lines that may wait for the writer thread; beyond this they are dropped.
const QUEUE: usize = 64 * 1024;

/// How long written lines may sit in the writer's buffer before they reach the file.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// What the writer thread is told.
#[derive(Debug)]
enum Message {
    /// One line, newline included.
    Line(String),
    /// Reopen the file (after SIGHUP): log rotation moved it away.
    Reopen,
}

/// The loop's end of the audit log.
#[derive(Debug)]
pub struct AuditLog {
    sender: SyncSender<Message>,
    shared: Arc<Shared>,
}

/// Counters both ends see.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    /// Dropped lines the file has not been told about yet.
    unreported: AtomicU64,
    write_errors: AtomicU64,
    reopen_wanted: AtomicBool,
}

impl AuditLog {
    /// Opens (appending to) `path` and starts the writer thread.
    pub fn start(path: &Path) -> io::Result<AuditLog> {
        let file = open(path)?;
        let (sender, receiver) = sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_lines(receiver, file, path, thread_shared))?;
        Ok(AuditLog { sender, shared })
    }

    /// Records one write command; drops it (and counts it) when the writer is behind.
    pub fn record(
        &self,
        unix_ms: u128,
        peer: Option<SocketAddr>,
        command: &str,
        key: Option<&[u8]>,
        ok: bool,
    ) {
        let mut line = String::with_capacity(64);
        line.push_str(itoa::Buffer::new().format(unix_ms));
        line.push(' ');
        match peer {
            Some(peer) => line.push_str(&peer.to_string()),
            None => line.push('-'),
        }
        line.push(' ');
        line.push_str(command);
        line.push(' ');
        match key {
            Some(key) => {
                let mut quoted = Vec::new();
                crate::protocol::quote(key, &mut quoted);
                line.push_str(&String::from_utf8_lossy(&quoted));
            }
            None => line.push('-'),
        }
        line.push_str(if ok { " ok\n" } else { " err\n" });
        self.send(line);
    }

    /// Records a command or login refused by the ACL rules: `<ms> <client> <user> denied
    /// <reason> <object>` (reason: command, key, channel or auth; the object quoted).
    pub fn denied(
        &self,
        unix_ms: u128,
        peer: Option<SocketAddr>,
        user: &[u8],
        reason: &str,
        object: &[u8],
    ) {
        let mut line = String::with_capacity(64);
        line.push_str(itoa::Buffer::new().format(unix_ms));
        line.push(' ');
        match peer {
            Some(peer) => line.push_str(&peer.to_string()),
            None => line.push('-'),
        }
        for (word, quote) in [(user, true), (b"denied".as_slice(), false)] {
            line.push(' ');
            let mut quoted = Vec::new();
            if quote {
                crate::protocol::quote(word, &mut quoted);
            } else {
                quoted.extend_from_slice(word);
            }
            line.push_str(&String::from_utf8_lossy(&quoted));
        }
        line.push(' ');
        line.push_str(reason);
        line.push(' ');
        let mut quoted = Vec::new();
        crate::protocol::quote(object, &mut quoted);
        line.push_str(&String::from_utf8_lossy(&quoted));
        line.push('\n');
        self.send(line);
    }

    fn send(&self, line: String) {
        match self.sender.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.unreported.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks the writer to reopen its file. Never blocks: if the queue is full, the writer sees
    /// the request with its next line.
    pub fn reopen(&self) {
        self.shared.reopen_wanted.store(true, Ordering::Relaxed);
        let _ = self.sender.try_send(Message::Reopen);
    }

    /// Lines dropped because the writer was behind, since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Failed writes or reopens, since start.
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: buffers lines, flushes when the queue runs dry or every `FLUSH_EVERY`.
fn write_lines(receiver: Receiver<Message>, file: File, path: PathBuf, shared: Arc<Shared>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let fail = |what: &str, e: io::Error| {
        // Counted always, logged on the first failure only, so a full disk does not flood the log.
        if shared.write_errors.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!("audit log {}: {what} failed: {e}", path.display());
        }
    };
    loop {
        let message = match receiver.recv_timeout(FLUSH_EVERY) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        };
        if shared.reopen_wanted.swap(false, Ordering::Relaxed) {
            if let Err(e) = out.flush() {
                fail("write", e);
            }
            match open(&path) {
                Ok(file) => out = BufWriter::with_capacity(64 * 1024, file),
                Err(e) => fail("reopen", e),
            }
        }
        let dropped = shared.unreported.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            if let Err(e) = writeln!(out, "# dropped {dropped} lines: the audit log fell behind") {
                fail("write", e);
            }
        }
        match message {
            Some(Message::Line(line)) => {
                if let Err(e) = out.write_all(line.as_bytes()) {
                    fail("write", e);
                }
            }
            Some(Message::Reopen) => {}
            None => {
                if let Err(e) = out.flush() {
                    fail("write", e);
                }
            }
        }
    }
}
