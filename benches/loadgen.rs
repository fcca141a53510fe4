//! pocketkv's load generator: drives any RESP server (pocketkv, redis-server, the ceiling server)
//! over TCP with the same code, so their numbers compare. `make bench` runs it; by hand:
//!
//! ```text
//! cargo run --release --example loadgen -- --port 6379 --clients 50 --pipeline 16 --ratio 90:10
//! cargo run --release --example loadgen -- --port 6379 --rate 50000 --duration 10
//! cargo run --release --example loadgen -- --port 6379 --load 1000000
//! cargo run --release --example loadgen -- --help
//! ```
//!
//! Three modes:
//!
//! - **closed loop** (default): every client sends `--pipeline` requests in one write, waits for
//!   all their replies, and sends the next batch at once (as redis-benchmark does). A request's
//!   latency runs from its batch's write to the read that completed its reply.
//! - **open loop** (`--rate R`): R requests per second in all, evenly spaced, request k going to
//!   client k mod N whether or not its earlier replies have come back. Latency runs from each
//!   request's *intended* send time, so a stall (of the server, or of this generator) counts
//!   against every request that should have gone out meanwhile: the coordinated-omission
//!   correction. The generator's own lateness (actual write time minus intended time) is reported
//!   too, so a generator that cannot keep up is visible rather than blamed on the server.
//! - **load** (`--load N`): writes keys 0..N with pipelined `MSET`s of `--batch` pairs each, as
//!   fast as the server takes them, and reports keys per second.
//!
//! Each thread runs one mio poll loop over its share of the clients (one thread is the default,
//! and is what `make bench` pins to its own CPU). Reads trust a short read to mean "drained", as
//! the ceiling server does, so the generator spends no syscall that a server under test would not.
//! Latencies go into an HDR histogram (3 significant digits, nanoseconds).
//!
//! Requests: `GET key` or `SET key value` (RESP, or text lines with `--text`). Keys are
//! `key:` plus the zero-padded index (16 bytes by default, `--key-size`), indexes in
//! `0..--keyspace`, picked uniformly or Zipf-distributed (`--dist zipf`, exponent `--zipf-s`,
//! index 0 hottest). Values are `--value-size` letters.
//!
//! Replies are counted by RESP framing (any type, nested arrays included) and `-` replies are
//! counted as errors. With `--text`, one reply is one line and `(error)` lines are errors: right
//! for pocketkv's answers to GET, SET and MSET, which are all one line.
//!
//! What it does not measure: anything but loopback-or-network TCP round trips as seen by one
//! process; connection set-up (clients connect before the clock starts); replies' contents (it
//! does not check that GET returned what SET stored: the integration tests do that).
//!
//! Output: a readable summary, then one `result:` line of `name=value` fields for scripts.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "\
usage: loadgen [options]
  --host H           server host (127.0.0.1)
  --port P           server port (6379)
  --clients N        connections (50)
  --pipeline P       closed loop: requests per batch per client (1)
  --threads T        generator threads, each with its own poll loop (1)
  --duration S       measured seconds (5)
  --warmup S         seconds run before measuring starts (1)
  --rate R           open loop: R requests/s in all, latency from intended send time
  --ratio G:S        GET:SET mix, e.g. 90:10, 50:50, 100:0, 0:100 (90:10)
  --keyspace N       keys key:0..N-1 (100000)
  --key-size B       key length in bytes, `key:` plus zero-padded index (16)
  --value-size B     SET value length in bytes (16)
  --dist D           uniform | zipf (uniform)
  --zipf-s S         Zipf exponent (0.99)
  --text             use pocketkv's text dialect instead of RESP
  --load N           load mode: MSET keys 0..N-1 (values of --value-size) and exit
  --batch K          load mode: pairs per MSET (100)
  --seed X           random seed (1)
  --quiet            print only the result: line
";

fn usage_error(message: &str) -> ! {
    eprintln!("loadgen: {message}\n{USAGE}");
    std::process::exit(2);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dist {
    Uniform,
    Zipf(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Closed,
    Open { rate: f64 },
    Load { keys: u64, batch: u64 },
}

#[derive(Clone, Debug)]
struct Config {
    addr: SocketAddr,
    clients: usize,
    pipeline: usize,
    threads: usize,
    duration: f64,
    warmup: f64,
    mode: Mode,
    get_percent: u32,
    keyspace: u64,
    key_size: usize,
    value_size: usize,
    dist: Dist,
    text: bool,
    seed: u64,
    quiet: bool,
}

fn parse_args(args: Vec<String>) -> Config {
    let mut host = "127.0.0.1".to_string();
    let mut port = "6379".to_string();
    let mut clients = 50usize;
    let mut pipeline = 1usize;
    let mut threads = 1usize;
    let mut duration = 5.0f64;
    let mut warmup = 1.0f64;
    let mut rate: Option<f64> = None;
    let mut load: Option<u64> = None;
    let mut batch = 100u64;
    let mut ratio = "90:10".to_string();
    let mut keyspace = 100_000u64;
    let mut key_size = 16usize;
    let mut value_size = 16usize;
    let mut dist = "uniform".to_string();
    let mut zipf_s = 0.99f64;
    let mut text = false;
    let mut seed = 1u64;
    let mut quiet = false;

    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--text" => text = true,
            "--quiet" => quiet = true,
            _ => {
                let value = inline
                    .or_else(|| it.next())
                    .unwrap_or_else(|| usage_error(&format!("{name} needs a value")));
                fn num<T: std::str::FromStr>(name: &str, v: &str) -> T {
                    v.parse()
                        .unwrap_or_else(|_| usage_error(&format!("bad value for {name}: {v:?}")))
                }
                match name.as_str() {
                    "--host" => host = value,
                    "--port" => port = value,
                    "--clients" => clients = num(&name, &value),
                    "--pipeline" => pipeline = num(&name, &value),
                    "--threads" => threads = num(&name, &value),
                    "--duration" => duration = num(&name, &value),
                    "--warmup" => warmup = num(&name, &value),
                    "--rate" => rate = Some(num(&name, &value)),
                    "--load" => load = Some(num(&name, &value)),
                    "--batch" => batch = num(&name, &value),
                    "--ratio" => ratio = value,
                    "--keyspace" => keyspace = num(&name, &value),
                    "--key-size" => key_size = num(&name, &value),
                    "--value-size" => value_size = num(&name, &value),
                    "--dist" => dist = value,
                    "--zipf-s" => zipf_s = num(&name, &value),
                    "--seed" => seed = num(&name, &value),
                    _ => usage_error(&format!("unknown option {name}")),
                }
            }
        }
    }

    let addr = format!("{host}:{port}")
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| usage_error(&format!("cannot resolve {host}:{port}")));
    let get_percent = match ratio.split_once(':') {
        Some((g, s)) => {
            let (g, s): (u32, u32) = (num_or(g, &ratio), num_or(s, &ratio));
            if g + s == 0 {
                usage_error("--ratio: both parts are 0");
            }
            // Rounded to whole percent: finer mixes are not what this tool is for.
            (g * 100 + (g + s) / 2) / (g + s)
        }
        None => usage_error(&format!("--ratio wants GET:SET, got {ratio:?}")),
    };
    fn num_or(v: &str, whole: &str) -> u32 {
        v.parse()
            .unwrap_or_else(|_| usage_error(&format!("bad --ratio {whole:?}")))
    }
    let dist = match dist.as_str() {
        "uniform" => Dist::Uniform,
        "zipf" if zipf_s > 0.0 && zipf_s.is_finite() => Dist::Zipf(zipf_s),
        "zipf" => usage_error("--zipf-s must be positive"),
        _ => usage_error(&format!("--dist is uniform or zipf, got {dist:?}")),
    };
    let mode = match (rate, load) {
        (Some(_), Some(_)) => usage_error("--rate and --load exclude each other"),
        (Some(r), None) if r > 0.0 && r.is_finite() => Mode::Open { rate: r },
        (Some(_), None) => usage_error("--rate must be positive"),
        (None, Some(n)) => {
            if batch == 0 {
                usage_error("--batch must be at least 1");
            }
            Mode::Load { keys: n, batch }
        }
        (None, None) => Mode::Closed,
    };
    let keys_needed = match mode {
        Mode::Load { keys, .. } => keys,
        _ => keyspace,
    };
    if keys_needed == 0 && !matches!(mode, Mode::Load { .. }) {
        usage_error("--keyspace must be at least 1");
    }
    let digits = keys_needed.saturating_sub(1).to_string().len();
    if key_size < 4 + digits {
        usage_error(&format!(
            "--key-size {key_size} cannot hold `key:` and {digits} digits"
        ));
    }
    if clients == 0 || pipeline == 0 || threads == 0 {
        usage_error("--clients, --pipeline and --threads must be at least 1");
    }
    if duration <= 0.0 || warmup < 0.0 {
        usage_error("--duration must be positive and --warmup not negative");
    }
    Config {
        addr,
        clients,
        pipeline,
        threads: threads.min(clients),
        duration,
        warmup,
        mode,
        get_percent,
        keyspace,
        key_size,
        value_size,
        dist,
        text,
        seed,
        quiet,
    }
}

// --- random numbers and key distributions --------------------------------------------------------

/// splitmix64: tiny, fast, and good enough to pick keys.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0), by multiply-high.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Zipf-distributed ranks 1..=n with P(k) proportional to k^-s, by rejection-inversion
/// (W. Hörmann, G. Derflinger, "Rejection-inversion to generate variates from monotone discrete
/// distributions", 1996): O(1) per sample and no table, whatever n is.
struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    squeeze: f64,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        let h_integral_x1 = h_integral(1.5, s) - 1.0;
        let h_integral_n = h_integral(n as f64 + 0.5, s);
        let squeeze = 2.0 - h_integral_inverse(h_integral(2.5, s) - h(2.0, s), s);
        Zipf {
            n: n as f64,
            s,
            h_integral_x1,
            h_integral_n,
            squeeze,
        }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = h_integral_inverse(u, self.s);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.squeeze || u >= h_integral(k + 0.5, self.s) - h(k, self.s) {
                return k as u64;
            }
        }
    }
}

/// x^-s
fn h(x: f64, s: f64) -> f64 {
    (-s * x.ln()).exp()
}

/// An antiderivative of h: (x^(1-s) - 1) / (1-s), and ln x when s = 1, computed stably.
fn h_integral(x: f64, s: f64) -> f64 {
    let log_x = x.ln();
    exp_m1_over_x((1.0 - s) * log_x) * log_x
}

fn h_integral_inverse(x: f64, s: f64) -> f64 {
    // Guard rounding: t below -1 would take the log of a negative number.
    let t = (x * (1.0 - s)).max(-1.0);
    (ln_1p_over_x(t) * x).exp()
}

/// ln(1+x)/x, 1 at 0.
fn ln_1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x - 1)/x, 1 at 0.
fn exp_m1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

// --- requests ------------------------------------------------------------------------------------

/// Builds requests into a connection's output buffer.
struct Requests {
    rng: Rng,
    zipf: Option<Zipf>,
    keyspace: u64,
    get_percent: u32,
    key_size: usize,
    value: Vec<u8>,
    text: bool,
}

impl Requests {
    fn new(config: &Config, stream: u64) -> Requests {
        let letters = b"abcdefghijklmnopqrstuvwxyz";
        Requests {
            rng: Rng(config.seed ^ stream.wrapping_mul(0x2545_f491_4f6c_dd1d)),
            zipf: match config.dist {
                Dist::Zipf(s) => Some(Zipf::new(config.keyspace, s)),
                Dist::Uniform => None,
            },
            keyspace: config.keyspace,
            get_percent: config.get_percent,
            key_size: config.key_size,
            value: (0..config.value_size).map(|i| letters[i % 26]).collect(),
            text: config.text,
        }
    }

    fn pick_key(&mut self) -> u64 {
        match &self.zipf {
            Some(z) => z.sample(&mut self.rng) - 1,
            None => self.rng.below(self.keyspace),
        }
    }

    /// One GET or SET, by the mix.
    fn push_one(&mut self, out: &mut Vec<u8>) {
        let get = self.get_percent == 100
            || (self.get_percent > 0 && self.rng.below(100) < u64::from(self.get_percent));
        let key = self.pick_key();
        if get {
            self.command(out, b"GET", &[key], false);
        } else {
            self.command(out, b"SET", &[key], true);
        }
    }

    /// `NAME key [value] key [value] ...`
    fn command(&self, out: &mut Vec<u8>, name: &[u8], keys: &[u64], values: bool) {
        let per_key = if values { 2 } else { 1 };
        if self.text {
            out.extend_from_slice(name);
            for &key in keys {
                out.push(b' ');
                put_key(out, key, self.key_size);
                if values {
                    out.push(b' ');
                    if self.value.is_empty() {
                        out.extend_from_slice(b"\"\"");
                    } else {
                        out.extend_from_slice(&self.value);
                    }
                }
            }
            out.push(b'\n');
            return;
        }
        resp_header(out, b'*', 1 + per_key * keys.len());
        resp_header(out, b'$', name.len());
        out.extend_from_slice(name);
        out.extend_from_slice(b"\r\n");
        for &key in keys {
            resp_header(out, b'$', self.key_size);
            put_key(out, key, self.key_size);
            out.extend_from_slice(b"\r\n");
            if values {
                resp_header(out, b'$', self.value.len());
                out.extend_from_slice(&self.value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

fn resp_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `key:` then `index` zero-padded to `size` bytes in all.
fn put_key(out: &mut Vec<u8>, mut index: u64, size: usize) {
    out.extend_from_slice(b"key:");
    let start = out.len();
    out.resize(start + size - 4, b'0');
    let digits = &mut out[start..];
    for d in digits.iter_mut().rev() {
        if index == 0 {
            break;
        }
        *d = b'0' + (index % 10) as u8;
        index /= 10;
    }
}

// --- replies -------------------------------------------------------------------------------------

/// A complete reply at the start of the input: its length and whether it is an error.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Complete { len: usize, error: bool },
    Incomplete,
}

/// The length of the line at `buf[at..]` including LF, if complete.
fn line_end(buf: &[u8], at: usize) -> Option<usize> {
    memchr::memchr(b'\n', &buf[at..]).map(|i| at + i + 1)
}

/// Parses the integer of a RESP header line `buf[at+1..end-2]`.
fn header_int(buf: &[u8], at: usize, end: usize) -> Result<i64, String> {
    let body = buf
        .get(at + 1..end.saturating_sub(2))
        .filter(|_| end >= at + 3 && buf[end - 2] == b'\r')
        .ok_or_else(|| garbage(buf, at))?;
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| garbage(buf, at))
}

fn garbage(buf: &[u8], at: usize) -> String {
    let end = (at + 60).min(buf.len());
    format!(
        "not a RESP reply: {:?}",
        String::from_utf8_lossy(&buf[at..end])
    )
}

/// The extent of one RESP value at `buf[at..]`: Ok(Some(end)) when complete.
fn resp_value(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, String> {
    if at >= buf.len() {
        return Ok(None);
    }
    if depth > 32 {
        return Err("RESP reply nested over 32 deep".to_string());
    }
    let Some(end) = line_end(buf, at) else {
        return Ok(None);
    };
    match buf[at] {
        b'+' | b'-' | b':' => Ok(Some(end)),
        b'$' => {
            let len = header_int(buf, at, end)?;
            if len < 0 {
                return Ok(Some(end));
            }
            let stop = end + len as usize + 2;
            Ok((stop <= buf.len()).then_some(stop))
        }
        b'*' => {
            let count = header_int(buf, at, end)?;
            let mut next = end;
            for _ in 0..count.max(0) {
                match resp_value(buf, next, depth + 1)? {
                    Some(e) => next = e,
                    None => return Ok(None),
                }
            }
            Ok(Some(next))
        }
        _ => Err(garbage(buf, at)),
    }
}

fn parse_reply(buf: &[u8], text: bool) -> Result<Reply, String> {
    if text {
        return Ok(match line_end(buf, 0) {
            Some(len) => Reply::Complete {
                len,
                error: buf.starts_with(b"(error)"),
            },
            None => Reply::Incomplete,
        });
    }
    Ok(match resp_value(buf, 0, 0)? {
        Some(len) => Reply::Complete {
            len,
            error: buf[0] == b'-',
        },
        None => Reply::Incomplete,
    })
}

// --- one generator thread ------------------------------------------------------------------------

const TIMER: Token = Token(usize::MAX - 1);
const READ_CHUNK: usize = 64 * 1024;

/// A timerfd: nanosecond wake-ups for the open loop (epoll_wait's own timeout is in milliseconds).
struct Timer(OwnedFd);

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        Ok(Timer(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Fires once, `after` from now (at least 1 ns: zero would disarm it).
    fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid fd and pointers to live values for the call's duration.
        let rc =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes the expiry count so the next expiry raises a new edge.
    fn clear(&self) {
        let mut ticks = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live 8-byte buffer; EAGAIN is fine.
        unsafe { libc::read(self.0.as_raw_fd(), ticks.as_mut_ptr().cast(), 8) };
    }
}

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    filled: usize,
    output: Vec<u8>,
    written: usize,
    /// Start time of every request sent and not yet answered, oldest first: the batch's write
    /// time (closed loop, load) or the intended send time (open loop).
    started: VecDeque<Instant>,
    requests: Requests,
    /// Load mode: the keys this client still has to write.
    next_key: u64,
    end_key: u64,
}

impl Conn {
    /// Writes pending output until done or `WouldBlock`.
    fn flush(&mut self) -> Result<(), String> {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
        Ok(())
    }

    /// Reads what is there; returns false once the socket is drained.
    fn read_some(&mut self) -> Result<bool, String> {
        if self.input.len() - self.filled < READ_CHUNK {
            let size = (self.input.len() * 2).max(self.filled + READ_CHUNK);
            self.input.resize(size, 0);
        }
        let room = self.input.len() - self.filled;
        match self.stream.read(&mut self.input[self.filled..]) {
            Ok(0) => Err("server closed the connection".to_string()),
            Ok(n) => {
                self.filled += n;
                // A short read emptied the socket; new data raises a new edge.
                Ok(n == room)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Queues `pipeline` requests stamped `now` (closed loop).
    fn send_batch(&mut self, pipeline: usize, now: Instant) {
        for _ in 0..pipeline {
            self.requests.push_one(&mut self.output);
            self.started.push_back(now);
        }
    }

    /// Queues up to `pipeline` MSETs of `batch` pairs (load mode).
    fn send_load(&mut self, pipeline: usize, batch: u64, now: Instant) {
        let mut keys = Vec::with_capacity(batch as usize);
        for _ in 0..pipeline {
            if self.next_key >= self.end_key {
                break;
            }
            let stop = (self.next_key + batch).min(self.end_key);
            keys.clear();
            keys.extend(self.next_key..stop);
            self.requests
                .command(&mut self.output, b"MSET", &keys, true);
            self.started.push_back(now);
            self.next_key = stop;
        }
    }
}

/// What one thread measured.
struct Stats {
    latency: Histogram<u64>,
    /// Open loop: actual write time minus intended send time.
    lag: Histogram<u64>,
    completed: u64,
    errors: u64,
    sent: u64,
    unfinished: u64,
    measured: Duration,
}

impl Stats {
    fn new() -> Stats {
        let histogram = || Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("bounds");
        Stats {
            latency: histogram(),
            lag: histogram(),
            completed: 0,
            errors: 0,
            sent: 0,
            unfinished: 0,
            measured: Duration::ZERO,
        }
    }

    fn reset(&mut self) {
        self.latency.reset();
        self.lag.reset();
        self.completed = 0;
        self.errors = 0;
        self.sent = 0;
    }

    fn merge(&mut self, other: &Stats) {
        self.latency.add(&other.latency).expect("same bounds");
        self.lag.add(&other.lag).expect("same bounds");
        self.completed += other.completed;
        self.errors += other.errors;
        self.sent += other.sent;
        self.unfinished += other.unfinished;
        self.measured = self.measured.max(other.measured);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one thread's clients from `start` until the end of the measurement (or of the load).
/// `first` numbers this thread's first client among all; `rate` is this thread's share.
fn run_thread(
    config: &Config,
    streams: Vec<TcpStream>,
    first: usize,
    load_ranges: Vec<(u64, u64)>,
    start: Instant,
) -> Result<Stats, String> {
    let io = |what: &str, e: io::Error| format!("{what}: {e}");
    let mut poll = Poll::new().map_err(|e| io("poll", e))?;
    let mut conns: Vec<Conn> = Vec::with_capacity(streams.len());
    for (i, mut stream) in streams.into_iter().enumerate() {
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| io("register", e))?;
        let (next_key, end_key) = load_ranges.get(i).copied().unwrap_or((0, 0));
        conns.push(Conn {
            stream,
            input: vec![0; READ_CHUNK],
            filled: 0,
            output: Vec::with_capacity(READ_CHUNK),
            written: 0,
            started: VecDeque::new(),
            requests: Requests::new(config, (first + i) as u64),
            next_key,
            end_key,
        });
    }
    let n = conns.len();
    let timer = match config.mode {
        Mode::Open { .. } => {
            let t = Timer::new().map_err(|e| io("timerfd", e))?;
            poll.registry()
                .register(&mut SourceFd(&t.0.as_raw_fd()), TIMER, Interest::READABLE)
                .map_err(|e| io("register timer", e))?;
            Some(t)
        }
        _ => None,
    };
    // This thread's share of the open-loop rate, in proportion to its clients.
    let interval_ns = match config.mode {
        Mode::Open { rate } => 1e9 * config.clients as f64 / (rate * n as f64),
        _ => 0.0,
    };

    let is_load = matches!(config.mode, Mode::Load { .. });
    let warm_end = start + Duration::from_secs_f64(if is_load { 0.0 } else { config.warmup });
    let end = warm_end + Duration::from_secs_f64(config.duration);
    let mut stats = Stats::new();
    let mut measuring = false;
    let mut events = Events::with_capacity(1024);
    let mut next_request: u64 = 0;
    let mut dirty: Vec<usize> = Vec::new();

    let now = Instant::now();
    if let Some(wait) = start.checked_duration_since(now) {
        std::thread::sleep(wait);
    }
    let now = Instant::now();
    for conn in &mut conns {
        match config.mode {
            Mode::Closed => conn.send_batch(config.pipeline, now),
            Mode::Load { batch, .. } => conn.send_load(config.pipeline, batch, now),
            Mode::Open { .. } => {}
        }
        conn.flush()?;
    }

    loop {
        let now = Instant::now();
        if is_load {
            if conns.iter().all(|c| c.started.is_empty()) {
                stats.measured = now - start;
                break;
            }
        } else {
            if now >= end {
                stats.measured = end - warm_end;
                break;
            }
            if !measuring && now >= warm_end {
                stats.reset();
                measuring = true;
            }
        }
        if let Some(timer) = &timer {
            // Queue every request whose intended time has come, then write each client once.
            loop {
                let intended =
                    start + Duration::from_nanos((next_request as f64 * interval_ns) as u64);
                if intended > now {
                    timer
                        .arm(intended - Instant::now().min(intended))
                        .map_err(|e| io("timerfd_settime", e))?;
                    break;
                }
                let c = (next_request % n as u64) as usize;
                let conn = &mut conns[c];
                if conn.output.is_empty() {
                    dirty.push(c);
                }
                conn.requests.push_one(&mut conn.output);
                conn.started.push_back(intended);
                next_request += 1;
                if measuring {
                    stats.sent += 1;
                    stats.lag.saturating_record(nanos(now - intended));
                }
            }
            for c in dirty.drain(..) {
                conns[c].flush()?;
            }
        }
        let timeout = if is_load {
            Duration::from_millis(100)
        } else {
            (end - now).min(Duration::from_millis(100))
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io("poll", e));
            }
        }
        for event in events.iter() {
            if event.token() == TIMER {
                if let Some(t) = &timer {
                    t.clear();
                }
                continue;
            }
            let conn = &mut conns[event.token().0];
            if event.is_writable() && !conn.output.is_empty() {
                conn.flush()?;
            }
            if !(event.is_readable() || event.is_read_closed()) {
                continue;
            }
            loop {
                let more = conn.read_some()?;
                let now = Instant::now();
                let mut at = 0;
                while let Reply::Complete { len, error } =
                    parse_reply(&conn.input[at..conn.filled], config.text)?
                {
                    at += len;
                    let Some(started) = conn.started.pop_front() else {
                        return Err(format!(
                            "a reply nobody asked for: {:?}",
                            String::from_utf8_lossy(&conn.input[at - len..at])
                        ));
                    };
                    if error && stats.errors == 0 {
                        eprintln!(
                            "loadgen: first error reply: {}",
                            String::from_utf8_lossy(&conn.input[at - len..at]).trim_end()
                        );
                    }
                    if measuring || is_load {
                        stats.latency.saturating_record(nanos(now - started));
                        stats.completed += 1;
                        stats.errors += u64::from(error);
                    }
                }
                conn.input.copy_within(at..conn.filled, 0);
                conn.filled -= at;
                if conn.started.is_empty() {
                    match config.mode {
                        Mode::Closed => conn.send_batch(config.pipeline, now),
                        Mode::Load { batch, .. } => conn.send_load(config.pipeline, batch, now),
                        Mode::Open { .. } => {}
                    }
                    conn.flush()?;
                }
                if !more {
                    break;
                }
            }
        }
    }
    stats.unfinished = conns.iter().map(|c| c.started.len() as u64).sum();
    Ok(stats)
}

// --- main ----------------------------------------------------------------------------------------

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() {
    let config = Arc::new(parse_args(std::env::args().skip(1).collect()));

    // Connect every client before the clock starts.
    let mut streams = Vec::with_capacity(config.clients);
    for _ in 0..config.clients {
        let stream = std::net::TcpStream::connect_timeout(&config.addr, Duration::from_secs(5))
            .unwrap_or_else(|e| {
                eprintln!("loadgen: cannot connect to {}: {e}", config.addr);
                std::process::exit(1);
            });
        stream.set_nodelay(true).expect("nodelay");
        stream.set_nonblocking(true).expect("nonblocking");
        streams.push(TcpStream::from_std(stream));
    }
    // Load mode: client i writes a contiguous share of the keys.
    let load_ranges: Vec<(u64, u64)> = match config.mode {
        Mode::Load { keys, .. } => {
            let per = keys.div_ceil(config.clients as u64);
            (0..config.clients as u64)
                .map(|i| ((i * per).min(keys), ((i + 1) * per).min(keys)))
                .collect()
        }
        _ => Vec::new(),
    };

    // Clients go to threads in contiguous groups.
    let start = Instant::now() + Duration::from_millis(20);
    let per_thread = config.clients.div_ceil(config.threads);
    let mut handles = Vec::new();
    let mut first = 0;
    let mut streams = streams.into_iter();
    while first < config.clients {
        let count = per_thread.min(config.clients - first);
        let mine: Vec<TcpStream> = streams.by_ref().take(count).collect();
        let ranges = load_ranges
            .get(first..first + count)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let config = Arc::clone(&config);
        handles.push(std::thread::spawn(move || {
            run_thread(&config, mine, first, ranges, start)
        }));
        first += count;
    }
    let mut total = Stats::new();
    for handle in handles {
        match handle.join().expect("generator thread panicked") {
            Ok(stats) => total.merge(&stats),
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        }
    }
    report(&config, &total);
}

fn report(config: &Config, s: &Stats) {
    let secs = s.measured.as_secs_f64();
    let rps = s.completed as f64 / secs;
    let h = &s.latency;
    let q = |p: f64| us(h.value_at_quantile(p));
    let dialect = if config.text { "text" } else { "RESP" };
    let mut result = String::new();
    match config.mode {
        Mode::Load { keys, batch } => {
            if !config.quiet {
                println!(
                    "loadgen: {} {dialect}, load {keys} keys ({}-byte keys, {}-byte values) with \
                     MSET x{batch}, {} clients x pipeline {}",
                    config.addr,
                    config.key_size,
                    config.value_size,
                    config.clients,
                    config.pipeline
                );
                println!(
                    "{keys} keys in {secs:.2} s: {:.0} keys/s, {} MSETs, {} errors",
                    keys as f64 / secs,
                    s.completed,
                    s.errors
                );
            }
            result.push_str(&format!(
                "mode=load keys={keys} seconds={secs:.3} keys_per_s={:.0} requests={} errors={}",
                keys as f64 / secs,
                s.completed,
                s.errors
            ));
        }
        Mode::Closed | Mode::Open { .. } => {
            if !config.quiet {
                let dist = match config.dist {
                    Dist::Uniform => "uniform".to_string(),
                    Dist::Zipf(s) => format!("zipf s={s}"),
                };
                let loop_kind = match config.mode {
                    Mode::Open { rate } => format!("open loop at {rate:.0} req/s"),
                    _ => format!("closed loop, pipeline {}", config.pipeline),
                };
                println!(
                    "loadgen: {} {dialect}, {loop_kind}, {} clients, {} thread(s); GET {}% / SET \
                     {}%, {} keys ({dist}), {}-byte keys, {}-byte values",
                    config.addr,
                    config.clients,
                    config.threads,
                    config.get_percent,
                    100 - config.get_percent,
                    config.keyspace,
                    config.key_size,
                    config.value_size
                );
                println!(
                    "warm-up {:.1} s, measured {secs:.1} s: {} replies, {} errors",
                    config.warmup, s.completed, s.errors
                );
                println!("throughput: {rps:.0} req/s");
                println!(
                    "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean \
                     {:.1})",
                    q(0.5),
                    q(0.9),
                    q(0.99),
                    q(0.999),
                    us(h.max()),
                    h.mean() / 1000.0
                );
            }
            result.push_str(&format!(
                "mode={} clients={} pipeline={} get_percent={} rps={rps:.0} p50_us={:.1} \
                 p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} requests={} errors={}",
                if matches!(config.mode, Mode::Open { .. }) {
                    "open"
                } else {
                    "closed"
                },
                config.clients,
                config.pipeline,
                config.get_percent,
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                us(h.max()),
                s.completed,
                s.errors
            ));
            if let Mode::Open { rate } = config.mode {
                let send_rate = s.sent as f64 / secs;
                let lag = &s.lag;
                if !config.quiet {
                    println!(
                        "open loop: sent {send_rate:.0} req/s of {rate:.0} intended; generator \
                         lateness p99 {:.1} us, max {:.1} us; {} requests unanswered at the end",
                        us(lag.value_at_quantile(0.99)),
                        us(lag.max()),
                        s.unfinished
                    );
                    if send_rate < 0.98 * rate {
                        println!(
                            "WARNING: the generator sent {:.1}% of the intended rate: it, not \
                             the server, was the limit",
                            100.0 * send_rate / rate
                        );
                    }
                }
                result.push_str(&format!(
                    " rate={rate:.0} sent_rps={send_rate:.0} lag_p99_us={:.1} lag_max_us={:.1} \
                     unfinished={}",
                    us(lag.value_at_quantile(0.99)),
                    us(lag.max()),
                    s.unfinished
                ));
            }
        }
    }
    println!("result: {result}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded() {
        let mut out = Vec::new();
        put_key(&mut out, 42, 16);
        assert_eq!(out, b"key:000000000042");
        out.clear();
        put_key(&mut out, 0, 6);
        assert_eq!(out, b"key:00");
    }

    #[test]
    fn replies_are_framed() {
        let cases: &[(&[u8], Reply)] = &[
            (
                b"+OK\r\n",
                Reply::Complete {
                    len: 5,
                    error: false,
                },
            ),
            (
                b"-ERR x\r\n+OK",
                Reply::Complete {
                    len: 8,
                    error: true,
                },
            ),
            (
                b"$3\r\nabc\r\n",
                Reply::Complete {
                    len: 9,
                    error: false,
                },
            ),
            (
                b"$-1\r\n",
                Reply::Complete {
                    len: 5,
                    error: false,
                },
            ),
            (
                b"*2\r\n$1\r\na\r\n:5\r\n",
                Reply::Complete {
                    len: 15,
                    error: false,
                },
            ),
            (b"*2\r\n$1\r\na\r\n", Reply::Incomplete),
            (b"$3\r\nab", Reply::Incomplete),
            (b"+O", Reply::Incomplete),
        ];
        for (bytes, want) in cases {
            assert_eq!(&parse_reply(bytes, false).unwrap(), want, "{bytes:?}");
        }
        assert!(parse_reply(b"hello\r\n", false).is_err());
        assert_eq!(
            parse_reply(b"(error) ERR x\nOK\n", true).unwrap(),
            Reply::Complete {
                len: 14,
                error: true
            }
        );
    }

    #[test]
    fn requests_are_valid_resp() {
        let config = parse_args(vec!["--ratio".into(), "50:50".into()]);
        let requests = Requests::new(&config, 0);
        let mut out = Vec::new();
        requests.command(&mut out, b"SET", &[7], true);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000007\r\n$16\r\nabcdefghijklmnop\r\n"
        );
        out.clear();
        requests.command(&mut out, b"MSET", &[1, 2], true);
        assert!(out.starts_with(b"*5\r\n$4\r\nMSET\r\n"));
    }

    #[test]
    fn zipf_follows_the_power_law() {
        let (n, s) = (1000u64, 0.99);
        let zipf = Zipf::new(n, s);
        let mut rng = Rng(7);
        let mut counts = vec![0u64; n as usize + 1];
        let samples = 400_000;
        for _ in 0..samples {
            let k = zipf.sample(&mut rng);
            assert!((1..=n).contains(&k));
            counts[k as usize] += 1;
        }
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        for k in [1u64, 2, 10, 100] {
            let want = samples as f64 * (k as f64).powf(-s) / norm;
            let got = counts[k as usize] as f64;
            assert!(
                (got - want).abs() < 0.1 * want,
                "rank {k}: {got} samples, expected about {want:.0}"
            );
        }
    }

    #[test]
    fn uniform_stays_in_range() {
        let mut rng = Rng(3);
        for _ in 0..10_000 {
            assert!(rng.below(10) < 10);
        }
    }
}
