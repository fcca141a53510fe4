//! String commands: GET, SET and friends, counters, ranges.

use super::compare::Condition;
use super::expiry::{already_expired, expire_at, Unit};
use super::long_double::Ext;
use super::{int_arg, wrong_arity, Arg, Ctx, Spec, NOT_INTEGER, SYNTAX, TOO_BIG};
use crate::protocol::{parse_i64, Reply};
use crate::pubsub::Events;

const G: &str = "string";

const SET_USAGE: &str =
    "key value [NX|XX|IFEQ v|IFNE v|IFDEQ digest|IFDNE digest] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]";

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("get", 2, get).read().keys(1, 1, 1).doc(G, "key", "the value of key, or nil"),
    Spec::new("set", -3, set).grows().keys(1, 1, 1).doc(G, SET_USAGE, "store value under key"),
    Spec::new("put", -3, set).grows().keys(1, 1, 1).doc(G, SET_USAGE, "same as SET"),
    Spec::new("setex", 4, setex).grows().keys(1, 1, 1).doc(G, "key seconds value", "SET with an expiry in seconds"),
    Spec::new("psetex", 4, psetex).grows().keys(1, 1, 1).doc(G, "key milliseconds value", "SET with an expiry in milliseconds"),
    Spec::new("getex", -2, getex).write().keys(1, 1, 1).doc(G, "key [EX s|PX ms|EXAT t|PXAT t|PERSIST]", "GET, setting or removing the expiry"),
    Spec::new("setnx", 3, setnx).grows().keys(1, 1, 1).doc(G, "key value", "SET only if key is missing; 1 if set"),
    Spec::new("getset", 3, getset).grows().keys(1, 1, 1).doc(G, "key value", "SET, returning the old value"),
    Spec::new("getdel", 2, getdel).write().keys(1, 1, 1).doc(G, "key", "GET, then delete key"),
    Spec::new("mget", -2, mget).read().keys(1, -1, 1).doc(G, "key [key ...]", "values of several keys"),
    Spec::new("mset", -3, mset).grows().keys(1, -1, 2).doc(G, "key value [key value ...]", "set several keys"),
    Spec::new("msetnx", -3, msetnx).grows().keys(1, -1, 2).doc(G, "key value [key value ...]", "MSET only if no key exists"),
    Spec::new("incr", 2, incr).grows().keys(1, 1, 1).doc(G, "key", "add 1 to an integer value"),
    Spec::new("decr", 2, decr).grows().keys(1, 1, 1).doc(G, "key", "subtract 1 from an integer value"),
    Spec::new("incrby", 3, incrby).grows().keys(1, 1, 1).doc(G, "key increment", "add to an integer value"),
    Spec::new("decrby", 3, decrby).grows().keys(1, 1, 1).doc(G, "key decrement", "subtract from an integer value"),
    Spec::new("incrbyfloat", 3, incrbyfloat).grows().keys(1, 1, 1).doc(G, "key increment", "add to a floating point value; the new value"),
    Spec::new("append", 3, append).grows().keys(1, 1, 1).doc(G, "key value", "append to a value; the new length"),
    Spec::new("strlen", 2, strlen).read().keys(1, 1, 1).doc(G, "key", "length of a value"),
    Spec::new("getrange", 4, getrange).read().keys(1, 1, 1).doc(G, "key start end", "part of a value (negative counts from the end)"),
    Spec::new("setrange", 4, setrange).grows().keys(1, 1, 1).doc(G, "key offset value", "overwrite part of a value"),
];

fn get<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("get");
    };
    ctx.read_lookup(key);
    Reply::from_option(ctx.db.get(key))
}

/// An expiry option of SET or GETEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeOption<'x> {
    unit: Unit,
    absolute: bool,
    arg: &'x [u8],
}

/// The options of SET and GETEX, parsed the way Redis parses both with one function: an option
/// that contradicts one already seen is a syntax error, repeating one is not.
#[derive(Debug, Default, PartialEq, Eq)]
struct SetOptions<'x> {
    only_if_missing: bool,
    only_if_present: bool,
    return_old: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<TimeOption<'x>>,
    /// IFEQ, IFNE, IFDEQ or IFDNE (Redis 8.4): none of them with NX or XX, nor with each other.
    condition: Option<Condition<'x>>,
}

impl<'x> SetOptions<'x> {
    /// Parses SET's options, or GETEX's when `getex`.
    fn parse(options: &'x [Arg<'_>], getex: bool) -> Result<Self, Reply<'static>> {
        let mut parsed = SetOptions::default();
        let mut i = 0;
        while let Some(option) = options.get(i) {
            let next = options.get(i + 1).map(|a| a.as_ref());
            let time = |unit, absolute| {
                let same = |t: TimeOption<'_>| t.unit == unit && t.absolute == absolute;
                let arg = next?;
                let free = !parsed.keep_ttl && !parsed.persist && parsed.expire.is_none_or(same);
                free.then_some(TimeOption {
                    unit,
                    absolute,
                    arg,
                })
            };
            let expire = match option.to_ascii_uppercase().as_slice() {
                b"NX" if !getex && !parsed.only_if_present && parsed.condition.is_none() => {
                    parsed.only_if_missing = true;
                    None
                }
                b"XX" if !getex && !parsed.only_if_missing && parsed.condition.is_none() => {
                    parsed.only_if_present = true;
                    None
                }
                b"GET" if !getex => {
                    parsed.return_old = true;
                    None
                }
                b"KEEPTTL" if !getex && parsed.expire.is_none() => {
                    parsed.keep_ttl = true;
                    None
                }
                b"PERSIST" if getex && parsed.expire.is_none() => {
                    parsed.persist = true;
                    None
                }
                b"EX" => Some(time(Unit::Seconds, false).ok_or(SYNTAX)?),
                b"PX" => Some(time(Unit::Millis, false).ok_or(SYNTAX)?),
                b"EXAT" => Some(time(Unit::Seconds, true).ok_or(SYNTAX)?),
                b"PXAT" => Some(time(Unit::Millis, true).ok_or(SYNTAX)?),
                token => {
                    // A condition may be repeated (the last one counts), as NX may.
                    let free = !getex && !parsed.only_if_missing && !parsed.only_if_present;
                    let condition = match next.and_then(|arg| Condition::parse(token, arg)) {
                        Some(Ok(c)) if free => c,
                        Some(Err(e)) if free => return Err(e),
                        _ => return Err(SYNTAX),
                    };
                    let kind = std::mem::discriminant(&condition);
                    if parsed
                        .condition
                        .is_some_and(|old| std::mem::discriminant(&old) != kind)
                    {
                        return Err(SYNTAX);
                    }
                    parsed.condition = Some(condition);
                    i += 1;
                    None
                }
            };
            if expire.is_some() {
                parsed.expire = expire;
                i += 1;
            }
            i += 1;
        }
        Ok(parsed)
    }

    /// The expiry time asked for, in Unix milliseconds; `command` names it in the error.
    fn expire_at(&self, ctx: &Ctx<'_>, command: &str) -> Result<Option<u64>, Reply<'static>> {
        self.expire
            .map(|t| expire_at(ctx, t.arg, t.unit, t.absolute, command))
            .transpose()
    }
}

/// The log form of a SET that wrote: the value and the absolute expiry time it ended with.
fn log_set(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], expires_at: Option<u64>) {
    match expires_at {
        Some(at) => ctx.log_as(&[
            &b"SET"[..],
            key,
            value,
            b"PXAT",
            itoa::Buffer::new().format(at).as_bytes(),
        ]),
        None => ctx.log_as(&[&b"SET"[..], key, value]),
    }
}

fn set<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [name, key, value, options @ ..] = args else {
        return wrong_arity("set");
    };
    if options.is_empty() {
        // The common case: no lookup before the write, and the request is its own log form.
        let new = ctx.creates(key);
        ctx.db.set(key, value);
        notify_write(ctx, new, "set", key);
        return Reply::OK;
    }
    let name = String::from_utf8_lossy(name).to_lowercase();
    let options = match SetOptions::parse(options, false) {
        Ok(options) => options,
        Err(e) => return e,
    };
    let mut expires_at = match options.expire_at(ctx, &name) {
        Ok(at) => at,
        Err(e) => return e,
    };
    if options.return_old {
        ctx.read_lookup(key); // Redis's GET option looks the key up before anything else.
    }
    let current = ctx.db.expires_at(key);
    let exists = current.is_some();
    let allowed = !(options.only_if_missing && exists || options.only_if_present && !exists)
        && options
            .condition
            .is_none_or(|condition| condition.holds(ctx.db.peek(key)));
    let old = options
        .return_old
        .then(|| ctx.db.get(key).map(<[u8]>::to_vec));
    if allowed {
        if options.keep_ttl {
            expires_at = current.flatten();
        }
        let new = ctx.creates(key);
        ctx.db.set_expiring(key, value, expires_at);
        log_set(ctx, key, value, expires_at);
        notify_write(ctx, new, "set", key);
        if options.expire.is_some() {
            ctx.notify(Events::GENERIC, "expire", key);
        }
    }
    match old {
        Some(old) => old.map_or(Reply::Nil, Reply::bulk_owned),
        None if allowed => Reply::OK,
        None => Reply::Nil,
    }
}

/// SETEX and PSETEX: SET with a relative expiry time, which must be positive.
fn set_expiring<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], unit: Unit, name: &str) -> Reply<'a> {
    let [_, key, time, value] = args else {
        return wrong_arity(name);
    };
    let at = match expire_at(ctx, time, unit, false, name) {
        Ok(at) => at,
        Err(e) => return e,
    };
    let new = ctx.creates(key);
    ctx.db.set_expiring(key, value, Some(at));
    log_set(ctx, key, value, Some(at));
    notify_write(ctx, new, "set", key);
    ctx.notify(Events::GENERIC, "expire", key);
    Reply::OK
}

/// Reports a string write: `new` first when it created the key (`created` from
/// [`Ctx::creates`] before the write), then the command's event.
fn notify_write(ctx: &mut Ctx<'_>, created: bool, event: &'static str, key: &[u8]) {
    if created {
        ctx.notify(Events::NEW, "new", key);
    }
    ctx.notify(Events::STRING, event, key);
}

fn setex<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    set_expiring(ctx, args, Unit::Seconds, "setex")
}

fn psetex<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    set_expiring(ctx, args, Unit::Millis, "psetex")
}

fn getex<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, options @ ..] = args else {
        return wrong_arity("getex");
    };
    let options = match SetOptions::parse(options, true) {
        Ok(options) => options,
        Err(e) => return e,
    };
    ctx.read_lookup(key);
    let Some(value) = ctx.db.get(key).map(<[u8]>::to_vec) else {
        return Reply::Nil;
    };
    let at = match options.expire_at(ctx, "getex") {
        Ok(at) => at,
        Err(e) => return e,
    };
    let absolute = options.expire.is_some_and(|t| t.absolute);
    match at {
        Some(at) if absolute && already_expired(ctx, i64::try_from(at).unwrap_or(i64::MAX)) => {
            ctx.db.remove(key);
            ctx.log_as(&[&b"DEL"[..], key]);
            ctx.notify(Events::GENERIC, "del", key);
        }
        Some(at) => {
            ctx.db.set_expiry(key, Some(at));
            ctx.notify(Events::GENERIC, "expire", key);
            let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
            ctx.log_as(&[&b"PEXPIREAT"[..], key, &at]);
        }
        None if options.persist && ctx.db.expires_at(key).flatten().is_some() => {
            ctx.db.set_expiry(key, None);
            ctx.notify(Events::GENERIC, "persist", key);
        }
        None => {}
    }
    Reply::bulk_owned(value)
}

fn setnx<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, value] = args else {
        return wrong_arity("setnx");
    };
    if ctx.db.contains(key) {
        return Reply::Integer(0);
    }
    ctx.db.set(key, value);
    notify_write(ctx, true, "set", key);
    Reply::Integer(1)
}

fn getset<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, value] = args else {
        return wrong_arity("getset");
    };
    ctx.read_lookup(key);
    let old = ctx.db.set_expiring(key, value, None);
    notify_write(ctx, old.is_none(), "set", key);
    old.map_or(Reply::Nil, |old| Reply::bulk_owned(old.value().to_vec()))
}

fn getdel<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("getdel");
    };
    ctx.read_lookup(key);
    let Some(old) = ctx.db.remove(key) else {
        return Reply::Nil;
    };
    ctx.notify(Events::GENERIC, "del", key);
    Reply::bulk_owned(old.value().to_vec())
}

fn mget<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, keys @ ..] = args else {
        return wrong_arity("mget");
    };
    // Count hits and misses first; then borrow every value at once for the reply.
    for key in keys {
        ctx.read_lookup(key);
        ctx.db.get(key);
    }
    let db = &*ctx.db;
    Reply::Array(
        keys.iter()
            .map(|key| Reply::from_option(db.peek(key)))
            .collect(),
    )
}

/// The key-value pairs of MSET/MSETNX, or the arity error when one is missing its value.
fn pairs<'x, 'y>(
    name: &str,
    args: &'x [Arg<'y>],
) -> Result<std::slice::ChunksExact<'x, Arg<'y>>, Reply<'static>> {
    match args {
        [_, rest @ ..] if !rest.is_empty() && rest.len() % 2 == 0 => Ok(rest.chunks_exact(2)),
        _ => Err(wrong_arity(name)),
    }
}

fn mset<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match pairs("mset", args) {
        Ok(pairs) => {
            for pair in pairs {
                if let [key, value] = pair {
                    let new = ctx.creates(key);
                    ctx.db.set(key, value);
                    notify_write(ctx, new, "set", key);
                }
            }
            Reply::OK
        }
        Err(e) => e,
    }
}

fn msetnx<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let pairs = match pairs("msetnx", args) {
        Ok(pairs) => pairs,
        Err(e) => return e,
    };
    if pairs.clone().any(|pair| ctx.db.contains(&pair[0])) {
        return Reply::Integer(0);
    }
    for pair in pairs {
        if let [key, value] = pair {
            let new = ctx.creates(key);
            ctx.db.set(key, value);
            notify_write(ctx, new, "set", key);
        }
    }
    Reply::Integer(1)
}

/// Adds `delta` to the integer stored at `key` (0 when missing) and stores the result.
fn add<'a>(ctx: &'a mut Ctx<'_>, key: &[u8], delta: i64) -> Reply<'a> {
    let new = ctx.creates(key);
    let current = match ctx.db.get(key) {
        None => 0,
        Some(value) => match parse_i64(value) {
            Some(n) => n,
            None => return NOT_INTEGER,
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return Reply::error("ERR increment or decrement would overflow");
    };
    ctx.db
        .replace(key, itoa::Buffer::new().format(next).as_bytes());
    notify_write(ctx, new, "incrby", key);
    Reply::Integer(next)
}

fn incr<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_, key] => add(ctx, key, 1),
        _ => wrong_arity("incr"),
    }
}

fn decr<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_, key] => add(ctx, key, -1),
        _ => wrong_arity("decr"),
    }
}

fn incrby<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, by] = args else {
        return wrong_arity("incrby");
    };
    match int_arg(by) {
        Ok(by) => add(ctx, key, by),
        Err(e) => e,
    }
}

fn decrby<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, by] = args else {
        return wrong_arity("decrby");
    };
    match int_arg(by) {
        Ok(i64::MIN) => Reply::error("ERR decrement would overflow"),
        Ok(by) => add(ctx, key, -by),
        Err(e) => e,
    }
}

/// Adds a decimal (or hex) float to the value of `key`, as Redis does in `long double`, and
/// stores the result as Redis prints it. Logged as `SET key <result> KEEPTTL`, the form Redis
/// propagates, so a replay never re-rounds.
fn incrbyfloat<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, by] = args else {
        return wrong_arity("incrbyfloat");
    };
    let current = ctx.db.peek(key).map_or(Some(Ext::ZERO), Ext::parse);
    let (Some(current), Some(by)) = (current, Ext::parse(by)) else {
        return Reply::error("ERR value is not a valid float");
    };
    let sum = match current.add(by) {
        Some(sum @ Ext::Finite { .. }) => sum.to_text(),
        _ => return Reply::error("ERR increment would produce NaN or Infinity"),
    };
    let new = ctx.creates(key);
    ctx.db.replace(key, &sum);
    ctx.log_as(&[&b"SET"[..], key, &sum, b"KEEPTTL"]);
    notify_write(ctx, new, "incrbyfloat", key);
    Reply::bulk_owned(sum)
}

fn append<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, tail] = args else {
        return wrong_arity("append");
    };
    let current = ctx.db.peek(key).map_or(0, <[u8]>::len);
    if current + tail.len() > ctx.server.config.limits.max_bulk_len {
        return TOO_BIG;
    }
    let new = ctx.creates(key);
    let len = ctx.db.append(key, tail);
    notify_write(ctx, new, "append", key);
    Reply::Integer(len as i64)
}

fn strlen<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("strlen");
    };
    ctx.read_lookup(key);
    Reply::Integer(ctx.db.get(key).map_or(0, <[u8]>::len) as i64)
}

fn getrange<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, start, end] = args else {
        return wrong_arity("getrange");
    };
    let (start, end) = match (int_arg(start), int_arg(end)) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    ctx.read_lookup(key);
    let value = ctx.db.get(key).unwrap_or_default();
    match byte_range(value.len(), start, end) {
        Some(range) => Reply::bulk(&value[range]),
        None => Reply::bulk(b""),
    }
}

/// Redis's GETRANGE index rules: negative counts from the end, both ends inclusive, clamped.
fn byte_range(len: usize, start: i64, end: i64) -> Option<std::ops::Range<usize>> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    let from_end = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (from_end(start), from_end(end).min(len - 1));
    if len == 0 || start > end {
        return None;
    }
    Some(start as usize..end as usize + 1)
}

fn setrange<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, offset, bytes] = args else {
        return wrong_arity("setrange");
    };
    let offset = match int_arg(offset) {
        Ok(offset) => offset,
        Err(e) => return e,
    };
    // Only a negative offset is out of range, as in Redis; a huge one is too big. Compared as
    // u64, so a 32-bit build (armv7) answers as a 64-bit one does for offsets past usize.
    let Ok(offset) = u64::try_from(offset) else {
        return Reply::error("ERR offset is out of range");
    };
    let current = ctx.db.peek(key).map(<[u8]>::len);
    if bytes.is_empty() {
        return Reply::Integer(current.unwrap_or(0) as i64);
    }
    let max = ctx.server.config.limits.max_bulk_len as u64;
    let offset = match usize::try_from(offset) {
        Ok(offset) if offset as u64 + bytes.len() as u64 <= max => offset,
        _ => return TOO_BIG,
    };
    let new = current.is_none() && ctx.creates(key);
    let len = ctx.db.set_range(key, offset, bytes);
    notify_write(ctx, new, "setrange", key);
    Reply::Integer(len as i64)
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_follow_redis() {
        // "This is a string" examples from the GETRANGE docs.
        let len = 16;
        assert_eq!(byte_range(len, 0, 3), Some(0..4));
        assert_eq!(byte_range(len, -3, -1), Some(13..16));
        assert_eq!(byte_range(len, 0, -1), Some(0..16));
        assert_eq!(byte_range(len, 10, 100), Some(10..16));
        assert_eq!(byte_range(len, 5, 3), None);
        assert_eq!(byte_range(len, -1, -5), None);
        assert_eq!(byte_range(0, 0, -1), None);
        assert_eq!(byte_range(len, -100, 2), Some(0..3));
    }
}
