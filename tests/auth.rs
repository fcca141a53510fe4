//! Authentication: `--requirepass`, AUTH, HELLO (RESP2 and RESP3), NOAUTH, CONFIG SET
//! requirepass, in both dialects, against the real binary.

mod common;

use common::{bulk, resp, Server};

const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/// HELLO's reply for client `id` in RESP3.
fn hello3(id: u64) -> Vec<u8> {
    format!(
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n\
         $2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
         $7\r\nmodules\r\n*0\r\n"
    )
    .into_bytes()
}

#[test]
fn nothing_but_auth_hello_quit_and_help_before_the_password() {
    let server = Server::start(&["--requirepass", "s3cret pw"]);
    let mut c = server.connect();
    for args in [
        &["GET", "k"][..],
        &["SET", "k", "v"],
        &["PING"],
        &["CONFIG", "GET", "requirepass"],
        &["FLUSHALL"],
        &["KEYS", "*"],
        &["CLIENT", "ID"],
    ] {
        c.cmd(args, NOAUTH);
    }
    // Unknown commands and wrong arity are reported before the password is asked for, as in Redis.
    c.cmd(
        &["NOPE"],
        b"-ERR unknown command 'NOPE', with args beginning with: \r\n",
    );
    c.cmd(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.send(&resp(&["HELP"]));
    let header = c.read_line();
    let len: usize = header
        .trim_start_matches('$')
        .trim_end()
        .parse()
        .expect("HELP is a bulk");
    assert!(String::from_utf8_lossy(&c.read_n(len + 2)).contains("AUTH"));
    c.cmd(&["AUTH", "s3cret"], WRONGPASS);
    c.cmd(&["AUTH", "bob", "s3cret pw"], WRONGPASS);
    c.cmd(&["AUTH", "a", "b", "c"], b"-ERR syntax error\r\n");
    c.cmd(&["GET", "k"], NOAUTH);
    c.cmd(&["AUTH", "s3cret pw"], b"+OK\r\n");
    // Once authenticated, the small bounds for strangers (10 arguments, 16 KiB) are gone.
    let big = "x".repeat(20_000);
    c.cmd(
        &[
            "MSET", "a", &big, "b", "1", "c", "2", "d", "3", "e", "4", "f", "5",
        ],
        b"+OK\r\n",
    );
    c.cmd(&["SET", "k", "v"], b"+OK\r\n");
    c.cmd(&["GET", "k"], &bulk("v"));
    // A wrong password later does not log the client out (Redis keeps it authenticated too).
    c.cmd(&["AUTH", "wrong"], WRONGPASS);
    c.cmd(&["GET", "k"], &bulk("v"));

    let mut d = server.connect();
    d.cmd(&["AUTH", "default", "s3cret pw"], b"+OK\r\n");
    d.cmd(&["GET", "k"], &bulk("v"));

    let mut e = server.connect();
    e.cmd(&["QUIT"], b"+OK\r\n");
    e.expect_closed();
}

#[test]
fn strangers_may_not_send_big_requests() {
    let server = Server::start(&["--requirepass", "pw"]);
    let mut c = server.connect();
    let big = "x".repeat(20_000);
    c.cmd(
        &["SET", "k", &big],
        b"-ERR Protocol error: unauthenticated bulk length\r\n",
    );
    c.expect_closed();
    // Pipelined behind a successful AUTH, the same request is fine.
    let mut d = server.connect();
    let mut bytes = resp(&["AUTH", "pw"]);
    bytes.extend(resp(&["SET", "k", &big]));
    d.roundtrip(&bytes, b"+OK\r\n+OK\r\n");
}

#[test]
fn text_dialect_authenticates_too() {
    let server = Server::start(&["--requirepass", "secret"]);
    let mut c = server.connect();
    c.roundtrip(b"GET k\n", b"(error) NOAUTH Authentication required.\n");
    c.roundtrip(
        b"AUTH nope\n",
        b"(error) WRONGPASS invalid username-password pair or user is disabled.\n",
    );
    c.roundtrip(b"AUTH secret\n", b"OK\n");
    c.roundtrip(b"PUT k \"a b\"\n", b"OK\n");
    c.roundtrip(b"GET k\n", b"\"a b\"\n");
}

#[test]
fn hello_3_authenticates_and_switches_to_resp3() {
    let server = Server::start(&["--requirepass", "secret"]);
    let mut c = server.connect();
    c.cmd(&["CLIENT", "ID"], NOAUTH);
    c.cmd(
        &["HELLO", "3"],
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
          HELLO AUTH <user> <pass> option can be used to authenticate the client and select the \
          RESP protocol version at the same time\r\n",
    );
    c.cmd(&["HELLO", "3", "AUTH", "default", "wrong"], WRONGPASS);
    c.cmd(&["GET", "missing"], NOAUTH);
    c.send(&resp(&[
        "HELLO", "3", "AUTH", "default", "secret", "SETNAME", "app",
    ]));
    // The first client of this server has id 1.
    c.expect(&hello3(1));
    c.cmd(&["GET", "missing"], b"_\r\n");
    c.cmd(&["MGET", "missing", "k"], b"*2\r\n_\r\n_\r\n");
    c.cmd(&["CLIENT", "GETNAME"], &bulk("app"));
    c.cmd(
        &["CONFIG", "GET", "requirepass"],
        b"%1\r\n$11\r\nrequirepass\r\n$6\r\nsecret\r\n",
    );
    c.send(&resp(&["INFO", "keyspace"]));
    c.expect(b"=16\r\ntxt:# Keyspace\r\n\r\n");
    // Back to RESP2: the HELLO reply is a flat array, nulls are $-1 again.
    c.send(&resp(&["HELLO", "2"]));
    assert_eq!(c.read_line(), "*14\r\n");
    for _ in 0..14 {
        let line = c.read_line();
        if line.starts_with('$') {
            c.read_line();
        }
    }
    c.cmd(&["GET", "missing"], b"$-1\r\n");
}

#[test]
fn without_a_password_auth_says_so_and_hello_needs_none() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.cmd(
        &["AUTH", "x"],
        b"-ERR AUTH <password> called without any password configured for the default user. \
          Are you sure your configuration is correct?\r\n",
    );
    c.cmd(&["AUTH", "default", "anything"], b"+OK\r\n");
    c.cmd(&["AUTH", "bob", "anything"], WRONGPASS);
    c.send(&resp(&["HELLO", "3"]));
    c.expect(&hello3(1));
    c.cmd(
        &["HELLO", "4"],
        b"-NOPROTO unsupported protocol version\r\n",
    );
}

#[test]
fn config_set_requirepass_applies_to_new_clients_only() {
    let server = Server::start(&[]);
    let mut admin = server.connect();
    let mut bystander = server.connect();
    bystander.cmd(&["PING"], b"+PONG\r\n");
    admin.cmd(&["CONFIG", "SET", "requirepass", "newpw"], b"+OK\r\n");
    // Clients connected while no password was needed stay logged in as the default user (as
    // in Redis: tests/acl_sessions.rs compares it with redis-server).
    bystander.cmd(&["PING"], b"+PONG\r\n");
    admin.cmd(
        &["CONFIG", "GET", "requirepass"],
        b"*2\r\n$11\r\nrequirepass\r\n$5\r\nnewpw\r\n",
    );
    let mut late = server.connect();
    late.cmd(&["GET", "k"], NOAUTH);
    late.cmd(&["AUTH", "newpw"], b"+OK\r\n");
    late.cmd(&["GET", "k"], b"$-1\r\n");
    // Clearing the password opens the door again.
    admin.cmd(&["CONFIG", "SET", "requirepass", ""], b"+OK\r\n");
    server.connect().cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn config_set_is_all_or_nothing_and_names_the_problem() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.cmd(
        &["CONFIG", "SET", "nosuch", "1"],
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n",
    );
    c.cmd(
        &["CONFIG", "SET", "port", "1"],
        b"-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n",
    );
    c.cmd(
        &["CONFIG", "SET", "requirepass", "a", "requirepass", "b"],
        b"-ERR CONFIG SET failed (possibly related to argument 'requirepass') - duplicate parameter\r\n",
    );
    c.cmd(
        &["CONFIG", "SET", "requirepass", "a", "port", "1"],
        b"-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n",
    );
    c.cmd(
        &["CONFIG", "GET", "requirepass"],
        b"*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n",
    );
}
