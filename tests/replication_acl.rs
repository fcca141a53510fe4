//! Replication under ACL users: a replica authenticates to its primary as a restricted user with
//! exactly the rights Redis documents for one (`+psync +replconf +ping`), and a replica whose
//! user lacks them, or whose password is wrong, keeps its link down and says why.

mod common;

use common::{eventually, Client, Server};

/// A connection to `server` authenticated as `user`.
fn login(server: &Server, user: &str, password: &str) -> Client {
    let mut c = server.connect();
    assert_eq!(c.call(&["AUTH", user, password]), "+OK");
    c
}

fn field(c: &mut Client, section: &str, name: &str) -> String {
    c.info(section)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
}

const REPLICA_USER: &str = "replicator on >replpw +psync +replconf +ping";

#[test]
fn a_replica_user_with_redis_documented_rights_replicates() {
    let primary = Server::start(&["--requirepass", "adminpw", "--user", REPLICA_USER]);
    let mut admin = login(&primary, "default", "adminpw");
    for i in 0..100 {
        assert_eq!(
            admin.call(&["SET", &format!("k{i}"), &format!("v{i}")]),
            "+OK"
        );
    }
    let replica = Server::replica_of(
        &primary,
        &["--masteruser", "replicator", "--masterauth", "replpw"],
    );
    let mut r = replica.connect();
    eventually("the replica's link is up", || {
        field(&mut r, "replication", "master_link_status") == "up"
    });
    assert_eq!(admin.call(&["SET", "after", "sync"]), "+OK");
    eventually("the write after the sync arrives", || {
        r.call(&["GET", "after"]) == "sync"
    });
    let primary_digest = admin.call(&["DEBUG", "DIGEST"]);
    eventually("the replica holds what the primary holds", || {
        r.call(&["DEBUG", "DIGEST"]) == primary_digest
    });
    // The user can replicate and nothing else.
    let mut as_replicator = login(&primary, "replicator", "replpw");
    let refused = as_replicator.call(&["GET", "k1"]);
    assert!(refused.starts_with("-NOPERM"), "{refused}");
}

#[test]
fn a_replica_without_the_rights_or_the_password_stays_down() {
    let primary = Server::start(&[
        "--requirepass",
        "adminpw",
        "--user",
        REPLICA_USER,
        "--user",
        "reader on >readpw ~* +@read +ping",
    ]);
    for (user, password, why) in [
        ("replicator", "wrong", "refused AUTH: WRONGPASS"),
        ("reader", "readpw", "NOPERM"),
    ] {
        let mut replica =
            Server::replica_of(&primary, &["--masteruser", user, "--masterauth", password]);
        let line = replica.wait_log("handshake with primary");
        assert!(
            line.contains(why),
            "the log names the refusal ({why}): {line}"
        );
        let mut r = replica.connect();
        assert_eq!(field(&mut r, "replication", "master_link_status"), "down");
        // It still serves its own (empty) data meanwhile.
        assert_eq!(r.call(&["DBSIZE"]), ":0");
    }
}
