//! Connection commands: AUTH, HELLO, PING, ECHO, QUIT, HELP, SELECT, CLIENT.

use std::fmt::Write as _;
use std::time::Instant;

use super::{int_arg, table, wrong_arity, Arg, ClientInfo, ClientState, Ctx, Flow, Spec, SYNTAX};
use crate::protocol::Reply;

const G: &str = "connection";
const FAST: &[&str] = &["fast"];
/// Also served while loading and by a replica refusing stale data, as in Redis.
const FAST_STALE: &[&str] = &["loading", "stale", "fast"];
/// Redis 7's flags for the commands a client may send before it authenticates.
const NO_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("auth", -2, auth).flags(NO_AUTH).doc(G, "[username] password", "authenticate this connection"),
    Spec::new("hello", -1, hello).flags(NO_AUTH)
        .doc(G, "[protover [AUTH username password] [SETNAME name]]", "choose RESP2 or RESP3, authenticate, describe the server"),
    Spec::new("ping", -1, ping).flags(FAST).doc(G, "[message]", "PONG, or the message back"),
    Spec::new("echo", 2, echo).flags(FAST_STALE).doc(G, "message", "the message back"),
    Spec::new("quit", -1, quit).flags(NO_AUTH).doc(G, "", "close this connection"),
    Spec::new("help", -1, help).flags(&["loading", "stale", "no_auth"]).doc(G, "", "this list"),
    Spec::new("select", 2, select).flags(FAST_STALE).doc(G, "0", "choose database 0, the only one"),
    Spec::new("client", -2, client)
        .doc(G, "SETNAME name | GETNAME | ID | LIST | INFO | KILL ...", "name, describe or close connections")
        .subcommands(&[
            Spec::new("client|list", -2, client_list).flags(&["admin", "noscript", "loading", "stale"])
                .doc(G, "[TYPE normal] [ID id [id ...]]", "every connection, one line each"),
            Spec::new("client|info", 2, client_info).flags(&["noscript", "loading", "stale"])
                .doc(G, "", "this connection, as CLIENT LIST shows it"),
            Spec::new("client|kill", -3, client_kill).flags(&["admin", "noscript", "loading", "stale"])
                .doc(G, "ip:port | [ID id] [ADDR ip:port] [LADDR ip:port] [USER default] [SKIPME yes|no] [MAXAGE s]", "close connections"),
            Spec::new("client|setname", 3, client_setname).flags(FAST_STALE).doc(G, "name", "name this connection"),
            Spec::new("client|getname", 2, client_getname).flags(FAST_STALE).doc(G, "", "this connection's name"),
            Spec::new("client|id", 2, client_id).flags(FAST_STALE).doc(G, "", "this connection's id"),
            Spec::new("client|setinfo", 4, client_setinfo).flags(&["noscript", "loading", "stale"])
                .doc(G, "LIB-NAME name | LIB-VER version", "accept a client library's name or version (not shown)"),
            Spec::new("client|pause", -3, super::pause::client_pause).flags(&["admin", "noscript", "loading", "stale"])
                .doc(G, "timeout [WRITE|ALL]", "hold clients' requests (ALL) or writes (WRITE) for timeout ms"),
            Spec::new("client|unpause", 2, super::pause::client_unpause).flags(&["admin", "noscript", "loading", "stale"])
                .doc(G, "", "end CLIENT PAUSE; the held requests run"),
            super::help_entry("client|help"),
        ]),
];

/// True when the client must authenticate before running anything but AUTH, HELLO, QUIT, HELP:
/// the default user needs a password (or is off) and the client has not given one.
pub(super) fn auth_required(ctx: &Ctx<'_>) -> bool {
    !ctx.client.authenticated && !ctx.server.acl.default_open()
}

const WRONGPASS: Reply<'static> =
    Reply::error("WRONGPASS invalid username-password pair or user is disabled.");

/// Checks `user` and `password` and, when they match, logs the client in as that user. A
/// failure goes to ACL LOG (`object` is the command name as sent).
fn authenticate(
    ctx: &mut Ctx<'_>,
    object: &[u8],
    user: &[u8],
    password: &[u8],
) -> Result<(), Reply<'static>> {
    match ctx.server.acl.authenticate(user, password) {
        Some(handle) => {
            ctx.client.authenticated = true;
            ctx.client.user = handle;
            Ok(())
        }
        None => {
            super::acl::record_failed_login(ctx, object, user);
            Err(WRONGPASS)
        }
    }
}

/// Compares in time that depends only on the length of `secret`, so a client cannot find the
/// password byte by byte from reply timings.
pub fn constant_time_eq(secret: &[u8], given: &[u8]) -> bool {
    let mut diff = secret.len() ^ given.len();
    for (i, &s) in secret.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!s);
        diff |= usize::from(s ^ g);
    }
    std::hint::black_box(diff) == 0
}

fn auth<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let object = args.first().map_or(&b"auth"[..], |a| a.as_ref());
    let result = match args {
        [_, password] => {
            if ctx.server.acl.default_user().nopass {
                return Reply::error(
                    "ERR AUTH <password> called without any password configured for the default \
                     user. Are you sure your configuration is correct?",
                );
            }
            authenticate(ctx, object, b"default", password)
        }
        [_, user, password] => authenticate(ctx, object, user, password),
        _ => return SYNTAX,
    };
    match result {
        Ok(()) => Reply::OK,
        Err(error) => error,
    }
}

fn hello<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let mut version = None;
    let mut options = args.get(1..).unwrap_or_default();
    if let [protover, rest @ ..] = options {
        match int_arg(protover) {
            Ok(n @ 2..=3) => version = Some(n),
            Ok(_) => return Reply::error("NOPROTO unsupported protocol version"),
            Err(_) => {
                return Reply::error("ERR Protocol version is not an integer or out of range")
            }
        }
        options = rest;
    }
    let mut credentials = None;
    let mut name = None;
    loop {
        options = match options {
            [] => break,
            [option, user, password, rest @ ..] if option.eq_ignore_ascii_case(b"AUTH") => {
                credentials = Some((user, password));
                rest
            }
            [option, value, rest @ ..] if option.eq_ignore_ascii_case(b"SETNAME") => {
                if let Err(error) = check_client_name(value) {
                    return error;
                }
                name = Some(value);
                rest
            }
            [option, ..] => {
                let mut message = b"ERR Syntax error in HELLO option '".to_vec();
                message.extend_from_slice(super::c_string(option, usize::MAX));
                message.push(b'\'');
                return Reply::error_bytes(super::one_line(message));
            }
        };
    }
    if let Some((user, password)) = credentials {
        let object = args.first().map_or(&b"hello"[..], |a| a.as_ref());
        if let Err(error) = authenticate(ctx, object, user, password) {
            return error;
        }
    }
    // Redis asks whether this client logged in, not whether a password is needed now: a client
    // that connected while one was needed must log in, even after it is removed.
    if !ctx.client.authenticated {
        return Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO AUTH <user> <pass> option can be used to authenticate the client and select \
             the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name {
        ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
    }
    if let Some(version) = version {
        ctx.client.resp3 = version == 3;
    }
    let field = |name: &'static str| Reply::bulk(name.as_bytes());
    Reply::Map(vec![
        (field("server"), field("redis")),
        (field("version"), field(super::server::REDIS_VERSION)),
        (
            field("proto"),
            Reply::Integer(if ctx.client.resp3 { 3 } else { 2 }),
        ),
        (field("id"), Reply::Integer(ctx.client.id as i64)),
        (field("mode"), field("standalone")),
        (
            field("role"),
            field(if ctx.server.repl.is_replica() {
                "replica"
            } else {
                "master"
            }),
        ),
        (field("modules"), Reply::Array(Vec::new())),
    ])
}

/// Redis's rule for client names: printable ASCII without spaces.
fn check_client_name(name: &[u8]) -> Result<(), Reply<'static>> {
    if name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(())
    } else {
        Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

fn ping<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    if ctx.client.in_subscribe_mode() {
        // Redis answers a subscribed RESP2 client in the shape of a message: `pong` and the
        // argument (empty when none).
        let message = args.get(1).map_or(&b""[..], |m| m.as_ref());
        return Reply::Array(vec![
            Reply::bulk(b"pong"),
            Reply::bulk_owned(message.to_vec()),
        ]);
    }
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
    if let Err(error) = check_client_name(name) {
        return error;
    }
    ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
    Reply::OK
}

/// The bytes of a command's arguments: CLIENT LIST's `argv-mem` for the client running it.
pub(super) fn argv_mem(args: &[Arg<'_>]) -> usize {
    args.iter().map(|arg| arg.len()).sum()
}

/// One CLIENT LIST line for `info`; the calling client's own line uses its live state, and
/// `argv_mem` is the size of the arguments of the command it is running. Not inlined: CLIENT
/// LIST, CLIENT INFO and ACL LOG share one copy.
#[inline(never)]
pub(super) fn client_line(
    info: &ClientInfo,
    me: &ClientState,
    argv_mem: usize,
    acl: &crate::acl::Acl,
    now: Instant,
    out: &mut String,
) {
    let is_me = info.id == me.id;
    let user = if info.master {
        // The primary's stream runs with every right, as Redis's master client (no user).
        "(superuser)".into()
    } else {
        String::from_utf8_lossy(super::acl::user_name(
            acl,
            if is_me { me.user } else { info.user },
        ))
    };
    let name = if is_me { &me.name } else { &info.name };
    let name = name
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let (cmd, resp3) = if is_me {
        (me.last_cmd, me.resp3)
    } else {
        (info.cmd, info.resp == 3)
    };
    let idle = if is_me {
        0
    } else {
        now.saturating_duration_since(info.last_active).as_secs()
    };
    let (sub, psub, ssub, multi, multi_mem, argv_mem) = if is_me {
        let multi = me.multi.as_ref().map(|queue| queue.count);
        let multi_mem = me.multi.as_ref().map_or(0, |queue| queue.requests.len());
        let subs = &me.subs;
        let (channels, patterns, shard) =
            (subs.channels.len(), subs.patterns.len(), subs.shard.len());
        (channels, patterns, shard, multi, multi_mem, argv_mem)
    } else {
        // Between two turns of the loop no other client is running a command.
        (
            info.sub,
            info.psub,
            info.ssub,
            info.multi,
            info.multi_mem,
            0,
        )
    };
    // Redis's letters, in its order: S replica, M our primary, P subscribed, x inside MULTI,
    // b blocked (in WAIT); N for none.
    let mut flags = String::new();
    for (set, letter) in [
        (info.replica, 'S'),
        (info.master, 'M'),
        (sub + psub + ssub > 0, 'P'),
        (multi.is_some(), 'x'),
        (info.blocked, 'b'),
    ] {
        if set {
            flags.push(letter);
        }
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let multi = multi.map_or(-1, |count| count as i64);
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd={} name={name} age={} idle={idle} flags={flags} db=0 \
         sub={sub} psub={psub} ssub={ssub} multi={multi} qbuf={} qbuf-free={} argv-mem={argv_mem} \
         multi-mem={multi_mem} rbs={} rbp={} obl={} oll=0 omem={} tot-mem={} events={} cmd={} \
         user={user} redir=-1 resp={}",
        info.id,
        info.addr,
        info.laddr,
        info.fd,
        now.saturating_duration_since(info.created).as_secs(),
        info.qbuf,
        info.qbuf_free,
        info.rbs,
        info.rbp,
        info.obl,
        info.omem,
        // What the client's buffers and queue hold: the buffers themselves, not the bytes
        // of the connection's bookkeeping Redis adds in.
        info.rbs + info.omem + multi_mem + argv_mem,
        if info.writable { "rw" } else { "r" },
        if cmd.is_empty() { "NULL" } else { cmd },
        if resp3 { 3 } else { 2 },
    );
}

fn client_list<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let mut ids: Option<Vec<u64>> = None;
    let mut wanted_type = None;
    let mut options = args.get(2..).unwrap_or_default();
    loop {
        options = match options {
            [] => break,
            [option, kind, rest @ ..] if option.eq_ignore_ascii_case(b"TYPE") => {
                match client_type(kind) {
                    Ok(kind) => wanted_type = Some(kind),
                    Err(error) => return error,
                }
                rest
            }
            [option, rest @ ..] if option.eq_ignore_ascii_case(b"ID") && !rest.is_empty() => {
                let mut wanted = Vec::new();
                for id in rest {
                    match int_arg(id) {
                        // Ids are positive; 0 or less is valid and matches nobody, as in Redis.
                        Ok(id) => wanted.extend(u64::try_from(id).ok()),
                        Err(_) => return Reply::error("ERR Invalid client ID"),
                    }
                }
                ids = Some(wanted);
                &[]
            }
            _ => return SYNTAX,
        };
    }
    let argv = argv_mem(args);
    let now = Instant::now();
    let mut text = String::new();
    let mut infos: Vec<&ClientInfo> = ctx.server.clients.iter().flatten().collect();
    infos.sort_by_key(|info| info.id);
    for info in infos {
        let kind_ok = wanted_type.is_none_or(|kind| type_of(info, ctx.client) == kind);
        if kind_ok && ids.as_ref().is_none_or(|ids| ids.contains(&info.id)) {
            client_line(info, ctx.client, argv, &ctx.server.acl, now, &mut text);
        }
    }
    Reply::Text(text)
}

/// The kinds of client CLIENT LIST and CLIENT KILL filter by, as Redis classifies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    /// Subscribed to a channel or pattern.
    Pubsub,
    /// The connection to this server's primary: never listed, as it is no client of ours.
    Master,
    /// A replica's connection: TYPE normal never matches it, which is what Sentinel relies on
    /// to kill clients but never replication links.
    Replica,
}

/// CLIENT LIST/KILL TYPE's argument.
fn client_type(kind: &[u8]) -> Result<ClientType, Reply<'static>> {
    match kind.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(ClientType::Normal),
        b"pubsub" => Ok(ClientType::Pubsub),
        b"master" => Ok(ClientType::Master),
        b"replica" | b"slave" => Ok(ClientType::Replica),
        _ => {
            let mut message = b"ERR Unknown client type '".to_vec();
            message.extend_from_slice(kind);
            message.push(b'\'');
            Err(Reply::error_bytes(super::one_line(message)))
        }
    }
}

/// What kind of client `info` describes (the caller's own from its live state).
fn type_of(info: &ClientInfo, me: &ClientState) -> ClientType {
    if info.replica {
        return ClientType::Replica;
    }
    if info.master {
        return ClientType::Master;
    }
    let subscribed = if info.id == me.id {
        me.subs.active()
    } else {
        info.sub + info.psub + info.ssub > 0
    };
    if subscribed {
        ClientType::Pubsub
    } else {
        ClientType::Normal
    }
}

fn client_info<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let me = ctx.client.id;
    let Some(info) = ctx.server.clients.iter().flatten().find(|i| i.id == me) else {
        // Only the replayer of the log runs commands without a connection.
        return Reply::Text(String::new());
    };
    let mut text = String::new();
    let argv = argv_mem(args);
    client_line(
        info,
        ctx.client,
        argv,
        &ctx.server.acl,
        Instant::now(),
        &mut text,
    );
    Reply::Text(text)
}

/// Which clients a CLIENT KILL filter matches.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    kind: Option<ClientType>,
    user: Option<crate::acl::UserRef>,
    skip_me: bool,
    max_age: Option<u64>,
}

fn client_kill<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let me = ctx.client.id;
    if let [_, _, addr] = args {
        // The old form: one address, an error when nobody has it.
        let addr = String::from_utf8_lossy(addr);
        let Some(found) = ctx
            .server
            .clients
            .iter()
            .enumerate()
            .find_map(|(key, slot)| {
                let info = slot.as_ref()?;
                (info.addr.to_string() == addr).then_some((key, info.id))
            })
        else {
            return Reply::error("ERR No such client");
        };
        kill(ctx, found);
        return Reply::OK;
    }
    let mut filter = KillFilter {
        skip_me: true,
        ..KillFilter::default()
    };
    let options = args.get(2..).unwrap_or_default();
    if options.len() % 2 != 0 {
        return SYNTAX;
    }
    for pair in options.chunks(2) {
        let [option, value] = pair else {
            return SYNTAX;
        };
        let text = String::from_utf8_lossy(value).into_owned();
        match option.to_ascii_lowercase().as_slice() {
            b"id" => match int_arg(value) {
                Ok(id) if id > 0 => filter.id = Some(id as u64),
                _ => return Reply::error("ERR client-id should be greater than 0"),
            },
            b"addr" => filter.addr = Some(text),
            b"laddr" => filter.laddr = Some(text),
            b"type" => match client_type(value) {
                Ok(kind) => filter.kind = Some(kind),
                Err(error) => return error,
            },
            b"user" => match ctx.server.acl.find(value) {
                Some((user, _)) => filter.user = Some(user),
                None => return Reply::error_owned(format!("ERR No such user '{text}'")),
            },
            b"skipme" => match text.to_ascii_lowercase().as_str() {
                "yes" => filter.skip_me = true,
                "no" => filter.skip_me = false,
                _ => return SYNTAX,
            },
            b"maxage" => match int_arg(value) {
                Ok(age) if age >= 0 => filter.max_age = Some(age as u64),
                _ => return SYNTAX,
            },
            _ => return SYNTAX,
        }
    }
    let now = Instant::now();
    let doomed: Vec<(usize, u64)> = ctx
        .server
        .clients
        .iter()
        .enumerate()
        .filter_map(|(key, slot)| Some((key, slot.as_ref()?)))
        .filter(|(_, info)| {
            filter
                .kind
                .is_none_or(|kind| type_of(info, ctx.client) == kind)
                && filter.id.is_none_or(|id| id == info.id)
                && filter
                    .addr
                    .as_ref()
                    .is_none_or(|a| *a == info.addr.to_string())
                && filter
                    .laddr
                    .as_ref()
                    .is_none_or(|a| *a == info.laddr.to_string())
                // The link to the primary runs as no user (Redis's master client): never
                // matched by USER.
                && filter.user.is_none_or(|u| {
                    !info.master
                        && u == if info.id == me {
                        ctx.client.user
                    } else {
                        info.user
                    }
                })
                && filter
                    .max_age
                    .is_none_or(|age| now.saturating_duration_since(info.created).as_secs() > age)
                && !(filter.skip_me && info.id == me)
        })
        .map(|(key, info)| (key, info.id))
        .collect();
    for &found in &doomed {
        kill(ctx, found);
    }
    Reply::Integer(doomed.len() as i64)
}

/// Asks the event loop to close the client at slab `key` with `id`; the caller itself closes
/// once its reply is sent.
fn kill(ctx: &mut Ctx<'_>, (key, id): (usize, u64)) {
    if id == ctx.client.id {
        ctx.client.flow = Flow::Close;
    } else {
        ctx.server.kill.push((key, id, "killed by CLIENT KILL"));
    }
}

/// CLIENT SETINFO (Redis 7.2, which redis-py sends on connecting): acknowledged and not kept;
/// pocketkv reports Redis 7.0's CLIENT LIST fields, which do not show it.
fn client_setinfo<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args.get(2) {
        Some(a) if a.eq_ignore_ascii_case(b"lib-name") || a.eq_ignore_ascii_case(b"lib-ver") => {
            Reply::OK
        }
        _ => Reply::error("ERR Unrecognized option"),
    }
}

fn client_getname<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::from_option(ctx.client.name.as_deref())
}

fn client_id<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(ctx.client.id as i64)
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn password_comparison_is_exact() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(constant_time_eq(b"", b""));
        for other in [&b"secreT"[..], b"secre", b"secrets", b"", b"\0ecret"] {
            assert!(!constant_time_eq(b"secret", other), "{other:?}");
        }
        // A given password that runs past the secret differs by its length alone.
        assert!(!constant_time_eq(b"", b"x"));
    }
}
