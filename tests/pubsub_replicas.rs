//! PUBLISH and SPUBLISH reach replicas, as Redis propagates them without a cluster: a message
//! published on a primary is delivered to the subscribers connected to its replicas (and to
//! replicas of replicas). It goes into the replication stream only: the primary's offset grows
//! by its bytes, the append-only log never sees it, and it is no change to the data.
//!
//! A pocketkv primary and replica against a redis-server primary and replica: the same steps,
//! and every frame the replicas' subscribers receive, the primaries' replies and how far each
//! step moved the primary's offset must be the same.

mod common;

use common::frames::{redis_frames, show, until_pong, Frames};
use common::redis::Redis;
use common::{eventually, free_port, Server};

/// A field of INFO `section` as `conn` reads it.
fn info_field(conn: &mut Frames, section: &str, name: &str) -> String {
    let reply = conn.call(&["INFO", section]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}: {text}"))
        .to_string()
}

fn offset(conn: &mut Frames) -> u64 {
    info_field(conn, "replication", "master_repl_offset")
        .parse()
        .expect("an offset")
}

/// A primary, its replica, and connections to each.
struct Topology<'a> {
    side: &'static str,
    primary: Frames,
    replica: Frames,
    connect_replica: Box<dyn Fn() -> Frames + 'a>,
}

impl Topology<'_> {
    /// Waits until the link is up and the replica has applied everything the primary sent.
    fn caught_up(&mut self) {
        let side = self.side;
        eventually(&format!("{side}: the replica's link is up"), || {
            info_field(&mut self.replica, "replication", "master_link_status") == "up"
        });
        eventually(
            &format!("{side}: the replica is at the primary's offset"),
            || offset(&mut self.primary) == offset(&mut self.replica),
        );
    }
}

/// What happens in `topology` for each step: the replies, the offset and data-change deltas on
/// the primary, and what each subscriber on the replica received.
fn transcript(mut t: Topology, steps: &[(bool, &[&[&str]])]) -> Vec<String> {
    t.caught_up();
    let mut plain = (t.connect_replica)();
    let mut resp3 = (t.connect_replica)();
    let mut lines = Vec::new();
    lines.push(show(&plain.call(&["SUBSCRIBE", "ch"])));
    lines.push(show(&plain.call(&["PSUBSCRIBE", "c*"])));
    lines.push(show(&plain.call(&["SSUBSCRIBE", "ch"])));
    resp3.call(&["HELLO", "3"]);
    lines.push(show(&resp3.call(&["SUBSCRIBE", "ch"])));
    lines.push(show(&resp3.call(&["SSUBSCRIBE", "ch"])));
    // The replica's own client, for what is published there.
    let mut local = (t.connect_replica)();
    for (i, (on_primary, commands)) in steps.iter().enumerate() {
        let before = offset(&mut t.primary);
        let dirty = info_field(&mut t.primary, "persistence", "rdb_changes_since_last_save");
        let mut replies = Vec::new();
        for args in commands.iter() {
            let conn = if *on_primary {
                &mut t.primary
            } else {
                &mut local
            };
            replies.extend(conn.call(args));
        }
        t.caught_up();
        let grew = offset(&mut t.primary) - before;
        let dirty_after = info_field(&mut t.primary, "persistence", "rdb_changes_since_last_save");
        lines.push(format!(
            "step {i} {commands:?}: replies {}; offset +{grew}; changes {dirty} -> {dirty_after}; \
             resp2 subscriber {}; resp3 subscriber {}",
            show(&replies),
            show(&until_pong(&mut plain, t.side)),
            show(&until_pong(&mut resp3, t.side)),
        ));
    }
    lines
}

#[test]
fn replicas_subscribers_get_what_the_primary_publishes_as_with_redis() {
    // PINGs to replicas would move the offsets at unforeseeable moments: none within the test.
    // (Redis's next PING after the link is up comes an hour later; its image waits the default
    // 5 s, past the first replication cron.)
    let ping = ["--repl-ping-replica-period", "3600"];
    let redis_port = free_port().to_string();
    let mut redis_args = vec!["--port", redis_port.as_str()];
    redis_args.extend(ping);
    let redis_primary = Redis::start(&redis_args);
    let mut redis_replica_args = vec!["--replicaof", "127.0.0.1", redis_port.as_str()];
    redis_replica_args.extend(ping);
    let redis_replica = Redis::start(&redis_replica_args);
    let mut primary_args = vec!["--appendonly", "yes"];
    primary_args.extend(ping);
    let primary = Server::start(&primary_args);
    let replica = Server::replica_of(&primary, &[]);

    // A write first: Redis starts its stream with a SELECT, which has no pocketkv counterpart.
    let set: &[&[&str]] = &[&["SET", "k", "v"]];
    let steps: &[(bool, &[&[&str]])] = &[
        (true, &[&["PUBLISH", "ch", "hello"]]),
        (true, &[&["SPUBLISH", "ch", "shard"]]),
        (true, &[&["PUBLISH", "nobody", "still sent"]]),
        (true, &[&["PUBLISH", "c1", "pattern"]]),
        // Inside a transaction: the replicas get it inside the transaction.
        (
            true,
            &[
                &["MULTI"],
                &["SET", "k", "1"],
                &["PUBLISH", "ch", "in a transaction"],
                &["EXEC"],
            ],
        ),
        (
            true,
            &[
                &["MULTI"],
                &["PUBLISH", "ch", "one"],
                &["SPUBLISH", "ch", "two"],
                &["EXEC"],
            ],
        ),
        // Refused: nothing sent.
        (true, &[&["PUBLISH", "ch"]]),
        // Published by a client of the replica: delivered there, sent nowhere.
        (false, &[&["PUBLISH", "ch", "local"]]),
        (false, &[&["SPUBLISH", "ch", "local shard"]]),
    ];
    let mut all: Vec<(bool, &[&[&str]])> = vec![(true, set)];
    all.extend_from_slice(steps);

    let ours = transcript(
        Topology {
            side: "pocketkv",
            primary: Frames::tcp(primary.addr),
            replica: Frames::tcp(replica.addr),
            connect_replica: Box::new(|| Frames::tcp(replica.addr)),
        },
        &all,
    );
    let theirs = transcript(
        Topology {
            side: "redis",
            primary: redis_frames(&redis_primary),
            replica: redis_frames(&redis_replica),
            connect_replica: Box::new(|| redis_frames(&redis_replica)),
        },
        &all,
    );
    // The SET's offset step includes Redis's SELECT: compared from the first PUBLISH on (after
    // the five subscribe replies and the SET's line).
    let first_publish = 5 + 1;
    for (ours, theirs) in ours
        .iter()
        .zip(&theirs)
        .filter(|(o, _)| !o.contains("\"SET\", \"k\", \"v\""))
    {
        assert_eq!(
            ours, theirs,
            "pocketkv (left) and redis-server (right) differ"
        );
    }
    assert_eq!(ours.len(), theirs.len());
    assert!(
        ours[first_publish].contains("offset +36;"),
        "PUBLISH's 36 bytes are in the stream: {}",
        ours[first_publish]
    );
    assert!(
        ours[first_publish].contains("message"),
        "{}",
        ours[first_publish]
    );

    // The log has the transaction's SET, alone, and no PUBLISH at all.
    let logged = || -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(&primary.dir).expect("data dir").flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("appendonly")
            {
                bytes.extend(std::fs::read(entry.path()).unwrap_or_default());
            }
        }
        bytes
    };
    let set_one = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n";
    eventually("the transaction's SET is in the log", || {
        logged().windows(set_one.len()).any(|w| w == set_one)
    });
    let log = logged();
    let has = |needle: &[u8]| log.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"PUBLISH"), "no PUBLISH in the log: {}", show(&log));
    assert!(
        !has(b"MULTI"),
        "a unit of one write is logged alone: {}",
        show(&log)
    );
}

#[test]
fn a_replica_of_a_replica_delivers_too() {
    let primary = Server::start(&[]);
    let middle = Server::replica_of(&primary, &[]);
    let leaf = Server::replica_of(&middle, &[]);
    let mut leaf_info = Frames::tcp(leaf.addr);
    eventually("the leaf's link is up", || {
        info_field(&mut leaf_info, "replication", "master_link_status") == "up"
    });
    let mut subscriber = Frames::tcp(leaf.addr);
    subscriber.call(&["SSUBSCRIBE", "ch"]);
    subscriber.call(&["SUBSCRIBE", "ch"]);
    let mut publisher = Frames::tcp(primary.addr);
    assert_eq!(
        publisher.call(&["PUBLISH", "ch", "down the chain"]),
        b":0\r\n"
    );
    assert_eq!(publisher.call(&["SPUBLISH", "ch", "and shard"]), b":0\r\n");
    assert_eq!(
        subscriber.frame().unwrap(),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$14\r\ndown the chain\r\n"
    );
    assert_eq!(
        subscriber.frame().unwrap(),
        b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$9\r\nand shard\r\n"
    );
    let mut primary_info = Frames::tcp(primary.addr);
    eventually("one offset along the chain", || {
        offset(&mut primary_info) == offset(&mut leaf_info)
    });
}
