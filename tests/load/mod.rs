//! Shared by the hostile-client tests (`tests/hostile.rs`, in CI) and the long runs
//! (`tests/soak.rs`, `make soak`): the open-files limit, what /proc says about the server
//! process (open fds, RSS, CPU time), INFO fields, latency percentiles, and connect/disconnect
//! cycles with a leak check around them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::common::{resp, Client, Server, DEADLINE};

/// Whether this run asserts timing targets (latency ratios, CPU per loop turn, how fast a burst
/// is served): only when `POCKETKV_TIMING_TARGETS=1`, which `make soak` sets for a release build
/// on a machine kept quiet for it. Everywhere else (`make test`, CI, under qemu) a test asserts
/// only what always holds, prints the figures, and leaves the targets to that run: another
/// process's burst of work on a shared 2-core machine can stretch any time a test measures.
pub fn timing_targets() -> bool {
    std::env::var("POCKETKV_TIMING_TARGETS").is_ok_and(|v| v == "1")
}

/// Asserts `holds` when timing targets are asserted (see [`timing_targets`]); otherwise says on
/// stdout that the target was missed, so the figure is still seen in the test's output.
pub fn timing_target(holds: bool, what: &str) {
    if timing_targets() {
        assert!(holds, "timing target missed: {what}");
    } else if !holds {
        println!("timing target missed (not asserted outside make soak): {what}");
    }
}

/// Raises this process's open-files soft limit to its hard limit (capped at 2^20, for a hard
/// limit of "unlimited"); returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let want = limit.rlim_max.min(1 << 20);
        if limit.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = want;
            }
        }
    }
    limit.rlim_cur
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// Resident set size of process `pid` in KiB (VmRSS in /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Makes closing `stream` send a RST instead of a FIN (SO_LINGER with a zero timeout).
pub fn linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the life of `stream`; the option value is a valid `linger`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// A number from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

/// The whole INFO text, over `client`'s connection.
pub fn info(client: &mut Client) -> String {
    client.send(&resp(&["INFO"]));
    assert_eq!(client.read_n(1), b"$", "INFO: not a bulk reply");
    let mut header = Vec::new();
    while !header.ends_with(b"\r\n") {
        header.extend(client.read_n(1));
        assert!(header.len() < 24, "runaway bulk header {header:?}");
    }
    let len: usize = std::str::from_utf8(&header[..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let body = client.read_n(len + 2);
    String::from_utf8(body[..len].to_vec()).expect("utf-8 INFO")
}

/// One numeric INFO field.
pub fn info_number(info: &str, field: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{info}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number"))
}

/// Waits (polling INFO, with a deadline) until the server counts exactly `n` clients.
pub fn wait_connected(client: &mut Client, n: u64, deadline: Duration) {
    let until = Instant::now() + deadline;
    loop {
        let info = info(client);
        let connected = info_number(&info, "connected_clients");
        if connected == n {
            return;
        }
        assert!(
            Instant::now() < until,
            "server still counts {connected} clients, not {n}, after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `p`-th percentile (0..=100) of `sorted`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "no samples");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The median of some numbers.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The key every text-dialect cycle reads; [`leak_check`] sets it.
const FIXED_KEY: &str = "cycle:fixed";

/// One connect/disconnect cycle of the kind `n % 4`, each ending differently:
/// 0. RESP SET of one of 64 keys, then the client closes (FIN);
/// 1. text-dialect GET, then the client closes;
/// 2. PING and QUIT in one write: the server closes first;
/// 3. PING, then the client resets the connection (SO_LINGER 0).
fn one_cycle(addr: SocketAddr, n: usize) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, DEADLINE).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(DEADLINE))
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (request, reply, server_closes): (Vec<u8>, &[u8], bool) = match n % 4 {
        0 => (
            resp(&["SET", &format!("cycle:{}", n % 64), "v"]),
            b"+OK\r\n",
            false,
        ),
        1 => (format!("GET {FIXED_KEY}\n").into_bytes(), b"fixed\n", false),
        2 => {
            let mut both = resp(&["PING"]);
            both.extend(resp(&["QUIT"]));
            (both, b"+PONG\r\n+OK\r\n", true)
        }
        _ => {
            linger_zero(&stream);
            (resp(&["PING"]), b"+PONG\r\n", false)
        }
    };
    stream
        .write_all(&request)
        .map_err(|e| format!("cycle {n}: send: {e}"))?;
    let mut got = vec![0; reply.len()];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("cycle {n}: reply: {e}"))?;
    if got != reply {
        return Err(format!(
            "cycle {n}: reply {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(reply)
        ));
    }
    if server_closes {
        let mut rest = [0u8; 64];
        loop {
            match stream.read(&mut rest) {
                Ok(0) => break,
                Ok(k) => return Err(format!("cycle {n}: {k} bytes after QUIT's reply")),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cycle {n}: no clean close after QUIT: {e}")),
            }
        }
    }
    Ok(())
}

/// Runs `total` cycles spread over `threads` threads; returns how many failed and the first
/// few failures.
pub fn run_cycles(addr: SocketAddr, total: usize, threads: usize) -> (usize, Vec<String>) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut failed = 0;
                let mut first = Vec::new();
                for n in (t..total).step_by(threads) {
                    if let Err(e) = one_cycle(addr, n) {
                        failed += 1;
                        if first.len() < 5 {
                            first.push(e);
                        }
                    }
                }
                (failed, first)
            })
        })
        .collect();
    let mut failed = 0;
    let mut first = Vec::new();
    for w in workers {
        let (f, mut e) = w.join().expect("cycle thread");
        failed += f;
        first.append(&mut e);
    }
    (failed, first)
}

/// What the server looked like before and after the cycles.
#[derive(Debug)]
pub struct LeakReport {
    pub cycles: usize,
    pub elapsed: Duration,
    pub fds_before: usize,
    pub fds_after: usize,
    pub rss_start_kib: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub connections_received: u64,
}

/// Threads running cycles at once: a few connections overlap, so the slab and the allocator
/// see interleaved opens and closes, not one connection at a time.
pub const CYCLE_THREADS: usize = 4;

/// RSS may exceed its baseline by this much after the cycles: 1 MiB is 10 bytes per cycle for
/// 100,000 cycles, 52 for 20,000; a leaked 16 KiB input buffer per cycle would be 300 MiB.
pub const RSS_TOLERANCE_KIB: u64 = 1024;

/// Warms up with `cycles / 10` cycles (at least 2,000), takes the baseline (open fds and RSS
/// with only a control client connected), runs `cycles` more, waits until the server has let
/// every one go, and measures again. Fails on any cycle that went wrong.
pub fn leak_check(server: &Server, cycles: usize) -> LeakReport {
    let pid = server.child.id();
    let rss_start_kib = rss_kib(pid);
    let mut control = server.connect();
    control.cmd(&["SET", FIXED_KEY, "fixed"], b"+OK\r\n");
    let (failed, first) = run_cycles(server.addr, (cycles / 10).max(2000), CYCLE_THREADS);
    assert_eq!(failed, 0, "warm-up cycles failed: {first:#?}");
    wait_connected(&mut control, 1, DEADLINE);
    let fds_before = open_fds(pid);
    let rss_before_kib = rss_kib(pid);
    let received_before = info_number(&info(&mut control), "total_connections_received");

    let started = Instant::now();
    let (failed, first) = run_cycles(server.addr, cycles, CYCLE_THREADS);
    let elapsed = started.elapsed();
    assert_eq!(failed, 0, "{failed} of {cycles} cycles failed: {first:#?}");
    // Closes reach the server asynchronously: wait until it counts only the control client.
    wait_connected(&mut control, 1, DEADLINE);
    let info = info(&mut control);
    let report = LeakReport {
        cycles,
        elapsed,
        fds_before,
        fds_after: open_fds(pid),
        rss_start_kib,
        rss_before_kib,
        rss_after_kib: rss_kib(pid),
        connections_received: info_number(&info, "total_connections_received") - received_before,
    };
    assert_eq!(info_number(&info, "total_error_replies"), 0);
    control.cmd(&["GET", FIXED_KEY], b"$5\r\nfixed\r\n");
    report
}

impl LeakReport {
    pub fn print(&self) {
        println!(
            "{} connect/disconnect cycles in {:.1} s ({:.0}/s, {CYCLE_THREADS} threads): \
             server fds {} -> {}, RSS at start {} KiB, after warm-up {} KiB, after cycles {} KiB \
             ({:+} KiB)",
            self.cycles,
            self.elapsed.as_secs_f64(),
            self.cycles as f64 / self.elapsed.as_secs_f64(),
            self.fds_before,
            self.fds_after,
            self.rss_start_kib,
            self.rss_before_kib,
            self.rss_after_kib,
            self.rss_after_kib as i64 - self.rss_before_kib as i64
        );
    }

    /// Every cycle reached the server; fds are back exactly; RSS within the tolerance.
    pub fn assert_no_leak(&self) {
        assert_eq!(
            self.connections_received, self.cycles as u64,
            "the server saw a different number of connections than were made"
        );
        assert_eq!(
            self.fds_after, self.fds_before,
            "open fds differ after {} cycles: {self:?}",
            self.cycles
        );
        assert!(
            self.rss_after_kib <= self.rss_before_kib + RSS_TOLERANCE_KIB,
            "RSS grew by more than {RSS_TOLERANCE_KIB} KiB over {} cycles: {self:?}",
            self.cycles
        );
    }
}
