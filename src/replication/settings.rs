//! Replication settings, under Redis's names (the table that reads them is in `config.rs`).

use crate::config::OutputLimit;

/// What `replicaof`, `repl-*`, `replica-*`, `masterauth`, `masteruser` and `min-replicas-*` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The primary to follow: host as given, and port; None for a primary.
    pub replicaof: Option<(String, u16)>,
    /// Password the link gives its primary (AUTH).
    pub masterauth: String,
    /// User name given with `masterauth` (`AUTH user pass`); empty for the password alone.
    pub masteruser: String,
    /// Refuse writes from clients while following a primary.
    pub read_only: bool,
    /// Serve the data held while the link is down or a full sync loads.
    pub serve_stale_data: bool,
    /// Seconds a primary's shutdown waits for its replicas to catch up (0: not at all).
    pub shutdown_timeout: u64,
    /// A replica never evicts on its own (`maxmemory` aside): it follows its primary's DELs.
    pub ignore_maxmemory: bool,
    /// Bytes of the stream kept for replicas that reconnect (partial resync).
    pub backlog_size: usize,
    /// Seconds a primary without replicas keeps its backlog; 0: for ever.
    pub backlog_ttl: u64,
    /// Seconds without news from the other side after which a link is given up.
    pub timeout: u64,
    /// Seconds between the primary's PINGs to its replicas.
    pub ping_period: u64,
    /// Sentinel's preference for promoting this replica (0: never).
    pub priority: u64,
    /// Address the primary reports for this replica; empty: the one it sees.
    pub announce_ip: String,
    /// Port the primary reports for this replica; 0: the one it listens on.
    pub announce_port: u16,
    /// Whether Sentinel should list this replica.
    pub announced: bool,
    /// Writes are refused unless this many replicas acknowledged within `min_replicas_max_lag`.
    pub min_replicas_to_write: u64,
    /// Seconds since its last acknowledgement under which a replica counts as good.
    pub min_replicas_max_lag: u64,
    /// `client-output-buffer-limit replica ...`: what the primary holds for a slow replica.
    pub output_limit: OutputLimit,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            replicaof: None,
            masterauth: String::new(),
            masteruser: String::new(),
            read_only: true,
            serve_stale_data: true,
            ignore_maxmemory: true,
            shutdown_timeout: 10,
            backlog_size: 1024 * 1024,
            backlog_ttl: 3600,
            timeout: 60,
            ping_period: 10,
            priority: 100,
            announce_ip: String::new(),
            announce_port: 0,
            announced: true,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            output_limit: OutputLimit {
                hard: 256 * 1024 * 1024,
                soft: 64 * 1024 * 1024,
                soft_seconds: 60,
            },
        }
    }
}

/// `host port` as `replicaof` takes it: a port from 1 to 65535.
pub fn parse_replicaof(value: &str) -> Result<Option<(String, u16)>, String> {
    let expected = || "HOST PORT, or \"\" for none".to_string();
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(None),
        [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => Ok(None),
        [host, port] => match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some((host.to_string(), port))),
            _ => Err(expected()),
        },
        _ => Err(expected()),
    }
}
