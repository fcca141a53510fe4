//! Connection commands: PING, ECHO, QUIT, HELP, SELECT, CLIENT.

use super::{int_arg, table, wrong_arity, Arg, Ctx, Flow, Spec};
use crate::protocol::Reply;

const G: &str = "connection";
const FAST: &[&str] = &["fast"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("ping", -1, ping).flags(FAST).doc(G, "[message]", "PONG, or the message back"),
    Spec::new("echo", 2, echo).flags(FAST).doc(G, "message", "the message back"),
    Spec::new("quit", -1, quit).flags(FAST).doc(G, "", "close this connection"),
    Spec::new("help", -1, help).flags(&["loading", "stale"]).doc(G, "", "this list"),
    Spec::new("select", 2, select).flags(FAST).doc(G, "0", "choose database 0, the only one"),
    Spec::new("client", -2, client)
        .doc(G, "SETNAME name | GETNAME | ID", "name this connection, or ask its name or id")
        .subcommands(&[
            Spec::new("client|setname", 3, client_setname).flags(FAST).doc(G, "name", "name this connection"),
            Spec::new("client|getname", 2, client_getname).flags(FAST).doc(G, "", "this connection's name"),
            Spec::new("client|id", 2, client_id).flags(FAST).doc(G, "", "this connection's id"),
            super::help_entry("client|help"),
        ]),
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
        Ok(n) if i32::try_from(n).is_err() => {
            Reply::error("ERR value is out of range, value must between -2147483648 and 2147483647")
        }
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
