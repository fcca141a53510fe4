//! Pipelining and fragmentation against the real binary: thousands of requests in one write, a
//! request stream cut at every byte, and a multi-megabyte value trickling in small writes.
//! Every reply is checked byte for byte and in order.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::thread;

use common::{resp, resp_bytes, Client, Server};

/// Reads exactly `expected.len()` bytes and compares them, reporting the first difference (or
/// where the stream ended) with some context instead of dumping megabytes.
fn expect_exact(client: &mut Client, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    let mut filled = 0;
    while filled < expected.len() {
        let ended = match client.stream.read(&mut got[filled..]) {
            Ok(0) => Some("closed".to_string()),
            Ok(n) => {
                filled += n;
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = ended {
            let tail = &got[filled.saturating_sub(80)..filled];
            let matched = got[..filled] == expected[..filled];
            panic!(
                "connection {why} after {filled} of {} bytes (all matching: {matched}); \
                 last bytes: {:?}",
                expected.len(),
                String::from_utf8_lossy(tail)
            );
        }
    }
    if let Some(at) = got.iter().zip(expected).position(|(a, b)| a != b) {
        let from = at.saturating_sub(60);
        let to = (at + 60).min(expected.len());
        panic!(
            "replies differ at byte {at} of {}:\n expected …{:?}…\n      got …{:?}…",
            expected.len(),
            String::from_utf8_lossy(&expected[from..to]),
            String::from_utf8_lossy(&got[from..to]),
        );
    }
}

/// Sends `request` in one `write_all` from another thread while this one reads the replies, so
/// neither side can stall on a full socket buffer.
fn send_all_and_expect(client: &mut Client, request: Vec<u8>, expected: &[u8]) {
    let mut writer = client.stream.try_clone().expect("clone stream");
    let sender = thread::spawn(move || writer.write_all(&request).expect("one big write"));
    expect_exact(client, expected);
    sender.join().expect("writer thread");
}

/// A model of the data the pipelined commands touch, to compute each exact reply.
#[derive(Default)]
struct Model {
    values: HashMap<String, String>,
    counter: i64,
}

/// One step of the mixed workload: which command to run for request `i`.
enum Step {
    Set(String, String),
    Incr,
    Get(String),
}

fn step(i: usize) -> Step {
    match i % 3 {
        0 => Step::Set(format!("key:{}", i % 97), format!("value-{i}")),
        1 => Step::Incr,
        // Some keys were set, some were never set (`key:97` and up), so both hits and misses.
        _ => Step::Get(format!("key:{}", (i * 7) % 131)),
    }
}

const PIPELINE: usize = 10_000;

#[test]
fn ten_thousand_resp_commands_in_one_write() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut model = Model::default();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..PIPELINE {
        match step(i) {
            Step::Set(key, value) => {
                request.extend(resp(&["SET", &key, &value]));
                expected.extend_from_slice(b"+OK\r\n");
                model.values.insert(key, value);
            }
            Step::Incr => {
                request.extend(resp(&["INCR", "counter"]));
                model.counter += 1;
                expected.extend(format!(":{}\r\n", model.counter).into_bytes());
            }
            Step::Get(key) => {
                request.extend(resp(&["GET", &key]));
                match model.values.get(&key) {
                    Some(value) => expected.extend(common::bulk(value)),
                    None => expected.extend_from_slice(b"$-1\r\n"),
                }
            }
        }
    }
    send_all_and_expect(&mut client, request, &expected);
    // The connection is still in step afterwards, and the data is what the model says.
    client.cmd(
        &["GET", "counter"],
        &common::bulk(&model.counter.to_string()),
    );
    client.cmd(
        &["DBSIZE"],
        format!(":{}\r\n", model.values.len() + 1).as_bytes(),
    );
}

#[test]
fn ten_thousand_text_commands_in_one_write() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut model = Model::default();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..PIPELINE {
        // Alternate line endings: redis-cli style CRLF and bare LF.
        let end = if i % 2 == 0 { "\r\n" } else { "\n" };
        match step(i) {
            Step::Set(key, value) => {
                request.extend(format!("SET {key} {value}{end}").into_bytes());
                expected.extend_from_slice(b"OK\n");
                model.values.insert(key, value);
            }
            Step::Incr => {
                request.extend(format!("INCR counter{end}").into_bytes());
                model.counter += 1;
                expected.extend(format!("(integer) {}\n", model.counter).into_bytes());
            }
            Step::Get(key) => {
                request.extend(format!("GET {key}{end}").into_bytes());
                match model.values.get(&key) {
                    // Values like `value-12` are printed bare, as redis-cli does.
                    Some(value) => expected.extend(format!("{value}\n").into_bytes()),
                    None => expected.extend_from_slice(b"(nil)\n"),
                }
            }
        }
    }
    send_all_and_expect(&mut client, request, &expected);
    client.roundtrip(b"GET counter\n", format!("{}\n", model.counter).as_bytes());
}

/// Requests in both dialects, each with its exact reply. Replaying the list gives the same
/// replies again, so one connection can run it once per split position.
fn mixed_script() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (resp(&["PING"]), b"+PONG\r\n".to_vec()),
        // A value holding CRLF: only the length prefix says where it ends.
        (resp(&["SET", "a", "va\r\nl"]), b"+OK\r\n".to_vec()),
        (resp(&["GET", "a"]), b"$5\r\nva\r\nl\r\n".to_vec()),
        (b"PUT b \"hello world\"\r\n".to_vec(), b"OK\n".to_vec()),
        (b"GET b\n".to_vec(), b"\"hello world\"\n".to_vec()),
        // An empty multibulk and a blank line are no requests: nothing comes back.
        (b"*0\r\n".to_vec(), Vec::new()),
        (b"\r\n".to_vec(), Vec::new()),
        (resp(&["SET", "n", "41"]), b"+OK\r\n".to_vec()),
        (b"INCR n\n".to_vec(), b"(integer) 42\n".to_vec()),
        (resp(&["INCR", "n"]), b":43\r\n".to_vec()),
        (
            resp_bytes(&[b"ECHO", b"\xff\x00bin"]),
            b"$5\r\n\xff\x00bin\r\n".to_vec(),
        ),
        (
            b"ECHO \"\\xff\\x00\"\n".to_vec(),
            b"\"\\xff\\x00\"\n".to_vec(),
        ),
        (resp(&["SET", "e", ""]), b"+OK\r\n".to_vec()),
        (resp(&["GET", "e"]), b"$0\r\n\r\n".to_vec()),
        (b"GET e\r\n".to_vec(), b"\"\"\n".to_vec()),
        (
            resp(&["MGET", "a", "missing", "n"]),
            b"*3\r\n$5\r\nva\r\nl\r\n$-1\r\n$2\r\n43\r\n".to_vec(),
        ),
        (b"DEL missing b\n".to_vec(), b"(integer) 1\n".to_vec()),
        (resp(&["EXISTS", "b"]), b":0\r\n".to_vec()),
        (b"PING\n".to_vec(), b"PONG\n".to_vec()),
    ]
}

#[test]
fn one_byte_at_a_time_gives_exact_replies() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    for (request, reply) in mixed_script() {
        for &byte in &request {
            client.send(&[byte]);
        }
        // The reply comes once the last byte is in, without anything after it: a reply that
        // waited for more input would time out here.
        client.expect(&reply);
    }
    // And the whole stream again, as one unbroken sequence of single bytes, with the replies read
    // only at the end.
    let script = mixed_script();
    let expected: Vec<u8> = script.iter().flat_map(|(_, r)| r.clone()).collect();
    for (request, _) in &script {
        for &byte in request {
            client.send(&[byte]);
        }
    }
    expect_exact(&mut client, &expected);
}

#[test]
fn two_writes_split_at_every_byte_position() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let script = mixed_script();
    let mut stream = Vec::new();
    // (end offset of each request in `stream`, its reply)
    let mut ends = Vec::new();
    for (request, reply) in &script {
        stream.extend_from_slice(request);
        ends.push((stream.len(), reply.clone()));
    }
    for cut in 0..=stream.len() {
        client.send(&stream[..cut]);
        // Every request wholly inside the first write is answered before the second is sent,
        // so the server really sees the cut.
        let first: Vec<u8> = ends
            .iter()
            .filter(|(end, _)| *end <= cut)
            .flat_map(|(_, reply)| reply.clone())
            .collect();
        expect_exact(&mut client, &first);
        client.send(&stream[cut..]);
        let rest: Vec<u8> = ends
            .iter()
            .filter(|(end, _)| *end > cut)
            .flat_map(|(_, reply)| reply.clone())
            .collect();
        expect_exact(&mut client, &rest);
    }
    client.cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn five_megabyte_value_in_many_small_writes() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut other = server.connect();
    const SIZE: usize = 5 * 1024 * 1024;
    // Every byte value, CR and LF included, in a pattern that shows misplaced chunks.
    let value: Vec<u8> = (0..SIZE)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    let request = resp_bytes(&[b"SET", b"big", &value]);
    for (n, chunk) in request.chunks(4093).enumerate() {
        client.send(chunk);
        if n == 100 {
            // Mid-value, another client is served normally.
            other.cmd(&["PING"], b"+PONG\r\n");
        }
    }
    client.expect(b"+OK\r\n");
    client.cmd(&["STRLEN", "big"], format!(":{SIZE}\r\n").as_bytes());
    client.send(&resp(&["GET", "big"]));
    let mut expected = format!("${SIZE}\r\n").into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\n");
    expect_exact(&mut client, &expected);
    // The connection is in step after the big reply.
    client.cmd(&["PING"], b"+PONG\r\n");
    other.cmd(&["GETRANGE", "big", "0", "3"], &{
        let mut head = b"$4\r\n".to_vec();
        head.extend_from_slice(&value[..4]);
        head.extend_from_slice(b"\r\n");
        head
    });
}

#[test]
fn a_long_pipeline_with_big_replies_stays_under_a_small_query_buffer_limit() {
    // Each request is 22 bytes, each reply about 2 KB, and the client reads every reply as it
    // comes. Redis runs every complete request of a read before reading again, so its query
    // buffer never holds more than one read plus a partial request, whatever the pipeline's
    // length. pocketkv runs ~64 KiB of replies' worth (about 30 GETs, 700 bytes of input) per
    // turn but reads 16 KiB or more each turn, so the buffered input grows with the pipeline.
    let server = Server::start(&["--client-query-buffer-limit", "100000"]);
    let mut client = server.connect();
    let value = "x".repeat(2000);
    client.cmd(&["SET", "v", &value], b"+OK\r\n");
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..PIPELINE {
        request.extend(resp(&["GET", "v"]));
        expected.extend(common::bulk(&value));
    }
    let mut writer = client.stream.try_clone().expect("clone stream");
    // The write may fail once the server cuts the connection; the reader reports that.
    let sender = thread::spawn(move || writer.write_all(&request).is_ok());
    expect_exact(&mut client, &expected);
    assert!(sender.join().expect("writer thread"));
}
