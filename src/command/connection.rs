//! Connection commands: PING, ECHO, QUIT, HELP, SELECT, CLIENT.

use super::{int_arg, table, wrong_arity, Arg, Ctx, Flow, Spec};
use crate::protocol::Reply;

/// This family's table entries.
pub(super) const COMMANDS: &[Spec] = &[
    Spec {
        name: "ping",
        arity: -1,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        usage: "[message]",
        summary: "PONG, or the message back",
        handler: ping,
        subcommands: &[],
    },
    Spec {
        name: "echo",
        arity: 2,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        usage: "message",
        summary: "the message back",
        handler: echo,
        subcommands: &[],
    },
    Spec {
        name: "quit",
        arity: -1,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        usage: "",
        summary: "close this connection",
        handler: quit,
        subcommands: &[],
    },
    Spec {
        name: "help",
        arity: -1,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        group: "connection",
        usage: "",
        summary: "this list",
        handler: help,
        subcommands: &[],
    },
    Spec {
        name: "select",
        arity: 2,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        usage: "0",
        summary: "choose database 0, the only one",
        handler: select,
        subcommands: &[],
    },
    Spec {
        name: "client",
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        group: "connection",
        usage: "SETNAME name | GETNAME | ID",
        summary: "name this connection, or ask its name or id",
        handler: client,
        subcommands: &[
            Spec {
                name: "client|setname",
                arity: 3,
                flags: &["fast"],
                keys: (0, 0, 0),
                group: "connection",
                usage: "name",
                summary: "name this connection",
                handler: client_setname,
                subcommands: &[],
            },
            Spec {
                name: "client|getname",
                arity: 2,
                flags: &["fast"],
                keys: (0, 0, 0),
                group: "connection",
                usage: "",
                summary: "this connection's name",
                handler: client_getname,
                subcommands: &[],
            },
            Spec {
                name: "client|id",
                arity: 2,
                flags: &["fast"],
                keys: (0, 0, 0),
                group: "connection",
                usage: "",
                summary: "this connection's id",
                handler: client_id,
                subcommands: &[],
            },
        ],
    },
];

fn ping<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_] => Reply::Status("PONG".into()),
        [_, message] => Reply::bulk_owned(message.to_vec()),
        _ => wrong_arity("ping"),
    }
}

fn echo<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_, message] => Reply::bulk_owned(message.to_vec()),
        _ => wrong_arity("echo"),
    }
}

fn quit<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    ctx.client.flow = Flow::Close;
    Reply::OK
}

fn help<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    let mut text = format!(
        "pocketkv {}: commands are case-insensitive; quote arguments with spaces (\"a b\").\n",
        env!("CARGO_PKG_VERSION")
    );
    for spec in table() {
        let call = format!("{} {}", spec.name.to_uppercase(), spec.usage);
        let call = call.trim_end();
        if call.len() > 40 {
            text.push_str(&format!("  {call}\n  {:<40} {}\n", "", spec.summary));
        } else {
            text.push_str(&format!("  {call:<40} {}\n", spec.summary));
        }
    }
    Reply::Text(text)
}

fn select<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, index] = args else {
        return wrong_arity("select");
    };
    match int_arg(index) {
        Ok(0) => Reply::OK,
        Ok(_) => Reply::error("ERR DB index is out of range"),
        Err(e) => e,
    }
}

fn client<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    wrong_arity("client")
}

fn client_setname<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, _, name] = args else {
        return wrong_arity("client|setname");
    };
    if !name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        );
    }
    ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
    Reply::OK
}

fn client_getname<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::from_option(ctx.client.name.as_deref())
}

fn client_id<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(ctx.client.id as i64)
}
