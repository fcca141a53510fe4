#!/usr/bin/python3
"""Writes src/acl/table.rs from a running redis-server 7.0 (port in argv[1], default 6379).

Run once when the command table changes: `ci/gen-acl-table.py 6379 > src/acl/table.rs`.
tests/acl.rs compares the committed table with a live server's ACL CAT answers, so a table
that drifts from Redis fails the tests.
"""
import sys
import redis

r = redis.Redis(port=int(sys.argv[1]) if len(sys.argv) > 1 else 6379)
conn = r.connection_pool.get_connection("gen")


def call(*args):
    conn.send_command(*args)
    return conn.read_response()


categories = [c.decode() for c in call("ACL", "CAT")]
members = {c: {n.decode() for n in call("ACL", "CAT", c)} for c in categories}


def access(flags):
    bits = 0
    if b"access" in flags:
        bits |= 1
    if flags & {b"insert", b"delete", b"update"}:
        bits |= 2
    return bits


info = {}


def add(entry):
    name = entry[0].decode()
    word = 0
    for i, c in enumerate(categories):
        if name in members[c]:
            word |= 1 << i
    if b"no_auth" in entry[2]:
        word |= 1 << 21
    specs = []
    for ks in entry[8]:
        d = dict(zip(ks[::2], ks[1::2]))
        specs.append(set(d[b"flags"]))
    if len(specs) > 0:
        word |= access(specs[0]) << 22
    if len(specs) > 1:
        word |= access(specs[1]) << 24
    if any(b"variable_flags" in s for s in specs):
        word |= 1 << 26
    info[name] = word
    for sub in entry[9]:
        add(sub)


for entry in call("COMMAND"):
    add(entry)

names = sorted(info)
text = " ".join(names)
offsets = []
at = 0
for n in names:
    offsets.append(at)
    at += len(n) + 1
offsets.append(at)

out = []
out.append("//! Redis 7.0.15's command table as ACL rules see it: every command and subcommand")
out.append("//! (`config|get`), its categories, whether it needs no authentication, and how its keys")
out.append("//! are used. Written by `ci/gen-acl-table.py` from a live redis-server; do not edit.")
out.append("")
out.append("/// Category names in Redis's order; a command's bit `i` is category `i`.")
out.append("pub const CATEGORIES: [&str; %d] = [%s];" % (len(categories), ", ".join('"%s"' % c for c in categories)))
out.append("")
out.append("/// Every name, sorted, separated by one space.")
out.append("pub const NAMES: &str = concat!(")
line = ""
for n in names:
    piece = n + " "
    if len(line) + len(piece) > 90:
        out.append('    "%s",' % line)
        line = ""
    line += piece
out.append('    "%s",' % line)
out.append(");")
out.append("")
out.append("/// Where each name starts in [`NAMES`]; one more at the end.")
out.append("pub const OFFSETS: [u16; %d] = [" % len(offsets))
for i in range(0, len(offsets), 14):
    out.append("    " + ", ".join(str(o) for o in offsets[i:i + 14]) + ",")
out.append("];")
out.append("")
out.append("/// Per name: category bits (0-20), no-auth (21), first and second key spec's access")
out.append("/// (22-23, 24-25: 1 reads, 2 writes), variable key flags (26).")
out.append("pub const INFO: [u32; %d] = [" % len(names))
for i in range(0, len(names), 8):
    out.append("    " + ", ".join("0x%07x" % info[n] for n in names[i:i + 8]) + ",")
out.append("];")
print("\n".join(out))
