//! From a connection's input to its replies: parse, execute, encode, one request at a time.

use super::connection::{Closing, Connection, Hold};
use super::persistence::{record_dropped, Journal};
use super::transaction;
use std::time::{Duration, Instant};

use crate::command::{self, Arg, Call, ClientState, Ctx, Flow, ServerState};
use crate::persist::FsyncPolicy;
use crate::protocol::{self, Dialect, ParseError, ProtocolError, Reply, Request};
use crate::store::{Store, PREFETCH_BATCH};

/// Deliveries waiting in the outbox above which a client's pipeline pauses until the loop has
/// delivered them (next turn): about 3 MB of outbox at most, whatever the pipeline holds. Not
/// lower: every pause costs a write to every receiver, and at 2,048 a pipeline of 16 PUBLISHes
/// to 1,000 subscribers took six turns and 6,000 writes instead of one turn and 1,000.
const OUTBOX_HIGH_WATER: usize = 65_536;

/// Why [`execute_pending`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    /// Every complete request ran; more input is needed.
    NeedInput,
    /// Replies are piling up; send them before executing more.
    Backlog,
    /// The client waits for a snapshot, or is closing.
    Held,
    /// This turn's copy-on-write budget is spent: go on next turn.
    Yield,
}

/// Parses and executes every complete request in `conn`'s input, appending the replies and
/// recording each change in `journal`. Stops early once the store has copied `copy_limit`
/// shards for a snapshot since the last image (see [`Stopped::Yield`]).
pub(super) fn execute_pending(
    conn: &mut Connection,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    copy_limit: u64,
) -> Stopped {
    let mut limits = state.config.limits;
    // Requests from the current one on whose lookups are already on their way.
    let mut prefetched = 0;
    loop {
        // Per request: an AUTH earlier in the same pipeline lifts the limits for what follows.
        limits.unauthenticated = !conn.client.authenticated && !state.acl.default_open();
        if conn.awaiting_snapshot.is_some()
            || conn.awaiting_shutdown.is_some()
            || conn.closing != Closing::No
            || conn.waiting.is_some()
            || conn.follower.is_some()
        {
            return Stopped::Held;
        }
        if store.copied().shards >= copy_limit {
            return Stopped::Yield;
        }
        if conn.pending_output() >= state.config.output_buffer_high_water {
            return Stopped::Backlog;
        }
        if state.pubsub.outbox.deliveries.len() >= OUTBOX_HIGH_WATER {
            // A pipeline of PUBLISHes to many subscribers: deliver what it made so far before
            // going on, so the outbox stays small.
            return Stopped::Yield;
        }
        let input = conn.input.pending();
        let parsed = protocol::parse_request_resuming(input, &limits, &mut conn.progress);
        let used = match parsed {
            Ok((request, used)) => {
                if prefetched == 0 {
                    prefetched = prefetch(input, store);
                }
                prefetched -= 1;
                if !request.args.is_empty() {
                    let mark = conn.output.len();
                    let (flow, recorded) = execute_one(
                        &request,
                        &mut conn.client,
                        &mut conn.output,
                        store,
                        state,
                        journal,
                    );
                    if flow == Flow::Postpone {
                        // The request stays in the input, to run once writes resume.
                        conn.postponed = true;
                        return Stopped::Held;
                    }
                    if must_wait_for_fsync(state, recorded) {
                        conn.hold = Some(Hold::until(conn.hold, state.log.last_seq, mark));
                    }
                    let queued = queued(conn);
                    if queued > 0
                        && queued + conn.input.pending().len() > state.config.query_buffer_limit
                    {
                        // A transaction's queue (and its watches) count as input not yet
                        // executed (Redis counts the queue too): a client queueing without end is
                        // closed like one that sends without end.
                        state.stats.query_buffer_limit_disconnections += 1;
                        fail(conn, ProtocolError::QueryBufferLimit, state);
                        return Stopped::Held;
                    }
                    match flow {
                        Flow::AwaitSnapshot => {
                            conn.awaiting_snapshot =
                                Some(reply_dialect(&request, &conn.client, state))
                        }
                        Flow::Shutdown => {
                            conn.awaiting_shutdown =
                                Some(reply_dialect(&request, &conn.client, state))
                        }
                        Flow::Close => conn.closing = Closing::AfterFlush,
                        Flow::Wait {
                            replicas,
                            timeout_ms,
                        } => {
                            conn.waiting = Some(super::replicate::Waiting {
                                replicas,
                                offset: conn.client.woff,
                                deadline: (timeout_ms > 0)
                                    .then(|| Instant::now() + Duration::from_millis(timeout_ms)),
                                dialect: reply_dialect(&request, &conn.client, state),
                            })
                        }
                        Flow::Replicate(psync) => {
                            conn.follower = Some(Box::new(super::replicate::Follower::new(psync)))
                        }
                        Flow::Continue | Flow::Silent | Flow::Postpone => {}
                    }
                }
                used
            }
            Err(ParseError::Incomplete)
                if input.len() + queued(conn) < state.config.query_buffer_limit =>
            {
                return Stopped::NeedInput;
            }
            Err(ParseError::Incomplete) => {
                state.stats.query_buffer_limit_disconnections += 1;
                fail(conn, ProtocolError::QueryBufferLimit, state);
                return Stopped::Held;
            }
            Err(ParseError::Invalid { consumed, error }) => {
                let reply = Reply::error_owned(error.to_string());
                let dialect = line_dialect(&conn.client, state);
                protocol::encode_reply(&reply, dialect, &mut conn.output);
                state.stats.error_replies += 1;
                consumed
            }
            Err(ParseError::Fatal(error)) => {
                fail(conn, error, state);
                return Stopped::Held;
            }
        };
        conn.input.consume(used);
    }
}

/// Bytes of commands `conn` queued for EXEC, and of its watches.
fn queued(conn: &Connection) -> usize {
    let queue = conn
        .client
        .multi
        .as_ref()
        .map_or(0, |queue| queue.requests.len());
    queue + conn.client.watched_bytes
}

/// Starts loading what the requests at the start of `input` will look up, when more than one
/// has arrived (a lone request would wait for its own prefetch); returns how many requests that
/// covers, at least one.
fn prefetch(input: &[u8], store: &Store) -> usize {
    let mut keys = [&b""[..]; PREFETCH_BATCH];
    let (requests, found) = protocol::peek_keys(input, &mut keys);
    if requests < 2 {
        return 1;
    }
    store.prefetch(&keys[..found]);
    requests
}

/// Runs one request and appends its reply to `output`, unless the command holds it (SAVE) or
/// suppresses it (SHUTDOWN); returns what the connection must do next, and whether the request
/// went into the journal.
fn execute_one(
    request: &Request<'_>,
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> (Flow, bool) {
    // Decided before the command runs (its reply borrows the client); HELLO 3's own reply is
    // already RESP3, and errors read the same in both versions.
    let dialect = match command::protocol_requested(&request.args) {
        Some(resp3) if reply_dialect(request, client, state) != Dialect::Text => {
            if resp3 {
                Dialect::Resp3
            } else {
                Dialect::Resp
            }
        }
        _ => reply_dialect(request, client, state),
    };
    // Messages for this client are printed in the dialect it was last answered in.
    client.text = dialect == Dialect::Text;
    let mut encode =
        |reply: &Reply<'_>, out: &mut Vec<u8>| protocol::encode_reply(reply, dialect, out);
    let renamed_args;
    let args = if state.config.renames.is_empty() {
        &request.args[..]
    } else {
        // Renamed commands run, and reach the log, under their own names, so the log replays
        // whatever the renames are at the next start.
        let Some(args) = renamed(&request.args, &state.config.renames) else {
            state.stats.commands += 1;
            state.stats.error_replies += 1;
            transaction::fail_queue(client);
            encode(&command::unknown(&request.args), output);
            return (Flow::Continue, false);
        };
        renamed_args = args;
        &renamed_args[..]
    };
    if client.multi.is_some() {
        return transaction::in_multi(
            args,
            dialect,
            client,
            output,
            store,
            state,
            journal,
            &mut encode,
        );
    }
    execute_args(args, client, output, store, state, journal, &mut encode)
}

/// `args` with a new command name put back to the command's own; `None` for a command renamed
/// away (its old name is unknown now, as in Redis).
fn renamed<'a>(args: &[Arg<'a>], renames: &[(String, String)]) -> Option<Vec<Arg<'a>>> {
    let name = args.first().map_or(&b""[..], |a| a.as_ref());
    let mut args = args.to_vec();
    if let Some((own, _)) = renames
        .iter()
        .find(|(_, new)| !new.is_empty() && new.as_bytes().eq_ignore_ascii_case(name))
    {
        if let Some(first) = args.first_mut() {
            *first = std::borrow::Cow::Owned(own.as_bytes().to_vec());
        }
        return Some(args);
    }
    if renames
        .iter()
        .any(|(own, _)| own.as_bytes().eq_ignore_ascii_case(name))
    {
        return None;
    }
    Some(args)
}

/// Runs one command (`args[0]` is its name) and lets `encode` append its reply to `output`: the
/// dialects' encoders, or an HTTP response. Returns as [`execute_one`] does.
///
/// This is the one place data changes: a command that moved the store's change counter is
/// recorded in the journal, which feeds the append-only log (and, later, replicas). Every front
/// door (RESP, text, HTTP) comes through here, so counters, the slow log and journaling apply
/// to all of them alike.
pub(super) fn execute_args(
    args: &[Arg<'_>],
    client: &mut ClientState,
    output: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    // Not generic: one copy of this function serves every front door.
    encode: &mut dyn FnMut(&Reply<'_>, &mut Vec<u8>),
) -> (Flow, bool) {
    let before = store.dirty();
    let published = state.pubsub.outbox.deliveries.len();
    // While anyone watches: which watched keys this command may touch (nobody: no lookup).
    let watched = if state.watches.is_empty() {
        Vec::new()
    } else {
        transaction::watched_before(args, store, state)
    };
    let mut ctx = Ctx::new(&mut *store, client, state);
    let started = Instant::now();
    let (reply, call) = command::execute_call(&mut ctx, args);
    if let Call::Postponed = call {
        return (Flow::Postpone, false);
    }
    let took = started.elapsed();
    let is_error = reply.is_error();
    let mark = output.len();
    encode(&reply, output);
    drop(reply);
    let log_as = ctx.log_as.take();
    let replicate = ctx.replicate;
    if is_error {
        state.stats.error_replies += 1;
    }
    account(call, is_error, took, args, client, state);
    audit(call, is_error, args, client, state);
    // Keys the command found expired, or evicted to make room, are logged as deletions first;
    // each also counted as a change, so the command itself changed data only if the counter
    // moved further.
    let outbox_before = state.pubsub.outbox.deliveries.len();
    let dropped = record_dropped(store, state, journal);
    if state.pubsub.outbox.deliveries.len() > published {
        // Keys expired or evicted during the command were gone before it acted: their
        // notifications go first, as Redis sends them.
        let deliveries = &mut state.pubsub.outbox.deliveries[published..];
        let late = deliveries.len() - (outbox_before - published);
        deliveries.rotate_right(late);
        deliver_own(client, output, mark, state);
    }
    let changed = store.dirty() - before > dropped as u64;
    if changed && !watched.is_empty() {
        transaction::touch_written(watched, store, state);
    }
    let recorded = changed && Journal::active(state);
    if recorded {
        match &log_as {
            Some(rewritten) => journal.record(rewritten, state),
            None => journal.record(args, state),
        }
        client.woff = state.repl.offset;
    } else if replicate && state.repl.streaming() {
        // PUBLISH: to replicas' subscribers, not to the log (a replica passes on its primary's
        // stream as it came, so a client's PUBLISH there stays local, as in Redis).
        journal.replicate(args, state);
        client.woff = state.repl.offset;
    }
    let flow = std::mem::take(&mut client.flow);
    match flow {
        Flow::AwaitSnapshot | Flow::Silent | Flow::Wait { .. } | Flow::Shutdown => {
            output.truncate(mark)
        }
        Flow::Close | Flow::Continue | Flow::Replicate(_) | Flow::Postpone => {}
    }
    (flow, recorded && state.log.enabled)
}

/// Puts the messages this command published to its own client (a RESP3 client subscribed to
/// the channel it publishes on, or to keyspace events of a key it writes) before the command's
/// reply at `mark`, where Redis puts them; the loop delivers the rest.
fn deliver_own(client: &ClientState, output: &mut Vec<u8>, mark: usize, state: &mut ServerState) {
    let me = client.subscriber();
    let outbox = &mut state.pubsub.outbox;
    if !client.subs.active() || !outbox.deliveries.iter().any(|d| d.to == me) {
        return;
    }
    let mut own = Vec::new();
    let dialect = push_dialect(client);
    for delivery in outbox.deliveries.iter().filter(|d| d.to == me) {
        if let Some(message) = outbox.messages.get(delivery.message) {
            let frame = crate::pubsub::message_frame(message, delivery.pattern.as_deref());
            protocol::encode_reply(&frame, dialect, &mut own);
        }
    }
    outbox.deliveries.retain(|d| d.to != me);
    let at = mark.min(output.len());
    output.splice(at..at, own);
}

/// The dialect messages reach `client` in.
pub(super) fn push_dialect(client: &ClientState) -> Dialect {
    if client.text {
        Dialect::Text
    } else if client.resp3 {
        Dialect::Resp3
    } else {
        Dialect::Resp
    }
}

/// How replies to `request` are encoded: RESP requests get RESP3 once the client chose it;
/// text lines get the human dialect, or RESP like any request under `inline-reply-format resp`.
fn reply_dialect(request: &Request<'_>, client: &ClientState, state: &ServerState) -> Dialect {
    match request.dialect {
        Dialect::Text => line_dialect(client, state),
        _ if client.resp3 => Dialect::Resp3,
        _ => Dialect::Resp,
    }
}

/// How a text line is answered: as text, or as Redis answers inline commands.
fn line_dialect(client: &ClientState, state: &ServerState) -> Dialect {
    match (state.config.inline_replies_resp, client.resp3) {
        (false, _) => Dialect::Text,
        (true, false) => Dialect::Resp,
        (true, true) => Dialect::Resp3,
    }
}

/// Writes a line to the audit log for a write command that ran: who, which command, which key.
fn audit(call: Call, is_error: bool, args: &[Arg<'_>], client: &ClientState, state: &ServerState) {
    let (Call::Ran(spec), Some(audit)) = (call, &state.audit) else {
        return;
    };
    if !spec.is_write() {
        return;
    }
    let key = usize::try_from(spec.keys.0)
        .ok()
        .filter(|&first| first > 0)
        .and_then(|first| args.get(first));
    audit.record(
        command::unix_time().as_millis(),
        client.peer,
        spec.name,
        key.map(|k| k.as_ref()),
        !is_error,
    );
}

/// Counts a request in its command's figures, and in the slow log when it ran slowly.
fn account(
    call: Call,
    is_error: bool,
    took: Duration,
    args: &[Arg<'_>],
    client: &ClientState,
    state: &mut ServerState,
) {
    let spec = match call {
        Call::Unknown | Call::Postponed => return,
        Call::Rejected(spec) => {
            state
                .stats
                .per_command
                .entry(spec.name)
                .or_default()
                .rejected_calls += 1;
            return;
        }
        Call::Ran(spec) => spec,
    };
    let stat = state.stats.per_command.entry(spec.name).or_default();
    stat.calls += 1;
    stat.failed_calls += u64::from(is_error);
    stat.latency.record(took);
    // AUTH, HELLO and ACL SETUSER carry passwords: Redis redacts them; pocketkv does not log
    // them at all.
    if matches!(spec.name, "auth" | "hello" | "acl|setuser") {
        return;
    }
    let config = &state.config;
    let (threshold, max_len) = (config.slowlog_log_slower_than, config.slowlog_max_len);
    state.slowlog.offer(
        threshold,
        max_len,
        took,
        args,
        client.peer,
        client.name.as_deref().unwrap_or_default(),
    );
}

/// Answers a request whose framing is lost, in the dialect it seems to be in, and closes.
fn fail(conn: &mut Connection, error: ProtocolError, state: &mut ServerState) {
    let dialect = match conn.input.pending().first() {
        Some(b'*') => Dialect::Resp,
        _ => line_dialect(&conn.client, state),
    };
    let reply = Reply::error_owned(error.to_string());
    protocol::encode_reply(&reply, dialect, &mut conn.output);
    state.stats.error_replies += 1;
    conn.closing = Closing::AfterFlush;
}

/// True when a reply must wait for the log to be fsynced (`appendfsync always`): the request
/// wrote a record, or it may have seen one not on disk yet, so nobody learns of an effect, their
/// own or another client's, before it is durable. While the log is failing, writes are refused
/// anyway and reads go on: only the writers already waiting keep waiting.
pub(super) fn must_wait_for_fsync(state: &ServerState, recorded: bool) -> bool {
    let log = &state.log;
    log.policy == Some(FsyncPolicy::Always)
        && (recorded || log.last_seq > log.durable_seq && log.failing.is_none())
}
