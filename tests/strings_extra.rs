//! The rest of the string family: INCRBYFLOAT and LCS compared byte for byte with a real
//! redis-server 7.0; Redis 8.4's compare-and-set (SET IFEQ/IFNE/IFDEQ/IFDNE, DELEX, DIGEST) and
//! Valkey's DELIFEQ, which Redis 7.0 lacks, against their documented bytes in RESP2, RESP3 and
//! the text dialect; their malformed forms; `inline-reply-format resp` against Redis's inline
//! replies and the real redis-benchmark; the append-only log replaying all of them; and
//! redis-py's Lock released without a script.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::{connect_pocket, text, Redis, Replies};
use common::{resp, resp_bytes, Server};

/// A long enough deadline for a debug build under qemu.
const SLOW: Duration = Duration::from_secs(60);

/// One connection to each server, and the differences found so far.
struct Diff {
    _redis: Redis,
    _pocket: Server,
    r: Replies<UnixStream>,
    p: Replies<TcpStream>,
    compared: usize,
    failures: Vec<String>,
}

impl Diff {
    /// Both servers, started with the same extra flags.
    fn start(flags: &[&str]) -> Diff {
        let redis = Redis::start(flags);
        let pocket = Server::start(flags);
        let (r, p) = (redis.connect(), connect_pocket(&pocket));
        Diff {
            _redis: redis,
            _pocket: pocket,
            r,
            p,
            compared: 0,
            failures: Vec::new(),
        }
    }

    /// Sends `requests` pipelined to both and compares every reply's bytes.
    fn compare(&mut self, requests: &[Vec<u8>]) {
        let all = requests.concat();
        self.r.send(&all);
        self.p.send(&all);
        for request in requests {
            let (r, p) = (self.r.reply(), self.p.reply());
            self.compared += 1;
            if r != p && self.failures.len() < 30 {
                self.failures.push(format!(
                    "request {:?}\n  redis:    {:?}\n  pocketkv: {:?}",
                    text(request),
                    text(&r),
                    text(&p)
                ));
            }
        }
    }

    /// Sends one request to both and reads the replies without comparing them (HELLO, whose
    /// reply describes the server).
    fn uncompared(&mut self, request: &[u8]) {
        self.r.call(request);
        self.p.call(request);
    }

    fn finish(self, at_least: usize) {
        assert!(
            self.failures.is_empty(),
            "{} of {} replies differ from Redis:\n{}",
            self.failures.len(),
            self.compared,
            self.failures.join("\n")
        );
        assert!(self.compared >= at_least, "only {} compared", self.compared);
    }
}

/// A small deterministic generator (xorshift64*), so a failure names inputs that reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn signed(&mut self, n: u64) -> i64 {
        self.below(2 * n + 1) as i64 - n as i64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'x>(&mut self, items: &[&'x str]) -> &'x str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Inputs where long double parsing, rounding or printing is delicate, or that Redis refuses.
const FLOAT_EDGES: &[&str] = &[
    "0.1",
    "0.2",
    "0.3",
    "3e17",
    "1.5",
    "-0",
    "0",
    "-0.0",
    "inf",
    "-inf",
    "+inf",
    "Infinity",
    "nan",
    "-nan",
    "1e4932",
    "1.18973149535723176502e4932",
    "1.18973149535723176503e4932",
    "1e4933",
    "1e-4950",
    "1e-4951",
    "3.6451995318824746025e-4951",
    "1.8225997659412373012e-4951",
    "1.8225997659412373013e-4951",
    "0x1p3",
    "0x1.8p-2",
    "0X1P-16445",
    "0x1p-16446",
    "0x1p16383",
    "0x1p16384",
    "0x.8p1",
    "0x",
    "0x1p",
    " 1",
    "1 ",
    "\t1",
    "1e",
    "1e+",
    "abc",
    ".5",
    "5.",
    "-.5e-3",
    "1e308",
    "4.9e-324",
    "0.000003814697265625",
    "0.0000038146972656250001",
    "2.5e-18",
    "-2.5e-17",
    "1.25e-17",
    "5e-18",
    "-5e-18",
    "1e-17",
    "123456789012345678901234567890",
    "0.30000000000000000001",
    "1.000000000000000000005",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1..2",
    "--1",
    "+-1",
    "1_000",
    "1,5",
    "",
    "\u{0}",
    "1\u{0}",
    "00001.5000",
    "0e99999999999",
    "1e-99999999999",
    "1e99999999999",
];

/// A number in one of the forms clients send: plain, fixed, scientific, long fractions.
fn float_input(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => format!("{}", (rng.unit() - 0.5) * 2e6),
        1 => format!(
            "{}.{:0w$}",
            rng.signed(1_000_000),
            rng.below(10_000_000_000_000_000_000),
            w = 1 + rng.below(20) as usize
        ),
        2 => format!("{}e{}", rng.signed(999), rng.signed(30)),
        3 => rng.pick(FLOAT_EDGES).to_string(),
        4 => {
            let scale = 10f64.powi(rng.signed(40) as i32);
            format!("{:.*e}", rng.below(25) as usize, (rng.unit() - 0.5) * scale)
        }
        5 => format!("{:.*}", rng.below(25) as usize, (rng.unit() - 0.5) * 2e3),
        _ => format!("{}", rng.signed(1 << 40)),
    }
}

#[test]
fn incrbyfloat_matches_redis_byte_for_byte() {
    let mut diff = Diff::start(&[]);
    let mut rng = Rng(0x5eed_f10a7);
    for _ in 0..40 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let (start, by) = (float_input(&mut rng), float_input(&mut rng));
            batch.push(match rng.below(10) {
                0 => resp(&["DEL", "k"]),
                _ => resp(&["SET", "k", &start]),
            });
            batch.push(resp(&["INCRBYFLOAT", "k", &by]));
            batch.push(resp(&["GET", "k"]));
        }
        diff.compare(&batch);
    }
    // Every edge against every other (and a missing key), errors included.
    for start in FLOAT_EDGES {
        let mut batch = vec![resp(&["DEL", "k"]), resp(&["INCRBYFLOAT", "k", start])];
        for by in FLOAT_EDGES {
            batch.push(resp(&["SET", "k", start]));
            batch.push(resp(&["INCRBYFLOAT", "k", by]));
        }
        diff.compare(&batch);
    }
    // Repeated small steps accumulate as Redis's do (each step re-reads the printed value).
    let mut batch = vec![resp(&["SET", "acc", "0"])];
    for _ in 0..300 {
        batch.push(resp(&["INCRBYFLOAT", "acc", "0.1"]));
    }
    batch.push(resp(&["INCRBYFLOAT", "acc", "-1e-18"]));
    diff.compare(&batch);
    // Arity and the expiry it keeps.
    diff.compare(&[
        resp(&["INCRBYFLOAT", "k"]),
        resp(&["INCRBYFLOAT", "k", "1", "2"]),
        resp(&["SET", "t", "1.5", "EX", "1000"]),
        resp(&["INCRBYFLOAT", "t", "1"]),
        resp(&["TTL", "t"]),
    ]);
    diff.finish(12_000);
}

#[test]
fn lcs_matches_redis_byte_for_byte() {
    // A small proto-max-bulk-len on both, so the table bound is reachable.
    let mut diff = Diff::start(&["--proto-max-bulk-len", "1048576"]);
    let mut rng = Rng(0x1c5);
    let options: &[&[&str]] = &[
        &[],
        &["LEN"],
        &["IDX"],
        &["idx", "withmatchlen"],
        &["IDX", "MINMATCHLEN", "2"],
        &["IDX", "MINMATCHLEN", "3", "WITHMATCHLEN"],
        &["MINMATCHLEN", "1", "IDX"],
        &["IDX", "MINMATCHLEN", "-5"],
        &["LEN", "IDX"],
        &["MINMATCHLEN"],
        &["MINMATCHLEN", "x"],
        &["MINMATCHLEN", "99999999999999999999"],
        &["foo"],
        &["LEN", "LEN"],
    ];
    for round in 0..30 {
        let mut batch = Vec::new();
        for _ in 0..60 {
            let alphabet = rng
                .pick(&["ab", "abc", "ACGT", "abcdefghij", "\u{0}\r\n "])
                .as_bytes();
            let mut word = || -> Vec<u8> {
                (0..rng.below(40))
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect()
            };
            let (a, b) = (word(), word());
            batch.push(resp_bytes(&[b"SET", b"a", &a]));
            batch.push(match rng.below(12) {
                0 => resp(&["DEL", "b"]),
                _ => resp_bytes(&[b"SET", b"b", &b]),
            });
            let mut request = vec!["LCS", "a", "b"];
            request.extend_from_slice(options[rng.below(options.len() as u64) as usize]);
            batch.push(resp(&request));
        }
        if round == 15 {
            // The same matches as RESP3 maps from here on.
            diff.uncompared(&resp(&["HELLO", "3"]));
        }
        diff.compare(&batch);
    }
    // The example from Redis's LCS page, and the table bound: 401*401*4 bytes fit in 1 MiB,
    // 601*601*4 do not.
    let (ohmytext, mynewtext) = ("ohmytext", "mynewtext");
    let (long_a, long_b) = ("x".repeat(400), "y".repeat(400));
    let (huge_a, huge_b) = ("x".repeat(600), "xy".repeat(300));
    // Long values over a small alphabet: many ties, and table rows across many words.
    let mut long = |n: u64| -> String {
        (0..n)
            .map(|_| if rng.below(3) == 0 { 'a' } else { 'b' })
            .collect()
    };
    let (mid_a, mid_b) = (long(390), long(333));
    diff.uncompared(&resp(&["HELLO", "2"]));
    diff.compare(&[
        resp(&["MSET", "key1", ohmytext, "key2", mynewtext]),
        resp(&["LCS", "key1", "key2"]),
        resp(&["LCS", "key1", "key2", "LEN"]),
        resp(&[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN",
        ]),
        resp(&["LCS", "key1"]),
        resp(&["LCS", "nokey1", "nokey2", "IDX"]),
        resp(&["MSET", "la", &long_a, "lb", &long_b]),
        resp(&["LCS", "la", "lb", "LEN"]),
        resp(&["MSET", "ma", &mid_a, "mb", &mid_b]),
        resp(&["LCS", "ma", "mb"]),
        resp(&["LCS", "ma", "mb", "IDX", "WITHMATCHLEN"]),
        resp(&["LCS", "mb", "ma", "IDX", "MINMATCHLEN", "3"]),
        resp(&["MSET", "ha", &huge_a, "hb", &huge_b]),
        resp(&["LCS", "ha", "hb"]),
        resp(&["LCS", "ha", "hb", "LEN"]),
        resp(&["LCS", "ha", "nokey"]),
    ]);
    diff.finish(5_000);
}

/// A pocketkv with RESP and text connections for exact-byte checks.
fn exact(server: &Server, request: &[u8], expected: &[u8]) {
    let mut client = server.connect();
    client.roundtrip(request, expected);
}

#[test]
fn conditional_writes_answer_the_documented_bytes_in_every_dialect() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    // Redis's DIGEST example: "Hello world" hashes to b6acb9d84a38ff74.
    c.cmd(&["SET", "k", "Hello world"], b"+OK\r\n");
    c.cmd(&["DIGEST", "k"], b"$16\r\nb6acb9d84a38ff74\r\n");
    c.cmd(&["DIGEST", "missing"], b"$-1\r\n");
    // IFEQ: set only when the value is the one given; a missing key is never created.
    c.cmd(&["SET", "k", "v2", "IFEQ", "other"], b"$-1\r\n");
    c.cmd(&["SET", "k", "v2", "IFEQ", "Hello world"], b"+OK\r\n");
    c.cmd(&["SET", "new", "v", "IFEQ", "x"], b"$-1\r\n");
    c.cmd(&["EXISTS", "new"], b":0\r\n");
    // IFNE: set unless the value is the one given; a missing key is created.
    c.cmd(&["SET", "k", "v3", "IFNE", "v2"], b"$-1\r\n");
    c.cmd(
        &["SET", "k", "v3", "ifne", "zz", "PX", "100000"],
        b"+OK\r\n",
    );
    c.cmd(&["SET", "new", "v", "IFNE", "x"], b"+OK\r\n");
    // IFDEQ/IFDNE compare digests, in either case; GET returns the old value whatever happens.
    c.cmd(&["SET", "h", "Hello world"], b"+OK\r\n");
    c.cmd(
        &["SET", "h", "x", "IFDEQ", "B6ACB9D84A38FF74", "GET"],
        b"$11\r\nHello world\r\n",
    );
    c.cmd(&["GET", "h"], b"$1\r\nx\r\n");
    c.cmd(
        &["SET", "h", "y", "IFDNE", "b6acb9d84a38ff74", "GET"],
        b"$1\r\nx\r\n",
    );
    c.cmd(&["GET", "h"], b"$1\r\ny\r\n");
    c.cmd(
        &["SET", "h", "z", "IFDEQ", "b6acb9d84a38ff74", "GET"],
        b"$1\r\ny\r\n",
    );
    c.cmd(&["GET", "h"], b"$1\r\ny\r\n");
    c.cmd(
        &["SET", "nokey", "z", "IFDNE", "0000000000000000", "GET"],
        b"$-1\r\n",
    );
    c.cmd(&["GET", "nokey"], b"$1\r\nz\r\n");
    // KEEPTTL and an expiry apply when the condition holds.
    c.cmd(&["SET", "k", "v4", "IFEQ", "v3", "KEEPTTL"], b"+OK\r\n");
    c.send(&resp(&["PTTL", "k"]));
    let ttl = c.read_line();
    assert!(
        ttl.starts_with(':') && ttl != ":-1\r\n",
        "KEEPTTL kept it: {ttl}"
    );
    // DELEX: without a condition it is DEL of one key.
    c.cmd(&["DELEX", "new"], b":1\r\n");
    c.cmd(&["DELEX", "new"], b":0\r\n");
    c.cmd(&["DELEX", "k", "IFEQ", "nope"], b":0\r\n");
    c.cmd(&["DELEX", "k", "IFNE", "v4"], b":0\r\n");
    c.cmd(&["DELEX", "k", "IfEq", "v4"], b":1\r\n");
    c.cmd(&["DELEX", "h", "IFDNE", "b6acb9d84a38ff74"], b":1\r\n");
    c.cmd(&["SET", "h", "Hello world"], b"+OK\r\n");
    c.cmd(&["DELEX", "h", "IFDEQ", "b6acb9d84a38ff75"], b":0\r\n");
    c.cmd(&["DELEX", "h", "IFDEQ", "b6acb9d84a38ff74"], b":1\r\n");
    c.cmd(&["DELEX", "gone", "IFNE", "x"], b":0\r\n");
    // Valkey's DELIFEQ.
    c.cmd(&["SET", "lock", "token"], b"+OK\r\n");
    c.cmd(&["DELIFEQ", "lock", "other"], b":0\r\n");
    c.cmd(&["DELIFEQ", "lock", "token"], b":1\r\n");
    c.cmd(&["DELIFEQ", "lock", "token"], b":0\r\n");
    // A digest with leading zeros keeps them (Redis 8.4 pads to 16 digits).
    c.cmd(&["SET", "z", "v8lf0c11xh8ymlqztfd3eeq16kfn4sspw7fqmnuuq3k3t75em5wdizgcdw7uc26nnf961u2jkfzkjytls2kwlj7626sd"], b"+OK\r\n");
    c.cmd(&["DIGEST", "z"], b"$16\r\n00006c38adf31777\r\n");
    c.cmd(&["DELEX", "z", "IFDEQ", "00006C38ADF31777"], b":1\r\n");

    // RESP3: the same replies, nil as `_`.
    let mut c3 = connect_pocket(&server);
    let hello = c3.call(&resp(&["HELLO", "3"]));
    assert!(
        hello.starts_with(b"%"),
        "HELLO 3 answers a map: {}",
        text(&hello)
    );
    for (args, expected) in [
        (&["SET", "r3", "a"][..], &b"+OK\r\n"[..]),
        (&["SET", "r3", "b", "IFEQ", "x"], b"_\r\n"),
        (&["SET", "r3", "b", "IFEQ", "a", "GET"], b"$1\r\na\r\n"),
        (&["DIGEST", "nope"], b"_\r\n"),
        (&["DELEX", "r3", "IFEQ", "b"], b":1\r\n"),
    ] {
        assert_eq!(text(&c3.call(&resp(args))), text(expected), "{args:?}");
    }

    // The text dialect.
    exact(&server, b"SET t \"hello world\"\n", b"OK\n");
    exact(&server, b"DIGEST t\n", b"d447b1ea40e6988b\n");
    exact(&server, b"SET t x IFEQ nope\n", b"(nil)\n");
    exact(&server, b"SET t x IFEQ \"hello world\"\n", b"OK\n");
    exact(&server, b"DELEX t IFNE x\n", b"(integer) 0\n");
    exact(&server, b"DELIFEQ t x\n", b"(integer) 1\n");
}

#[test]
fn malformed_conditional_writes_get_errors_and_the_connection_goes_on() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let syntax: &[u8] = b"-ERR syntax error\r\n";
    let digest: &[u8] = b"-ERR must be exactly 16 hexadecimal characters\r\n";
    let cases: &[(&[&str], &[u8])] = &[
        (&["SET", "k", "v", "IFEQ"], syntax),
        (&["SET", "k", "v", "IFEQ", "a", "NX"], syntax),
        (&["SET", "k", "v", "XX", "IFNE", "a"], syntax),
        (&["SET", "k", "v", "IFEQ", "a", "IFNE", "b"], syntax),
        (&["SET", "k", "v", "IFDEQ", "a", "IFEQ", "b"], digest),
        (&["SET", "k", "v", "IFDEQ", "0123"], digest),
        (&["SET", "k", "v", "IFDNE", "0123456789abcdef0"], digest),
        (&["SET", "k", "v", "IFEQ", "a", "EX"], syntax),
        (
            &["SET", "k", "v", "IFEQ", "a", "EX", "0"],
            b"-ERR invalid expire time in 'set' command\r\n",
        ),
        (&["GETEX", "k", "IFEQ", "a"], syntax),
        (
            &["DELEX"],
            b"-ERR wrong number of arguments for 'delex' command\r\n",
        ),
        (&["DELEX", "k", "IFEQ"], syntax),
        (&["DELEX", "k", "IFEQ", "a", "b"], syntax),
        (&["DELEX", "k", "NX", "a"], syntax),
        (&["DELEX", "k", "IFDEQ", "abc"], digest),
        (&["DELEX", "k", "IFDNE", ""], digest),
        (
            &["DIGEST"],
            b"-ERR wrong number of arguments for 'digest' command\r\n",
        ),
        (
            &["DIGEST", "a", "b"],
            b"-ERR wrong number of arguments for 'digest' command\r\n",
        ),
        (
            &["DELIFEQ", "k"],
            b"-ERR wrong number of arguments for 'delifeq' command\r\n",
        ),
        (
            &["DELIFEQ", "k", "a", "b"],
            b"-ERR wrong number of arguments for 'delifeq' command\r\n",
        ),
    ];
    for (args, expected) in cases {
        c.cmd(args, expected);
        c.cmd(&["PING"], b"+PONG\r\n");
    }
    c.cmd(&["SET", "k", "v", "IFEQ", "a", "IFEQ", "v"], b"$-1\r\n");
    c.cmd(&["EXISTS", "k"], b":0\r\n");
    // Every new command is in COMMAND INFO with its arity and flags, and in HELP.
    for (name, head) in [
        ("digest", "*1\r\n*10\r\n$6\r\ndigest\r\n:2\r\n"),
        ("delex", "*1\r\n*10\r\n$5\r\ndelex\r\n:-2\r\n"),
        ("delifeq", "*1\r\n*10\r\n$7\r\ndelifeq\r\n:3\r\n"),
        ("incrbyfloat", "*1\r\n*10\r\n$11\r\nincrbyfloat\r\n:3\r\n"),
        ("lcs", "*1\r\n*10\r\n$3\r\nlcs\r\n:-3\r\n"),
    ] {
        c.send(&resp(&["COMMAND", "INFO", name]));
        c.expect(head.as_bytes());
        c.send(&resp(&["PING"]));
        let mut rest = Vec::new();
        while !rest.ends_with(b"+PONG\r\n") {
            rest.extend(c.read_n(1));
        }
    }
    let mut help = server.connect();
    help.send(b"HELP\n");
    let mut text = Vec::new();
    while !String::from_utf8_lossy(&text).contains("DELIFEQ") {
        text.extend(help.read_n(1));
    }
}

#[test]
fn inline_lines_are_answered_like_redis_under_inline_reply_format_resp() {
    let redis = Redis::start(&[]);
    let pocket = Server::start(&["--inline-reply-format", "resp"]);
    let lines: &[&[u8]] = &[
        b"PING\r\n",
        b"PING hello\n",
        b"SET a \"x y\"\r\n",
        b"GET a\r\n",
        b"SET n 10\r\n",
        b"INCR n\r\n",
        b"INCRBYFLOAT n 0.5\r\n",
        b"MGET a n missing\r\n",
        b"GET\r\n",
        b"NOSUCHCOMMAND x\r\n",
        b"SET 'q' \"\\x41\\n\"\r\n",
        b"GET q\r\n",
        b"LCS a n IDX\r\n",
        b"   \r\n",
        b"HELLO 3\r\n",
        b"GET missing\r\n",
        b"MGET a missing\r\n",
    ];
    let (mut r, mut p) = (redis.connect(), connect_pocket(&pocket));
    let mut failures = Vec::new();
    for line in lines {
        r.send(line);
        p.send(line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        let (from_redis, from_pocket) = (r.reply(), p.reply());
        // HELLO's map describes the server; only its kind and size must agree.
        let comparable = |reply: Vec<u8>| match line.starts_with(b"HELLO") {
            true => reply[..3].to_vec(),
            false => reply,
        };
        if comparable(from_redis.clone()) != comparable(from_pocket.clone()) {
            failures.push(format!(
                "{:?}: redis {:?}, pocketkv {:?}",
                text(line),
                text(&from_redis),
                text(&from_pocket)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // CONFIG GET/SET switch it while the server runs; new lines follow at once.
    let mut c = pocket.connect();
    c.cmd(
        &["CONFIG", "GET", "inline-reply-format"],
        b"*2\r\n$19\r\ninline-reply-format\r\n$4\r\nresp\r\n",
    );
    c.cmd(
        &["CONFIG", "SET", "inline-reply-format", "human"],
        b"+OK\r\n",
    );
    c.roundtrip(b"PING\r\n", b"PONG\n");
    c.roundtrip(b"GET a\r\n", b"\"x y\"\n");
    c.cmd(
        &["CONFIG", "SET", "inline-reply-format", "RESP"],
        b"+OK\r\n",
    );
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    c.send(&resp(&["CONFIG", "SET", "inline-reply-format", "json"]));
    let error = c.read_line();
    assert!(error.starts_with("-ERR"), "a bad value is refused: {error}");
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    // Framing errors of a text line are answered in RESP too.
    c.roundtrip(
        b"GET \"unbalanced\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    // A line past the inline limit loses the framing: Redis's error, in RESP, then the close.
    let mut long = pocket.connect();
    long.send(&vec![b'a'; 70 * 1024]);
    long.expect(b"-ERR Protocol error: too big inline request\r\n");
    long.expect_closed();

    // The default is human.
    let human = Server::start(&[]);
    exact(&human, b"PING\r\n", b"PONG\n");
}

#[test]
fn redis_benchmark_ping_inline_runs_against_inline_reply_format_resp() {
    let server = Server::start(&["--inline-reply-format", "resp"]);
    let port = server.addr.port().to_string();
    let mut child = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "ping_inline",
            "-n",
            "2000",
        ])
        .args(["-c", "4", "--csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-benchmark on PATH; run `bash ci/install-deps.sh`");
    let deadline = Instant::now() + SLOW;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("redis-benchmark -t ping_inline did not finish within {SLOW:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("output");
    assert!(status.success(), "redis-benchmark failed: {out}");
    let row = out
        .lines()
        .find(|line| line.starts_with("\"PING_INLINE\""))
        .unwrap_or_else(|| panic!("no PING_INLINE row in:\n{out}"));
    let rps: f64 = row
        .split(',')
        .nth(1)
        .and_then(|v| v.trim_matches('"').parse().ok())
        .expect("rps");
    assert!(rps > 0.0, "{row}");
    let processed = server
        .connect()
        .info_field("stats", "total_commands_processed");
    assert!(
        processed.parse::<u64>().is_ok_and(|n| n >= 2000),
        "{processed}"
    );
}

/// Every key with its value and absolute expiry time (ms), sorted.
fn keyspace(server: &Server) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = connect_pocket(server);
    let keys = c.call(&resp(&["KEYS", "*"]));
    let mut out = Vec::new();
    let mut pos = keys.windows(2).position(|w| w == b"\r\n").expect("header") + 2;
    while pos < keys.len() {
        let end = common::redis::reply_end(&keys, pos).expect("key");
        let raw = &keys[pos..end];
        let start = raw.windows(2).position(|w| w == b"\r\n").expect("len") + 2;
        let key = raw[start..raw.len() - 2].to_vec();
        let value = c.call(&resp_bytes(&[b"GET", &key]));
        let at = c.call(&resp_bytes(&[b"PEXPIRETIME", &key]));
        out.push((key, [value, at].concat()));
        pos = end;
    }
    out.sort();
    out
}

#[test]
fn the_log_replays_conditional_writes_and_float_increments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut server = Server::start_in(dir.path(), &flags);
    let mut c = server.connect();
    let steps: &[&[&str]] = &[
        &["SET", "f", "10.5", "PX", "3600000"],
        &["INCRBYFLOAT", "f", "0.1"],
        &["INCRBYFLOAT", "g", "3e17"],
        &["INCRBYFLOAT", "g", "1.5"],
        &["INCRBYFLOAT", "g", "nope"],
        &["SET", "c", "one"],
        &["SET", "c", "two", "IFEQ", "one", "PX", "7200000"],
        &["SET", "c", "three", "IFEQ", "one"],
        &["SET", "d", "x", "IFNE", "y"],
        &["SET", "d", "z", "IFDEQ", "0000000000000000"],
        &["SET", "e", "gone"],
        &["DELEX", "e", "IFEQ", "gone"],
        &["SET", "e2", "kept"],
        &["DELEX", "e2", "IFEQ", "other"],
        &["SET", "l", "token"],
        &["DELIFEQ", "l", "token"],
        &["SET", "m", "plain"],
        &["DELEX", "m"],
    ];
    for step in steps {
        c.send(&resp(step));
        let reply = c.read_line();
        if reply.starts_with('$') && reply != "$-1\r\n" {
            c.read_line();
        }
    }
    let before = keyspace(&server);
    assert_eq!(before.len(), 5, "f g c d e2: {before:?}");
    server.signal("KILL");
    server.wait_exit();
    // The log holds what Redis propagates: SET ... KEEPTTL and DEL, never the commands whose
    // result depends on the state they ran in.
    let mut log = Vec::new();
    for entry in std::fs::read_dir(dir.path())
        .expect("dir")
        .map_while(Result::ok)
    {
        if entry.file_name().to_string_lossy().contains("aof") {
            log.extend(std::fs::read(entry.path()).expect("log"));
        }
    }
    let has = |needle: &[u8]| log.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"KEEPTTL") && has(b"$20\r\n300000000000000001.5"),
        "float results logged"
    );
    assert!(!has(b"INCRBYFLOAT") && !has(b"DELEX") && !has(b"DELIFEQ") && !has(b"IFEQ"));
    let server = Server::start_in(dir.path(), &flags);
    assert_eq!(keyspace(&server), before, "replay gives the same keyspace");
}

#[test]
fn redis_py_lock_is_released_without_a_script() {
    for redis_py in common::python::REDIS_PY {
        let server = Server::start(&[]);
        let output = redis_py
            .python()
            .arg(common::python::script("redis_py_lock.py"))
            .arg(server.addr.port().to_string())
            .output()
            .expect("python3");
        assert!(
            output.status.success() && output.stdout == b"ok\n",
            "the lock script failed with {}:\n{}{}",
            redis_py.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
