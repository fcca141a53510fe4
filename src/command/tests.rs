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
        let mut ctx = Ctx {
            db: &mut self.db,
            client: &mut self.client,
            server: &mut self.server,
        };
        owned(execute(&mut ctx, &args))
    }
}

fn owned(reply: Reply<'_>) -> Reply<'static> {
    match reply {
        Reply::Bulk(b) => Reply::Bulk(Cow::Owned(b.into_owned())),
        Reply::Array(items) => Reply::Array(items.into_iter().map(owned).collect()),
        Reply::Status(s) => Reply::Status(s),
        Reply::Error(e) => Reply::Error(e),
        Reply::Integer(n) => Reply::Integer(n),
        Reply::Nil => Reply::Nil,
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
    assert!(
        matches!(bench.run("ttl k"), Reply::Error(e) if String::from_utf8_lossy(&e).contains("not supported yet"))
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
