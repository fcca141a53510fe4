//! Sharded Pub/Sub (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB SHARDCHANNELS/SHARDNUMSUB)
//! against a real redis-server 7.0: without a cluster, a namespace of channels of its own. The
//! same steps go to both servers and every frame each client receives is compared byte for
//! byte (see `common::frames::compare`); channel rights are compared the same way. What only
//! pocketkv has (the text dialect, the subscription bound) is checked on its own.

mod common;

use common::frames::{compare, redis_frames, run_until_pong, setup, step, Frames};
use common::redis::{text, Pair, Redis};
use common::{eventually, resp, Server};

#[test]
fn shard_frames_and_errors_match_redis_in_resp2_and_resp3() {
    let steps = [
        step(0, &["SSUBSCRIBE", "a", "b", "a"]),
        // Subscribed in RESP2: only the pub/sub commands, PING, QUIT and RESET.
        step(0, &["GET", "k"]),
        step(0, &["PING"]),
        step(0, &["PING", "hi"]),
        // Each namespace counts its own subscriptions.
        step(0, &["SUBSCRIBE", "a"]),
        step(0, &["PSUBSCRIBE", "*"]),
        step(1, &["SPUBLISH", "a", "shard only"]),
        step(1, &["PUBLISH", "a", "channel and pattern"]),
        step(1, &["SPUBLISH", "nobody", "x"]),
        step(1, &["SPUBLISH", "b", ""]),
        step(1, &["PUBSUB", "SHARDCHANNELS", "a*"]),
        step(1, &["PUBSUB", "SHARDCHANNELS", "z*"]),
        step(1, &["PUBSUB", "SHARDNUMSUB", "a", "b", "c"]),
        step(1, &["PUBSUB", "SHARDNUMSUB"]),
        step(1, &["PUBSUB", "NUMSUB", "a", "b"]),
        step(1, &["PUBSUB", "CHANNELS", "b"]),
        step(1, &["PUBSUB", "NUMPAT"]),
        step(0, &["SUNSUBSCRIBE", "a", "never"]),
        step(0, &["UNSUBSCRIBE"]),
        step(0, &["PUNSUBSCRIBE"]),
        // Still subscribed to the shard channel `b`: still in the subscribed context.
        step(0, &["GET", "k"]),
        step(0, &["SUNSUBSCRIBE"]),
        step(0, &["GET", "k"]),
        step(0, &["SUNSUBSCRIBE"]),
        step(1, &["PUBSUB", "SHARDNUMSUB", "a", "b"]),
        // Keyspace events are published on ordinary channels only.
        setup(1, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        step(0, &["SSUBSCRIBE", "__keyspace@0__:k"]),
        step(1, &["SET", "k", "v"]),
        step(0, &["SUNSUBSCRIBE", "__keyspace@0__:k"]),
        setup(1, &["CONFIG", "SET", "notify-keyspace-events", ""]),
        // RESP3: pushes, any command allowed, a client's own message before its reply.
        setup(2, &["HELLO", "3"]),
        step(2, &["SUNSUBSCRIBE"]),
        step(2, &["SSUBSCRIBE", "a"]),
        step(2, &["PUBSUB", "SHARDNUMSUB", "a", "b"]),
        step(2, &["PUBSUB", "SHARDCHANNELS"]),
        step(2, &["GET", "k"]),
        step(2, &["SPUBLISH", "a", "to myself"]),
        step(1, &["SPUBLISH", "a", "to resp3"]),
        step(2, &["SUNSUBSCRIBE", "a"]),
        step(2, &["SSUBSCRIBE", "r"]),
        step(2, &["RESET"]),
        step(1, &["SPUBLISH", "r", "gone"]),
        // RESET in RESP2 while subscribed.
        step(0, &["SSUBSCRIBE", "r"]),
        step(0, &["RESET"]),
        step(1, &["SPUBLISH", "r", "gone"]),
        step(0, &["GET", "k"]),
        // Malformed forms.
        step(1, &["SSUBSCRIBE"]),
        step(1, &["SPUBLISH", "a"]),
        step(1, &["SPUBLISH", "a", "b", "c"]),
        step(1, &["PUBSUB", "SHARDCHANNELS", "a", "b"]),
        step(1, &["PUBSUB", "CHANNELS", "a", "b"]),
        step(1, &["PUBSUB", "SHARDNUMSUB2"]),
    ];
    compare(3, &steps, &[], &[]);
}

#[test]
fn shard_commands_inside_a_transaction_match_redis() {
    // One pipeline per server (a PING inside MULTI would be queued): SSUBSCRIBE is refused at
    // EXEC, where SUBSCRIBE is not; the other shard commands run. The only +PONG is the last
    // reply.
    let commands: &[&[&str]] = &[
        &["MULTI"],
        &["SSUBSCRIBE", "q"],
        &["SUNSUBSCRIBE", "q"],
        &["SPUBLISH", "q", "v"],
        &["PUBSUB", "SHARDNUMSUB", "q"],
        &["EXEC"],
        &["GET", "k"],
        &["PING"],
    ];
    let redis = Redis::start(&[]);
    let server = Server::start(&[]);
    let got: Vec<String> = [Frames::tcp(server.addr), redis_frames(&redis)]
        .into_iter()
        .map(|mut conn| run_until_pong(&mut conn, commands))
        .collect();
    assert_eq!(
        got[0], got[1],
        "pocketkv (left) and redis-server (right) differ"
    );
    assert!(got[0].contains("DENY BLOCKING"), "{}", got[0]);
}

#[test]
fn client_list_counts_shard_subscriptions_and_closing_drops_them() {
    let server = Server::start(&[]);
    let mut sub = Frames::tcp(server.addr);
    let mut admin = Frames::tcp(server.addr);
    sub.cmd(&["SSUBSCRIBE", "a", "b"]);
    sub.frame().unwrap();
    sub.frame().unwrap();
    let list = String::from_utf8(admin.call(&["CLIENT", "LIST", "TYPE", "pubsub"])).unwrap();
    assert_eq!(list.matches("id=").count(), 1, "one client: {list}");
    assert!(
        list.contains(" flags=P db=0 sub=0 psub=0 ssub=2 multi=-1 "),
        "{list}"
    );
    sub.cmd(&["CLIENT", "INFO"]);
    let own = String::from_utf8(sub.frame().unwrap()).unwrap();
    assert!(own.starts_with("-ERR Can't execute 'client|info'"), "{own}");
    drop(sub);
    eventually("a closed subscriber leaves its shard channels", || {
        admin.call(&["PUBSUB", "SHARDNUMSUB", "a"]) == b"*2\r\n$1\r\na\r\n:0\r\n"
    });
    assert_eq!(admin.call(&["PUBSUB", "SHARDCHANNELS"]), b"*0\r\n");
    // A shard subscriber is a pub/sub client for CLIENT KILL TYPE too.
    let mut other = Frames::tcp(server.addr);
    other.cmd(&["SSUBSCRIBE", "c"]);
    other.frame().unwrap();
    assert_eq!(admin.call(&["CLIENT", "KILL", "TYPE", "pubsub"]), b":1\r\n");
    assert!(other.frame().is_err(), "the subscriber is closed");
}

#[test]
fn command_info_shows_redis_arity_flags_and_channel_positions() {
    let redis = Redis::start(&[]);
    let server = Server::start(&[]);
    let mut pair = Pair::new(&redis, &server);
    // Up to the step: the categories and key specs that follow are not in pocketkv's table.
    for (name, head) in [
        (
            "ssubscribe",
            "*1\r\n*10\r\n$10\r\nssubscribe\r\n:-2\r\n*4\r\n+pubsub\r\n+noscript\r\n+loading\r\n\
             +stale\r\n:1\r\n:-1\r\n:1\r\n",
        ),
        (
            "sunsubscribe",
            "*1\r\n*10\r\n$12\r\nsunsubscribe\r\n:-1\r\n*4\r\n+pubsub\r\n+noscript\r\n+loading\r\n\
             +stale\r\n:1\r\n:-1\r\n:1\r\n",
        ),
        (
            "spublish",
            "*1\r\n*10\r\n$8\r\nspublish\r\n:3\r\n*4\r\n+pubsub\r\n+loading\r\n+stale\r\n+fast\r\n\
             :1\r\n:1\r\n:1\r\n",
        ),
        (
            "publish",
            "*1\r\n*10\r\n$7\r\npublish\r\n:3\r\n*4\r\n+pubsub\r\n+loading\r\n+stale\r\n+fast\r\n\
             :0\r\n:0\r\n:0\r\n",
        ),
    ] {
        let (theirs, ours) = pair.both(&["COMMAND", "INFO", name]);
        assert!(text(&theirs).starts_with(head), "redis: {}", text(&theirs));
        assert!(text(&ours).starts_with(head), "pocketkv: {}", text(&ours));
    }
    // The subcommands, as PUBSUB's entry lists them.
    let (theirs, ours) = pair.both(&["COMMAND", "INFO", "pubsub"]);
    for sub in ["pubsub|shardchannels", "pubsub|shardnumsub"] {
        let head = format!(
            "*10\r\n${}\r\n{sub}\r\n:-2\r\n*3\r\n+pubsub\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n",
            sub.len()
        );
        assert!(text(&theirs).contains(&head), "redis: {}", text(&theirs));
        assert!(text(&ours).contains(&head), "pocketkv: {}", text(&ours));
        // And named alone, as `container|subcommand`.
        let (theirs, ours) = pair.both(&["COMMAND", "INFO", &sub.to_uppercase()]);
        let alone = format!("*1\r\n{head}");
        assert!(
            text(&theirs).starts_with(&alone),
            "redis: {}",
            text(&theirs)
        );
        assert!(text(&ours).starts_with(&alone), "pocketkv: {}", text(&ours));
        let (theirs, ours) = pair.both(&["COMMAND", "DOCS", sub]);
        let named = format!("*2\r\n${}\r\n{sub}\r\n", sub.len());
        assert!(
            text(&theirs).starts_with(&named),
            "redis: {}",
            text(&theirs)
        );
        assert!(text(&ours).starts_with(&named), "pocketkv: {}", text(&ours));
    }
    // Shard channels are not keys: a user with key rights only has no channel rights.
    pair.same(&[
        "ACL",
        "SETUSER",
        "keys",
        "on",
        "nopass",
        "+@all",
        "~*",
        "resetchannels",
    ]);
    pair.same(&["ACL", "DRYRUN", "keys", "SSUBSCRIBE", "k"]);
    pair.same(&["ACL", "DRYRUN", "keys", "SUNSUBSCRIBE", "k"]);
    pair.same(&["ACL", "SETUSER", "chans", "on", "nopass", "+@all", "&*"]);
    pair.same(&["ACL", "DRYRUN", "chans", "SPUBLISH", "k", "m"]);
}

#[test]
fn channel_rights_apply_to_shard_channels_as_in_redis() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut admin = Pair::new(&redis, &ours);
    admin.same(&[
        "ACL",
        "SETUSER",
        "u",
        "on",
        "nopass",
        "+@all",
        "~*",
        "resetchannels",
        "&a*",
    ]);
    let mut user = Pair::new(&redis, &ours);
    user.same(&["AUTH", "u", "x"]);
    user.same(&["SSUBSCRIBE", "ab", "b"]);
    user.same(&["SPUBLISH", "b", "m"]);
    user.same(&["SPUBLISH", "ab", "m"]);
    user.same(&["SUNSUBSCRIBE", "zzz"]);
    admin.same(&["PUBSUB", "SHARDNUMSUB", "b"]);
    admin.same(&["ACL", "DRYRUN", "u", "SPUBLISH", "x", "y"]);
    admin.same(&["ACL", "DRYRUN", "u", "SSUBSCRIBE", "ab", "c"]);
    admin.same(&["ACL", "DRYRUN", "u", "SSUBSCRIBE", "ab"]);
    admin.same(&[
        "ACL",
        "SETUSER",
        "open",
        "on",
        "nopass",
        "+@all",
        "allchannels",
    ]);
    admin.same(&["ACL", "DRYRUN", "open", "SSUBSCRIBE", "zz"]);
    admin.same(&["ACL", "SETUSER", "cmd", "on", "nopass", "+ssubscribe", "&*"]);
    admin.same(&["ACL", "DRYRUN", "cmd", "SUNSUBSCRIBE", "zz"]);
    // acl-pubsub-default allchannels: a new user may use every shard channel.
    admin.same(&["CONFIG", "SET", "acl-pubsub-default", "allchannels"]);
    admin.same(&["ACL", "SETUSER", "late", "on", "nopass", "+@all"]);
    admin.same(&["ACL", "DRYRUN", "late", "SPUBLISH", "x", "m"]);
    admin.same(&["CONFIG", "SET", "acl-pubsub-default", "resetchannels"]);
    // The refusals are in ACL LOG as Redis records them (client-info and age aside).
    let log = resp(&["ACL", "LOG", "1"]);
    let (r, o) = (admin.redis.call(&log), admin.ours.call(&log));
    let cut = |b: &[u8]| {
        let t = text(b);
        t[..t.find("age-seconds").unwrap_or(t.len())].to_string()
    };
    assert_eq!(cut(&o), cut(&r), "ACL LOG's newest entry");

    // A shard subscriber whose user loses the channel is disconnected, as Redis does.
    let mut sub = Pair::new(&redis, &ours);
    sub.same(&["AUTH", "u", "x"]);
    sub.same(&["SSUBSCRIBE", "ab"]);
    let ping = resp(&["PING"]);
    assert_eq!(
        text(&sub.ours.call(&ping)),
        text(&sub.redis.call(&ping)),
        "subscribed PING"
    );
    admin.same(&["ACL", "SETUSER", "u", "&more"]);
    assert!(
        sub.redis.call_or_closed(&ping).is_some(),
        "redis: still allowed"
    );
    assert!(
        sub.ours.call_or_closed(&ping).is_some(),
        "pocketkv: still allowed"
    );
    admin.same(&["ACL", "SETUSER", "u", "resetchannels", "&b"]);
    assert!(sub.redis.call_or_closed(&ping).is_none(), "redis closes it");
    assert!(
        sub.ours.call_or_closed(&ping).is_none(),
        "pocketkv closes it"
    );
    admin.same(&["PUBSUB", "SHARDNUMSUB", "ab"]);
}

#[test]
fn a_person_on_a_text_line_reads_shard_messages_as_numbered_lists() {
    let server = Server::start(&[]);
    let mut person = server.connect();
    person.send(b"SSUBSCRIBE news\n");
    person.expect(b"1) ssubscribe\n2) news\n3) (integer) 1\n");
    let mut publisher = server.connect();
    publisher.roundtrip(b"SPUBLISH news hello\n", b"(integer) 1\n");
    publisher.roundtrip(b"PUBLISH news other\n", b"(integer) 0\n");
    person.expect(b"1) smessage\n2) news\n3) hello\n");
    person.send(b"PING\n");
    person.expect(b"1) pong\n2) \"\"\n");
    person.send(b"SUNSUBSCRIBE\n");
    person.expect(b"1) sunsubscribe\n2) news\n3) (integer) 0\n");
    person.send(b"SUNSUBSCRIBE\n");
    person.expect(b"1) sunsubscribe\n2) (nil)\n3) (integer) 0\n");
}

#[test]
fn shard_subscriptions_count_against_the_bound() {
    let server = Server::start(&["--pubsub-max-subscriptions", "2"]);
    let mut c = Frames::tcp(server.addr);
    c.cmd(&["SUBSCRIBE", "a"]);
    c.frame().unwrap();
    c.cmd(&["SSUBSCRIBE", "a", "b"]);
    assert_eq!(
        c.frame().unwrap(),
        b"*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(
        c.frame().unwrap(),
        b"-ERR too many subscriptions for this client (pubsub-max-subscriptions)\r\n"
    );
    let mut admin = Frames::tcp(server.addr);
    assert_eq!(
        admin.call(&["PUBSUB", "SHARDCHANNELS"]),
        b"*1\r\n$1\r\na\r\n"
    );
}

#[test]
fn help_lists_the_shard_subcommands() {
    let server = Server::start(&[]);
    let mut c = Frames::tcp(server.addr);
    let help = text(&c.call(&["PUBSUB", "HELP"]));
    assert!(help.contains("+SHARDCHANNELS [pattern]\r\n"), "{help}");
    assert!(
        help.contains("+SHARDNUMSUB [shardchannel ...]\r\n"),
        "{help}"
    );
}

/// INFO stats counts channels, patterns and shard channels in use as Redis does.
#[test]
fn info_stats_counts_channels_patterns_and_shard_channels_as_redis_does() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut subscriber = Pair::new(&redis, &ours);
    subscriber.same(&["SUBSCRIBE", "a", "b"]);
    subscriber.same(&["PSUBSCRIBE", "p*"]);
    subscriber.same(&["SSUBSCRIBE", "s"]);
    let mut other = Pair::new(&redis, &ours);
    other.same(&["SUBSCRIBE", "a"]);
    let mut admin = Pair::new(&redis, &ours);
    let counts = |info: &[u8]| -> Vec<String> {
        text(info)
            .lines()
            .filter(|l| l.starts_with("pubsub"))
            .map(str::to_string)
            .collect()
    };
    let (theirs, mine) = admin.both(&["INFO", "stats"]);
    assert_eq!(
        counts(&mine),
        counts(&theirs),
        "left: pocketkv, right: redis-server"
    );
    assert_eq!(
        counts(&mine),
        [
            "pubsub_channels:2",
            "pubsub_patterns:1",
            "pubsubshard_channels:1"
        ]
    );
}
