//! deploy/: the commented config file holds every setting at its default (so it changes nothing
//! until edited), the systemd unit keeps its hardening, the replica config starts a replica, and
//! Redis Sentinel accepts the sentinel config (redis-sentinel from ci/install-deps.sh).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{resp, Client, Server};

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// CONFIG GET * as a map, without the settings a test server sets itself.
fn all_settings(c: &mut Client) -> BTreeMap<String, String> {
    c.send(&resp(&["CONFIG", "GET", "*"]));
    let header = c.read_line();
    let n: usize = header[1..].trim_end().parse().expect("array header");
    let mut words = Vec::new();
    for _ in 0..n {
        let len: usize = c.read_line()[1..].trim_end().parse().expect("bulk header");
        let bulk = c.read_n(len + 2);
        words.push(String::from_utf8(bulk[..len].to_vec()).unwrap());
    }
    let mut map: BTreeMap<String, String> = words
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    map.remove("port");
    map.remove("dir");
    map
}

#[test]
fn the_deploy_config_file_sets_every_setting_to_its_default() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/pocketkv.conf");
    let with_file = Server::start_with_config(&conf, &[]);
    let defaults = Server::start(&[]);
    let from_file = all_settings(&mut with_file.connect());
    let default = all_settings(&mut defaults.connect());
    assert_eq!(
        from_file, default,
        "deploy/pocketkv.conf differs from the defaults"
    );
}

#[test]
fn the_deploy_config_file_names_every_setting() {
    let text = repo_file("deploy/pocketkv.conf");
    let directives: Vec<&str> = text
        .lines()
        .map(|l| l.trim_start_matches(['#', ' ']))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let help = common::server_command().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| !["help", "version"].contains(name))
        .collect();
    assert!(flags.len() > 20, "too few flags in --help: {help}");
    let missing: Vec<&&str> = flags.iter().filter(|f| !directives.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "deploy/pocketkv.conf lacks {missing:?}: add each at its default, with two lines of why"
    );
}

#[test]
fn the_systemd_unit_runs_unprivileged_with_only_its_data_and_config_directories_writable() {
    let unit = repo_file("deploy/pocketkv.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for wanted in [
        "User=pocketkv",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        // Its data, and the config directory CONFIG REWRITE replaces the file in.
        "ReadWritePaths=/var/lib/pocketkv /etc/pocketkv",
        "StateDirectory=pocketkv",
        "CapabilityBoundingSet=",
        "ExecStart=/usr/local/bin/pocketkv /etc/pocketkv/pocketkv.conf",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(lines.contains(&wanted), "pocketkv.service lacks {wanted:?}");
    }
    // Enough descriptors for the default maxclients and the 32 pocketkv keeps for itself.
    let nofile: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE")
        .parse()
        .unwrap();
    assert!(nofile >= 10_000 + 32, "LimitNOFILE={nofile}");
}

#[test]
fn the_replica_config_file_starts_a_replica_that_follows_its_primary() {
    // A copy: Sentinel's CONFIG REWRITE writes into the file a server started from.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("replica.conf");
    std::fs::write(&conf, repo_file("deploy/replica.conf")).unwrap();
    let primary = Server::start(&[]);
    let target = format!("127.0.0.1 {}", primary.addr.port());
    let replica = Server::start_with_config(&conf, &["--replicaof", &target]);
    let mut c = replica.connect();
    common::eventually("the replica's link up", || {
        c.info_field("replication", "master_link_status") == "up"
    });
    for (field, want) in [
        ("role", "slave"),
        ("slave_read_only", "1"),
        ("slave_priority", "100"),
    ] {
        assert_eq!(c.info_field("replication", field), want, "{field}");
    }
    assert_eq!(c.info_field("persistence", "aof_enabled"), "1");
    // What the file says beyond the defaults is what its comments promise.
    let text = repo_file("deploy/replica.conf");
    for line in [
        "replicaof 127.0.0.1 12345",
        "replica-read-only yes",
        "appendonly yes",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "replica.conf lacks {line:?}"
        );
    }
}

#[test]
fn redis_sentinel_accepts_the_sentinel_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Only the port and the working directory change (Sentinel rewrites its file: a copy).
    let text: String = repo_file("deploy/sentinel.conf")
        .lines()
        .map(|l| {
            if l.starts_with("port ") {
                format!("port {port}\n")
            } else if l.starts_with("dir ") {
                format!("dir {}\n", dir.path().display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(&conf, text).unwrap();
    let mut sentinel = std::process::Command::new("redis-sentinel")
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("redis-sentinel (bash ci/install-deps.sh installs it)");
    // Kill it whatever happens below.
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut sentinel);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let mut c = loop {
        if let Ok(stream) = std::net::TcpStream::connect(addr) {
            stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
            break Client { stream };
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("redis-sentinel refused deploy/sentinel.conf ({status})");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redis-sentinel did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    c.send(&resp(&["SENTINEL", "MASTER", "mymaster"]));
    let n: usize = c.read_line()[1..].trim_end().parse().expect("array");
    let mut words = Vec::new();
    for _ in 0..n {
        let line = c.read_line();
        let len: usize = line[1..].trim_end().parse().expect("bulk");
        let bulk = c.read_n(len + 2);
        words.push(String::from_utf8_lossy(&bulk[..len]).into_owned());
    }
    let fields: BTreeMap<&str, &str> = words
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_str()))
        .collect();
    for (field, want) in [
        ("ip", "127.0.0.1"),
        ("port", "12345"),
        ("quorum", "2"),
        ("down-after-milliseconds", "5000"),
        ("failover-timeout", "60000"),
        ("parallel-syncs", "1"),
    ] {
        assert_eq!(fields.get(field), Some(&want), "{field} in {fields:?}");
    }
}
