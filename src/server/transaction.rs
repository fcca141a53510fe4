//! Transactions in the server layer: queueing a client's commands after MULTI, and running
//! EXEC's queue through [`execute_args`] as one unit, with no other client's command in between
//! (the loop is single-threaded and EXEC is one request) and one record in the log.
//!
//! Also WATCH's side of the one place data changes: which watched keys a write touched.
//!
//! EXEC runs its whole queue in one go, as Redis does: stopping half-way to serve others would
//! break the atomicity it promises. What bounds that pause is the queue's size: the queued bytes
//! count against `client-query-buffer-limit`, like input not yet executed.

use std::time::{Duration, Instant};

use super::execute::execute_args;
use super::persistence::{record_dropped, Journal};
use crate::command::{self, Arg, Call, ClientState, Ctx, Flow, Queue, ServerState, EXECABORT};
use crate::protocol::{self, Dialect, Limits, Reply};
use crate::store::Store;

/// Encodes one reply of EXEC's array; the bool says whether the client wants RESP3 for it.
pub(super) type ItemEncoder<'e> = dyn FnMut(&Reply<'_>, bool, &mut Vec<u8>) + 'e;

/// Handles a request from a client inside MULTI: EXEC runs the queue; DISCARD, QUIT and RESET
/// run at once; MULTI and WATCH run at once to give their errors; anything else is checked and
/// queued. `dialect` is the one the reply is encoded in.
// Kept out of the request loop it is called from: only clients inside MULTI reach it.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(super) fn in_multi(
    args: &[Arg<'_>],
    dialect: Dialect,
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    encode: &mut dyn FnMut(&Reply<'_>, &mut Vec<u8>),
) -> (Flow, bool) {
    let name = args.first().map_or(&b""[..], |a| a.as_ref());
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if is(b"exec") {
        if !client.is_master && state.holds(client.multi.as_ref().is_some_and(|q| q.writes)) {
            return (Flow::Postpone, false); // Its writes wait, as any write does.
        }
        return exec(args, dialect, client, output, store, state, journal, encode);
    }
    if is(b"discard") || is(b"quit") || is(b"reset") {
        if !matches!(command::resolve(args), Some(Ok(_))) {
            // Unknown or wrong arity: the transaction fails, as any refusal makes it.
            fail_queue(client);
        }
        return execute_args(args, client, output, store, state, journal, encode);
    }
    let mut ctx = Ctx::new(&mut *store, client, state);
    let admitted = command::admit(&mut ctx, args, true);
    record_dropped(store, state, journal);
    let spec = match admitted {
        Ok(spec) => spec,
        Err((_, Call::Postponed)) => return (Flow::Postpone, false),
        Err((reply, call)) => {
            if let Some(queue) = &mut client.multi {
                queue.failed = true;
            }
            state.stats.error_replies += 1;
            count_call(call, true, Duration::ZERO, state);
            encode(&reply, output);
            return (Flow::Continue, false);
        }
    };
    if matches!(spec.name, "multi" | "watch") {
        return execute_args(args, client, output, store, state, journal, encode);
    }
    if let Some(queue) = &mut client.multi {
        queue.push(spec, args);
    }
    encode(&Reply::Status("QUEUED".into()), output);
    (Flow::Continue, false)
}

/// Counts EXEC, or a command refused while queueing, in the per-command figures as
/// `execute_args` counts the commands it runs; neither goes to the slow log (EXEC is
/// `skip_slowlog` in Redis, and the commands it ran are there themselves).
fn count_call(call: Call, is_error: bool, took: Duration, state: &mut ServerState) {
    let (spec, ran) = match call {
        Call::Unknown | Call::Postponed => return,
        Call::Rejected(spec) => (spec, false),
        Call::Ran(spec) => (spec, true),
    };
    let stat = state.stats.per_command.entry(spec.name).or_default();
    if !ran {
        stat.rejected_calls += 1;
        return;
    }
    stat.calls += 1;
    stat.failed_calls += u64::from(is_error);
    stat.latency.record(took);
}

/// Marks a request refused while queueing (a command unknown under its new name).
pub(super) fn fail_queue(client: &mut ClientState) {
    if let Some(queue) = &mut client.multi {
        queue.failed = true;
    }
}

/// EXEC inside MULTI: checks the transaction as a whole, then runs it or says why not.
#[allow(clippy::too_many_arguments)]
fn exec(
    args: &[Arg<'_>],
    dialect: Dialect,
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    encode: &mut dyn FnMut(&Reply<'_>, &mut Vec<u8>),
) -> (Flow, bool) {
    let started = Instant::now();
    state.stats.commands += 1;
    let Some(spec) = command::lookup(b"exec") else {
        return (Flow::Continue, false);
    };
    client.last_cmd = spec.name;
    let queue = client.multi.take().unwrap_or_default();
    if let Some(refusal) = refusal(args, &queue, client, store, state, journal) {
        state.watches.unwatch_all(client);
        state.stats.error_replies += 1;
        count_call(Call::Rejected(spec), true, Duration::ZERO, state);
        encode(&refusal, output);
        return (Flow::Continue, false);
    }
    let dirty = state.watches.take_dirty(client, store);
    let aborted = if queue.failed {
        Some(EXECABORT)
    } else if dirty {
        Some(Reply::NilArray)
    } else {
        None
    };
    if let Some(reply) = aborted {
        let is_error = reply.is_error();
        state.stats.error_replies += u64::from(is_error);
        encode(&reply, output);
        count_call(Call::Ran(spec), is_error, started.elapsed(), state);
        return (Flow::Continue, false);
    }
    // Each reply is encoded as its command finishes: nothing is kept but the output.
    let count = queue.count;
    protocol::encode_array_start(count, dialect, output);
    let mut index = 0;
    let mut item = |reply: &Reply<'_>, resp3: bool, out: &mut Vec<u8>| {
        let dialect = match dialect {
            Dialect::Text => Dialect::Text,
            _ if resp3 => Dialect::Resp3,
            _ => Dialect::Resp,
        };
        protocol::encode_item(reply, dialect, index, count, out);
        index += 1;
    };
    let (flow, recorded) = run_queue(&queue, client, output, store, state, journal, &mut item);
    count_call(Call::Ran(spec), false, started.elapsed(), state);
    (flow, recorded)
}

/// Why EXEC itself is refused before anything runs, as Redis checks it: its arity, then memory
/// when the queue may add data, then writes when the queue writes and writes are refused.
fn refusal(
    args: &[Arg<'_>],
    queue: &Queue,
    client: &mut ClientState,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> Option<Reply<'static>> {
    let why = if args.len() != 1 {
        command::wrong_arity("exec")
    } else if queue.grows && !command::make_room(&mut Ctx::new(&mut *store, client, state)) {
        record_dropped(store, state, journal);
        command::OOM
    } else if let (true, Some(refused)) = (queue.writes, &state.refuse_writes) {
        Reply::error_owned(refused.clone())
    } else {
        record_dropped(store, state, journal);
        return None;
    };
    Some(command::exec_abort(why))
}

/// Runs a transaction that did not come through MULTI (HTTP's `POST /v1/tx`): checked as EXEC
/// is, then run as one unit; the refusal when it may not run. Returns whether it was recorded.
pub(super) fn exec_queue(
    queue: &Queue,
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    item: &mut ItemEncoder<'_>,
) -> Result<bool, Reply<'static>> {
    const EXEC: [Arg<'static>; 1] = [std::borrow::Cow::Borrowed(b"EXEC")];
    let started = Instant::now();
    state.stats.commands += 1;
    let spec = command::lookup(b"exec");
    if let Some(refusal) = refusal(&EXEC, queue, client, store, state, journal) {
        state.stats.error_replies += 1;
        if let Some(spec) = spec {
            count_call(Call::Rejected(spec), true, Duration::ZERO, state);
        }
        return Err(refusal);
    }
    let (_, recorded) = run_queue(queue, client, output, store, state, journal, item);
    if let Some(spec) = spec {
        count_call(Call::Ran(spec), false, started.elapsed(), state);
    }
    Ok(recorded)
}

/// Runs every queued command through [`execute_args`], in order, as one unit of the journal;
/// `item` encodes each reply. Returns the last flow a command asked for (CLIENT KILL of the
/// client itself closes it after the reply) and whether the unit was recorded.
pub(super) fn run_queue(
    queue: &Queue,
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    item: &mut ItemEncoder<'_>,
) -> (Flow, bool) {
    // The queue holds only what this server encoded from requests it accepted.
    let limits = Limits {
        max_bulk_len: usize::MAX,
        max_multibulk_len: usize::MAX,
        ..Limits::default()
    };
    client.in_exec = true;
    let offset = state.repl.offset;
    journal.begin_unit();
    let mut flow = Flow::Continue;
    let mut rest = &queue.requests[..];
    for _ in 0..queue.count {
        let Ok((request, used)) = protocol::parse_request(rest, &limits) else {
            break;
        };
        rest = rest.get(used..).unwrap_or_default();
        let resp3 = command::protocol_requested(&request.args).unwrap_or(client.resp3);
        let mut encode = |reply: &Reply<'_>, out: &mut Vec<u8>| item(reply, resp3, out);
        let (asked, _) = execute_args(
            &request.args,
            client,
            output,
            store,
            state,
            journal,
            &mut encode,
        );
        if asked != Flow::Continue {
            flow = asked;
        }
    }
    let recorded = journal.end_unit(state);
    if state.repl.offset != offset {
        // WAIT after EXEC waits for the whole transaction, which only now is in the stream.
        client.woff = state.repl.offset;
    }
    client.in_exec = false;
    (flow, recorded)
}

/// The watched keys a write may touch, each with whether it is stored now: the command's key
/// arguments that someone watches, or for FLUSHALL and FLUSHDB every watched key. Only called
/// while some client watches.
pub(super) fn watched_before(
    args: &[Arg<'_>],
    store: &Store,
    state: &ServerState,
) -> Vec<(Vec<u8>, bool)> {
    let Some(spec) = args.first().and_then(|name| command::lookup(name)) else {
        return Vec::new();
    };
    if !spec.is_write() {
        return Vec::new();
    }
    let watches = &state.watches;
    if matches!(spec.name, "flushall" | "flushdb") {
        return watches
            .keys()
            .map(|key| (key.to_vec(), store.present(key)))
            .collect();
    }
    spec.keys_of(args)
        .filter(|key| watches.watched(key))
        .map(|key| (key.to_vec(), store.present(key)))
        .collect()
}

/// Tells the watchers of the keys in `before` that a write changed them: every key that was
/// there before or is there now (a key absent both times was not changed).
pub(super) fn touch_written(before: Vec<(Vec<u8>, bool)>, store: &Store, state: &mut ServerState) {
    for (key, was_present) in before {
        let present = store.present(&key);
        if was_present || present {
            state.watches.touch(&key, present);
        }
    }
}
