//! Redis Sentinel (the real `redis-sentinel` 7.0) watching pocketkv as the restricted user Redis
//! documents for it: two Sentinels log in with `auth-user`/`auth-pass`, see a healthy master and
//! find each other through its `__sentinel__:hello` channel, and pocketkv refuses them nothing.

mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::redis::{text, Replies};
use common::{eventually, free_port, resp, Server};

/// Redis's documented rights for a Sentinel user.
const SENTINEL_USER: &str = "sentinel-user on >sentinel-pw allchannels +multi +slaveof +ping \
                             +exec +subscribe +config|rewrite +role +publish +info \
                             +client|setname +client|kill +script|kill";

/// A redis-sentinel monitoring `master`, killed on drop.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(master: &Server) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor mymaster 127.0.0.1 {} 1\n\
             sentinel auth-user mymaster sentinel-user\n\
             sentinel auth-pass mymaster sentinel-pw\n\
             sentinel down-after-milliseconds mymaster 5000\n",
            dir.path().display(),
            master.addr.port()
        );
        std::fs::write(&config, text).expect("write sentinel.conf");
        let child = Command::new("redis-sentinel")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel on PATH; run `bash ci/install-deps.sh`");
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }

    /// SENTINEL MASTER mymaster as field -> value, or nothing while it is not up yet.
    fn master(&self) -> HashMap<String, String> {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return HashMap::new();
        };
        let mut conn = Replies::new(stream);
        let raw = text(&conn.call(&resp(&["SENTINEL", "MASTER", "mymaster"])));
        let values: Vec<&str> = raw
            .split("\r\n")
            .skip(1)
            .filter(|line| !line.starts_with('$'))
            .collect();
        values
            .chunks(2)
            .filter_map(|pair| match pair {
                [field, value] => Some((field.to_string(), value.to_string())),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sentinels_watch_pocketkv_as_the_documented_sentinel_user() {
    let server = Server::start(&[
        "--user",
        "default on >admin-pw ~* &* +@all",
        "--user",
        SENTINEL_USER,
    ]);
    let sentinels = [Sentinel::start(&server), Sentinel::start(&server)];
    for (i, sentinel) in sentinels.iter().enumerate() {
        eventually(
            &format!("sentinel {i} sees a master and the other sentinel"),
            || {
                let master = sentinel.master();
                master.get("flags").map(String::as_str) == Some("master")
                    && master.get("num-other-sentinels").map(String::as_str) == Some("1")
            },
        );
    }
    let mut admin = server.connect();
    admin.cmd(&["AUTH", "admin-pw"], b"+OK\r\n");
    // Every Sentinel connection runs as its user, and nothing it sent was refused.
    let list = admin.call(&["CLIENT", "LIST"]);
    let sentinel_lines = list
        .lines()
        .filter(|l| l.contains("name=sentinel-"))
        .count();
    assert!(sentinel_lines >= 4, "two links per sentinel:\n{list}");
    for line in list.lines().filter(|l| l.contains("name=sentinel-")) {
        assert!(line.contains(" user=sentinel-user "), "{line}");
    }
    admin.cmd(&["ACL", "LOG"], b"*0\r\n");
}
