//! Pub/Sub load: N subscribers on one channel, one publisher. Prints one line of figures.
//!
//! 1. Throughput: the publisher pipelines PUBLISH 16 deep for `--seconds`; the figure is PUBLISH
//!    replies per second, and messages actually read by the subscribers per second (counted until
//!    they have all arrived).
//! 2. Latency: PUBLISH at a fixed rate (`--rate`, default 200,000 deliveries a second spread over
//!    the subscribers, at most 5,000 publishes a second); each payload carries its send time, and
//!    every delivery's latency (send to read by the subscriber) goes into a histogram: p50, p99.
//!
//! Subscribers are read by one thread with mio; the publisher is another. Loopback only; the
//! payload is 20 bytes; not measured: patterns, many channels, slow subscribers.
//!
//! Usage: pubsub --addr 127.0.0.1:6379 --subscribers 100 [--seconds 2] [--rate N]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};

const CHANNEL: &str = "bench";
const SUBSCRIBED: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
/// A message frame: the 20 digits of the send time sit at `DIGITS_AT`.
const HEAD: &[u8] = b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$20\r\n";
const DIGITS_AT: usize = HEAD.len();
const FRAME: usize = HEAD.len() + 20 + 2;

struct Shared {
    base: Instant,
    delivered: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
    latency: Mutex<Histogram<u64>>,
}

fn main() -> io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:6379".parse().expect("address");
    let (mut subscribers, mut seconds, mut rate) = (1usize, 2.0f64, 0u64);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        match pair[0].as_str() {
            "--addr" => addr = value.parse().expect("--addr host:port"),
            "--subscribers" => subscribers = value.parse().expect("--subscribers N"),
            "--seconds" => seconds = value.parse().expect("--seconds S"),
            "--rate" => rate = value.parse().expect("--rate N"),
            other => panic!("unknown argument {other}"),
        }
    }
    if rate == 0 {
        rate = (200_000 / subscribers as u64).clamp(1, 5000);
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        delivered: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")),
    });
    let mut subs = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.write_all(format!("*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\n{CHANNEL}\r\n").as_bytes())?;
        let mut confirm = vec![0; SUBSCRIBED.len()];
        s.read_exact(&mut confirm)?;
        assert_eq!(confirm, SUBSCRIBED, "subscribe confirmation");
        s.set_nonblocking(true)?;
        subs.push(mio::net::TcpStream::from_std(s));
    }
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || read_all(subs, &shared))
    };
    let mut publisher = TcpStream::connect(addr)?;
    publisher.set_nodelay(true)?;

    // 1. Throughput.
    let window = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut published = 0u64;
    let mut batch = Vec::new();
    while started.elapsed() < window {
        batch.clear();
        for _ in 0..16 {
            push_publish(&mut batch, &shared);
        }
        publisher.write_all(&batch)?;
        read_replies(&mut publisher, 16)?;
        published += 16;
    }
    let took = started.elapsed();
    let expected = published * subscribers as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let all_read = started.elapsed();
    let delivered = shared.delivered.load(Ordering::Relaxed);

    // 2. Latency at a fixed rate.
    shared.measuring.store(true, Ordering::Relaxed);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let paced_start = Instant::now();
    let mut next = paced_start;
    let mut paced = 0u64;
    while paced_start.elapsed() < window {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += period;
        batch.clear();
        push_publish(&mut batch, &shared);
        publisher.write_all(&batch)?;
        read_replies(&mut publisher, 1)?;
        paced += 1;
    }
    let target = delivered + paced * subscribers as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.delivered.load(Ordering::Relaxed) < target && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let hist = shared.latency.lock().expect("histogram");
    println!(
        "subscribers={subscribers} publish_per_sec={:.0} delivered_per_sec={:.0} lost={} \
         paced_rate={rate} latency_p50_us={:.0} latency_p99_us={:.0} samples={}",
        published as f64 / took.as_secs_f64(),
        delivered as f64 / all_read.as_secs_f64(),
        expected.saturating_sub(delivered),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.len(),
    );
    Ok(())
}

fn push_publish(out: &mut Vec<u8>, shared: &Shared) {
    let sent = shared.base.elapsed().as_nanos() as u64;
    out.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$20\r\n");
    out.extend_from_slice(format!("{sent:020}").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Reads `n` integer replies (`:<count>\r\n`).
fn read_replies(stream: &mut TcpStream, n: usize) -> io::Result<()> {
    let mut seen = 0;
    let mut byte = [0u8; 256];
    while seen < n {
        let got = stream.read(&mut byte)?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        seen += byte[..got].iter().filter(|&&b| b == b'\n').count();
    }
    Ok(())
}

/// Reads every subscriber until told to stop: cuts fixed-size message frames, counts them, and
/// records their latency while measuring.
fn read_all(mut subs: Vec<mio::net::TcpStream>, shared: &Shared) {
    let mut poll = Poll::new().expect("poll");
    for (i, s) in subs.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .expect("register");
    }
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); subs.len()];
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut latencies = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(10)));
        for event in events.iter() {
            let i = event.token().0;
            loop {
                match subs[i].read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buffers[i].extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            let now = shared.base.elapsed().as_nanos() as u64;
            let buf = &mut buffers[i];
            let frames = buf.len() / FRAME;
            if shared.measuring.load(Ordering::Relaxed) {
                for f in 0..frames {
                    let digits = &buf[f * FRAME + DIGITS_AT..f * FRAME + DIGITS_AT + 20];
                    let sent: u64 = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(now);
                    latencies.push(now.saturating_sub(sent).max(1));
                }
            }
            buf.drain(..frames * FRAME);
            shared.delivered.fetch_add(frames as u64, Ordering::Relaxed);
        }
        if !latencies.is_empty() {
            let mut hist = shared.latency.lock().expect("histogram");
            for l in latencies.drain(..) {
                let _ = hist.record(l);
            }
        }
    }
}
