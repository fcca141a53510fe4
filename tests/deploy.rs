//! deploy/: the commented config file holds every setting at its default (so it changes nothing
//! until edited), and the systemd unit keeps its hardening.

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
fn the_systemd_unit_runs_unprivileged_with_only_its_data_directory_writable() {
    let unit = repo_file("deploy/pocketkv.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for wanted in [
        "User=pocketkv",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/pocketkv",
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
