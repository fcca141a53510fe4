//! redis-py's `pubsub()` against pocketkv, unchanged: `subscribe`, `psubscribe`, `get_message`,
//! `listen`, keyspace notifications, unsubscribing; with Debian's redis-py 4.3.4 (RESP2) and
//! redis-py 8.2.0 (RESP3 by default: the messages arrive as push frames). Both come from
//! `bash ci/install-deps.sh` (tests/common/python.rs).

mod common;

use common::python::REDIS_PY;
use common::Server;

const SCRIPT: &str = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
p = r.pubsub()
p.subscribe("news")
p.psubscribe("n*")
first = p.get_message(timeout=10)
assert first == {"type": "subscribe", "pattern": None, "channel": b"news", "data": 1}, first
second = p.get_message(timeout=10)
assert second == {"type": "psubscribe", "pattern": None, "channel": b"n*", "data": 2}, second
assert r.publish("news", "hello") == 2
got = [p.get_message(ignore_subscribe_messages=True, timeout=10) for _ in range(2)]
assert got[0] == {"type": "message", "pattern": None, "channel": b"news", "data": b"hello"}, got
assert got[1] == {"type": "pmessage", "pattern": b"n*", "channel": b"news", "data": b"hello"}, got
assert r.pubsub_numsub("news") == [(b"news", 1)]
assert r.pubsub_numpat() == 1
assert r.pubsub_channels() == [b"news"]
r.publish("nope", "x")
r.publish("news", "bye")
seen = []
for message in p.listen():
    seen.append((message["type"], message["channel"], message["data"]))
    if len(seen) == 3:
        break
assert seen == [("pmessage", b"nope", b"x"), ("message", b"news", b"bye"), ("pmessage", b"news", b"bye")], seen
p.ping()
assert p.get_message(timeout=10)["data"] == b""
p.unsubscribe()
p.punsubscribe()
types = {p.get_message(timeout=10)["type"] for _ in range(2)}
assert types == {"unsubscribe", "punsubscribe"}, types
p.close()

# Keyspace notifications, as users follow them.
r.config_set("notify-keyspace-events", "KEA")
assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
events = r.pubsub(ignore_subscribe_messages=True)
events.psubscribe("__keyspace@0__:*")
events.get_message(timeout=10)
r.set("k", "1")
r.incr("k")
r.delete("k")
kinds = [events.get_message(timeout=10)["data"] for _ in range(3)]
assert kinds == [b"set", b"incrby", b"del"], kinds
events.close()

# A callback thread, as redis-py runs handlers.
import threading
done = threading.Event()
p = r.pubsub()
p.subscribe(**{"jobs": lambda message: done.set()})
worker = p.run_in_thread(sleep_time=0.01)
while r.publish("jobs", "go") == 0:
    pass
assert done.wait(10)
worker.stop()
print("ok")
"#;

#[test]
fn redis_py_pubsub_works_unchanged() {
    for redis_py in REDIS_PY {
        let server = Server::start(&[]);
        let output = redis_py
            .python()
            .arg("-c")
            .arg(SCRIPT)
            .arg(server.addr.port().to_string())
            .output()
            .expect("python3");
        assert!(
            output.status.success() && output.stdout == b"ok\n",
            "{} failed:\n{}{}",
            redis_py.name(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
