"""redis-py's Lock, released the script-free way: acquire with SET NX PX (what Lock already
does), release with DELEX key IFEQ token. Usage: redis_py_lock.py PORT. Prints "ok".

Runs with redis-py 4 (DELEX through execute_command) and redis-py 8, whose own `delex`,
`digest` and `set(ifeq=...)` methods are tried too."""

import sys
import warnings

import redis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock


class ScriptFreeLock(Lock):
    """A Lock whose release needs no EVAL: the server deletes the key only if it still holds
    this lock's token."""

    def do_release(self, expected_token):
        if not self.redis.execute_command("DELEX", self.name, "IFEQ", expected_token):
            raise LockNotOwnedError("Cannot release a lock that's no longer owned")


r = redis.Redis(port=int(sys.argv[1]))
r.delete("resource", "other")

first = ScriptFreeLock(r, "resource", timeout=30, blocking=False)
second = ScriptFreeLock(r, "resource", timeout=30, blocking=False)
assert first.acquire(), "a free lock is acquired"
assert not second.acquire(), "a held lock is not"
assert 0 < r.pttl("resource") <= 30000, "SET NX PX gave the lock its timeout"
first.release()
assert r.exists("resource") == 0, "release deleted the key"

# The lock timed out and someone else took it: the old owner's release must not delete it.
assert second.acquire()
r.set("resource", "someone-else")
try:
    second.release()
    raise AssertionError("releasing a lock owned by someone else succeeded")
except LockNotOwnedError:
    pass
assert r.get("resource") == b"someone-else", "the other owner's lock is still there"

with ScriptFreeLock(r, "other", timeout=5):
    assert r.exists("other") == 1
assert r.exists("other") == 0, "leaving the with block released the lock"

# redis-py 8's own methods for the same commands (marked experimental: it warns).
if hasattr(r, "delex"):
    warnings.simplefilter("ignore")
    r.delete("resource")
    assert r.set("resource", "token-1", nx=True, px=30000)
    assert r.digest("resource") == r.execute_command("DIGEST", "resource")
    assert r.set("resource", "token-2", ifeq="token-1", keepttl=True), "SET IFEQ on a match"
    assert r.set("resource", "token-3", ifeq="token-1") is None, "SET IFEQ on a mismatch"
    assert r.delex("resource", ifeq="token-1") == 0, "DELEX IFEQ on a mismatch"
    assert r.delex("resource", ifdeq=r.digest("resource").decode()) == 1, "DELEX IFDEQ"
    assert r.exists("resource") == 0
print("ok")
