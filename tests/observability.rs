//! INFO commandstats and latencystats, CONFIG RESETSTAT and SLOWLOG against the real binary.

mod common;

use common::{bulk, resp, Client, Server};

/// Reads one whole RESP bulk reply (INFO) and returns its payload.
fn read_bulk(client: &mut Client) -> String {
    let header = client.read_line();
    let len: usize = header
        .strip_prefix('$')
        .and_then(|n| n.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not a bulk header: {header:?}"));
    let body = client.read_n(len + 2);
    String::from_utf8(body[..len].to_vec()).expect("utf-8 INFO")
}

fn info(client: &mut Client, section: &str) -> String {
    client.send(&resp(&["INFO", section]));
    read_bulk(client)
}

/// The `cmdstat_<name>:` line's fields, usec values dropped (they vary).
fn cmdstat(info: &str, name: &str) -> Option<String> {
    let prefix = format!("cmdstat_{name}:");
    let line = info.lines().find(|l| l.starts_with(&prefix))?;
    let fields: Vec<&str> = line[prefix.len()..]
        .split(',')
        .filter(|f| !f.starts_with("usec"))
        .collect();
    Some(fields.join(","))
}

#[test]
fn commandstats_count_calls_failures_and_rejections() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.cmd(&["SET", "n", "x"], b"+OK\r\n");
    c.cmd(&["GET", "n"], &bulk("x"));
    c.cmd(&["GET", "n"], &bulk("x"));
    c.cmd(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.cmd(
        &["INCR", "n"],
        b"-ERR value is not an integer or out of range\r\n",
    );
    c.cmd(
        &["CONFIG", "GET"],
        b"-ERR wrong number of arguments for 'config|get' command\r\n",
    );
    c.cmd(
        &["CONFIG", "NOPE"],
        b"-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n",
    );
    c.cmd(
        &["NOSUCH"],
        b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    let stats = info(&mut c, "commandstats");
    assert!(stats.starts_with("# Commandstats\r\n"), "{stats}");
    assert_eq!(
        cmdstat(&stats, "get").as_deref(),
        Some("calls=2,rejected_calls=1,failed_calls=0")
    );
    assert_eq!(
        cmdstat(&stats, "set").as_deref(),
        Some("calls=1,rejected_calls=0,failed_calls=0")
    );
    assert_eq!(
        cmdstat(&stats, "incr").as_deref(),
        Some("calls=1,rejected_calls=0,failed_calls=1")
    );
    assert_eq!(
        cmdstat(&stats, "config|get").as_deref(),
        Some("calls=0,rejected_calls=1,failed_calls=0")
    );
    assert_eq!(
        cmdstat(&stats, "nosuch"),
        None,
        "unknown commands are not listed"
    );
    assert_eq!(cmdstat(&stats, "config"), None);
    // Every line has Redis's five fields with numbers, usec_per_call with two decimals.
    for line in stats.lines().skip(1) {
        let (name, fields) = line.split_once(':').expect("name:fields");
        assert!(name.starts_with("cmdstat_"), "{line}");
        let keys: Vec<&str> = fields
            .split(',')
            .map(|f| {
                let (k, v) = f.split_once('=').expect("k=v");
                assert!(v.parse::<f64>().is_ok(), "{line}");
                if k == "usec_per_call" {
                    assert_eq!(v.split('.').nth(1).map(str::len), Some(2), "{line}");
                }
                k
            })
            .collect();
        assert_eq!(
            keys,
            [
                "calls",
                "usec",
                "usec_per_call",
                "rejected_calls",
                "failed_calls"
            ]
        );
    }
    // The INFO just run is counted after it replied.
    let again = info(&mut c, "commandstats");
    assert_eq!(
        cmdstat(&again, "info").as_deref(),
        Some("calls=1,rejected_calls=0,failed_calls=0")
    );
}

#[test]
fn latencystats_give_three_percentiles_per_command() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    for i in 0..50 {
        c.cmd(&["SET", &format!("k{i}"), "v"], b"+OK\r\n");
    }
    c.cmd(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    let stats = info(&mut c, "latencystats");
    let mut lines = stats.lines();
    assert_eq!(lines.next(), Some("# Latencystats"));
    let set = lines
        .clone()
        .find(|l| l.starts_with("latency_percentiles_usec_set:"))
        .expect("a line for set");
    let values: Vec<f64> = set
        .split_once(':')
        .unwrap()
        .1
        .split(',')
        .zip(["p50=", "p99=", "p99.9="])
        .map(|(field, key)| {
            let value = field.strip_prefix(key).expect("p50, p99, p99.9 in order");
            assert_eq!(value.split('.').nth(1).map(str::len), Some(3), "{set}");
            value.parse().expect("a number")
        })
        .collect();
    assert_eq!(values.len(), 3, "{set}");
    assert!(values[0] > 0.0 && values[0] <= values[1] && values[1] <= values[2]);
    assert!(
        !stats.contains("latency_percentiles_usec_get:"),
        "a command that never ran has no latencies"
    );
}

#[test]
fn info_sections_select_like_redis() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.cmd(&["PING"], b"+PONG\r\n");
    c.send(&resp(&["INFO"]));
    let default = read_bulk(&mut c);
    assert!(default.contains("# Stats\r\n") && default.contains("# Keyspace\r\n"));
    assert!(!default.contains("# Commandstats"), "not in a bare INFO");
    assert!(!default.contains("# Latencystats"));
    let all = info(&mut c, "all");
    let order: Vec<&str> = all.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(
        order,
        [
            "# Server",
            "# Clients",
            "# Memory",
            "# Persistence",
            "# Stats",
            "# Replication",
            "# Commandstats",
            "# Latencystats",
            "# Keyspace"
        ]
    );
    c.send(&resp(&["INFO", "COMMANDSTATS", "stats"]));
    let two = read_bulk(&mut c);
    let order: Vec<&str> = two.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(order, ["# Stats", "# Commandstats"]);
    assert!(two.contains("expired_keys:0\r\nevicted_keys:0\r\n"));
}

#[test]
fn config_resetstat_clears_commandstats_not_the_slowlog() {
    let server = Server::start(&["--slowlog-log-slower-than", "0"]);
    let mut c = server.connect();
    c.cmd(&["SET", "a", "1"], b"+OK\r\n");
    assert!(info(&mut c, "commandstats").contains("cmdstat_set:calls=1,"));
    c.cmd(&["CONFIG", "RESETSTAT"], b"+OK\r\n");
    let stats = info(&mut c, "commandstats");
    assert!(!stats.contains("cmdstat_set"), "{stats}");
    assert!(
        stats.contains("cmdstat_config|resetstat:calls=1,"),
        "{stats}"
    );
    // SET, INFO, CONFIG RESETSTAT, INFO: the slow log keeps them all.
    c.cmd(&["SLOWLOG", "LEN"], b":4\r\n");
}

/// Reads one RESP reply of any type as a small tree.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    Other(String),
}

fn read_value(c: &mut Client) -> Value {
    let line = c.read_line();
    let body = line[1..].trim_end();
    match line.as_bytes()[0] {
        b':' => Value::Int(body.parse().unwrap()),
        b'$' => {
            let n: usize = body.parse().unwrap();
            let bytes = c.read_n(n + 2);
            Value::Bulk(bytes[..n].to_vec())
        }
        b'*' => {
            let n: usize = body.parse().unwrap();
            Value::Array((0..n).map(|_| read_value(c)).collect())
        }
        _ => Value::Other(line),
    }
}

fn slowlog_get(c: &mut Client, count: Option<&str>) -> Vec<Value> {
    let mut args = vec!["SLOWLOG", "GET"];
    args.extend(count);
    c.send(&resp(&args));
    match read_value(c) {
        Value::Array(entries) => entries,
        other => panic!("not an array: {other:?}"),
    }
}

fn entry_args(entry: &Value) -> Vec<Vec<u8>> {
    let Value::Array(fields) = entry else {
        panic!("entry not an array: {entry:?}")
    };
    let Value::Array(args) = &fields[3] else {
        panic!("args not an array: {entry:?}")
    };
    args.iter()
        .map(|a| match a {
            Value::Bulk(b) => b.clone(),
            other => panic!("arg not a bulk: {other:?}"),
        })
        .collect()
}

#[test]
fn slowlog_records_everything_at_zero_in_redis_shape() {
    let server = Server::start(&["--slowlog-log-slower-than", "0", "--slowlog-max-len", "3"]);
    let mut c = server.connect();
    c.cmd(&["CLIENT", "SETNAME", "probe"], b"+OK\r\n");
    let long = "x".repeat(200);
    c.cmd(&["SET", "k", &long], b"+OK\r\n");
    let mut many = vec!["MSET"];
    let pairs: Vec<String> = (0..20)
        .flat_map(|i| [format!("k{i}"), "v".into()])
        .collect();
    many.extend(pairs.iter().map(String::as_str));
    let unix_secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    // The MSET's time is read between these two, however long the machine takes.
    let sent = unix_secs();
    c.cmd(&many, b"+OK\r\n");
    let answered = unix_secs();
    let local = c.stream.local_addr().unwrap().to_string();
    let entries = slowlog_get(&mut c, Some("-1"));
    assert_eq!(entries.len(), 3, "max-len 3 keeps the newest three");
    // Newest first: MSET, SET, CLIENT SETNAME (ids 2, 1, 0).
    let Value::Array(first) = &entries[0] else {
        panic!()
    };
    assert_eq!(first[0], Value::Int(2));
    let Value::Int(time) = first[1] else { panic!() };
    assert!(
        (sent..=answered).contains(&time),
        "unix time {time}, not in {sent}..={answered}"
    );
    assert!(matches!(first[2], Value::Int(n) if n >= 0));
    assert_eq!(first[4], Value::Bulk(local.into_bytes()));
    assert_eq!(first[5], Value::Bulk(b"probe".to_vec()));
    let mset = entry_args(&entries[0]);
    assert_eq!(mset.len(), 32, "32 arguments at most");
    assert_eq!(mset[0], b"MSET");
    assert_eq!(mset[31], b"... (10 more arguments)");
    let set = entry_args(&entries[1]);
    assert_eq!(set.len(), 3);
    assert_eq!(
        set[2],
        format!("{}... (72 more bytes)", "x".repeat(128)).into_bytes()
    );
    assert_eq!(
        entry_args(&entries[2]),
        [b"CLIENT".to_vec(), b"SETNAME".to_vec(), b"probe".to_vec()]
    );
    // Default count is 10; an explicit count cuts.
    assert_eq!(slowlog_get(&mut c, None).len(), 3);
    assert_eq!(slowlog_get(&mut c, Some("1")).len(), 1);
    assert_eq!(slowlog_get(&mut c, Some("0")).len(), 0);
    c.cmd(
        &["SLOWLOG", "GET", "-2"],
        b"-ERR count should be greater than or equal to -1\r\n",
    );
    c.cmd(
        &["SLOWLOG", "GET", "x"],
        b"-ERR count should be greater than or equal to -1\r\n",
    );
    c.cmd(&["SLOWLOG", "LEN"], b":3\r\n");
    c.cmd(&["SLOWLOG", "RESET"], b"+OK\r\n");
    // The RESET itself ran at >= 0 us, so it is the one entry now, with the next id.
    c.cmd(&["SLOWLOG", "LEN"], b":1\r\n");
    let entries = slowlog_get(&mut c, None);
    let Value::Array(reset) = &entries[0] else {
        panic!()
    };
    assert!(
        matches!(reset[0], Value::Int(id) if id > 2),
        "ids are not reused"
    );
    c.cmd(
        &["SLOWLOG"],
        b"-ERR wrong number of arguments for 'slowlog' command\r\n",
    );
    c.cmd(
        &["SLOWLOG", "LEN", "x"],
        b"-ERR wrong number of arguments for 'slowlog|len' command\r\n",
    );
    c.send(&resp(&["SLOWLOG", "HELP"]));
    let Value::Array(lines) = read_value(&mut c) else {
        panic!("HELP is an array of status lines")
    };
    assert_eq!(
        lines.first(),
        Some(&Value::Other(
            "+SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n".into()
        ))
    );
    assert!(
        lines.contains(&Value::Other("+RESET\r\n".into())),
        "{lines:?}"
    );
}

#[test]
fn slowlog_off_and_default_threshold() {
    let off = Server::start(&["--slowlog-log-slower-than", "-1"]);
    let mut c = off.connect();
    for _ in 0..5 {
        c.cmd(&["PING"], b"+PONG\r\n");
    }
    c.cmd(&["SLOWLOG", "LEN"], b":0\r\n");
    c.cmd(&["SLOWLOG", "GET"], b"*0\r\n");
    c.cmd(
        &["CONFIG", "GET", "slowlog-*"],
        &resp_reply(&["slowlog-log-slower-than", "-1", "slowlog-max-len", "128"]),
    );
    // The default is 10 ms. That a SET stays under it is a matter of timing (under qemu, or with
    // the server descheduled on a busy machine, one once took longer), so the threshold that
    // leaves fast commands out is tested at 10 s, which no SET comes near.
    let default = Server::start(&[]);
    default.connect().cmd(
        &["CONFIG", "GET", "slowlog-log-slower-than"],
        &resp_reply(&["slowlog-log-slower-than", "10000"]),
    );
    let patient = Server::start(&["--slowlog-log-slower-than", "10000000"]);
    let mut c = patient.connect();
    c.cmd(&["SET", "a", "b"], b"+OK\r\n");
    c.cmd(&["SLOWLOG", "LEN"], b":0\r\n");
}

#[test]
fn slowlog_in_the_text_dialect() {
    let server = Server::start(&["--slowlog-log-slower-than", "0"]);
    let mut c = server.connect();
    c.roundtrip(b"PUT greeting hello\n", b"OK\n");
    c.roundtrip(b"SLOWLOG LEN\n", b"(integer) 1\n");
    c.send(b"SLOWLOG GET 1\n");
    let mut first = Vec::new();
    while !first.ends_with(b"\n") {
        first.extend(c.read_n(1));
    }
    let first = String::from_utf8_lossy(&first);
    assert!(first.starts_with("1) 1) (integer) 1"), "{first:?}");
}

/// A RESP array of bulk strings.
fn resp_reply(items: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", items.len()).into_bytes();
    for item in items {
        out.extend(bulk(item));
    }
    out
}

#[test]
fn bad_slowlog_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--slowlog-log-slower-than", "-2"),
        ("--slowlog-max-len", "-1"),
    ] {
        let out = common::server_command()
            .args([
                "--port",
                "0",
                "--dir",
                dir.path().to_str().unwrap(),
                flag,
                value,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
    }
}

#[test]
fn config_set_changes_the_slowlog_at_run_time_and_auth_is_never_logged() {
    let server = Server::start(&["--requirepass", "sesame"]);
    let mut c = server.connect();
    c.cmd(&["AUTH", "sesame"], b"+OK\r\n");
    c.cmd(
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
        b"+OK\r\n",
    );
    c.cmd(&["AUTH", "sesame"], b"+OK\r\n");
    c.send(&resp(&["HELLO", "2", "AUTH", "default", "sesame"]));
    assert!(matches!(read_value(&mut c), Value::Array(_)));
    let entries = slowlog_get(&mut c, Some("-1"));
    let logged: Vec<Vec<Vec<u8>>> = entries.iter().map(entry_args).collect();
    assert_eq!(
        logged,
        [[
            b"CONFIG".to_vec(),
            b"SET".to_vec(),
            b"slowlog-log-slower-than".to_vec(),
            b"0".to_vec()
        ]],
        "AUTH and HELLO carry the password: not logged"
    );
    // Max length 0 logs nothing more (as Redis, what is there stays): CONFIG SET and SLOWLOG GET.
    c.cmd(&["CONFIG", "SET", "slowlog-max-len", "0"], b"+OK\r\n");
    c.cmd(&["PING"], b"+PONG\r\n");
    c.cmd(&["SLOWLOG", "LEN"], b":2\r\n");
}
