//! Durability against the real binary: restarts, the final snapshot on SIGTERM, SAVE, BGSAVE,
//! the snapshot timer, SHUTDOWN NOSAVE, kill -9, and refusal of damaged snapshot files.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{resp, resp_bytes, Server};
use serde_json::{json, Value};

/// Binary-safe pairs: non-UTF-8 keys and values, an empty value, CRLF and quotes, multi-byte
/// UTF-8, and a plain one.
fn tricky_pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"plain".to_vec(), b"Alice".to_vec()),
        (b"\xff\x00bin".to_vec(), b"\x80\x81\r\n\x00".to_vec()),
        (b"empty".to_vec(), Vec::new()),
        (b"".to_vec(), b"empty key".to_vec()),
        (b"quote\"\n".to_vec(), "snow\u{2603}".as_bytes().to_vec()),
        (b"text-key".to_vec(), b"\xc3\x28 bad utf-8".to_vec()),
    ]
}

fn bulk_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

fn set_all(server: &Server, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut client = server.connect();
    for (key, value) in pairs {
        client.roundtrip(&resp_bytes(&[b"SET", key, value]), b"+OK\r\n");
    }
}

fn check_all(server: &Server, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut client = server.connect();
    for (key, value) in pairs {
        client.roundtrip(&resp_bytes(&[b"GET", key]), &bulk_bytes(value));
    }
    client.cmd(&["DBSIZE"], format!(":{}\r\n", pairs.len()).as_bytes());
}

/// Reads and parses the snapshot file, checking the header fields every snapshot carries.
fn read_snapshot(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let file: Value = serde_json::from_slice(&bytes).expect("snapshot is JSON");
    assert_eq!(file["format"], "pocketkv-snapshot");
    assert_eq!(file["version"], 1);
    assert!(file["saved_at_unix_ms"].is_u64(), "{file}");
    let data = file["data"].as_array().expect("data array");
    assert_eq!(file["keys"], data.len(), "keys field matches the pairs");
    file
}

/// The snapshot's pairs as JSON values, sorted, for comparison.
fn snapshot_pairs(file: &Value) -> Vec<Value> {
    let mut pairs = file["data"].as_array().unwrap().clone();
    pairs.sort_by_key(|p| p.to_string());
    pairs
}

/// The documented JSON form of bytes: a string when UTF-8, else `{"hex": "..."}`.
fn json_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    }
}

fn expected_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<Value> {
    let mut out: Vec<Value> = pairs
        .iter()
        .map(|(k, v)| json!([json_bytes(k), json_bytes(v)]))
        .collect();
    out.sort_by_key(|p| p.to_string());
    out
}

/// Stops the server with SIGTERM and asserts it exits 0.
fn terminate(server: &mut Server) {
    server.signal("TERM");
    let status = server.wait_exit();
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        server.log_lines.join("\n")
    );
}

#[test]
fn data_survives_a_restart_including_binary_and_empty_values() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = tricky_pairs();
    let mut server = Server::start_in(dir.path(), &[]);
    set_all(&server, &pairs);
    terminate(&mut server);
    server.wait_log("final snapshot saved");

    // The file is the documented format, with hex for the bytes that are not UTF-8.
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(snapshot_pairs(&file), expected_pairs(&pairs));
    let text = std::fs::read_to_string(server.snapshot_path()).unwrap();
    assert!(
        text.contains(r#"[{"hex":"ff0062696e"},{"hex":"80810d0a00"}]"#),
        "{text}"
    );
    assert!(text.contains(r#"["empty",""]"#), "{text}");
    assert!(!dir.path().join("data.json.tmp").exists());

    let mut again = Server::start_in(dir.path(), &[]);
    let line = again.wait_log("listening on");
    assert!(
        line.contains(&format!("{} keys loaded", pairs.len())),
        "{line}"
    );
    check_all(&again, &pairs);
    // A second round trip through the file changes nothing.
    terminate(&mut again);
    let mut third = Server::start_in(dir.path(), &[]);
    check_all(&third, &pairs);
    terminate(&mut third);
}

#[test]
fn sigterm_writes_the_final_snapshot_without_a_timer() {
    let mut server = Server::start(&["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "k", "v"], b"+OK\r\n");
    client.cmd(&["INCR", "n"], b":1\r\n");
    assert!(
        !server.snapshot_path().exists(),
        "no snapshot before shutdown"
    );
    // The client stays connected across the signal; the server must not wait for it.
    terminate(&mut server);
    server.wait_log("no longer accepting");
    let line = server.wait_log("final snapshot saved");
    assert!(line.contains("2 keys"), "{line}");
    client.expect_closed();
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(
        snapshot_pairs(&file),
        expected_pairs(&[
            (b"k".to_vec(), b"v".to_vec()),
            (b"n".to_vec(), b"1".to_vec())
        ])
    );
}

#[test]
fn sigterm_without_changes_leaves_no_file() {
    let mut server = Server::start(&["--save-interval", "0"]);
    server.connect().cmd(&["GET", "nothing"], b"$-1\r\n");
    terminate(&mut server);
    server.wait_log("no changes since the last snapshot");
    assert!(!server.snapshot_path().exists());
}

#[test]
fn save_replies_only_once_the_file_is_durable() {
    let server = Server::start(&["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "first", "1"], b"+OK\r\n");
    client.cmd(&["SAVE"], b"+OK\r\n");
    // Right after +OK the file is there and complete.
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(
        snapshot_pairs(&file),
        expected_pairs(&[(b"first".to_vec(), b"1".to_vec())])
    );
    // A second SAVE, from the text dialect, replaces it with the new state.
    client.cmd(&["SET", "second", "2"], b"+OK\r\n");
    client.roundtrip(b"SAVE\n", b"OK\n");
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(
        snapshot_pairs(&file),
        expected_pairs(&[
            (b"first".to_vec(), b"1".to_vec()),
            (b"second".to_vec(), b"2".to_vec())
        ])
    );
    assert!(!server.dir.join("data.json.tmp").exists());
    // Requests pipelined behind a SAVE are answered after it, in order.
    let mut request = resp(&["SET", "third", "3"]);
    request.extend(resp(&["SAVE"]));
    request.extend(resp(&["GET", "third"]));
    client.roundtrip(&request, b"+OK\r\n+OK\r\n$1\r\n3\r\n");
    assert_eq!(read_snapshot(&server.snapshot_path())["keys"], 3);
    // LASTSAVE moved to now-ish.
    client.send(&resp(&["LASTSAVE"]));
    let reply = String::from_utf8(client.read_n(b":1700000000\r\n".len())).unwrap();
    let when: u64 = reply.trim_start_matches(':').trim_end().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(when) < 60, "LASTSAVE {when}, now {now}");
}

#[test]
fn bgsave_replies_at_once_then_logs_the_snapshot() {
    let mut server = Server::start(&["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "bg", "value"], b"+OK\r\n");
    client.cmd(&["BGSAVE"], b"+Background saving started\r\n");
    let line = server.wait_log("snapshot saved");
    assert!(line.contains("1 keys"), "{line}");
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(
        snapshot_pairs(&file),
        expected_pairs(&[(b"bg".to_vec(), b"value".to_vec())])
    );
    client.cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn the_timer_saves_changed_data() {
    let mut server = Server::start(&["--save-interval", "1"]);
    let mut client = server.connect();
    client.cmd(&["SET", "timed", "yes"], b"+OK\r\n");
    let line = server.wait_log("snapshot saved");
    assert!(line.contains("1 keys"), "{line}");
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(
        snapshot_pairs(&file),
        expected_pairs(&[(b"timed".to_vec(), b"yes".to_vec())])
    );
}

#[test]
fn shutdown_nosave_exits_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "gone", "soon"], b"+OK\r\n");
    // Like Redis, SHUTDOWN answers nothing: the connection closes and the process exits.
    client.send(&resp(&["SHUTDOWN", "NOSAVE"]));
    client.expect_closed();
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    server.wait_log("SHUTDOWN NOSAVE");
    assert!(!server.snapshot_path().exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let mut again = Server::start_in(dir.path(), &[]);
    again.wait_log("0 keys loaded");
    again.connect().cmd(&["GET", "gone"], b"$-1\r\n");
}

#[test]
fn shutdown_saves_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "kept", "yes"], b"+OK\r\n");
    client.send(&resp(&["SHUTDOWN"]));
    client.expect_closed();
    assert!(server.wait_exit().success());
    server.wait_log("final snapshot saved");
    let again = Server::start_in(dir.path(), &[]);
    again.connect().cmd(&["GET", "kept"], b"$3\r\nyes\r\n");
}

#[test]
fn kill_9_keeps_the_previous_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "a", "1"], b"+OK\r\n");
    client.roundtrip(&resp_bytes(&[b"SET", b"\xfe", b""]), b"+OK\r\n");
    client.cmd(&["SAVE"], b"+OK\r\n");
    let saved = std::fs::read(server.snapshot_path()).unwrap();
    // Changes after the SAVE are lost with kill -9; the file must not be touched.
    client.cmd(&["SET", "a", "2"], b"+OK\r\n");
    client.cmd(&["SET", "b", "lost"], b"+OK\r\n");
    server.signal("KILL");
    let status = server.wait_exit();
    assert!(!status.success());
    assert_eq!(std::fs::read(server.snapshot_path()).unwrap(), saved);

    let mut again = Server::start_in(dir.path(), &["--save-interval", "0"]);
    again.wait_log("2 keys loaded");
    let mut client = again.connect();
    client.cmd(&["GET", "a"], b"$1\r\n1\r\n");
    client.cmd(&["GET", "b"], b"$-1\r\n");
    client.roundtrip(&resp_bytes(&[b"GET", b"\xfe"]), b"$0\r\n\r\n");
    client.cmd(&["DBSIZE"], b":2\r\n");
}

/// Runs the binary on `dir` until it exits (within the deadline) and returns its output.
fn run_to_exit(dir: &Path, args: &[&str]) -> Output {
    let mut child = common::spawn(dir, args);
    let deadline = Instant::now() + common::DEADLINE;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("pocketkv did not exit within {:?}", common::DEADLINE);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn damaged_snapshots_stop_start_up_and_stay_untouched() {
    // A real snapshot to damage.
    let good = {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
        set_all(&server, &tricky_pairs());
        terminate(&mut server);
        std::fs::read(server.snapshot_path()).unwrap()
    };
    let packed = {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--save-interval", "0", "--snapshot-compression", "lz4"];
        let mut server = Server::start_in(dir.path(), &args);
        set_all(&server, &tricky_pairs());
        terminate(&mut server);
        std::fs::read(server.snapshot_path()).unwrap()
    };
    assert_eq!(&packed[..8], LZ4_MAGIC);
    let with = |at: usize, bytes: &[u8]| {
        let mut damaged = packed.clone();
        damaged[at..at + bytes.len()].copy_from_slice(bytes);
        damaged
    };
    let mut garbled = packed.clone();
    let last = garbled.len() - 1;
    garbled[last] ^= 1;
    let real_len = u64::from_le_bytes(packed[8..16].try_into().unwrap());
    let lz4_cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "compressed, truncated",
            packed[..packed.len() - 5].to_vec(),
            format!("compressed snapshot cut short at byte {}", packed.len() - 5),
        ),
        (
            "compressed, header only",
            packed[..16].to_vec(),
            format!("header says {real_len} uncompressed bytes but the chunks hold 0 (cut short?)"),
        ),
        (
            "compressed, corrupt payload",
            garbled,
            "chunk at byte 16 is damaged (checksum mismatch)".to_string(),
        ),
        (
            "compressed, length lies",
            with(8, &(real_len + 1).to_le_bytes()),
            format!(
                "header says {} uncompressed bytes but the chunks hold {real_len} (cut short?)",
                real_len + 1
            ),
        ),
        (
            "compressed, length beyond any bound",
            with(8, &u64::MAX.to_le_bytes()),
            "header says 18446744073709551615 uncompressed bytes".to_string(),
        ),
        (
            "compressed, another magic",
            with(1, b"pkv-zst"),
            "starts with byte 0x89 like a compressed snapshot, but not with a header this build \
             reads"
                .to_string(),
        ),
        (
            "compressed, magic cut short",
            packed[..4].to_vec(),
            "compressed snapshot cut short at byte 4".to_string(),
        ),
    ];
    let lz4_cases: Vec<(&str, Vec<u8>, &str)> = lz4_cases
        .iter()
        .map(|(name, bytes, why)| (*name, bytes.clone(), why.as_str()))
        .collect();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "is not a valid pocketkv snapshot",
        ),
        (
            "one byte short",
            good[..good.len() - 1].to_vec(),
            "is not a valid pocketkv snapshot",
        ),
        (
            "garbage",
            b"\x00\x01\x02garbage\xff\xfe".to_vec(),
            "is not a valid pocketkv snapshot",
        ),
        ("empty", Vec::new(), "is empty"),
        (
            "wrong format",
            br#"{"format":"redis-rdb","version":1,"saved_at_unix_ms":0,"keys":0,"data":[]}"#
                .to_vec(),
            "format is 'redis-rdb', expected 'pocketkv-snapshot'",
        ),
        (
            "future version",
            br#"{"format":"pocketkv-snapshot","version":2,"saved_at_unix_ms":0,"keys":0,"data":[]}"#
                .to_vec(),
            "snapshot version 2 is not supported",
        ),
        (
            "pairs missing",
            br#"{"format":"pocketkv-snapshot","version":1,"saved_at_unix_ms":0,"keys":2,"data":[["a","b"]]}"#
                .to_vec(),
            "header says 2 keys but the file holds 1",
        ),
        (
            "bad hex",
            br#"{"format":"pocketkv-snapshot","version":1,"saved_at_unix_ms":0,"keys":1,"data":[[{"hex":"zz"},"b"]]}"#
                .to_vec(),
            "bad hex digits",
        ),
    ];
    cases.extend(lz4_cases);
    for (name, bytes, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        std::fs::write(&path, &bytes).unwrap();
        let output = run_to_exit(dir.path(), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        let message = stderr
            .lines()
            .find(|l| l.starts_with("pocketkv: "))
            .unwrap_or_else(|| panic!("{name}: no error line in {stderr:?}"));
        assert!(
            message.contains(&path.display().to_string()),
            "{name}: {message}"
        );
        assert!(message.contains(why), "{name}: {message}");
        assert!(!stderr.contains("listening on"), "{name}: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: file changed");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["data.json"], "{name}: stray files");
    }
    // The undamaged files do load.
    for file in [good, packed] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.json"), &file).unwrap();
        let server = Server::start_in(dir.path(), &[]);
        check_all(&server, &tricky_pairs());
    }
}

#[test]
fn a_custom_dbfilename_is_used_for_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--dbfilename", "custom.snap", "--save-interval", "0"];
    let mut server = Server::start_in(dir.path(), &args);
    server
        .connect()
        .cmd(&["SET", "where", "custom"], b"+OK\r\n");
    terminate(&mut server);
    assert!(!dir.path().join("data.json").exists());
    let file = read_snapshot(&dir.path().join("custom.snap"));
    assert_eq!(file["keys"], 1);
    let again = Server::start_in(dir.path(), &args);
    again.connect().cmd(&["GET", "where"], b"$6\r\ncustom\r\n");
}

#[test]
fn save_after_bgsave_waits_for_a_snapshot_with_its_own_data() {
    let server = Server::start(&["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "x", "1"], b"+OK\r\n");
    client.cmd(&["BGSAVE"], b"+Background saving started\r\n");
    client.cmd(&["SET", "x", "2"], b"+OK\r\n");
    // Whether or not the BGSAVE is still being written, SAVE's +OK means x=2 is on disk.
    client.cmd(&["SAVE"], b"+OK\r\n");
    let file = read_snapshot(&server.snapshot_path());
    assert_eq!(
        snapshot_pairs(&file),
        expected_pairs(&[(b"x".to_vec(), b"2".to_vec())])
    );
    // Two clients saving at once both get their answer.
    let mut other = server.connect();
    client.cmd(&["SET", "y", "3"], b"+OK\r\n");
    client.send(&resp(&["SAVE"]));
    other.send(b"SAVE\r\n");
    client.expect(b"+OK\r\n");
    other.expect(b"OK\n");
    assert_eq!(read_snapshot(&server.snapshot_path())["keys"], 2);
}

#[test]
fn a_failed_save_is_reported_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut server = Server::start_in(&data, &["--save-interval", "0"]);
    let mut client = server.connect();
    client.cmd(&["SET", "k", "v"], b"+OK\r\n");
    // The directory disappears under the running server.
    std::fs::remove_dir(&data).unwrap();
    client.send(&resp(&["SAVE"]));
    let expected = format!(
        "-ERR snapshot failed: writing {}: ",
        data.join("data.json").display()
    );
    client.expect(expected.as_bytes());
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n") {
        rest.extend(client.read_n(1));
    }
    assert!(
        String::from_utf8_lossy(&rest).contains("No such file or directory"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    server.wait_log("snapshot failed");
    client.cmd(&["BGSAVE"], b"+Background saving started\r\n");
    client.cmd(&["PING"], b"+PONG\r\n");
    // Once the directory is back, SAVE works again and the data is all there.
    std::fs::create_dir(&data).unwrap();
    client.cmd(&["SAVE"], b"+OK\r\n");
    assert_eq!(read_snapshot(&server.snapshot_path())["keys"], 1);
    terminate(&mut server);
}

/// A value big enough that one GET of it cannot fit in the socket buffers.
const BIG: usize = 16 * 1024 * 1024;

/// Stores `BIG` bytes under `big` and has `reader` ask for it three times without reading;
/// returns once the server has started answering (the first bytes arrived).
fn stall_reader(server: &Server, reader: &mut common::Client) {
    let mut writer = server.connect();
    let value = vec![b'v'; BIG];
    writer.roundtrip(&resp_bytes(&[b"SET", b"big", &value]), b"+OK\r\n");
    let mut request = resp(&["GET", "big"]);
    request.extend(resp(&["GET", "big"]));
    request.extend(resp(&["GET", "big"]));
    reader.send(&request);
    reader.expect(format!("${BIG}\r\n").as_bytes());
}

#[test]
fn sigterm_stops_accepting_and_delivers_replies_already_computed() {
    let mut server = Server::start(&["--save-interval", "0"]);
    let mut reader = server.connect();
    stall_reader(&server, &mut reader);
    server.signal("TERM");
    server.wait_log("no longer accepting");
    // The process is still draining `reader`'s reply, and new connections are refused.
    assert!(server.child.try_wait().unwrap().is_none());
    // (The log line comes just before the listener closes, so allow a moment for that.)
    let deadline = Instant::now() + common::DEADLINE;
    while std::net::TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::yield_now();
    }
    assert!(server.child.try_wait().unwrap().is_none());
    // The GET being answered is delivered whole; the two behind it never run.
    let rest = reader.read_n(BIG + 2);
    assert!(rest[..BIG].iter().all(|&b| b == b'v'));
    assert_eq!(&rest[BIG..], b"\r\n");
    reader.expect_closed();
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    server.wait_log("final snapshot saved");
    assert_eq!(read_snapshot(&server.snapshot_path())["keys"], 1);
}

#[test]
fn a_client_that_never_reads_does_not_block_shutdown() {
    let mut server = Server::start(&["--save-interval", "0"]);
    let mut reader = server.connect();
    stall_reader(&server, &mut reader);
    let asked = Instant::now();
    server.signal("TERM");
    // The drain gives up after its deadline; the final snapshot is still written.
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    // A sanity bound: the drain gives up after 2 s (DRAIN_DEADLINE), then the snapshot of one
    // key; 15 s would take a stall far beyond any busy machine's, where a drain that never gave
    // up would wait for ever (wait_exit's DEADLINE then fails first).
    assert!(asked.elapsed() < Duration::from_secs(15));
    server.wait_log("final snapshot saved");
    assert_eq!(read_snapshot(&server.snapshot_path())["keys"], 1);
}

/// A compressed snapshot starts with the container's magic.
const LZ4_MAGIC: &[u8] = b"\x89pkv-lz4";

#[test]
fn compressed_snapshots_are_smaller_and_load_whatever_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..2000)
        .map(|i| {
            let key = format!("user:{i:08}").into_bytes();
            (key, format!("value-{:010}", i * 31).into_bytes())
        })
        .chain(tricky_pairs())
        .collect();
    let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
    set_all(&server, &pairs);
    let mut client = server.connect();
    client.cmd(&["SAVE"], b"+OK\r\n");
    let plain = std::fs::read(server.snapshot_path()).unwrap();
    assert_eq!(plain[0], b'{');
    client.cmd(
        &["CONFIG", "SET", "snapshot-compression", "lz4"],
        b"+OK\r\n",
    );
    client.cmd(
        &["CONFIG", "GET", "snapshot-compression"],
        b"*2\r\n$20\r\nsnapshot-compression\r\n$3\r\nlz4\r\n",
    );
    client.cmd(&["SAVE"], b"+OK\r\n");
    let packed = std::fs::read(server.snapshot_path()).unwrap();
    assert_eq!(&packed[..8], LZ4_MAGIC);
    assert!(
        packed.len() * 2 < plain.len(),
        "{} bytes compressed against {} plain",
        packed.len(),
        plain.len()
    );
    terminate(&mut server);
    // Started with compression off (the default), it still reads the compressed file.
    let mut again = Server::start_in(dir.path(), &["--save-interval", "0"]);
    check_all(&again, &pairs);
    again.connect().cmd(&["SET", "two", "x"], b"+OK\r\n");
    terminate(&mut again);
    assert_eq!(std::fs::read(again.snapshot_path()).unwrap()[0], b'{');
    // The flag and the config file set it too; a bad value is refused with exit status 2.
    let mut flagged = Server::start_in(
        dir.path(),
        &["--save-interval", "0", "--snapshot-compression", "lz4"],
    );
    flagged.connect().cmd(&["SET", "two", "y"], b"+OK\r\n");
    terminate(&mut flagged);
    assert_eq!(
        &std::fs::read(flagged.snapshot_path()).unwrap()[..8],
        LZ4_MAGIC
    );
    let conf = dir.path().join("pocketkv.conf");
    std::fs::write(&conf, "snapshot-compression lz4\n").unwrap();
    let configured = Server::start_with_config(&conf, &[]);
    configured.connect().cmd(&["SAVE"], b"+OK\r\n");
    assert_eq!(
        &std::fs::read(configured.snapshot_path()).unwrap()[..8],
        LZ4_MAGIC
    );
    let output = run_to_exit(dir.path(), &["--snapshot-compression", "zstd"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no or lz4"), "{stderr}");
}

#[test]
fn writes_during_a_save_leave_it_unchanged_and_its_tables_for_the_next() {
    let mut server = Server::start(&["--save-interval", "0"]);
    let mut client = server.connect();
    // Enough data that writing the snapshot takes the snapshot thread far longer (about 0.7 s
    // here) than the round trips below, which run while it still holds the point-in-time copy.
    let filler = "x".repeat(1024);
    for batch in 0..20 {
        let load: Vec<u8> = (0..1000)
            .flat_map(|i| resp(&["SET", &format!("fill:{batch}:{i}"), &filler]))
            .collect();
        client.roundtrip(&load, &b"+OK\r\n".repeat(1000));
    }
    let keys: Vec<String> = (0..40).map(|i| format!("cow:{i}")).collect();
    let set_all =
        |value: &str| -> Vec<u8> { keys.iter().flat_map(|k| resp(&["SET", k, value])).collect() };
    client.roundtrip(&set_all("before"), &b"+OK\r\n".repeat(keys.len()));
    client.cmd(&["BGSAVE"], b"+Background saving started\r\n");
    // The copy is taken at the end of a loop turn, maybe after BGSAVE's reply went out.
    let deadline = Instant::now() + common::DEADLINE;
    while client.info_field("persistence", "rdb_bgsave_in_progress") != "1" {
        assert!(Instant::now() < deadline, "the snapshot never started");
    }
    client.roundtrip(&set_all("after"), &b"+OK\r\n".repeat(keys.len()));
    assert_eq!(
        client.info_field("persistence", "rdb_bgsave_in_progress"),
        "1",
        "the snapshot was written before the overwrites ran: give it more data"
    );
    server.wait_log("snapshot saved");
    let copied: usize = client
        .info_field("persistence", "rdb_cow_shards_copied")
        .parse()
        .unwrap();
    assert!((1..=keys.len()).contains(&copied), "{copied} shards copied");
    let file = read_snapshot(&server.snapshot_path());
    let saved: Vec<Value> = file["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().is_some_and(|k| k.starts_with("cow:")))
        .cloned()
        .collect();
    let saved = snapshot_pairs(&json!({ "data": saved }));
    let before: Vec<_> = keys
        .iter()
        .map(|k| (k.as_bytes().to_vec(), b"before".to_vec()))
        .collect();
    assert_eq!(saved, expected_pairs(&before));
    // The written image comes back to the loop, which keeps the tables only it held.
    let deadline = Instant::now() + common::DEADLINE;
    let spare = loop {
        let spare: u64 = client
            .info_field("persistence", "rdb_cow_spare_bytes")
            .parse()
            .unwrap();
        if spare > 0 || Instant::now() > deadline {
            break spare;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(spare > 0, "no tables kept after the save");
    client.cmd(&["GET", "cow:7"], b"$5\r\nafter\r\n");
    client.cmd(&["FLUSHALL"], b"+OK\r\n");
    assert_eq!(client.info_field("persistence", "rdb_cow_spare_bytes"), "0");
}
