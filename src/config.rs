//! Settings: defaults, environment variables (`POCKETKV_PORT`, ...), a config file in redis.conf
//! syntax (`pocketkv /etc/pocketkv.conf`) and flags (`--port`), in that order of strength. One
//! table drives parsing, the file's directives, `--help`, `CONFIG GET` and `CONFIG SET`.

use std::fmt;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::persist::{Compression, FsyncPolicy};
use crate::protocol::Limits;
use crate::store::EvictionPolicy;

mod rewrite;
pub use rewrite::{rewrite, Directive, SIGNATURE};

/// Everything the server can be told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP port; 0 picks a free one (the start-up log line names it).
    pub port: u16,
    /// Address to listen on.
    pub bind: String,
    /// Directory holding the snapshot file.
    pub dir: PathBuf,
    /// Snapshot file name inside `dir`.
    pub dbfilename: String,
    /// Seconds between snapshots when data changed; 0 turns the timer off.
    pub save_interval: u64,
    /// How snapshots are written (any kind is read).
    pub snapshot_compression: Compression,
    /// Which log lines are written (Redis's `loglevel`, by its names); `RUST_LOG` wins at start.
    pub loglevel: log::LevelFilter,
    /// Keep an append-only log of every write.
    pub appendonly: bool,
    /// When the log is fsynced.
    pub appendfsync: FsyncPolicy,
    /// Base name of the log segments in `dir` (`appendonly` → `appendonly.1.aof`, ...).
    pub appendfilename: String,
    /// Cut a damaged log at the damage instead of refusing to start.
    pub aof_repair: bool,
    /// Most clients connected at once.
    pub maxclients: usize,
    /// Bytes of unparsed input one client may hold (Redis's `client-query-buffer-limit`).
    pub query_buffer_limit: usize,
    /// Pending output above which the server stops reading a client's requests until it reads.
    pub output_buffer_high_water: usize,
    /// Password clients must give (AUTH, HELLO AUTH) before anything else; empty for none.
    pub requirepass: String,
    /// Without a password, refuse clients that do not connect from a loopback address.
    pub protected_mode: bool,
    /// Seconds a client may stay idle before it is closed; 0 for never.
    pub timeout: u64,
    /// `inline-reply-format resp`: text lines are answered in RESP, as Redis answers inline
    /// commands, instead of the human text dialect.
    pub inline_replies_resp: bool,
    /// A file that gets the log lines too; empty for stderr only.
    pub logfile: String,
    /// A file that gets one line per write command; empty for none.
    pub audit_log: String,
    /// The aclfile users are loaded from at start and by ACL LOAD, saved to by ACL SAVE.
    pub aclfile: String,
    /// Most entries ACL LOG keeps.
    pub acllog_max_len: usize,
    /// `acl-pubsub-default allchannels`: new users (and selectors, and `reset`) may use every
    /// channel; `resetchannels` (Redis 7's default): none until `&pattern` rules allow some.
    pub acl_pubsub_default_all: bool,
    /// Users from `user` directives: each a name and its rules, checked when read.
    pub users: Vec<Vec<String>>,
    /// When a client that does not read its replies is disconnected.
    pub output_limit: OutputLimit,
    /// The same for a client subscribed to a channel or pattern (Redis's `pubsub` class).
    pub pubsub_output_limit: OutputLimit,
    /// Which keyspace events are published (`notify-keyspace-events`); none by default.
    pub notify_keyspace_events: crate::pubsub::Events,
    /// Most channels, patterns and shard channels one client may be subscribed to.
    pub max_subscriptions: usize,
    /// Commands renamed by `rename-command`: (name, new name), lower case; an empty new name
    /// disables the command.
    pub renames: Vec<(String, String)>,
    /// Protocol bounds.
    pub limits: Limits,
    /// Commands running at least this many microseconds go to the slow log (-1: none, 0: all).
    pub slowlog_log_slower_than: i64,
    /// Most entries the slow log keeps.
    pub slowlog_max_len: usize,
    /// Bytes of data (the store's estimate, INFO's `used_memory`) above which keys are evicted or
    /// commands that add data refused; 0: no limit.
    pub maxmemory: usize,
    /// What goes when the data is over `maxmemory`.
    pub maxmemory_policy: EvictionPolicy,
    /// Keys sampled to choose each one to evict.
    pub maxmemory_samples: usize,
    /// Port of the HTTP listener (REST, /metrics, /healthz); None: off, 0: pick a free one.
    pub http_port: Option<u16>,
    /// Largest HTTP request head (request line and headers) in bytes.
    pub http_max_header_bytes: usize,
    /// Whether the HTTP port serves the web console's page at `/`.
    pub http_console: bool,
    /// Replication: the primary to follow, links, backlog, replica limits.
    pub repl: crate::replication::Settings,
    /// The config file the server was started with, made absolute: CONFIG REWRITE writes it.
    pub config_file: Option<PathBuf>,
}

/// Redis's `client-output-buffer-limit` for normal clients: a client whose unsent replies pass
/// `hard` bytes, or stay above `soft` bytes for `soft_seconds`, is disconnected. 0 turns a limit
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// Bytes of unsent replies that close the connection at once.
    pub hard: usize,
    /// Bytes of unsent replies a client may hold only for `soft_seconds`.
    pub soft: usize,
    /// How long the soft limit may be exceeded.
    pub soft_seconds: u64,
}

/// A bad command line or environment; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `--help` was asked for.
    Help,
    /// `--version` was asked for.
    Version,
    /// A flag that does not exist.
    UnknownFlag(String),
    /// A flag given without its value.
    MissingValue(String),
    /// A value that does not parse; (flag or variable, value, what was expected).
    BadValue(String, String, String),
    /// The config file cannot be read; (path, why).
    FileUnreadable(String, String),
    /// A bad line in the config file; (path, line number, what is wrong).
    File(String, usize, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Help => f.write_str(&help()),
            ConfigError::Version => write!(f, "pocketkv {}", env!("CARGO_PKG_VERSION")),
            ConfigError::UnknownFlag(flag) => {
                write!(f, "unknown flag '{flag}' (pocketkv --help lists them)")
            }
            ConfigError::MissingValue(flag) => write!(f, "flag '{flag}' needs a value"),
            ConfigError::BadValue(name, value, expected) => {
                write!(f, "invalid value '{value}' for {name}: expected {expected}")
            }
            ConfigError::FileUnreadable(path, why) => {
                write!(f, "cannot read config file {path}: {why}")
            }
            ConfigError::File(path, line, what) => write!(f, "{path}:{line}: {what}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why CONFIG SET refused a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// No setting has that name.
    Unknown,
    /// The setting is only read at start.
    Immutable,
    /// The value does not parse; what was expected.
    Bad(String),
}

/// One setting: its flag name, default, help, and how to read and show it.
struct Setting {
    name: &'static str,
    default: &'static str,
    help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
    show: fn(&Config) -> String,
    /// CONFIG SET may change it while the server runs: the loop and the commands read it from
    /// the live config each time rather than copying it at start.
    settable: bool,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "port",
        default: "12345",
        help: "TCP port to listen on (0 picks a free one)",
        apply: |c, v| number(v, "a port 0-65535").map(|n| c.port = n),
        show: |c| c.port.to_string(),
        settable: false,
    },
    Setting {
        name: "bind",
        default: "127.0.0.1",
        help: "address to listen on (0.0.0.0 for every interface)",
        apply: |c, v| {
            v.parse::<std::net::IpAddr>()
                .map(|_| c.bind = v.to_string())
                .map_err(|_| "an IP address".to_string())
        },
        show: |c| c.bind.clone(),
        settable: false,
    },
    Setting {
        name: "requirepass",
        default: "",
        help: "password clients must give with AUTH before other commands (empty: none)",
        apply: |c, v| {
            c.requirepass = v.to_string();
            Ok(())
        },
        show: |c| c.requirepass.clone(),
        settable: true,
    },
    Setting {
        name: "protected-mode",
        default: "yes",
        help: "with no password set, refuse clients that are not on a loopback address",
        apply: |c, v| yes_no(v).map(|b| c.protected_mode = b),
        show: |c| yes_no_name(c.protected_mode),
        settable: true,
    },
    Setting {
        name: "timeout",
        default: "0",
        help: "close a client after this many idle seconds (0: never)",
        apply: |c, v| number(v, "a number of seconds").map(|n| c.timeout = n),
        show: |c| c.timeout.to_string(),
        settable: true,
    },
    Setting {
        name: "inline-reply-format",
        default: "human",
        help: "how text lines are answered: human (redis-cli style text) or resp (as Redis answers inline commands)",
        apply: |c, v| {
            c.inline_replies_resp = match v.to_ascii_lowercase().as_str() {
                "human" => false,
                "resp" => true,
                _ => return Err("human or resp".to_string()),
            };
            Ok(())
        },
        show: |c| if c.inline_replies_resp { "resp" } else { "human" }.to_string(),
        settable: true,
    },
    Setting {
        name: "logfile",
        default: "",
        help: "also write log lines to this file (reopened on SIGHUP)",
        apply: |c, v| {
            c.logfile = v.to_string();
            Ok(())
        },
        show: |c| c.logfile.clone(),
        settable: false,
    },
    Setting {
        name: "audit-log",
        default: "",
        help: "write one line per write command to this file: time, client, command, key \
               (reopened on SIGHUP)",
        apply: |c, v| {
            c.audit_log = v.to_string();
            Ok(())
        },
        show: |c| c.audit_log.clone(),
        settable: false,
    },
    Setting {
        name: "aclfile",
        default: "",
        help: "users file (Redis's users.acl format) read at start and by ACL LOAD, written by \
               ACL SAVE; not together with user directives",
        apply: |c, v| {
            c.aclfile = v.to_string();
            Ok(())
        },
        show: |c| c.aclfile.clone(),
        settable: false,
    },
    Setting {
        name: "acllog-max-len",
        default: "128",
        help: "most entries ACL LOG keeps (refused commands and logins)",
        apply: |c, v| number(v, "a number of entries").map(|n| c.acllog_max_len = n),
        show: |c| c.acllog_max_len.to_string(),
        settable: true,
    },
    Setting {
        name: "acl-pubsub-default",
        default: "resetchannels",
        help: "channels a new user may use: resetchannels (none until &pattern rules allow \
               some) or allchannels",
        apply: |c, v| {
            c.acl_pubsub_default_all = match v.to_ascii_lowercase().as_str() {
                "allchannels" => true,
                "resetchannels" => false,
                _ => return Err("one of: allchannels, resetchannels".to_string()),
            };
            Ok(())
        },
        show: |c| {
            let value = if c.acl_pubsub_default_all {
                "allchannels"
            } else {
                "resetchannels"
            };
            value.to_string()
        },
        settable: true,
    },
    Setting {
        name: "user",
        default: "",
        help: "a user and its ACL rules, as redis.conf's user directive (\"alice on >pw ~app:* \
               +@read\"); repeat for more users",
        apply: user,
        show: |_| String::new(),
        settable: false,
    },
    Setting {
        name: "client-output-buffer-limit",
        default: "normal 1gb 64mb 60 replica 256mb 64mb 60 pubsub 32mb 8mb 60",
        help: "CLASS HARD SOFT SECONDS ...: close a client of the class (normal, pubsub, replica) \
               whose unsent replies reach HARD bytes, or stay over SOFT for SECONDS (0: no limit)",
        apply: output_limits,
        show: |c| {
            let mut text = String::new();
            for (class, l) in [
                ("normal", c.output_limit),
                ("slave", c.repl.output_limit),
                ("pubsub", c.pubsub_output_limit),
            ] {
                let _ = write!(
                    text,
                    "{}{class} {} {} {}",
                    if text.is_empty() { "" } else { " " },
                    l.hard,
                    l.soft,
                    l.soft_seconds
                );
            }
            text
        },
        settable: true,
    },
    Setting {
        name: "notify-keyspace-events",
        default: "",
        help: "keyspace notifications, Redis's letters: K and/or E with classes g$xenA (empty: off)",
        apply: |c, v| {
            let events = crate::pubsub::Events::parse(v)
                .ok_or_else(|| "letters from 'Ag$lshzxeKEtmdn'".to_string())?;
            c.notify_keyspace_events = events;
            Ok(())
        },
        show: |c| c.notify_keyspace_events.to_string(),
        settable: true,
    },
    Setting {
        name: "pubsub-max-subscriptions",
        default: "100000",
        help: "most channels, patterns and shard channels one client may subscribe to",
        apply: |c, v| match number(v, "a positive number")? {
            0 => Err("a positive number".to_string()),
            n => {
                c.max_subscriptions = n;
                Ok(())
            }
        },
        show: |c| c.max_subscriptions.to_string(),
        settable: true,
    },
    Setting {
        name: "dir",
        default: ".",
        help: "directory for the snapshot file",
        apply: |c, v| non_empty(v).map(|v| c.dir = PathBuf::from(v)),
        show: |c| c.dir.display().to_string(),
        settable: false,
    },
    Setting {
        name: "dbfilename",
        default: "data.json",
        help: "snapshot file name inside --dir",
        apply: |c, v| {
            if v.is_empty() || v.contains('/') {
                Err("a file name without '/'".to_string())
            } else {
                c.dbfilename = v.to_string();
                Ok(())
            }
        },
        show: |c| c.dbfilename.clone(),
        settable: false,
    },
    Setting {
        name: "save-interval",
        default: "60",
        help: "seconds between snapshots when data changed (0: only SAVE, BGSAVE and shutdown)",
        apply: |c, v| number(v, "a number of seconds").map(|n| c.save_interval = n),
        show: |c| c.save_interval.to_string(),
        settable: true,
    },
    Setting {
        name: "snapshot-compression",
        default: "no",
        help: "write snapshots compressed: no or lz4 (either kind is read whatever this says)",
        apply: |c, v| {
            c.snapshot_compression = match v.to_ascii_lowercase().as_str() {
                "no" => Compression::No,
                "lz4" => Compression::Lz4,
                _ => return Err("no or lz4".to_string()),
            };
            Ok(())
        },
        show: |c| c.snapshot_compression.name().to_string(),
        settable: true,
    },
    Setting {
        name: "loglevel",
        default: "notice",
        help: "warning, notice, verbose (each client connecting and closing) or debug; \
               RUST_LOG, if set, wins at start",
        apply: |c, v| level(v).map(|l| c.loglevel = l),
        show: |c| level_name(c.loglevel).to_string(),
        settable: true,
    },
    Setting {
        name: "appendonly",
        default: "no",
        help: "keep an append-only log of every write (yes or no)",
        apply: |c, v| yes_no(v).map(|b| c.appendonly = b),
        show: |c| yes_no_name(c.appendonly),
        settable: false,
    },
    Setting {
        name: "appendfsync",
        default: "everysec",
        help: "fsync the log: always (before replying), everysec, or no (the OS decides)",
        apply: |c, v| {
            c.appendfsync = match v.to_ascii_lowercase().as_str() {
                "always" => FsyncPolicy::Always,
                "everysec" => FsyncPolicy::EverySec,
                "no" => FsyncPolicy::No,
                _ => return Err("always, everysec or no".to_string()),
            };
            Ok(())
        },
        show: |c| c.appendfsync.name().to_string(),
        settable: true,
    },
    Setting {
        name: "appendfilename",
        default: "appendonly",
        help: "base name of the log files in --dir (appendonly.1.aof, appendonly.2.aof, ...)",
        apply: |c, v| {
            if v.is_empty() || v.contains('/') {
                Err("a file name without '/'".to_string())
            } else {
                c.appendfilename = v.to_string();
                Ok(())
            }
        },
        show: |c| c.appendfilename.clone(),
        settable: false,
    },
    Setting {
        name: "aof-repair",
        default: "no",
        help: "at start, cut a damaged log at the damage (what follows is dropped and logged)",
        apply: |c, v| yes_no(v).map(|b| c.aof_repair = b),
        show: |c| yes_no_name(c.aof_repair),
        settable: false,
    },
    Setting {
        name: "maxclients",
        default: "10000",
        help: "most clients connected at once; more are refused with an error",
        apply: |c, v| match number(v, "a positive number")? {
            0 => Err("a positive number".to_string()),
            n => {
                c.maxclients = n;
                Ok(())
            }
        },
        show: |c| c.maxclients.to_string(),
        settable: true,
    },
    Setting {
        name: "rename-command",
        default: "",
        help: "NAME NEWNAME: give a command another name, or none with \"\" (repeatable)",
        apply: renames,
        // Hidden from CONFIG GET (see `matching`): it would give the secret names away.
        show: |c| {
            let words: Vec<&str> = c
                .renames
                .iter()
                .flat_map(|(a, b)| [a.as_str(), b.as_str()])
                .collect();
            quoted_words(&words)
        },
        settable: false,
    },
    Setting {
        name: "proto-max-bulk-len",
        default: "536870912",
        help: "largest single argument or value, in bytes",
        apply: |c, v| number(v, "a number of bytes").map(|n| c.limits.max_bulk_len = n),
        show: |c| c.limits.max_bulk_len.to_string(),
        settable: false,
    },
    Setting {
        name: "client-query-buffer-limit",
        default: "1073741824",
        help: "bytes of unanswered input one client may send ahead before it is disconnected",
        apply: |c, v| number(v, "a number of bytes").map(|n| c.query_buffer_limit = n),
        show: |c| c.query_buffer_limit.to_string(),
        settable: false,
    },
    Setting {
        name: "maxmemory",
        default: "0",
        help: "data bytes (INFO used_memory) past which keys are evicted or writes refused; \
               0: no limit; units k, kb, m, mb, g, gb",
        apply: |c, v| {
            memory(v)
                .map(|n| c.maxmemory = n)
                .ok_or_else(|| "a number of bytes, with k, kb, m, mb, g or gb if wanted".into())
        },
        show: |c| c.maxmemory.to_string(),
        settable: true,
    },
    Setting {
        name: "maxmemory-policy",
        default: "noeviction",
        help: "at maxmemory: noeviction (refuse writes that add data), allkeys-lru, \
               allkeys-random, volatile-lru, volatile-random or volatile-ttl",
        apply: |c, v| v.parse().map(|p| c.maxmemory_policy = p),
        show: |c| c.maxmemory_policy.to_string(),
        settable: true,
    },
    Setting {
        name: "maxmemory-samples",
        default: "5",
        help: "keys sampled to choose each eviction (more: closer to true LRU, slower)",
        apply: |c, v| match number(v, "a number from 1 to 64")? {
            n @ 1..=64 => {
                c.maxmemory_samples = n;
                Ok(())
            }
            _ => Err("a number from 1 to 64".to_string()),
        },
        show: |c| c.maxmemory_samples.to_string(),
        settable: true,
    },
    Setting {
        name: "slowlog-log-slower-than",
        default: "10000",
        help: "log commands that run at least this many microseconds (-1: none, 0: every one)",
        apply: |c, v| match number::<i64>(v, "a number of microseconds, -1 or more")? {
            n if n >= -1 => {
                c.slowlog_log_slower_than = n;
                Ok(())
            }
            _ => Err("a number of microseconds, -1 or more".to_string()),
        },
        show: |c| c.slowlog_log_slower_than.to_string(),
        settable: true,
    },
    Setting {
        name: "slowlog-max-len",
        default: "128",
        help: "most entries the slow log keeps (the oldest go first)",
        apply: |c, v| number(v, "a number of entries").map(|n| c.slowlog_max_len = n),
        show: |c| c.slowlog_max_len.to_string(),
        settable: true,
    },
    Setting {
        name: "http-port",
        default: "off",
        help: "HTTP port for the REST API, /metrics and /healthz (off; 0 picks a free one)",
        apply: |c, v| {
            c.http_port = match v {
                "off" | "no" => None,
                _ => Some(number(v, "off or a port 0-65535")?),
            };
            Ok(())
        },
        show: |c| c.http_port.map_or("off".to_string(), |p| p.to_string()),
        settable: false,
    },
    Setting {
        name: "http-max-header-bytes",
        default: "8192",
        help: "largest HTTP request line plus headers; more gets 431 and the connection closed",
        apply: |c, v| match number(v, "a positive number of bytes")? {
            0 => Err("a positive number of bytes".to_string()),
            n => {
                c.http_max_header_bytes = n;
                Ok(())
            }
        },
        show: |c| c.http_max_header_bytes.to_string(),
        settable: false,
    },
    Setting {
        name: "http-console",
        default: "yes",
        help: "serve the web console at / on the HTTP port (its API calls need the password)",
        apply: |c, v| yes_no(v).map(|b| c.http_console = b),
        show: |c| yes_no_name(c.http_console),
        settable: true,
    },
    Setting {
        name: "replicaof",
        default: "",
        help: "HOST PORT: follow this primary as a read-only replica (REPLICAOF changes it)",
        apply: |c, v| crate::replication::parse_replicaof(v).map(|r| c.repl.replicaof = r),
        show: |c| {
            c.repl
                .replicaof
                .as_ref()
                .map_or(String::new(), |(h, p)| format!("{h} {p}"))
        },
        settable: false,
    },
    Setting {
        name: "masterauth",
        default: "",
        help: "password this replica gives its primary (AUTH)",
        apply: |c, v| {
            c.repl.masterauth = v.to_string();
            Ok(())
        },
        show: |c| c.repl.masterauth.clone(),
        settable: true,
    },
    Setting {
        name: "masteruser",
        default: "",
        help: "user name this replica gives its primary with masterauth",
        apply: |c, v| {
            c.repl.masteruser = v.to_string();
            Ok(())
        },
        show: |c| c.repl.masteruser.clone(),
        settable: true,
    },
    Setting {
        name: "replica-read-only",
        default: "yes",
        help: "a replica refuses writes from its clients (-READONLY)",
        apply: |c, v| yes_no(v).map(|b| c.repl.read_only = b),
        show: |c| yes_no_name(c.repl.read_only),
        settable: true,
    },
    Setting {
        name: "replica-ignore-maxmemory",
        default: "yes",
        help: "a replica does not evict at maxmemory: its primary's DELs keep it in step",
        apply: |c, v| yes_no(v).map(|b| c.repl.ignore_maxmemory = b),
        show: |c| yes_no_name(c.repl.ignore_maxmemory),
        settable: true,
    },
    Setting {
        name: "replica-serve-stale-data",
        default: "yes",
        help: "a replica whose link is down serves the data it has (no: -MASTERDOWN)",
        apply: |c, v| yes_no(v).map(|b| c.repl.serve_stale_data = b),
        show: |c| yes_no_name(c.repl.serve_stale_data),
        settable: true,
    },
    Setting {
        name: "repl-backlog-size",
        default: "1mb",
        help: "bytes of recent changes kept so a replica that reconnects gets only what it missed",
        apply: |c, v| match memory(v) {
            Some(n) if n >= 16 * 1024 => {
                c.repl.backlog_size = n;
                Ok(())
            }
            _ => Err("a size of at least 16kb (k, kb, m, mb, g, gb accepted)".into()),
        },
        show: |c| c.repl.backlog_size.to_string(),
        settable: true,
    },
    Setting {
        name: "repl-backlog-ttl",
        default: "3600",
        help: "seconds a primary without replicas keeps its backlog (0: for ever)",
        apply: |c, v| number(v, "a number of seconds").map(|n| c.repl.backlog_ttl = n),
        show: |c| c.repl.backlog_ttl.to_string(),
        settable: true,
    },
    Setting {
        name: "shutdown-timeout",
        default: "10",
        help: "seconds a primary's shutdown waits for its replicas to catch up (0: no wait)",
        apply: |c, v| number(v, "a number of seconds").map(|n| c.repl.shutdown_timeout = n),
        show: |c| c.repl.shutdown_timeout.to_string(),
        settable: true,
    },
    Setting {
        name: "repl-timeout",
        default: "60",
        help: "seconds of silence after which a primary or a replica gives its link up",
        apply: |c, v| match number(v, "a positive number of seconds")? {
            0 => Err("a positive number of seconds".into()),
            n => {
                c.repl.timeout = n;
                Ok(())
            }
        },
        show: |c| c.repl.timeout.to_string(),
        settable: true,
    },
    Setting {
        name: "repl-ping-replica-period",
        default: "10",
        help: "seconds between a primary's PINGs to its replicas",
        apply: |c, v| match number(v, "a positive number of seconds")? {
            0 => Err("a positive number of seconds".into()),
            n => {
                c.repl.ping_period = n;
                Ok(())
            }
        },
        show: |c| c.repl.ping_period.to_string(),
        settable: true,
    },
    Setting {
        name: "replica-priority",
        default: "100",
        help: "Sentinel promotes replicas with a lower number first; 0: never this one",
        apply: |c, v| number(v, "a number").map(|n| c.repl.priority = n),
        show: |c| c.repl.priority.to_string(),
        settable: true,
    },
    Setting {
        name: "replica-announce-ip",
        default: "",
        help: "address this replica asks its primary to list it at (empty: the one it sees)",
        apply: |c, v| {
            c.repl.announce_ip = v.to_string();
            Ok(())
        },
        show: |c| c.repl.announce_ip.clone(),
        settable: true,
    },
    Setting {
        name: "replica-announce-port",
        default: "0",
        help: "port the primary reports for this replica (0: the one it listens on)",
        apply: |c, v| number(v, "a port 0-65535").map(|n| c.repl.announce_port = n),
        show: |c| c.repl.announce_port.to_string(),
        settable: true,
    },
    Setting {
        name: "replica-announced",
        default: "yes",
        help: "whether Sentinel lists this replica",
        apply: |c, v| yes_no(v).map(|b| c.repl.announced = b),
        show: |c| yes_no_name(c.repl.announced),
        settable: true,
    },
    Setting {
        name: "min-replicas-to-write",
        default: "0",
        help: "refuse writes (-NOREPLICAS) unless this many replicas are within \
               min-replicas-max-lag (0: off)",
        apply: |c, v| number(v, "a number").map(|n| c.repl.min_replicas_to_write = n),
        show: |c| c.repl.min_replicas_to_write.to_string(),
        settable: true,
    },
    Setting {
        name: "min-replicas-max-lag",
        default: "10",
        help: "seconds since its last acknowledgement under which a replica counts for \
               min-replicas-to-write",
        apply: |c, v| number(v, "a number of seconds").map(|n| c.repl.min_replicas_max_lag = n),
        show: |c| c.repl.min_replicas_max_lag.to_string(),
        settable: true,
    },
];

/// One row of the settings table, as `docs/configuration.md` must list it (`tests/docs.rs`
/// checks the page against [`settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingInfo {
    /// The flag without its `--`, the config-file directive and the CONFIG GET/SET name.
    pub name: &'static str,
    /// The default, as `--help` prints it (empty: none).
    pub default: &'static str,
    /// The `--help` line.
    pub help: &'static str,
    /// CONFIG SET may change it while the server runs.
    pub settable: bool,
}

/// Every setting, in `--help` order.
pub fn settings() -> impl Iterator<Item = SettingInfo> {
    SETTINGS.iter().map(|s| SettingInfo {
        name: s.name,
        default: s.default,
        help: s.help,
        settable: s.settable,
    })
}

/// Settings Redis tools ask for that pocketkv answers with fixed values.
const FIXED: &[(&str, &str)] = &[("databases", "1")];

impl Default for Config {
    fn default() -> Self {
        let mut config = Config {
            port: 0,
            bind: String::new(),
            dir: PathBuf::new(),
            dbfilename: String::new(),
            save_interval: 0,
            snapshot_compression: Compression::No,
            loglevel: log::LevelFilter::Info,
            appendonly: false,
            appendfsync: FsyncPolicy::EverySec,
            appendfilename: String::new(),
            aof_repair: false,
            maxclients: 0,
            query_buffer_limit: 0,
            output_buffer_high_water: 64 * 1024,
            requirepass: String::new(),
            protected_mode: true,
            timeout: 0,
            inline_replies_resp: false,
            logfile: String::new(),
            audit_log: String::new(),
            aclfile: String::new(),
            acllog_max_len: 0,
            acl_pubsub_default_all: false,
            users: Vec::new(),
            renames: Vec::new(),
            output_limit: OutputLimit::default(),
            pubsub_output_limit: OutputLimit::default(),
            notify_keyspace_events: crate::pubsub::Events::default(),
            max_subscriptions: 0,
            limits: Limits::default(),
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            maxmemory: 0,
            maxmemory_policy: EvictionPolicy::NoEviction,
            maxmemory_samples: 0,
            http_port: None,
            http_max_header_bytes: 0,
            http_console: false,
            repl: crate::replication::Settings::default(),
            config_file: None,
        };
        for setting in SETTINGS {
            // Defaults are written as strings so they read exactly as `--help` prints them.
            if let Err(expected) = (setting.apply)(&mut config, setting.default) {
                unreachable!("default of {} is not {expected}", setting.name);
            }
        }
        config
    }
}

impl Config {
    /// Reads the environment (`POCKETKV_*`), then the config file if the first argument names
    /// one, then the flags (arguments without the program name).
    pub fn from_sources(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for setting in SETTINGS {
            let var = env_name(setting.name);
            if let Some(value) = env(&var) {
                (setting.apply)(&mut config, &value)
                    .map_err(|expected| ConfigError::BadValue(var, value, expected))?;
            }
        }
        let mut args = args.into_iter().peekable();
        if let Some(path) = args.next_if(|arg| !arg.starts_with('-')) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::FileUnreadable(path.clone(), e.to_string()))?;
            config.apply_file(&path, &text)?;
            // Absolute, as Redis keeps it: the rewrite must find the same file whatever the
            // working directory is by then.
            let path = PathBuf::from(path);
            config.config_file = Some(match std::env::current_dir() {
                Ok(cwd) if path.is_relative() => cwd.join(path),
                _ => path,
            });
        }
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(ConfigError::Help);
            }
            if arg == "--version" || arg == "-v" {
                return Err(ConfigError::Version);
            }
            let (flag, inline_value) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
                None => (arg, None),
            };
            let setting = flag
                .strip_prefix("--")
                .and_then(|name| SETTINGS.iter().find(|s| s.name == name))
                .ok_or_else(|| ConfigError::UnknownFlag(flag.clone()))?;
            let value = match inline_value {
                Some(value) => value,
                // Redis's form: `--rename-command NAME NEWNAME`, two arguments.
                None if setting.name == "rename-command" => match (args.next(), args.next()) {
                    (Some(name), Some(new_name)) => quoted_words(&[&name, &new_name]),
                    _ => return Err(ConfigError::MissingValue(flag)),
                },
                // Redis's form: `--replicaof HOST PORT`, two arguments (or one, quoted).
                None if setting.name == "replicaof" => match args.next() {
                    Some(host) if host.contains(' ') || host.is_empty() => host,
                    Some(host) => match args.next() {
                        Some(port) => format!("{host} {port}"),
                        None => return Err(ConfigError::MissingValue(flag)),
                    },
                    None => return Err(ConfigError::MissingValue(flag)),
                },
                None => match args.next() {
                    Some(value) => value,
                    None => return Err(ConfigError::MissingValue(flag)),
                },
            };
            (setting.apply)(&mut config, &value)
                .map_err(|expected| ConfigError::BadValue(flag, value, expected))?;
        }
        Ok(config)
    }

    /// Applies a config file's text in redis.conf syntax: one `directive value...` per line,
    /// `#` comments, values split and unquoted as Redis's `sdssplitargs` does. Several values
    /// are joined with spaces (`client-output-buffer-limit normal 0 0 0`).
    pub fn apply_file(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        let mut save_seen = false;
        for (index, line) in text.lines().enumerate() {
            let fail = |what: String| ConfigError::File(path.to_string(), index + 1, what);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let args = crate::protocol::split_args(line.as_bytes())
                .ok_or_else(|| fail("unbalanced quotes".to_string()))?;
            let mut words = Vec::with_capacity(args.len());
            for arg in &args {
                let word = std::str::from_utf8(arg)
                    .map_err(|_| fail("a value that is not UTF-8".to_string()))?;
                words.push(word);
            }
            let Some((name, values)) = words.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if values.is_empty() {
                return Err(fail(format!("'{name}' needs a value")));
            }
            if name == "save" {
                // pocketkv saves after any change: Redis's `save <seconds> <changes>` rules give
                // their shortest interval; `save ""` turns the timer off.
                let interval = save_rule(values).ok_or_else(|| {
                    fail("expected save \"\" or save <seconds> <changes> ...".to_string())
                })?;
                self.save_interval = if save_seen {
                    self.save_interval.min(interval)
                } else {
                    interval
                };
                save_seen = interval != 0;
                continue;
            }
            let setting = SETTINGS
                .iter()
                .find(|s| s.name == name || name == "slaveof" && s.name == "replicaof")
                .ok_or_else(|| fail(format!("unknown directive '{name}'")))?;
            // Only this directive takes several words in redis.conf; anything else with more is
            // a mistake (an unquoted space, a trailing comment) better refused than guessed at.
            if name == "user" {
                user(self, &quoted_words(values)).map_err(fail)?;
                continue;
            }
            if name == "rename-command" {
                let value = quoted_words(values);
                if let Err(expected) = renames(self, &value) {
                    return Err(fail(format!("invalid rename-command: expected {expected}")));
                }
                continue;
            }
            let name = if name == "slaveof" {
                "replicaof".to_string()
            } else {
                name
            };
            if values.len() > 1 && name != "client-output-buffer-limit" && name != "replicaof" {
                return Err(fail(format!(
                    "'{name}' takes one value (quote it if it holds spaces)"
                )));
            }
            let value = values.join(" ");
            (setting.apply)(self, &value).map_err(|expected| {
                fail(format!(
                    "invalid value '{value}' for {name}: expected {expected}"
                ))
            })?;
        }
        Ok(())
    }

    /// Changes one setting at run time (CONFIG SET); only settings marked `settable` may change.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SetError> {
        let setting = SETTINGS
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or(SetError::Unknown)?;
        if !setting.settable {
            return Err(SetError::Immutable);
        }
        (setting.apply)(self, value).map_err(SetError::Bad)
    }

    /// Every directive as CONFIG REWRITE writes it, in `--help` order (`save` last): each
    /// setting's line, marked to be written where the file lacks it when its value is not the
    /// default. `users` are the ACL's users as `user` lines; as in Redis they are all written,
    /// unless an aclfile holds them, and then the file's `user` lines go.
    pub fn directives(&self, users: Vec<String>) -> Vec<Directive> {
        let default = Config::default();
        // Where each value is tried as the next start would read it.
        let mut scratch = Config::default();
        let mut out = Vec::with_capacity(SETTINGS.len() + 1);
        for s in SETTINGS {
            let lines = match s.name {
                // Redis never rewrites renames.
                "rename-command" => None,
                "user" if !self.aclfile.is_empty() => Some(Vec::new()),
                "user" => Some(users.iter().map(|line| (line.clone(), true)).collect()),
                "client-output-buffer-limit" => Some(self.output_limit_lines(&default)),
                "replicaof" => match &self.repl.replicaof {
                    None => Some(Vec::new()),
                    Some((host, port)) => {
                        let port = port.to_string();
                        let value = [host.as_str(), " ", &port].concat();
                        // A host the next start could not take back (REPLICAOF takes any) is
                        // not written.
                        crate::replication::parse_replicaof(&value).ok().map(|_| {
                            let mut line = directive_line(s.name, host);
                            line.push(' ');
                            line.push_str(&port);
                            vec![(line, true)]
                        })
                    }
                },
                // Redis holds these as "no value" when empty, and drops their lines.
                "requirepass" | "masterauth" | "masteruser" | "replica-announce-ip"
                    if (s.show)(self).is_empty() =>
                {
                    Some(Vec::new())
                }
                _ => {
                    let value = (s.show)(self);
                    // A value the file could not take back (a level only RUST_LOG can set)
                    // would stop the next start: the file's line stays as it is.
                    if (s.apply)(&mut scratch, &value).is_err() {
                        None
                    } else {
                        let force = value != (s.show)(&default);
                        let line = match (s.name, value.parse()) {
                            ("maxmemory" | "repl-backlog-size", Ok(bytes)) => {
                                [s.name, " ", &memory_text(bytes)].concat()
                            }
                            _ => directive_line(s.name, &value),
                        };
                        Some(vec![(line, force)])
                    }
                }
            };
            out.push(Directive {
                name: s.name,
                lines,
            });
        }
        // `save` lines the file has say what save-interval says; none is added.
        let save = match self.save_interval {
            0 => "save \"\"".to_string(),
            n => ["save ", &n.to_string(), " 1"].concat(),
        };
        out.push(Directive {
            name: "save",
            lines: Some(vec![(save, false)]),
        });
        out
    }

    /// One `client-output-buffer-limit` line per class, as Redis writes them.
    fn output_limit_lines(&self, default: &Config) -> Vec<(String, bool)> {
        [
            ("normal", self.output_limit, default.output_limit),
            ("replica", self.repl.output_limit, default.repl.output_limit),
            (
                "pubsub",
                self.pubsub_output_limit,
                default.pubsub_output_limit,
            ),
        ]
        .into_iter()
        .map(|(class, now, default)| {
            let line = [
                "client-output-buffer-limit ",
                class,
                " ",
                &memory_text(now.hard),
                " ",
                &memory_text(now.soft),
                " ",
                &now.soft_seconds.to_string(),
            ]
            .concat();
            (line, now != default)
        })
        .collect()
    }

    /// Path of the snapshot file.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }

    /// `(name, value)` pairs whose name matches the glob, for CONFIG GET.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        let save = if self.save_interval == 0 {
            String::new()
        } else {
            format!("{} 1", self.save_interval)
        };
        let computed = [("save", save)];
        SETTINGS
            .iter()
            .filter(|s| s.name != "rename-command" && s.name != "user")
            .map(|s| (s.name, (s.show)(self)))
            .chain(computed)
            .chain(FIXED.iter().map(|(name, value)| (*name, value.to_string())))
            .filter(|(name, _)| {
                crate::store::glob_match(&pattern.to_ascii_lowercase(), name.as_bytes())
            })
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }
}

/// The `--help` text: every flag with its default and environment variable.
pub fn help() -> String {
    let mut text = format!(
        "pocketkv {} - a small key-value server speaking RESP2 and text lines on one port\n\n\
         Usage: pocketkv [/path/to/pocketkv.conf] [--flag value]...\n\n\
         The config file takes the flags' names as redis.conf directives (`port 12345`);\n\
         flags override the file, which overrides the environment.\n\n\
         Flags (each also read from its environment variable):\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in SETTINGS {
        text.push_str(&format!(
            "  --{:<27} {}\n  {:<29} default {}, env {}\n",
            s.name,
            s.help,
            "",
            s.default,
            env_name(s.name)
        ));
    }
    text.push_str(&format!("  {:<29} print this and exit\n", "--help"));
    text.push_str(&format!(
        "  {:<29} print the version and exit\n",
        "--version"
    ));
    text
}

/// The environment variable of a setting: `POCKETKV_` and the name in upper case, `-` as `_`.
pub fn env_name(flag: &str) -> String {
    format!("POCKETKV_{}", flag.to_uppercase().replace('-', "_"))
}

/// Writes `directives` into the config file at `path` (CONFIG REWRITE): the new text goes to a
/// temporary file beside it with the old file's permissions, is fsynced, renamed over the old
/// file, and the directory fsynced, so a crash or a failure leaves the old file or the new one,
/// never a mix. A missing file is created, as Redis does.
pub fn rewrite_file(path: &std::path::Path, directives: &[Directive]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let (old, mode) = match std::fs::read(path) {
        Ok(old) => (old, std::fs::metadata(path)?.permissions().mode() & 0o7777),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0o644),
        Err(e) => return Err(e),
    };
    let text = rewrite(&String::from_utf8_lossy(&old), directives);
    // As long as Redis's `<file>.XXXXXX`, so a name too long for one fails for both alike.
    let mut temp = path.as_os_str().to_os_string();
    temp.push(".rewrite-");
    temp.push(std::process::id().to_string());
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        // The mode given at creation loses what the umask masks; the old file's is kept whole.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename is durable once the directory is.
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
            _ => Ok(()),
        }
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// A size as Redis's `rewriteConfigFormatMemory` writes it: in gb, mb or kb when whole.
fn memory_text(bytes: usize) -> String {
    let (number, unit) = [(1 << 30, "gb"), (1 << 20, "mb"), (1 << 10, "kb")]
        .into_iter()
        .find(|(unit, _)| bytes != 0 && bytes % unit == 0)
        .map_or((bytes, ""), |(size, unit)| (bytes / size, unit));
    number.to_string() + unit
}

/// `name value`, the value quoted when it must be to read back as one word.
fn directive_line(name: &str, value: &str) -> String {
    let mut line = name.as_bytes().to_vec();
    line.push(b' ');
    crate::protocol::quote(value.as_bytes(), &mut line);
    // `quote` writes ASCII only.
    String::from_utf8_lossy(&line).into_owned()
}

fn number<T: std::str::FromStr>(value: &str, expected: &str) -> Result<T, String> {
    value.parse().map_err(|_| expected.to_string())
}

/// `class hard soft seconds ...`, as redis.conf and CONFIG SET take it (one or more classes:
/// normal, replica or slave, pubsub), or pocketkv's older `hard soft seconds` for normal. Nothing
/// changes unless every group is valid.
fn output_limits(config: &mut Config, value: &str) -> Result<(), String> {
    let mut words: Vec<&str> = value.split_whitespace().collect();
    if words.len() == 3 {
        words.insert(0, "normal");
    }
    let mut limits = [
        config.output_limit,
        config.repl.output_limit,
        config.pubsub_output_limit,
    ];
    if words.is_empty() {
        return Err(LIMITS_EXPECTED.to_string());
    }
    for group in words.chunks(4) {
        let [class, hard, soft, seconds] = group else {
            return Err(LIMITS_EXPECTED.to_string());
        };
        let at = ["normal", "replica", "pubsub", "slave"]
            .iter()
            .position(|name| class.eq_ignore_ascii_case(name));
        let limit = (|| {
            Some(OutputLimit {
                hard: memory(hard)?,
                soft: memory(soft)?,
                soft_seconds: seconds.parse().ok()?,
            })
        })();
        let (Some(at), Some(limit)) = (at, limit) else {
            return Err(LIMITS_EXPECTED.to_string());
        };
        if let Some(slot) = limits.get_mut(at % 3) {
            *slot = limit;
        }
    }
    [
        config.output_limit,
        config.repl.output_limit,
        config.pubsub_output_limit,
    ] = limits;
    Ok(())
}

const LIMITS_EXPECTED: &str =
    "CLASS HARD SOFT SECONDS groups (normal, replica or pubsub; bytes, or kb, mb, gb)";

/// A size as Redis's `memtoull` reads it: `1k` is 1000, `1kb` 1024, and so on up to `gb`.
pub fn memory(value: &str) -> Option<usize> {
    let lower = value.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(digits_end);
    let unit: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// Adds the renames in `value` (`NAME NEWNAME ...`, split as a text line, `""` for none) to
/// those already set; a later rename of the same command replaces the earlier one.
fn renames(config: &mut Config, value: &str) -> Result<(), String> {
    let expected = || {
        "NAME NEWNAME pairs of an existing command and a new name (\"\" disables it)".to_string()
    };
    let words = crate::protocol::split_args(value.as_bytes()).ok_or_else(expected)?;
    if words.len() % 2 != 0 {
        return Err(expected());
    }
    for pair in words.chunks(2) {
        let [name, new_name] = pair else {
            return Err(expected());
        };
        let name = String::from_utf8_lossy(name).to_lowercase();
        let new_name = String::from_utf8_lossy(new_name).to_lowercase();
        let exists = crate::command::lookup(name.as_bytes()).is_some();
        if !exists || new_name.contains(char::is_whitespace) {
            return Err(expected());
        }
        config.renames.retain(|(old, _)| *old != name);
        config.renames.push((name, new_name));
    }
    Ok(())
}

/// Adds a `user` directive's user (`name rules...`, split as a text line) after checking its
/// rules as Redis does when it reads the config; an empty value adds nobody.
fn user(config: &mut Config, value: &str) -> Result<(), String> {
    let words = crate::protocol::split_args(value.as_bytes())
        .ok_or_else(|| "unbalanced quotes in user declaration".to_string())?;
    if words.is_empty() {
        return Ok(());
    }
    let words: Vec<String> = words
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if config.users.iter().any(|u| u.first() == words.first()) {
        return Err(format!(
            "Error in user declaration '{}': {}",
            words.first().map_or("", |w| w.as_str()),
            crate::acl::RuleError::Duplicate.message()
        ));
    }
    let bytes: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    crate::acl::parse_user(&bytes, false)
        .map_err(|(rule, e)| format!("Error in user declaration '{rule}': {}", e.message()))?;
    config.users.push(words);
    Ok(())
}

/// Words joined so that a text-line split gives them back, empty ones included.
fn quoted_words<S: AsRef<str>>(words: &[S]) -> String {
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        crate::protocol::quote(word.as_ref().as_bytes(), &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The interval a redis.conf `save` line asks for: 0 for `save ""`, else the shortest
/// `<seconds>` of its `<seconds> <changes>` pairs.
fn save_rule(values: &[&str]) -> Option<u64> {
    if values == [""] {
        return Some(0);
    }
    if values.len() % 2 != 0 {
        return None;
    }
    let mut shortest = None;
    for pair in values.chunks(2) {
        let [seconds, changes] = pair else {
            return None;
        };
        changes.parse::<u64>().ok()?;
        let seconds: u64 = seconds.parse().ok()?;
        shortest = Some(shortest.map_or(seconds, |s: u64| s.min(seconds)));
    }
    shortest
}

fn non_empty(value: &str) -> Result<&str, String> {
    if value.is_empty() {
        Err("a non-empty path".to_string())
    } else {
        Ok(value)
    }
}

fn yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("yes or no".to_string()),
    }
}

fn yes_no_name(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

/// Redis's level names as the `log` crate's filters: Redis logs at four levels where `log` has
/// five, so `warning` takes in errors and `debug` is everything. The `log` names (`error`, `warn`,
/// `info`, `trace`) are accepted too, for settings written before pocketkv used Redis's names.
fn level(value: &str) -> Result<log::LevelFilter, String> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "warning" | "warn" => log::LevelFilter::Warn,
        "notice" | "info" => log::LevelFilter::Info,
        "verbose" => log::LevelFilter::Debug,
        "debug" | "trace" => log::LevelFilter::Trace,
        "error" => log::LevelFilter::Error,
        _ => return Err("one of debug, verbose, notice, warning".to_string()),
    })
}

/// The Redis name of a level, as CONFIG GET shows it.
pub fn level_name(level: log::LevelFilter) -> &'static str {
    match level {
        log::LevelFilter::Off => "nothing",
        log::LevelFilter::Error => "error",
        log::LevelFilter::Warn => "warning",
        log::LevelFilter::Info => "notice",
        log::LevelFilter::Debug => "verbose",
        log::LevelFilter::Trace => "debug",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(args.iter().map(|s| s.to_string()), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = parse(&[], &[]).unwrap();
        assert_eq!(
            (c.port, c.bind.as_str(), c.save_interval),
            (12345, "127.0.0.1", 60)
        );
        assert_eq!(c.snapshot_path(), PathBuf::from("./data.json"));
    }

    #[test]
    fn flags_beat_environment_beats_defaults() {
        let c = parse(&["--port", "7000"], &[("POCKETKV_PORT", "6000")]).unwrap();
        assert_eq!(c.port, 7000);
        let c = parse(&["--save-interval=5"], &[("POCKETKV_PORT", "6000")]).unwrap();
        assert_eq!((c.port, c.save_interval), (6000, 5));
    }

    #[test]
    fn bad_input_names_the_flag() {
        assert_eq!(
            parse(&["--nope", "1"], &[]).unwrap_err().to_string(),
            "unknown flag '--nope' (pocketkv --help lists them)"
        );
        assert_eq!(
            parse(&["--port", "http"], &[]).unwrap_err().to_string(),
            "invalid value 'http' for --port: expected a port 0-65535"
        );
        assert_eq!(
            parse(&[], &[("POCKETKV_PORT", "70000")])
                .unwrap_err()
                .to_string(),
            "invalid value '70000' for POCKETKV_PORT: expected a port 0-65535"
        );
        assert_eq!(
            parse(&["--dir"], &[]),
            Err(ConfigError::MissingValue("--dir".into()))
        );
    }

    #[test]
    fn config_files_read_like_redis_conf() {
        let mut c = Config::default();
        let text = "# comment\n  \n\tPORT 7000\nrequirepass \"a \\\"b\\\" \\x41\"\n\
                    dir '/var/lib/it\\'s'\nsave 900 1\nsave 60 10000\n\
                    rename-command FLUSHALL \"\"\nrename-command keys k2\n";
        c.apply_file("f.conf", text).unwrap();
        assert_eq!(c.port, 7000, "directives are case-insensitive");
        assert_eq!(c.requirepass, "a \"b\" A");
        assert_eq!(c.dir, PathBuf::from("/var/lib/it's"));
        assert_eq!(c.save_interval, 60, "the shortest save rule");
        assert_eq!(
            c.renames,
            vec![
                ("flushall".to_string(), String::new()),
                ("keys".to_string(), "k2".to_string())
            ]
        );
        assert!(c.matching(b"rename*").is_empty(), "renames stay hidden");
        let mut c = Config::default();
        c.apply_file("f.conf", "save \"\"\n").unwrap();
        assert_eq!(c.save_interval, 0);
        assert_eq!(
            c.apply_file("f.conf", "timeout 1\ndir \"x\"y\n"),
            Err(ConfigError::File(
                "f.conf".into(),
                2,
                "unbalanced quotes".into()
            ))
        );
        assert_eq!(
            c.apply_file("f.conf", "rename-command nosuch x\n")
                .unwrap_err()
                .to_string(),
            "f.conf:1: invalid rename-command: expected NAME NEWNAME pairs of an existing \
             command and a new name (\"\" disables it)"
        );
    }

    #[test]
    fn output_buffer_limits_read_like_redis_conf() {
        let c = parse(&[], &[]).unwrap();
        let gb = 1024 * 1024 * 1024;
        assert_eq!(
            c.output_limit,
            OutputLimit {
                hard: gb,
                soft: 64 * 1024 * 1024,
                soft_seconds: 60
            }
        );
        let c = parse(&["--client-output-buffer-limit", "1k 2KB 3"], &[]).unwrap();
        assert_eq!((c.output_limit.hard, c.output_limit.soft), (1000, 2048));
        let c = parse(&["--client-output-buffer-limit", "pubsub 1 2 3"], &[]).unwrap();
        assert_eq!(c.output_limit.hard, gb, "another class leaves normal alone");
        assert_eq!(
            c.pubsub_output_limit,
            OutputLimit {
                hard: 1,
                soft: 2,
                soft_seconds: 3
            }
        );
        assert_eq!(
            c.matching(b"client-output-buffer-limit")[0].1,
            "normal 1073741824 67108864 60 slave 268435456 67108864 60 pubsub 1 2 3"
        );
        let c = parse(&[], &[]).unwrap();
        assert_eq!(
            c.pubsub_output_limit.hard,
            32 * 1024 * 1024,
            "Redis's default"
        );
        for bad in [
            "1 2",
            "normal 1x 2 3",
            "vip 1 2 3",
            "1 2 -3",
            "normal 1 2 3 pubsub 1 2",
            "normal 1 2 3 vip 1 2 3",
        ] {
            assert!(
                parse(&["--client-output-buffer-limit", bad], &[]).is_err(),
                "{bad}"
            );
        }
        assert_eq!(memory("99999999999999gb"), None);
    }

    #[test]
    fn a_rewritten_file_reads_back_as_the_settings_it_was_written_from() {
        let mut c = Config::default();
        for (name, value) in [
            ("timeout", "300"),
            ("requirepass", "a \"quoted\" pass word"),
            ("maxmemory", "100mb"),
            ("repl-backlog-size", "1000000"),
            ("client-output-buffer-limit", "normal 0 0 0 pubsub 1kb 1 2"),
            ("notify-keyspace-events", "KEA"),
            ("loglevel", "warning"),
            ("save-interval", "0"),
        ] {
            c.set(name, value).unwrap();
        }
        c.repl.replicaof = Some(("10.0.0.2".into(), 6380));
        let text = rewrite("", &c.directives(Vec::new()));
        assert!(text.contains("\nmaxmemory 100mb\n"), "{text}");
        assert!(text.contains("\nrequirepass \"a \\\"quoted\\\" pass word\"\n"));
        assert!(text.contains("\nclient-output-buffer-limit normal 0 0 0\n"));
        assert!(text.contains("\nclient-output-buffer-limit pubsub 1kb 1 2\n"));
        assert!(
            !text.contains("replica 256mb"),
            "a class at its default is not added"
        );
        assert!(text.contains("\nreplicaof 10.0.0.2 6380\n"));
        assert!(
            !text.contains("\nsave "),
            "save lines are only rewritten, never added"
        );
        let mut back = Config::default();
        back.apply_file("rewritten.conf", &text).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            rewrite("", &Config::default().directives(Vec::new())),
            "",
            "defaults add nothing"
        );
    }

    #[test]
    fn config_get_answers_what_redis_benchmark_asks() {
        let c = parse(&[], &[]).unwrap();
        assert_eq!(c.matching(b"save"), vec![("save".into(), "60 1".into())]);
        assert_eq!(
            c.matching(b"appendonly"),
            vec![("appendonly".into(), "no".into())]
        );
        assert_eq!(c.matching(b"PORT"), vec![("port".into(), "12345".into())]);
        assert!(c.matching(b"*").len() >= SETTINGS.len());
    }
}
