//! Load and hostile clients against the real binary, short enough for CI: 10,000 connections
//! held at once, connect/disconnect cycles with a leak check, slowloris, clients that never read,
//! and a barrage of odd endings and absurd input while a bystander keeps working.
//!
//! The tests in this file share one machine's cores and measure the server, so they run one at
//! a time (a lock), not in parallel as cargo's harness would run them. `make soak` runs the long
//! versions (tests/soak.rs).

mod common;
mod load;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::{resp, resp_bytes, Client, Server, DEADLINE};
use load::{info, info_number, open_fds, percentile, rss_kib, us, wait_connected};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the machine for one test at a time (a failed test must not block the others).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("reply");
    buf
}

/// Reads until the server closes the connection; returns everything that came.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return all,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("no close ({e}) after {:?}", String::from_utf8_lossy(&all)),
        }
    }
}
// ---------------------------------------------------------------------------------------------
// 10,000 connections

const HELD: usize = 10_000;

/// Connects at most this many at a time and waits for the server to take them before the next
/// batch, so the accept queue stays short whatever the listen backlog (a connect beyond it waits
/// a 1 s SYN retransmit); the burst test below checks the backlog itself.
const BATCH: usize = 100;

/// Opens `n` connections in batches, each served (PING, +PONG) before the next batch starts.
fn connect_served(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let ping = resp(&["PING"]);
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let start = conns.len();
        for _ in start..n.min(start + BATCH) {
            let mut stream = connect(addr);
            stream.write_all(&ping).expect("PING");
            conns.push(stream);
        }
        for (i, stream) in conns[start..].iter_mut().enumerate() {
            let mut reply = [0u8; 7];
            stream
                .read_exact(&mut reply)
                .unwrap_or_else(|e| panic!("connection {} got no reply: {e}", start + i));
            assert_eq!(&reply, b"+PONG\r\n", "connection {}", start + i);
        }
    }
    conns
}

/// Connects and waits until the server counts `base + k` clients after every batch of `k`,
/// so the slow clients are all really there without sending anything.
fn connect_counted(addr: SocketAddr, n: usize, control: &mut Client, base: u64) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let batch = BATCH.min(n - conns.len());
        conns.extend((0..batch).map(|_| connect(addr)));
        wait_connected(control, base + conns.len() as u64, DEADLINE);
    }
    conns
}

#[test]
fn ten_thousand_concurrent_connections_are_all_served() {
    let _serial = serial();
    // Ours: 10,000 client sockets plus the harness's; the server raises its own at start.
    let limit = load::raise_fd_limit();
    assert!(
        limit >= HELD as u64 + 200,
        "this test needs an open-files hard limit of at least {} (`ulimit -Hn` is {limit})",
        HELD + 200
    );
    let mut server = Server::start(&["--save-interval", "0"]);
    let pid = server.child.id();
    let line = server.wait_log("open files limit");
    let server_limit: u64 = line
        .split("open files limit ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a number in the open-files log line");
    assert_eq!(
        server_limit, limit,
        "the server raises its soft limit to the hard limit"
    );
    assert!(
        !server.log_lines.iter().any(|l| l.contains("maxclients")),
        "with {server_limit} files the default 10,000 clients fit; log:\n{}",
        server.log_lines.join("\n")
    );
    let fds_idle = open_fds(pid);
    let rss_idle = rss_kib(pid);

    let started = Instant::now();
    let mut conns = connect_served(server.addr, HELD);
    let connected_in = started.elapsed();
    // All 10,000 open at once: every one is served again, the last connected as the first.
    let started = Instant::now();
    let ping = resp(&["PING"]);
    for stream in &mut conns {
        stream.write_all(&ping).expect("PING");
    }
    for (n, stream) in conns.iter_mut().enumerate() {
        let mut reply = [0u8; 7];
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("connection {n} got no second reply: {e}"));
        assert_eq!(&reply, b"+PONG\r\n", "connection {n}");
    }
    let served_in = started.elapsed();
    let fds_held = open_fds(pid);
    let rss_held = rss_kib(pid);
    assert!(
        fds_held >= fds_idle + HELD,
        "server holds {fds_held} fds, expected at least {}",
        fds_idle + HELD
    );

    // The 10,001st is refused with Redis's error, and closed; the others are untouched.
    let mut extra = connect(server.addr);
    assert_eq!(
        read_to_close(&mut extra),
        b"-ERR max number of clients reached\r\n"
    );
    let mut first = Client {
        stream: conns.swap_remove(0),
    };
    let stats = info(&mut first);
    assert_eq!(info_number(&stats, "connected_clients"), HELD as u64);
    assert_eq!(info_number(&stats, "maxclients"), HELD as u64);
    assert_eq!(info_number(&stats, "rejected_connections"), 1);
    let last = conns.last_mut().unwrap();
    last.write_all(&resp(&["SET", "last", "here"])).unwrap();
    assert_eq!(read_exactly(last, 5), b"+OK\r\n");

    // Everyone leaves but `first`; the server lets them all go, fds included.
    drop(conns);
    wait_connected(&mut first, 1, Duration::from_secs(30));
    first.cmd(&["GET", "last"], b"$4\r\nhere\r\n");
    assert_eq!(open_fds(pid), fds_idle + 1, "fds after everyone left");
    let rss_after = rss_kib(pid);
    println!(
        "{HELD} connections: connected and served in batches of {BATCH} in {:.2} s, all \
         served again at once in {:.2} s; server fds {fds_idle} idle, {fds_held} held; RSS \
         {rss_idle} KiB idle, {rss_held} KiB with {HELD} held ({:.1} KiB each), {rss_after} KiB \
         after they left; open files limit {server_limit}",
        connected_in.as_secs_f64(),
        served_in.as_secs_f64(),
        (rss_held - rss_idle) as f64 / HELD as f64,
    );
    assert!(server.child.try_wait().unwrap().is_none());
}

/// Fires `n` non-blocking connects at once, then PING on each as soon as it is connected;
/// returns how long until all `n` had their +PONG.
fn burst(addr: SocketAddr, n: usize) -> Duration {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let started = Instant::now();
    let mut conns: Vec<(mio::net::TcpStream, bool, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut s = mio::net::TcpStream::connect(addr).expect("connect");
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            (s, false, Vec::new())
        })
        .collect();
    let mut served = 0;
    while served < n {
        assert!(
            started.elapsed() < DEADLINE,
            "{served} of {n} served in {DEADLINE:?}"
        );
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for event in events.iter() {
            let (stream, sent, got) = &mut conns[event.token().0];
            if !*sent && event.is_writable() {
                if let Some(e) = stream.take_error().unwrap() {
                    panic!("connect failed: {e}");
                }
                if stream.peer_addr().is_err() {
                    continue; // not connected yet
                }
                stream.write_all(&resp(&["PING"])).expect("PING");
                *sent = true;
            }
            let mut buf = [0u8; 64];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => panic!("closed"),
                    Ok(k) => {
                        got.extend_from_slice(&buf[..k]);
                        if got == b"+PONG\r\n" {
                            served += 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
    started.elapsed()
}

#[test]
fn a_burst_of_a_thousand_connects_is_all_served() {
    let _serial = serial();
    load::raise_fd_limit();
    let server = Server::start(&["--save-interval", "0"]);
    let took = burst(server.addr, 1000);
    println!(
        "1,000 connects at once, all served in {:.3} s",
        took.as_secs_f64()
    );
    // Every one was answered (burst fails otherwise). A SYN dropped because the accept queue
    // was full is sent again after 1 s, so over a second means drops: a target for make soak.
    load::timing_target(
        took < Duration::from_secs(1),
        &format!("a burst of 1,000 connects took {took:?}: SYNs were dropped"),
    );
}
// ---------------------------------------------------------------------------------------------
// Connect/disconnect cycles

#[test]
fn connect_disconnect_cycles_leak_no_fds_or_memory() {
    let _serial = serial();
    load::raise_fd_limit();
    let cycles = load::env_or("HOSTILE_CYCLES", 20_000usize);
    let server = Server::start(&["--save-interval", "0"]);
    let report = load::leak_check(&server, cycles);
    report.print();
    report.assert_no_leak();
}
// ---------------------------------------------------------------------------------------------
// Slowloris

/// Trickling connections at once.
const SLOW_CLIENTS: usize = 1000;
/// Each trickling connection sends one byte per this period (slowloris's classic "one byte a
/// second").
const TRICKLE_PERIOD: Duration = Duration::from_secs(1);
/// Length of one measurement window.
const WINDOW: Duration = Duration::from_secs(1);
/// Windows of each kind per attempt, alternated.
const ROUNDS: usize = 5;
/// Attempts before the test fails: a real slowdown fails every one, a burst of load from
/// elsewhere on a shared machine rarely spoils three in a row.
const ATTEMPTS: usize = 3;
/// Keys the measuring client reads and writes.
const PROBE_KEYS: usize = 1000;
const PROBE_VALUE: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// The request a slow client trickles, completed only at the end of its window.
fn slow_request(n: usize) -> Vec<u8> {
    resp(&["SET", &format!("slow:{n:04}"), "done"])
}

/// `SLOW_CLIENTS` connections, each due to send one byte of its request per
/// `TRICKLE_PERIOD`, spread evenly over the period.
struct Slow {
    streams: Vec<TcpStream>,
    requests: Vec<Vec<u8>>,
    started: Instant,
    sent: usize,
}

impl Slow {
    /// Connects them and sends each one's first byte, and waits until the server has read
    /// those: a slowloris attack is connections that have been trickling for a while, so
    /// setting a connection up (its input buffer) is not part of what the windows measure.
    fn connect(addr: SocketAddr, control: &mut Client, base: u64) -> Slow {
        let mut streams = connect_counted(addr, SLOW_CLIENTS, control, base);
        let requests: Vec<Vec<u8>> = (0..SLOW_CLIENTS).map(slow_request).collect();
        let before = info_number(&info(control), "total_net_input_bytes");
        for (stream, request) in streams.iter_mut().zip(&requests) {
            stream.write_all(&request[..1]).expect("first byte");
        }
        let until = Instant::now() + DEADLINE;
        while info_number(&info(control), "total_net_input_bytes") < before + SLOW_CLIENTS as u64 {
            assert!(
                Instant::now() < until,
                "the server did not read the first bytes"
            );
            thread::sleep(Duration::from_millis(5));
        }
        Slow {
            streams,
            requests,
            // One byte each is out: the next are due from now on, spread over one period.
            started: Instant::now() - TRICKLE_PERIOD,
            sent: SLOW_CLIENTS,
        }
    }

    /// Sends the bytes that are due: byte `sent / N` of connection `sent % N` is due
    /// `sent` steps after the start.
    fn write_due(&mut self) {
        let step = TRICKLE_PERIOD / SLOW_CLIENTS as u32;
        let now = Instant::now();
        while self.started + step * self.sent as u32 <= now {
            let (who, at) = (self.sent % SLOW_CLIENTS, self.sent / SLOW_CLIENTS);
            // Never the last byte: the requests stay incomplete until `finish`.
            if at + 1 < self.requests[who].len() {
                self.streams[who]
                    .write_all(&self.requests[who][at..at + 1])
                    .expect("trickle");
            }
            self.sent += 1;
        }
    }

    /// Sends the rest of every request at once: each must be answered. Returns bytes trickled.
    fn finish(mut self) -> usize {
        let sent = self.sent;
        for (n, stream) in self.streams.iter_mut().enumerate() {
            let request = &self.requests[n];
            let at =
                (sent / SLOW_CLIENTS + usize::from(n < sent % SLOW_CLIENTS)).min(request.len() - 1);
            stream.write_all(&request[at..]).expect("finish request");
        }
        for (n, stream) in self.streams.iter_mut().enumerate() {
            assert_eq!(
                read_exactly(stream, 5),
                b"+OK\r\n",
                "slow client {n} not answered"
            );
        }
        sent
    }
}

/// A client doing GET and SET round trips, alternately, on its own keys; each is timed.
struct Probe {
    stream: TcpStream,
    n: usize,
}

impl Probe {
    /// Round trips for `window`; returns their latencies, sorted. With `slow`, the bytes the
    /// slow clients owe are sent from this same thread between round trips (outside the timed
    /// part), so the test rig adds no thread competing for the two cores: what the probe feels
    /// is the server's handling of them.
    fn window(&mut self, window: Duration, mut slow: Option<&mut Slow>) -> Vec<Duration> {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(50_000);
        let mut reply = [0u8; 39];
        while started.elapsed() < window {
            if let Some(slow) = slow.as_deref_mut() {
                slow.write_due();
            }
            let key = format!("lat:{}", self.n % PROBE_KEYS);
            let (request, len) = if self.n % 2 == 0 {
                (resp(&["GET", &key]), 39)
            } else {
                (resp_bytes(&[b"SET", key.as_bytes(), PROBE_VALUE]), 5)
            };
            let sent = Instant::now();
            self.stream.write_all(&request).expect("probe send");
            self.stream
                .read_exact(&mut reply[..len])
                .expect("probe reply");
            samples.push(sent.elapsed());
            if len == 5 {
                assert_eq!(&reply[..5], b"+OK\r\n");
            } else {
                assert_eq!(&reply[..5], b"$32\r\n");
                assert_eq!(&reply[5..37], PROBE_VALUE);
            }
            self.n += 1;
        }
        samples.sort_unstable();
        samples
    }
}

/// One attempt: `ROUNDS` windows without slow clients alternated with `ROUNDS` windows with
/// 1,000 of them connected and trickling. Returns the median over windows of each window's
/// p99, without and with, in microseconds.
fn slowloris_attempt(server: &Server, control: &mut Client, probe: &mut Probe) -> (f64, f64) {
    let mut quiet: Vec<Vec<Duration>> = Vec::new();
    let mut slow: Vec<Vec<Duration>> = Vec::new();
    let mut trickled = 0;
    for _ in 0..ROUNDS {
        quiet.push(probe.window(WINDOW, None));
        let mut clients = Slow::connect(server.addr, control, 2);
        slow.push(probe.window(WINDOW, Some(&mut clients)));
        // None was dropped while trickling; then all are completed and answered.
        assert_eq!(
            info_number(&info(control), "connected_clients"),
            SLOW_CLIENTS as u64 + 2
        );
        trickled += clients.finish();
        wait_connected(control, 2, DEADLINE);
    }
    control.cmd(&["GET", "slow:0999"], b"$4\r\ndone\r\n");
    control.cmd(&["DEL", "slow:0999"], b":1\r\n");

    let p99s = |windows: &[Vec<Duration>]| -> Vec<f64> {
        windows.iter().map(|w| us(percentile(w, 99.0))).collect()
    };
    let pooled = |windows: &[Vec<Duration>]| {
        let mut all: Vec<Duration> = windows.concat();
        all.sort_unstable();
        (
            all.len(),
            us(percentile(&all, 50.0)),
            us(percentile(&all, 99.0)),
        )
    };
    let (quiet_p99s, slow_p99s) = (p99s(&quiet), p99s(&slow));
    let (quiet_median, slow_median) = (load::median(&quiet_p99s), load::median(&slow_p99s));
    let (qn, q50, q99) = pooled(&quiet);
    let (sn, s50, s99) = pooled(&slow);
    println!(
        "slowloris: {SLOW_CLIENTS} clients at 1 byte per {TRICKLE_PERIOD:?} each ({trickled} \
         bytes); probe GET/SET p99 per {WINDOW:?} window, us: without {quiet_p99s:.0?}, with \
         {slow_p99s:.0?}; medians {quiet_median:.0} vs {slow_median:.0} ({:.2}x); pooled: \
         without {qn} samples p50 {q50:.0} p99 {q99:.0}, with {sn} samples p50 {s50:.0} p99 \
         {s99:.0}",
        slow_median / quiet_median
    );
    (quiet_median, slow_median)
}

/// 1,000 clients trickling a byte a second each are all answered once they finish, none is
/// dropped meanwhile, and another client's round trips all succeed. Its p99 with them at most
/// twice that without is a timing target (make soak), printed here.
#[test]
fn slowloris_clients_are_all_answered_and_others_served() {
    let _serial = serial();
    load::raise_fd_limit();
    let server = Server::start(&["--save-interval", "0"]);
    let mut control = server.connect();
    let mut mset = vec![b"MSET".to_vec()];
    for k in 0..PROBE_KEYS {
        mset.push(format!("lat:{k}").into_bytes());
        mset.push(PROBE_VALUE.to_vec());
    }
    let args: Vec<&[u8]> = mset.iter().map(Vec::as_slice).collect();
    control.roundtrip(&resp_bytes(&args), b"+OK\r\n");
    let mut probe = Probe {
        stream: connect(server.addr),
        n: 0,
    };
    probe.window(Duration::from_millis(300), None); // warm-up, discarded

    // slowloris_attempt asserts what always holds: every probe round trip right, no slow
    // client dropped, all answered at the end. The p99 ratio is the timing target.
    let attempts = if load::timing_targets() { ATTEMPTS } else { 1 };
    let mut results = Vec::new();
    for _ in 0..attempts {
        let (quiet, slow) = slowloris_attempt(&server, &mut control, &mut probe);
        results.push((quiet, slow));
        if slow <= 2.0 * quiet {
            return;
        }
    }
    load::timing_target(
        false,
        &format!(
            "1,000 slow clients raised the probe's p99 more than 2x in each of {attempts} \
             attempts (median window p99 without, with, in us): {results:.0?}"
        ),
    );
}
// ---------------------------------------------------------------------------------------------
// Clients that write but never read

const DEAF_CLIENTS: usize = 100;
const BIG_VALUE: usize = 16 * 1024;
/// What one client that never reads may cost the server: the 64 KiB of replies after which it
/// stops being read, one more reply, an input buffer, rounded up generously for the allocator.
const PER_DEAF_CLIENT_KIB: u64 = 256;
const DEAF_SLACK_KIB: u64 = 8 * 1024;
/// How long no client that never reads may manage to write before they count as cut off.
const STALLED: Duration = Duration::from_secs(1);

/// A client doing checked INCR round trips on a thread of its own until stopped, and at least
/// `WORKER_MIN` of them however soon it is stopped; returns how many it made and the slowest.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(u64, Duration)>,
}

impl Worker {
    fn start(addr: SocketAddr, counter: &'static str) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut worst = Duration::ZERO;
            let mut n = 0u64;
            c.cmd(&["DEL", counter], b":0\r\n");
            while !stopped.load(Ordering::Relaxed) || n < WORKER_MIN {
                let started = Instant::now();
                c.cmd(&["INCR", counter], format!(":{}\r\n", n + 1).as_bytes());
                worst = worst.max(started.elapsed());
                n += 1;
            }
            (n, worst)
        });
        Worker { stop, thread }
    }

    fn stop(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("worker")
    }
}

/// Round trips a [`Worker`] makes at least, each checked, before it stops.
const WORKER_MIN: u64 = 100;

/// What the clients that never read did, and what the server looked like meanwhile.
struct Deaf {
    streams: Vec<TcpStream>,
    sent: usize,
    writing_for: Duration,
    rss_max: u64,
}

/// Connects `DEAF_CLIENTS` clients that pipeline `GET big` (22 bytes asking for a 16 KiB
/// reply: a server that kept reading would buffer some 750 times what they send) and never
/// read. They write as fast as the server takes it, RSS watched, until none has been able to
/// write anything for `STALLED`: the server stopped reading all of them. (The kernel's socket
/// buffers take their share first: MiBs per connection, outside the server's RSS.)
fn deafen(server: &Server) -> Deaf {
    let pid = server.child.id();
    let request = resp(&["GET", "big"]).repeat(100);
    let mut streams: Vec<TcpStream> = (0..DEAF_CLIENTS)
        .map(|_| {
            let s = connect(server.addr);
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut sent = 0;
    let mut rss_max = 0;
    let mut stalled_since: Option<Instant> = None;
    while stalled_since.is_none_or(|s| s.elapsed() < STALLED) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "clients that never read could still write after 60 s: the server keeps reading them"
        );
        let mut any = false;
        for stream in &mut streams {
            match stream.write(&request) {
                Ok(n) => {
                    sent += n;
                    any = true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => panic!("a client that never reads was cut off: {e}"),
            }
        }
        rss_max = rss_max.max(rss_kib(pid));
        if any {
            stalled_since = None;
        } else {
            stalled_since.get_or_insert_with(Instant::now);
            // Pacing the attempts, not synchronisation.
            thread::sleep(Duration::from_millis(10));
        }
    }
    Deaf {
        streams,
        sent,
        writing_for: started.elapsed() - STALLED,
        rss_max,
    }
}

fn big_value_server() -> (Server, Client, Vec<u8>) {
    load::raise_fd_limit();
    let server = Server::start(&["--save-interval", "0"]);
    let mut control = server.connect();
    let big = vec![b'b'; BIG_VALUE];
    control.roundtrip(&resp_bytes(&[b"SET", b"big", &big]), b"+OK\r\n");
    (server, control, big)
}

#[test]
fn clients_that_never_read_cost_bounded_memory_and_others_are_served() {
    let _serial = serial();
    let (mut server, mut control, big) = big_value_server();
    let pid = server.child.id();
    let rss_before = rss_kib(pid);
    let deaf = deafen(&server);

    // Once they are stuck, another client is served as usual...
    let worker = Worker::start(server.addr, "worker");
    thread::sleep(Duration::from_secs(1)); // the measurement window
    let (served, worst) = worker.stop();
    // ...and the server does not spin on them.
    let cpu_before = common::cpu_seconds(pid);
    let idle_start = Instant::now();
    thread::sleep(Duration::from_secs(1)); // the measurement window for CPU time
    let cpu = common::cpu_seconds(pid) - cpu_before;
    let idle_for = idle_start.elapsed();
    let rss_max = deaf.rss_max.max(rss_kib(pid));
    let bound = rss_before + DEAF_CLIENTS as u64 * PER_DEAF_CLIENT_KIB + DEAF_SLACK_KIB;
    println!(
        "{DEAF_CLIENTS} clients that never read sent {:.1} MiB of GETs for 16 KiB replies \
         ({:.0} KiB each on average) in {:.2} s, then none could write for {STALLED:?}; server \
         RSS {rss_before} KiB before, at most {rss_max} KiB (bound {bound} KiB); with them \
         stuck another client made {served} round trips in 1 s, the slowest {:.1} ms; server \
         CPU {cpu:.2} s over {:.2} s with only them connected",
        deaf.sent as f64 / 1048576.0,
        deaf.sent as f64 / 1024.0 / DEAF_CLIENTS as f64,
        deaf.writing_for.as_secs_f64(),
        worst.as_secs_f64() * 1e3,
        idle_for.as_secs_f64(),
    );
    assert!(rss_max <= bound, "RSS {rss_max} KiB over the bound {bound}");
    // Worker::stop joined a thread that made at least WORKER_MIN round trips, each checked.
    assert!(served >= WORKER_MIN);
    load::timing_target(
        worst < Duration::from_millis(500),
        &format!("the other client waited {worst:?}"),
    );
    // A sanity bound, not a target: a server that does not spin uses a few ms of CPU here; one
    // that spins uses what the scheduler gives it, 0.3 s even with a busy machine's share.
    assert!(
        cpu < 0.3 * idle_for.as_secs_f64().max(1.0),
        "the server spun: {cpu:.2} s of CPU in {idle_for:?}"
    );

    // The stuck clients, once they read, get exactly what they asked for, in order.
    let mut reply = format!("${BIG_VALUE}\r\n").into_bytes();
    reply.extend(&big);
    reply.extend(b"\r\n");
    let mut streams = deaf.streams;
    let reader = &mut streams[0];
    reader.set_nonblocking(false).unwrap();
    for _ in 0..200 {
        assert_eq!(read_exactly(reader, reply.len()), reply);
    }
    // They go away with replies unread (a reset); the server lets them go and is fine.
    drop(streams);
    wait_connected(&mut control, 1, DEADLINE);
    control.cmd(&["STRLEN", "big"], format!(":{BIG_VALUE}\r\n").as_bytes());
    assert!(server.child.try_wait().unwrap().is_none());
}

/// The longest loop turn, in the loop thread's CPU time, from `INFO stats`.
fn longest_turn_cpu(control: &mut Client) -> Duration {
    control.send(&resp(&["INFO", "stats"]));
    let header = control.read_line();
    let len: usize = header[1..].trim_end().parse().unwrap();
    let text = String::from_utf8(control.read_n(len + 2)).unwrap();
    let usec = text
        .lines()
        .find_map(|l| l.strip_prefix("longest_loop_turn_cpu_usec:"))
        .expect("longest_loop_turn_cpu_usec in INFO stats");
    Duration::from_micros(usec.trim().parse().unwrap())
}

#[test]
fn a_client_is_answered_promptly_while_others_pipeline_big_replies() {
    let _serial = serial();
    let (server, mut control, _) = big_value_server();
    control.cmd(&["CONFIG", "RESETSTAT"], b"+OK\r\n");
    let worker = Worker::start(server.addr, "worker");
    let deaf = deafen(&server);
    let (served, worst) = worker.stop();
    let turn = longest_turn_cpu(&mut control);
    println!(
        "while {DEAF_CLIENTS} clients pipelined {:.1} MiB of GETs for 16 KiB replies over {:.2} \
         s, another client made {served} round trips, the slowest {:.1} ms; the server's longest \
         turn took {:.1} ms of CPU",
        deaf.sent as f64 / 1048576.0,
        deaf.writing_for.as_secs_f64(),
        worst.as_secs_f64() * 1e3,
        turn.as_secs_f64() * 1e3
    );
    // What always holds: the worker's round trips, at least WORKER_MIN of them made while the
    // others pipelined, were all answered right (Worker::stop joined it), and the server still
    // answers. Like Redis, the server moves at most 64 KiB per client per turn, so a turn costs
    // about 100 x 64 KiB of copying here, not what every client asked for: typically 20 ms of
    // loop CPU in a debug build, but a fresh clone once measured 153.8 ms (a loopback write's
    // CPU includes the receiving side's softirq work, which the machine's load stretches), so
    // the bound is a timing target for make soak (release build), not a test.
    assert!(served >= WORKER_MIN);
    control.cmd(&["STRLEN", "big"], format!(":{BIG_VALUE}\r\n").as_bytes());
    load::timing_target(
        turn < Duration::from_millis(100),
        &format!("a loop turn took {turn:?} of CPU while others pipelined big replies"),
    );
}

// ---------------------------------------------------------------------------------------------
// Odd endings and absurd input, fired concurrently while a bystander works

/// Every odd client of one round, numbered `i` so its keys are its own.
fn odd_clients(addr: SocketAddr, i: usize) {
    // Half-closed after a text pipeline whose last request is incomplete: the complete ones are
    // answered, then the server closes.
    let mut s = connect(addr);
    s.write_all(format!("SET hc:{i} v\nGET hc:{i}\n*2\r\n$3\r\nGET\r\n$4\r\nha").as_bytes())
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut s), b"OK\nv\n", "half-close, text");
    // The same in RESP, all complete.
    let mut s = connect(addr);
    let mut pipeline = resp(&["SET", &format!("hcr:{i}"), "w"]);
    pipeline.extend(resp(&["GET", &format!("hcr:{i}")]));
    s.write_all(&pipeline).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_close(&mut s),
        b"+OK\r\n$1\r\nw\r\n",
        "half-close, RESP"
    );

    // Reset in the middle of a request: nothing of it runs.
    let s = connect(addr);
    s.set_nodelay(true).unwrap();
    (&s).write_all(format!("*3\r\n$3\r\nSET\r\n$6\r\nrst:{i:02}\r\n$10\r\nabc").as_bytes())
        .unwrap();
    load::linger_zero(&s);
    drop(s);
    // Reset with many replies unsent (the server's writes then fail).
    let s = connect(addr);
    (&s).write_all(&resp(&["GET", "odd:big"]).repeat(200))
        .unwrap();
    load::linger_zero(&s);
    drop(s);

    // After QUIT nothing runs, whether it came in the same write or later.
    let mut s = connect(addr);
    s.write_all(format!("SET q:{i} 1\r\nQUIT\r\nSET after-quit:{i} 1\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_to_close(&mut s), b"OK\nOK\n", "QUIT, text");
    let mut s = connect(addr);
    let mut pipeline = resp(&["QUIT"]);
    pipeline.extend(resp(&["SET", &format!("after-quit:{i}"), "1"]));
    s.write_all(&pipeline).unwrap();
    assert_eq!(read_to_close(&mut s), b"+OK\r\n", "QUIT, RESP");
    let mut s = connect(addr);
    s.write_all(&resp(&["QUIT"])).unwrap();
    assert_eq!(read_exactly(&mut s, 5), b"+OK\r\n");
    // The server may already have closed: this write may fail, and must change nothing.
    let _ = s.write_all(&resp(&["SET", &format!("after-quit:{i}"), "1"]));
    drop(s);

    // Invalid UTF-8 and NUL bytes in the text dialect: data, separators, or a clear error;
    // the connection goes on.
    let mut s = connect(addr);
    let mut set = format!("SET u8:{i} ").into_bytes();
    set.extend_from_slice(b"\xc3\x28\xff\n");
    s.write_all(&set).unwrap();
    s.write_all(b"\xff\xfe\xfd\n\x00\x00\n\x00PING\x00\n")
        .unwrap();
    s.write_all(format!("GET\x00u8:{i}\nECHO \"a\\x00b\"\n").as_bytes())
        .unwrap();
    let expected: &[u8] = b"OK\n\
        (error) ERR unknown command '\xff\xfe\xfd', with args beginning with: \n\
        PONG\n\
        \"\\xc3(\\xff\"\n\
        \"a\\x00b\"\n";
    assert_eq!(
        String::from_utf8_lossy(&read_exactly(&mut s, expected.len())),
        String::from_utf8_lossy(expected),
        "invalid UTF-8 and NUL"
    );
    s.write_all(b"PING\n").unwrap();
    assert_eq!(read_exactly(&mut s, 5), b"PONG\n");

    // Absurd length prefixes: a clear error, then a clean close; nothing allocated for them.
    for (garbage, reply) in [
        (
            &b"*2147483647\r\n"[..],
            &b"-ERR Protocol error: invalid multibulk length\r\n"[..],
        ),
        (
            b"*99999999999999999999\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$2147483648\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
    ] {
        let mut s = connect(addr);
        let _ = s.write_all(garbage);
        assert_eq!(
            String::from_utf8_lossy(&read_to_close(&mut s)),
            String::from_utf8_lossy(reply),
            "after {:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    // The same prefixes as text lines are unknown commands; `*-N` is an empty request.
    let mut s = connect(addr);
    s.write_all(b"$-5\r\n$99999999999999999999\r\n*-2147483648\r\nPING\r\n")
        .unwrap();
    let expected: &[u8] = b"(error) ERR unknown command '$-5', with args beginning with: \n\
        (error) ERR unknown command '$99999999999999999999', with args beginning with: \n\
        PONG\n";
    assert_eq!(read_exactly(&mut s, expected.len()), expected);
    // Legal but enormous announcements that never arrive, then the client goes away.
    let mut s = connect(addr);
    s.write_all(b"*1048576\r\n$536870912\r\nxyz").unwrap();
    drop(s);
}

#[test]
fn odd_endings_and_absurd_input_affect_nobody_else() {
    let _serial = serial();
    const THREADS: usize = 4;
    const ROUNDS_EACH: usize = 25;
    let mut server = Server::start(&["--save-interval", "0"]);
    let pid = server.child.id();
    let mut control = server.connect();
    control.roundtrip(
        &resp_bytes(&[b"SET", b"odd:big", &[b'x'; 64 * 1024]]),
        b"+OK\r\n",
    );
    let fds_before = open_fds(pid);
    let rss_before = rss_kib(pid);

    // A bystander with a counter and a value of its own, checked on every round trip.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let addr = server.addr;
    let bystander = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.cmd(&["SET", "bystander", "intact"], b"+OK\r\n");
        let mut n = 0u64;
        while !stopped.load(Ordering::Relaxed) || n < 100 {
            c.cmd(
                &["INCR", "bystander:n"],
                format!(":{}\r\n", n + 1).as_bytes(),
            );
            c.roundtrip(b"GET bystander\n", b"intact\n");
            n += 1;
        }
        n
    });
    let started = Instant::now();
    let odd: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for r in 0..ROUNDS_EACH {
                    odd_clients(addr, t * ROUNDS_EACH + r);
                }
            })
        })
        .collect();
    for t in odd {
        t.join().expect("odd clients");
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rounds = bystander.join().expect("bystander");

    // Nothing after QUIT ran, no reset request ran, the half-closed ones did.
    control.cmd(&["KEYS", "after-quit:*"], b"*0\r\n");
    control.cmd(&["KEYS", "rst:*"], b"*0\r\n");
    let all = THREADS * ROUNDS_EACH;
    for prefix in ["hc", "hcr", "q", "u8"] {
        control.send(&resp(&["KEYS", &format!("{prefix}:*")]));
        control.expect(format!("*{all}\r\n").as_bytes());
        // Skip the key names; DBSIZE below checks the total.
        for _ in 0..all {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                line.extend(control.read_n(1));
            }
            let len: usize = std::str::from_utf8(&line[1..line.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            control.read_n(len + 2);
        }
    }
    // odd:big, bystander, bystander:n, and four keys per round.
    control.cmd(&["DBSIZE"], format!(":{}\r\n", 3 + 4 * all).as_bytes());
    wait_connected(&mut control, 1, DEADLINE);
    assert_eq!(open_fds(pid), fds_before, "fds after the odd clients left");
    let rss_after = rss_kib(pid);
    control.cmd(&["PING"], b"+PONG\r\n");
    assert!(server.child.try_wait().unwrap().is_none());
    println!(
        "{all} rounds of 15 odd clients in {:.2} s while a bystander made {rounds} checked \
         round trips; server fds {fds_before} -> {}; RSS {rss_before} -> {rss_after} KiB",
        elapsed.as_secs_f64(),
        open_fds(pid),
    );
}
