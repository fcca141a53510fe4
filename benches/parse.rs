//! Micro-benchmark of the wire formats: `parse_request` on RESP and text requests, and
//! `encode_reply` in both dialects. Plain `std::time::Instant`, no dependencies.
//!
//! `cargo bench --bench parse [-- FILTER]` warms each case up, sizes a batch to take about
//! 5 ms, times 15 batches and prints the median ns/op with the fastest and slowest batch.
//! Under `cargo test --all-targets` (no `--bench` argument) it only checks every case once and
//! times a few iterations, so the test run stays fast.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use pocketkv::protocol::{encode_reply, parse_request, Dialect, Limits, Reply};

/// One thing to time: `run` does `ops` operations per call.
struct Case {
    name: String,
    ops: u64,
    run: Box<dyn FnMut()>,
}

/// Parses every request in `input` back to back; checks the count and argument counts first.
fn parse_case(name: &str, input: Vec<u8>, argc: usize, requests: u64) -> Case {
    let limits = Limits::default();
    // Check once, outside the timing, that the input parses as intended.
    let mut at = 0;
    let mut seen = 0;
    while at < input.len() {
        let (request, used) = parse_request(&input[at..], &limits)
            .unwrap_or_else(|e| panic!("{name}: does not parse at byte {at}: {e:?}"));
        assert_eq!(request.args.len(), argc, "{name}: argument count");
        at += used;
        seen += 1;
    }
    assert_eq!(seen, requests, "{name}: request count");
    Case {
        name: name.to_string(),
        ops: requests,
        run: Box::new(move || {
            let input = black_box(&input[..]);
            let mut at = 0;
            while at < input.len() {
                match parse_request(&input[at..], &limits) {
                    Ok((request, used)) => {
                        black_box(&request);
                        at += used;
                    }
                    Err(_) => unreachable!("checked above"),
                }
            }
        }),
    }
}

/// Encodes `reply` into a reused buffer; checks the exact bytes first.
fn encode_case(name: &str, reply: Reply<'static>, dialect: Dialect, expected: &[u8]) -> Case {
    let mut out = Vec::with_capacity(4096);
    encode_reply(&reply, dialect, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected),
        "{name}: encoded bytes"
    );
    Case {
        name: name.to_string(),
        ops: 1,
        run: Box::new(move || {
            out.clear();
            encode_reply(black_box(&reply), dialect, &mut out);
            black_box(&out);
        }),
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn cases() -> Vec<Case> {
    let key = b"key:000000000042";
    let value = [b'x'; 64];
    let mut pipeline = Vec::new();
    for i in 0..16 {
        pipeline.extend(resp(&[b"GET", format!("key:{i:012}").as_bytes()]));
    }
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    let pairs: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    for k in &pairs {
        mset.push(k);
        mset.push(b"value-of-sixteen");
    }
    let mut text_pipeline = Vec::new();
    for i in 0..16 {
        text_pipeline.extend(format!("GET key:{i:012}\n").into_bytes());
    }
    let mget = Reply::Array(
        (0..10)
            .map(|i| {
                if i == 3 {
                    Reply::Nil
                } else {
                    Reply::Bulk(Cow::Owned(b"value-of-sixteen".to_vec()))
                }
            })
            .collect(),
    );
    let mut mget_resp = b"*10\r\n".to_vec();
    let mut mget_text = Vec::new();
    for i in 0..10 {
        if i == 3 {
            mget_resp.extend_from_slice(b"$-1\r\n");
            mget_text.extend_from_slice(format!("{:>2}) (nil)\n", i + 1).as_bytes());
        } else {
            mget_resp.extend_from_slice(b"$16\r\nvalue-of-sixteen\r\n");
            mget_text.extend_from_slice(format!("{:>2}) value-of-sixteen\n", i + 1).as_bytes());
        }
    }
    let bulk64 = Reply::Bulk(Cow::Owned(value.to_vec()));
    let mut bulk64_resp = b"$64\r\n".to_vec();
    bulk64_resp.extend_from_slice(&value);
    bulk64_resp.extend_from_slice(b"\r\n");

    vec![
        parse_case("parse resp GET", resp(&[b"GET", key]), 2, 1),
        parse_case(
            "parse resp SET 64B value",
            resp(&[b"SET", key, &value]),
            3,
            1,
        ),
        parse_case("parse resp MSET 10 pairs", resp(&mset), 21, 1),
        parse_case("parse resp GET x16 pipeline (per req)", pipeline, 2, 16),
        parse_case("parse text GET", b"GET key:000000000042\n".to_vec(), 2, 1),
        parse_case("parse text PUT", b"PUT name Alice\r\n".to_vec(), 3, 1),
        parse_case(
            "parse text SET quoted",
            b"SET greeting \"hello world\\n\" \n".to_vec(),
            3,
            1,
        ),
        parse_case("parse text GET x16 (per req)", text_pipeline, 2, 16),
        encode_case("encode resp +OK", Reply::OK, Dialect::Resp, b"+OK\r\n"),
        encode_case(
            "encode resp bulk 64B",
            bulk64.clone(),
            Dialect::Resp,
            &bulk64_resp,
        ),
        encode_case("encode resp nil", Reply::Nil, Dialect::Resp, b"$-1\r\n"),
        encode_case(
            "encode resp integer",
            Reply::Integer(1_234_567),
            Dialect::Resp,
            b":1234567\r\n",
        ),
        encode_case(
            "encode resp MGET 10",
            mget.clone(),
            Dialect::Resp,
            &mget_resp,
        ),
        encode_case("encode text OK", Reply::OK, Dialect::Text, b"OK\n"),
        encode_case(
            "encode text bulk 64B",
            bulk64,
            Dialect::Text,
            &[&value[..], b"\n"].concat(),
        ),
        encode_case(
            "encode text integer",
            Reply::Integer(1_234_567),
            Dialect::Text,
            b"(integer) 1234567\n",
        ),
        encode_case("encode text MGET 10", mget, Dialect::Text, &mget_text),
    ]
}

/// Times `case` and returns ns/op for each of `samples` batches.
fn measure(case: &mut Case, warmup: Duration, batch_target: Duration, samples: usize) -> Vec<f64> {
    // Warm up caches, branch predictors and the allocator, and size a batch while at it.
    let mut batch: u64 = 1;
    let started = Instant::now();
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            (case.run)();
        }
        let took = t.elapsed();
        if started.elapsed() >= warmup && took >= batch_target {
            break;
        }
        if took < batch_target {
            batch = batch.saturating_mul(2);
        }
    }
    let mut results: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                (case.run)();
            }
            t.elapsed().as_nanos() as f64 / (batch * case.ops) as f64
        })
        .collect();
    results.sort_by(f64::total_cmp);
    results
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test` runs this binary without it.
    let full = args.iter().any(|a| a == "--bench");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let mut cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect();

    if !full {
        for case in &mut cases {
            for _ in 0..100 {
                (case.run)();
            }
        }
        println!(
            "parse bench: {} cases checked (smoke run; `cargo bench --bench parse` times them)",
            cases.len()
        );
        return;
    }

    const SAMPLES: usize = 15;
    println!(
        "pocketkv protocol micro-benchmark: median of {SAMPLES} batches of ~5 ms each, \
         after a 200 ms warm-up per case"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>10}",
        "case", "median ns", "min ns", "max ns", "Mops/s"
    );
    for case in &mut cases {
        let ns = measure(
            case,
            Duration::from_millis(200),
            Duration::from_millis(5),
            SAMPLES,
        );
        let median = ns[ns.len() / 2];
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>10.1} {:>10.2}",
            case.name,
            median,
            ns[0],
            ns[ns.len() - 1],
            1e3 / median
        );
    }
}
