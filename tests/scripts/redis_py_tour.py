"""What a new redis-py user tries first, printed one result per line so that the output against
pocketkv can be compared with the output against redis-server (tests/redis_py_tour.rs).

Usage: redis_py_tour.py (tcp PORT | unix PATH) PROTOCOL
  PROTOCOL  2, 3, or "default" (the library's own default: RESP2 for redis-py 4, RESP3 from
            redis-py 8 on)

Values that differ between any two servers by nature (ids, ports, times, memory, versions) are
printed as their type or presence, never as themselves. Prints "done" last.
"""

import sys
import threading

import redis

where, address, protocol = sys.argv[1], sys.argv[2], sys.argv[3]
options = {}
if where == "tcp":
    options.update(host="127.0.0.1", port=int(address))
else:
    options.update(unix_socket_path=address)
if protocol != "default":
    options["protocol"] = int(protocol)

def show(label, value):
    print(f"{label}: {value!r}", flush=True)


def attempt(label, call):
    """Prints what `call` returns, or the class and text of what it raised."""
    try:
        value = call()
    except redis.RedisError as e:
        value = f"{type(e).__name__}: {e}"
    show(label, value)


r = redis.Redis(**options)
r.flushall()
r.config_set("maxmemory-policy", "noeviction")
r.config_set("notify-keyspace-events", "")
show("ping", r.ping())
# redis-py 4 wants a command name here; redis-py 8 warns about one.
try:
    conn = r.connection_pool.get_connection()
except TypeError:
    conn = r.connection_pool.get_connection("PING")
# HELLO's reply, as redis-py 8 keeps it (redis-py 4 sends no HELLO).
meta = getattr(conn, "handshake_metadata", None)
if meta is not None:
    meta = {k.decode() if isinstance(k, bytes) else k: v for k, v in meta.items()}
    show("hello keys", sorted(meta))
    show("hello proto mode role modules", [meta[k] for k in ("proto", "mode", "role", "modules")])
r.connection_pool.release(conn)

# Strings, as the README of redis-py shows them.
show("set", r.set("greeting", "hello"))
show("get", r.get("greeting"))
show("set nx on a key", r.set("greeting", "x", nx=True))
show("set get", r.set("greeting", "hi", get=True))
show("set xx px get", r.set("greeting", "hey", xx=True, px=60000, get=True))
show("pttl set", 0 < r.pttl("greeting") <= 60000)
show("set ex keepttl", r.set("greeting", "yo", keepttl=True))
show("ttl kept", 0 < r.ttl("greeting") <= 60)
show("set exat", r.set("at", "1", exat=4102444800))
show("expiretime", r.expiretime("at"))
show("incr", r.incr("counter"))
show("incrby", r.incrby("counter", 41))
show("decr", r.decr("counter"))
show("incrbyfloat", r.incrbyfloat("float", 1.5))
show("incrbyfloat again", r.incrbyfloat("float", "2.25"))
attempt("incr on a float", lambda: r.incr("float"))
show("mset", r.mset({"a": 1, "b": 2}))
show("mget", r.mget("a", "b", "nope"))
show("msetnx", r.msetnx({"a": 3, "c": 4}))
show("append", r.append("a", "x"))
show("strlen", r.strlen("a"))
show("getrange", r.getrange("greeting", 0, 0))
show("setrange", r.setrange("greeting", 1, "!"))
show("getdel", r.getdel("c"))
show("getex persist", r.getex("greeting", persist=True))
show("ttl after persist", r.ttl("greeting"))
show("exists", r.exists("a", "b", "nope"))
show("type", r.type("a"))
show("expire", r.expire("a", 100))
show("expire nx", r.expire("a", 200, nx=True))
show("expire xx", r.expire("a", 200, xx=True))
show("expire gt", r.expire("a", 50, gt=True))
show("expire lt", r.expire("a", 50, lt=True))
show("ttl", r.ttl("a"))
show("pexpire", r.pexpire("b", 100000))
show("persist", r.persist("b"))
show("ttl persisted", r.ttl("b"))
show("ttl missing", r.ttl("nope"))
show("rename", r.rename("b", "b2"))
attempt("rename missing", lambda: r.rename("nope", "x"))
show("renamenx", r.renamenx("b2", "b3"))
show("delete", r.delete("b2", "b3", "nope"))
show("unlink", r.unlink("greeting"))
show("dbsize", r.dbsize())
attempt("wrong arity", lambda: r.execute_command("GET"))
attempt("unknown command", lambda: r.execute_command("NOSUCHCOMMAND", "x"))

# Iterating over keys.
for i in range(25):
    r.set(f"user:{i}", i)
show("scan_iter", sorted(r.scan_iter("user:*")) == sorted(f"user:{i}".encode() for i in range(25)))
show("scan_iter count", len(list(r.scan_iter(match="user:1*", count=5))))
show("keys", sorted(r.keys("user:2*")))
cursor, keys = r.scan(0, match="nothing:*")
show("scan type", (type(cursor).__name__, keys))
show("randomkey", r.randomkey() is not None)

# Pipelines and transactions.
p = r.pipeline(transaction=True)
p.set("p", 1).incr("p").get("p").ttl("p")
show("pipeline transaction", p.execute())
p = r.pipeline(transaction=False)
p.set("q", "a").incr("q").get("q")
show("pipeline raise_on_error=False", [str(x) if isinstance(x, Exception) else x for x in p.execute(raise_on_error=False)])
p = r.pipeline(transaction=True)
p.set("q", "b").incr("q")
attempt("transaction with a failing command", p.execute)
p = r.pipeline(transaction=True)
p.set("q", "c").execute_command("GET")
attempt("transaction with a bad command", p.execute)
show("queued before the bad command not run", r.get("q"))


def bump(pipe):
    value = int(pipe.get("n") or 0)
    pipe.multi()
    pipe.set("n", value + 1)


show("transaction()", r.transaction(bump, "n"))
with r.pipeline() as pipe:
    pipe.watch("n")
    other = redis.Redis(**options)
    other.set("n", 100)
    pipe.multi()
    pipe.set("n", 1)
    attempt("watched key changed", pipe.execute)
show("n", r.get("n"))

# A lock: acquired with SET NX PX, which every server here has.
lock = r.lock("resource", timeout=30, blocking=False)
show("lock acquire", lock.acquire())
show("lock locked", lock.locked())
show("lock owned", lock.owned())
show("second lock", r.lock("resource", timeout=30, blocking=False).acquire())
show("lock ttl", 0 < r.pttl("resource") <= 30000)
r.delete("resource")
show("lock owned after delete", lock.owned())

# Server introspection, as dashboards read it.
info = r.info()
show("info types", {k: type(info[k]).__name__ for k in ("redis_version", "connected_clients", "used_memory", "uptime_in_seconds", "role", "maxmemory", "total_commands_processed")})
db0 = r.info("keyspace")["db0"]
# avg_ttl is Redis's running estimate; pocketkv prints 0 (docs/operations.md).
show("info keyspace", (db0["keys"], db0["expires"], type(db0["avg_ttl"]).__name__))
show("info server role", r.info("replication")["role"])
show("info commandstats get", sorted(r.info("commandstats")["cmdstat_get"]))
me = r.client_info()
show("client_info fields", sorted(set(me)))
show("client_info types", {k: type(me[k]).__name__ for k in ("id", "addr", "age", "db", "flags", "cmd", "resp")})
show("client_info resp", me["resp"])
show("client_info cmd", me["cmd"])
listed = r.client_list()
show("client_list fields", sorted(set(listed[0])))
show("client_list ids", r.client_id() in [int(c["id"]) for c in listed])
show("client_setname", r.client_setname("tour"))
show("client_getname", r.client_getname())
show("client_list name", [c["name"] for c in r.client_list(client_id=[str(r.client_id())])])
show("config_get maxmemory", r.config_get("maxmemory"))
show("config_get policy", r.config_get("maxmemory-policy"))
show("config_set", r.config_set("maxmemory-policy", "allkeys-lru"))
show("config_get after set", r.config_get("maxmemory-policy"))
r.config_set("maxmemory-policy", "noeviction")
attempt("config_get unknown", lambda: r.config_get("no-such-setting"))
attempt("config_set unknown", lambda: r.config_set("no-such-setting", "1"))
show("time", [type(x).__name__ for x in r.time()])
show("lastsave", type(r.lastsave()).__name__)
show("echo", r.echo("hi"))
show("role", r.role()[0])
show("acl_whoami", r.acl_whoami())

# A refused command, as ACL LOG reports it (redis-py parses its client-info like CLIENT INFO).
r.acl_log_reset()
show("acl_setuser", r.acl_setuser("limited", enabled=True, passwords=["+pw"], commands=["+get"], keys=["*"]))
limited = redis.Redis(**options, username="limited", password="pw")
attempt("refused", lambda: limited.set("k", "v"))
# Only the SET: redis-py 8's CLIENT SETINFO is refused too where the server knows it.
entry = [e for e in r.acl_log() if e["object"] == "set"][0]
show("acl_log entry", sorted(set(entry) - {"entry-id", "timestamp-created", "timestamp-last-updated"}))
show("acl_log what", [entry[k] for k in ("count", "reason", "context", "object", "username")])
show("acl_log client-info", sorted(set(entry["client-info"])))
limited.close()
r.acl_deluser("limited")
r.acl_log_reset()

# Publish and subscribe: RESP3 delivers these as push messages.
p = r.pubsub()
p.subscribe("news")
p.psubscribe("n*")
show("subscribe", p.get_message(timeout=10))
show("psubscribe", p.get_message(timeout=10))
show("publish", r.publish("news", "hello"))
show("message", p.get_message(ignore_subscribe_messages=True, timeout=10))
show("pmessage", p.get_message(ignore_subscribe_messages=True, timeout=10))
show("numsub", r.pubsub_numsub("news", "none"))
show("numpat", r.pubsub_numpat())
show("channels", r.pubsub_channels())
r.publish("nope", "x")
r.publish("news", "bye")
seen = []
for message in p.listen():
    seen.append(message)
    if len(seen) == 3:
        break
show("listen", seen)
p.ping()
show("ping while subscribed", p.get_message(timeout=10))
p.unsubscribe("news")
show("unsubscribe", p.get_message(timeout=10))
p.punsubscribe()
show("punsubscribe", p.get_message(timeout=10))
show("nothing left", p.get_message(timeout=0.05))
p.close()

# Sharded pub/sub (redis-py 5 and later): SSUBSCRIBE, SPUBLISH, get_sharded_message.
if hasattr(r, "spublish"):
    p = r.pubsub()
    p.ssubscribe("orders")
    show("ssubscribe", p.get_sharded_message(timeout=10))
    show("spublish", r.spublish("orders", "new"))
    show("smessage", p.get_sharded_message(ignore_subscribe_messages=True, timeout=10))
    show("shardchannels", r.pubsub_shardchannels())
    show("shardnumsub", r.pubsub_shardnumsub("orders", "none"))
    p.sunsubscribe("orders")
    show("sunsubscribe", p.get_sharded_message(timeout=10))
    p.close()

# Keyspace notifications.
show("notify config", r.config_set("notify-keyspace-events", "KEA"))
show("notify get", r.config_get("notify-keyspace-events"))
events = r.pubsub(ignore_subscribe_messages=True)
events.psubscribe("__keyspace@0__:k*", "__keyevent@0__:expired")
events.get_message(timeout=10)
events.get_message(timeout=10)
r.set("k", "1")
r.incr("k")
r.expire("k", 100)
r.pexpire("k", 1)
got = [events.get_message(timeout=10) for _ in range(5)]
show("keyspace events", got)
r.set("k2", "x")
r.delete("k2")
show("keyspace set del", [events.get_message(timeout=10)["data"] for _ in range(2)])
events.close()
r.config_set("notify-keyspace-events", "")

# A handler thread, as run_in_thread runs them.
done = threading.Event()
received = []
p = r.pubsub()
p.subscribe(**{"jobs": lambda message: (received.append(message), done.set())})
worker = p.run_in_thread(sleep_time=0.01)
while r.publish("jobs", "go") == 0:
    pass
show("handler ran", done.wait(10))
worker.stop()
show("handler got", received[0])

# The asyncio client (on Python before 3.11.3 it needs async-timeout, which ci/install-deps.sh
# installs beside redis-py 8).
import asyncio

import redis.asyncio


async def asynchronous():
    client = redis.asyncio.Redis(**options)
    show("async set", await client.set("async", "1", ex=100))
    show("async incr", await client.incr("async"))
    async with client.pipeline(transaction=True) as pipe:
        show("async transaction", await pipe.get("async").incrbyfloat("async", 0.5).execute())
    p = client.pubsub()
    await p.subscribe("async-news")
    show("async subscribe", await p.get_message(timeout=10))
    await client.publish("async-news", "hi")
    show("async message", await p.get_message(ignore_subscribe_messages=True, timeout=10))
    await p.aclose() if hasattr(p, "aclose") else await p.reset()
    await client.aclose() if hasattr(client, "aclose") else await client.close()


asyncio.run(asynchronous())
print("done")
