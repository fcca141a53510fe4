//! An idle server must sleep in the poll, not spin: its CPU time over a few seconds stays small,
//! including after the snapshot timer has come due with nothing to save. Idle clients give back
//! their buffers. Helper threads start when first needed.

mod common;

use std::time::{Duration, Instant};

use common::{cpu_seconds, resp, thread_names, Client, Server};

#[test]
fn an_idle_server_does_not_spin_after_the_snapshot_timer_comes_due() {
    let mut server = Server::start(&["--save-interval", "1"]);
    let mut client = server.connect();
    client.roundtrip(b"PUT k v\n", b"OK\n");
    // The first interval saves the change; later intervals find nothing to save.
    server.wait_log("snapshot saved");
    let before = cpu_seconds(server.child.id());
    // Measuring over wall time is the point here, so this sleep is the measurement window.
    std::thread::sleep(Duration::from_millis(2500));
    let used = cpu_seconds(server.child.id()) - before;
    assert!(used < 0.5, "idle server used {used:.2} s of CPU in 2.5 s");
    client.roundtrip(b"GET k\n", b"v\n");
}

/// A client that stops sending has its buffers freed after two seconds, so thousands of idle
/// connections hold no buffer memory; it is served as before when it speaks again.
#[test]
fn idle_clients_give_back_their_buffers() {
    let server = Server::start(&[]);
    let mut idle = server.connect();
    idle.cmd(&["SET", "k", "v"], b"+OK\r\n");
    let mut watcher = server.connect();
    let fields = |watcher: &mut Client| {
        watcher.send(&resp(&["CLIENT", "LIST"]));
        let header = watcher.read_line();
        let len: usize = header[1..header.len() - 2].parse().unwrap();
        let body = String::from_utf8(watcher.read_n(len + 2)).unwrap();
        let line = body.lines().next().unwrap().to_string();
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        (field("qbuf-free"), field("omem"))
    };
    let (free, _) = fields(&mut watcher);
    assert_ne!(free, "0", "a client that just sent holds its input buffer");
    let deadline = Instant::now() + common::DEADLINE;
    loop {
        if fields(&mut watcher) == ("0".to_string(), "0".to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "buffers still held: {:?}",
            fields(&mut watcher)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    idle.cmd(&["GET", "k"], b"$1\r\nv\r\n");
}

/// An idle server is one thread: signals come through the poll, and the snapshot thread starts
/// with the first snapshot, not with the server (their stacks and malloc arenas are idle RSS
/// otherwise). That first snapshot is written and loads like any other, and signals still work.
#[test]
fn an_idle_server_is_one_thread_until_the_first_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--save-interval", "0"]);
    let pid = server.child.id();
    // Under a runner (qemu-user) the process's threads are the emulator's.
    let native = common::runner().is_none();
    let mut client = server.connect();
    client.cmd(&["SET", "k", "v"], b"+OK\r\n");
    if native {
        assert_eq!(thread_names(pid), ["pocketkv"]);
    }
    client.cmd(&["BGSAVE"], b"+Background saving started\r\n");
    server.wait_log("snapshot saved: 1 keys");
    if native {
        assert_eq!(thread_names(pid), ["pocketkv", "snapshot"]);
    }
    client.cmd(&["SET", "k", "w"], b"+OK\r\n");
    server.signal("TERM");
    assert!(server.wait_exit().success());
    server.wait_log("final snapshot saved");
    let again = Server::start_in(dir.path(), &["--save-interval", "0"]);
    again.connect().cmd(&["GET", "k"], b"$1\r\nw\r\n");
}
