//! Where log lines go: stderr always, and `--logfile` too when set. SIGHUP reopens the file so
//! log rotation (rename, then signal) works without a restart.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The log file, shared by every thread that logs.
static LOG_FILE: OnceLock<Mutex<Option<(PathBuf, File)>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<(PathBuf, File)>> {
    LOG_FILE.get_or_init(|| Mutex::new(None))
}

/// Starts writing log lines to `path` as well as stderr.
pub fn open_file(path: &Path) -> io::Result<()> {
    let file = open(path)?;
    if let Ok(mut slot) = slot().lock() {
        *slot = Some((path.to_path_buf(), file));
    }
    Ok(())
}

/// Reopens the log file under its name (after log rotation moved the old one away).
pub fn reopen() -> io::Result<()> {
    let Ok(mut slot) = slot().lock() else {
        return Ok(());
    };
    if let Some((path, file)) = slot.as_mut() {
        *file = open(path)?;
    }
    Ok(())
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// env_logger's output: each formatted record to stderr, then to the log file if there is one.
#[derive(Debug)]
pub struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        if let Ok(mut slot) = slot().lock() {
            if let Some((_, file)) = slot.as_mut() {
                // A full disk must not stop the server; stderr still has the line.
                let _ = file.write_all(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
