"""redis-py's Lock, released the script-free way: acquire with SET NX PX (what Lock already
does), release with DELEX key IFEQ token. Usage: redis_py_lock.py PORT. Prints "ok"."""

import sys

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
print("ok")
