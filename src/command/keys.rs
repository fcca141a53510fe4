//! Keyspace commands: DEL, EXISTS, KEYS, SCAN, TYPE, RENAME, RANDOMKEY.

use super::{int_arg, wrong_arity, Arg, Ctx, Spec, NO_SUCH_KEY, SYNTAX};
use crate::protocol::Reply;
use crate::pubsub::Events;

const G: &str = "generic";

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("del", -2, del).write().keys(1, -1, 1).doc(G, "key [key ...]", "delete keys; how many existed"),
    Spec::new("unlink", -2, del).write().keys(1, -1, 1).doc(G, "key [key ...]", "same as DEL"),
    Spec::new("exists", -2, exists).read().keys(1, -1, 1).doc(G, "key [key ...]", "how many of the keys exist"),
    Spec::new("keys", 2, keys).flags(&["readonly"]).doc(G, "pattern", "every key matching a glob (*, ?, [a-z])"),
    Spec::new("scan", -2, scan).flags(&["readonly"]).doc(G, "cursor [MATCH pattern] [COUNT n] [TYPE string]", "walk the keys a step at a time"),
    Spec::new("type", 2, key_type).read().keys(1, 1, 1).doc(G, "key", "string, or none when missing"),
    Spec::new("rename", 3, rename).write().keys(1, 2, 1).doc(G, "key newkey", "rename a key, replacing newkey"),
    Spec::new("renamenx", 3, renamenx).write().keys(1, 2, 1).doc(G, "key newkey", "rename only if newkey is missing"),
    Spec::new("randomkey", 1, randomkey).flags(&["readonly"]).doc(G, "", "a random key, or nil"),
];

fn del<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let mut removed = 0;
    for key in args.iter().skip(1) {
        if ctx.db.remove(key).is_some() {
            removed += 1;
            ctx.notify(Events::GENERIC, "del", key);
        }
    }
    Reply::Integer(removed)
}

fn exists<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let found = args
        .iter()
        .skip(1)
        .filter(|key| {
            ctx.read_lookup(key);
            ctx.db.contains(key)
        })
        .count();
    Reply::Integer(found as i64)
}

fn keys<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, pattern] = args else {
        return wrong_arity("keys");
    };
    let db = &*ctx.db;
    Reply::Array(db.keys(pattern).into_iter().map(Reply::bulk).collect())
}

fn scan<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, cursor, options @ ..] = args else {
        return wrong_arity("scan");
    };
    let Some(cursor) = parse_cursor(cursor) else {
        return Reply::error("ERR invalid cursor");
    };
    let mut count = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut only_strings = true;
    let mut rest = options;
    while let [option, value, tail @ ..] = rest {
        match option.to_ascii_uppercase().as_slice() {
            b"COUNT" => match int_arg(value) {
                Ok(n) if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX),
                Ok(_) => return SYNTAX,
                Err(e) => return e,
            },
            b"MATCH" => pattern = Some(value),
            // Every pocketkv value is a string, so TYPE either keeps all keys or none.
            b"TYPE" => only_strings = value.eq_ignore_ascii_case(b"string"),
            _ => return SYNTAX,
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return SYNTAX;
    }
    let page = ctx.db.scan(cursor, count, pattern);
    let keys = if only_strings { page.keys } else { Vec::new() };
    Reply::Array(vec![
        Reply::bulk_owned(page.cursor.to_string().into_bytes()),
        Reply::Array(keys.into_iter().map(Reply::bulk_owned).collect()),
    ])
}

/// Reads a cursor as Redis does, with C's `strtoul`: an optional sign (a negative number wraps),
/// digits, nothing after them, no overflow; the empty string is 0.
fn parse_cursor(text: &[u8]) -> Option<u64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return text.is_empty().then_some(0);
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

fn key_type<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("type");
    };
    ctx.read_lookup(key);
    let name = if ctx.db.contains(key) {
        "string"
    } else {
        "none"
    };
    Reply::Status(name.into())
}

/// Moves `from` to `to`; `replace` says whether an existing `to` may be overwritten.
fn move_key<'a>(ctx: &'a mut Ctx<'_>, from: &[u8], to: &[u8], replace: bool) -> Reply<'a> {
    if !ctx.db.contains(from) {
        return NO_SUCH_KEY;
    }
    if from == to {
        return if replace {
            Reply::OK
        } else {
            Reply::Integer(0)
        };
    }
    if !replace && ctx.db.contains(to) {
        return Reply::Integer(0);
    }
    if let Some(record) = ctx.db.remove(from) {
        ctx.db.put(to, &record);
        // Redis deletes the target first and adds the key anew: `new` even when it existed.
        ctx.notify(Events::NEW, "new", to);
        ctx.notify(Events::GENERIC, "rename_from", from);
        ctx.notify(Events::GENERIC, "rename_to", to);
    }
    if replace {
        Reply::OK
    } else {
        Reply::Integer(1)
    }
}

fn rename<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_, from, to] => move_key(ctx, from, to, true),
        _ => wrong_arity("rename"),
    }
}

fn renamenx<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_, from, to] => move_key(ctx, from, to, false),
        _ => wrong_arity("renamenx"),
    }
}

fn randomkey<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    let seed = ctx.server.random();
    Reply::from_option(ctx.db.random_key(seed))
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+17"), Some(17));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b" 1",
            b"1 ",
            b"x",
            b"-",
            b"+",
            b"1x",
        ] {
            assert_eq!(
                parse_cursor(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
