//! Access control (ACL): users, rules, AUTH, denials, ACL LOG, the aclfile, HTTP credentials.
//!
//! The differential tests send the same ACL SETUSER rules, AUTH attempts and commands to a real
//! `redis-server` (7.0, on PATH; `bash ci/install-deps.sh` installs it) and to pocketkv, and
//! compare the replies byte for byte. ACL LIST and ACL GETUSER are compared by meaning: the same
//! flags, passwords, patterns and rules, each selector's words in any order, since Redis prints
//! single commands in its hash table's order, which changes from run to run.
//!
//! Intended differences, not compared: commands pocketkv lacks (their replies differ: pocketkv
//! does not know them), ACL LOG's client-info and age (they describe each server's own client).
//! Channel rights are compared here through ACL DRYRUN, and on real pub/sub in
//! tests/acl_pubsub.rs.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::redis::{connect_pocket, Pair, Redis};
use common::{resp, Client, Server, DEADLINE};

/// The reply to the last of `requests`, sent in order on a new connection to `server`.
fn ask(server: &Server, requests: &[&[&str]]) -> Vec<u8> {
    let mut c = connect_pocket(server);
    let mut last = Vec::new();
    for request in requests {
        last = c.call(&resp(request));
    }
    last
}

/// The strings of a flat RESP2 reply (arrays flattened, bulk and simple strings, integers).
fn strings(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    let mut lines = text.split("\r\n");
    while let Some(line) = lines.next() {
        match line.as_bytes().first() {
            Some(b'$') if line != "$-1" => out.push(lines.next().unwrap_or("").to_string()),
            Some(b'+' | b'-' | b':') => out.push(line[1..].to_string()),
            Some(b'$') => out.push("(nil)".into()),
            _ => {}
        }
    }
    out
}

/// A user's ACL LIST line by meaning: its root words and each selector's words, each as a set.
fn meaning(line: &str) -> Vec<BTreeSet<String>> {
    line.split('(')
        .map(|part| {
            part.trim_end()
                .trim_end_matches(')')
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// ACL SETUSER rules sent to both servers: valid ones, and ones both must refuse alike.
const SETUSERS: &[&[&str]] = &[
    &[
        "alice",
        "on",
        ">alicepw",
        "~app:*",
        "%R~ro:*",
        "&chan*",
        "+@read",
        "+set",
        "-get",
        "+config|get",
        "(~x* +del)",
    ],
    &["bob", "on", "nopass", "+@all", "-@dangerous", "~*"],
    &[
        "carol",
        "on",
        ">c1",
        ">c2",
        "<c1",
        "allkeys",
        "-@all",
        "+@string",
        "-@write",
        "+client|setname",
        "+client|getname",
    ],
    &["dave", "off", ">davepw", "allkeys", "allcommands"],
    &[
        "dash",
        "on",
        ">dashpw",
        "%R~*",
        "+@read",
        "+@connection",
        "-@dangerous",
    ],
    &["writer", "on", ">w", "%W~out:*", "+@write", "+@read"],
    &[
        "sel",
        "on",
        "nopass",
        "~a*",
        "+get",
        "(~b* +set)",
        "(%R~c* +@all)",
    ],
    // Redis's documented Sentinel user.
    &[
        "sentinel-user",
        "on",
        ">sentpw",
        "allchannels",
        "+multi",
        "+slaveof",
        "+ping",
        "+exec",
        "+subscribe",
        "+config|rewrite",
        "+role",
        "+publish",
        "+info",
        "+client|setname",
        "+client|kill",
        "+script|kill",
    ],
    // A replica's user.
    &[
        "replica-user",
        "on",
        ">replpw",
        "+psync",
        "+replconf",
        "+ping",
    ],
    &[
        "first",
        "on",
        "nopass",
        "+select|0",
        "+@all",
        "-flushall",
        "resetkeys",
        "~k*",
    ],
    &[
        "hashed",
        "on",
        "#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
        "+@all",
        "~*",
    ],
    &["resetme", "on", ">x", "~a", "+get", "reset"],
    &[
        "clear",
        "on",
        "nopass",
        "+get",
        "(~a +set)",
        "clearselectors",
    ],
    &["pick", "on", "nopass", "+select|0", "+get", "~*"],
    &[
        "news", "on", "nopass", "~*", "&news.*", "+@pubsub", "+@read",
    ],
    // Refused, each with Redis's text.
    &["bad", "+nosuchcommand"],
    &["bad", "-@nosuchcategory"],
    &["bad", "%~nopermission"],
    &["bad", "%RX~a"],
    &["bad", "~a b"],
    &["bad", "#abc"],
    &[
        "bad",
        "!0000000000000000000000000000000000000000000000000000000000000000",
    ],
    &["bad", "<neverset"],
    &["bad", "+config|get|x"],
    &["bad", "+select|"],
    &["bad", "allkeys", "~a"],
    &["bad", "allchannels", "&a"],
    &["bad", "on", "(~a", "+get"],
    &["bad", "bogus"],
    &["bad user"],
];

/// Login attempts: user, password.
const LOGINS: &[(&str, &str)] = &[
    ("alice", "wrong"),
    ("nobody", "x"),
    ("dave", "davepw"),
    ("carol", "c1"),
    ("carol", "c2"),
    ("hashed", "password"),
    ("sel", "anything"),
];

/// Commands each user tries, allowed and denied.
const TRIES: &[(&str, &str, &[&[&str]])] = &[
    (
        "alice",
        "alicepw",
        &[
            &["SET", "app:1", "v"],
            &["GET", "app:1"],
            &["STRLEN", "app:1"],
            &["SET", "other", "v"],
            &["STRLEN", "ro:1"],
            &["SET", "ro:1", "v"],
            &["DEL", "x1"],
            &["DEL", "x1", "app:1"],
            &["MGET", "app:1", "ro:1"],
            &["MGET", "app:1", "zz"],
            &["CONFIG", "GET", "maxclients"],
            &["CONFIG", "SET", "maxclients", "10"],
            &["KEYS", "*"],
            &["EXISTS", "app:1", "nope"],
            &["FLUSHALL"],
            &["ACL", "WHOAMI"],
            &["CLIENT", "ID"],
            &["PING"],
        ],
    ),
    (
        "bob",
        "x",
        &[
            &["SET", "k", "v"],
            &["FLUSHALL"],
            &["ACL", "WHOAMI"],
            &["ACL", "LIST"],
            &["CONFIG", "GET", "maxclients"],
        ],
    ),
    (
        "carol",
        "c2",
        &[
            &["GET", "k"],
            &["SET", "k", "v"],
            &["STRLEN", "k"],
            &["CLIENT", "SETNAME", "c"],
            &["CLIENT", "GETNAME"],
            &["CLIENT", "LIST"],
            &["APPEND", "k", "v"],
        ],
    ),
    (
        "dash",
        "dashpw",
        &[
            &["GET", "k"],
            &["TTL", "k"],
            &["SET", "k", "v"],
            &["DEL", "k"],
            &["DBSIZE"],
            &["FLUSHDB"],
            &["GETEX", "k"],
            &["PING"],
            &["ECHO", "hi"],
        ],
    ),
    (
        "writer",
        "w",
        &[
            &["SET", "out:1", "v"],
            &["SET", "out:1", "v", "GET"],
            &["GET", "out:1"],
            &["INCR", "out:n"],
            &["DEL", "out:1"],
            &["EXISTS", "out:1"],
            &["SETNX", "out:2", "v"],
            &["RENAME", "out:n", "out:m"],
            &["APPEND", "out:3", "x"],
            &["MSET", "out:4", "a", "x", "b"],
            &["GETDEL", "out:4"],
            &["TYPE", "out:3"],
        ],
    ),
    (
        "sel",
        "x",
        &[
            &["GET", "a1"],
            &["GET", "b1"],
            &["SET", "b1", "v"],
            &["SET", "a1", "v"],
            &["GET", "c1"],
            &["SET", "c1", "v"],
            &["DEL", "c1"],
            &["STRLEN", "c1"],
        ],
    ),
    (
        "first",
        "x",
        &[
            &["SELECT", "0"],
            &["GET", "k1"],
            &["GET", "x"],
            &["FLUSHALL"],
        ],
    ),
    (
        "pick",
        "x",
        &[
            &["SELECT", "0"],
            &["SELECT", "1"],
            &["GET", "k"],
            &["SET", "k", "v"],
        ],
    ),
    (
        "sentinel-user",
        "sentpw",
        &[
            &["PING"],
            &["INFO", "nosuchsection"],
            &["CLIENT", "SETNAME", "s"],
            &["GET", "k"],
            &["CONFIG", "GET", "port"],
            &["CLIENT", "KILL", "ID", "999999"],
        ],
    ),
    (
        "replica-user",
        "replpw",
        &[&["PING"], &["GET", "k"], &["KEYS", "*"]],
    ),
];

/// Checks of channel rights that work without pub/sub, through ACL DRYRUN.
const DRYRUNS: &[&[&str]] = &[
    &["alice", "publish", "chan1", "m"],
    &["alice", "publish", "other", "m"],
    &["alice", "subscribe", "chan1", "other"],
    &["alice", "psubscribe", "chan*"],
    &["alice", "psubscribe", "chan1"],
    &["alice", "get", "app:1"],
    &["alice", "set", "ro:1", "v"],
    &["alice", "strlen", "ro:1"],
    &["bob", "publish", "x", "m"],
    &["bob", "flushall"],
    &["sentinel-user", "publish", "__sentinel__:hello", "m"],
    &["sentinel-user", "get", "k"],
    &["sel", "set", "b1", "v"],
    &["nobody", "get", "k"],
    &["bob", "nosuch"],
    &["bob", "config", "nosuch"],
    &["bob", "get"],
    &["first", "select", "1"],
    &["pick", "select", "0"],
    &["pick", "select", "1"],
    &["news", "publish", "news.1", "m"],
    &["news", "publish", "x", "m"],
    &["news", "subscribe", "news.1", "x"],
    &["news", "psubscribe", "news.*"],
    &["news", "psubscribe", "news.1"],
    &["news", "spublish", "news.2", "m"],
    &["news", "ssubscribe", "y"],
];

#[test]
fn rules_logins_and_denials_match_redis() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut admin = Pair::new(&redis, &ours);
    for args in SETUSERS {
        let mut full = vec!["ACL", "SETUSER"];
        full.extend_from_slice(args);
        admin.same(&full);
    }
    admin.same(&["ACL", "USERS"]);
    // ACL LIST and GETUSER by meaning.
    let (redis_list, our_list) = admin.both(&["ACL", "LIST"]);
    let (redis_list, our_list) = (strings(&redis_list), strings(&our_list));
    assert_eq!(redis_list.len(), our_list.len());
    for (r, o) in redis_list.iter().zip(&our_list) {
        assert_eq!(
            meaning(o),
            meaning(r),
            "ACL LIST line differs:\n ours  {o}\n redis {r}"
        );
    }
    for args in SETUSERS.iter().take(15) {
        let (r, o) = admin.both(&["ACL", "GETUSER", args[0]]);
        let fields = |raw: &[u8]| -> Vec<BTreeSet<String>> {
            strings(raw)
                .iter()
                .map(|s| meaning(s).into_iter().flatten().collect())
                .collect()
        };
        assert_eq!(fields(&o), fields(&r), "ACL GETUSER {}", args[0]);
    }
    for (user, password) in LOGINS {
        let mut pair = Pair::new(&redis, &ours);
        pair.same(&["AUTH", user, password]);
        pair.same(&["ACL", "WHOAMI"]);
        // HELLO's reply describes each server; its errors must match.
        let (r, o) = pair.both(&["HELLO", "2", "AUTH", user, password]);
        assert_eq!(
            o.starts_with(b"-"),
            r.starts_with(b"-"),
            "HELLO AUTH {user}"
        );
        if r.starts_with(b"-") {
            assert_eq!(String::from_utf8_lossy(&o), String::from_utf8_lossy(&r));
        }
    }
    for (user, password, commands) in TRIES {
        let mut pair = Pair::new(&redis, &ours);
        pair.same(&["AUTH", user, password]);
        for command in *commands {
            pair.same(command);
        }
    }
    for args in DRYRUNS {
        let mut full = vec!["ACL", "DRYRUN"];
        full.extend_from_slice(args);
        admin.same(&full);
    }
    // Channels through PUBLISH once pocketkv has it.
    let mut pair = Pair::new(&redis, &ours);
    pair.same(&["AUTH", "alice", "alicepw"]);
    let (redis_reply, our_reply) = pair.both(&["PUBLISH", "other", "m"]);
    if !our_reply.starts_with(b"-ERR unknown command") {
        assert_eq!(
            our_reply, redis_reply,
            "PUBLISH to a channel alice may not use"
        );
        pair.same(&["PUBLISH", "chan1", "m"]);
    }
    // ACL LOG: the same entries (newest first), their fields compared but for client-info and age.
    let (r, o) = admin.both(&["ACL", "LOG", "50"]);
    let keep = |raw: &[u8]| -> Vec<String> {
        let all = strings(raw);
        let mut kept = Vec::new();
        let mut i = 0;
        while i + 1 < all.len() {
            if !matches!(all[i].as_str(), "age-seconds" | "client-info") {
                kept.push(format!("{}={}", all[i], all[i + 1]));
            }
            i += 2;
        }
        kept
    };
    let (r, o) = (keep(&r), keep(&o));
    // Redis logged PUBLISH's refusal too when pocketkv had no PUBLISH to refuse: one entry of
    // five compared fields, the newest.
    if our_reply.starts_with(b"-ERR unknown command") {
        assert_eq!(o.len() + 5, r.len(), "ours {o:?}\nredis {r:?}");
        assert_eq!(o, r[5..].to_vec());
    } else {
        assert_eq!(o, r);
    }
    admin.same(&["ACL", "LOG", "RESET"]);
    admin.same(&["ACL", "LOG"]);
    admin.same(&["ACL", "DELUSER", "alice", "nobody", "bob"]);
    admin.same(&["ACL", "DELUSER", "default"]);
    admin.same(&["ACL", "USERS"]);
    admin.same(&["ACL", "HELP"]);
    admin.same(&["ACL", "CAT"]);
    admin.same(&["ACL", "CAT", "nosuch"]);
    admin.same(&["ACL", "GETUSER", "nobody"]);
    admin.same(&["ACL", "GENPASS", "0"]);
    admin.same(&["ACL", "GENPASS", "x"]);
    admin.same(&["ACL", "LOG", "x"]);
    admin.same(&["ACL", "LOG", "1", "2"]);
    admin.same(&["ACL", "NOSUCH"]);
    admin.same(&["ACL", "SAVE"]);
    admin.same(&["ACL", "LOAD"]);
    admin.same(&["ACL"]);
    for bits in ["1", "5", "256", "4096"] {
        let (r, o) = admin.both(&["ACL", "GENPASS", bits]);
        assert_eq!(strings(&o)[0].len(), strings(&r)[0].len(), "GENPASS {bits}");
    }
}

#[test]
fn every_category_lists_what_redis_lists() {
    let redis = Redis::start(&[]);
    let ours = Server::start(&[]);
    let mut pair = Pair::new(&redis, &ours);
    let categories = strings(&pair.same(&["ACL", "CAT"]));
    assert_eq!(categories.len(), 21);
    for category in &categories {
        let (r, o) = pair.both(&["ACL", "CAT", category]);
        let set = |raw: &[u8]| strings(raw).into_iter().collect::<BTreeSet<String>>();
        assert_eq!(set(&o), set(&r), "ACL CAT {category}");
    }
}

#[test]
fn requirepass_is_the_default_users_password() {
    let redis = Redis::start(&["--requirepass", "s3cret"]);
    let ours = Server::start(&["--requirepass", "s3cret"]);
    let mut pair = Pair::new(&redis, &ours);
    pair.same(&["GET", "k"]);
    pair.same(&["AUTH", "default", "nope"]);
    pair.same(&["AUTH", "s3cret"]);
    pair.same(&["ACL", "LIST"]);
    pair.same(&["ACL", "SETUSER", "default", "resetpass", ">other"]);
    pair.same(&["CONFIG", "SET", "requirepass", "third"]);
    pair.same(&["ACL", "LIST"]);
    let mut fresh = Pair::new(&redis, &ours);
    fresh.same(&["AUTH", "other"]);
    fresh.same(&["AUTH", "third"]);
    let (r, o) = pair.both(&["ACL", "LOG"]);
    assert_eq!(
        strings(&o)[..10],
        strings(&r)[..10],
        "the failed logins' entry"
    );
}

/// A server with an aclfile holding `text`; the file's path.
fn with_aclfile(dir: &std::path::Path, text: &str) -> (Server, String) {
    let path = dir.join("users.acl");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (Server::start(&["--aclfile", &path]), path)
}

#[test]
fn acl_save_and_a_restart_keep_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let (server, path) = with_aclfile(dir.path(), "user default on nopass ~* &* +@all\n");
    let mut c = server.connect();
    c.cmd(
        &[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">apppw",
            "~app:*",
            "+@read",
            "+@write",
            "(~x +get)",
        ],
        b"+OK\r\n",
    );
    c.cmd(
        &[
            "ACL",
            "SETUSER",
            "dash",
            "on",
            "#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
            "%R~*",
            "+@read",
        ],
        b"+OK\r\n",
    );
    c.cmd(&["ACL", "SAVE"], b"+OK\r\n");
    let before = ask(&server, &[&["ACL", "LIST"]]);
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.starts_with("user app on #"), "{saved}");
    assert!(
        !saved.contains("apppw"),
        "no cleartext password in the file"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left beside it"
    );
    drop(c);
    drop(server);
    let server = Server::start(&["--aclfile", &path]);
    let mut c = server.connect();
    assert_eq!(
        String::from_utf8_lossy(&ask(&server, &[&["ACL", "LIST"]])),
        String::from_utf8_lossy(&before)
    );
    c.cmd(&["AUTH", "app", "apppw"], b"+OK\r\n");
    c.cmd(&["SET", "app:1", "v"], b"+OK\r\n");
    c.cmd(&["GET", "x"], b"$-1\r\n");
    c.cmd(
        &["SET", "x", "v"],
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
    );
    c.cmd(&["AUTH", "dash", "password"], b"+OK\r\n");
    c.cmd(&["GET", "app:1"], b"$1\r\nv\r\n");
}

#[test]
fn acl_load_of_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, path) = with_aclfile(dir.path(), "user alice on >pw ~a* +get\n");
    let mut c = server.connect();
    let before = ask(&server, &[&["ACL", "LIST"]]);
    let mut alice = server.connect();
    alice.cmd(&["AUTH", "alice", "pw"], b"+OK\r\n");
    std::fs::write(
        &path,
        "user alice on >pw ~* +@all\nuser bob on +nosuch\nnot a user line\nuser bob off\n",
    )
    .unwrap();
    let expected = format!(
        "-ERR {path}:2: Error in applying operation '+nosuch': Unknown command or category name \
         in ACL. {path}:3 should start with user keyword followed by the username. WARNING: \
         Duplicate user 'bob' found on line 4. WARNING: ACL errors detected, no change to the \
         previously active ACL rules was performed\r\n"
    );
    c.cmd(&["ACL", "LOAD"], expected.as_bytes());
    assert_eq!(ask(&server, &[&["ACL", "LIST"]]), before);
    alice.cmd(&["GET", "a1"], b"$-1\r\n");
    alice.cmd(
        &["SET", "a1", "v"],
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    // A good file replaces every user, and Redis closes connections of the users it replaced.
    std::fs::write(&path, "user alice on >pw2 ~* +@all\n").unwrap();
    c.cmd(&["ACL", "LOAD"], b"+OK\r\n");
    alice.expect_closed();
    let alice = "user alice on #93915a0a4bf8f634cb1856494dd4304472ad46b9827f541f76b6761c49cc55b0 \
                 ~* resetchannels +@all";
    let default = "user default on nopass ~* &* +@all";
    let expected = format!(
        "*2\r\n${}\r\n{alice}\r\n${}\r\n{default}\r\n",
        alice.len(),
        default.len()
    );
    c.cmd(&["ACL", "LIST"], expected.as_bytes());
}

#[test]
fn a_deleted_user_is_disconnected_and_changed_rights_apply_at_once() {
    let server = Server::start(&[]);
    let mut admin = server.connect();
    admin.cmd(
        &["ACL", "SETUSER", "eve", "on", ">pw", "~*", "+get", "+set"],
        b"+OK\r\n",
    );
    let mut eve = server.connect();
    eve.cmd(&["AUTH", "eve", "pw"], b"+OK\r\n");
    eve.cmd(&["SET", "k", "v"], b"+OK\r\n");
    admin.cmd(&["ACL", "SETUSER", "eve", "-set"], b"+OK\r\n");
    eve.cmd(
        &["SET", "k", "v"],
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    let list = String::from_utf8_lossy(&ask(&server, &[&["CLIENT", "LIST"]])).into_owned();
    assert!(list.contains(" user=eve "), "{list}");
    admin.cmd(&["ACL", "DELUSER", "eve"], b":1\r\n");
    eve.expect_closed();
    // A user that deletes itself gets its reply, then is closed.
    admin.cmd(
        &["ACL", "SETUSER", "self", "on", "nopass", "+@all", "~*"],
        b"+OK\r\n",
    );
    let mut me = server.connect();
    me.cmd(&["AUTH", "self", "x"], b"+OK\r\n");
    me.cmd(&["ACL", "DELUSER", "self"], b":1\r\n");
    me.expect_closed();
}

#[test]
fn a_bad_rule_at_start_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pocketkv.conf");
    std::fs::write(&config, "port 0\nuser alice on >pw +nosuch\n").unwrap();
    let start = |args: &[&str]| {
        common::server_command()
            .args(args)
            .args(["--port", "0", "--dir", dir.path().to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pocketkv")
            .wait_with_output()
            .unwrap()
    };
    let output = start(&[config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "{}:2: Error in user declaration '+nosuch': Unknown command or category name in ACL",
            config.display()
        )),
        "{stderr}"
    );
    // Users in the config and an aclfile together: refused, as Redis refuses them.
    let acl = dir.path().join("users.acl");
    std::fs::write(&acl, "user bob on\n").unwrap();
    std::fs::write(
        &config,
        format!("user alice on\naclfile {}\n", acl.display()),
    )
    .unwrap();
    let output = start(&[config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("but not both"));
    // A bad line in the aclfile.
    std::fs::write(&acl, "user bob on\nuser carol ~a b\n").unwrap();
    let output = start(&["--aclfile", acl.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:2: ", acl.display())),
        "{stderr}"
    );
    // Users from the config file work.
    std::fs::write(&config, "user alice on >pw ~a* +get\nuser default off\n").unwrap();
    let server = Server::start_with_config(&config, &[]);
    let mut c = server.connect();
    c.cmd(&["GET", "a"], b"-NOAUTH Authentication required.\r\n");
    c.cmd(&["AUTH", "alice", "pw"], b"+OK\r\n");
    c.cmd(&["GET", "a"], b"$-1\r\n");
}

/// The status line of the answer to one HTTP request.
fn http_status(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> String {
    let mut c = Client::connect(addr);
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let body = if method == "PUT" {
        "Content-Length: 1\r\n\r\nv"
    } else {
        "\r\n"
    };
    c.send(format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{auth}{body}").as_bytes());
    c.read_line().trim_end().to_string()
}

#[test]
fn http_basic_credentials_run_as_that_user() {
    let (server, addr) = Server::start_http(&["--requirepass", "adminpw"]);
    let mut c = server.connect();
    c.cmd(&["AUTH", "adminpw"], b"+OK\r\n");
    c.cmd(
        &["ACL", "SETUSER", "dash", "on", ">dashpw", "~*", "+@read"],
        b"+OK\r\n",
    );
    // "dash:dashpw", "dash:nope", "default:adminpw" in base64.
    let dash = Some("Basic ZGFzaDpkYXNocHc=");
    let wrong = Some("Basic ZGFzaDpub3Bl");
    let admin = Some("Basic ZGVmYXVsdDphZG1pbnB3");
    assert_eq!(
        http_status(addr, "PUT", "/v1/keys/k", None),
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(
        http_status(addr, "PUT", "/v1/keys/k", wrong),
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(
        http_status(addr, "PUT", "/v1/keys/k", dash),
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        http_status(addr, "PUT", "/v1/keys/k", admin),
        "HTTP/1.1 204 No Content"
    );
    assert_eq!(
        http_status(addr, "PUT", "/v1/keys/k", Some("Bearer adminpw")),
        "HTTP/1.1 204 No Content"
    );
    assert_eq!(
        http_status(addr, "GET", "/v1/keys/k", dash),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        http_status(addr, "DELETE", "/v1/keys/k", dash),
        "HTTP/1.1 403 Forbidden"
    );
    let log = ask(&server, &[&["AUTH", "adminpw"], &["ACL", "LOG", "1"]]);
    let log = String::from_utf8_lossy(&log).into_owned();
    assert!(
        log.contains("\r\ndel\r\n") && log.contains("\r\ndash\r\n"),
        "{log}"
    );
}

#[test]
fn passwords_stay_out_of_the_slow_log_and_client_list() {
    let server = Server::start(&["--slowlog-log-slower-than", "0"]);
    let mut c = server.connect();
    c.cmd(
        &["ACL", "SETUSER", "u", "on", ">hunter2", "+@all", "~*"],
        b"+OK\r\n",
    );
    c.cmd(&["AUTH", "u", "hunter2"], b"+OK\r\n");
    c.cmd(
        &["AUTH", "u", "hunter3"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    for request in [
        &["SLOWLOG", "GET", "-1"][..],
        &["CLIENT", "LIST"],
        &["ACL", "LOG"],
        &["ACL", "LIST"],
    ] {
        let reply = String::from_utf8_lossy(&ask(&server, &[request])).into_owned();
        assert!(!reply.contains("hunter"), "{request:?}: {reply}");
    }
    let slowlog = ask(&server, &[&["SLOWLOG", "GET", "-1"]]);
    let slowlog = String::from_utf8_lossy(&slowlog).into_owned();
    assert!(
        slowlog.contains("CLIENT"),
        "the slow log does record other commands: {slowlog}"
    );
}

#[test]
fn refusals_and_failed_logins_go_to_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let server = Server::start(&["--audit-log", audit.to_str().unwrap()]);
    let mut c = server.connect();
    let me = c.stream.local_addr().unwrap().to_string();
    c.cmd(
        &["ACL", "SETUSER", "ro", "on", ">pw", "%R~*", "+@read"],
        b"+OK\r\n",
    );
    c.cmd(
        &["AUTH", "ro", "nope"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.cmd(&["AUTH", "ro", "pw"], b"+OK\r\n");
    c.cmd(
        &["SET", "k", "v"],
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    c.cmd(
        &["ACL", "SETUSER", "ro", "+set"],
        b"-NOPERM this user has no permissions to run the 'acl|setuser' command\r\n",
    );
    // The writer flushes on its own schedule: poll for the last line, with a deadline.
    let deadline = Instant::now() + DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if text.contains("acl|setuser") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let tails: Vec<&str> = text
        .lines()
        .map(|line| line.split_once(' ').expect("time first").1)
        .map(|rest| {
            rest.strip_prefix(&format!("{me} "))
                .expect("client address")
        })
        .collect();
    assert_eq!(
        tails,
        [
            "ro denied auth AUTH",
            "ro denied command set",
            "ro denied command \"acl|setuser\""
        ],
        "{text}"
    );
    assert!(!text.contains("nope") && !text.contains("pw"), "{text}");
}
