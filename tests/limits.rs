//! Limits on clients: protected mode, `--timeout`, `--client-output-buffer-limit`, and
//! `maxclients` changed at run time. (`--maxclients` at start is in tests/startup.rs.)

mod common;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{resp, Client, Server, DEADLINE};

const DENIED_START: &str = "-DENIED Redis is running in protected mode because protected mode is \
                            enabled and no password is set for the default user.";

/// This machine's address on a non-loopback interface (a UDP "connect" sends nothing).
fn outside_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A client connecting to `server` through this machine's non-loopback address.
fn connect_from_outside(server: &Server) -> Option<Client> {
    let ip = outside_address()?;
    Some(Client::connect(SocketAddr::new(ip, server.addr.port())))
}

/// Reads until the server closes; returns how many bytes came first.
fn drain_until_closed(client: &mut Client) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match client.stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("expected the server to close, got {e} after {total} bytes"),
        }
    }
}

#[test]
fn protected_mode_refuses_outside_clients_without_a_password() {
    let server = Server::start(&["--bind", "0.0.0.0"]);
    let Some(mut outsider) = connect_from_outside(&server) else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let line = outsider.read_line();
    assert!(line.starts_with(DENIED_START), "{line}");
    assert!(line.ends_with(
        "NOTE: You only need to do one of the above things in order for the server to start \
         accepting connections from the outside.\r\n"
    ));
    outsider.expect_closed();
    // Loopback clients are served, and may turn protected mode off at run time.
    let mut local = server.connect();
    local.cmd(&["PING"], b"+PONG\r\n");
    assert_eq!(local.info_field("stats", "rejected_connections"), "1");
    local.cmd(&["CONFIG", "SET", "protected-mode", "no"], b"+OK\r\n");
    let mut outsider = connect_from_outside(&server).expect("outside address");
    outsider.cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn protected_mode_lets_outside_clients_in_with_a_password_or_when_off() {
    let with_password = Server::start(&["--bind", "0.0.0.0", "--requirepass", "pw"]);
    let Some(mut outsider) = connect_from_outside(&with_password) else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    outsider.cmd(&["GET", "k"], b"-NOAUTH Authentication required.\r\n");
    outsider.cmd(&["AUTH", "pw"], b"+OK\r\n");
    let off = Server::start(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
    let mut outsider = connect_from_outside(&off).expect("outside address");
    outsider.cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn idle_clients_are_closed_after_the_timeout_and_busy_ones_are_not() {
    let server = Server::start(&["--timeout", "1"]);
    let started = Instant::now();
    let mut idle = server.connect();
    let mut busy = server.connect();
    idle.cmd(&["PING"], b"+PONG\r\n");
    // The busy client keeps talking for longer than the timeout, every 50 ms: only a stall of
    // this thread 20 times as long as that (a full second) could make it look idle.
    while started.elapsed() < Duration::from_millis(2500) {
        busy.cmd(&["PING"], b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(50));
    }
    busy.cmd(&["PING"], b"+PONG\r\n");
    idle.expect_closed();
    // Redis counts idle seconds strictly above the timeout: never before one second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Back to no timeout at run time.
    busy.cmd(&["CONFIG", "SET", "timeout", "0"], b"+OK\r\n");
    busy.cmd(
        &["CONFIG", "GET", "timeout"],
        b"*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n",
    );
}

/// A value much bigger than the loopback socket buffers, so most of a reply stays pending.
const BIG: usize = 24 * 1024 * 1024;

fn store_big_value(server: &Server) -> Client {
    let mut writer = server.connect();
    let value = "x".repeat(BIG);
    writer.cmd(&["SET", "big", &value], b"+OK\r\n");
    writer
}

#[test]
fn a_reply_past_the_hard_limit_closes_the_client_at_once() {
    let server = Server::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut writer = store_big_value(&server);
    let mut greedy = server.connect();
    greedy.send(&resp(&["GET", "big"]));
    let got = drain_until_closed(&mut greedy);
    assert!(got < BIG, "the client got the whole reply ({got} bytes)");
    assert_eq!(
        writer.info_field("stats", "client_output_buffer_limit_disconnections"),
        "1"
    );
    // Others, and small replies, are unaffected.
    writer.cmd(&["STRLEN", "big"], format!(":{BIG}\r\n").as_bytes());
}

#[test]
fn a_client_above_the_soft_limit_for_too_long_is_closed_and_a_reader_is_not() {
    let server = Server::start(&["--client-output-buffer-limit", "0 1mb 1"]);
    let mut writer = store_big_value(&server);
    // A client that reads its reply right away stays.
    let mut reader = server.connect();
    reader.send(&resp(&["GET", "big"]));
    let header = reader.read_line();
    assert_eq!(header, format!("${BIG}\r\n"));
    reader.read_n(BIG + 2);
    reader.cmd(&["PING"], b"+PONG\r\n");
    // One that never reads is closed once it has held more than 1 MB for over a second.
    let mut stuck = server.connect();
    let asked = Instant::now();
    stuck.send(&resp(&["GET", "big"]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(stuck.stream.peek(&mut [0u8; 1]).is_ok(), "still connected");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if writer.info_field("stats", "client_output_buffer_limit_disconnections") == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stuck client was never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        asked.elapsed() > Duration::from_secs(1),
        "closed before the soft seconds"
    );
    let got = drain_until_closed(&mut stuck);
    assert!(got < BIG + 20, "the stuck client got its whole reply");
    reader.cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn maxclients_can_change_at_run_time() {
    let server = Server::start(&[]);
    let mut admin = server.connect();
    admin.cmd(&["CONFIG", "SET", "maxclients", "1"], b"+OK\r\n");
    let mut refused = server.connect();
    refused.expect(b"-ERR max number of clients reached\r\n");
    refused.expect_closed();
    admin.cmd(&["CONFIG", "SET", "maxclients", "10"], b"+OK\r\n");
    let mut welcome = server.connect();
    welcome.cmd(&["PING"], b"+PONG\r\n");
    admin.cmd(
        &["CONFIG", "SET", "maxclients", "0"],
        b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be a positive number\r\n",
    );
}
