//! Channel rights on real Pub/Sub: `&pattern`, `allchannels`, `resetchannels` and the
//! `acl-pubsub-default` setting enforced for SUBSCRIBE, PSUBSCRIBE and PUBLISH, and subscribers
//! disconnected when their user loses the channels they listen to. Every step is sent to a real
//! redis-server 7.0 and to pocketkv, and the replies (or the disconnections) compared.

mod common;

use common::redis::{text, Pair, Redis};
use common::{resp, Server};

impl Pair {
    /// Whether each server still serves this connection (a subscribed client's PING).
    fn alive(&mut self) -> (bool, bool) {
        let ping = resp(&["PING"]);
        let redis = self.redis.call_or_closed(&ping);
        let ours = self.ours.call_or_closed(&ping);
        if let (Some(r), Some(o)) = (&redis, &ours) {
            assert_eq!(text(o), text(r), "PING replies differ");
        }
        (redis.is_some(), ours.is_some())
    }
}

/// A connection to each, logged in as `user` (nopass).
fn login(redis: &Redis, ours: &Server, user: &str) -> Pair {
    let mut pair = Pair::new(redis, ours);
    pair.same(&["AUTH", user, "x"]);
    pair
}

#[test]
fn channel_rights_apply_to_subscribe_psubscribe_and_publish() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut admin = Pair::new(&redis, &ours);
    admin.same(&["CONFIG", "GET", "acl-pubsub-default"]);
    admin.same(&[
        "ACL", "SETUSER", "news", "on", "nopass", "~*", "+@all", "&news.*", "&alerts",
    ]);
    // No channel rule: none, as acl-pubsub-default resetchannels has it.
    admin.same(&["ACL", "SETUSER", "plain", "on", "nopass", "~*", "+@all"]);
    admin.same(&["ACL", "GETUSER", "plain"]);

    let mut sub = login(&redis, &ours, "news");
    sub.same(&["SUBSCRIBE", "news.1", "alerts"]);
    sub.same(&["SUBSCRIBE", "sports"]);
    sub.same(&["SUBSCRIBE", "news.2", "sports"]);
    sub.same(&["PSUBSCRIBE", "news.*"]);
    // A pattern is allowed only by the same pattern, not by one that matches it.
    sub.same(&["PSUBSCRIBE", "news.1*"]);
    sub.same(&["PSUBSCRIBE", "*"]);

    let mut publisher = login(&redis, &ours, "news");
    publisher.same(&["PUBLISH", "news.1", "hello"]);
    publisher.same(&["PUBLISH", "alerts", "fire"]);
    publisher.same(&["PUBLISH", "sports", "goal"]);
    publisher.same(&["PUBLISH", "news", "no dot"]);
    // The subscriber got what was published, in the same frames.
    for _ in 0..3 {
        let (r, o) = (sub.redis.reply(), sub.ours.reply());
        assert_eq!(text(&o), text(&r), "a delivery differs");
    }

    let mut plain = login(&redis, &ours, "plain");
    plain.same(&["SUBSCRIBE", "a"]);
    plain.same(&["PSUBSCRIBE", "*"]);
    plain.same(&["PUBLISH", "a", "m"]);
    admin.same(&["ACL", "DRYRUN", "plain", "PUBLISH", "a", "m"]);

    // acl-pubsub-default allchannels: new users, new selectors and `reset` allow every channel.
    admin.same(&["CONFIG", "SET", "acl-pubsub-default", "some"]);
    admin.same(&["CONFIG", "SET", "acl-pubsub-default", "allchannels"]);
    admin.same(&["CONFIG", "GET", "acl-pubsub-default"]);
    admin.same(&["ACL", "SETUSER", "open", "on", "nopass", "~*", "+@all"]);
    admin.same(&["ACL", "GETUSER", "open"]);
    let mut open = login(&redis, &ours, "open");
    open.same(&["PUBLISH", "anything", "m"]);
    open.same(&["SUBSCRIBE", "anything"]);
    admin.same(&["ACL", "SETUSER", "plain", "reset", "on", "nopass", "+@all"]);
    admin.same(&["ACL", "GETUSER", "plain"]);
    admin.same(&["ACL", "SETUSER", "sel", "on", "nopass", "(+publish)"]);
    admin.same(&["ACL", "DRYRUN", "sel", "PUBLISH", "x", "m"]);
    // An existing user keeps the rights it has.
    admin.same(&["ACL", "DRYRUN", "news", "PUBLISH", "x", "m"]);
    admin.same(&["CONFIG", "SET", "acl-pubsub-default", "resetchannels"]);
    admin.same(&["ACL", "SETUSER", "late", "on", "nopass", "+@all"]);
    admin.same(&["ACL", "DRYRUN", "late", "PUBLISH", "x", "m"]);

    // The channel refusals are in ACL LOG as Redis records them (client-info and age aside).
    let log = resp(&["ACL", "LOG", "1"]);
    let (r, o) = (admin.redis.call(&log), admin.ours.call(&log));
    let cut = |raw: &[u8]| {
        let t = text(raw);
        t[..t.find("age-seconds").expect("age-seconds")].to_string()
    };
    assert_eq!(cut(&o), cut(&r), "ACL LOG's newest entry");
}

#[test]
fn losing_channel_rights_disconnects_those_subscribers_as_redis_does() {
    let redis = Redis::start(&[]);
    let mut ours = Server::start(&[]);
    // Verbose: each closed client is logged with the reason.
    let verbose = ["CONFIG", "SET", "loglevel", "verbose"];
    ours.connect().cmd(&verbose, b"+OK\r\n");
    let mut admin = Pair::new(&redis, &ours);
    admin.same(&[
        "ACL", "SETUSER", "sub", "on", "nopass", "~*", "+@all", "&news.*", "&alerts",
    ]);
    let mut on_channel = login(&redis, &ours, "sub");
    on_channel.same(&["SUBSCRIBE", "news.1"]);
    let mut on_pattern = login(&redis, &ours, "sub");
    on_pattern.same(&["PSUBSCRIBE", "news.*"]);
    let mut on_alerts = login(&redis, &ours, "sub");
    on_alerts.same(&["SUBSCRIBE", "alerts"]);
    // The same user, not subscribed: never disconnected for channels.
    let mut idle = login(&redis, &ours, "sub");
    idle.same(&["SET", "k", "v"]);
    // Another user on the same channel.
    let mut other = Pair::new(&redis, &ours);
    other.same(&["SUBSCRIBE", "news.1"]);

    let mut clients = [
        ("on_channel", on_channel),
        ("on_pattern", on_pattern),
        ("on_alerts", on_alerts),
        ("idle", idle),
        ("other", other),
    ];
    // After each change, which clients each server still serves.
    let steps: &[&[&str]] = &[
        // More channels, and rules that change nothing else: nobody goes.
        &["&more", "+get", "~x"],
        // The same patterns in another selector: still a superset.
        &["resetchannels", "&news.*", "(&alerts +get)"],
        // `resetchannels` is the root's: the selector still allows `alerts`.
        &["resetchannels", "&news.*"],
        // `alerts` is gone: its subscriber goes.
        &["clearselectors"],
        // `news.*` as a pattern is gone; `news.1` is still a channel it allows.
        &["resetchannels", "&news.1"],
        // Nothing left.
        &["resetchannels"],
    ];
    let mut gone: Vec<&str> = Vec::new();
    for step in steps {
        let mut args = vec!["ACL", "SETUSER", "sub"];
        args.extend_from_slice(step);
        admin.same(&args);
        for (name, pair) in clients.iter_mut() {
            if gone.contains(name) {
                continue;
            }
            let (redis_alive, ours_alive) = pair.alive();
            assert_eq!(
                ours_alive, redis_alive,
                "after ACL SETUSER sub {step:?}: {name} alive in pocketkv: {ours_alive}, in redis: \
                 {redis_alive}"
            );
            if !redis_alive {
                gone.push(name);
            }
        }
    }
    assert_eq!(gone, ["on_alerts", "on_pattern", "on_channel"]);
    let line = ours.wait_log("closed: ACL SETUSER revoked a channel it is subscribed to");
    assert!(!line.contains("CLIENT KILL"), "{line}");
}
