//! Model-based tests against the real binary.
//!
//! Random command sequences run against the server and against a small in-test model of the
//! keyspace (a `BTreeMap` of values and one of expiry times), which computes the exact reply of
//! every command: every data command (GET, SET and PUT with NX/XX/IFEQ/IFNE/GET and
//! EX/PX/EXAT/PXAT/KEEPTTL, DELEX with IFEQ/IFNE, DELIFEQ,
//! SETNX, SETEX, PSETEX, GETSET, GETEX with EX/PX/EXAT/PXAT/PERSIST, GETDEL, MGET, MSET, MSETNX,
//! DEL, UNLINK, EXISTS, INCR/DECR/INCRBY/DECRBY, APPEND, STRLEN, GETRANGE, SETRANGE, TYPE, RENAME,
//! RENAMENX, DBSIZE, FLUSHDB/FLUSHALL, KEYS, SCAN, EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with
//! NX/XX/GT/LT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST), PING, ECHO and SAVE, and errors
//! (wrong arity, bad integers and options, invalid expire times per command, option mixes Redis
//! refuses, unknown commands, bad quoting). Keys come from a small space so commands collide, with
//! blanks, CR LF, NUL, 0xff and glob characters in them; values are sometimes binary, empty, long,
//! or integers near the i64 limits.
//!
//! Expiry is exact despite the wall clock (the Time section says how): times are long past, far
//! future or an hour apart, and replies that depend on the moment (TTL, PTTL, and the absolute
//! time of a relative expiry) must fall within bounds taken from when the request was sent and its
//! reply received. Keys of their own get expiry times of 1 to 50 ms and are only looked at once
//! the time has certainly passed, sometimes after a restart started only then.
//!
//! Each command goes out in either dialect at random: RESP (the reply must be the exact RESP
//! bytes) or a text line with its arguments bare, single- or double-quoted as their bytes allow
//! (the reply must be the exact redis-cli style text). Commands go singly or in pipelined batches
//! written as one buffer cut at random byte positions, over one of several connections (now and
//! then closed with QUIT and reopened). Replies whose order the server does not define (KEYS, a
//! whole SCAN page) are compared as sets; a full SCAN iteration in small steps must return every
//! key exactly once.
//!
//! Sequences include clean restarts (SIGTERM, SIGINT or SHUTDOWN: exit 0, restart on the same
//! directory, all data kept) and abrupt ones (kill -9 or SHUTDOWN NOSAVE: only what the last
//! snapshot wrote survives; with the append-only log in `appendfsync always` mode, every
//! acknowledged write). After every restart, and from time to time in between, the whole keyspace
//! is read back (KEYS, MGET, PEXPIRETIME of every key, DBSIZE) and compared with the model: keys,
//! values and expiry times to the millisecond; a key whose time passed is gone. The tests of the append-only log
//! run when the binary's `--help` lists `--appendonly` and `--appendfsync`.
//!
//! Every failure names its test, seed and step, the failing command, the expected and received
//! bytes, and the commands before it. Environment:
//!
//! - `POCKETKV_SEED=<n>` replays one seed (`POCKETKV_SEED=7 cargo test --test model <test>`);
//! - `POCKETKV_MODEL_STEPS=<n>` sets the number of steps per seed;
//! - `POCKETKV_MODEL_SEEDS=<n>` runs `n` fresh seeds (time-based, each printed) instead of the
//!   fixed ones.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Server;

type Bytes = Vec<u8>;

/// How long one reply may take before the test reports a hang (SAVE includes an fsync).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `proto-max-bulk-len` at its default: the largest value SETRANGE may build.
const MAX_BULK: u64 = 512 * 1024 * 1024;

/// A SCAN cursor past every shard (cursors are shard numbers, 0-10239: docs/commands.md, SCAN), which ends a
/// scan at once with nothing.
const PAST_EVERY_SHARD: u64 = 1 << 32;

/// Longest text line the generator writes; longer requests go as RESP (the server's limit is
/// 64 KiB, and a longer line closes the connection).
const MAX_TEXT_LINE: usize = 60_000;

// ---------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------

/// splitmix64: a few lines, and consecutive seeds still give unrelated streams.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `p` percent.
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.abs_diff(lo) + 1;
        lo.wrapping_add((self.next() % span) as i64)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------
//
// Expiry stays exact although the server runs on the wall clock. Absolute times the generator
// makes are either long past (the key goes at once) or in 2100 and later; relative ones are zero
// or negative (the key goes at once), overflow (an error), or at least an hour long and an hour
// apart from every other relative time of the run (see [`Durations`]), so none runs out during
// a run and any two expiry times compare the same whenever the server ran the commands. What
// does depend on the moment (TTL, and the absolute time a relative expiry ended at) is checked
// against bounds from the times each request was sent and its reply received: the server reads
// its clock after reading a request and before replying, from the same clock as the test.
// Genuinely short expiry times go only to keys of their own ([`Run::short_expiry`]).

/// Unix milliseconds by the clock the server also reads.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// At most this long passes between generating a command and the server running it: the bounds
/// of a relative time whose request has not been timed yet.
const LAG_MS: i64 = 10 * 60 * 1000;

/// How far apart the run's relative expiry times are (seconds), and how many there can be.
const SPACING_S: i64 = 3600;
const DURATION_SLOTS: u64 = 10_007;

/// 2100-01-01T00:00:00Z in Unix seconds: absolute times from here on are always in the future.
const YEAR_2100: i64 = 4_102_444_800;

/// How long after an expired key was left for the server to reclaim (SET with a past absolute
/// time, the short-expiry keys) DBSIZE may still count it; active expiry runs ten times a second.
const GHOST_MS: i64 = 5_000;

/// For each command (by sequence number), the interval in which the server's clock read when it
/// ran it: (sent, received) once timed, (generated, generated + LAG_MS) before.
type Times = HashMap<usize, (i64, i64)>;

/// When the model applies a command: its sequence number and the time it was generated.
struct Now<'t> {
    seq: usize,
    ms: i64,
    times: &'t Times,
}

/// A key's expiry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Unix milliseconds, exactly.
    At(i64),
    /// `ms` after the server's clock when it ran command `seq`.
    After { seq: usize, ms: i64 },
}

impl Expiry {
    /// The interval the time lies in, Unix milliseconds.
    fn bounds(self, times: &Times) -> (i64, i64) {
        match self {
            Expiry::At(at) => (at, at),
            Expiry::After { seq, ms } => {
                let (lo, hi) = times.get(&seq).copied().unwrap_or_else(|| {
                    panic!("test bug: command {seq} set an expiry time but was never timed")
                });
                (lo.saturating_add(ms), hi.saturating_add(ms))
            }
        }
    }
}

/// True when a time in `a` is later than one in `b`. The generator keeps the times it makes
/// apart, so the intervals never overlap; if they did, the model could not know the reply.
fn later(a: (i64, i64), b: (i64, i64)) -> bool {
    if a.0 > b.1 {
        true
    } else if a.1 <= b.0 {
        false
    } else {
        panic!("test bug: expiry times in {a:?} and {b:?} overlap; their order is not known")
    }
}

/// Milliseconds to seconds the way TTL and EXPIRETIME round (to the nearest second).
fn round_s(ms: i64) -> i64 {
    ms.saturating_add(500) / 1000
}

/// The reply of TTL and friends for a key with an expiry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeReply {
    expiry: Expiry,
    /// The sequence number of the TTL request itself.
    query: usize,
    millis: bool,
    absolute: bool,
}

impl TimeReply {
    /// The reply's bounds, given the times of the commands involved.
    fn range(self, times: &Times) -> (i64, i64) {
        let (lo, hi) = self.expiry.bounds(times);
        let (lo, hi) = if self.absolute {
            (lo, hi)
        } else {
            let (q_lo, q_hi) = times.get(&self.query).copied().unwrap_or((0, 0));
            (
                lo.saturating_sub(q_hi).max(0),
                hi.saturating_sub(q_lo).max(0),
            )
        };
        if self.millis {
            (lo, hi)
        } else {
            (round_s(lo), round_s(hi))
        }
    }
}

/// An expiry option of SET or GETEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl TimeKind {
    fn seconds(self) -> bool {
        matches!(self, TimeKind::Ex | TimeKind::ExAt)
    }

    fn absolute(self) -> bool {
        matches!(self, TimeKind::ExAt | TimeKind::PxAt)
    }
}

/// The options of SET (or GETEX) as Redis's `parseExtendedStringArgumentsOrReply` reads them: an
/// option contradicting one already seen is a syntax error, repeating one is not (the last time
/// wins), and a time option needs an argument after it.
#[derive(Debug, Default, PartialEq, Eq)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(TimeKind, Bytes)>,
    /// IFEQ (true) or IFNE (false) and the value compared (Redis 8.4): not with NX or XX, nor
    /// with the other one; repeated, the last one counts.
    condition: Option<(bool, Bytes)>,
}

fn parse_set_options(options: &[Bytes], getex: bool) -> Option<SetOptions> {
    let set = !getex;
    let mut o = SetOptions::default();
    let mut i = 0;
    while let Some(option) = options.get(i) {
        let upper = option.to_ascii_uppercase();
        let kind = match upper.as_slice() {
            b"EX" => Some(TimeKind::Ex),
            b"PX" => Some(TimeKind::Px),
            b"EXAT" => Some(TimeKind::ExAt),
            b"PXAT" => Some(TimeKind::PxAt),
            _ => None,
        };
        match (upper.as_slice(), kind) {
            (b"NX", _) if set && !o.xx && o.condition.is_none() => o.nx = true,
            (b"XX", _) if set && !o.nx && o.condition.is_none() => o.xx = true,
            (b"IFEQ" | b"IFNE", _)
                if set
                    && !o.nx
                    && !o.xx
                    && o.condition
                        .as_ref()
                        .is_none_or(|(eq, _)| *eq == (upper == b"IFEQ"))
                    && i + 1 < options.len() =>
            {
                o.condition = Some((upper == b"IFEQ", options[i + 1].clone()));
                i += 1;
            }
            (b"GET", _) if set => o.get = true,
            (b"KEEPTTL", _) if set && o.expire.is_none() => o.keep_ttl = true,
            (b"PERSIST", _) if getex && o.expire.is_none() => o.persist = true,
            (_, Some(kind))
                if !o.keep_ttl
                    && !o.persist
                    && o.expire.as_ref().is_none_or(|(k, _)| *k == kind)
                    && i + 1 < options.len() =>
            {
                o.expire = Some((kind, options[i + 1].clone()));
                i += 1;
            }
            _ => return None,
        }
        i += 1;
    }
    Some(o)
}

/// `ERR invalid expire time in '<name>' command`.
fn invalid_expire(name: &str) -> Expect {
    error(&format!("ERR invalid expire time in '{name}' command"))
}

/// An expiry argument of SET, SETEX, PSETEX or GETEX, as Redis's `getExpireMillisecondsOrReply`
/// reads it: a positive integer; relative times may not overflow when added to now.
fn set_time(kind: TimeKind, arg: &[u8], name: &str, now: &Now<'_>) -> Result<Expiry, Expect> {
    let n = parse_int(arg).ok_or_else(not_integer)?;
    if n <= 0 {
        return Err(invalid_expire(name));
    }
    let ms = if kind.seconds() {
        n.checked_mul(1000).ok_or_else(|| invalid_expire(name))?
    } else {
        n
    };
    if kind.absolute() {
        return Ok(Expiry::At(ms));
    }
    ms.checked_add(now.ms).ok_or_else(|| invalid_expire(name))?;
    Ok(Expiry::After { seq: now.seq, ms })
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A reply as the model predicts it, before it is encoded for a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Status(&'static str),
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Expect>),
    /// An array of distinct bulk strings in an order the server does not define (KEYS, a SCAN
    /// page).
    AnyOrder(Vec<Bytes>),
    /// An integer within bounds: DBSIZE while keys that expired may not be reclaimed yet.
    IntIn(i64, i64),
    /// TTL, PTTL, EXPIRETIME or PEXPIRETIME of a key with an expiry time: an integer whose
    /// bounds are known once the request and the reply have been timed.
    Time(TimeReply),
}

fn error(message: &str) -> Expect {
    Expect::Error(message.as_bytes().to_vec())
}

fn syntax_error() -> Expect {
    error("ERR syntax error")
}

fn not_integer() -> Expect {
    error("ERR value is not an integer or out of range")
}

fn wrong_arity(name: &str) -> Expect {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn bulk_or_nil(value: Option<&Bytes>) -> Expect {
    value.map_or(Expect::Nil, |v| Expect::Bulk(v.clone()))
}

/// Redis's arity of the commands the model knows: N means exactly N arguments with the name,
/// -N at least N.
fn arity(name: &str) -> Option<i64> {
    Some(match name {
        "get" | "getdel" | "incr" | "decr" | "strlen" | "type" | "keys" | "echo" => 2,
        "set" | "put" | "mset" | "msetnx" => -3,
        "setnx" | "getset" | "incrby" | "decrby" | "append" | "rename" | "renamenx" => 3,
        "getrange" | "setrange" => 4,
        "mget" | "del" | "unlink" | "exists" | "scan" => -2,
        "dbsize" | "save" => 1,
        "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" => 2,
        "expire" | "pexpire" | "expireat" | "pexpireat" => -3,
        "setex" | "psetex" => 4,
        "getex" => -2,
        "delex" => -2,
        "delifeq" => 3,
        "flushdb" | "flushall" | "ping" => -1,
        _ => return None,
    })
}

/// The keyspace as the server should hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    data: BTreeMap<Bytes, Bytes>,
    /// The expiry times of the keys in `data` that have one.
    expires: BTreeMap<Bytes, Expiry>,
    /// When keys were left expired but perhaps not yet reclaimed on the server (SET with a past
    /// absolute time, the short-expiry keys): DBSIZE and SCAN still count those until active
    /// expiry removes them, as in Redis.
    ghosts: Vec<i64>,
}

impl Model {
    /// Stores a value with no expiry time; returns the old value.
    fn put(&mut self, key: Bytes, value: Bytes) -> Option<Bytes> {
        self.expires.remove(&key);
        self.data.insert(key, value)
    }

    fn remove(&mut self, key: &Bytes) -> Option<Bytes> {
        self.expires.remove(key);
        self.data.remove(key)
    }

    /// True when a time the server will take has already come.
    fn is_past(expiry: Expiry, now: &Now<'_>) -> bool {
        match expiry {
            Expiry::At(at) => at <= now.ms,
            Expiry::After { ms, .. } => ms <= 0,
        }
    }

    /// Applies one request (`args[0]` is the command name) and returns the exact reply.
    fn apply(&mut self, args: &[Bytes], now: &Now<'_>) -> Expect {
        self.ghosts.retain(|&t| now.ms - t < GHOST_MS);
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let Some(arity) = arity(&name) else {
            return unknown_command(args);
        };
        let argc = args.len() as i64;
        if arity >= 0 && argc != arity || arity < 0 && argc < -arity {
            return wrong_arity(&name);
        }
        let a = &args[1..];
        match name.as_str() {
            "get" => bulk_or_nil(self.data.get(&a[0])),
            "ttl" | "pttl" | "expiretime" | "pexpiretime" => {
                match (self.data.contains_key(&a[0]), self.expires.get(&a[0])) {
                    (false, _) => Expect::Int(-2),
                    (true, None) => Expect::Int(-1),
                    (true, Some(&expiry)) => Expect::Time(TimeReply {
                        expiry,
                        query: now.seq,
                        millis: name.starts_with('p'),
                        absolute: name.ends_with("time"),
                    }),
                }
            }
            "persist" => Expect::Int(i64::from(self.expires.remove(&a[0]).is_some())),
            "expire" | "pexpire" | "expireat" | "pexpireat" => self.expire(&name, a, now),
            "setex" | "psetex" => {
                let kind = if name == "setex" {
                    TimeKind::Ex
                } else {
                    TimeKind::Px
                };
                match set_time(kind, &a[1], &name, now) {
                    Ok(expiry) => {
                        self.put(a[0].clone(), a[2].clone());
                        self.expires.insert(a[0].clone(), expiry);
                        Expect::Status("OK")
                    }
                    Err(e) => e,
                }
            }
            "getex" => self.getex(a, now),
            "set" | "put" => self.set(&name, a, now),
            "setnx" => {
                if self.data.contains_key(&a[0]) {
                    Expect::Int(0)
                } else {
                    self.put(a[0].clone(), a[1].clone());
                    Expect::Int(1)
                }
            }
            "getset" => bulk_or_nil(self.put(a[0].clone(), a[1].clone()).as_ref()),
            "getdel" => bulk_or_nil(self.remove(&a[0]).as_ref()),
            "mget" => Expect::Array(a.iter().map(|k| bulk_or_nil(self.data.get(k))).collect()),
            "mset" | "msetnx" if a.len() % 2 != 0 => wrong_arity(&name),
            "mset" => {
                for pair in a.chunks(2) {
                    self.put(pair[0].clone(), pair[1].clone());
                }
                Expect::Status("OK")
            }
            "msetnx" => {
                if a.chunks(2).any(|pair| self.data.contains_key(&pair[0])) {
                    return Expect::Int(0);
                }
                for pair in a.chunks(2) {
                    self.put(pair[0].clone(), pair[1].clone());
                }
                Expect::Int(1)
            }
            // INCR and friends, APPEND and SETRANGE change the value and keep the expiry time.
            "incr" => self.add(&a[0], 1),
            "decr" => self.add(&a[0], -1),
            "incrby" => match parse_int(&a[1]) {
                Some(by) => self.add(&a[0], by),
                None => not_integer(),
            },
            "decrby" => match parse_int(&a[1]) {
                Some(i64::MIN) => error("ERR decrement would overflow"),
                Some(by) => self.add(&a[0], -by),
                None => not_integer(),
            },
            "append" => {
                let value = self.data.entry(a[0].clone()).or_default();
                value.extend_from_slice(&a[1]);
                Expect::Int(value.len() as i64)
            }
            "strlen" => Expect::Int(self.data.get(&a[0]).map_or(0, Vec::len) as i64),
            "getrange" => self.getrange(a),
            "setrange" => self.setrange(a),
            "del" | "unlink" => {
                Expect::Int(a.iter().filter(|k| self.remove(k).is_some()).count() as i64)
            }
            // Redis 8.4's conditional delete (the digest forms are left to tests/strings_extra.rs).
            "delex" | "delifeq" => {
                let (key, condition) = match (name.as_str(), a) {
                    ("delifeq", [key, value]) => (key, Some((true, value))),
                    (_, [key]) => (key, None),
                    (_, [key, token, value]) if token.eq_ignore_ascii_case(b"IFEQ") => {
                        (key, Some((true, value)))
                    }
                    (_, [key, token, value]) if token.eq_ignore_ascii_case(b"IFNE") => {
                        (key, Some((false, value)))
                    }
                    _ => return syntax_error(),
                };
                let current = self.data.get(key);
                let holds = condition.is_none_or(|(eq, v)| (current == Some(v)) == eq);
                Expect::Int(i64::from(
                    current.is_some() && holds && self.remove(key).is_some(),
                ))
            }
            "exists" => Expect::Int(a.iter().filter(|k| self.data.contains_key(*k)).count() as i64),
            "keys" => Expect::AnyOrder(self.matching(&a[0])),
            "scan" => self.scan(a),
            "type" => Expect::Status(if self.data.contains_key(&a[0]) {
                "string"
            } else {
                "none"
            }),
            "rename" => self.rename(&a[0], &a[1], true),
            "renamenx" => self.rename(&a[0], &a[1], false),
            "dbsize" => {
                let len = self.data.len() as i64;
                match self.ghosts.len() as i64 {
                    0 => Expect::Int(len),
                    ghosts => Expect::IntIn(len, len + ghosts),
                }
            }
            "flushdb" | "flushall" => {
                let mode_ok = match a {
                    [] => true,
                    [mode] => {
                        mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC")
                    }
                    _ => false,
                };
                if !mode_ok {
                    return syntax_error();
                }
                self.data.clear();
                self.expires.clear();
                self.ghosts.clear();
                Expect::Status("OK")
            }
            "ping" => match a {
                [] => Expect::Status("PONG"),
                [message] => Expect::Bulk(message.clone()),
                _ => wrong_arity("ping"),
            },
            "echo" => Expect::Bulk(a[0].clone()),
            // The runner records what the snapshot holds.
            "save" => Expect::Status("OK"),
            other => unreachable!("arity() knows {other} but apply() does not"),
        }
    }

    /// SET (and PUT, which names itself in errors): options, then the time, then GET's old
    /// value, then NX/XX. A past absolute time stores the key already expired.
    fn set(&mut self, name: &str, a: &[Bytes], now: &Now<'_>) -> Expect {
        let (key, value) = (&a[0], &a[1]);
        let Some(options) = parse_set_options(&a[2..], false) else {
            return syntax_error();
        };
        let expiry = match &options.expire {
            Some((kind, arg)) => match set_time(*kind, arg, name, now) {
                Ok(expiry) => Some(expiry),
                Err(e) => return e,
            },
            None => None,
        };
        let old = self.data.get(key).cloned();
        let allowed = !(options.nx && old.is_some() || options.xx && old.is_none())
            && options
                .condition
                .as_ref()
                .is_none_or(|(eq, v)| (old.as_ref() == Some(v)) == *eq);
        if allowed {
            let kept = self.expires.get(key).copied().filter(|_| options.keep_ttl);
            self.put(key.clone(), value.clone());
            match expiry.or(kept) {
                Some(expiry) if Self::is_past(expiry, now) => {
                    self.remove(key);
                    self.ghosts.push(now.ms);
                }
                Some(expiry) => {
                    self.expires.insert(key.clone(), expiry);
                }
                None => {}
            }
        }
        match (options.get, allowed) {
            (true, _) => bulk_or_nil(old.as_ref()),
            (false, true) => Expect::Status("OK"),
            (false, false) => Expect::Nil,
        }
    }

    /// GETEX: options, then nil for a missing key, then the time; a past absolute time deletes.
    fn getex(&mut self, a: &[Bytes], now: &Now<'_>) -> Expect {
        let Some(options) = parse_set_options(&a[1..], true) else {
            return syntax_error();
        };
        let Some(value) = self.data.get(&a[0]).cloned() else {
            return Expect::Nil;
        };
        if let Some((kind, arg)) = &options.expire {
            match set_time(*kind, arg, "getex", now) {
                Ok(expiry) if Self::is_past(expiry, now) => {
                    self.remove(&a[0]);
                }
                Ok(expiry) => {
                    self.expires.insert(a[0].clone(), expiry);
                }
                Err(e) => return e,
            }
        } else if options.persist {
            self.expires.remove(&a[0]);
        }
        Expect::Bulk(value)
    }

    /// The EXPIRE family as Redis's `expireGenericCommand`: options, the integer, overflow, the
    /// key, NX/XX/GT/LT (no expiry counts as infinite), then set or, for a time already come,
    /// delete.
    fn expire(&mut self, name: &str, a: &[Bytes], now: &Now<'_>) -> Expect {
        let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
        for option in &a[2..] {
            match option.to_ascii_uppercase().as_slice() {
                b"NX" => nx = true,
                b"XX" => xx = true,
                b"GT" => gt = true,
                b"LT" => lt = true,
                _ => {
                    let mut message = b"ERR Unsupported option ".to_vec();
                    message.extend_from_slice(option);
                    return Expect::Error(message);
                }
            }
        }
        if nx && (xx || gt || lt) {
            return error("ERR NX and XX, GT or LT options at the same time are not compatible");
        }
        if gt && lt {
            return error("ERR GT and LT options at the same time are not compatible");
        }
        let Some(n) = parse_int(&a[1]) else {
            return not_integer();
        };
        let seconds = name == "expire" || name == "expireat";
        let Some(ms) = (if seconds {
            n.checked_mul(1000)
        } else {
            Some(n)
        }) else {
            return invalid_expire(name);
        };
        let (new, bounds) = if name.ends_with("at") {
            (Expiry::At(ms), (ms, ms))
        } else {
            let Some(at) = ms.checked_add(now.ms) else {
                return invalid_expire(name);
            };
            (
                Expiry::After { seq: now.seq, ms },
                (at, at.saturating_add(LAG_MS)),
            )
        };
        let key = &a[0];
        if !self.data.contains_key(key) {
            return Expect::Int(0);
        }
        let current = self.expires.get(key).map(|e| e.bounds(now.times));
        let refused = nx && current.is_some()
            || xx && current.is_none()
            || gt && current.is_none_or(|c| !later(bounds, c))
            || lt && current.is_some_and(|c| !later(c, bounds));
        if refused {
            return Expect::Int(0);
        }
        if Self::is_past(new, now) {
            self.remove(key);
        } else {
            self.expires.insert(key.clone(), new);
        }
        Expect::Int(1)
    }

    fn add(&mut self, key: &Bytes, delta: i64) -> Expect {
        let current = match self.data.get(key) {
            None => 0,
            Some(value) => match parse_int(value) {
                Some(n) => n,
                None => return not_integer(),
            },
        };
        match current.checked_add(delta) {
            Some(next) => {
                self.data.insert(key.clone(), next.to_string().into_bytes());
                Expect::Int(next)
            }
            None => error("ERR increment or decrement would overflow"),
        }
    }

    /// Redis's getrangeCommand, step by step.
    fn getrange(&self, a: &[Bytes]) -> Expect {
        let (Some(start), Some(end)) = (parse_int(&a[1]), parse_int(&a[2])) else {
            return not_integer();
        };
        let value = self.data.get(&a[0]).map_or(&[][..], Vec::as_slice);
        let len = value.len() as i64;
        if start < 0 && end < 0 && start > end {
            return Expect::Bulk(Vec::new());
        }
        let mut start = if start < 0 { len + start } else { start };
        let mut end = if end < 0 { len + end } else { end };
        start = start.max(0);
        end = end.max(0);
        if end >= len {
            end = len - 1;
        }
        if start > end || len == 0 {
            return Expect::Bulk(Vec::new());
        }
        Expect::Bulk(value[start as usize..=end as usize].to_vec())
    }

    /// Redis's setrangeCommand: offset checks, then nothing to do for an empty value, then the
    /// size limit.
    fn setrange(&mut self, a: &[Bytes]) -> Expect {
        let Some(offset) = parse_int(&a[1]) else {
            return not_integer();
        };
        if offset < 0 {
            return error("ERR offset is out of range");
        }
        let bytes = &a[2];
        if bytes.is_empty() {
            return Expect::Int(self.data.get(&a[0]).map_or(0, Vec::len) as i64);
        }
        if (offset as u64).saturating_add(bytes.len() as u64) > MAX_BULK {
            return error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        }
        let value = self.data.entry(a[0].clone()).or_default();
        let offset = offset as usize;
        let end = offset + bytes.len();
        if value.len() < end {
            value.resize(end, 0);
        }
        value[offset..end].copy_from_slice(bytes);
        Expect::Int(value.len() as i64)
    }

    fn rename(&mut self, from: &Bytes, to: &Bytes, replace: bool) -> Expect {
        let done = |moved: bool| match (replace, moved) {
            (true, _) => Expect::Status("OK"),
            (false, moved) => Expect::Int(i64::from(moved)),
        };
        if !self.data.contains_key(from) {
            return error("ERR no such key");
        }
        if from == to {
            return done(false);
        }
        if !replace && self.data.contains_key(to) {
            return done(false);
        }
        // The expiry time goes with the value (and whatever `to` had is gone).
        let expiry = self.expires.remove(from);
        let value = self.data.remove(from).expect("checked above");
        self.put(to.clone(), value);
        if let Some(expiry) = expiry {
            self.expires.insert(to.clone(), expiry);
        }
        done(true)
    }

    /// Only the SCAN calls whose page is known: from cursor 0 with a COUNT above the number of
    /// keys (the whole keyspace in one page), or from a cursor past the last shard (nothing).
    /// Full iterations in small steps are checked by [`Run::scan_all`].
    fn scan(&self, a: &[Bytes]) -> Expect {
        let Some(cursor) = parse_cursor(&a[0]) else {
            return error("ERR invalid cursor");
        };
        let mut count = 10;
        let mut pattern: Option<&Bytes> = None;
        let mut strings = true;
        let mut rest = &a[1..];
        while let [option, value, tail @ ..] = rest {
            match option.to_ascii_uppercase().as_slice() {
                b"COUNT" => match parse_int(value) {
                    Some(n) if n >= 1 => count = n,
                    Some(_) => return syntax_error(),
                    None => return not_integer(),
                },
                b"MATCH" => pattern = Some(value),
                b"TYPE" => strings = value.eq_ignore_ascii_case(b"string"),
                _ => return syntax_error(),
            }
            rest = tail;
        }
        if !rest.is_empty() {
            return syntax_error();
        }
        let keys = if cursor >= PAST_EVERY_SHARD {
            Vec::new()
        } else if cursor == 0 && count as u64 > self.entries() as u64 {
            match pattern {
                Some(p) => self.matching(p),
                None => self.data.keys().cloned().collect(),
            }
        } else {
            panic!("test bug: the generator made a SCAN whose page is not known: {a:?}");
        };
        Expect::Array(vec![
            Expect::Bulk(b"0".to_vec()),
            Expect::AnyOrder(if strings { keys } else { Vec::new() }),
        ])
    }

    /// The most keys the server may hold, counting expired ones it may not have reclaimed yet
    /// (SCAN counts them against COUNT).
    fn entries(&self) -> usize {
        self.data.len() + self.ghosts.len()
    }

    /// Keys matching a KEYS/SCAN pattern.
    fn matching(&self, pattern: &[u8]) -> Vec<Bytes> {
        self.data
            .keys()
            .filter(|key| key_matches(pattern, key))
            .cloned()
            .collect()
    }
}

/// Redis's unknown-command error: the name and the first 128 bytes of quoted arguments, each cut
/// at a NUL as C's `%s` would, CR and LF blanked.
fn unknown_command(args: &[Bytes]) -> Expect {
    fn c_string(bytes: &[u8], max: usize) -> &[u8] {
        let bytes = &bytes[..bytes.len().min(max)];
        bytes
            .iter()
            .position(|&b| b == 0)
            .map_or(bytes, |nul| &bytes[..nul])
    }
    let mut quoted = Vec::new();
    for arg in &args[1..] {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        quoted.push(b'\'');
        quoted.extend_from_slice(c_string(arg, room));
        quoted.extend_from_slice(b"' ");
    }
    let mut message = b"ERR unknown command '".to_vec();
    message.extend_from_slice(c_string(&args[0], 128));
    message.extend_from_slice(b"', with args beginning with: ");
    message.extend_from_slice(&quoted);
    for b in &mut message {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    Expect::Error(message)
}

/// Redis's `string2ll`: optional `-`, digits without a leading zero, no overflow, under 21 bytes.
fn parse_int(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if negative {
        (magnitude <= 1 << 63).then(|| (magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// SCAN's cursor as Redis reads it with `strtoul`: optional sign (a negative number wraps),
/// decimal digits and nothing else, no overflow; the empty string is 0.
fn parse_cursor(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return Some(0);
    }
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// KEYS/SCAN matching: `*` alone is everything (the empty key too), as Redis special-cases it.
fn key_matches(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || string_match(pattern, key)
}

/// A port of Redis's `stringmatchlen` (case-sensitive), recursion and all; patterns and keys here
/// are a few bytes long.
fn string_match(mut p: &[u8], mut s: &[u8]) -> bool {
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if string_match(&p[1..], s) {
                        return true;
                    }
                    s = &s[1..];
                }
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.first() == Some(&b'\\') && p.len() >= 2 {
                        p = &p[1..];
                        matched |= p[0] == s[0];
                    } else if p.first() == Some(&b']') {
                        break;
                    } else if p.is_empty() {
                        // Unterminated: the class runs to the pattern's end.
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (lo, hi) = (p[0].min(p[2]), p[0].max(p[2]));
                        matched |= (lo..=hi).contains(&s[0]);
                        p = &p[2..];
                    } else {
                        matched |= p[0] == s[0];
                    }
                    p = &p[1..];
                }
                if matched == negate {
                    return false;
                }
                s = &s[1..];
                // Redis's common `pattern++` after a class skips the `]` (or nothing at the end).
                if !p.is_empty() {
                    p = &p[1..];
                }
                if s.is_empty() {
                    while p.first() == Some(&b'*') {
                        p = &p[1..];
                    }
                    break;
                }
                continue;
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if p[0] != s[0] {
                    return false;
                }
                s = &s[1..];
            }
            literal => {
                if literal != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

// ---------------------------------------------------------------------------------------------
// Generating commands
// ---------------------------------------------------------------------------------------------

/// A small key space so commands collide: plain keys, keys with blanks, CR LF, NUL, invalid
/// UTF-8, glob characters, the empty key, multi-byte UTF-8.
const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"k1",
    b"k2",
    b"key:1",
    b"key:2",
    b"user:10",
    b"n",
    b"x y",
    b"",
    b"\x00",
    b"\xff\xfe",
    b"a\r\nb",
    b"\"q\"\\",
    b"[x]",
    b"*",
    "\u{e9}t\u{e9}".as_bytes(),
];

const WORDS: &[&[u8]] = &[
    b"Alice",
    b"v",
    b"hello world",
    b"user:1/a@b.c+d=e,f_g-h",
    b"10",
    b"-",
    b"'single'",
    b"*3\r\n$3\r\nGET",
    b"PONG",
];

const SPECIAL: &[&[u8]] = &[
    b"\x00",
    b"a\r\nb",
    b"\r\n",
    b"\n",
    b"\xff",
    b"\xff\xfe\x00\x01",
    b"say \"hi\" \\",
    b"tab\there",
    b"\x07\x08\x1b\x7f",
    b" leading",
    b"trailing ",
];

/// Integers Redis refuses: sign, leading zero, blanks, fractions, overflow, empty.
const BAD_INTS: &[&[u8]] = &[
    b"+1",
    b"01",
    b"-0",
    b" 1",
    b"1 ",
    b"1.5",
    b"abc",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"",
    b"0x10",
    b"1e3",
];

fn key(rng: &mut Rng) -> Bytes {
    rng.pick(KEYS).to_vec()
}

fn keys(rng: &mut Rng, lo: usize, hi: usize) -> Vec<Bytes> {
    let n = lo + rng.below(hi - lo + 1);
    (0..n).map(|_| key(rng)).collect()
}

/// A valid integer, often near the limits.
fn int_text(rng: &mut Rng) -> Bytes {
    let n = match rng.below(6) {
        0 => i64::MAX - rng.between(0, 3),
        1 => i64::MIN + rng.between(0, 3),
        2 => rng.between(-1000, 1000),
        _ => rng.between(-20, 20),
    };
    n.to_string().into_bytes()
}

fn random_bytes(rng: &mut Rng, len: usize) -> Bytes {
    let binary = rng.percent(30);
    (0..len)
        .map(|_| {
            if binary {
                rng.below(256) as u8
            } else {
                rng.pick(b"abcxyz019 :-_\"\\")
            }
        })
        .collect()
}

fn value(rng: &mut Rng) -> Bytes {
    match rng.below(20) {
        0..=4 => int_text(rng),
        5..=6 => rng.pick(WORDS).to_vec(),
        7..=8 => rng.pick(SPECIAL).to_vec(),
        9 => Vec::new(),
        10 => rng.pick(BAD_INTS).to_vec(),
        11 => {
            let len = rng.between(100, 3000) as usize;
            random_bytes(rng, len)
        }
        _ => {
            let len = rng.between(1, 12) as usize;
            random_bytes(rng, len)
        }
    }
}

/// An integer argument: valid most of the time.
fn int_arg(rng: &mut Rng) -> Bytes {
    if rng.percent(12) {
        rng.pick(BAD_INTS).to_vec()
    } else {
        int_text(rng)
    }
}

/// A command name in random letter case (commands are case-insensitive).
fn cased(name: &str, rng: &mut Rng) -> Bytes {
    match rng.below(10) {
        0 => name.to_ascii_lowercase().into_bytes(),
        1 => name
            .bytes()
            .map(|b| {
                if rng.percent(50) {
                    b.to_ascii_lowercase()
                } else {
                    b
                }
            })
            .collect(),
        _ => name.as_bytes().to_vec(),
    }
}

/// A Redis glob built from pieces: stars, `?`, classes (negated, ranges, reversed ranges,
/// escaped `]`, unterminated), escapes, literals. Zero pieces give the empty pattern.
fn pattern(rng: &mut Rng) -> Bytes {
    const PIECES: &[&[u8]] = &[
        b"*", b"*", b"*", b"?", b"a", b"k", b"key:", b"user:", b"1", b"[ab]", b"[^a]", b"[a-k]",
        b"[k-a]", b"\\*", b"[", b"x y", b"\\", b"**", b"[\\]x]", b"b", b"[a-]",
    ];
    if rng.percent(15) {
        return b"*".to_vec();
    }
    let n = rng.below(4);
    (0..n).flat_map(|_| rng.pick(PIECES).to_vec()).collect()
}

/// The run's relative expiry times: each one used once, all at least [`SPACING_S`] apart (a
/// permutation of the slots, so they come in no order), from one hour to about 14 months.
#[derive(Debug, Default)]
struct Durations {
    used: u64,
}

impl Durations {
    fn next_secs(&mut self) -> i64 {
        assert!(
            self.used < DURATION_SLOTS,
            "test bug: more than {DURATION_SLOTS} relative expiry times in one run"
        );
        let slot = self.used * 7919 % DURATION_SLOTS;
        self.used += 1;
        SPACING_S * (1 + slot as i64)
    }
}

/// A time argument in seconds or milliseconds, absolute or relative, of the kinds the model
/// can know the effect of whenever it runs: see the Time section.
fn time_arg(rng: &mut Rng, durations: &mut Durations, seconds: bool, absolute: bool) -> Bytes {
    let roll = rng.below(100);
    let text = match (absolute, roll) {
        (true, 0..=54) => {
            // Shared days and milliseconds, so GT/LT meet equal times; 499 and 500 round
            // EXPIRETIME down and up.
            let s = YEAR_2100 + 86_400 * rng.below(20) as i64;
            if seconds {
                s.to_string()
            } else {
                (s * 1000 + rng.pick(&[0, 0, 1, 499, 500, 999])).to_string()
            }
        }
        (true, 55..=74) if seconds => rng
            .pick(&["1", "1000000000", "1600000000", "0", "-1"])
            .to_string(),
        (true, 55..=74) => rng
            .pick(&[
                "1",
                "1000",
                "1600000000000",
                "0",
                "-5",
                "-9223372036854775808",
            ])
            .to_string(),
        // The largest seconds that fit, one past, and far past.
        (true, 75..=84) if seconds => rng
            .pick(&[
                "9223372036854775",
                "9223372036854776",
                "9223372036854775807",
            ])
            .to_string(),
        (true, 75..=84) => rng
            .pick(&["9223372036854775000", "4102444800000000"])
            .to_string(),
        (false, 0..=69) => {
            let s = durations.next_secs();
            if seconds {
                s.to_string()
            } else {
                (s * 1000 + rng.below(1000) as i64).to_string()
            }
        }
        (false, 70..=79) if seconds => rng
            .pick(&["0", "-1", "-3600", "-9223372036854775", "-9223372036854776"])
            .to_string(),
        (false, 70..=79) => rng
            .pick(&["0", "-1", "-1000", "-9223372036854775808"])
            .to_string(),
        // Overflow once converted to milliseconds or added to now.
        (false, 80..=87) if seconds => rng
            .pick(&[
                "9223372036854775",
                "9223372036854776",
                "9223372036854775807",
            ])
            .to_string(),
        (false, 80..=87) => rng
            .pick(&["9223372036854775807", "9223372036854775000"])
            .to_string(),
        _ => return rng.pick(BAD_INTS).to_vec(),
    };
    text.into_bytes()
}

/// One expiry option of SET (or GETEX) with its time.
fn expiry_option(rng: &mut Rng, durations: &mut Durations, getex: bool) -> Vec<Bytes> {
    let kinds: &[&str] = if getex {
        &["EX", "PX", "EXAT", "PXAT", "PERSIST"]
    } else {
        &["EX", "PX", "EXAT", "PXAT", "KEEPTTL"]
    };
    let kind = rng.pick(kinds);
    if kind == "KEEPTTL" || kind == "PERSIST" {
        return vec![cased(kind, rng)];
    }
    let seconds = kind.starts_with('E');
    let absolute = kind.ends_with("AT");
    vec![
        cased(kind, rng),
        time_arg(rng, durations, seconds, absolute),
    ]
}

/// SET's options: mostly a valid mix of a condition, GET and an expiry option in any order,
/// sometimes one more that repeats or contradicts one (or lacks its time).
fn set_options(rng: &mut Rng, durations: &mut Durations) -> Vec<Bytes> {
    let mut groups: Vec<Vec<Bytes>> = Vec::new();
    if rng.percent(30) {
        groups.push(vec![rng
            .pick(&["NX", "XX", "nx", "xx"])
            .as_bytes()
            .to_vec()]);
    }
    if rng.percent(25) {
        groups.push(vec![rng.pick(&["GET", "get", "Get"]).as_bytes().to_vec()]);
    }
    if rng.percent(55) {
        groups.push(expiry_option(rng, durations, false));
    }
    if rng.percent(12) {
        let condition = rng.pick(&["IFEQ", "IFNE", "ifeq"]).as_bytes().to_vec();
        groups.push(vec![condition, value(rng)]);
    }
    if rng.percent(8) {
        groups.push(match rng.below(4) {
            0 => vec![rng.pick(&["NX", "XX"]).as_bytes().to_vec()],
            1 => expiry_option(rng, durations, false),
            2 => vec![rng
                .pick(&["PERSIST", "FOO", "EX", "PXAT"])
                .as_bytes()
                .to_vec()],
            _ => vec![b"KEEPTTL".to_vec()],
        });
    }
    rng.shuffle(&mut groups);
    groups.concat()
}

/// GETEX's options: none, one, or now and then two (usually contradicting) or one SET-only.
fn getex_options(rng: &mut Rng, durations: &mut Durations) -> Vec<Bytes> {
    match rng.below(20) {
        0..=3 => Vec::new(),
        4..=15 => expiry_option(rng, durations, true),
        16..=17 => {
            let mut options = expiry_option(rng, durations, true);
            options.extend(expiry_option(rng, durations, true));
            options
        }
        _ => vec![rng
            .pick(&["KEEPTTL", "NX", "GET", "FOO", "EX"])
            .as_bytes()
            .to_vec()],
    }
}

/// An expiry command: the EXPIRE family with NX/XX/GT/LT, the TTL family, PERSIST, SETEX,
/// PSETEX, GETEX.
fn expiry_command(rng: &mut Rng, durations: &mut Durations) -> Vec<Bytes> {
    match rng.below(100) {
        0..=34 => {
            let name = rng.pick(&["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]);
            let seconds = !name.starts_with('P');
            let absolute = name.ends_with("AT");
            let mut args = vec![
                cased(name, rng),
                key(rng),
                time_arg(rng, durations, seconds, absolute),
            ];
            let options = match rng.below(10) {
                0..=3 => 0,
                4..=8 => 1,
                _ => 2,
            };
            for _ in 0..options {
                let option = if rng.percent(3) {
                    rng.pick(&["FOO", "KEEPTTL", "EX"])
                } else {
                    rng.pick(&["NX", "XX", "GT", "LT", "GT", "LT", "gt", "xx"])
                };
                args.push(option.as_bytes().to_vec());
            }
            args
        }
        35..=59 => {
            let name = rng.pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]);
            vec![cased(name, rng), key(rng)]
        }
        60..=67 => vec![cased("PERSIST", rng), key(rng)],
        68..=79 => {
            let name = rng.pick(&["SETEX", "PSETEX"]);
            let seconds = name == "SETEX";
            vec![
                cased(name, rng),
                key(rng),
                time_arg(rng, durations, seconds, false),
                value(rng),
            ]
        }
        _ => {
            let mut args = vec![cased("GETEX", rng), key(rng)];
            args.extend(getex_options(rng, durations));
            args
        }
    }
}

/// One random data command (sometimes an erroneous one), as its arguments.
fn command(rng: &mut Rng, with_save: bool, durations: &mut Durations) -> Vec<Bytes> {
    let roll = rng.below(1400);
    let mut args = match roll {
        0..=79 => vec![cased("GET", rng), key(rng)],
        80..=189 => {
            let mut args = vec![
                cased(if rng.percent(80) { "SET" } else { "PUT" }, rng),
                key(rng),
                value(rng),
            ];
            if rng.percent(60) {
                args.extend(set_options(rng, durations));
            }
            args
        }
        190..=219 => vec![cased("SETNX", rng), key(rng), value(rng)],
        220..=249 => vec![cased("GETSET", rng), key(rng), value(rng)],
        250..=279 => vec![cased("GETDEL", rng), key(rng)],
        280..=329 => {
            let mut args = vec![cased("MGET", rng)];
            args.extend(keys(rng, 1, 12));
            args
        }
        330..=409 => {
            let mut args = vec![cased(if roll < 380 { "MSET" } else { "MSETNX" }, rng)];
            for _ in 0..1 + rng.below(4) {
                args.push(key(rng));
                args.push(value(rng));
            }
            args
        }
        410..=459 => {
            let mut args = vec![cased(if rng.percent(70) { "DEL" } else { "UNLINK" }, rng)];
            args.extend(keys(rng, 1, 4));
            args
        }
        460..=489 => {
            let mut args = vec![cased("EXISTS", rng)];
            args.extend(keys(rng, 1, 4));
            args
        }
        490..=549 => vec![
            cased(if rng.percent(60) { "INCR" } else { "DECR" }, rng),
            key(rng),
        ],
        550..=599 => vec![
            cased(if rng.percent(60) { "INCRBY" } else { "DECRBY" }, rng),
            key(rng),
            int_arg(rng),
        ],
        600..=639 => vec![cased("APPEND", rng), key(rng), value(rng)],
        640..=659 => vec![cased("STRLEN", rng), key(rng)],
        660..=699 => {
            let index = |rng: &mut Rng| match rng.below(10) {
                0 => rng
                    .pick(&[i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1])
                    .to_string()
                    .into_bytes(),
                1 if rng.percent(50) => rng.pick(BAD_INTS).to_vec(),
                _ => rng.between(-20, 20).to_string().into_bytes(),
            };
            let (start, end) = (index(rng), index(rng));
            vec![cased("GETRANGE", rng), key(rng), start, end]
        }
        700..=739 => {
            let offset = match rng.below(20) {
                0 => b"-1".to_vec(),
                1 => rng.pick(BAD_INTS).to_vec(),
                // Past the 512 MB limit with any non-empty value (536870911 with one byte would
                // be allowed, and build a 512 MB value).
                2 => rng
                    .pick(&["536870912", "536870913", "9223372036854775807"])
                    .as_bytes()
                    .to_vec(),
                _ => rng.between(0, 20).to_string().into_bytes(),
            };
            let bytes = match rng.below(8) {
                0 => Vec::new(),
                1 => b"\x00\xff".to_vec(),
                _ => {
                    let len = rng.between(1, 6) as usize;
                    random_bytes(rng, len)
                }
            };
            vec![cased("SETRANGE", rng), key(rng), offset, bytes]
        }
        740..=759 => vec![cased("TYPE", rng), key(rng)],
        760..=799 => vec![
            cased(
                if rng.percent(50) {
                    "RENAME"
                } else {
                    "RENAMENX"
                },
                rng,
            ),
            key(rng),
            key(rng),
        ],
        800..=814 => vec![cased("DBSIZE", rng)],
        815..=844 => vec![cased("KEYS", rng), pattern(rng)],
        845..=869 => scan_page(rng),
        870..=884 => match rng.below(3) {
            0 => vec![cased("ECHO", rng), value(rng)],
            1 => vec![cased("PING", rng), value(rng)],
            _ => vec![cased("PING", rng)],
        },
        885..=954 => error_case(rng),
        955..=959 => {
            let mut args = vec![cased(
                if rng.percent(70) {
                    "FLUSHDB"
                } else {
                    "FLUSHALL"
                },
                rng,
            )];
            if rng.percent(40) {
                args.push(rng.pick(&["ASYNC", "SYNC", "async"]).as_bytes().to_vec());
            }
            args
        }
        960..=974 if with_save => vec![cased("SAVE", rng)],
        975..=989 => match rng.below(8) {
            0 => vec![cased("DELEX", rng), key(rng)],
            1..=3 => vec![
                cased("DELEX", rng),
                key(rng),
                cased("IFEQ", rng),
                value(rng),
            ],
            4 => vec![
                cased("DELEX", rng),
                key(rng),
                cased("IFNE", rng),
                value(rng),
            ],
            5 => vec![cased("DELEX", rng), key(rng), cased("IFEQ", rng)],
            _ => vec![cased("DELIFEQ", rng), key(rng), value(rng)],
        },
        1000.. => expiry_command(rng, durations),
        _ => vec![cased("SET", rng), key(rng), int_text(rng)],
    };
    let is_set = args[0].eq_ignore_ascii_case(b"SET") || args[0].eq_ignore_ascii_case(b"PUT");
    if is_set && args.len() >= 3 && rng.percent(1) {
        // Now and then a much longer value, to cross read-buffer boundaries.
        let len = rng.between(8_000, 20_000) as usize;
        args[2] = random_bytes(rng, len);
    }
    args
}

/// A SCAN whose single page the model knows (see [`Model::scan`]).
fn scan_page(rng: &mut Rng) -> Vec<Bytes> {
    let whole = rng.percent(80);
    let cursor: &[u8] = if whole {
        rng.pick(&[&b"0"[..], b"0", b"0", b"+0", b""])
    } else {
        rng.pick(&[
            &b"4294967296"[..],
            b"99999999999",
            b"-1",
            b"-1000",
            b"18446744073709551615",
        ])
    };
    let mut options: Vec<(Bytes, Bytes)> = Vec::new();
    if whole {
        let count = rng.pick(&["5000", "65536", "9223372036854775807"]);
        options.push((cased("COUNT", rng), count.as_bytes().to_vec()));
    } else if rng.percent(50) {
        options.push((
            cased("COUNT", rng),
            rng.between(1, 100).to_string().into_bytes(),
        ));
    }
    if rng.percent(50) {
        options.push((cased("MATCH", rng), pattern(rng)));
    }
    if rng.percent(20) {
        let kind = rng.pick(&["string", "STRING", "hash", "list", "none"]);
        options.push((cased("TYPE", rng), kind.as_bytes().to_vec()));
    }
    rng.shuffle(&mut options);
    let mut args = vec![cased("SCAN", rng), cursor.to_vec()];
    for (option, value) in options {
        args.push(option);
        args.push(value);
    }
    args
}

/// Wrong arity, bad integers, bad options, unknown and not-yet-supported commands.
fn error_case(rng: &mut Rng) -> Vec<Bytes> {
    /// Commands with an argument count their arity refuses.
    const ARITY: &[(&str, usize)] = &[
        ("GET", 0),
        ("GET", 2),
        ("SET", 1),
        ("PUT", 0),
        ("SETNX", 1),
        ("SETNX", 3),
        ("GETSET", 1),
        ("GETDEL", 0),
        ("GETDEL", 2),
        ("MGET", 0),
        ("MSET", 1),
        ("MSET", 3),
        ("MSETNX", 1),
        ("MSETNX", 5),
        ("INCR", 0),
        ("INCR", 2),
        ("DECR", 2),
        ("INCRBY", 1),
        ("INCRBY", 3),
        ("DECRBY", 1),
        ("APPEND", 1),
        ("STRLEN", 0),
        ("GETRANGE", 2),
        ("GETRANGE", 4),
        ("SETRANGE", 2),
        ("DEL", 0),
        ("UNLINK", 0),
        ("EXISTS", 0),
        ("KEYS", 0),
        ("KEYS", 2),
        ("SCAN", 0),
        ("TYPE", 0),
        ("TYPE", 2),
        ("RENAME", 1),
        ("RENAMENX", 3),
        ("DBSIZE", 1),
        ("ECHO", 0),
        ("PING", 2),
    ];
    match rng.below(8) {
        0 | 1 => {
            let (command, extra) = rng.pick(ARITY);
            let mut args = vec![cased(command, rng)];
            for i in 0..extra {
                args.push(if i % 2 == 0 { key(rng) } else { value(rng) });
            }
            args
        }
        2 => {
            let command = rng.pick(&["INCRBY", "DECRBY"]);
            vec![cased(command, rng), key(rng), rng.pick(BAD_INTS).to_vec()]
        }
        3 => {
            let options: &[&str] = rng.pick(&[
                &["NX", "XX"][..],
                &["XX", "NX"],
                &["nx", "get", "xx"],
                &["FOO"],
                &["GET", "GET", "BAR"],
            ]);
            let mut args = vec![cased("SET", rng), key(rng), value(rng)];
            args.extend(options.iter().map(|o| o.as_bytes().to_vec()));
            args
        }
        4 => {
            let command = rng.pick(&["FROB", "hset", "LPUSH", "EVAL", "CLUSTER", "x"]);
            let mut args = vec![cased(command, rng)];
            for _ in 0..rng.below(4) {
                args.push(value(rng));
            }
            args
        }
        5 => {
            // The expiry commands' arity, and option mixes Redis refuses.
            let tail: &[&str] = rng.pick(&[
                &["EXPIRE", "k1"][..],
                &["PEXPIRE"],
                &["EXPIREAT", "a"],
                &["PEXPIREAT"],
                &["TTL"],
                &["PTTL", "a", "b"],
                &["EXPIRETIME"],
                &["PEXPIRETIME", "a", "b"],
                &["PERSIST"],
                &["PERSIST", "a", "b"],
                &["SETEX", "a", "100"],
                &["PSETEX", "a", "100000000", "v", "w"],
                &["GETEX"],
                &["EXPIRE", "a", "100", "NX", "XX"],
                &["EXPIRE", "a", "100", "GT", "LT"],
                &["PEXPIRE", "a", "100", "NX", "GT"],
                &["EXPIREAT", "a", "100", "LT", "NX"],
                &["EXPIRE", "a", "x", "FOO"],
                &["EXPIRE", "a", "x", "NX"],
                &["SET", "a", "v", "EX", "100", "PX", "100"],
                &["SET", "a", "v", "KEEPTTL", "EX", "100"],
                &["SET", "a", "v", "PXAT", "100", "KEEPTTL"],
                &["SET", "a", "v", "EX"],
                &["SET", "a", "v", "PERSIST"],
                &["SET", "a", "v", "EX", "0"],
                &["SET", "a", "v", "PX", "-1", "NX"],
                &["SET", "a", "v", "EXAT", "x"],
                &["GETEX", "a", "PERSIST", "EX", "100"],
                &["GETEX", "a", "EX", "100", "PERSIST"],
                &["GETEX", "a", "EX", "100", "PXAT", "100"],
                &["GETEX", "a", "KEEPTTL"],
                &["GETEX", "a", "PX"],
            ]);
            let mut args = vec![cased(tail[0], rng)];
            args.extend(tail[1..].iter().map(|t| t.as_bytes().to_vec()));
            args
        }
        6 => {
            let tail: &[&str] = rng.pick(&[
                &["x"][..],
                &[" 1"],
                &["1 "],
                &["18446744073709551616"],
                &["-"],
                &["+"],
                &["1x"],
                &["0x1"],
                &["0", "COUNT", "0"],
                &["0", "COUNT", "-1"],
                &["0", "COUNT", "x"],
                &["0", "COUNT", ""],
                &["0", "COUNT", "5", "FOO", "bar"],
                &["0", "COUNT", "1000", "MATCH"],
                &["0", "LIMIT", "1"],
                &["5000", "MATCH", "*", "COUNT"],
            ]);
            let mut args = vec![cased("SCAN", rng)];
            args.extend(tail.iter().map(|t| t.as_bytes().to_vec()));
            args
        }
        _ => {
            let tail: &[&str] = rng.pick(&[&["LATER"][..], &["ASYNC", "SYNC"], &[""]]);
            let mut args = vec![cased(rng.pick(&["FLUSHDB", "FLUSHALL"]), rng)];
            args.extend(tail.iter().map(|t| t.as_bytes().to_vec()));
            args
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dialects: requests out, expected replies in
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Resp,
    Text,
}

fn resp_request(args: &[Bytes]) -> Bytes {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Blanks as the text splitter sees them (C's `isspace`, and NUL).
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

/// A text line carrying `args`: each argument bare, single-quoted or double-quoted (with
/// escapes, some of them needless) as its bytes allow, separated by runs of blanks, ended by LF
/// or CRLF.
fn text_request(rng: &mut Rng, args: &[Bytes]) -> Bytes {
    let mut out = Vec::new();
    if rng.percent(5) {
        out.push(b' ');
    }
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(rng.pick(&[&b" "[..], b" ", b" ", b"  ", b"\t", b" \t "]));
        }
        let bare_ok =
            !arg.is_empty() && arg.iter().all(|&b| !is_blank(b) && b != b'"' && b != b'\'');
        let single_ok = !arg.contains(&b'\\') && !arg.contains(&b'\n');
        let style = rng.below(10);
        if bare_ok && (i == 0 || style < 6) {
            out.extend_from_slice(arg);
        } else if single_ok && style < 8 {
            out.push(b'\'');
            for &b in arg {
                if b == b'\'' {
                    out.extend_from_slice(b"\\'");
                } else {
                    out.push(b);
                }
            }
            out.push(b'\'');
        } else {
            out.push(b'"');
            for &b in arg {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' if rng.percent(70) => out.extend_from_slice(b"\\r"),
                    b'\t' if rng.percent(50) => out.extend_from_slice(b"\\t"),
                    0x07 if rng.percent(50) => out.extend_from_slice(b"\\a"),
                    0x08 if rng.percent(50) => out.extend_from_slice(b"\\b"),
                    b'a'..=b'z' if !b"nrtbax".contains(&b) && rng.percent(5) => {
                        out.extend_from_slice(&[b'\\', b]);
                    }
                    b' '..=b'~' if rng.percent(90) => out.push(b),
                    _ if rng.percent(20) => out.push(b),
                    _ => {
                        let hex = if rng.percent(50) {
                            format!("\\x{b:02x}")
                        } else {
                            format!("\\x{b:02X}")
                        };
                        out.extend_from_slice(hex.as_bytes());
                    }
                }
            }
            out.push(b'"');
        }
    }
    out.extend_from_slice(if rng.percent(50) { b"\r\n" } else { b"\n" });
    out
}

/// How the human format prints a string: bare when non-empty and only of safe characters,
/// otherwise double-quoted with escapes.
fn quote(bytes: &[u8]) -> Bytes {
    let bare = |b: u8| b.is_ascii_alphanumeric() || b"-_.:/@+=,".contains(&b);
    if !bytes.is_empty() && bytes.iter().all(|&b| bare(b)) {
        return bytes.to_vec();
    }
    let mut out = vec![b'"'];
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            b' '..=b'~' => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
    out
}

/// An expected reply as bytes, except where element order is free.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Fixed(Bytes),
    /// `items` in any order, item `i` preceded by `prefixes[i]` (the human numbering).
    AnyOrder {
        prefixes: Vec<Bytes>,
        items: Vec<Bytes>,
    },
    /// An integer reply within bounds (only ever a whole reply): RESP `:n` or `(integer) n`.
    Int(IntSpec),
}

/// The bounds of an integer reply, fixed or known once the commands involved are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntSpec {
    Within(i64, i64),
    Time(TimeReply),
}

impl IntSpec {
    fn range(self, times: &Times) -> (i64, i64) {
        match self {
            IntSpec::Within(lo, hi) => (lo, hi),
            IntSpec::Time(reply) => reply.range(times),
        }
    }
}

fn push_fixed(toks: &mut Vec<Tok>, bytes: &[u8]) {
    match toks.last_mut() {
        Some(Tok::Fixed(fixed)) => fixed.extend_from_slice(bytes),
        _ => toks.push(Tok::Fixed(bytes.to_vec())),
    }
}

fn resp_bulk(bytes: &[u8]) -> Bytes {
    let mut out = format!("${}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

fn resp_tokens(expect: &Expect, toks: &mut Vec<Tok>) {
    match expect {
        Expect::Status(s) => push_fixed(toks, format!("+{s}\r\n").as_bytes()),
        Expect::Error(message) => {
            push_fixed(toks, b"-");
            push_fixed(toks, message);
            push_fixed(toks, b"\r\n");
        }
        Expect::Int(n) => push_fixed(toks, format!(":{n}\r\n").as_bytes()),
        Expect::Bulk(bytes) => push_fixed(toks, &resp_bulk(bytes)),
        Expect::Nil => push_fixed(toks, b"$-1\r\n"),
        Expect::Array(items) => {
            push_fixed(toks, format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                resp_tokens(item, toks);
            }
        }
        Expect::IntIn(lo, hi) => toks.push(Tok::Int(IntSpec::Within(*lo, *hi))),
        Expect::Time(reply) => toks.push(Tok::Int(IntSpec::Time(*reply))),
        Expect::AnyOrder(items) => {
            push_fixed(toks, format!("*{}\r\n", items.len()).as_bytes());
            if !items.is_empty() {
                toks.push(Tok::AnyOrder {
                    prefixes: vec![Vec::new(); items.len()],
                    items: items.iter().map(|i| resp_bulk(i)).collect(),
                });
            }
        }
    }
}

/// The human format; `indent` is the column where nested elements after the first start.
fn human_tokens(expect: &Expect, indent: usize, toks: &mut Vec<Tok>) {
    let number = |i: usize, width: usize| {
        let mut prefix = if i > 0 {
            vec![b' '; indent]
        } else {
            Vec::new()
        };
        prefix.extend_from_slice(format!("{:>width$}) ", i + 1).as_bytes());
        prefix
    };
    match expect {
        Expect::Status(s) => push_fixed(toks, format!("{s}\n").as_bytes()),
        Expect::Error(message) => {
            push_fixed(toks, b"(error) ");
            push_fixed(toks, message);
            push_fixed(toks, b"\n");
        }
        Expect::Int(n) => push_fixed(toks, format!("(integer) {n}\n").as_bytes()),
        Expect::Bulk(bytes) => {
            push_fixed(toks, &quote(bytes));
            push_fixed(toks, b"\n");
        }
        Expect::Nil => push_fixed(toks, b"(nil)\n"),
        Expect::IntIn(lo, hi) => toks.push(Tok::Int(IntSpec::Within(*lo, *hi))),
        Expect::Time(reply) => toks.push(Tok::Int(IntSpec::Time(*reply))),
        Expect::Array(items) if items.is_empty() => push_fixed(toks, b"(empty array)\n"),
        Expect::AnyOrder(items) if items.is_empty() => push_fixed(toks, b"(empty array)\n"),
        Expect::Array(items) => {
            let width = items.len().to_string().len();
            for (i, item) in items.iter().enumerate() {
                let prefix = number(i, width);
                push_fixed(toks, &prefix);
                let column = indent + width + 2;
                human_tokens(item, column, toks);
            }
        }
        Expect::AnyOrder(items) => {
            let width = items.len().to_string().len();
            toks.push(Tok::AnyOrder {
                prefixes: (0..items.len()).map(|i| number(i, width)).collect(),
                items: items
                    .iter()
                    .map(|item| {
                        let mut line = quote(item);
                        line.push(b'\n');
                        line
                    })
                    .collect(),
            });
        }
    }
}

fn tokens(expect: &Expect, dialect: Dialect) -> Vec<Tok> {
    let mut toks = Vec::new();
    match dialect {
        Dialect::Resp => resp_tokens(expect, &mut toks),
        Dialect::Text => human_tokens(expect, 0, &mut toks),
    }
    toks
}

/// Length of the reply whatever the order of its free elements.
fn tokens_len(toks: &[Tok]) -> usize {
    toks.iter()
        .map(|tok| match tok {
            Tok::Fixed(bytes) => bytes.len(),
            Tok::AnyOrder { prefixes, items } => {
                prefixes.iter().chain(items).map(Vec::len).sum::<usize>()
            }
            Tok::Int(_) => 0,
        })
        .sum()
}

/// The reply with free elements in the model's order (for messages).
fn tokens_bytes(toks: &[Tok]) -> Bytes {
    let mut out = Vec::new();
    for tok in toks {
        match tok {
            Tok::Fixed(bytes) => out.extend_from_slice(bytes),
            Tok::AnyOrder { prefixes, items } => {
                for (prefix, item) in prefixes.iter().zip(items) {
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(item);
                }
            }
            Tok::Int(spec) => {
                out.extend_from_slice(format!("(an integer in {spec:?})").as_bytes());
            }
        }
    }
    out
}

/// True when `got` is the expected reply with its free elements in some order. Encoded items are
/// prefix-free (RESP bulks carry their length; human lines hold no raw newline), so taking the
/// first item that fits is exact.
fn tokens_match(toks: &[Tok], got: &[u8]) -> bool {
    let mut pos = 0;
    for tok in toks {
        match tok {
            Tok::Fixed(bytes) => {
                if !got[pos..].starts_with(bytes) {
                    return false;
                }
                pos += bytes.len();
            }
            Tok::AnyOrder { prefixes, items } => {
                let mut left: Vec<&Bytes> = items.iter().collect();
                for prefix in prefixes {
                    if !got[pos..].starts_with(prefix) {
                        return false;
                    }
                    pos += prefix.len();
                    let Some(i) = left.iter().position(|item| got[pos..].starts_with(item)) else {
                        return false;
                    };
                    pos += left[i].len();
                    left.swap_remove(i);
                }
            }
            Tok::Int(_) => return false,
        }
    }
    pos == got.len()
}

/// The integer of a whole `:n` (RESP) or `(integer) n` (text) reply.
fn int_reply(dialect: Dialect, got: &[u8]) -> Option<i64> {
    let (prefix, eol): (&[u8], &[u8]) = match dialect {
        Dialect::Resp => (b":", b"\r\n"),
        Dialect::Text => (b"(integer) ", b"\n"),
    };
    let digits = got.strip_prefix(prefix)?.strip_suffix(eol)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A parsed RESP reply, for the checks whose reply shape is not known in advance.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resp {
    Simple(Bytes),
    Error(Bytes),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Vec<Resp>),
}

/// Parses one complete RESP reply from the start of `buf`; `Ok(None)` if more bytes are needed.
fn parse_resp(buf: &[u8]) -> Result<Option<(Resp, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[1..eol];
    let after = eol + 2;
    let number = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad RESP header {:?}", show(&buf[..eol])))
    };
    match buf.first() {
        Some(b'+') => Ok(Some((Resp::Simple(line.to_vec()), after))),
        Some(b'-') => Ok(Some((Resp::Error(line.to_vec()), after))),
        Some(b':') => Ok(Some((Resp::Int(number()?), after))),
        Some(b'$') => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Resp::Bulk(None), after)));
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk not followed by CRLF".into());
            }
            Ok(Some((Resp::Bulk(Some(buf[after..end].to_vec())), end + 2)))
        }
        Some(b'*') => {
            let count = number()?;
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..count.max(0) {
                match parse_resp(&buf[pos..])? {
                    Some((item, used)) => {
                        items.push(item);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Resp::Array(items), pos)))
        }
        _ => Err(format!("not a RESP reply: {:?}", show(&buf[..eol]))),
    }
}

/// A parsed reply for a message.
fn show_resp(reply: &Resp) -> String {
    match reply {
        Resp::Simple(s) => format!("+{}", show(s)),
        Resp::Error(e) => format!("-{}", show(e)),
        Resp::Int(n) => format!(":{n}"),
        Resp::Bulk(None) => "(nil)".into(),
        Resp::Bulk(Some(bytes)) => format!("\"{}\"", show(bytes)),
        Resp::Array(items) => {
            let items: Vec<String> = items.iter().map(show_resp).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// `text` cut to about `max` characters, saying how long it was.
fn clip(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} characters in all)", &text[..end], text.len())
}

/// Bytes for a message: printable ASCII as is, the rest escaped.
fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// A command as a line one can paste into `nc`.
fn show_args(args: &[Bytes]) -> String {
    let quoted: Vec<Bytes> = args.iter().map(|a| quote(a)).collect();
    String::from_utf8_lossy(&quoted.join(&b' ')).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

/// A client connection with its own read buffer.
struct Conn {
    stream: TcpStream,
    buf: Bytes,
}

impl Conn {
    fn open(server: &Server) -> Conn {
        let client = server.connect();
        client
            .stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        Conn {
            stream: client.stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("send failed: {e}"))
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            return match self.stream.read(&mut chunk) {
                Ok(0) => Err("the server closed the connection".into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    Ok(())
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(format!("no complete reply within {READ_TIMEOUT:?} ({e})")),
            };
        }
    }

    /// Exactly `n` bytes; on failure, the reason and what did arrive.
    fn take(&mut self, n: usize) -> Result<Bytes, (String, Bytes)> {
        while self.buf.len() < n {
            if let Err(e) = self.fill() {
                return Err((e, std::mem::take(&mut self.buf)));
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Bytes up to and including the next `eol`; on failure, the reason and what did arrive.
    fn take_line(&mut self, eol: &[u8]) -> Result<Bytes, (String, Bytes)> {
        loop {
            if let Some(at) = self.buf.windows(eol.len()).position(|w| w == eol) {
                let rest = self.buf.split_off(at + eol.len());
                return Ok(std::mem::replace(&mut self.buf, rest));
            }
            if let Err(e) = self.fill() {
                return Err((e, std::mem::take(&mut self.buf)));
            }
        }
    }

    /// Whatever else arrives within a short while (to show more of a wrong reply).
    fn linger(&mut self) -> Bytes {
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(200)));
        while self.fill().is_ok() && self.buf.len() < 4096 {}
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        std::mem::take(&mut self.buf)
    }

    fn read_resp(&mut self) -> Result<Resp, String> {
        loop {
            if let Some((reply, used)) = parse_resp(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            self.fill()
                .map_err(|e| format!("{e}; got {:?}", show(&self.buf)))?;
        }
    }

    /// The server closes the connection without sending anything more.
    fn expect_closed(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!("unexpected bytes {:?}", show(&self.buf)));
        }
        let mut chunk = [0u8; 256];
        loop {
            return match self.stream.read(&mut chunk) {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!(
                    "expected the connection to close, got {:?}",
                    show(&chunk[..n])
                )),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(format!("expected the connection to close: {e}")),
            };
        }
    }

    /// Bytes up to and including the first `needle`.
    fn read_until(&mut self, needle: &[u8]) -> Result<Bytes, String> {
        loop {
            if let Some(at) = self.buf.windows(needle.len()).position(|w| w == needle) {
                let rest = self.buf.split_off(at + needle.len());
                return Ok(std::mem::replace(&mut self.buf, rest));
            }
            self.fill()
                .map_err(|e| format!("{e}; got {:?}", show(&self.buf)))?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a sequence
// ---------------------------------------------------------------------------------------------

/// What survives kill -9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// No append-only log (or none that must be current): kill -9 keeps what the last snapshot
    /// wrote (a SAVE, or the final snapshot of a clean stop).
    Snapshots,
    /// An append-only log with `appendfsync always`: every acknowledged write survives.
    EveryWrite,
}

/// Connections each run keeps open; every step picks one.
const CLIENTS: usize = 3;

/// Weight (per the plan's step weights, about 1,000 in all) of a QUIT and reconnect.
const QUIT_WEIGHT: usize = 5;

/// Weight of a [`Run::fill`] step in every plan.
const FILL: usize = 8;

/// One test's recipe. Step kinds are chosen by weight.
struct Plan {
    test: &'static str,
    seeds: &'static [u64],
    steps: usize,
    flags: &'static [&'static str],
    durability: Durability,
    /// One command and its reply.
    single: usize,
    /// 2 to 24 commands in one buffer, written in pieces cut at random bytes, then every reply.
    batch: usize,
    /// A whole SCAN iteration in small steps, compared with the model as a set.
    scan_all: usize,
    /// The whole keyspace read back (KEYS *, MGET, DBSIZE) and compared with the model.
    check: usize,
    /// SIGTERM, exit 0, restart on the same directory: everything kept.
    clean_restart: usize,
    /// kill -9 and restart: what `durability` promises is kept, nothing else.
    kill: usize,
    /// One command over hundreds of keys outside the small key space.
    fill: usize,
    /// Whether SAVE is among the commands.
    save: bool,
    /// A key of its own given an expiry of a few milliseconds, then looked at once it has
    /// certainly expired (or the server restarted past it): see [`Run::short_expiry`].
    short: usize,
}

/// One request on the wire and the reply it must get.
struct Item {
    label: String,
    request: Bytes,
    expect: Vec<Tok>,
    dialect: Dialect,
    /// The command's sequence number (its time is recorded under it), if the model applied it.
    seq: Option<usize>,
}

struct Run<'p> {
    plan: &'p Plan,
    seed: u64,
    rng: Rng,
    model: Model,
    /// The data the snapshot file holds (what a restart after kill -9 loads).
    saved: Model,
    /// Where `saved` was taken, for messages.
    saved_at: String,
    dir: tempfile::TempDir,
    server: Server,
    /// Several clients; each step uses one, chosen at random.
    conns: Vec<Conn>,
    cur: usize,
    step: usize,
    history: VecDeque<String>,
    commands: usize,
    restarts: usize,
    /// When the server ran each command the model applied (see [`Times`]).
    times: Times,
    next_seq: usize,
    durations: Durations,
}

impl<'p> Run<'p> {
    fn new(plan: &'p Plan, seed: u64) -> Run<'p> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start_in(dir.path(), plan.flags);
        let conns = (0..CLIENTS).map(|_| Conn::open(&server)).collect();
        Run {
            plan,
            seed,
            rng: Rng(seed),
            model: Model::default(),
            saved: Model::default(),
            saved_at: "start (empty directory)".into(),
            dir,
            server,
            conns,
            cur: 0,
            step: 0,
            history: VecDeque::new(),
            commands: 0,
            restarts: 0,
            times: Times::new(),
            next_seq: 0,
            durations: Durations::default(),
        }
    }

    fn execute(&mut self, steps: usize) -> Result<(), String> {
        let p = self.plan;
        let weights = [
            p.single,
            p.batch,
            p.scan_all,
            p.check,
            p.clean_restart,
            p.kill,
            p.fill,
            QUIT_WEIGHT,
            p.short,
        ];
        let total: usize = weights.iter().sum();
        for step in 0..steps {
            self.step = step;
            self.cur = self.rng.below(self.conns.len());
            let mut roll = self.rng.below(total);
            let mut kind = 0;
            while roll >= weights[kind] {
                roll -= weights[kind];
                kind += 1;
            }
            match kind {
                0 => {
                    let item = self.item();
                    self.exchange(vec![item], false)?;
                }
                1 => {
                    let n = 2 + self.rng.below(23);
                    let items = (0..n).map(|_| self.item()).collect();
                    self.exchange(items, true)?;
                }
                2 => self.scan_all()?,
                3 => self.check_data("periodic check")?,
                4 => self.restart(false)?,
                5 => self.restart(true)?,
                6 => self.fill()?,
                7 => self.quit()?,
                _ => self.short_expiry()?,
            }
        }
        self.step = steps;
        self.check_data("end of the run")?;
        // Nothing left over on the connection: PING's reply is the next thing that arrives.
        let ping = Item {
            label: "[resp] PING (end of the run)".into(),
            request: resp_request(&[b"PING".to_vec()]),
            expect: vec![Tok::Fixed(b"+PONG\r\n".to_vec())],
            dialect: Dialect::Resp,
            seq: None,
        };
        self.exchange(vec![ping], false)
    }

    /// The next request: a random command in a random dialect, applied to the model; now and then
    /// a text line with unbalanced quotes.
    fn item(&mut self) -> Item {
        self.commands += 1;
        if self.rng.percent(1) {
            let line = self.rng.pick(&[
                &b"SET k \"abc\r\n"[..],
                b"GET 'x\n",
                b"ECHO \"a\"b\r\n",
                b"SET \"k\\\" v\n",
            ]);
            return Item {
                label: format!("[text, bad quoting] {}", show(line)),
                request: line.to_vec(),
                expect: vec![Tok::Fixed(
                    b"(error) ERR Protocol error: unbalanced quotes in request\n".to_vec(),
                )],
                dialect: Dialect::Text,
                seq: None,
            };
        }
        let args = command(&mut self.rng, self.plan.save, &mut self.durations);
        self.item_for(args)
    }

    /// The item for `args`, in a random dialect; the model applies it.
    fn item_for(&mut self, args: Vec<Bytes>) -> Item {
        let mut dialect = if self.rng.percent(50) {
            Dialect::Resp
        } else {
            Dialect::Text
        };
        let mut request = Vec::new();
        if dialect == Dialect::Text {
            request = text_request(&mut self.rng, &args);
            if request.len() > MAX_TEXT_LINE {
                dialect = Dialect::Resp;
            }
        }
        if dialect == Dialect::Resp {
            request = resp_request(&args);
        }
        if self.rng.percent(2) {
            // Empty lines between requests are ignored.
            request.splice(0..0, b"\r\n".iter().copied());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let generated = unix_ms();
        self.times
            .insert(seq, (generated, generated.saturating_add(LAG_MS)));
        let now = Now {
            seq,
            ms: generated,
            times: &self.times,
        };
        let expect = self.model.apply(&args, &now);
        if args[0].eq_ignore_ascii_case(b"SAVE") && self.plan.durability == Durability::Snapshots {
            self.saved = self.model.clone();
            self.saved_at = format!("the SAVE at step {}", self.step);
        }
        let label = format!(
            "[{}] {}",
            if dialect == Dialect::Resp {
                "resp"
            } else {
                "text"
            },
            clip(show_args(&args), 300)
        );
        Item {
            label,
            request,
            expect: tokens(&expect, dialect),
            dialect,
            seq: Some(seq),
        }
    }

    /// One command over many keys outside the small key space (MSET of up to 400 pairs, or DEL,
    /// EXISTS, MGET of as many keys), so the keyspace is sometimes wide: KEYS and SCAN pages of
    /// hundreds of keys (three-digit human numbering), scans over many shards, snapshots and
    /// restarts of more data.
    fn fill(&mut self) -> Result<(), String> {
        let n = self.rng.between(50, 400) as usize;
        let rng = &mut self.rng;
        let wide_key = |rng: &mut Rng| {
            let sep = if rng.percent(90) { ":" } else { " " };
            format!("w{sep}{}", rng.below(1000)).into_bytes()
        };
        let args = if rng.percent(70) {
            let mut args = vec![cased("MSET", rng)];
            for _ in 0..n {
                args.push(wide_key(rng));
                args.push(if rng.percent(50) {
                    int_text(rng)
                } else {
                    let len = rng.between(0, 10) as usize;
                    random_bytes(rng, len)
                });
            }
            args
        } else {
            let command = rng.pick(&["DEL", "UNLINK", "EXISTS", "MGET"]);
            let mut args = vec![cased(command, rng)];
            args.extend((0..n).map(|_| wide_key(rng)));
            args
        };
        self.commands += 1;
        let item = self.item_for(args);
        let split = self.rng.percent(50);
        self.exchange(vec![item], split)
    }

    /// Sends the items' requests as one buffer (in random pieces when `split`), then checks
    /// every reply in order.
    fn exchange(&mut self, items: Vec<Item>, split: bool) -> Result<(), String> {
        let all: Bytes = items.iter().flat_map(|i| i.request.clone()).collect();
        for (i, item) in items.iter().enumerate() {
            self.note(format!("step {}.{i}: {}", self.step, item.label));
        }
        // The server runs each command after this and before its reply arrives.
        let sent = unix_ms();
        if split && all.len() > 1 {
            let mut cuts: Vec<usize> = (0..1 + self.rng.below(6))
                .map(|_| 1 + self.rng.below(all.len() - 1))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut from = 0;
            for cut in cuts.into_iter().chain([all.len()]) {
                self.conns[self.cur]
                    .send(&all[from..cut])
                    .map_err(|e| self.fail(&e))?;
                if self.rng.percent(10) {
                    std::thread::sleep(Duration::from_micros(300));
                }
                from = cut;
            }
        } else {
            self.conns[self.cur].send(&all).map_err(|e| self.fail(&e))?;
        }
        for (i, item) in items.iter().enumerate() {
            let place = if items.len() > 1 {
                format!(" (command {} of a batch of {})", i + 1, items.len())
            } else {
                String::new()
            };
            let int = match item.expect.as_slice() {
                [Tok::Int(spec)] => Some(*spec),
                _ => None,
            };
            let got = match (int, item.dialect) {
                (Some(_), Dialect::Resp) => self.conns[self.cur].take_line(b"\r\n"),
                (Some(_), Dialect::Text) => self.conns[self.cur].take_line(b"\n"),
                (None, _) => self.conns[self.cur].take(tokens_len(&item.expect)),
            };
            if let Some(seq) = item.seq {
                self.times.insert(seq, (sent, unix_ms()));
            }
            let range = int.map(|spec| spec.range(&self.times));
            let expected = match (int, range) {
                (Some(spec), Some((lo, hi))) => {
                    format!("an integer in {lo}..={hi} ({spec:?})").into_bytes()
                }
                _ => tokens_bytes(&item.expect),
            };
            let matches = |got: &[u8]| match range {
                Some((lo, hi)) => int_reply(item.dialect, got).is_some_and(|n| lo <= n && n <= hi),
                None => tokens_match(&item.expect, got),
            };
            let mismatch = |why: &str, got: &[u8], more: &[u8]| {
                format!(
                    "{why}{place}\n  command:  {}\n  request:  {}\n  expected: {}\n  got:      \
                     {}\n  then:     {}",
                    item.label,
                    clip(show(&item.request), 3000),
                    clip(show(&expected), 3000),
                    clip(show(got), 3000),
                    clip(show(more), 1000)
                )
            };
            match got {
                Ok(got) if matches(&got) => {}
                Ok(got) => {
                    let more = self.conns[self.cur].linger();
                    return Err(self.fail(&mismatch("wrong reply", &got, &more)));
                }
                Err((why, got)) => {
                    let log = self.stop_for_log();
                    return Err(self.fail(&format!("{}{log}", mismatch(&why, &got, b""))));
                }
            }
        }
        Ok(())
    }

    /// A full SCAN in small steps, in one dialect: every key the model holds that matches is
    /// returned exactly once, nothing else, and cursors only go forward.
    fn scan_all(&mut self) -> Result<(), String> {
        let count = self.rng.between(1, 8).to_string().into_bytes();
        let glob = self.rng.percent(40).then(|| pattern(&mut self.rng));
        let dialect = if self.rng.percent(50) {
            Dialect::Resp
        } else {
            Dialect::Text
        };
        let mut cursor: u64 = 0;
        let mut seen: Vec<Bytes> = Vec::new();
        // Each call but the last sees at least one key (perhaps an expired one not reclaimed
        // yet), so more calls than keys mean a loop.
        let most = self.model.entries() + 1;
        for page in 0.. {
            if page > most {
                return Err(self.fail(&format!(
                    "SCAN did not finish within {most} calls over {} keys",
                    self.model.data.len()
                )));
            }
            let mut args = vec![
                b"SCAN".to_vec(),
                cursor.to_string().into_bytes(),
                b"COUNT".to_vec(),
                count.clone(),
            ];
            if let Some(p) = &glob {
                args.extend([b"MATCH".to_vec(), p.clone()]);
            }
            let label = format!(
                "step {} [{dialect:?} scan page {page}] {}",
                self.step,
                show_args(&args)
            );
            self.note(label.clone());
            let (next, keys) = match dialect {
                Dialect::Resp => self.scan_page_resp(&args),
                Dialect::Text => self.scan_page_text(&args),
            }
            .map_err(|e| self.fail(&format!("{e}\n  command: {label}")))?;
            seen.extend(keys);
            if next != 0 && next <= cursor {
                return Err(self.fail(&format!(
                    "SCAN cursor went from {cursor} to {next}; a cursor is a shard number that \
                     only grows\n  command: {label}"
                )));
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut expected: Vec<Bytes> = match &glob {
            Some(p) => self.model.matching(p),
            None => self.model.data.keys().cloned().collect(),
        }
        .iter()
        .map(|k| quote(k))
        .collect();
        expected.sort();
        seen.sort();
        if seen != expected {
            let missing: Vec<String> = expected
                .iter()
                .filter(|k| !seen.contains(k))
                .map(|k| show(k))
                .collect();
            let mut extra = seen.clone();
            for k in &expected {
                if let Some(i) = extra.iter().position(|e| e == k) {
                    extra.remove(i);
                }
            }
            let extra: Vec<String> = extra.iter().map(|k| show(k)).collect();
            return Err(self.fail(&format!(
                "a full SCAN (COUNT {}, MATCH {}) differs from the model: missing {missing:?}, \
                 extra or repeated {extra:?}",
                show(&count),
                glob.as_deref().map_or("none".into(), show)
            )));
        }
        Ok(())
    }

    /// One SCAN page over RESP: the next cursor and the keys (in their human-quoted form, so
    /// both dialects compare alike).
    fn scan_page_resp(&mut self, args: &[Bytes]) -> Result<(u64, Vec<Bytes>), String> {
        self.conns[self.cur].send(&resp_request(args))?;
        let reply = self.conns[self.cur].read_resp()?;
        let bad = || format!("not a SCAN page: {}", show_resp(&reply));
        let Resp::Array(parts) = &reply else {
            return Err(bad());
        };
        let [Resp::Bulk(Some(cursor)), Resp::Array(keys)] = parts.as_slice() else {
            return Err(bad());
        };
        let cursor = std::str::from_utf8(cursor)
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        let keys = keys
            .iter()
            .map(|k| match k {
                Resp::Bulk(Some(key)) => Ok(quote(key)),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?;
        Ok((cursor, keys))
    }

    /// One SCAN page as a text line. The human format does not say where an array ends, so a
    /// PING follows in the same write and its `PONG` line marks the end; every line's numbering
    /// and indentation is checked.
    fn scan_page_text(&mut self, args: &[Bytes]) -> Result<(u64, Vec<Bytes>), String> {
        let mut request = text_request(&mut self.rng, args);
        request.extend_from_slice(b"PING\r\n");
        self.conns[self.cur].send(&request)?;
        let text = self.conns[self.cur].read_until(b"\nPONG\n")?;
        let body = &text[..text.len() - b"PONG\n".len()];
        let lines: Vec<&[u8]> = body
            .strip_suffix(b"\n")
            .unwrap_or(body)
            .split(|&b| b == b'\n')
            .collect();
        let bad = || format!("not a SCAN page: {:?}", show(body));
        let cursor = lines
            .first()
            .and_then(|l| l.strip_prefix(b"1) "))
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        if lines.get(1) == Some(&&b"2) (empty array)"[..]) && lines.len() == 2 {
            return Ok((cursor, Vec::new()));
        }
        let n = lines.len().saturating_sub(1);
        let width = n.to_string().len();
        let mut keys = Vec::new();
        for (j, line) in lines.iter().skip(1).enumerate() {
            let mut prefix = if j == 0 {
                b"2) ".to_vec()
            } else {
                b"   ".to_vec()
            };
            prefix.extend_from_slice(format!("{:>width$}) ", j + 1).as_bytes());
            let key = line.strip_prefix(prefix.as_slice()).ok_or_else(bad)?;
            keys.push(key.to_vec());
        }
        if keys.is_empty() {
            return Err(bad());
        }
        Ok((cursor, keys))
    }

    /// Reads the whole keyspace back over RESP (KEYS *, then MGET of the model's keys, then
    /// DBSIZE) and compares it with the model.
    fn check_data(&mut self, why: &str) -> Result<(), String> {
        self.note(format!("step {}: data check ({why})", self.step));
        let keys = self.read_back(&[b"KEYS".to_vec(), b"*".to_vec()])?;
        let Resp::Array(keys) = keys else {
            return Err(self.fail(&format!("{why}: KEYS * gave {}", show_resp(&keys))));
        };
        let mut got: Vec<Bytes> = Vec::new();
        for key in keys {
            match key {
                Resp::Bulk(Some(key)) => got.push(key),
                other => {
                    return Err(self.fail(&format!("{why}: KEYS * held {}", show_resp(&other))))
                }
            }
        }
        got.sort();
        let want: Vec<Bytes> = self.model.data.keys().cloned().collect();
        if got != want {
            let missing: Vec<String> = want
                .iter()
                .filter(|k| got.binary_search(k).is_err())
                .map(|k| show(k))
                .collect();
            let extra: Vec<String> = got
                .iter()
                .filter(|k| want.binary_search(k).is_err())
                .map(|k| show(k))
                .collect();
            return Err(self.fail(&format!(
                "{why}: the server's keys differ from the model's ({} against {}): missing \
                 {missing:?}, extra {extra:?} (the model is as of {})",
                got.len(),
                want.len(),
                self.saved_at
            )));
        }
        if !want.is_empty() {
            let mut mget = vec![b"MGET".to_vec()];
            mget.extend(want.iter().cloned());
            let values = self.read_back(&mget)?;
            let expected = Resp::Array(
                self.model
                    .data
                    .values()
                    .map(|v| Resp::Bulk(Some(v.clone())))
                    .collect(),
            );
            if values != expected {
                let Resp::Array(values) = values else {
                    return Err(self.fail(&format!("{why}: MGET gave {}", show_resp(&values))));
                };
                let diffs: Vec<String> = self
                    .model
                    .data
                    .iter()
                    .zip(&values)
                    .filter(|((_, v), got)| **got != Resp::Bulk(Some((*v).clone())))
                    .map(|((k, v), got)| {
                        format!(
                            "{}: model \"{}\", server {}",
                            show(k),
                            show(v),
                            show_resp(got)
                        )
                    })
                    .collect();
                return Err(self.fail(&format!(
                    "{why}: values differ from the model (as of {}):\n    {}",
                    self.saved_at,
                    diffs.join("\n    ")
                )));
            }
        }
        self.check_expiry_times(why, &want)?;
        let size = self.read_back(&[b"DBSIZE".to_vec()])?;
        let now = unix_ms();
        self.model.ghosts.retain(|&t| now - t < GHOST_MS);
        let (lo, hi) = (want.len(), self.model.entries());
        if !matches!(size, Resp::Int(n) if lo as i64 <= n && n <= hi as i64) {
            return Err(self.fail(&format!(
                "{why}: DBSIZE gave {}, the model holds {lo} keys (and {} expired ones may not \
                 be reclaimed yet)",
                show_resp(&size),
                hi - lo
            )));
        }
        Ok(())
    }

    /// PEXPIRETIME of every key, pipelined, against the model: -1 without an expiry time, else
    /// the exact time, or for a relative one set since the last check, a time within the bounds
    /// of when its command ran, which from then on is known exactly.
    fn check_expiry_times(&mut self, why: &str, keys: &[Bytes]) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        let request: Bytes = keys
            .iter()
            .flat_map(|k| resp_request(&[b"PEXPIRETIME".to_vec(), k.clone()]))
            .collect();
        self.conns[self.cur]
            .send(&request)
            .map_err(|e| self.fail(&e))?;
        let mut wrong = Vec::new();
        for key in keys {
            let reply = self.conns[self.cur]
                .read_resp()
                .map_err(|e| self.fail(&format!("{why}: no reply to PEXPIRETIME: {e}")))?;
            let expiry = self.model.expires.get(key).copied();
            let (lo, hi) = expiry.map_or((-1, -1), |e| e.bounds(&self.times));
            match (reply, expiry) {
                (Resp::Int(at), Some(Expiry::After { seq, ms })) if lo <= at && at <= hi => {
                    self.times.insert(seq, (at - ms, at - ms));
                }
                (Resp::Int(at), _) if lo <= at && at <= hi => {}
                (reply, _) => wrong.push(format!(
                    "{}: model {expiry:?} ({lo}..={hi}), server {}",
                    show(key),
                    show_resp(&reply)
                )),
            }
        }
        if !wrong.is_empty() {
            return Err(self.fail(&format!(
                "{why}: expiry times differ from the model (as of {}):\n    {}",
                self.saved_at,
                wrong.join("\n    ")
            )));
        }
        Ok(())
    }

    fn read_back(&mut self, args: &[Bytes]) -> Result<Resp, String> {
        self.conns[self.cur]
            .send(&resp_request(args))
            .map_err(|e| self.fail(&e))?;
        self.conns[self.cur].read_resp().map_err(|e| {
            self.fail(&format!(
                "no reply to {}: {e}",
                show_args(&args[..args.len().min(3)])
            ))
        })
    }

    /// Stops the server, cleanly or abruptly, starts it again on the same directory and checks
    /// it holds what must have survived: everything after a clean stop; after an abrupt one, what
    /// the plan's durability promises.
    fn restart(&mut self, abrupt: bool) -> Result<(), String> {
        self.restart_after(abrupt, None)
    }

    /// [`Run::restart`], starting the server again only once the clock is past `not_before`
    /// (Unix ms) when given. Expired keys are dropped at start, so none is left to reclaim.
    fn restart_after(&mut self, abrupt: bool, not_before: Option<i64>) -> Result<(), String> {
        self.restarts += 1;
        let mut survivors = match (abrupt, self.plan.durability) {
            (true, Durability::Snapshots) => self.saved.clone(),
            _ => self.model.clone(),
        };
        survivors.ghosts.clear();
        let how = self.stop(abrupt)?;
        if !abrupt {
            self.saved_at = format!("the {how} at step {}", self.step);
        }
        if let Some(at) = not_before {
            sleep_past(at);
        }
        self.server = Server::start_in(self.dir.path(), self.plan.flags);
        self.conns = (0..CLIENTS).map(|_| Conn::open(&self.server)).collect();
        self.model = survivors.clone();
        self.saved = survivors;
        self.check_data(&format!("restart after {how}"))
    }

    /// Stops the server: cleanly (SIGTERM, SIGINT, SHUTDOWN, SHUTDOWN SAVE: exit 0 after the
    /// final snapshot), or abruptly (kill -9, or SHUTDOWN NOSAVE, which skips the final
    /// snapshot). Returns how.
    fn stop(&mut self, abrupt: bool) -> Result<&'static str, String> {
        let how = match (abrupt, self.rng.below(100)) {
            (false, 0..=49) => "SIGTERM",
            (false, 50..=69) => "SIGINT",
            (false, 70..=84) => "SHUTDOWN",
            (false, _) => "SHUTDOWN SAVE",
            (true, 0..=79) => "kill -9",
            (true, _) => "SHUTDOWN NOSAVE",
        };
        self.note(format!("step {}: restart after {how}", self.step));
        match how {
            "SIGTERM" => self.server.signal("TERM"),
            "SIGINT" => self.server.signal("INT"),
            "kill -9" => self.server.signal("KILL"),
            _ => {
                // A successful SHUTDOWN answers nothing: the connection just closes.
                let args: Vec<Bytes> = how.split(' ').map(|w| cased(w, &mut self.rng)).collect();
                let request = if self.rng.percent(50) {
                    resp_request(&args)
                } else {
                    text_request(&mut self.rng, &args)
                };
                let conn = &mut self.conns[self.cur];
                conn.send(&request)
                    .and_then(|()| conn.expect_closed())
                    .map_err(|e| self.fail(&format!("{how}: {e}")))?;
            }
        }
        let status = self.server.wait_exit();
        if how != "kill -9" && !status.success() {
            return Err(self.fail(&format!(
                "after {how} the server exited with {status}; log:\n{}",
                self.server.log_lines.join("\n")
            )));
        }
        Ok(how)
    }

    /// A key of its own (`t:0`...) set to expire in 1 to 50 ms by one of the ways there are
    /// (SET PX or PXAT, PSETEX, PEXPIRE, PEXPIREAT, GETEX PX), over RESP. Those replies are
    /// exact; a GET and a PTTL sent right behind may find the key or not (its value or nil; a
    /// PTTL within the time set, or -2); now and then a SAVE writes it to the snapshot. Then,
    /// once the clock is past its time, either one command about it that must find it gone (the
    /// model never holds these keys; DBSIZE may count it until reclaimed), or a restart
    /// started only then, after which it must be gone too (dropped at start, whether it came from
    /// the snapshot or the log). No other step runs while the key's fate is open, so the model
    /// stays exact.
    fn short_expiry(&mut self) -> Result<(), String> {
        let key = self.rng.pick(SHORT_KEYS).to_vec();
        let d = self.rng.between(1, 50);
        let len = self.rng.between(1, 8) as usize;
        let value = random_bytes(&mut self.rng, len);
        let ms = d.to_string().into_bytes();
        let at = (unix_ms() + d).to_string().into_bytes();
        let word = |w: &str| w.as_bytes().to_vec();
        let ok = Some(Resp::Simple(b"OK".to_vec()));
        let set = (vec![word("SET"), key.clone(), value.clone()], ok.clone());
        let mut plan: Vec<(Vec<Bytes>, Option<Resp>)> = match self.rng.below(6) {
            0 => vec![(
                vec![word("SET"), key.clone(), value.clone(), word("PX"), ms],
                ok.clone(),
            )],
            1 => vec![(
                vec![word("PSETEX"), key.clone(), ms, value.clone()],
                ok.clone(),
            )],
            2 => vec![(
                vec![word("SET"), key.clone(), value.clone(), word("PXAT"), at],
                ok.clone(),
            )],
            3 => vec![
                set,
                (vec![word("PEXPIRE"), key.clone(), ms], Some(Resp::Int(1))),
            ],
            // Set or, if its time already came, deleted: 1 either way.
            4 => vec![
                set,
                (vec![word("PEXPIREAT"), key.clone(), at], Some(Resp::Int(1))),
            ],
            _ => vec![
                set,
                (
                    vec![word("GETEX"), key.clone(), word("PX"), ms],
                    Some(Resp::Bulk(Some(value.clone()))),
                ),
            ],
        };
        if self.rng.percent(40) {
            plan.push((vec![word("GET"), key.clone()], None));
            plan.push((vec![word("PTTL"), key.clone()], None));
        }
        let save = self.plan.save && self.rng.percent(25);
        if save {
            plan.push((vec![word("SAVE")], ok));
        }
        for (args, _) in &plan {
            self.note(format!(
                "step {} [resp, short expiry] {}",
                self.step,
                show_args(args)
            ));
        }
        let request: Bytes = plan
            .iter()
            .flat_map(|(args, _)| resp_request(args))
            .collect();
        self.conns[self.cur]
            .send(&request)
            .map_err(|e| self.fail(&e))?;
        for (args, expected) in &plan {
            let reply = self.conns[self.cur]
                .read_resp()
                .map_err(|e| self.fail(&format!("no reply to {}: {e}", show_args(args))))?;
            let fine = match expected {
                Some(expected) => reply == *expected,
                None if args[0] == b"GET" => {
                    reply == Resp::Bulk(Some(value.clone())) || reply == Resp::Bulk(None)
                }
                None => matches!(reply, Resp::Int(n) if n == -2 || (0..=d).contains(&n)),
            };
            if !fine {
                return Err(self.fail(&format!(
                    "wrong reply to {} (a key expiring in {d} ms): expected {}, got {}",
                    show_args(args),
                    expected
                        .as_ref()
                        .map_or("either a live or a gone key's reply".into(), show_resp),
                    show_resp(&reply)
                )));
            }
        }
        // Every reply is in, so the server set the key's time before now: it is past after this.
        let deadline = unix_ms() + d;
        if save && self.plan.durability == Durability::Snapshots {
            self.saved = self.model.clone();
            self.saved_at = format!("the SAVE at step {}", self.step);
        }
        if self.plan.kill + self.plan.clean_restart > 0 && self.rng.percent(30) {
            let abrupt =
                self.plan.kill > 0 && (self.plan.clean_restart == 0 || self.rng.percent(60));
            return self.restart_after(abrupt, Some(deadline));
        }
        sleep_past(deadline);
        self.model.ghosts.push(unix_ms());
        let mut args = match self.rng.below(16) {
            0 => vec![cased("SET", &mut self.rng), key, value, b"XX".to_vec()],
            1 => vec![cased("EXPIRE", &mut self.rng), key, b"100".to_vec()],
            2 => vec![cased("RENAME", &mut self.rng), key, b"k1".to_vec()],
            _ => {
                let name = self.rng.pick(&[
                    "GET",
                    "PTTL",
                    "TTL",
                    "EXISTS",
                    "EXPIRETIME",
                    "PEXPIRETIME",
                    "STRLEN",
                    "GETEX",
                    "PERSIST",
                    "TYPE",
                    "GETDEL",
                    "DEL",
                    "MGET",
                ]);
                vec![cased(name, &mut self.rng), key]
            }
        };
        if self.rng.percent(10) {
            args[0] = cased("GETRANGE", &mut self.rng);
            args.truncate(2);
            args.extend([b"0".to_vec(), b"-1".to_vec()]);
        }
        self.commands += 1;
        let item = self.item_for(args);
        self.exchange(vec![item], false)
    }

    /// QUIT on the current connection: `OK`, then the server closes it; a new one replaces it.
    fn quit(&mut self) -> Result<(), String> {
        let text = self.rng.percent(50);
        let label = format!(
            "step {}: QUIT ({})",
            self.step,
            if text { "text" } else { "resp" }
        );
        self.note(label);
        let args = [cased("QUIT", &mut self.rng)];
        let (request, reply): (Bytes, &[u8]) = if text {
            (text_request(&mut self.rng, &args), b"OK\n")
        } else {
            (resp_request(&args), b"+OK\r\n")
        };
        let conn = &mut self.conns[self.cur];
        let result = conn
            .send(&request)
            .and_then(|()| match conn.take(reply.len()) {
                Ok(got) if got == reply => conn.expect_closed(),
                Ok(got) => Err(format!("QUIT got {:?}", show(&got))),
                Err((why, got)) => Err(format!("QUIT: {why}; got {:?}", show(&got))),
            });
        result.map_err(|e| self.fail(&e))?;
        self.conns[self.cur] = Conn::open(&self.server);
        Ok(())
    }

    /// Stops a server that stopped answering (SIGTERM, then kill -9) and returns the end of its
    /// log for the failure message.
    fn stop_for_log(&mut self) -> String {
        self.server.signal("TERM");
        if self.server.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_secs(3));
            let _ = self.server.child.kill();
        }
        let status = self.server.wait_exit();
        let log = &self.server.log_lines;
        let tail = &log[log.len().saturating_sub(15)..];
        format!(
            "\n  server (stopped with SIGTERM: {status}) log, last lines:\n    {}",
            tail.join("\n    ")
        )
    }

    fn note(&mut self, line: String) {
        if self.history.len() == 12 {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }

    /// The failure message: where, what, the commands before it, and how to replay.
    fn fail(&self, detail: &str) -> String {
        format!(
            "MODEL MISMATCH in {test}, seed {seed}, step {step}: {detail}\n  last commands \
             (oldest first):\n    {history}\n  replay: POCKETKV_SEED={seed} cargo test --test \
             model {test}",
            test = self.plan.test,
            seed = self.seed,
            step = self.step,
            history = self
                .history
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n    "),
        )
    }
}

/// Keys only [`Run::short_expiry`] uses (the generator's keys never look like these).
const SHORT_KEYS: &[&[u8]] = &[b"t:0", b"t:1", b"t:2"];

/// Sleeps until the clock reads later than `at` (Unix ms).
fn sleep_past(at: i64) {
    loop {
        let now = unix_ms();
        if now > at {
            return;
        }
        std::thread::sleep(Duration::from_millis((at - now + 1) as u64));
    }
}

/// Prints the seed if anything in a run panics (a harness timeout, a server that will not start).
struct SeedGuard<'a> {
    test: &'a str,
    seed: u64,
}

impl Drop for SeedGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{}: panicked with seed {}; replay: POCKETKV_SEED={} cargo test --test model {}",
                self.test, self.seed, self.seed, self.test
            );
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

fn seeds(plan: &Plan) -> Vec<u64> {
    if let Some(seed) = env_number("POCKETKV_SEED") {
        return vec![seed];
    }
    if let Some(n) = env_number("POCKETKV_MODEL_SEEDS") {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        let start = Rng(now ^ plan.test.len() as u64).next() % 1_000_000_000;
        return (start..start + n).collect();
    }
    plan.seeds.to_vec()
}

fn run_plan(plan: &Plan) {
    let steps = env_number("POCKETKV_MODEL_STEPS").map_or(plan.steps, |n| n as usize);
    let seeds = seeds(plan);
    let started = Instant::now();
    let (mut commands, mut restarts) = (0, 0);
    let mut failures = Vec::new();
    for &seed in &seeds {
        let _guard = SeedGuard {
            test: plan.test,
            seed,
        };
        let mut run = Run::new(plan, seed);
        let result = run.execute(steps);
        commands += run.commands;
        restarts += run.restarts;
        if let Err(message) = result {
            eprintln!("{message}\n");
            failures.push(message);
            if failures.len() == 5 {
                break;
            }
        }
    }
    eprintln!(
        "{}: {} seeds ({}..), {steps} steps each, {commands} commands, {restarts} restarts, in \
         {:.1?}",
        plan.test,
        seeds.len(),
        seeds.first().copied().unwrap_or_default(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failing seed(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn single_commands_in_both_dialects_match_the_model() {
    run_plan(&Plan {
        test: "single_commands_in_both_dialects_match_the_model",
        seeds: &[1, 2, 3],
        steps: 1500,
        flags: &["--save-interval", "0"],
        durability: Durability::Snapshots,
        single: 940,
        batch: 0,
        scan_all: 40,
        check: 20,
        clean_restart: 0,
        kill: 0,
        fill: FILL,
        save: false,
        short: 10,
    });
}

#[test]
fn pipelined_batches_split_at_random_bytes_match_the_model() {
    run_plan(&Plan {
        test: "pipelined_batches_split_at_random_bytes_match_the_model",
        seeds: &[11, 12, 13],
        steps: 400,
        flags: &["--save-interval", "0"],
        durability: Durability::Snapshots,
        single: 50,
        batch: 850,
        scan_all: 50,
        check: 50,
        clean_restart: 0,
        kill: 0,
        fill: FILL,
        save: true,
        short: 10,
    });
}

/// The snapshot timer runs every second here, so snapshots are taken while commands change the
/// shards they copy.
#[test]
fn clean_restarts_keep_every_write() {
    run_plan(&Plan {
        test: "clean_restarts_keep_every_write",
        seeds: &[21, 22, 23],
        steps: 600,
        flags: &["--save-interval", "1"],
        durability: Durability::Snapshots,
        single: 550,
        batch: 350,
        scan_all: 30,
        check: 30,
        clean_restart: 25,
        kill: 0,
        fill: FILL,
        save: true,
        short: 20,
    });
}

#[test]
fn kill_9_keeps_exactly_what_the_last_save_wrote() {
    run_plan(&Plan {
        test: "kill_9_keeps_exactly_what_the_last_save_wrote",
        seeds: &[31, 32, 33],
        steps: 600,
        flags: &["--save-interval", "0"],
        durability: Durability::Snapshots,
        single: 550,
        batch: 350,
        scan_all: 20,
        check: 20,
        clean_restart: 10,
        kill: 30,
        fill: FILL,
        save: true,
        short: 25,
    });
}

/// With the append-only log fsynced on every write, kill -9 loses nothing that was
/// acknowledged.
#[test]
fn kill_9_with_appendfsync_always_keeps_every_acknowledged_write() {
    run_plan(&Plan {
        test: "kill_9_with_appendfsync_always_keeps_every_acknowledged_write",
        seeds: &[41, 42, 43],
        steps: 500,
        flags: &[
            "--save-interval",
            "0",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
        durability: Durability::EveryWrite,
        single: 550,
        batch: 350,
        scan_all: 20,
        check: 20,
        clean_restart: 10,
        kill: 30,
        fill: FILL,
        save: true,
        short: 25,
    });
}

/// The log with `appendfsync everysec` and the snapshot timer every second, so snapshots (and
/// whatever they do to the log) happen while commands run: a clean stop still keeps everything.
#[test]
fn clean_restarts_with_the_append_only_log_keep_every_write() {
    run_plan(&Plan {
        test: "clean_restarts_with_the_append_only_log_keep_every_write",
        seeds: &[51, 52],
        steps: 600,
        flags: &[
            "--save-interval",
            "1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
        durability: Durability::Snapshots,
        single: 550,
        batch: 350,
        scan_all: 30,
        check: 40,
        clean_restart: 30,
        kill: 0,
        fill: FILL,
        save: true,
        short: 20,
    });
}

// ---------------------------------------------------------------------------------------------
// The model's own rules, checked without a server
// ---------------------------------------------------------------------------------------------

#[test]
fn model_helpers_follow_redis() {
    assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
    for bad in BAD_INTS {
        assert_eq!(parse_int(bad), None, "{}", show(bad));
    }
    assert_eq!(parse_cursor(b""), Some(0));
    assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
    assert_eq!(parse_cursor(b"+"), None);
    assert!(key_matches(b"*", b"") && key_matches(b"", b"") && !key_matches(b"**", b""));
    assert!(string_match(b"h[^e]llo", b"hallo") && !string_match(b"h[^e]llo", b"hello"));
    assert!(string_match(b"[abc", b"b") && string_match(b"[z-a]", b"m"));
    assert!(string_match(b"\\*", b"*") && !string_match(b"\\*", b"a"));
    assert!(string_match(b"[\\]x]", b"]") && string_match(b"a*b*c", b"aXbYc"));
    assert!(!string_match(b"[a-]", b"-") && string_match(b"[a-]", b"^"));
    assert_eq!(quote(b"a b"), b"\"a b\"");
    assert_eq!(quote(b"\xff\x00\"\\"), b"\"\\xff\\x00\\\"\\\\\"");
    // A nested array's human numbering and indentation.
    let page = Expect::Array(vec![
        Expect::Bulk(b"0".to_vec()),
        Expect::Array((1..=10).map(Expect::Int).collect()),
    ]);
    let text = tokens_bytes(&tokens(&page, Dialect::Text));
    assert!(
        text.starts_with(b"1) 0\n2)  1) (integer) 1\n    2) (integer) 2\n"),
        "{}",
        show(&text)
    );
    assert!(
        text.ends_with(b"\n   10) (integer) 10\n"),
        "{}",
        show(&text)
    );
    // Free order: any permutation matches, nothing else does.
    let keys = Expect::AnyOrder(vec![b"a".to_vec(), b"b c".to_vec(), b"".to_vec()]);
    let toks = tokens(&keys, Dialect::Text);
    assert!(tokens_match(&toks, b"1) \"\"\n2) a\n3) \"b c\"\n"));
    assert!(!tokens_match(&toks, b"1) \"\"\n2) a\n3) a\n"));
    let toks = tokens(&keys, Dialect::Resp);
    assert!(tokens_match(
        &toks,
        b"*3\r\n$3\r\nb c\r\n$0\r\n\r\n$1\r\na\r\n"
    ));
    // SET/GETEX options as Redis parses them.
    let options =
        |words: &[&str]| -> Vec<Bytes> { words.iter().map(|w| w.as_bytes().to_vec()).collect() };
    let parsed = parse_set_options(
        &options(&["ex", "10", "EX", "20", "GET", "nx", "NX"]),
        false,
    )
    .expect("repeats are fine");
    assert_eq!(parsed.expire, Some((TimeKind::Ex, b"20".to_vec())));
    assert!(parsed.nx && parsed.get && !parsed.xx);
    for bad in [
        &["EX", "10", "PX", "10"][..],
        &["KEEPTTL", "EX", "1"],
        &["PXAT", "1", "KEEPTTL"],
        &["NX", "XX"],
        &["EX"],
        &["PERSIST"],
    ] {
        assert_eq!(parse_set_options(&options(bad), false), None, "{bad:?}");
    }
    assert!(parse_set_options(&options(&["PERSIST", "PERSIST"]), true).is_some());
    for bad in [
        &["PERSIST", "EX", "1"][..],
        &["EX", "1", "PERSIST"],
        &["KEEPTTL"],
        &["GET"],
    ] {
        assert_eq!(parse_set_options(&options(bad), true), None, "{bad:?}");
    }
    // Rounding to seconds; ordering of time intervals.
    assert_eq!((round_s(1499), round_s(1500), round_s(0)), (1, 2, 0));
    assert!(later((10, 20), (1, 9)) && !later((1, 9), (10, 20)) && !later((5, 5), (5, 5)));
    // Relative durations are distinct and an hour apart.
    let mut durations = Durations::default();
    let mut seen: Vec<i64> = (0..DURATION_SLOTS).map(|_| durations.next_secs()).collect();
    seen.sort_unstable();
    assert!(seen.windows(2).all(|w| w[1] - w[0] == SPACING_S));
}
