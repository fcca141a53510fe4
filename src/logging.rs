//! Log lines: `2026-12-04T05:45:01.123Z INFO  message`, to stderr always and to `--logfile` too
//! when set. SIGHUP reopens the file so log rotation (rename, then signal) works without a
//! restart. A `log::Log` of our own rather than env_logger: the line needs a civil UTC time,
//! which env_logger only formats with its `humantime` feature, and this is smaller than either.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

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

/// Installs the logger at `level`; a second call (tests) only changes the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&Logger);
    set_level(level);
}

/// Changes which lines are written from now on (start-up, CONFIG SET loglevel).
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// The level `RUST_LOG` asks for, if it is set and names one: the most verbose level among its
/// comma-separated directives (`info`, `pocketkv=debug`); pocketkv logs under one name, so
/// env_logger's per-module filters come to the same thing.
pub fn level_from_env(spec: &str) -> Option<LevelFilter> {
    spec.split(',')
        .filter_map(|directive| {
            let level = directive.rsplit('=').next().unwrap_or(directive).trim();
            level.parse::<LevelFilter>().ok()
        })
        .max()
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = String::with_capacity(128);
        push_timestamp(&mut line, since_epoch.as_millis());
        let _ = writeln!(line, " {:<5} {}", level_name(record.level()), record.args());
        // One write per line, so lines from the snapshot thread never interleave with the loop's.
        let _ = io::stderr().lock().write_all(line.as_bytes());
        if let Ok(mut slot) = slot().lock() {
            if let Some((_, file)) = slot.as_mut() {
                // A full disk must not stop the server; stderr still has the line.
                let _ = file.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {
        let _ = io::stderr().flush();
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// Appends `ms` milliseconds since the Unix epoch as ISO-8601 UTC: `2026-12-04T05:45:01.123Z`.
fn push_timestamp(out: &mut String, ms: u128) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        ms % 1000
    );
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01: Howard
/// Hinnant's `civil_from_days`, which counts in 400-year eras starting on 1 March so that the
/// leap day falls at the end of each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u128) -> String {
        let mut s = String::new();
        push_timestamp(&mut s, ms);
        s
    }

    #[test]
    fn timestamps_are_iso_8601_utc_with_milliseconds() {
        assert_eq!(stamp(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796363074 +%FT%T` and friends, by hand.
        assert_eq!(stamp(1_796_363_074_535), "2026-12-04T05:44:34.535Z");
        assert_eq!(stamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(stamp(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(stamp(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(stamp(253_402_300_799_000), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn every_day_follows_the_one_before() {
        let (mut y, mut m, mut d) = civil_from_days(-1);
        assert_eq!((y, m, d), (1969, 12, 31));
        for days in 0..200_000 {
            let next = civil_from_days(days);
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if d < month_len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(next, expected, "day {days}");
            (y, m, d) = next;
        }
    }

    #[test]
    fn rust_log_gives_its_most_verbose_level() {
        assert_eq!(level_from_env("info"), Some(LevelFilter::Info));
        assert_eq!(
            level_from_env("warn,pocketkv=debug"),
            Some(LevelFilter::Debug)
        );
        assert_eq!(level_from_env("pocketkv"), None);
        assert_eq!(level_from_env(""), None);
    }
}
