//! What a command may see and change besides the keyspace.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::stats::{CommandStats, SlowLog};
use super::transaction::Watches;
use crate::config::Config;
use crate::persist::{LogStatus, SnapshotStatus};
use crate::pubsub::{Events, Registry, Subscriber, Subscriptions};
use crate::store::Store;

/// Everything a handler works on.
#[derive(Debug)]
pub struct Ctx<'s> {
    /// The keyspace.
    pub db: &'s mut Store,
    /// The calling client.
    pub client: &'s mut ClientState,
    /// Server-wide state: settings, counters, snapshot status.
    pub server: &'s mut ServerState,
    /// Set by a handler whose request must be logged in another form: relative expiry times
    /// become absolute (`EXPIRE k 10` → `PEXPIREAT k <ms>`), so a replay later means the same.
    pub log_as: Option<Vec<Vec<u8>>>,
    /// Set by a handler whose request goes to replicas though it changed no data (PUBLISH,
    /// SPUBLISH: Redis's `forceCommandPropagation(c, PROPAGATE_REPL)`): into the replication
    /// stream only, never the log.
    pub replicate: bool,
}

impl<'s> Ctx<'s> {
    /// A context for one request.
    pub fn new(
        db: &'s mut Store,
        client: &'s mut ClientState,
        server: &'s mut ServerState,
    ) -> Self {
        Ctx {
            db,
            client,
            server,
            log_as: None,
            replicate: false,
        }
    }

    /// Reports keyspace event `event` of `class` (an [`Events`] bit) on `key`. One branch and
    /// nothing else unless `notify-keyspace-events` selects the class.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        let events = self.server.config.notify_keyspace_events;
        if events.wants(class) {
            self.server.pubsub.notify(events, event, key);
        }
    }

    /// Reports a read of a missing key as `keymiss` (the `m` class), where Redis's read lookups
    /// do: the handler calls it just before it reads `key`. One comparison while `m` is off.
    #[inline]
    pub fn read_lookup(&mut self, key: &[u8]) {
        let events = self.server.config.notify_keyspace_events;
        if events.wants(Events::KEY_MISS) && !self.db.contains(key) {
            self.notify(Events::KEY_MISS, "keymiss", key);
        }
    }

    /// True when `key` does not exist and `n` (new key) events are wanted: the handler checks
    /// before it writes, and reports `new` after.
    #[inline]
    pub fn creates(&self, key: &[u8]) -> bool {
        self.server.config.notify_keyspace_events.wants(Events::NEW) && !self.db.contains(key)
    }

    /// Makes the journal record `args` instead of the request.
    pub fn log_as<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.log_as = Some(args.iter().map(|a| a.as_ref().to_vec()).collect());
    }
}

/// What the connection should do after sending this reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    /// Go on with the next request.
    #[default]
    Continue,
    /// Send the reply, then close (QUIT).
    Close,
    /// Hold the reply and this client's later requests until the snapshot asked for is durable.
    AwaitSnapshot,
    /// Send nothing and hold the client until the shutdown `ServerState::shutdown` asked for
    /// ends: the process exits, or SHUTDOWN ABORT cancels it (an error reply) (SHUTDOWN).
    Shutdown,
    /// Send nothing (REPLCONF ACK and GETACK, which Redis never answers).
    Silent,
    /// Writes are paused (a shutdown waits for replicas): leave the request unread, and run it
    /// once they resume.
    Postpone,
    /// Hold the reply until `replicas` replicas acknowledged the client's last write, or
    /// `timeout_ms` passed (0: no limit) (WAIT).
    Wait {
        /// Replicas wanted.
        replicas: u64,
        /// Longest wait in milliseconds.
        timeout_ms: u64,
    },
    /// The client becomes a replica: the reply (`+FULLRESYNC`/`+CONTINUE`) is followed by an
    /// image or the backlog (PSYNC).
    Replicate(crate::replication::Psync),
}

/// Per-client state a command can read or set.
#[derive(Debug, Default)]
pub struct ClientState {
    /// Unique, increasing id (CLIENT ID).
    pub id: u64,
    /// Name set by CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// Gave the right password (AUTH, HELLO AUTH); only matters while the default user needs a
    /// password (`requirepass`).
    pub authenticated: bool,
    /// The user it runs as: `default` until AUTH or HELLO AUTH names another.
    pub user: crate::acl::UserRef,
    /// Asked for RESP3 replies with HELLO 3.
    pub resp3: bool,
    /// Name of the last command run (`client|list` style), for CLIENT LIST's `cmd=`.
    pub last_cmd: &'static str,
    /// Set by a handler to change what happens after its reply.
    pub flow: Flow,
    /// The client's address (SLOWLOG shows it); None for requests replayed from the log.
    pub peer: Option<std::net::SocketAddr>,
    /// The port a replica said it listens on (REPLCONF listening-port).
    pub replica_port: Option<u16>,
    /// The address a replica asked to be listed at (REPLCONF ip-address).
    pub replica_ip: Option<String>,
    /// The replica can take a full sync framed with `$EOF:` (REPLCONF capa eof).
    pub capa_eof: bool,
    /// This is the link to our primary: its writes are applied on a read-only replica.
    pub is_master: bool,
    /// The stream offset after this client's last write, which WAIT waits for.
    pub woff: u64,
    /// Inside MULTI: the commands queued for EXEC.
    pub multi: Option<Box<super::transaction::Queue>>,
    /// The keys this client watches (the server's [`Watches`] knows who watches each key).
    pub watched: Vec<Vec<u8>>,
    /// About what the watches take in memory: they count against the query buffer limit, as
    /// the queue does, so no client can hold unbounded watch state.
    pub watched_bytes: usize,
    /// EXEC is running this client's queue: the memory and write checks were made for the
    /// whole transaction before it started, so no command inside is refused by them.
    pub in_exec: bool,
    /// The connection's slab key, which the pub/sub registry files it under.
    pub slot: usize,
    /// The last request came as a text line: messages are printed as text too.
    pub text: bool,
    /// An HTTP connection streaming a channel as Server-Sent Events.
    pub sse: bool,
    /// Channels and patterns subscribed to.
    pub subs: Subscriptions,
}

impl ClientState {
    /// How the registry knows this client.
    pub fn subscriber(&self) -> Subscriber {
        Subscriber {
            key: self.slot,
            id: self.id,
        }
    }

    /// Subscribed and speaking RESP2 (or text): only (P)(UN)SUBSCRIBE, PING, QUIT and RESET
    /// may run, as in Redis.
    pub fn in_subscribe_mode(&self) -> bool {
        !self.resp3 && self.subs.active()
    }
}

/// Counters reported by INFO stats.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Connections accepted since start.
    pub connections_received: u64,
    /// Connections refused because of `maxclients` or protected mode.
    pub rejected_connections: u64,
    /// Clients closed for holding more unsent replies than `client-output-buffer-limit`.
    pub output_buffer_limit_disconnections: u64,
    /// Clients closed for sending more than `client-query-buffer-limit` ahead.
    pub query_buffer_limit_disconnections: u64,
    /// Requests executed, including failed ones.
    pub commands: u64,
    /// Error replies sent.
    pub error_replies: u64,
    /// Bytes read from clients.
    pub net_input_bytes: u64,
    /// Bytes written to clients.
    pub net_output_bytes: u64,
    /// The longest the loop spent between two polls: the worst pause any client could see from
    /// the server's side.
    pub longest_turn: std::time::Duration,
    /// The same in CPU time of the loop's thread, which leaves out time the OS gave to others.
    pub longest_turn_cpu: std::time::Duration,
    /// Keys removed because their time passed (on access or by active expiry).
    pub expired_keys: u64,
    /// Keys removed to stay under `maxmemory`.
    pub evicted_keys: u64,
    /// HTTP requests answered (any status).
    pub http_requests: u64,
    /// HTTP requests answered with a 4xx or 5xx status.
    pub http_errors: u64,
    /// Calls, failures, rejections and latency per command (INFO commandstats, /metrics).
    pub per_command: CommandStats,
}

/// One connection as CLIENT LIST describes it; the event loop fills it in.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// CLIENT ID.
    pub id: u64,
    /// The peer's address.
    pub addr: std::net::SocketAddr,
    /// The local address the client connected to.
    pub laddr: std::net::SocketAddr,
    /// The socket's file descriptor.
    pub fd: i32,
    /// CLIENT SETNAME's name.
    pub name: Option<Vec<u8>>,
    /// When it connected.
    pub created: Instant,
    /// When it last sent or received bytes (what `--timeout` measures).
    pub last_active: Instant,
    /// Bytes read but not yet executed.
    pub qbuf: usize,
    /// Free room in the input buffer.
    pub qbuf_free: usize,
    /// Bytes allocated for the input buffer (`rbs`).
    pub rbs: usize,
    /// The most input bytes held at once since it connected (`rbp`).
    pub rbp: usize,
    /// Bytes of the commands queued since MULTI (`multi-mem`).
    pub multi_mem: usize,
    /// Bytes of replies not yet sent.
    pub obl: usize,
    /// Bytes allocated for replies.
    pub omem: usize,
    /// Waiting to write (`events=rw`).
    pub writable: bool,
    /// The last command it ran.
    pub cmd: &'static str,
    /// 3 after HELLO 3, else 2.
    pub resp: u8,
    /// Channels subscribed to.
    pub sub: usize,
    /// Patterns subscribed to.
    pub psub: usize,
    /// Shard channels subscribed to.
    pub ssub: usize,
    /// Commands queued after MULTI; `None` outside MULTI (CLIENT LIST `multi=-1`).
    pub multi: Option<usize>,
    /// A replica of this server (CLIENT LIST `flags=S`, `TYPE replica`).
    pub replica: bool,
    /// This server's link to the primary it follows (`flags=M`, `TYPE master`).
    pub master: bool,
    /// Held in WAIT (`flags=b`, INFO `blocked_clients`).
    pub blocked: bool,
    /// The user it runs as.
    pub user: crate::acl::UserRef,
}

impl ClientInfo {
    /// A connection that has done nothing yet.
    pub fn new(
        id: u64,
        addr: std::net::SocketAddr,
        laddr: std::net::SocketAddr,
        fd: i32,
        now: Instant,
    ) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            name: None,
            created: now,
            last_active: now,
            qbuf: 0,
            qbuf_free: 0,
            rbs: 0,
            rbp: 0,
            multi_mem: 0,
            obl: 0,
            omem: 0,
            writable: false,
            cmd: "",
            resp: 2,
            sub: 0,
            psub: 0,
            ssub: 0,
            multi: None,
            replica: false,
            master: false,
            blocked: false,
            user: crate::acl::DEFAULT_USER,
        }
    }
}

/// A CLIENT PAUSE: until when, and whether it holds every request (ALL) or only those that may
/// write (WRITE).
#[derive(Debug, Clone, Copy)]
pub struct ClientPause {
    /// When it ends on its own.
    pub until: Instant,
    /// ALL (true) or WRITE.
    pub all: bool,
}

/// Server-wide state shared by every command.
#[derive(Debug)]
pub struct ServerState {
    /// Effective settings.
    pub config: Config,
    /// Counters.
    pub stats: Stats,
    /// Snapshot progress and history; commands ask for snapshots through it.
    pub snapshot: SnapshotStatus,
    /// The append-only log's progress.
    pub log: LogStatus,
    /// Set while persistence is failing: the `MISCONF` error write commands get instead.
    pub refuse_writes: Option<String>,
    /// Clients connected now.
    pub connected_clients: usize,
    /// The address really bound (differs from the config when port 0 was asked for).
    pub listening: std::net::SocketAddr,
    /// Set by SHUTDOWN: stop, saving a final snapshot when true.
    pub shutdown: Option<bool>,
    /// SHUTDOWN NOW: stop without waiting for replicas to catch up.
    pub shutdown_now: bool,
    /// A shutdown waits for lagging replicas: write commands wait until it ends or SHUTDOWN
    /// ABORT cancels it, so the replication stream stops growing (Redis's pause during
    /// shutdown). Set by SHUTDOWN itself, so the requests after it in the same turn wait too.
    pub writes_paused: bool,
    /// CLIENT PAUSE under way: the requests it holds wait, unread, as a shutdown's do.
    pub client_pause: Option<ClientPause>,
    /// CLIENT UNPAUSE lifted a pause: the loop lets the held requests run.
    pub unpaused: bool,
    /// Until when a shutdown waits for lagging replicas (INFO `shutdown_in_milliseconds`).
    pub shutdown_wait: Option<Instant>,
    /// SHUTDOWN ABORT cancelled the wait: the loop answers the SHUTDOWN callers and lets the
    /// waiting writes run.
    pub shutdown_aborted: bool,
    /// Resident memory, sampled by the event loop (commands never read /proc themselves).
    pub rss_bytes: usize,
    /// Commands that ran longer than `slowlog-log-slower-than`.
    pub slowlog: SlowLog,
    /// What CLIENT LIST shows of each connection, indexed by the connection's slab key and kept
    /// current by the event loop (commands cannot reach the connections themselves).
    pub clients: Vec<Option<ClientInfo>>,
    /// Clients to close, as (slab key, id, why for the log): named by CLIENT KILL, or whose
    /// user ACL deleted or whose channels it revoked. The event loop closes them.
    pub kill: Vec<(usize, u64, &'static str)>,
    /// The audit log's writer, when `--audit-log` is set.
    pub audit: Option<crate::audit::AuditLog>,
    /// Pub/Sub subscriptions, and messages waiting for the loop to deliver.
    pub pubsub: Registry,
    /// Replication: role, ids, offsets, backlog, replicas.
    pub repl: crate::replication::ReplState,
    /// Users, their permissions, and the log of refusals.
    pub acl: crate::acl::Acl,
    /// Keys clients WATCH, and which clients a change reached.
    pub watches: Watches,
    started: Instant,
    rng: u64,
}

impl ServerState {
    /// Whether a request from a client (not the primary's stream, not a replica's link) waits
    /// now; `writes` if it may write or replicate (PUBLISH). CLIENT PAUSE ALL holds every
    /// request, WRITE and a shutdown's wait only those.
    pub fn holds(&self, writes: bool) -> bool {
        match self.client_pause {
            Some(pause) if pause.all => true,
            Some(_) => writes,
            None => writes && self.writes_paused,
        }
    }

    /// Whether anything is paused: no key expires or is evicted meanwhile (Redis's rule), so the
    /// replication stream stays still.
    pub fn paused(&self) -> bool {
        self.writes_paused || self.client_pause.is_some()
    }

    /// State for a server started now with `config`, listening on `listening`.
    pub fn new(config: Config, listening: std::net::SocketAddr) -> Self {
        let seed = unix_time().as_nanos() as u64 ^ u64::from(std::process::id());
        let mut acl = crate::acl::Acl::default();
        acl.set_requirepass(config.requirepass.as_bytes());
        ServerState {
            config,
            stats: Stats::default(),
            snapshot: SnapshotStatus::default(),
            log: LogStatus::default(),
            refuse_writes: None,
            connected_clients: 0,
            listening,
            shutdown: None,
            shutdown_now: false,
            writes_paused: false,
            client_pause: None,
            unpaused: false,
            shutdown_wait: None,
            shutdown_aborted: false,
            rss_bytes: 0,
            slowlog: SlowLog::default(),
            clients: Vec::new(),
            kill: Vec::new(),
            audit: None,
            pubsub: Registry::default(),
            repl: crate::replication::ReplState::default(),
            acl,
            watches: Watches::default(),
            started: Instant::now(),
            rng: seed | 1,
        }
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// A pseudo-random number (xorshift64*); good enough for RANDOMKEY, not for secrets.
    pub fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Wall-clock time in Unix milliseconds: the clock keys expire by.
pub fn unix_ms() -> u64 {
    unix_time().as_millis() as u64
}

/// Wall-clock time since the Unix epoch (zero if the clock is before it).
pub fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
