//! Expiry commands: EXPIRE and friends, TTL and friends, PERSIST; and the time arithmetic SET,
//! SETEX and GETEX share with them.
//!
//! Relative times are made absolute here, once, and the request is logged in its absolute form
//! (`PEXPIREAT key ms`, as Redis propagates it), so replaying the log later means the same thing.

use super::{int_arg, wrong_arity, Arg, Ctx, Spec};
use crate::protocol::Reply;
use crate::pubsub::Events;

const G: &str = "generic";

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("expire", -3, expire).write().keys(1, 1, 1).doc(G, "key seconds [NX|XX|GT|LT]", "expire key after seconds; 1 if set"),
    Spec::new("pexpire", -3, pexpire).write().keys(1, 1, 1).doc(G, "key milliseconds [NX|XX|GT|LT]", "expire key after milliseconds"),
    Spec::new("expireat", -3, expireat).write().keys(1, 1, 1).doc(G, "key unix-time-seconds [NX|XX|GT|LT]", "expire key at a Unix time"),
    Spec::new("pexpireat", -3, pexpireat).write().keys(1, 1, 1).doc(G, "key unix-time-milliseconds [NX|XX|GT|LT]", "expire key at a Unix time in ms"),
    Spec::new("ttl", 2, ttl).read().keys(1, 1, 1).doc(G, "key", "seconds left; -1 no expiry, -2 no key"),
    Spec::new("pttl", 2, pttl).read().keys(1, 1, 1).doc(G, "key", "milliseconds left; -1 no expiry, -2 no key"),
    Spec::new("expiretime", 2, expiretime).read().keys(1, 1, 1).doc(G, "key", "Unix time the key expires; -1, -2"),
    Spec::new("pexpiretime", 2, pexpiretime).read().keys(1, 1, 1).doc(G, "key", "Unix time in ms the key expires; -1, -2"),
    Spec::new("persist", 2, persist).write().keys(1, 1, 1).doc(G, "key", "remove the expiry; 1 if there was one"),
];

/// The unit of a time argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    fn to_ms(self, n: i64) -> Option<i64> {
        match self {
            Unit::Seconds => n.checked_mul(1000),
            Unit::Millis => Some(n),
        }
    }
}

/// `ERR invalid expire time in 'set' command`.
pub(super) fn invalid_expire(command: &str) -> Reply<'static> {
    Reply::error_owned(format!("ERR invalid expire time in '{command}' command"))
}

/// An expiry argument of SET, SETEX, PSETEX or GETEX as Unix milliseconds: it must be a positive
/// integer, relative to now unless `absolute`.
pub(super) fn expire_at(
    ctx: &Ctx<'_>,
    arg: &[u8],
    unit: Unit,
    absolute: bool,
    command: &str,
) -> Result<u64, Reply<'static>> {
    let n = int_arg(arg)?;
    if n <= 0 {
        return Err(invalid_expire(command));
    }
    let base = if absolute { 0 } else { now(ctx) };
    unit.to_ms(n)
        .and_then(|ms| ms.checked_add(base))
        .and_then(|ms| u64::try_from(ms).ok())
        .ok_or_else(|| invalid_expire(command))
}

/// True when a time (Unix ms, possibly negative) has already come, so setting it deletes the key.
/// Never while the log is replayed: a logged expiry time was in the future when it was set.
pub(super) fn already_expired(ctx: &Ctx<'_>, at: i64) -> bool {
    !ctx.db.expiry_paused() && at <= now(ctx)
}

fn now(ctx: &Ctx<'_>) -> i64 {
    i64::try_from(ctx.db.now()).unwrap_or(i64::MAX)
}

/// The NX/XX/GT/LT options of the EXPIRE family.
#[derive(Debug, Default, Clone, Copy)]
struct Condition {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Condition {
    fn parse(options: &[Arg<'_>]) -> Result<Self, Reply<'static>> {
        let mut c = Condition::default();
        for option in options {
            match option.to_ascii_uppercase().as_slice() {
                b"NX" => c.nx = true,
                b"XX" => c.xx = true,
                b"GT" => c.gt = true,
                b"LT" => c.lt = true,
                _ => {
                    return Err(Reply::error_owned(format!(
                        "ERR Unsupported option {}",
                        String::from_utf8_lossy(option)
                    )))
                }
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(Reply::error(
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if c.gt && c.lt {
            return Err(Reply::error(
                "ERR GT and LT options at the same time are not compatible",
            ));
        }
        Ok(c)
    }

    /// Whether a key whose current expiry is `current` (None: never) takes `new`. As in Redis,
    /// no expiry counts as an infinite one.
    fn allows(self, current: Option<u64>, new: i64) -> bool {
        let current = current.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|c| new <= c)
            || self.lt && current.is_some_and(|c| new >= c))
    }
}

/// EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT: `absolute` times are Unix time, others from now.
fn expire_generic<'a>(
    ctx: &'a mut Ctx<'_>,
    args: &[Arg<'_>],
    unit: Unit,
    absolute: bool,
    name: &str,
) -> Reply<'a> {
    let [_, key, time, options @ ..] = args else {
        return wrong_arity(name);
    };
    let condition = match Condition::parse(options) {
        Ok(condition) => condition,
        Err(e) => return e,
    };
    let n = match int_arg(time) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let base = if absolute { 0 } else { now(ctx) };
    let Some(at) = unit.to_ms(n).and_then(|ms| ms.checked_add(base)) else {
        return invalid_expire(name);
    };
    let Some(current) = ctx.db.expires_at(key) else {
        return Reply::Integer(0);
    };
    if !condition.allows(current, at) {
        return Reply::Integer(0);
    }
    if already_expired(ctx, at) {
        ctx.db.remove(key);
        ctx.log_as(&[&b"DEL"[..], key]);
        ctx.notify(Events::GENERIC, "del", key);
    } else {
        let at = u64::try_from(at).unwrap_or(1);
        ctx.db.set_expiry(key, Some(at));
        ctx.notify(Events::GENERIC, "expire", key);
        ctx.log_as(&[
            &b"PEXPIREAT"[..],
            key,
            itoa::Buffer::new().format(at).as_bytes(),
        ]);
    }
    Reply::Integer(1)
}

fn expire<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    expire_generic(ctx, args, Unit::Seconds, false, "expire")
}

fn pexpire<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    expire_generic(ctx, args, Unit::Millis, false, "pexpire")
}

fn expireat<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    expire_generic(ctx, args, Unit::Seconds, true, "expireat")
}

fn pexpireat<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    expire_generic(ctx, args, Unit::Millis, true, "pexpireat")
}

/// TTL and friends: -2 without the key, -1 without an expiry time, else the time (left, or
/// absolute), rounded to the nearest second for the second forms as Redis does.
fn time_generic<'a>(
    ctx: &'a mut Ctx<'_>,
    args: &[Arg<'_>],
    unit: Unit,
    absolute: bool,
    name: &str,
) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity(name);
    };
    ctx.read_lookup(key);
    let at = match ctx.db.expires_at(key) {
        None => return Reply::Integer(-2),
        Some(None) => return Reply::Integer(-1),
        Some(Some(at)) => i64::try_from(at).unwrap_or(i64::MAX),
    };
    let ms = if absolute {
        at
    } else {
        at.saturating_sub(now(ctx)).max(0)
    };
    Reply::Integer(match unit {
        Unit::Millis => ms,
        Unit::Seconds => ms.saturating_add(500) / 1000,
    })
}

fn ttl<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    time_generic(ctx, args, Unit::Seconds, false, "ttl")
}

fn pttl<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    time_generic(ctx, args, Unit::Millis, false, "pttl")
}

fn expiretime<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    time_generic(ctx, args, Unit::Seconds, true, "expiretime")
}

fn pexpiretime<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    time_generic(ctx, args, Unit::Millis, true, "pexpiretime")
}

fn persist<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("persist");
    };
    match ctx.db.expires_at(key) {
        Some(Some(_)) => {
            ctx.db.set_expiry(key, None);
            ctx.notify(Events::GENERIC, "persist", key);
            Reply::Integer(1)
        }
        _ => Reply::Integer(0),
    }
}
