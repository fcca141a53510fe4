//! Pub/Sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, their sharded
//! forms SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH (without a cluster, a namespace of channels of its
//! own, as in Redis 7.0), PUBSUB, RESET.
//!
//! Handlers change the registry and answer with frames; PUBLISH leaves its messages in the
//! registry's outbox, and the event loop delivers them after the command.

use super::{wrong_arity, Arg, Ctx, Spec};
use crate::protocol::Reply;
use crate::pubsub::Kind;

const G: &str = "pubsub";
const SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const INSPECT: &[&str] = &["pubsub", "loading", "stale"];
/// As Redis 7.0.15's COMMAND shows them (its `may_replicate` is not among the flags it lists).
const PUBLISH: &[&str] = &["pubsub", "loading", "stale", "fast"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("subscribe", -2, subscribe).flags(SUB).doc(G, "channel [channel ...]", "receive messages published to channels"),
    Spec::new("unsubscribe", -1, unsubscribe).flags(SUB).doc(G, "[channel ...]", "stop receiving from channels (all when none named)"),
    Spec::new("psubscribe", -2, psubscribe).flags(SUB).doc(G, "pattern [pattern ...]", "receive messages from channels matching globs"),
    Spec::new("punsubscribe", -1, punsubscribe).flags(SUB).doc(G, "[pattern ...]", "stop receiving from patterns (all when none named)"),
    Spec::new("publish", 3, publish).flags(PUBLISH).replicates()
        .doc(G, "channel message", "send a message; how many subscribers got it"),
    Spec::new("ssubscribe", -2, ssubscribe).flags(SUB).not_keys(1, -1, 1)
        .doc(G, "shardchannel [shardchannel ...]", "receive messages published to shard channels"),
    Spec::new("sunsubscribe", -1, sunsubscribe).flags(SUB).not_keys(1, -1, 1)
        .doc(G, "[shardchannel ...]", "stop receiving from shard channels (all when none named)"),
    Spec::new("spublish", 3, spublish).flags(PUBLISH).replicates().not_keys(1, 1, 1)
        .doc(G, "shardchannel message", "send a message to a shard channel; how many got it"),
    Spec::new("pubsub", -2, pubsub)
        .doc(G, "CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | SHARDCHANNELS [pattern] | SHARDNUMSUB [shardchannel ...]", "inspect subscriptions")
        .subcommands(&[
            Spec::new("pubsub|channels", -2, pubsub_channels).flags(INSPECT)
                .doc(G, "[pattern]", "channels with subscribers, matching the glob if given"),
            Spec::new("pubsub|numsub", -2, pubsub_numsub).flags(INSPECT)
                .doc(G, "[channel ...]", "each channel and its number of subscribers"),
            Spec::new("pubsub|numpat", 2, pubsub_numpat).flags(INSPECT)
                .doc(G, "", "number of patterns subscribed to"),
            Spec::new("pubsub|shardchannels", -2, pubsub_shardchannels).flags(INSPECT)
                .doc(G, "[pattern]", "shard channels with subscribers, matching the glob if given"),
            Spec::new("pubsub|shardnumsub", -2, pubsub_shardnumsub).flags(INSPECT)
                .doc(G, "[shardchannel ...]", "each shard channel and its number of subscribers"),
            super::help_entry("pubsub|help"),
        ]),
    Spec::new("reset", 1, reset).flags(&["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"])
        .doc("connection", "", "end subscriptions, forget name, RESP version and authentication"),
];

/// The commands a RESP2 client may run while subscribed to anything (Redis's list).
pub(super) fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
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

/// The frame kinds of each namespace: (subscribe, unsubscribe).
fn kinds(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channels => ("subscribe", "unsubscribe"),
        Kind::Patterns => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

/// SUBSCRIBE, PSUBSCRIBE and SSUBSCRIBE: one frame per name, in order.
fn join<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], kind: Kind) -> Reply<'a> {
    let who = ctx.client.subscriber();
    let limit = ctx.server.config.max_subscriptions;
    let mut frames = Vec::with_capacity(args.len());
    for name in args.iter().skip(1) {
        let subs = &mut ctx.client.subs;
        if !subs.names(kind).contains_key(name.as_ref()) {
            if subs.total() >= limit {
                // pocketkv's own bound, so one client cannot make every PUBLISH walk an
                // unbounded list of patterns; the frames before it stand.
                frames.push(Reply::error(
                    "ERR too many subscriptions for this client (pubsub-max-subscriptions)",
                ));
                break;
            }
            subs.names(kind).insert(name.to_vec(), Vec::new());
            ctx.server.pubsub.join(who, name, kind);
        }
        frames.push(frame(
            kinds(kind).0,
            Some(name),
            ctx.client.subs.count(kind),
        ));
    }
    Reply::Many(frames)
}

/// UNSUBSCRIBE, PUNSUBSCRIBE and SUNSUBSCRIBE: the names given, or every one held; a single
/// frame with a nil name when there is nothing to leave, as in Redis.
fn leave<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], kind: Kind) -> Reply<'a> {
    let who = ctx.client.subscriber();
    let name_of = kinds(kind).1;
    let named = args.get(1..).unwrap_or_default();
    // Every one held: taken out of the client's list whole, so nothing is copied.
    let held = if named.is_empty() {
        std::mem::take(ctx.client.subs.names(kind))
    } else {
        Default::default()
    };
    if named.is_empty() && held.is_empty() {
        return Reply::Many(vec![frame(name_of, None, ctx.client.subs.count(kind))]);
    }
    let mut frames = Vec::with_capacity(named.len() + held.len());
    for name in named.iter().map(|n| n.as_ref()) {
        if ctx.client.subs.names(kind).remove(name).is_some() {
            ctx.server.pubsub.leave(who, name, kind);
        }
        frames.push(frame(name_of, Some(name), ctx.client.subs.count(kind)));
    }
    // Each frame counts what is left after it, as if they were left one at a time.
    let mut left = ctx.client.subs.count(kind) + held.len();
    for name in held.keys() {
        ctx.server.pubsub.leave(who, name, kind);
        left -= 1;
        frames.push(frame(name_of, Some(name), left));
    }
    Reply::Many(frames)
}

fn subscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    join(ctx, args, Kind::Channels)
}

fn psubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    join(ctx, args, Kind::Patterns)
}

fn ssubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    if ctx.client.in_exec {
        // Redis refuses it to a client that expects one reply per command (inside EXEC);
        // SUBSCRIBE is let through there only for compatibility with older versions.
        return Reply::error("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    join(ctx, args, Kind::Shard)
}

fn unsubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    leave(ctx, args, Kind::Channels)
}

fn punsubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    leave(ctx, args, Kind::Patterns)
}

fn sunsubscribe<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    leave(ctx, args, Kind::Shard)
}

fn publish<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    send(ctx, args, false)
}

fn spublish<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    send(ctx, args, true)
}

/// PUBLISH and SPUBLISH. Both reach replicas, whose subscribers get the message too: Redis
/// propagates them to the replication stream (not to the append-only log) when not in a cluster.
fn send<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], shard: bool) -> Reply<'a> {
    let [_, channel, message] = args else {
        return wrong_arity(if shard { "spublish" } else { "publish" });
    };
    ctx.replicate = true;
    Reply::Integer(ctx.server.pubsub.publish(channel, message, shard) as i64)
}

fn pubsub<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    // Reached only without a subcommand, which the arity check already refuses.
    wrong_arity("pubsub")
}

fn pubsub_channels<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    list_channels(ctx, args, Kind::Channels)
}

fn pubsub_shardchannels<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    list_channels(ctx, args, Kind::Shard)
}

fn list_channels<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], kind: Kind) -> Reply<'a> {
    if args.len() > 3 {
        // Redis's handler refuses a second pattern so, naming the subcommand as sent.
        let mut message = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
        message.extend_from_slice(args.get(1).map_or(&b""[..], |a| a.as_ref()));
        message.extend_from_slice(b"'. Try PUBSUB HELP.");
        return Reply::error_bytes(super::one_line(message));
    }
    let pattern = args.get(2).map(|p| p.as_ref());
    let channels = ctx.server.pubsub.channels(pattern, kind);
    Reply::Array(channels.into_iter().map(Reply::bulk).collect())
}

fn pubsub_numsub<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    count_subscribers(ctx, args, Kind::Channels)
}

fn pubsub_shardnumsub<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    count_subscribers(ctx, args, Kind::Shard)
}

fn count_subscribers<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>], kind: Kind) -> Reply<'a> {
    let registry = &ctx.server.pubsub;
    let mut items = Vec::with_capacity(args.len().saturating_sub(2) * 2);
    for channel in args.iter().skip(2) {
        items.push(Reply::bulk_owned(channel.to_vec()));
        items.push(Reply::Integer(registry.numsub(channel, kind) as i64));
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
