//! Per-command counters and latency histograms (INFO commandstats and latencystats, /metrics)
//! and the slow log (SLOWLOG).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

/// Upper bounds of the latency buckets in microseconds (1-2-5 steps, 1 us to 10 s); one more
/// bucket counts everything slower. Fixed buckets keep recording to one comparison loop and an
/// increment, and need no dependency (an HDR histogram would cost binary size).
pub const BUCKET_BOUNDS_USEC: [u64; 22] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
    200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000,
];

/// The same bounds in seconds, as Prometheus's `le` label shows them.
pub const BUCKET_BOUNDS_SECONDS: [&str; 22] = [
    "0.000001", "0.000002", "0.000005", "0.00001", "0.00002", "0.00005", "0.0001", "0.0002",
    "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2",
    "5", "10",
];

/// A latency histogram over [`BUCKET_BOUNDS_USEC`] plus an overflow bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Non-cumulative counts; the last one is above the highest bound.
    pub counts: [u64; BUCKET_BOUNDS_USEC.len() + 1],
    /// Sum of every recorded duration, in nanoseconds.
    pub sum_nanos: u64,
}

impl Histogram {
    /// Adds one observation.
    pub fn record(&mut self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
        let bucket = BUCKET_BOUNDS_USEC
            .iter()
            .position(|&bound| nanos <= bound * 1000)
            .unwrap_or(BUCKET_BOUNDS_USEC.len());
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q`-th percentile (0-100) in microseconds, interpolated linearly inside its bucket
    /// as Prometheus's `histogram_quantile` does; precise to the bucket, not better. Observations
    /// above the highest bound count as that bound. 0 when nothing was recorded.
    pub fn percentile_usec(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = (q / 100.0 * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = BUCKET_BOUNDS_USEC.get(i) else {
                    return BUCKET_BOUNDS_USEC[BUCKET_BOUNDS_USEC.len() - 1] as f64;
                };
                let lower = if i == 0 { 0 } else { BUCKET_BOUNDS_USEC[i - 1] };
                let within = (rank - below as f64) / count as f64;
                return lower as f64 + (upper - lower) as f64 * within;
            }
            below += count;
        }
        BUCKET_BOUNDS_USEC[BUCKET_BOUNDS_USEC.len() - 1] as f64
    }
}

/// One command's figures, as INFO commandstats reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandStat {
    /// Times the command ran (failed ones included).
    pub calls: u64,
    /// Of those, the ones that replied with an error.
    pub failed_calls: u64,
    /// Requests refused before running (wrong arity, MISCONF).
    pub rejected_calls: u64,
    /// How long the runs took.
    pub latency: Histogram,
}

/// Figures per command name (`get`, `config|get`).
pub type CommandStats = HashMap<&'static str, CommandStat, BuildHasherDefault<NameHasher>>;

/// FNV-1a over a command name. The keys are only the command table's own names, never a
/// client's bytes, so they need no flood-resistant SipHash, which cost more per request than
/// the rest of the counting.
#[derive(Debug, Default)]
pub struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Most arguments a slow log entry keeps (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
pub const SLOWLOG_MAX_ARGC: usize = 32;
/// Most bytes of one argument a slow log entry keeps (Redis's `SLOWLOG_ENTRY_MAX_STRING`).
pub const SLOWLOG_MAX_STRING: usize = 128;

/// One slow command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    /// Increasing id, never reused (not even after SLOWLOG RESET).
    pub id: u64,
    /// Unix seconds when it was logged.
    pub unix_time: u64,
    /// How long it ran, in microseconds.
    pub micros: u64,
    /// Its arguments, cut as Redis cuts them.
    pub args: Vec<Vec<u8>>,
    /// The client's `ip:port`.
    pub peer: String,
    /// The client's name, empty when unnamed.
    pub name: Vec<u8>,
}

/// The slow log: the newest entries first, at most `slowlog-max-len` of them.
#[derive(Debug, Clone, Default)]
pub struct SlowLog {
    /// Newest first.
    pub entries: VecDeque<SlowEntry>,
    /// The id the next entry gets.
    pub next_id: u64,
}

impl SlowLog {
    /// Logs a command that took `took` if `threshold_usec` says it is slow (negative: never;
    /// 0: always), keeping at most `max_len` entries.
    pub fn offer(
        &mut self,
        threshold_usec: i64,
        max_len: usize,
        took: Duration,
        args: &[impl AsRef<[u8]>],
        peer: Option<std::net::SocketAddr>,
        name: &[u8],
    ) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let Ok(threshold) = u64::try_from(threshold_usec) else {
            return;
        };
        if max_len == 0 || micros < threshold {
            return;
        }
        let entry = SlowEntry {
            id: self.next_id,
            unix_time: super::unix_time().as_secs(),
            micros,
            args: slowlog_args(args),
            peer: peer.map(|p| p.to_string()).unwrap_or_default(),
            name: name.to_vec(),
        };
        self.next_id += 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }
}

/// Redis's cut: past 32 arguments the 32nd says how many more there were; past 128 bytes an
/// argument says how many more bytes it had.
fn slowlog_args(args: &[impl AsRef<[u8]>]) -> Vec<Vec<u8>> {
    let kept = if args.len() > SLOWLOG_MAX_ARGC {
        SLOWLOG_MAX_ARGC - 1
    } else {
        args.len()
    };
    let mut out: Vec<Vec<u8>> = args
        .iter()
        .take(kept)
        .map(|arg| {
            let arg = arg.as_ref();
            match arg.get(..SLOWLOG_MAX_STRING) {
                Some(head) if arg.len() > SLOWLOG_MAX_STRING => {
                    let mut cut = head.to_vec();
                    let more = arg.len() - SLOWLOG_MAX_STRING;
                    cut.extend_from_slice(format!("... ({more} more bytes)").as_bytes());
                    cut
                }
                _ => arg.to_vec(),
            }
        })
        .collect();
    if kept < args.len() {
        let more = args.len() - kept;
        out.push(format!("... ({more} more arguments)").into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_percentiles() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile_usec(50.0), 0.0);
        for _ in 0..99 {
            h.record(Duration::from_nanos(1500)); // in the (1, 2] us bucket
        }
        h.record(Duration::from_millis(30)); // in (20, 50] ms
        assert_eq!(h.count(), 100);
        assert_eq!(h.counts[1], 99);
        assert_eq!(h.counts[14], 1);
        let p50 = h.percentile_usec(50.0);
        assert!(p50 > 1.0 && p50 <= 2.0, "{p50}");
        assert!(h.percentile_usec(99.9) > 20_000.0);
        h.record(Duration::from_secs(60));
        assert_eq!(h.counts[BUCKET_BOUNDS_USEC.len()], 1);
        assert_eq!(h.percentile_usec(100.0), 10_000_000.0);
        assert_eq!(h.sum_nanos, 99 * 1500 + 30_000_000 + 60_000_000_000);
    }

    #[test]
    fn bounds_in_seconds_match_microseconds() {
        for (usec, secs) in BUCKET_BOUNDS_USEC.iter().zip(BUCKET_BOUNDS_SECONDS) {
            let parsed: f64 = secs.parse().unwrap();
            assert!((parsed * 1e6 - *usec as f64).abs() < 1e-6, "{secs}");
        }
    }

    #[test]
    fn slowlog_cuts_like_redis() {
        let long = vec![b'x'; 130];
        let args: Vec<Vec<u8>> = (0..40)
            .map(|i| if i == 1 { long.clone() } else { vec![b'a'] })
            .collect();
        let cut = slowlog_args(&args);
        assert_eq!(cut.len(), 32);
        assert_eq!(cut[31], b"... (9 more arguments)");
        assert_eq!(&cut[1][..128], &long[..128]);
        assert_eq!(&cut[1][128..], b"... (2 more bytes)");
        assert_eq!(
            slowlog_args(&[&b"get"[..], b"k"]),
            vec![b"get".to_vec(), b"k".to_vec()]
        );
    }

    #[test]
    fn slowlog_threshold_and_length() {
        let mut log = SlowLog::default();
        let args = [b"get".to_vec()];
        log.offer(-1, 10, Duration::from_secs(1), &args, None, b"");
        assert!(log.entries.is_empty());
        log.offer(100, 10, Duration::from_micros(99), &args, None, b"");
        assert!(log.entries.is_empty());
        for _ in 0..3 {
            log.offer(0, 2, Duration::ZERO, &args, None, b"");
        }
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[0].id, 2);
        assert_eq!(log.next_id, 3);
    }
}
