//! Pub/Sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB, RESET.
//!
//! Handlers change the registry and answer with frames; PUBLISH leaves its messages in the
//! registry's outbox, and the event loop delivers them after the command.

use super::{wrong_arity, Arg, Ctx, Spec};
use crate::protocol::Reply;

const G: &str = "pubsub";
const SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const INSPECT: &[&str] = &["pubsub", "loading", "stale"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("subscribe", -2, subscribe).flags(SUB).doc(G, "channel [channel ...]", "receive messages published to channels"),
    Spec::new("unsubscribe", -1, unsubscribe).flags(SUB).doc(G, "[channel ...]", "stop receiving from channels (all when none named)"),
    Spec::new("psubscribe", -2, psubscribe).flags(SUB).doc(G, "pattern [pattern ...]", "receive messages from channels matching globs"),
    Spec::new("punsubscribe", -1, punsubscribe).flags(SUB).doc(G, "[pattern ...]", "stop receiving from patterns (all when none named)"),
    Spec::new("publish", 3, publish).flags(&["pubsub", "loading", "stale", "fast", "may_replicate"])
        .doc(G, "channel message", "send a message; how many subscribers got it"),
    Spec::new("pubsub", -2, pubsub)
        .doc(G, "CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT", "inspect subscriptions")
        .subcommands(&[
            Spec::new("pubsub|channels", -2, pubsub_channels).flags(INSPECT)
                .doc(G, "[pattern]", "channels with subscribers, matching the glob if given"),
            Spec::new("pubsub|numsub", -2, pubsub_numsub).flags(INSPECT)
                .doc(G, "[channel ...]", "each channel and its number of subscribers"),
            Spec::new("pubsub|numpat", 2, pubsub_numpat).flags(INSPECT)
                .doc(G, "", "number of patterns subscribed to"),
            super::help_entry("pubsub|help"),
        ]),
    Spec::new("reset", 1, reset).flags(&["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"])
        .doc("connection", "", "end subscriptions, forget name, RESP version and authentication"),
];

/// The commands a RESP2 client may run while subscribed (Redis's list, less the sharded ones
/// pocketkv does not have).
pub(super) fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
    )
}

/// Redis's refusal of any other command while subscribed; `name` is the full name
/// (`client|list`).
pub(super) fn refused_while_subscribed(name: &str) -> Reply<'static> {
    Reply::error_owned(
        [
            "ERR Can't execute '",
            name,
            "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this \
             context",
        ]
        .concat(),
    )
}

/// One (un)subscribe confirmation: the kind, the channel or pattern (nil when there was none to
/// leave), and how many the client is subscribed to now.
fn frame<'a>(kind: &'static str, name: Option<&[u8]>, count: usize) -> Reply<'a> {
    Reply::Push(vec![
        Reply::bulk(kind.as_bytes()),
        name.map_or(Reply::Nil, |n| Reply::bulk_owned(n.to_vec())),
        Reply::Integer(count as i64),
    ])
}

/// SUBSCRIBE and PSUBSCRIBE: one frame per name, in order.
fn join<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], patterns: bool) -> Reply<'a> {
    let who = ctx.client.subscriber();
    let limit = ctx.server.config.max_subscriptions;
    let kind = if patterns { "psubscribe" } else { "subscribe" };
    let mut frames = Vec::with_capacity(args.len());
    for name in args.iter().skip(1) {
        let subs = &mut ctx.client.subs;
        if !subs.names(patterns).contains_key(name.as_ref()) {
            if subs.count() >= limit {
                // pocketkv's own bound, so one client cannot make every PUBLISH walk an
                // unbounded list of patterns; the frames before it stand.
                frames.push(Reply::error(
                    "ERR too many subscriptions for this client (pubsub-max-subscriptions)",
                ));
                break;
            }
            subs.names(patterns).insert(name.to_vec(), Vec::new());
            ctx.server.pubsub.join(who, name, patterns);
        }
        frames.push(frame(kind, Some(name), ctx.client.subs.count()));
    }
    Reply::Many(frames)
}

/// UNSUBSCRIBE and PUNSUBSCRIBE: the names given, or every one held; a single frame with a nil
/// name when there is nothing to leave, as in Redis.
fn leave<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], patterns: bool) -> Reply<'a> {
    let who = ctx.client.subscriber();
    let kind = if patterns {
        "punsubscribe"
    } else {
        "unsubscribe"
    };
    let named = args.get(1..).unwrap_or_default();
    // Every one held: taken out of the client's list whole, so nothing is copied.
    let held = if named.is_empty() {
        std::mem::take(ctx.client.subs.names(patterns))
    } else {
        Default::default()
    };
    if named.is_empty() && held.is_empty() {
        return Reply::Many(vec![frame(kind, None, ctx.client.subs.count())]);
    }
    let mut frames = Vec::with_capacity(named.len() + held.len());
    for name in named.iter().map(|n| n.as_ref()) {
        if ctx.client.subs.names(patterns).remove(name).is_some() {
            ctx.server.pubsub.leave(who, name, patterns);
        }
        frames.push(frame(kind, Some(name), ctx.client.subs.count()));
    }
    // Each frame counts what is left after it, as if they were left one at a time.
    let mut left = ctx.client.subs.count() + held.len();
    for name in held.keys() {
        ctx.server.pubsub.leave(who, name, patterns);
        left -= 1;
        frames.push(frame(kind, Some(name), left));
    }
    Reply::Many(frames)
}

fn subscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    join(ctx, args, false)
}

fn psubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    join(ctx, args, true)
}

fn unsubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    leave(ctx, args, false)
}

fn punsubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    leave(ctx, args, true)
}

fn publish<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let [_, channel, message] = args else {
        return wrong_arity("publish");
    };
    Reply::Integer(ctx.server.pubsub.publish(channel, message) as i64)
}

fn pubsub<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    wrong_arity("pubsub")
}

fn pubsub_channels<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let pattern = args.get(2).map(|p| p.as_ref());
    let channels = ctx.server.pubsub.channels(pattern);
    Reply::Array(channels.into_iter().map(Reply::bulk).collect())
}

fn pubsub_numsub<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    let registry = &ctx.server.pubsub;
    let mut items = Vec::with_capacity(args.len().saturating_sub(2) * 2);
    for channel in args.iter().skip(2) {
        items.push(Reply::bulk_owned(channel.to_vec()));
        items.push(Reply::Integer(registry.numsub(channel) as i64));
    }
    Reply::Array(items)
}

fn pubsub_numpat<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::Integer(ctx.server.pubsub.numpat() as i64)
}

/// RESET: the connection as new, as Redis 7 does it: subscriptions end (without frames), the
/// name goes, RESP2 again, a transaction and watches are discarded, and the client is the
/// default user again, logged in only if it needs no password (Redis's clientSetDefaultAuth).
fn reset<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    let client = &mut *ctx.client;
    let subs = std::mem::take(&mut client.subs);
    ctx.server.pubsub.drop_client(client.subscriber(), &subs);
    client.multi = None;
    ctx.server.watches.unwatch_all(client);
    client.name = None;
    client.resp3 = false;
    client.user = crate::acl::DEFAULT_USER;
    client.authenticated = ctx.server.acl.default_open();
    Reply::Status("RESET".into())
}
