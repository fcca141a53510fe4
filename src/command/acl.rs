//! The ACL command family, and the permission check every command passes before it runs.

use std::time::Instant;

use super::{int_arg, Arg, Ctx, Spec, SYNTAX};
use crate::acl::{self, Context, Denied, LogEntry, Reason, User, UserRef};
use crate::protocol::Reply;

const G: &str = "server";
const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const PLAIN: &[&str] = &["noscript", "loading", "stale"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("acl", -2, acl)
        .doc(G, "SETUSER | GETUSER | DELUSER | LIST | USERS | WHOAMI | CAT | GENPASS | DRYRUN | LOG | SAVE | LOAD", "users and their permissions")
        .subcommands(&[
            Spec::new("acl|cat", -2, cat).flags(PLAIN).doc(G, "[category]", "the categories, or a category's commands"),
            Spec::new("acl|deluser", -3, deluser).flags(ADMIN).doc(G, "username [username ...]", "delete users, closing their connections"),
            Spec::new("acl|dryrun", -4, dryrun).flags(ADMIN).doc(G, "username command [arg ...]", "whether a user may run a command"),
            Spec::new("acl|genpass", -2, genpass).flags(PLAIN).doc(G, "[bits]", "a random password"),
            Spec::new("acl|getuser", 3, getuser).flags(ADMIN).doc(G, "username", "a user's rules"),
            Spec::new("acl|list", 2, list).flags(ADMIN).doc(G, "", "every user's rules, as in the aclfile"),
            Spec::new("acl|load", 2, load).flags(ADMIN).doc(G, "", "replace the users with the aclfile's"),
            Spec::new("acl|log", -2, log).flags(ADMIN).doc(G, "[count | RESET]", "refused commands and logins"),
            Spec::new("acl|save", 2, save).flags(ADMIN).doc(G, "", "write the users to the aclfile"),
            Spec::new("acl|setuser", -3, setuser).flags(ADMIN).doc(G, "username [rule ...]", "create or change a user"),
            Spec::new("acl|users", 2, users).flags(ADMIN).doc(G, "", "every user's name"),
            Spec::new("acl|whoami", 2, whoami).flags(PLAIN).doc(G, "", "this connection's user"),
            Spec::new("acl|help", 2, help).flags(PLAIN).doc(G, "", "print this help"),
        ]),
];

fn acl<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    super::wrong_arity("acl")
}

/// The permission check for `spec` run with `args` by the calling client, a user not allowed
/// everything (the caller asks [`acl::Acl::unrestricted`] first): `Err` holds the `-NOPERM`
/// reply, and the refusal is in ACL LOG and the audit log. `queueing`: the command is being
/// queued in MULTI; a denied command is refused then, as in Redis, and again when EXEC runs it.
#[inline]
pub fn check_acl(
    ctx: &mut Ctx<'_>,
    spec: &'static Spec,
    args: &[Arg<'_>],
    queueing: bool,
) -> Result<(), Reply<'static>> {
    match ctx
        .server
        .acl
        .check(ctx.client.user, spec.acl_command(), args)
    {
        Ok(()) => Ok(()),
        Err(denied) => Err(refuse(ctx, spec, args, queueing, denied)),
    }
}

/// Records a refusal and makes its reply: the rare path, out of line.
#[inline(never)]
fn refuse(
    ctx: &mut Ctx<'_>,
    spec: &'static Spec,
    args: &[Arg<'_>],
    queueing: bool,
    denied: Denied,
) -> Reply<'static> {
    let user = ctx.client.user;
    let context = if queueing || ctx.client.in_exec {
        Context::Multi
    } else {
        Context::Toplevel
    };
    // The table's names are Redis's full names (`config|get`); PUT, DELEX and the like are
    // named as sent, not as the command whose rights they take.
    let full_name = spec.name;
    let (reason, object) = match denied {
        Denied::Command => (Reason::Command, full_name.as_bytes()),
        Denied::Key(at) => (Reason::Key, args.get(at).map_or(&b""[..], |a| a.as_ref())),
        Denied::Channel(at) => (
            Reason::Channel,
            args.get(at).map_or(&b""[..], |a| a.as_ref()),
        ),
    };
    let username = user_name(&ctx.server.acl, user).to_vec();
    record(ctx, reason, context, object.to_vec(), username);
    Reply::error_bytes(denied.message(full_name))
}

/// Adds a refusal to ACL LOG and the audit log.
#[inline(never)]
pub(super) fn record(
    ctx: &mut Ctx<'_>,
    reason: Reason,
    context: Context,
    object: Vec<u8>,
    username: Vec<u8>,
) {
    let client_info = client_info(ctx);
    let unix_ms = super::unix_ms();
    if let Some(audit) = &ctx.server.audit {
        audit.denied(
            u128::from(unix_ms),
            ctx.client.peer,
            &username,
            reason.name(),
            &object,
        );
    }
    let max_len = ctx.server.config.acllog_max_len;
    ctx.server.acl.log.add(
        LogEntry {
            count: 1,
            reason,
            context,
            object,
            username,
            unix_ms,
            client_info,
        },
        max_len,
    );
}

/// The calling client as CLIENT LIST describes it.
#[inline(never)]
fn client_info(ctx: &Ctx<'_>) -> String {
    let me = ctx.client.id;
    let mut text = String::new();
    if let Some(info) = ctx.server.clients.iter().flatten().find(|i| i.id == me) {
        super::connection::client_line(
            info,
            ctx.client,
            &ctx.server.acl,
            Instant::now(),
            &mut text,
        );
    }
    if text.ends_with('\n') {
        text.pop();
    }
    text
}

/// The name of `user`, or `default` for a handle whose user was deleted.
pub(super) fn user_name(acl: &acl::Acl, user: UserRef) -> &[u8] {
    acl.get(user).map_or(&b"default"[..], |u| &u.name[..])
}

fn cat<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    match args {
        [_, _] => Reply::Array(
            acl::table::CATEGORIES
                .iter()
                .map(|c| Reply::bulk(c.as_bytes()))
                .collect(),
        ),
        [_, _, name] => {
            let Some(bit) = acl::category(name) else {
                let name = super::c_string(name, 128);
                return error(&[b"ERR Unknown category '", name, b"'"]);
            };
            Reply::Array(
                (0..acl::COUNT as u16)
                    .filter(|&id| acl::in_category(id, bit))
                    .map(|id| Reply::bulk(acl::name_of(id).as_bytes()))
                    .collect(),
            )
        }
        _ => subcommand_syntax(args),
    }
}

/// Redis's error for a known subcommand with the wrong arguments (named as sent).
fn subcommand_syntax(args: &[Arg<'_>]) -> Reply<'static> {
    let mut message = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    message.extend_from_slice(args.get(1).map_or(&b""[..], |a| a.as_ref()));
    message.extend_from_slice(b"'. Try ACL HELP.");
    Reply::error_bytes(super::one_line(message))
}

fn setuser<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let Some(name) = args.get(2) else {
        return SYNTAX;
    };
    if acl::has_spaces(name) {
        return Reply::error("ERR Usernames can't contain spaces or null characters");
    }
    let rules_args = args.get(3..).unwrap_or_default();
    let words: Vec<&[u8]> = rules_args.iter().map(|a| a.as_ref()).collect();
    let rules = match acl::merge_selectors(&words) {
        Ok(rules) => rules,
        Err(at) => {
            let mut message = b"ERR Unmatched parenthesis in acl selector starting at '".to_vec();
            message.extend_from_slice(rules_args.get(at).map_or(&b""[..], |a| a.as_ref()));
            message.extend_from_slice(b"'.");
            return Reply::error_bytes(super::one_line(message));
        }
    };
    // Applied to a copy, so a bad rule changes nothing.
    let all_channels = ctx.server.config.acl_pubsub_default_all;
    let mut user = ctx.server.acl.find(name).map_or_else(
        || User::with_pubsub_default(name, all_channels),
        |(_, u)| u.clone(),
    );
    user.set_pubsub_default(all_channels);
    for rule in &rules {
        if let Err(e) = user.apply(rule) {
            let mut message = b"ERR Error in ACL SETUSER modifier '".to_vec();
            message.extend_from_slice(rule);
            message.extend_from_slice(b"': ");
            message.extend_from_slice(e.message().as_bytes());
            return Reply::error_bytes(super::one_line(message));
        }
    }
    if let Some((handle, old)) = ctx.server.acl.find(name) {
        if let Some(upcoming) = user.narrowed_channels(old) {
            let doomed = revoked_subscribers(ctx, handle, &upcoming);
            let why = "ACL SETUSER revoked a channel it is subscribed to";
            disconnect_clients(ctx, doomed, why);
        }
    }
    ctx.server.acl.put(user);
    Reply::OK
}

/// The clients logged in as `user` subscribed to a channel or pattern that `upcoming` (the
/// user's channel patterns from now on) no longer allows: Redis disconnects them.
#[inline(never)]
fn revoked_subscribers(ctx: &Ctx<'_>, user: UserRef, upcoming: &[&[u8]]) -> Vec<(usize, u64)> {
    let mut doomed: Vec<(usize, u64)> = Vec::new();
    for (name, is_pattern, subscribers) in ctx.server.pubsub.each() {
        if acl::channel_allowed(upcoming, name, is_pattern) {
            continue;
        }
        for who in subscribers {
            let theirs = if who.id == ctx.client.id {
                ctx.client.user == user
            } else {
                ctx.server.clients.get(who.key).is_some_and(|slot| {
                    slot.as_ref()
                        .is_some_and(|info| info.id == who.id && info.user == user)
                })
            };
            if theirs && !doomed.contains(&(who.key, who.id)) {
                doomed.push((who.key, who.id));
            }
        }
    }
    doomed
}

fn deluser<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let names = args.get(2..).unwrap_or_default();
    if names.iter().any(|n| n.as_ref() == b"default") {
        return Reply::error("ERR The 'default' user cannot be removed");
    }
    let mut deleted = 0;
    for name in names {
        if let Some(handle) = ctx.server.acl.remove(name) {
            disconnect(ctx, &[handle], "ACL DELUSER deleted its user");
            deleted += 1;
        }
    }
    Reply::Integer(deleted)
}

/// Closes every connection logged in as one of `users` (the caller's own after its reply), as
/// Redis does when a user is deleted or reloaded.
fn disconnect(ctx: &mut Ctx<'_>, users: &[UserRef], why: &'static str) {
    let me = ctx.client.id;
    let mut doomed: Vec<(usize, u64)> = ctx
        .server
        .clients
        .iter()
        .enumerate()
        .filter_map(|(key, slot)| {
            let info = slot.as_ref()?;
            (info.id != me && users.contains(&info.user)).then_some((key, info.id))
        })
        .collect();
    if users.contains(&ctx.client.user) {
        doomed.push((ctx.client.slot, me));
    }
    disconnect_clients(ctx, doomed, why);
}

/// Closes the clients `doomed` names (slab key, id): the caller's own after its reply, the
/// others when the command is done; `why` goes to the log.
fn disconnect_clients(ctx: &mut Ctx<'_>, doomed: Vec<(usize, u64)>, why: &'static str) {
    let me = ctx.client.id;
    for (key, id) in doomed {
        if id == me {
            ctx.client.user = acl::DEFAULT_USER;
            ctx.client.authenticated = false;
            ctx.client.flow = super::Flow::Close;
        } else {
            ctx.server.kill.push((key, id, why));
        }
    }
}

fn getuser<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let Some((_, user)) = args.get(2).and_then(|name| ctx.server.acl.find(name)) else {
        return Reply::Nil;
    };
    let field = |name: &'static str| Reply::bulk(name.as_bytes());
    let text = Reply::bulk_owned;
    let describe = |s: &acl::Selector| {
        vec![
            (field("commands"), text(s.commands_text())),
            (field("keys"), text(s.keys_text())),
            (field("channels"), text(s.channels_text())),
        ]
    };
    let mut fields = vec![
        (
            field("flags"),
            Reply::Set(user.flags().into_iter().map(field).collect()),
        ),
        (
            field("passwords"),
            Reply::Array(
                user.password_hashes()
                    .into_iter()
                    .map(|h| text(h.into_bytes()))
                    .collect(),
            ),
        ),
    ];
    let (root, others) = match user.selectors().split_first() {
        Some(split) => split,
        None => return Reply::Nil,
    };
    fields.extend(describe(root));
    fields.push((
        field("selectors"),
        Reply::Array(others.iter().map(|s| Reply::Map(describe(s))).collect()),
    ));
    Reply::Map(fields)
}

fn list<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Array(
        ctx.server
            .acl
            .users()
            .into_iter()
            .map(|u| {
                let mut line = Vec::new();
                acl::put(&mut line, &[b"user ", &u.name, b" ", &u.describe()]);
                Reply::bulk_owned(line)
            })
            .collect(),
    )
}

fn users<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Array(
        ctx.server
            .acl
            .users()
            .into_iter()
            .map(|u| Reply::bulk_owned(u.name.clone()))
            .collect(),
    )
}

fn whoami<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::bulk_owned(user_name(&ctx.server.acl, ctx.client.user).to_vec())
}

const NO_ACLFILE: Reply<'static> = Reply::error(
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify users \
     via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis \
     configuration file set) in order to store users in the Redis configuration.",
);

fn load<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    if ctx.server.config.aclfile.is_empty() {
        return NO_ACLFILE;
    }
    let all_channels = ctx.server.config.acl_pubsub_default_all;
    match acl::load_file(&ctx.server.config.aclfile, all_channels) {
        Ok(users) => {
            let stale = ctx.server.acl.replace_all(users);
            disconnect(ctx, &stale, "ACL LOAD removed or changed its user");
            Reply::OK
        }
        Err(e) => error(&[b"ERR ", e.to_string().as_bytes()]),
    }
}

fn save<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    if ctx.server.config.aclfile.is_empty() {
        return NO_ACLFILE;
    }
    match acl::save_file(&ctx.server.config.aclfile, &ctx.server.acl) {
        Ok(()) => Reply::OK,
        Err(e) => {
            log::warn!("ACL SAVE to {}: {e}", ctx.server.config.aclfile);
            Reply::error(
                "ERR There was an error trying to save the ACLs. Please check the server logs \
                 for more information",
            )
        }
    }
}

/// Most bits ACL GENPASS gives.
const GENPASS_MAX_BITS: i64 = 4096;

fn genpass<'a>(_: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let bits = match args {
        [_, _] => 256,
        [_, _, bits] => match int_arg(bits) {
            Ok(bits) => bits,
            Err(e) => return e,
        },
        _ => return subcommand_syntax(args),
    };
    if bits <= 0 || bits > GENPASS_MAX_BITS {
        return Reply::error(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a \
             positive number up to 4096",
        );
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut random = vec![0u8; chars.div_ceil(2)];
    if !fill_random(&mut random) {
        return Reply::error("ERR no random bytes available");
    }
    let mut text = acl::hex(&random);
    text.truncate(chars);
    Reply::bulk_owned(text.into_bytes())
}

/// Fills `buf` from the kernel's random source (getrandom(2)); false if it cannot.
fn fill_random(buf: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, which is writable for its length.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(got) {
            Ok(n) if n > 0 => filled += n,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
    true
}

fn log<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let count = match args {
        [_, _] => 10,
        [_, _, arg] if arg.eq_ignore_ascii_case(b"RESET") => {
            ctx.server.acl.log.clear();
            return Reply::OK;
        }
        [_, _, arg] => match int_arg(arg) {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) => return e,
        },
        _ => return subcommand_syntax(args),
    };
    let now = super::unix_ms();
    let field = |name: &'static str| Reply::bulk(name.as_bytes());
    let entries = ctx.server.acl.log.newest(count).map(|e| {
        let age = acl::age_text(now.saturating_sub(e.unix_ms));
        Reply::Map(vec![
            (field("count"), Reply::Integer(e.count as i64)),
            (field("reason"), field(e.reason.name())),
            (field("context"), field(e.context.name())),
            (field("object"), Reply::bulk_owned(e.object.clone())),
            (field("username"), Reply::bulk_owned(e.username.clone())),
            (field("age-seconds"), Reply::Double(age.into())),
            (
                field("client-info"),
                Reply::bulk_owned(e.client_info.clone().into_bytes()),
            ),
        ])
    });
    Reply::Array(entries.collect())
}

fn dryrun<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let (Some(name), Some(command)) = (args.get(2), args.get(3)) else {
        return SYNTAX;
    };
    let Some((handle, _)) = ctx.server.acl.find(name) else {
        return error(&[b"ERR User '", name, b"' not found"]);
    };
    let call = args.get(3..).unwrap_or_default();
    let not_found = || error(&[b"ERR Command '", command, b"' not found"]);
    let (acl_command, full_name, arity) = match super::resolve(call) {
        Some(Ok(spec)) => (*spec.acl_command(), spec.name, None),
        Some(Err(_)) => match super::lookup(command) {
            // Known, but the arguments do not fit: Redis's arity error, without the dialect's.
            Some(spec) if !spec.subcommands.is_empty() && call.len() >= 2 => return not_found(),
            Some(spec) => (*spec.acl_command(), spec.name, Some(spec.name)),
            None => return not_found(),
        },
        // A command pocketkv lacks still has its rights in Redis's table.
        None => match acl::find(command) {
            Some(id) if acl::subcommands(id).is_empty() => {
                (acl::Command::from_id(id), acl::name_of(id), None)
            }
            _ => return not_found(),
        },
    };
    if let Some(name) = arity {
        let name = name.as_bytes();
        return error(&[b"ERR wrong number of arguments for '", name, b"' command"]);
    }
    let arg = |at: usize| call.get(at).map_or(&b""[..], |a| a.as_ref());
    let mut message = b"This user has no permissions to ".to_vec();
    match ctx.server.acl.check(handle, &acl_command, call) {
        Ok(()) => return Reply::OK,
        Err(Denied::Command) => acl::put(
            &mut message,
            &[b"run the '", full_name.as_bytes(), b"' command"],
        ),
        Err(Denied::Key(at)) => acl::put(&mut message, &[b"access the '", arg(at), b"' key"]),
        Err(Denied::Channel(at)) => {
            acl::put(&mut message, &[b"access the '", arg(at), b"' channel"])
        }
    }
    Reply::bulk_owned(message)
}

/// An error reply from parts (CR and LF made spaces).
fn error(parts: &[&[u8]]) -> Reply<'static> {
    let mut message = Vec::new();
    acl::put(&mut message, parts);
    Reply::error_bytes(super::one_line(message))
}

/// Redis's ACL HELP text, a line a reply (one string: no pointer per line in the binary).
const HELP: &str = concat!(
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\n",
    "CAT [<category>]\n",
    "    List all commands that belong to <category>, or all command categories\n",
    "    when no category is specified.\n",
    "DELUSER <username> [<username> ...]\n",
    "    Delete a list of users.\n",
    "DRYRUN <username> <command> [<arg> ...]\n",
    "    Returns whether the user can execute the given command without executing the command.\n",
    "GETUSER <username>\n",
    "    Get the user's details.\n",
    "GENPASS [<bits>]\n",
    "    Generate a secure 256-bit user password. The optional `bits` argument can\n",
    "    be used to specify a different size.\n",
    "LIST\n",
    "    Show users details in config file format.\n",
    "LOAD\n",
    "    Reload users from the ACL file.\n",
    "LOG [<count> | RESET]\n",
    "    Show the ACL log entries.\n",
    "SAVE\n",
    "    Save the current config to the ACL file.\n",
    "SETUSER <username> <attribute> [<attribute> ...]\n",
    "    Create or modify a user with the specified attributes.\n",
    "USERS\n",
    "    List all the registered usernames.\n",
    "WHOAMI\n",
    "    Return the current connection username.\n",
    "HELP\n",
    "    Prints this help.\n",
);

fn help<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Array(HELP.lines().map(|l| Reply::Status(l.into())).collect())
}

/// Logs a failed AUTH or HELLO AUTH (or HTTP login, as `AUTH`): `object` is the command name
/// as sent, `user` the name tried.
pub fn record_failed_login(ctx: &mut Ctx<'_>, object: &[u8], user: &[u8]) {
    record(
        ctx,
        Reason::Auth,
        Context::Toplevel,
        object.to_vec(),
        user.to_vec(),
    );
}
