//! Compare-and-set and compare-and-delete without scripts, as Redis 8.4 and Valkey 9 define
//! them: DIGEST, DELEX, DELIFEQ, and the IFEQ/IFNE/IFDEQ/IFDNE conditions SET shares.
//!
//! They give a lock release (`DELEX lock IFEQ token`) and an optimistic update
//! (`SET k new IFEQ old`) in one command, where Redis 7 needed WATCH/MULTI or a Lua script.

use super::xxh3::xxh3_64;
use super::{wrong_arity, Arg, Ctx, Spec, SYNTAX};
use crate::protocol::Reply;

const G: &str = "string";

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("digest", 2, digest).read().keys(1, 1, 1).doc(G, "key", "the XXH3 hash of a value as 16 hex digits, or nil"),
    Spec::new("delex", -2, delex).flags(&["write", "fast"]).keys(1, 1, 1).doc(G, "key [IFEQ value|IFNE value|IFDEQ digest|IFDNE digest]", "delete key if the condition holds; 1 if deleted"),
    Spec::new("delifeq", 3, delifeq).flags(&["write", "fast"]).keys(1, 1, 1).doc(G, "key value", "delete key if its value is value; 1 if deleted"),
];

/// Redis 8.4's error for an IFDEQ/IFDNE digest of the wrong length.
const BAD_DIGEST: Reply<'static> = Reply::error("ERR must be exactly 16 hexadecimal characters");

/// What a conditional write compares the key's current value with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Condition<'x> {
    /// IFEQ: the value is exactly these bytes (a missing key fails).
    Equal(&'x [u8]),
    /// IFNE: the value is not these bytes (a missing key passes).
    NotEqual(&'x [u8]),
    /// IFDEQ: the value's digest is this one (a missing key fails).
    DigestEqual(&'x [u8]),
    /// IFDNE: the value's digest is not this one (a missing key passes).
    DigestNotEqual(&'x [u8]),
}

impl<'x> Condition<'x> {
    /// The condition `token` names with its argument; `None` when `token` is no condition,
    /// `Some(Err)` for a digest that is not 16 characters long (Redis checks the length only;
    /// a digest with other characters simply never matches).
    pub(super) fn parse(token: &[u8], arg: &'x [u8]) -> Option<Result<Self, Reply<'static>>> {
        let digest = |arg: &'x [u8]| (arg.len() == 16).then_some(arg).ok_or(BAD_DIGEST);
        Some(match token.to_ascii_uppercase().as_slice() {
            b"IFEQ" => Ok(Condition::Equal(arg)),
            b"IFNE" => Ok(Condition::NotEqual(arg)),
            b"IFDEQ" => digest(arg).map(Condition::DigestEqual),
            b"IFDNE" => digest(arg).map(Condition::DigestNotEqual),
            _ => return None,
        })
    }

    /// Whether the condition holds for a key whose value is `current` (`None`: no such key).
    pub(super) fn holds(&self, current: Option<&[u8]>) -> bool {
        // Hex digits compare without regard to case, as Redis 8.4's strcasecmp does.
        let digest_is =
            |d: &[u8]| current.is_some_and(|v| hex16(xxh3_64(v)).eq_ignore_ascii_case(d));
        match *self {
            Condition::Equal(v) => current == Some(v),
            Condition::NotEqual(v) => current != Some(v),
            Condition::DigestEqual(d) => digest_is(d),
            Condition::DigestNotEqual(d) => !digest_is(d),
        }
    }
}

/// A hash as Redis 8.4 prints it: 16 lower-case hex digits, leading zeros kept.
fn hex16(hash: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = b"0123456789abcdef"[(hash >> (60 - 4 * i)) as usize & 0xf];
    }
    out
}

fn digest<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("digest");
    };
    ctx.read_lookup(key);
    match ctx.db.get(key) {
        Some(value) => Reply::bulk_owned(hex16(xxh3_64(value)).to_vec()),
        None => Reply::Nil,
    }
}

fn delex<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let condition = match args {
        [_, _] => None,
        [_, _, token, arg] => match Condition::parse(token, arg) {
            Some(Ok(condition)) => Some(condition),
            Some(Err(e)) => return e,
            None => return SYNTAX,
        },
        // A condition without its argument, or anything after it (Redis 8.4 checks this before
        // it looks the key up).
        _ => return SYNTAX,
    };
    let key = args.get(1).map_or(&[][..], |k| k.as_ref());
    delete_if(ctx, key, condition)
}

fn delifeq<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key, value] = args else {
        return wrong_arity("delifeq");
    };
    delete_if(ctx, key, Some(Condition::Equal(value)))
}

/// Deletes `key` when `condition` (if any) holds for its value: 1 if it did. Logged as `DEL`,
/// as Redis propagates DELEX, so a log or replica that predates these commands replays it.
fn delete_if<'a>(ctx: &'a mut Ctx<'_>, key: &[u8], condition: Option<Condition<'_>>) -> Reply<'a> {
    // A key's own write path looks it up without counting a hit or a miss, as Redis's
    // lookupKeyWrite does.
    if condition.is_some_and(|c| !c.holds(ctx.db.peek(key))) {
        return Reply::Integer(0);
    }
    if ctx.db.remove(key).is_none() {
        return Reply::Integer(0);
    }
    ctx.log_as(&[&b"DEL"[..], key]);
    ctx.notify(crate::pubsub::Events::GENERIC, "del", key);
    Reply::Integer(1)
}

#[cfg(test)]
mod tests {
    use super::{hex16, Condition};

    #[test]
    fn digests_keep_leading_zeros_and_compare_in_any_case() {
        assert_eq!(&hex16(0x6c38adf31777), b"00006c38adf31777");
        let hello = Condition::parse(b"ifdeq", b"B6ACB9D84A38FF74");
        let Some(Ok(hello)) = hello else {
            panic!("IFDEQ with 16 characters parses: {hello:?}");
        };
        assert!(hello.holds(Some(b"Hello world")));
        assert!(!hello.holds(None));
        assert!(matches!(Condition::parse(b"IFDNE", b"abc"), Some(Err(_))));
        assert_eq!(Condition::parse(b"IFXX", b"abc"), None);
    }

    #[test]
    fn missing_keys_fail_equality_and_pass_inequality() {
        let cases = [
            (Condition::Equal(b"v"), false),
            (Condition::NotEqual(b"v"), true),
            (Condition::DigestEqual(b"0000000000000000"), false),
            (Condition::DigestNotEqual(b"0000000000000000"), true),
        ];
        for (condition, on_missing) in cases {
            assert_eq!(condition.holds(None), on_missing, "{condition:?}");
        }
        assert!(Condition::Equal(b"v").holds(Some(b"v")));
        assert!(!Condition::NotEqual(b"v").holds(Some(b"v")));
    }
}
