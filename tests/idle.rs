//! An idle server must sleep in the poll, not spin: its CPU time over a few seconds stays small,
//! including after the snapshot timer has come due with nothing to save.

mod common;

use std::time::Duration;

use common::Server;

/// User plus system CPU seconds the process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second
}

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
