//! The append-only log against the real binary: kill -9 under load loses no acknowledged write,
//! torn tails are cut, damage is refused (or repaired when asked), snapshots compact the log, a
//! kill during a snapshot leaves the previous one intact, and a full disk refuses writes with
//! MISCONF while reads go on, then recovers by itself.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bulk, resp, spawn, Server, DEADLINE};

const ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "aof"))
        .collect();
    found.sort();
    found
}

/// Writes through `stream` as fast as replies come, counting acknowledged writes, until the
/// connection dies (the server was killed) or `stop` is set; `acks` counts every writer's.
fn writer(
    addr: std::net::SocketAddr,
    id: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> (u64, u64) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{id}");
        let n = (sent + 1).to_string();
        if stream.write_all(&resp(&["SET", &key, &n])).is_err() {
            break;
        }
        sent += 1;
        let read = loop {
            match stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match read {
            Ok(5) if &buf[..5] == b"+OK\r\n" => {
                acked += 1;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            _ => break,
        }
    }
    (sent, acked)
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = ALWAYS.to_vec();
    // Snapshots (and so log rotations) happen during the load too.
    flags.extend_from_slice(&["--save-interval", "1"]);
    for round in 0..6 {
        let server = Server::start_in(dir.path(), &flags);
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let (addr, stop, acks) = (server.addr, stop.clone(), acks.clone());
                std::thread::spawn(move || writer(addr, round * 100 + i, stop, acks))
            })
            .collect();
        // Once writes are being acknowledged (an fsync on a busy disk can take a while), let the
        // load run a while more; the kill lands at a different point each round.
        let deadline = Instant::now() + DEADLINE;
        while acks.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no write acknowledged");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(150 + 70 * round as u64));
        server.signal("KILL");
        let results: Vec<(u64, u64)> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        drop(server);
        let server = Server::start_in(dir.path(), &flags);
        let mut client = server.connect();
        for (i, (sent, acked)) in results.iter().enumerate() {
            let key = format!("w{}", round * 100 + i);
            client.send(&resp(&["GET", &key]));
            let header = client.read_line();
            let value: u64 = if header == "$-1\r\n" {
                0
            } else {
                let len: usize = header[1..].trim_end().parse().unwrap();
                let body = client.read_n(len + 2);
                std::str::from_utf8(&body[..len]).unwrap().parse().unwrap()
            };
            assert!(
                value >= *acked && value <= *sent,
                "round {round} writer {i}: acknowledged {acked}, sent {sent}, found {value}"
            );
        }
        assert!(
            results.iter().any(|(_, acked)| *acked > 0),
            "no write got through"
        );
        server.signal("KILL");
    }
}

/// Starts with the log on, writes `commands`, and kills the server so the log stays as is.
fn log_after_kill(dir: &Path, commands: &[&[&str]]) -> PathBuf {
    let mut server = Server::start_in(dir, ALWAYS);
    let mut client = server.connect();
    for command in commands {
        client.send(&resp(command));
        client.read_line();
    }
    server.signal("KILL");
    server.wait_exit();
    let found = segments(dir);
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn a_torn_last_record_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_after_kill(dir.path(), &[&["SET", "a", "1"], &["SET", "b", "2"]]);
    let good = std::fs::read(&log).unwrap();
    // Half of a record header, as a crash in the middle of an append leaves it.
    let mut torn = good.clone();
    torn.extend_from_slice(&[9, 0, 0]);
    std::fs::write(&log, &torn).unwrap();
    let mut server = Server::start_in(dir.path(), ALWAYS);
    let warning = server.wait_log("cutting 3 bytes of torn last record");
    assert!(warning.contains(&log.display().to_string()), "{warning}");
    let mut client = server.connect();
    client.cmd(&["MGET", "a", "b"], b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n");
    assert_eq!(
        client.info_field("persistence", "aof_torn_tails_truncated"),
        "1"
    );
    assert_eq!(
        client.info_field("persistence", "aof_replayed_records"),
        "2"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        good,
        "the torn bytes are gone"
    );
    // Appends go on after the good records.
    client.cmd(&["SET", "c", "3"], b"+OK\r\n");
    server.signal("KILL");
    server.wait_exit();
    let server = Server::start_in(dir.path(), ALWAYS);
    server
        .connect()
        .cmd(&["MGET", "a", "c"], b"*2\r\n$1\r\n1\r\n$1\r\n3\r\n");
}

#[test]
fn damage_before_the_end_is_refused_unless_repair_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_after_kill(
        dir.path(),
        &[&["SET", "a", "1"], &["SET", "b", "2"], &["SET", "c", "3"]],
    );
    let mut bytes = std::fs::read(&log).unwrap();
    // Flip a byte inside the second record's payload.
    let header = b"POCKETKV-LOG 1\n".len();
    let first = u32::from_le_bytes(bytes[header..header + 4].try_into().unwrap()) as usize;
    let second = header + 8 + first;
    bytes[second + 8 + 3] ^= 0x55;
    std::fs::write(&log, &bytes).unwrap();

    let output = spawn(dir.path(), ALWAYS).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "{} is damaged at byte {second} (checksum mismatch)",
        log.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("--aof-repair yes"), "{stderr}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "left untouched");

    let mut flags = ALWAYS.to_vec();
    flags.extend_from_slice(&["--aof-repair", "yes"]);
    let mut server = Server::start_in(dir.path(), &flags);
    let line = server.wait_log("damaged records (--aof-repair yes)");
    assert!(line.contains(&format!("at byte {second}")), "{line}");
    server
        .connect()
        .cmd(&["MGET", "a", "b", "c"], b"*3\r\n$1\r\n1\r\n$-1\r\n$-1\r\n");
}

#[test]
fn a_file_that_is_not_a_log_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("appendonly.1.aof");
    std::fs::write(&log, b"*3\r\n$3\r\nSET\r\n").unwrap();
    let output = spawn(dir.path(), ALWAYS).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} is not a pocketkv log", log.display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), b"*3\r\n$3\r\nSET\r\n");
}

#[test]
fn snapshots_compact_the_log_and_restart_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), ALWAYS);
    let mut client = server.connect();
    client.cmd(&["SET", "before", "1"], b"+OK\r\n");
    client.cmd(&["INCR", "n"], b":1\r\n");
    assert_eq!(
        segments(dir.path()),
        vec![dir.path().join("appendonly.1.aof")]
    );
    client.cmd(&["SAVE"], b"+OK\r\n");
    // The snapshot holds segment 1, so only the new segment is left.
    assert_eq!(
        segments(dir.path()),
        vec![dir.path().join("appendonly.2.aof")]
    );
    assert_eq!(client.info_field("persistence", "aof_current_segment"), "2");
    client.cmd(&["SET", "after", "2"], b"+OK\r\n");
    client.cmd(&["INCR", "n"], b":2\r\n");
    server.signal("KILL");
    server.wait_exit();
    let mut server = Server::start_in(dir.path(), ALWAYS);
    server.wait_log("2 log records replayed");
    let mut client = server.connect();
    client.cmd(
        &["MGET", "before", "after", "n"],
        b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n2\r\n",
    );
    // A clean stop folds the log into a final snapshot.
    server.signal("TERM");
    assert!(server.wait_exit().success());
    assert!(
        segments(dir.path()).is_empty(),
        "{:?}",
        segments(dir.path())
    );
    let server = Server::start_in(dir.path(), ALWAYS);
    server.connect().cmd(&["GET", "n"], b"$1\r\n2\r\n");
}

#[test]
fn everysec_and_no_keep_writes_across_a_clean_restart() {
    for policy in ["everysec", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let flags = [
            "--appendonly",
            "yes",
            "--appendfsync",
            policy,
            "--save-interval",
            "0",
        ];
        let mut server = Server::start_in(dir.path(), &flags);
        let mut client = server.connect();
        client.cmd(&["SET", "k", policy], &bulk_ok());
        assert_eq!(client.info_field("persistence", "aof_fsync"), policy);
        assert_eq!(client.info_field("persistence", "aof_enabled"), "1");
        client.cmd(
            &["CONFIG", "GET", "appendfsync"],
            &config_pair("appendfsync", policy),
        );
        server.signal("TERM");
        assert!(server.wait_exit().success());
        let server = Server::start_in(dir.path(), &flags);
        server.connect().cmd(&["GET", "k"], &bulk(policy));
    }
}

fn bulk_ok() -> Vec<u8> {
    b"+OK\r\n".to_vec()
}

fn config_pair(name: &str, value: &str) -> Vec<u8> {
    let mut out = b"*2\r\n".to_vec();
    out.extend(bulk(name));
    out.extend(bulk(value));
    out
}

#[test]
fn kill_9_during_a_snapshot_keeps_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--save-interval", "0"];
    let mut server = Server::start_in(dir.path(), &flags);
    let mut client = server.connect();
    // Enough data that writing a snapshot takes a while.
    let value = "v".repeat(100);
    for batch in 0..40 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..5000 {
            args.push(format!("key:{batch}:{i}"));
            args.push(value.clone());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        client.cmd(&refs, b"+OK\r\n");
    }
    client.cmd(&["SAVE"], b"+OK\r\n");
    let previous = std::fs::read(server.snapshot_path()).unwrap();
    client.cmd(&["SET", "newer", "1"], b"+OK\r\n");
    client.cmd(&["BGSAVE"], b"+Background saving started\r\n");
    server.signal("KILL");
    server.wait_exit();
    let now = std::fs::read(server.snapshot_path()).unwrap();
    // Either the old file or a complete new one; never a mix.
    let parsed: serde_json::Value = serde_json::from_slice(&now).expect("a whole snapshot");
    if now != previous {
        assert_eq!(parsed["keys"], 200_001, "a complete newer snapshot");
    }
    let server = Server::start_in(dir.path(), &flags);
    server.connect().cmd(
        &["DBSIZE"],
        if now == previous {
            b":200000\r\n"
        } else {
            b":200001\r\n"
        },
    );
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (CI runs as root)"
        );
        SmallDisk { dir }
    }

    /// Fills the disk, returning the filler file to delete for space.
    fn fill(&self) -> PathBuf {
        let filler = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let disk = SmallDisk::mount("1m");
    let mut flags = ALWAYS.to_vec();
    flags.extend_from_slice(&["--save-interval", "0"]);
    let mut server = Server::start_in(disk.dir.path(), &flags);
    let mut client = server.connect();
    client.cmd(&["SET", "kept", "safe"], b"+OK\r\n");
    let log = segments(disk.dir.path()).remove(0);
    let on_disk = std::fs::read(&log).unwrap();
    let filler = disk.fill();

    // This write cannot reach the disk: its reply waits, and the server says why in INFO.
    let mut stuck = server.connect();
    stuck.send(&resp(&["SET", "big", &"x".repeat(64 * 1024)]));
    server.wait_log("refusing writes until the log can be written");
    assert_eq!(
        client.info_field("persistence", "aof_last_write_status"),
        "err"
    );
    client.send(&resp(&["SET", "other", "1"]));
    let refusal = client.read_line();
    assert!(
        refusal.starts_with("-MISCONF Errors writing to the AOF file: writing "),
        "{refusal}"
    );
    client.cmd(&["GET", "kept"], &bulk("safe"));
    assert_eq!(
        &std::fs::read(&log).unwrap()[..on_disk.len()],
        &on_disk[..],
        "nothing on disk was damaged"
    );

    // Space returns: the retry goes through and the held reply is released.
    std::fs::remove_file(&filler).unwrap();
    stuck.expect(b"+OK\r\n");
    server.wait_log("writing the log works again");
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.send(&resp(&["SET", "other", "1"]));
        let reply = client.read_line();
        if reply == "+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "writes still refused: {reply}");
    }
    server.signal("KILL");
    server.wait_exit();
    let server = Server::start_in(disk.dir.path(), &flags);
    server.connect().cmd(
        &["MGET", "kept", "other"],
        b"*2\r\n$4\r\nsafe\r\n$1\r\n1\r\n",
    );
    server.connect().cmd(&["STRLEN", "big"], b":65536\r\n");
}
