//! Keyspace commands: DEL, EXISTS, KEYS, SCAN, TYPE, RENAME, RANDOMKEY.

use super::{int_arg, wrong_arity, Arg, Ctx, Spec, NO_SUCH_KEY, SYNTAX};
use crate::protocol::Reply;

/// A table entry for a keyspace command.
const fn key_command(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    usage: &'static str,
    summary: &'static str,
    handler: super::Handler,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        group: "generic",
        usage,
        summary,
        handler,
        subcommands: &[],
    }
}

const READ: &[&str] = &["readonly"];
const WRITE: &[&str] = &["write"];

/// This family's table entries.
pub(super) const COMMANDS: &[Spec] = &[
    key_command(
        "del",
        -2,
        WRITE,
        (1, -1, 1),
        "key [key ...]",
        "delete keys; how many existed",
        del,
    ),
    key_command(
        "unlink",
        -2,
        WRITE,
        (1, -1, 1),
        "key [key ...]",
        "same as DEL",
        del,
    ),
    key_command(
        "exists",
        -2,
        READ,
        (1, -1, 1),
        "key [key ...]",
        "how many of the keys exist",
        exists,
    ),
    key_command(
        "keys",
        2,
        READ,
        (0, 0, 0),
        "pattern",
        "every key matching a glob (*, ?, [a-z])",
        keys,
    ),
    key_command(
        "scan",
        -2,
        READ,
        (0, 0, 0),
        "cursor [MATCH pattern] [COUNT n] [TYPE string]",
        "walk the keys a step at a time",
        scan,
    ),
    key_command(
        "type",
        2,
        READ,
        (1, 1, 1),
        "key",
        "string, or none when missing",
        key_type,
    ),
    key_command(
        "rename",
        3,
        WRITE,
        (1, 2, 1),
        "key newkey",
        "rename a key, replacing newkey",
        rename,
    ),
    key_command(
        "renamenx",
        3,
        WRITE,
        (1, 2, 1),
        "key newkey",
        "rename only if newkey is missing",
        renamenx,
    ),
    key_command(
        "randomkey",
        1,
        READ,
        (0, 0, 0),
        "",
        "a random key, or nil",
        randomkey,
    ),
];

fn del<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let removed = args
        .iter()
        .skip(1)
        .filter(|key| ctx.db.remove(key).is_some())
        .count();
    Reply::Integer(removed as i64)
}

fn exists<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let found = args
        .iter()
        .skip(1)
        .filter(|key| ctx.db.contains(key))
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
    let Some(cursor) = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
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

fn key_type<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, key] = args else {
        return wrong_arity("type");
    };
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
    if let Some(value) = ctx.db.remove(from) {
        ctx.db.set(to.to_vec(), value);
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
