//! Replication commands: REPLICAOF (SLAVEOF), ROLE, REPLCONF, PSYNC, WAIT, and DEBUG DIGEST to
//! compare a replica's data with its primary's.
//!
//! The handlers only change state and say what the loop must do (`Flow`); the loop owns the
//! sockets: it opens the link, streams images and answers WAIT when replicas acknowledge.

use super::{int_arg, Arg, Ctx, Flow, Spec, SYNTAX};
use crate::protocol::Reply;
use crate::replication::{self, Asked, MasterStatus, Psync};

const G: &str = "replication";
const ADMIN: &[&str] = &["admin", "noscript", "stale"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("replicaof", 3, replicaof).flags(ADMIN).doc(G, "host port | NO ONE", "follow a primary, or become one"),
    Spec::new("slaveof", 3, replicaof).flags(ADMIN).doc(G, "host port | NO ONE", "the old name of REPLICAOF"),
    Spec::new("role", 1, role).flags(&["noscript", "loading", "stale", "fast"]).doc(G, "", "master or slave, with offsets and replicas"),
    Spec::new("replconf", -1, replconf).flags(ADMIN).doc(G, "option value [option value ...]", "what a replica tells its primary"),
    Spec::new("psync", -3, psync).flags(&["admin", "noscript", "no_multi"]).doc(G, "replid offset", "a replica asks for the stream from an offset"),
    Spec::new("wait", 3, wait).flags(&["noscript"]).doc(G, "numreplicas timeout", "wait until replicas acknowledged this client's writes"),
    Spec::new("debug", -2, debug).flags(ADMIN).doc("server", "DIGEST", "debugging aids")
        .subcommands(&[
            Spec::new("debug|digest", 2, digest).flags(ADMIN).doc("server", "", "a digest of the whole keyspace (equal data, equal digest)"),
            super::help_entry("debug|help"),
        ]),
];

fn replicaof<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let (host, port) = (&args[1], &args[2]);
    let repl = &mut ctx.server.repl;
    if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        if repl.master.take().is_some() {
            // A new history starts here; replicas of the old one may continue it (PSYNC2).
            repl.shift_replid();
            repl.ensure_backlog(ctx.server.config.repl.backlog_size);
            repl.asked = Some(Asked::Promote);
            ctx.server.config.repl.replicaof = None;
            log::info!("REPLICAOF NO ONE: this server is a primary now");
        }
        return Reply::OK;
    }
    let port = match std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) if port > 0 => port,
        _ => return Reply::error("ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(host).into_owned();
    if points_at_self(&host, port, ctx.server.listening) {
        return Reply::error(
            "ERR REPLICAOF would make this server a replica of itself; give another server's \
             address",
        );
    }
    if let Some(master) = &repl.master {
        if master.host.eq_ignore_ascii_case(&host) && master.port == port {
            return Reply::Status("OK Already connected to specified master".into());
        }
    }
    log::info!("REPLICAOF {host} {port}: following a new primary");
    // A primary's id and offset describe its data exactly: it asks to continue them.
    repl.resumable |= repl.master.is_none();
    repl.master = Some(MasterStatus::new(host.clone(), port));
    repl.asked = Some(Asked::Follow);
    ctx.server.config.repl.replicaof = Some((host, port));
    Reply::OK
}

/// True when `host:port` is this server's own listening address.
fn points_at_self(host: &str, port: u16, listening: std::net::SocketAddr) -> bool {
    if port != listening.port() {
        return false;
    }
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return host.eq_ignore_ascii_case("localhost");
    };
    let bound = listening.ip();
    ip == bound || ip.is_loopback() && (bound.is_loopback() || bound.is_unspecified())
}

fn role<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    replication::role_reply(ctx.server)
}

fn replconf<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let options = &args[1..];
    if options.len() % 2 != 0 {
        return SYNTAX;
    }
    for pair in options.chunks(2) {
        let [option, value] = pair else {
            return SYNTAX;
        };
        let option = option.to_ascii_lowercase();
        match option.as_slice() {
            b"listening-port" => match int_arg(value) {
                Ok(port @ 0..=65535) => ctx.client.replica_port = Some(port as u16),
                _ => return Reply::error("ERR value is not an integer or out of range"),
            },
            b"capa" => ctx.client.capa_eof |= value.eq_ignore_ascii_case(b"eof"),
            b"ip-address" => {
                ctx.client.replica_ip = Some(String::from_utf8_lossy(value).into_owned())
            }
            // Only a replica's connection acknowledges (the loop reads those itself); from
            // anyone else Redis ignores it without a reply, and so does pocketkv.
            b"ack" | b"getack" => {
                ctx.client.flow = Flow::Silent;
                return Reply::OK;
            }
            _ => {
                let mut message = b"ERR Unrecognized REPLCONF option: ".to_vec();
                message.extend(option.iter().filter(|b| !matches!(b, b'\r' | b'\n')));
                return Reply::error_bytes(message);
            }
        }
    }
    Reply::OK
}

fn psync<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, replid, offset, ..] = args else {
        return SYNTAX;
    };
    let Ok(from) = int_arg(offset) else {
        return super::NOT_INTEGER;
    };
    if !ctx.client.capa_eof {
        // Images are only sent diskless, framed with $EOF: a client that did not say it reads
        // that framing (a Redis replica, a tool) would misread the stream.
        return Reply::error(
            "ERR PSYNC needs REPLCONF capa eof first: this server sends full syncs diskless only",
        );
    }
    let repl = &mut ctx.server.repl;
    if repl.is_replica() && !repl.link_up() {
        return Reply::error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    let decision = repl.decide(replid, from);
    let reply = match decision {
        Psync::Continue(_) => {
            repl.sync_partial_ok += 1;
            format!("CONTINUE {}", repl.replid)
        }
        Psync::Full(asked) => {
            repl.sync_full += 1;
            repl.sync_partial_err += u64::from(asked);
            format!("FULLRESYNC {} {}", repl.replid, repl.offset)
        }
    };
    ctx.client.flow = Flow::Replicate(decision);
    Reply::Status(reply.into())
}

fn wait<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    if ctx.server.repl.is_replica() {
        return Reply::error(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis \
             4.0 if a replica is configured to be writable (which is not the default) writes to \
             replicas are just local and are not propagated.",
        );
    }
    let replicas = match int_arg(&args[1]) {
        Ok(n) => n.max(0) as u64,
        Err(e) => return e,
    };
    let timeout_ms = match int_arg(&args[2]) {
        Ok(t) if t < 0 => return Reply::error("ERR timeout is negative"),
        Ok(t) => t as u64,
        Err(e) => return e,
    };
    let acked = ctx.server.repl.acknowledged(ctx.client.woff);
    // Inside EXEC nothing can block: the count as it stands, as Redis answers.
    if acked >= replicas || ctx.client.in_exec {
        return Reply::Integer(acked as i64);
    }
    ctx.client.flow = Flow::Wait {
        replicas,
        timeout_ms,
    };
    Reply::OK
}

fn debug<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    super::wrong_arity("debug")
}

fn digest<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Status(ctx.db.digest().into())
}
