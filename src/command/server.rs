//! Server commands: DBSIZE, FLUSHDB, SAVE, BGSAVE, LASTSAVE, INFO, TIME, COMMAND, CONFIG,
//! SLOWLOG.

use std::fmt::Write as _;

use super::{table, wrong_arity, Arg, Ctx, Flow, ServerState, Spec, SYNTAX};
use crate::command::context::unix_time;
use crate::config::SetError;
use crate::protocol::Reply;
use crate::pubsub::Kind;

const G: &str = "server";
/// The Redis version pocketkv reports (INFO, HELLO): clients that check it see the command set
/// pocketkv follows.
pub(super) const REDIS_VERSION: &str = "7.0.0";
const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const INSPECT: &[&str] = &["loading", "stale"];
/// Admin commands Redis refuses inside MULTI.
const ADMIN_NO_MULTI: &[&str] = &["admin", "noscript", "loading", "stale", "no_multi"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("dbsize", 1, dbsize).read().doc(G, "", "number of keys"),
    Spec::new("flushdb", -1, flush).write().doc(G, "[ASYNC|SYNC]", "delete every key"),
    Spec::new("flushall", -1, flush).write().doc(G, "[ASYNC|SYNC]", "delete every key"),
    Spec::new("save", 1, save).flags(&["admin", "noscript", "no_multi"]).doc(G, "", "write a snapshot; replies once it is on disk"),
    Spec::new("bgsave", -1, bgsave).flags(&["admin", "noscript"]).doc(G, "[SCHEDULE]", "write a snapshot in the background"),
    Spec::new("shutdown", -1, shutdown).flags(ADMIN_NO_MULTI).doc(G, "[NOSAVE|SAVE]", "stop the server, saving a snapshot unless NOSAVE"),
    Spec::new("lastsave", 1, lastsave).flags(&["loading", "stale", "fast"]).doc(G, "", "Unix time of the last successful snapshot"),
    Spec::new("info", -1, info).flags(INSPECT).doc(G, "[section ...]", "server, clients, memory, persistence, stats, replication, commandstats, latencystats, keyspace"),
    Spec::new("time", 1, time).flags(&["loading", "stale", "fast"]).doc(G, "", "server time: seconds and microseconds"),
    Spec::new("command", -1, command_all).flags(INSPECT)
        .doc(G, "[COUNT | LIST | INFO name ... | DOCS [name ...]]", "describe the commands")
        .subcommands(&[
            Spec::new("command|count", 2, command_count).flags(INSPECT).doc(G, "", "number of commands"),
            Spec::new("command|list", -2, command_list).flags(INSPECT).doc(G, "", "names of the commands"),
            Spec::new("command|info", -2, command_info).flags(INSPECT).doc(G, "name [name ...]", "details of commands"),
            Spec::new("command|docs", -2, command_docs).flags(INSPECT).doc(G, "[name ...]", "documentation of commands"),
            super::help_entry("command|help"),
        ]),
    Spec::new("config", -2, config)
        .doc(G, "GET pattern [pattern ...] | SET name value [name value ...] | RESETSTAT | REWRITE", "read or change settings; reset counters; save settings to the config file")
        .subcommands(&[
            Spec::new("config|get", -3, config_get).flags(ADMIN).doc(G, "pattern [pattern ...]", "settings matching a glob"),
            Spec::new("config|set", -4, config_set).flags(ADMIN).doc(G, "name value [name value ...]", "change settings that can change at run time"),
            Spec::new("config|resetstat", 2, config_resetstat).flags(ADMIN).doc(G, "", "reset INFO stats counters"),
            Spec::new("config|rewrite", 2, config_rewrite).flags(ADMIN).doc(G, "", "write the running settings into the config file the server started with"),
            super::help_entry("config|help"),
        ]),
    Spec::new("slowlog", -2, slowlog)
        .doc(G, "GET [count] | LEN | RESET", "commands that ran longer than slowlog-log-slower-than")
        .subcommands(&[
            Spec::new("slowlog|get", -2, slowlog_get).flags(ADMIN).doc(G, "[count]", "the newest count entries (default 10, -1 all): id, unix time, microseconds, arguments, client address, client name"),
            Spec::new("slowlog|len", 2, slowlog_len).flags(ADMIN).doc(G, "", "number of entries"),
            Spec::new("slowlog|reset", 2, slowlog_reset).flags(ADMIN).doc(G, "", "delete every entry"),
            super::help_entry("slowlog|help"),
        ]),
];

fn dbsize<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(ctx.db.len() as i64)
}

fn flush<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_] => {}
        [_, mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {}
        _ => return SYNTAX,
    }
    ctx.db.clear();
    Reply::OK
}

fn save<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // The loop starts (or queues) the snapshot and answers once it is durable.
    ctx.server.snapshot.wanted = true;
    ctx.client.flow = Flow::AwaitSnapshot;
    Reply::OK
}

fn bgsave<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let schedule = match args {
        [_] => false,
        [_, option] if option.eq_ignore_ascii_case(b"SCHEDULE") => true,
        _ => return SYNTAX,
    };
    let status = &mut ctx.server.snapshot;
    if status.running_since.is_some() {
        if !schedule {
            return Reply::error("ERR Background save already in progress");
        }
        status.wanted = true;
        return Reply::Status("Background saving scheduled".into());
    }
    status.wanted = true;
    Reply::Status("Background saving started".into())
}

fn shutdown<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let (mut save, mut nosave, mut now) = (false, false, false);
    for option in args.iter().skip(1) {
        match option.to_ascii_uppercase().as_slice() {
            b"NOSAVE" => nosave = true,
            b"SAVE" => save = true,
            // Not waiting for replicas (shutdown-timeout) to catch up.
            b"NOW" => now = true,
            // pocketkv always exits, even when the final snapshot fails (and says so).
            b"FORCE" => {}
            b"ABORT" if args.len() == 2 => return abort_shutdown(ctx.server),
            _ => return SYNTAX,
        }
    }
    if save && nosave {
        return SYNTAX;
    }
    let server = &mut *ctx.server;
    // As in Redis, a SHUTDOWN while one waits for replicas changes nothing (not even NOW): its
    // caller waits with the first one's.
    if !server.writes_paused && server.shutdown.is_none() {
        server.shutdown = Some(!nosave);
        server.shutdown_now = now;
        let timeout = server.config.repl.shutdown_timeout;
        server.writes_paused = !now && timeout > 0 && server.repl.replicas_lag();
    }
    // Like Redis, SHUTDOWN answers nothing when it succeeds: the connection closes as the
    // process exits.
    ctx.client.flow = Flow::Shutdown;
    Reply::OK
}

/// SHUTDOWN ABORT: cancels a shutdown waiting for its replicas; writes resume.
fn abort_shutdown(server: &mut ServerState) -> Reply<'static> {
    if !server.writes_paused {
        return Reply::error("ERR No shutdown in progress.");
    }
    server.writes_paused = false;
    server.shutdown = None;
    server.shutdown_aborted = true;
    Reply::OK
}

fn lastsave<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(ctx.server.snapshot.last_save_unix as i64)
}

fn time<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    let now = unix_time();
    Reply::Array(vec![
        Reply::bulk_owned(now.as_secs().to_string().into_bytes()),
        Reply::bulk_owned(now.subsec_micros().to_string().into_bytes()),
    ])
}

/// INFO's sections, in Redis's order.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "commandstats",
    "latencystats",
    "keyspace",
];

/// Sections only named ones, `all` and `everything` show, as in Redis (not a bare INFO).
const NOT_DEFAULT: &[&str] = &["commandstats", "latencystats"];

fn info<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let asked: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    let everything = asked
        .iter()
        .any(|s| matches!(s.as_str(), "all" | "everything"));
    let default = asked.is_empty() || asked.iter().any(|s| s == "default");
    let mut text = String::new();
    for section in SECTIONS {
        let by_default = default && !NOT_DEFAULT.contains(section);
        if everything || by_default || asked.iter().any(|s| s == section) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            write_section(ctx, section, &mut text);
        }
    }
    Reply::Text(text)
}

fn write_section(ctx: &Ctx<'_>, section: &str, out: &mut String) {
    let server = &*ctx.server;
    let snap = &server.snapshot;
    macro_rules! field {
        ($name:expr, $value:expr $(,)?) => {{
            let _ = write!(out, "{}:{}\r\n", $name, $value);
        }};
    }
    match section {
        "server" => {
            let uptime = server.uptime().as_secs();
            out.push_str("# Server\r\n");
            field!("redis_version", REDIS_VERSION);
            field!("pocketkv_version", &env!("CARGO_PKG_VERSION"));
            field!("redis_mode", &"standalone");
            field!("os", &std::env::consts::OS);
            field!("arch", &std::env::consts::ARCH);
            field!("multiplexing_api", &"mio");
            field!("process_id", &std::process::id());
            field!("run_id", &server.repl.run_id);
            field!("tcp_port", &server.listening.port());
            field!("uptime_in_seconds", &uptime);
            field!("uptime_in_days", &(uptime / 86_400));
            // Only while a shutdown waits for its replicas, as in Redis.
            if let Some(deadline) = server.shutdown_wait {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                field!("shutdown_in_milliseconds", &left.as_millis());
            }
        }
        "clients" => {
            out.push_str("# Clients\r\n");
            field!("connected_clients", &server.connected_clients);
            field!("maxclients", &server.config.maxclients);
            // Clients held in WAIT, in SHUTDOWN, or writes held by a shutdown's wait.
            let blocked = server.clients.iter().flatten().filter(|c| c.blocked);
            field!("blocked_clients", &blocked.count());
        }
        "memory" => {
            out.push_str("# Memory\r\n");
            let used = ctx.db.used_bytes();
            field!("used_memory", &used);
            field!("used_memory_human", &human_bytes(used));
            field!("used_memory_rss", &server.rss_bytes);
            field!("used_memory_rss_human", &human_bytes(server.rss_bytes));
            let config = &server.config;
            field!("maxmemory", &config.maxmemory);
            field!("maxmemory_human", &human_bytes(config.maxmemory));
            field!("maxmemory_policy", &config.maxmemory_policy);
        }
        "persistence" => {
            out.push_str("# Persistence\r\n");
            field!("loading", &0);
            field!(
                "rdb_changes_since_last_save",
                &ctx.db.dirty().saturating_sub(snap.dirty_at_last_save),
            );
            field!(
                "rdb_bgsave_in_progress",
                &u8::from(snap.running_since.is_some())
            );
            field!("rdb_last_save_time", &snap.last_save_unix);
            field!(
                "rdb_last_bgsave_status",
                &if snap.last_ok { "ok" } else { "err" },
            );
            field!(
                "rdb_last_bgsave_time_sec",
                &snap.last_duration.map_or(-1, |d| d.as_secs() as i64),
            );
            field!(
                "rdb_current_bgsave_time_sec",
                &snap
                    .running_since
                    .map_or(-1, |t| t.elapsed().as_secs() as i64),
            );
            let copied = ctx.db.copied();
            let log = &server.log;
            field!("rdb_saves", &snap.saves_ok);
            field!("rdb_last_copy_usec", &snap.last_copy.as_micros());
            field!("rdb_last_copy_cpu_usec", &snap.last_copy_cpu.as_micros());
            field!("rdb_cow_shards_copied", &copied.shards);
            field!("rdb_cow_bytes_estimate", &copied.bytes);
            field!("rdb_cow_spare_bytes", &copied.spare_bytes);
            field!("rdb_last_error", &snap.last_error.as_deref().unwrap_or(""));
            field!("snapshot_file", &server.config.snapshot_path().display());
            field!("aof_enabled", &u8::from(log.enabled));
            field!("aof_fsync", &log.policy.map_or("-", |p| p.name()));
            field!(
                "aof_last_write_status",
                &if log.failing.is_some() { "err" } else { "ok" }
            );
            field!(
                "aof_last_write_error",
                &log.failing.as_deref().unwrap_or("")
            );
            field!("aof_current_segment", &log.segment);
            field!("aof_current_size", &log.segment_bytes);
            field!(
                "aof_unsynced_records",
                &log.last_seq.saturating_sub(log.durable_seq)
            );
            field!(
                "aof_fsync_lag_usec",
                &log.unsynced_since.map_or(0, |t| t.elapsed().as_micros())
            );
            field!("aof_replayed_records", &log.replayed);
            field!("aof_torn_tails_truncated", &log.torn_tails);
        }
        "stats" => {
            let stats = &server.stats;
            let (hits, misses) = ctx.db.hits_and_misses();
            out.push_str("# Stats\r\n");
            field!("total_connections_received", &stats.connections_received);
            field!("total_commands_processed", &stats.commands);
            field!("total_net_input_bytes", &stats.net_input_bytes);
            field!("total_net_output_bytes", &stats.net_output_bytes);
            field!("rejected_connections", &stats.rejected_connections);
            field!("sync_full", &server.repl.sync_full);
            field!("sync_partial_ok", &server.repl.sync_partial_ok);
            field!("sync_partial_err", &server.repl.sync_partial_err);
            field!("expired_keys", &stats.expired_keys);
            field!("evicted_keys", &stats.evicted_keys);
            field!("keyspace_hits", &hits);
            field!("keyspace_misses", &misses);
            field!("pubsub_channels", &server.pubsub.in_use(Kind::Channels));
            field!("pubsub_patterns", &server.pubsub.in_use(Kind::Patterns));
            field!("pubsubshard_channels", &server.pubsub.in_use(Kind::Shard));
            field!("total_error_replies", &stats.error_replies);
            field!(
                "audit_log_dropped_lines",
                &server.audit.as_ref().map_or(0, |a| a.dropped())
            );
            field!(
                "audit_log_write_errors",
                &server.audit.as_ref().map_or(0, |a| a.write_errors())
            );
            // Redis 7.4's names for these two counters.
            field!(
                "client_query_buffer_limit_disconnections",
                &stats.query_buffer_limit_disconnections
            );
            field!(
                "client_output_buffer_limit_disconnections",
                &stats.output_buffer_limit_disconnections
            );
            field!("longest_loop_turn_usec", &stats.longest_turn.as_micros());
            field!(
                "longest_loop_turn_cpu_usec",
                &stats.longest_turn_cpu.as_micros()
            );
        }
        "replication" => crate::replication::write_info(server, out),
        "commandstats" => {
            out.push_str("# Commandstats\r\n");
            for (name, stat) in sorted(&server.stats.per_command) {
                let usec = stat.latency.sum_nanos / 1000;
                let per_call = if stat.calls == 0 {
                    0.0
                } else {
                    usec as f64 / stat.calls as f64
                };
                let _ = write!(
                    out,
                    "cmdstat_{name}:calls={},usec={usec},usec_per_call={per_call:.2},\
                     rejected_calls={},failed_calls={}\r\n",
                    stat.calls, stat.rejected_calls, stat.failed_calls
                );
            }
        }
        "latencystats" => {
            out.push_str("# Latencystats\r\n");
            for (name, stat) in sorted(&server.stats.per_command) {
                if stat.calls == 0 {
                    continue; // Redis lists only commands with recorded latencies.
                }
                let h = &stat.latency;
                let _ = write!(
                    out,
                    "latency_percentiles_usec_{name}:p50={:.3},p99={:.3},p99.9={:.3}\r\n",
                    h.percentile_usec(50.0),
                    h.percentile_usec(99.0),
                    h.percentile_usec(99.9)
                );
            }
        }
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            if !ctx.db.is_empty() {
                let (keys, expires) = (ctx.db.len(), ctx.db.volatile());
                field!("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
            }
        }
        _ => {}
    }
}

/// Per-command figures by name, so INFO lists them in a stable order.
fn sorted(stats: &super::CommandStats) -> Vec<(&'static str, &super::CommandStat)> {
    let mut all: Vec<_> = stats.iter().map(|(name, stat)| (*name, stat)).collect();
    all.sort_unstable_by_key(|(name, _)| *name);
    all
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `2.00M`, `1.00G`.
fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    match bytes {
        0..=1023 => format!("{bytes}B"),
        1024..=1_048_575 => format!("{:.2}K", b / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.2}M", b / 1_048_576.0),
        _ => format!("{:.2}G", b / 1_073_741_824.0),
    }
}

/// COMMAND's description of one command, in Redis 7's ten-element form.
fn describe(spec: &'static Spec) -> Reply<'static> {
    let names = |list: &[&'static str]| {
        Reply::Array(list.iter().map(|s| Reply::Status((*s).into())).collect())
    };
    let (first, last, step) = spec.keys;
    let category = match spec.group {
        "string" => "@string",
        "generic" => "@keyspace",
        "connection" => "@connection",
        _ => "@admin",
    };
    Reply::Array(vec![
        Reply::bulk(spec.name.as_bytes()),
        Reply::Integer(spec.arity.into()),
        names(spec.flags),
        Reply::Integer(first.into()),
        Reply::Integer(last.into()),
        Reply::Integer(step.into()),
        names(&[category]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(spec.subcommands.iter().map(describe).collect()),
    ])
}

fn command_all<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Array(table().map(describe).collect())
}

fn command_count<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(table().count() as i64)
}

fn command_list<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    if args.len() > 2 {
        return SYNTAX; // Redis's FILTERBY is not supported.
    }
    Reply::Array(table().map(|s| Reply::bulk(s.name.as_bytes())).collect())
}

fn command_info<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    Reply::Array(
        args.iter()
            .skip(2)
            .map(|name| super::lookup_path(name).map_or(Reply::Nil, describe))
            .collect(),
    )
}

fn command_docs<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let docs = |spec: &'static Spec| {
        [
            Reply::bulk(spec.name.as_bytes()),
            Reply::Array(vec![
                Reply::bulk(b"summary"),
                Reply::bulk(spec.summary.as_bytes()),
                Reply::bulk(b"since"),
                Reply::bulk(b"0.1.0"),
                Reply::bulk(b"group"),
                Reply::bulk(spec.group.as_bytes()),
            ]),
        ]
    };
    let specs: Vec<&'static Spec> = if args.len() > 2 {
        args.iter()
            .skip(2)
            .filter_map(|n| super::lookup_path(n))
            .collect()
    } else {
        table().collect()
    };
    Reply::Array(specs.into_iter().flat_map(docs).collect())
}

fn config<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    wrong_arity("config")
}

fn config_get<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let mut found: Vec<(String, String)> = Vec::new();
    for pattern in args.iter().skip(2) {
        for pair in ctx.server.config.matching(pattern) {
            if !found.contains(&pair) {
                found.push(pair);
            }
        }
    }
    Reply::Map(
        found
            .into_iter()
            .map(|(name, value)| {
                (
                    Reply::bulk_owned(name.into_bytes()),
                    Reply::bulk_owned(value.into_bytes()),
                )
            })
            .collect(),
    )
}

fn config_set<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let pairs = args.get(2..).unwrap_or_default();
    if pairs.len() % 2 != 0 {
        let name = String::from_utf8_lossy(pairs.first().map_or(&b""[..], |a| a.as_ref()));
        return Reply::error_owned(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
        ));
    }
    // All or nothing, as in Redis: the changes apply to a copy that replaces the live settings
    // only when every one of them is valid.
    let mut config = ctx.server.config.clone();
    let mut seen: Vec<String> = Vec::new();
    for pair in pairs.chunks(2) {
        let [name, value] = pair else { continue };
        let name = String::from_utf8_lossy(name).to_lowercase();
        let value = String::from_utf8_lossy(value);
        let failed = |why: &str| {
            Reply::error_owned(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
            ))
        };
        if seen.contains(&name) {
            return failed("duplicate parameter");
        }
        match config.set(&name, &value) {
            Ok(()) => {}
            Err(SetError::Unknown) => {
                return Reply::error_owned(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ))
            }
            Err(SetError::Immutable) => return failed("can't set immutable config"),
            // Redis's wording for its enumerated settings, which list their values.
            Err(SetError::Bad(expected)) => match expected.strip_prefix("one of: ") {
                Some(values) => {
                    return failed(&format!(
                        "argument(s) must be one of the following: {values}"
                    ))
                }
                None => return failed(&format!("argument must be {expected}")),
            },
        }
        seen.push(name);
    }
    crate::logging::set_level(config.loglevel);
    if seen.iter().any(|name| name == "requirepass") {
        // As Redis: requirepass is the default user's password.
        ctx.server
            .acl
            .set_requirepass(config.requirepass.as_bytes());
    }
    ctx.server.config = config;
    Reply::OK
}

fn config_resetstat<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // As Redis: counters, commandstats and latencies start over; the slow log stays.
    ctx.server.stats = Default::default();
    let repl = &mut ctx.server.repl;
    (repl.sync_full, repl.sync_partial_ok, repl.sync_partial_err) = (0, 0, 0);
    Reply::OK
}

fn config_rewrite<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    let config = &ctx.server.config;
    let Some(path) = &config.config_file else {
        return Reply::error("ERR The server is running without a config file");
    };
    let users: Vec<String> = (ctx.server.acl.users().iter())
        .map(|user| {
            let mut line = b"user ".to_vec();
            line.extend_from_slice(&user.name);
            line.push(b' ');
            line.extend_from_slice(&user.describe());
            String::from_utf8_lossy(&line).into_owned()
        })
        .collect();
    match crate::config::rewrite_file(path, &config.directives(users)) {
        Ok(()) => {
            log::info!("CONFIG REWRITE executed with success.");
            Reply::OK
        }
        Err(e) => {
            let why = crate::acl::strerror(&e);
            log::warn!("CONFIG REWRITE failed: {why}");
            Reply::error_owned(format!("ERR Rewriting config file: {why}"))
        }
    }
}

fn slowlog<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    wrong_arity("slowlog")
}

fn slowlog_get<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let count =
        match args {
            [_, _] => 10,
            [_, _, count] => match super::int_arg(count) {
                Ok(-1) => usize::MAX,
                Ok(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Reply::error("ERR count should be greater than or equal to -1"),
            },
            // Redis's own wording for this one (its handler, not its arity table, refuses it).
            _ => return Reply::error(
                "ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP.",
            ),
        };
    let entries = ctx.server.slowlog.entries.iter().take(count);
    Reply::Array(
        entries
            .map(|e| {
                Reply::Array(vec![
                    Reply::Integer(e.id as i64),
                    Reply::Integer(e.unix_time as i64),
                    Reply::Integer(i64::try_from(e.micros).unwrap_or(i64::MAX)),
                    Reply::Array(e.args.iter().map(|a| Reply::bulk(a)).collect()),
                    Reply::bulk(e.peer.as_bytes()),
                    Reply::bulk(&e.name),
                ])
            })
            .collect(),
    )
}

fn slowlog_len<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(ctx.server.slowlog.entries.len() as i64)
}

fn slowlog_reset<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    ctx.server.slowlog.entries.clear();
    Reply::OK
}
