"""A Sentinel-aware client that writes until told to stop, confirming each write with WAIT.

Usage: sentinel_writer.py SENTINEL_PORTS MASTER_NAME REPLICAS PREFIX
  SENTINEL_PORTS  comma-separated loopback ports of the sentinels
  REPLICAS        the n of `WAIT n 1000` that confirms a write

It finds the primary through redis-py's `redis.sentinel.Sentinel` (as an application would),
writes PREFIX<i> = <i> for i = 1, 2, ..., and prints one line per event on stdout:
  ok I HOST:PORT UNIX_TIME   SET I succeeded on the primary at HOST:PORT
  ack I N                    WAIT confirmed SET I on N replicas (N >= REPLICAS)
  nack I N                   WAIT timed out with only N replicas
  err I WHAT                 the write or the WAIT failed (no primary, a replica, a timeout)
  done I                     stopped after I writes, at a line "stop" (or EOF) on stdin
The caller decides what each line means; a failed write is retried as the next i.
"""

import sys
import threading
import time

import redis
from redis.sentinel import Sentinel

ports = [int(p) for p in sys.argv[1].split(",")]
name = sys.argv[2]
wanted = int(sys.argv[3])
prefix = sys.argv[4]

stop = threading.Event()


def watch_stdin():
    sys.stdin.readline()
    stop.set()


threading.Thread(target=watch_stdin, daemon=True).start()

# Short timeouts: a dead primary must cost a write attempt a second at most, so the time to
# the first write on the new primary measures Sentinel, not the client's patience.
sentinel = Sentinel(
    [("127.0.0.1", p) for p in ports], socket_timeout=1.0, socket_connect_timeout=1.0
)
primary = sentinel.master_for(
    name, socket_timeout=2.0, socket_connect_timeout=1.0, retry_on_timeout=False
)


def get_connection(pool):
    """A connection from the pool: redis-py 4 wants a command name, redis-py 8 warns at one."""
    try:
        return pool.get_connection()
    except TypeError:
        return pool.get_connection("SET")


def say(line):
    print(line, flush=True)


i = 0
while not stop.is_set():
    i += 1
    # SET and its WAIT on one connection: WAIT counts the replicas that acknowledged this
    # connection's writes, so a WAIT on another connection (the pool's next one, perhaps to a
    # primary promoted meanwhile) would confirm a write it never saw.
    pool = primary.connection_pool
    conn = None
    try:
        conn = get_connection(pool)
        conn.send_command("SET", f"{prefix}{i}", i)
        conn.read_response()
        say(f"ok {i} {conn.host}:{conn.port} {time.time():.6f}")
        conn.send_command("WAIT", wanted, 1000)
        acked = conn.read_response()
        say(f"{'ack' if acked >= wanted else 'nack'} {i} {acked}")
    except (redis.exceptions.RedisError, OSError) as e:
        if conn is not None:
            conn.disconnect()
        say(f"err {i} {type(e).__name__}: {e}".replace("\n", " "))
        # A pause between failed attempts, so a primary that is down is not hammered; the
        # next attempt asks the sentinels again.
        time.sleep(0.05)
    finally:
        if conn is not None:
            pool.release(conn)
say(f"done {i}")
