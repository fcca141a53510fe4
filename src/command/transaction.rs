//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, the queue a client fills between MULTI
//! and EXEC, and the register of watched keys.
//!
//! The handlers here only change client state. Queueing and running EXEC's queue happen in the
//! server layer (`server/transaction.rs`), because each queued command must go through the one
//! place data changes (`execute_args`), which handlers cannot reach.

use std::collections::HashMap;

use super::{Arg, ClientState, Ctx, Spec};
use crate::protocol::{self, Reply};
use crate::store::Store;

const G: &str = "transactions";
/// Redis 7's flags for MULTI, DISCARD, WATCH and UNWATCH.
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

/// This family's table entries.
#[rustfmt::skip]
pub(super) const COMMANDS: &[Spec] = &[
    Spec::new("multi", 1, multi).flags(TX).doc(G, "", "start a transaction: later commands are queued until EXEC"),
    Spec::new("exec", 1, exec).flags(&["noscript", "loading", "stale", "skip_slowlog"])
        .doc(G, "", "run the queued commands as one unit; nil if a watched key changed"),
    Spec::new("discard", 1, discard).flags(TX).doc(G, "", "drop the queued commands and the watches"),
    Spec::new("watch", -2, watch).flags(TX).keys(1, -1, 1)
        .doc(G, "key [key ...]", "make the next EXEC fail if any of these keys is written first"),
    Spec::new("unwatch", 1, unwatch).flags(TX).doc(G, "", "forget every watched key"),
];

/// EXEC's answer when a command was refused while queueing.
pub const EXECABORT: Reply<'static> =
    Reply::error("EXECABORT Transaction discarded because of previous errors.");

/// EXEC's answer when EXEC itself is refused (wrong arity, NOAUTH, OOM, MISCONF), inside MULTI
/// or not: Redis's text, where an `ERR`'s code is left out and any other code kept.
pub fn exec_abort(refusal: Reply<'_>) -> Reply<'static> {
    let Reply::Error(text) = refusal else {
        return EXECABORT;
    };
    let text = text.strip_prefix(b"ERR ").unwrap_or(&text);
    let mut message = b"EXECABORT Transaction discarded because of: ".to_vec();
    message.extend_from_slice(text);
    Reply::error_bytes(message)
}

/// The commands a client queued since MULTI, RESP-encoded back to back: one allocation however
/// many there are, and its length is what counts against the client's query buffer limit.
#[derive(Debug, Default)]
pub struct Queue {
    /// The queued requests, each a RESP multi-bulk request.
    pub requests: Vec<u8>,
    /// How many requests `requests` holds.
    pub count: usize,
    /// A command was refused while queueing: EXEC answers EXECABORT (Redis's DIRTY_EXEC).
    pub failed: bool,
    /// A queued command writes: EXEC is refused while writes are (MISCONF).
    pub writes: bool,
    /// A queued command may add data: EXEC is refused at `maxmemory` (OOM).
    pub grows: bool,
}

impl Queue {
    /// Appends a command that passed the queue-time checks.
    pub fn push(&mut self, spec: &Spec, args: &[Arg<'_>]) {
        protocol::encode_request(args, &mut self.requests);
        self.count += 1;
        self.writes |= spec.is_write();
        self.grows |= spec.may_grow();
    }
}

fn multi<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    if ctx.client.multi.is_some() {
        return Reply::error("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(Box::default());
    Reply::OK
}

/// EXEC outside MULTI; inside, the server layer runs the queue instead of this.
fn exec<'a>(_: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    Reply::error("ERR EXEC without MULTI")
}

fn discard<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    if ctx.client.multi.take().is_none() {
        return Reply::error("ERR DISCARD without MULTI");
    }
    ctx.server.watches.unwatch_all(ctx.client);
    Reply::OK
}

fn watch<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    if ctx.client.multi.is_some() {
        return Reply::error("ERR WATCH inside MULTI is not allowed");
    }
    for key in args.iter().skip(1) {
        ctx.server.watches.watch(ctx.client, key, ctx.db);
    }
    Reply::OK
}

fn unwatch<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    ctx.server.watches.unwatch_all(ctx.client);
    Reply::OK
}

/// Bytes a watch costs besides its key (two copies' headers and the entry), as counted against
/// the client's query buffer limit.
const WATCH_OVERHEAD: usize = 64;

/// One client's watch of a key.
#[derive(Debug, Clone, Copy)]
struct Watcher {
    client: u64,
    /// The key had expired but was not yet removed when WATCH was called: removing it later is
    /// no change (Redis 7's rule), writing it is.
    expired: bool,
    /// The key changed since WATCH: the client's next EXEC answers nil.
    dirty: bool,
}

/// Which clients watch which keys, and which of them saw a watched key change.
///
/// Empty while nobody watches, so a write costs one `is_empty` test then; a hash lookup per key
/// written only while some client watches.
#[derive(Debug, Default)]
pub struct Watches {
    keys: HashMap<Vec<u8>, Vec<Watcher>>,
}

impl Watches {
    /// True when no client watches any key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when some client watches `key`.
    pub fn watched(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    /// Every watched key, for FLUSHALL.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.keys().map(Vec::as_slice)
    }

    fn watch(&mut self, client: &mut ClientState, key: &[u8], store: &Store) {
        // Found through the key, not the client's list: a WATCH of a million keys stays linear.
        let watchers = self.keys.entry(key.to_vec()).or_default();
        if watchers.iter().any(|w| w.client == client.id) {
            return;
        }
        let expired = store.present(key) && !store.contains(key);
        watchers.push(Watcher {
            client: client.id,
            expired,
            dirty: false,
        });
        client.watched.push(key.to_vec());
        client.watched_bytes += key.len() + WATCH_OVERHEAD;
    }

    /// Forgets `client`'s watches and whether one was touched (UNWATCH, EXEC, DISCARD, close).
    pub fn unwatch_all(&mut self, client: &mut ClientState) {
        client.watched_bytes = 0;
        for key in std::mem::take(&mut client.watched) {
            if let Some(watchers) = self.keys.get_mut(&key) {
                watchers.retain(|w| w.client != client.id);
                if watchers.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// Records that `key` was written or removed; `present` says whether it is there now. A
    /// watch made on an already expired key ignores the key's removal, and only that.
    pub fn touch(&mut self, key: &[u8], present: bool) {
        let Some(watchers) = self.keys.get_mut(key) else {
            return;
        };
        for watcher in watchers {
            if watcher.expired && !present {
                watcher.expired = false;
                continue;
            }
            watcher.dirty = true;
        }
    }

    /// Whether `client`'s transaction must not run: a watched key changed since WATCH, or has
    /// expired since (though not yet removed). Forgets the client's watches either way, as EXEC
    /// does.
    pub fn take_dirty(&mut self, client: &mut ClientState, store: &Store) -> bool {
        let dirty = client.watched.iter().any(|key| {
            let expired = store.present(key) && !store.contains(key);
            self.keys.get(key).is_some_and(|watchers| {
                watchers
                    .iter()
                    .any(|w| w.client == client.id && (w.dirty || expired && !w.expired))
            })
        });
        self.unwatch_all(client);
        dirty
    }
}
