//! `GET /metrics`: the server's figures in Prometheus's text exposition format (version 0.0.4).
//!
//! Everything here is read from state the loop already keeps; rendering allocates one string.

use std::fmt::Write as _;

use crate::command::{ServerState, BUCKET_BOUNDS_SECONDS};
use crate::store::Store;

/// One metric family: its `# HELP` and `# TYPE` lines.
#[inline(never)]
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// A family with one unlabelled sample. Not generic and not inlined: one copy serves the
/// forty-odd metrics (a sample is a float in Prometheus anyway; counters stay exact to 2^53).
#[inline(never)]
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The whole exposition, one metric per line of code.
#[rustfmt::skip]
pub(super) fn render(store: &Store, state: &ServerState) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let stats = &state.stats;
    let o = &mut out;
    single(o, "pocketkv_uptime_seconds", "gauge", "Seconds since the server started.", (state.uptime().as_secs()) as f64);
    single(o, "pocketkv_connected_clients", "gauge", "Connections open now (RESP, text and HTTP).", state.connected_clients as f64);
    single(o, "pocketkv_connections_received_total", "counter", "Connections accepted since start.", stats.connections_received as f64);
    single(o, "pocketkv_connections_rejected_total", "counter", "Connections refused because of maxclients.", stats.rejected_connections as f64);
    single(o, "pocketkv_commands_processed_total", "counter", "Requests executed, failed and unknown ones included.", stats.commands as f64);
    single(o, "pocketkv_error_replies_total", "counter", "Error replies sent.", stats.error_replies as f64);
    single(o, "pocketkv_http_requests_total", "counter", "HTTP requests answered.", stats.http_requests as f64);
    single(o, "pocketkv_http_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status.", stats.http_errors as f64);
    single(o, "pocketkv_net_input_bytes_total", "counter", "Bytes read from clients.", stats.net_input_bytes as f64);
    single(o, "pocketkv_net_output_bytes_total", "counter", "Bytes written to clients.", stats.net_output_bytes as f64);
    single(o, "pocketkv_keys", "gauge", "Keys in the store.", (store.len()) as f64);
    let (hits, misses) = store.hits_and_misses();
    single(o, "pocketkv_keyspace_hits_total", "counter", "Key lookups that found the key.", hits as f64);
    single(o, "pocketkv_keyspace_misses_total", "counter", "Key lookups that did not find the key.", misses as f64);
    single(o, "pocketkv_expired_keys_total", "counter", "Keys removed because their time to live ran out.", stats.expired_keys as f64);
    single(o, "pocketkv_evicted_keys_total", "counter", "Keys removed to stay under maxmemory.", stats.evicted_keys as f64);
    single(o, "pocketkv_memory_used_bytes", "gauge", "Estimated bytes held by keys and values.", (store.used_bytes()) as f64);
    single(o, "pocketkv_memory_rss_bytes", "gauge", "Resident set size of the process, sampled every second.", state.rss_bytes as f64);

    let snap = &state.snapshot;
    single(o, "pocketkv_snapshot_in_progress", "gauge", "1 while a snapshot is being written.", (u8::from(snap.running_since.is_some())) as f64);
    single(o, "pocketkv_snapshot_last_ok", "gauge", "1 if the last snapshot succeeded.", (u8::from(snap.last_ok)) as f64);
    single(o, "pocketkv_snapshot_last_success_timestamp_seconds", "gauge", "Unix time of the last successful snapshot (or of start).", snap.last_save_unix as f64);
    single(o, "pocketkv_snapshot_last_duration_seconds", "gauge", "How long the last snapshot took, copy to durable rename.", snap.last_duration.map_or(0.0, |d| d.as_secs_f64()));
    single(o, "pocketkv_snapshot_last_copy_seconds", "gauge", "How long the loop paused for the last point-in-time copy.", snap.last_copy.as_secs_f64());
    single(o, "pocketkv_snapshots_total", "counter", "Successful snapshots since start.", snap.saves_ok as f64);
    single(o, "pocketkv_changes_since_last_snapshot", "gauge", "Changes not yet in a snapshot.", (store.dirty().saturating_sub(snap.dirty_at_last_save)) as f64);

    let log = &state.log;
    single(o, "pocketkv_aof_enabled", "gauge", "1 when the append-only log is on.", (u8::from(log.enabled)) as f64);
    single(o, "pocketkv_aof_last_write_ok", "gauge", "1 unless writing the log is failing.", (u8::from(log.failing.is_none())) as f64);
    single(o, "pocketkv_aof_current_segment", "gauge", "Number of the log segment being written.", log.segment as f64);
    single(o, "pocketkv_aof_current_size_bytes", "gauge", "Size of that segment.", log.segment_bytes as f64);
    single(o, "pocketkv_aof_unsynced_records", "gauge", "Log records written but not yet fsynced.", (log.last_seq.saturating_sub(log.durable_seq)) as f64);
    single(o, "pocketkv_aof_fsync_lag_seconds", "gauge", "Age of the oldest record not yet fsynced.", log.unsynced_since.map_or(0.0, |t| t.elapsed().as_secs_f64()));
    single(o, "pocketkv_aof_replayed_records", "gauge", "Log records replayed at start.", log.replayed as f64);
    single(o, "pocketkv_slowlog_length", "gauge", "Entries in the slow log.", (state.slowlog.entries.len()) as f64);

    let mut commands: Vec<_> = stats.per_command.iter().collect();
    commands.sort_unstable_by_key(|(name, _)| **name);
    family(o, "pocketkv_command_calls_total", "counter", "Times each command ran, failed runs included.");
    for (name, stat) in &commands {
        let _ = writeln!(o, "pocketkv_command_calls_total{{command=\"{name}\"}} {}", stat.calls);
    }
    family(o, "pocketkv_command_failed_calls_total", "counter", "Runs that replied with an error.");
    for (name, stat) in &commands {
        let _ = writeln!(o, "pocketkv_command_failed_calls_total{{command=\"{name}\"}} {}", stat.failed_calls);
    }
    family(o, "pocketkv_command_rejected_calls_total", "counter", "Requests refused before running (arity, NOAUTH, MISCONF).");
    for (name, stat) in &commands {
        let _ = writeln!(o, "pocketkv_command_rejected_calls_total{{command=\"{name}\"}} {}", stat.rejected_calls);
    }
    let histogram = "pocketkv_command_duration_seconds";
    family(o, histogram, "histogram", "Time each command took to execute.");
    for (name, stat) in &commands {
        let h = &stat.latency;
        let mut cumulative = 0;
        for (le, count) in BUCKET_BOUNDS_SECONDS.iter().zip(h.counts.iter()) {
            cumulative += count;
            let _ = writeln!(o, "{histogram}_bucket{{command=\"{name}\",le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(o, "{histogram}_bucket{{command=\"{name}\",le=\"+Inf\"}} {}", h.count());
        let _ = writeln!(o, "{histogram}_sum{{command=\"{name}\"}} {}", h.sum_nanos as f64 / 1e9);
        let _ = writeln!(o, "{histogram}_count{{command=\"{name}\"}} {}", h.count());
    }
    out
}
