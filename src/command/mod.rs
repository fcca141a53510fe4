//! Commands: one table maps each name to its arity and handler, grouped by family.
//!
//! Handlers are pure: they read and change the [`Store`](crate::store::Store) and the state in
//! [`Ctx`], and return a [`Reply`]. They never do I/O; anything slow (a snapshot) is asked for
//! through the context and carried out by the event loop.

mod acl;
mod compare;
mod connection;
mod context;
mod expiry;
mod keys;
mod lcs;
mod long_double;
mod pause;
mod pubsub;
mod replication;
mod server;
mod stats;
mod strings;
mod transaction;
mod xxh3;

use std::borrow::Cow;
use std::hash::Hasher;

pub use acl::{check_acl, record_failed_login};
pub use connection::constant_time_eq;
pub use context::{
    unix_ms, unix_time, ClientInfo, ClientPause, ClientState, Ctx, Flow, ServerState, Stats,
};
pub use stats::{
    CommandStat, CommandStats, Histogram, SlowEntry, SlowLog, BUCKET_BOUNDS_SECONDS,
    BUCKET_BOUNDS_USEC,
};
pub use transaction::{exec_abort, Queue, Watches, EXECABORT};

use crate::protocol::Reply;
use crate::pubsub::Events;

/// One argument of a request, borrowed from the input buffer when possible.
pub type Arg<'a> = Cow<'a, [u8]>;

/// A command implementation: reads the arguments (name included), returns the reply.
pub type Handler = for<'a> fn(&'a mut Ctx<'_>, &[Arg<'_>]) -> Reply<'a>;

/// A command's entry in the table.
#[derive(Debug)]
pub struct Spec {
    /// Lower-case name (`client|setname` style for subcommands).
    pub name: &'static str,
    /// Redis's arity: N means exactly N arguments with the name, -N means at least N.
    pub arity: i32,
    /// Redis's command flags, as COMMAND reports them; `write` marks a command that changes data.
    pub flags: &'static [&'static str],
    /// Positions of the first and last key argument and the step between keys (0s: no keys).
    pub keys: (i32, i32, i32),
    /// The positions in `keys` are not keys (shard channels: Redis's `not_key` key specs):
    /// COMMAND shows them, nothing else treats them as keys.
    pub not_keys: bool,
    /// Family, as COMMAND DOCS reports it.
    pub group: &'static str,
    /// Arguments after the name, as HELP shows them (`key value [NX|XX] [GET]`).
    pub usage: &'static str,
    /// One line for HELP and COMMAND DOCS.
    pub summary: &'static str,
    /// The implementation; unused when `subcommands` is not empty.
    pub handler: Handler,
    /// Subcommands, dispatched on the second argument.
    pub subcommands: &'static [Spec],
    /// `flags` read once, when the table is built, so dispatch never compares flag strings:
    /// `write`, `denyoom`, `no_auth` and `may_replicate`, in that order.
    marks: (bool, bool, bool, bool),
    /// What the ACL checks need to know of it (its id in Redis's command table, which ACL rules
    /// name it by, how it uses its keys), found when the program is compiled.
    acl: crate::acl::Command,
}

impl Spec {
    /// An entry with no flags, keys or documentation yet; the methods below add them.
    pub const fn new(name: &'static str, arity: i32, handler: Handler) -> Spec {
        Spec {
            name,
            arity,
            flags: &[],
            keys: (0, 0, 0),
            not_keys: false,
            group: "",
            usage: "",
            summary: "",
            handler,
            subcommands: &[],
            marks: (false, false, false, false),
            acl: crate::acl::Command::named(name),
        }
    }

    /// Sets the flags COMMAND reports.
    pub const fn flags(mut self, flags: &'static [&'static str]) -> Spec {
        self.flags = flags;
        self.marks = (
            has_flag(flags, "write"),
            has_flag(flags, "denyoom"),
            has_flag(flags, "no_auth"),
            has_flag(flags, "may_replicate"),
        );
        self.acl = self.acl.or_no_auth(self.marks.2);
        self
    }

    /// Marks a command that puts something in the replication stream without changing data
    /// (PUBLISH): Redis's internal `MAY_REPLICATE`, which COMMAND does not list. It waits while
    /// writes are paused. After `flags`, which resets it.
    pub const fn replicates(mut self) -> Spec {
        self.marks.3 = true;
        self
    }

    /// Marks a command that changes data.
    pub const fn write(self) -> Spec {
        self.flags(&["write"])
    }

    /// Marks a command that changes data and may add some: refused at `maxmemory` when nothing
    /// can be evicted (Redis's `denyoom`).
    pub const fn grows(self) -> Spec {
        self.flags(&["write", "denyoom"])
    }

    /// Marks a fast command that only reads data.
    pub const fn read(self) -> Spec {
        self.flags(&["readonly", "fast"])
    }

    /// Sets the key positions: first, last (-1: the end), step.
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Spec {
        self.keys = (first, last, step);
        self.acl = self.acl.with_keys(self.keys);
        self
    }

    /// Sets the positions COMMAND shows for arguments that are not keys (shard channels): ACL
    /// key patterns, WATCH and expiry leave them alone, as Redis does with `not_key` key specs.
    pub const fn not_keys(mut self, first: i32, last: i32, step: i32) -> Spec {
        self.keys = (first, last, step);
        self.not_keys = true;
        self
    }

    /// Sets the family, the argument synopsis and the one-line summary.
    pub const fn doc(
        mut self,
        group: &'static str,
        usage: &'static str,
        summary: &'static str,
    ) -> Spec {
        self.group = group;
        self.usage = usage;
        self.summary = summary;
        self
    }

    /// Sets the subcommands, dispatched on the second argument.
    pub const fn subcommands(mut self, subcommands: &'static [Spec]) -> Spec {
        self.subcommands = subcommands;
        self
    }

    /// True for commands that can change data (the ones a write log or replica must see).
    pub fn is_write(&self) -> bool {
        self.marks.0
    }

    /// True for commands that may add data, refused at `maxmemory`.
    pub fn may_grow(&self) -> bool {
        self.marks.1
    }

    /// True for commands that put something in the replication stream without writing data
    /// (PUBLISH): they wait while writes are paused, as writes do.
    pub fn may_replicate(&self) -> bool {
        self.marks.3
    }

    /// True for commands Redis refuses inside MULTI (SAVE, SHUTDOWN).
    pub fn refused_in_multi(&self) -> bool {
        has_flag(self.flags, "no_multi")
    }

    /// The arguments at the command's key positions.
    pub fn keys_of<'a, 'b>(&self, args: &'b [Arg<'a>]) -> impl Iterator<Item = &'b Arg<'a>> {
        let (first, last, step) = self.keys;
        let first = usize::try_from(first).unwrap_or(0);
        let end = match usize::try_from(last) {
            Ok(last) => last.saturating_add(1).min(args.len()),
            // -1 is the last argument, -2 the one before it.
            Err(_) => args.len().saturating_sub(last.unsigned_abs() as usize - 1),
        };
        let step = usize::try_from(step).unwrap_or(1).max(1);
        let range = if first == 0 || self.not_keys {
            0..0
        } else {
            first..end
        };
        args.get(range).unwrap_or_default().iter().step_by(step)
    }

    /// True for commands a client may run before it authenticates.
    pub fn without_auth(&self) -> bool {
        self.marks.2
    }

    /// What the ACL checks need to know of it.
    pub fn acl_command(&self) -> &crate::acl::Command {
        &self.acl
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
}

/// Every top-level command, in the order HELP lists them.
pub fn table() -> impl Iterator<Item = &'static Spec> {
    [
        connection::COMMANDS,
        acl::COMMANDS,
        strings::COMMANDS,
        compare::COMMANDS,
        lcs::COMMANDS,
        keys::COMMANDS,
        expiry::COMMANDS,
        pubsub::COMMANDS,
        server::COMMANDS,
        replication::COMMANDS,
        transaction::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

/// Finds a command, or a subcommand named `container|sub` as COMMAND INFO and COMMAND DOCS
/// take it, case-insensitively.
pub fn lookup_path(name: &[u8]) -> Option<&'static Spec> {
    let Some(bar) = name.iter().position(|&b| b == b'|') else {
        return lookup(name);
    };
    let container = lookup(name.get(..bar)?)?;
    container
        .subcommands
        .iter()
        .find(|sub| sub.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    // Every name is short: lower-case the request's copy on the stack, then look it up in an
    // open-addressed index built once: one hash of a few bytes and usually one comparison, where
    // a binary search of the table took seven (4 % of the loop at pipeline 16).
    let mut lower = [0u8; 24];
    let lower = lower.get_mut(..name.len())?;
    for (to, from) in lower.iter_mut().zip(name) {
        *to = from.to_ascii_lowercase();
    }
    let index = INDEX.get_or_init(|| {
        let mut index = vec![None; INDEX_SLOTS];
        for spec in table() {
            let mut i = name_slot(spec.name.as_bytes());
            while index[i].is_some() {
                i = (i + 1) % INDEX_SLOTS;
            }
            index[i] = Some(spec);
        }
        index
    });
    let mut i = name_slot(lower);
    loop {
        let spec = (*index.get(i)?)?;
        if spec.name.as_bytes() == lower {
            return Some(spec);
        }
        i = (i + 1) % INDEX_SLOTS;
    }
}

/// Places in the name index: at least three times the number of commands, so probes are short
/// and there is always a free place to end a probe for an unknown name.
const INDEX_SLOTS: usize = 512;

/// The home place of a lower-case command name in the index.
fn name_slot(name: &[u8]) -> usize {
    let mut hasher = stats::NameHasher::default();
    hasher.write(name);
    hasher.finish() as usize % INDEX_SLOTS
}

/// Every command by the hash of its name, for [`lookup`].
static INDEX: std::sync::OnceLock<Vec<Option<&'static Spec>>> = std::sync::OnceLock::new();

/// Whether `flags` holds `name`, in a form the table's constants can use.
const fn has_flag(flags: &[&str], name: &str) -> bool {
    let mut i = 0;
    while i < flags.len() {
        let (a, b) = (flags[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// What became of a request, for the per-command figures.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    /// No such command: counted nowhere, as in Redis.
    Unknown,
    /// Refused before running (wrong arity, MISCONF): a `rejected_calls`.
    Rejected(&'static Spec),
    /// The handler ran: a call, and a `failed_calls` too if it replied with an error.
    Ran(&'static Spec),
    /// Writes are paused: the request runs later, and counts then.
    Postponed,
}

/// Runs one request (`args[0]` is the command name) and returns its reply.
///
/// Unknown commands and wrong arity get Redis's exact errors; the connection goes on.
pub fn execute<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    execute_call(ctx, args).0
}

/// [`execute`], also saying which command ran or was refused.
pub fn execute_call<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> (Reply<'a>, Call) {
    let admitted = admit(ctx, args, false);
    if let Err((_, Call::Postponed)) = admitted {
        return (Reply::Nil, Call::Postponed);
    }
    ctx.server.stats.commands += 1;
    match admitted {
        Ok(spec) => {
            let events = ctx.server.config.notify_keyspace_events;
            if events.wants(Events::EXPIRED) && !ctx.server.pubsub.is_empty() {
                reap_keys(ctx, spec, args);
            }
            ((spec.handler)(ctx, args), Call::Ran(spec))
        }
        // Redis answers a refused EXEC so even outside MULTI.
        Err((refusal, Call::Rejected(spec))) if spec.name == "exec" => {
            (exec_abort(refusal), Call::Rejected(spec))
        }
        Err(refused) => refused,
    }
}

/// The checks a request passes before it runs, or is queued (`queueing`) inside MULTI, in
/// Redis's order: known command, arity, authentication, MULTI's own refusals, memory, writes.
/// While queueing, every command is refused at `maxmemory`, not only those that add data: a
/// queue could otherwise grow without bound (Redis does the same).
#[inline]
pub fn admit(
    ctx: &mut Ctx<'_>,
    args: &[Arg<'_>],
    queueing: bool,
) -> Result<&'static Spec, (Reply<'static>, Call)> {
    let spec = match find(args) {
        Found::Unknown => return Err((unknown(args), Call::Unknown)),
        Found::Refused(spec, error) => {
            return Err((error, spec.map_or(Call::Unknown, Call::Rejected)))
        }
        Found::Spec(spec) => spec,
    };
    ctx.client.last_cmd = spec.name;
    if !spec.without_auth() && connection::auth_required(ctx) {
        return Err((NOAUTH, Call::Rejected(spec)));
    }
    // One flag for a user allowed everything; the full check only for restricted users. Inside
    // MULTI the check runs when the command is queued and again when EXEC runs it, as in Redis.
    if !ctx.server.acl.unrestricted(ctx.client.user) {
        if let Err(denied) = check_acl(ctx, spec, args, queueing) {
            return Err((denied, Call::Rejected(spec)));
        }
    }
    if queueing && spec.refused_in_multi() {
        let refusal = Reply::error("ERR Command not allowed inside a transaction");
        return Err((refusal, Call::Rejected(spec)));
    }
    if ctx.client.in_exec {
        return Ok(spec);
    }
    // What the primary sends has happened already: a replica applies it whatever its own
    // memory or persistence state, or it would silently drift from its primary.
    let obey = ctx.client.is_master;
    if !make_room(ctx) && (queueing || spec.may_grow()) && !obey {
        return Err((OOM, Call::Rejected(spec)));
    }
    if spec.is_write() && !obey {
        if let Some(refusal) = &ctx.server.refuse_writes {
            return Err((Reply::error_owned(refusal.clone()), Call::Rejected(spec)));
        }
    }
    // Redis's order: a write refused by replication state before the pub/sub context check,
    // a stale replica's MASTERDOWN after it.
    let refusal = replication_refusal(ctx, spec);
    if let Some(refusal) = refusal.clone().filter(|r| *r != MASTERDOWN) {
        return Err((refusal, Call::Rejected(spec)));
    }
    if ctx.client.in_subscribe_mode() && !pubsub::allowed_while_subscribed(spec.name) {
        return Err((
            pubsub::refused_while_subscribed(spec.name),
            Call::Rejected(spec),
        ));
    }
    if let Some(refusal) = refusal {
        return Err((refusal, Call::Rejected(spec)));
    }
    // Last, as in Redis: a request refused for any other reason is answered at once.
    if !obey && ctx.server.holds(spec.is_write() || spec.may_replicate()) {
        return Err((Reply::Nil, Call::Postponed));
    }
    Ok(spec)
}

/// Removes the keys a command names whose time has passed, before it runs, as Redis's lookups
/// do: their `expired` events then come first, on any command that touches them. Only while
/// `x` events are wanted and someone is subscribed; otherwise reads leave such keys to writes
/// and to active expiry, which nobody can tell apart.
fn reap_keys(ctx: &mut Ctx<'_>, spec: &Spec, args: &[Arg<'_>]) {
    for key in spec.keys_of(args) {
        ctx.db.reap(key);
    }
}

/// Redis's replication refusals: writes to a read-only replica, commands not flagged `stale`
/// while the link is down with `replica-serve-stale-data no`, and writes on a primary short of
/// good replicas.
fn replication_refusal(ctx: &Ctx<'_>, spec: &Spec) -> Option<Reply<'static>> {
    let (repl, settings) = (&ctx.server.repl, &ctx.server.config.repl);
    if ctx.client.is_master {
        return None;
    }
    if !repl.is_replica() {
        let wanted = settings.min_replicas_to_write;
        let short = wanted > 0
            && settings.min_replicas_max_lag > 0
            && repl.good_replicas(settings.min_replicas_max_lag, std::time::Instant::now())
                < wanted;
        return (spec.is_write() && short).then_some(NOREPLICAS);
    }
    if spec.is_write() && settings.read_only {
        return Some(READONLY);
    }
    // Redis's rule: only commands flagged `stale` run (INFO, REPLICAOF, CONFIG, CLIENT, PUBLISH,
    // SUBSCRIBE, MULTI/EXEC: what Sentinel needs); PING, WAIT and SAVE are refused too.
    let stale_ok = spec.flags.contains(&"stale");
    (!stale_ok && !settings.serve_stale_data && !repl.link_up()).then_some(MASTERDOWN)
}

/// A write sent to a read-only replica.
pub const READONLY: Reply<'static> =
    Reply::error("READONLY You can't write against a read only replica.");
/// A write on a primary with fewer good replicas than `min-replicas-to-write`.
pub const NOREPLICAS: Reply<'static> =
    Reply::error("NOREPLICAS Not enough good replicas to write.");
/// A data command on a replica whose link is down, with `replica-serve-stale-data no`.
pub const MASTERDOWN: Reply<'static> = Reply::error(
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
);

/// Most keys one command evicts before it goes on regardless: a turn stays short however far
/// over `maxmemory` a `CONFIG SET` left the data.
const EVICTIONS_PER_COMMAND: usize = 1000;

/// Evicts keys while the data is over `maxmemory`, as the policy allows; false when it is still
/// over. Runs before every command, as in Redis, so memory freed by a read also counts.
pub fn make_room(ctx: &mut Ctx<'_>) -> bool {
    let config = &ctx.server.config;
    let (limit, policy, samples) = (
        config.maxmemory,
        config.maxmemory_policy,
        config.maxmemory_samples,
    );
    // A replica keeps what its primary keeps (`replica-ignore-maxmemory yes`, Redis's default):
    // evicting on its own would make the copies differ.
    // Nor while writes are paused: nothing may join the replication stream (Redis, too, evicts
    // nothing during a pause).
    if limit == 0
        || config.repl.ignore_maxmemory && ctx.server.repl.is_replica()
        || ctx.server.paused()
    {
        return true;
    }
    for _ in 0..EVICTIONS_PER_COMMAND {
        if ctx.db.used_bytes() <= limit {
            return true;
        }
        let seed = ctx.server.random();
        if !ctx.db.evict_one(policy, samples, seed) {
            break;
        }
    }
    ctx.db.used_bytes() <= limit
}

/// For `HELLO 2` and `HELLO 3`: whether the client asks for RESP3 (true) or RESP2 (false).
pub fn protocol_requested(args: &[Arg<'_>]) -> Option<bool> {
    match args {
        [name, version, ..] if name.eq_ignore_ascii_case(b"hello") => match version.as_ref() {
            b"2" => Some(false),
            b"3" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// The command `args` names, checked for arity; `None` when the name is unknown.
pub fn resolve(args: &[Arg<'_>]) -> Option<Result<&'static Spec, Reply<'static>>> {
    match find(args) {
        Found::Unknown => None,
        Found::Refused(_, error) => Some(Err(error)),
        Found::Spec(spec) => Some(Ok(spec)),
    }
}

/// The outcome of looking a request's command up.
enum Found {
    Unknown,
    /// The error, and the command it counts against (none for an unknown subcommand, as Redis).
    Refused(Option<&'static Spec>, Reply<'static>),
    Spec(&'static Spec),
}

fn find(args: &[Arg<'_>]) -> Found {
    let Some(spec) = args.first().and_then(|name| lookup(name)) else {
        return Found::Unknown;
    };
    if !spec.arity_ok(args.len()) {
        return Found::Refused(Some(spec), wrong_arity(spec.name));
    }
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Found::Spec(spec);
    }
    let sub_name = args.get(1).map(|a| a.as_ref()).unwrap_or_default();
    let Some(sub) = spec
        .subcommands
        .iter()
        .find(|sub| sub_name_of(sub).as_bytes().eq_ignore_ascii_case(sub_name))
    else {
        let mut message = b"ERR unknown subcommand '".to_vec();
        message.extend_from_slice(c_string(sub_name, 128));
        message.extend_from_slice(format!("'. Try {} HELP.", spec.name.to_uppercase()).as_bytes());
        return Found::Refused(None, Reply::error_bytes(one_line(message)));
    };
    if !sub.arity_ok(args.len()) {
        return Found::Refused(Some(sub), wrong_arity(sub.name));
    }
    Found::Spec(sub)
}

/// The part of `client|setname` after the bar.
fn sub_name_of(spec: &Spec) -> &'static str {
    spec.name.split_once('|').map_or(spec.name, |(_, sub)| sub)
}

/// Redis's unknown-command error: the name (128 bytes at most), then quoted arguments until
/// their list reaches 128 bytes.
pub fn unknown(args: &[Arg<'_>]) -> Reply<'static> {
    let name = args.first().map(|a| a.as_ref()).unwrap_or_default();
    let mut quoted = Vec::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        quoted.push(b'\'');
        quoted.extend_from_slice(c_string(arg, room));
        quoted.extend_from_slice(b"' ");
    }
    let mut message = b"ERR unknown command '".to_vec();
    message.extend_from_slice(c_string(name, 128));
    message.extend_from_slice(b"', with args beginning with: ");
    message.extend_from_slice(&quoted);
    Reply::error_bytes(one_line(message))
}

/// `CLIENT HELP` and the like: the parent's subcommands, in Redis's layout.
fn subcommand_help<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let Some(parent) = args.first().and_then(|name| lookup(name)) else {
        return SYNTAX;
    };
    let name = parent.name.to_uppercase();
    let mut lines = vec![format!(
        "{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )];
    for sub in parent.subcommands {
        let call = format!("{} {}", sub_name_of(sub).to_uppercase(), sub.usage);
        lines.push(call.trim_end().to_string());
        lines.push(format!("    {}.", sub.summary));
    }
    Reply::Array(lines.into_iter().map(|l| Reply::Status(l.into())).collect())
}

/// The HELP entry every command with subcommands lists last.
const fn help_entry(name: &'static str) -> Spec {
    Spec::new(name, 2, subcommand_help)
        .flags(&["loading", "stale"])
        .doc("server", "", "print this help")
}

/// `ERR wrong number of arguments for 'get' command`.
pub fn wrong_arity(name: &str) -> Reply<'static> {
    Reply::error_owned(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// What C's `%.*s` prints of `bytes`: at most `max` bytes, and nothing from the first NUL on.
fn c_string(bytes: &[u8], max: usize) -> &[u8] {
    let bytes = &bytes[..bytes.len().min(max)];
    memchr::memchr(0, bytes).map_or(bytes, |nul| &bytes[..nul])
}

/// An error line as Redis sends it: CR and LF become spaces so the reply stays one line.
fn one_line(mut message: Vec<u8>) -> Vec<u8> {
    for b in &mut message {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    message
}

/// A command other than AUTH, HELLO, QUIT or HELP before the client gave the password.
pub const NOAUTH: Reply<'static> = Reply::error("NOAUTH Authentication required.");
/// A command that may add data while the data is over `maxmemory` and nothing can be evicted.
pub const OOM: Reply<'static> =
    Reply::error("OOM command not allowed when used memory > 'maxmemory'.");
/// `ERR syntax error`.
pub const SYNTAX: Reply<'static> = Reply::error("ERR syntax error");
/// The error for an argument or value that must be an integer.
pub const NOT_INTEGER: Reply<'static> = Reply::error("ERR value is not an integer or out of range");
/// RENAME and friends on a missing key.
pub const NO_SUCH_KEY: Reply<'static> = Reply::error("ERR no such key");
/// A value that would grow past `proto-max-bulk-len`.
pub const TOO_BIG: Reply<'static> =
    Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/// Parses an integer argument as Redis does.
pub fn int_arg(arg: &[u8]) -> Result<i64, Reply<'static>> {
    crate::protocol::parse_i64(arg).ok_or(NOT_INTEGER)
}

#[cfg(test)]
mod tests;
