//! Dispatch and handler tests, without sockets: a request's arguments in, a reply value out.

use std::borrow::Cow;

use super::*;
use crate::config::Config;
use crate::store::Store;

/// A store, a client and a server state, as the event loop owns them.
struct Bench {
    db: Store,
    client: ClientState,
    server: ServerState,
}

impl Bench {
    fn new() -> Self {
        let addr = "127.0.0.1:12345".parse().unwrap();
        Bench {
            db: Store::new(),
            client: ClientState::default(),
            server: ServerState::new(Config::default(), addr),
        }
    }

    /// Runs `line` split on spaces and returns the reply with owned data.
    fn run(&mut self, line: &str) -> Reply<'static> {
        let args: Vec<Arg<'_>> = line
            .split(' ')
            .map(|a| Cow::Borrowed(a.as_bytes()))
            .collect();
        let mut ctx = Ctx::new(&mut self.db, &mut self.client, &mut self.server);
        owned(execute(&mut ctx, &args))
    }
}

fn owned(reply: Reply<'_>) -> Reply<'static> {
    match reply {
        Reply::Bulk(b) => Reply::Bulk(Cow::Owned(b.into_owned())),
        Reply::Array(items) => Reply::Array(items.into_iter().map(owned).collect()),
        Reply::Push(items) => Reply::Push(items.into_iter().map(owned).collect()),
        Reply::Set(items) => Reply::Set(items.into_iter().map(owned).collect()),
        Reply::Double(b) => Reply::Double(Cow::Owned(b.into_owned())),
        Reply::Many(items) => Reply::Many(items.into_iter().map(owned).collect()),
        Reply::Status(s) => Reply::Status(s),
        Reply::Error(e) => Reply::Error(e),
        Reply::Integer(n) => Reply::Integer(n),
        Reply::Nil => Reply::Nil,
        Reply::NilArray => Reply::NilArray,
        Reply::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(f, v)| (owned(f), owned(v)))
                .collect(),
        ),
        Reply::Text(t) => Reply::Text(t),
    }
}

fn err(text: &str) -> Reply<'static> {
    Reply::error_owned(text.to_string())
}

fn bulk(text: &str) -> Reply<'static> {
    Reply::bulk_owned(text.as_bytes().to_vec())
}

#[test]
fn every_entry_is_documented_and_unique() {
    let mut names: Vec<&str> = table().map(|s| s.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate command names");
    for spec in table().chain(table().flat_map(|s| s.subcommands.iter())) {
        assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
        assert!(!spec.group.is_empty(), "{} has no group", spec.name);
        assert_eq!(spec.name, spec.name.to_lowercase());
    }
    for spec in table() {
        let found = lookup(spec.name.to_uppercase().as_bytes()).map(|s| s.name);
        assert_eq!(
            found,
            Some(spec.name),
            "lookup finds every name, in any case"
        );
        assert_eq!(
            spec.is_write(),
            spec.flags.contains(&"write"),
            "{}",
            spec.name
        );
        assert_eq!(
            spec.may_grow(),
            spec.flags.contains(&"denyoom"),
            "{}",
            spec.name
        );
    }
    assert!(lookup(b"").is_none() && lookup(&[b'g'; 100]).is_none() && lookup(b"gett").is_none());
    assert!(
        table().count() * 3 <= super::INDEX_SLOTS,
        "the name index stays at most a third full"
    );
}

#[test]
fn lookup_ignores_case() {
    assert_eq!(lookup(b"gEt").map(|s| s.name), Some("get"));
    assert!(lookup(b"nosuch").is_none());
    assert!(lookup(b"set").is_some_and(Spec::is_write));
    assert!(!lookup(b"get").is_some_and(Spec::is_write));
}

#[test]
fn unknown_commands_and_arity_use_redis_texts() {
    let mut bench = Bench::new();
    assert_eq!(
        bench.run("FROB a b"),
        err("ERR unknown command 'FROB', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        bench.run("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        bench.run("client setname"),
        err("ERR wrong number of arguments for 'client|setname' command")
    );
    assert_eq!(
        bench.run("client frob"),
        err("ERR unknown subcommand 'frob'. Try CLIENT HELP.")
    );
}

#[test]
fn writes_move_the_change_counter_and_reads_do_not() {
    let mut bench = Bench::new();
    bench.run("SET a 1");
    bench.run("INCR a");
    let after_writes = bench.db.dirty();
    bench.run("GET a");
    bench.run("EXISTS a");
    bench.run("SET a 5 NX");
    assert_eq!(bench.db.dirty(), after_writes);
    assert_eq!(after_writes, 2);
}

#[test]
fn set_options_combine_as_in_redis() {
    let mut bench = Bench::new();
    assert_eq!(bench.run("SET k v XX"), Reply::Nil);
    assert_eq!(bench.run("SET k v NX GET"), Reply::Nil);
    assert_eq!(bench.run("SET k w NX GET"), bulk("v"));
    assert_eq!(bench.run("SET k w XX GET"), bulk("v"));
    assert_eq!(bench.run("GET k"), bulk("w"));
    assert_eq!(bench.run("SET k v NX XX"), err("ERR syntax error"));
    assert_eq!(bench.run("SET k v FOO"), err("ERR syntax error"));
}

/// A bench whose clock reads `now` Unix milliseconds.
fn bench_at(now: u64) -> Bench {
    let mut bench = Bench::new();
    bench.db.set_clock(now);
    bench
}

#[test]
fn set_expiry_options_follow_redis() {
    let mut bench = bench_at(1_000_000);
    assert_eq!(bench.run("SET k v EX 10"), Reply::OK);
    assert_eq!(bench.run("PTTL k"), Reply::Integer(10_000));
    assert_eq!(bench.run("SET k v PX 1500"), Reply::OK);
    assert_eq!(bench.run("TTL k"), Reply::Integer(2), "1.5 s rounds to 2");
    assert_eq!(bench.run("SET k v EXAT 2000"), Reply::OK);
    assert_eq!(bench.run("PEXPIRETIME k"), Reply::Integer(2_000_000));
    assert_eq!(bench.run("SET k v PXAT 1500000"), Reply::OK);
    assert_eq!(bench.run("EXPIRETIME k"), Reply::Integer(1500));
    assert_eq!(bench.run("SET k w KEEPTTL"), Reply::OK);
    assert_eq!(bench.run("PEXPIRETIME k"), Reply::Integer(1_500_000));
    assert_eq!(bench.run("SET k w"), Reply::OK);
    assert_eq!(
        bench.run("TTL k"),
        Reply::Integer(-1),
        "a plain SET clears it"
    );
    assert_eq!(
        bench.run("SET k v EX 10 EX 20"),
        Reply::OK,
        "repeating is allowed"
    );
    assert_eq!(bench.run("TTL k"), Reply::Integer(20));
    for bad in [
        "EX 1 PX 1",
        "EX 1 KEEPTTL",
        "KEEPTTL EX 1",
        "EX",
        "PERSIST",
        "EX 1 EXAT 1",
    ] {
        assert_eq!(
            bench.run(&format!("SET k v {bad}")),
            err("ERR syntax error"),
            "{bad}"
        );
    }
    for bad in ["EX 0", "PX -1", "EX 9223372036854775807", "PXAT 0"] {
        assert_eq!(
            bench.run(&format!("SET k v {bad}")),
            err("ERR invalid expire time in 'set' command"),
            "{bad}"
        );
    }
    assert_eq!(
        bench.run("SET k v EX x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        bench.run("SETEX k 0 v"),
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(bench.run("PSETEX k 250 v"), Reply::OK);
    assert_eq!(bench.run("PTTL k"), Reply::Integer(250));
}

#[test]
fn keys_vanish_after_their_millisecond() {
    let mut bench = bench_at(1_000_000);
    bench.run("SET k v PX 100");
    bench.run("SET other v");
    bench.db.set_clock(1_000_100);
    assert_eq!(
        bench.run("GET k"),
        bulk("v"),
        "still there at its expiry millisecond"
    );
    bench.db.set_clock(1_000_101);
    assert_eq!(bench.run("EXISTS k"), Reply::Integer(0));
    assert_eq!(bench.run("KEYS *"), Reply::Array(vec![bulk("other")]));
    assert_eq!(
        bench.run("DBSIZE"),
        Reply::Integer(2),
        "counted until reclaimed, as in Redis"
    );
    assert_eq!(bench.run("GET k"), Reply::Nil);
    assert_eq!(bench.run("DBSIZE"), Reply::Integer(1));
    assert_eq!(bench.db.take_expired(), vec![b"k".to_vec()]);
    assert_eq!(bench.run("TTL k"), Reply::Integer(-2));
    assert_eq!(
        bench.run("INCR k"),
        Reply::Integer(1),
        "a new key, with no expiry"
    );
    assert_eq!(bench.run("TTL k"), Reply::Integer(-1));
}

#[test]
fn expire_family_follows_redis() {
    let mut bench = bench_at(1_000_000);
    assert_eq!(bench.run("EXPIRE missing 10"), Reply::Integer(0));
    bench.run("SET k v");
    assert_eq!(bench.run("EXPIRE k 10 XX"), Reply::Integer(0));
    assert_eq!(
        bench.run("EXPIRE k 10 GT"),
        Reply::Integer(0),
        "no expiry is infinite"
    );
    assert_eq!(bench.run("EXPIRE k 10 NX"), Reply::Integer(1));
    assert_eq!(bench.run("EXPIRE k 20 NX"), Reply::Integer(0));
    assert_eq!(bench.run("EXPIRE k 5 GT"), Reply::Integer(0));
    assert_eq!(bench.run("EXPIRE k 20 GT"), Reply::Integer(1));
    assert_eq!(bench.run("PEXPIRE k 30000 LT"), Reply::Integer(0));
    assert_eq!(bench.run("PEXPIRE k 1500 LT"), Reply::Integer(1));
    assert_eq!(bench.run("PTTL k"), Reply::Integer(1500));
    assert_eq!(bench.run("EXPIREAT k 2000"), Reply::Integer(1));
    assert_eq!(bench.run("TTL k"), Reply::Integer(1000));
    assert_eq!(bench.run("PEXPIREAT k 3000000"), Reply::Integer(1));
    assert_eq!(bench.run("EXPIRETIME k"), Reply::Integer(3000));
    assert_eq!(bench.run("PERSIST k"), Reply::Integer(1));
    assert_eq!(bench.run("PERSIST k"), Reply::Integer(0));
    assert_eq!(bench.run("TTL k"), Reply::Integer(-1));
    assert_eq!(
        bench.run("EXPIRE k 10 LT"),
        Reply::Integer(1),
        "LT sets on no expiry"
    );
    assert_eq!(
        bench.run("EXPIRE k 10 NX XX"),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        bench.run("EXPIRE k 10 GT LT"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(
        bench.run("EXPIRE k 10 FOO"),
        err("ERR Unsupported option FOO")
    );
    assert_eq!(
        bench.run("EXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        bench.run("EXPIRE k -1"),
        Reply::Integer(1),
        "a past time deletes"
    );
    assert_eq!(bench.run("EXISTS k"), Reply::Integer(0));
    assert_eq!(bench.run("TTL k"), Reply::Integer(-2));
}

#[test]
fn getex_rename_and_counters_keep_or_change_the_expiry_as_redis_does() {
    let mut bench = bench_at(1_000_000);
    assert_eq!(
        bench.run("GETEX missing EX 0"),
        Reply::Nil,
        "no key: nil before checks"
    );
    bench.run("SET k 1 EX 100");
    assert_eq!(bench.run("INCR k"), Reply::Integer(2));
    assert_eq!(bench.run("APPEND k 0"), Reply::Integer(2));
    assert_eq!(
        bench.run("TTL k"),
        Reply::Integer(100),
        "INCR and APPEND keep it"
    );
    assert_eq!(bench.run("RENAME k j"), Reply::OK);
    assert_eq!(bench.run("TTL j"), Reply::Integer(100), "RENAME moves it");
    assert_eq!(bench.run("GETEX j PX 500"), bulk("20"));
    assert_eq!(bench.run("PTTL j"), Reply::Integer(500));
    assert_eq!(bench.run("GETEX j PERSIST"), bulk("20"));
    assert_eq!(bench.run("TTL j"), Reply::Integer(-1));
    assert_eq!(
        bench.run("GETEX j EX 0"),
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(bench.run("GETEX j KEEPTTL"), err("ERR syntax error"));
    assert_eq!(bench.run("GETEX j EXAT 1"), bulk("20"));
    assert_eq!(
        bench.run("EXISTS j"),
        Reply::Integer(0),
        "a past EXAT deletes"
    );
    bench.run("SET g 1 EX 100");
    assert_eq!(bench.run("GETSET g 2"), bulk("1"));
    assert_eq!(bench.run("TTL g"), Reply::Integer(-1), "GETSET clears it");
}

#[test]
fn counters_check_types_and_overflow() {
    let mut bench = Bench::new();
    assert_eq!(
        bench.run("INCRBY n 9223372036854775806"),
        Reply::Integer(i64::MAX - 1)
    );
    assert_eq!(bench.run("INCR n"), Reply::Integer(i64::MAX));
    assert_eq!(
        bench.run("INCR n"),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(
        bench.run("DECRBY n -9223372036854775808"),
        err("ERR decrement would overflow")
    );
    bench.run("SET s 1.5");
    assert_eq!(
        bench.run("INCR s"),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn save_and_bgsave_ask_the_loop_for_a_snapshot() {
    let mut bench = Bench::new();
    assert_eq!(bench.run("SAVE"), Reply::OK);
    assert_eq!(bench.client.flow, Flow::AwaitSnapshot);
    assert!(bench.server.snapshot.wanted);
    bench.server.snapshot.running_since = Some(std::time::Instant::now());
    assert_eq!(
        bench.run("BGSAVE"),
        err("ERR Background save already in progress")
    );
    assert_eq!(
        bench.run("BGSAVE SCHEDULE"),
        Reply::Status("Background saving scheduled".into())
    );
}

#[test]
fn info_sections_follow_redis_layout() {
    let mut bench = Bench::new();
    bench.run("SET a 1");
    let Reply::Text(all) = bench.run("INFO") else {
        panic!("INFO is text")
    };
    for header in [
        "# Server\r\n",
        "# Clients\r\n",
        "# Memory\r\n",
        "# Persistence\r\n",
        "# Stats\r\n",
        "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n",
    ] {
        assert!(all.contains(header), "{header:?} missing");
    }
    let Reply::Text(one) = bench.run("INFO keyspace") else {
        panic!("INFO is text")
    };
    assert_eq!(one, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
}
