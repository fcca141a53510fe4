//! An idle server must sleep in the poll, not spin: its CPU time over a few seconds stays small,
//! including after the snapshot timer has come due with nothing to save.

mod common;

use std::time::Duration;

use common::{cpu_seconds, Server};

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
