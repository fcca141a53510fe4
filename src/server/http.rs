//! The HTTP front door: REST routes on the keyspace, `/metrics` and `/healthz`, served by the
//! same loop and slab as RESP and text clients.
//!
//! The web console's page (`/` and the files it loads, see [`console`]) is answered before
//! authentication: it holds no data, and every call it makes goes through the routes below with
//! the credentials the person typed.
//!
//! Key routes become the same argument lists the other dialects produce (`GET key`, `SET key
//! value [EX ttl]`, `DEL key`, `KEYS prefix*`) and run through [`execute_args`], so counters, the
//! slow log, journaling, `MISCONF` and the log's fsync hold apply exactly as they do to RESP.

use std::borrow::Cow;

use super::connection::{Closing, Connection, Hold};
use super::console::{self, Answer};
use super::execute::{execute_args, must_wait_for_fsync, Stopped};
use super::metrics;
use super::persistence::Journal;
use crate::command::{Arg, ClientState, Queue, ServerState};
use crate::protocol::http::{self, HttpError, HttpLimits, HttpParse, HttpRequest, Method, Version};
use crate::protocol::Reply;
use crate::store::Store;

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";
const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
/// Prometheus's text exposition format.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Keys `GET /v1/keys` returns when no `limit` is given.
const DEFAULT_LIST_LIMIT: usize = 1000;
/// The largest `limit` accepted.
const MAX_LIST_LIMIT: usize = 1_000_000;

/// Serves every complete request in `conn`'s input, appending the responses; stops early, as
/// the RESP and text path does, once the turn's copy-on-write budget (`copy_limit`) is spent.
pub(super) fn execute_pending(
    conn: &mut Connection,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
    copy_limit: u64,
) -> Stopped {
    let limits = HttpLimits {
        max_head: state.config.http_max_header_bytes,
        max_body: state.config.limits.max_bulk_len,
    };
    if conn.client.sse {
        // A stream only sends; anything the client sends now is dropped unread.
        let pending = conn.input.pending().len();
        conn.input.consume(pending);
        return Stopped::NeedInput;
    }
    loop {
        if conn.closing != Closing::No || conn.client.sse {
            return Stopped::Held;
        }
        if store.copied().shards >= copy_limit {
            return Stopped::Yield;
        }
        if conn.pending_output() >= state.config.output_buffer_high_water {
            return Stopped::Backlog;
        }
        let input = conn.input.pending();
        if input.is_empty() {
            return Stopped::NeedInput;
        }
        match http::parse_http(input, &limits) {
            Ok(HttpParse::Request(request, used)) => {
                if state.holds(may_write(&request)) {
                    // It waits, unread, as RESP writes do.
                    conn.postponed = true;
                    return Stopped::Held;
                }
                conn.continue_sent = false;
                let mark = conn.output.len();
                let (keep_alive, recorded) = serve(
                    &request,
                    &mut conn.client,
                    &mut conn.output,
                    store,
                    state,
                    journal,
                );
                count(state, &conn.output, mark);
                if must_wait_for_fsync(state, recorded) {
                    conn.hold = Some(Hold::until(conn.hold, state.log.last_seq, mark));
                }
                conn.input.consume(used);
                if !keep_alive {
                    conn.closing = Closing::AfterFlush;
                }
            }
            Ok(HttpParse::Incomplete { continue_wanted }) => {
                if input.len() >= state.config.query_buffer_limit {
                    refuse(conn, HttpError::BodyTooLarge, state);
                    return Stopped::Held;
                }
                if continue_wanted && !conn.continue_sent {
                    conn.output
                        .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    conn.continue_sent = true;
                }
                return Stopped::NeedInput;
            }
            Err(error) => {
                refuse(conn, error, state);
                return Stopped::Held;
            }
        }
    }
}

/// Whether `request` may change data (or publish): what waits while writes are paused. A
/// `POST /v1/tx` always does (it is not parsed twice).
// Kept out of the request loop: it runs only while a shutdown waits for replicas.
#[inline(never)]
fn may_write(request: &HttpRequest<'_>) -> bool {
    let line = request.body.strip_suffix(b"\n").unwrap_or(request.body);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match route(request) {
        Ok(Route::Put(..) | Route::Delete(_) | Route::Tx) => true,
        Ok(Route::Command) => crate::protocol::split_args(line).is_some_and(|args| {
            matches!(crate::command::resolve(&args), Some(Ok(spec)) if spec.is_write() || spec.may_replicate())
        }),
        _ => false,
    }
}

/// Counts the response written at `output[mark..]` by its status.
fn count(state: &mut ServerState, output: &[u8], mark: usize) {
    state.stats.http_requests += 1;
    // "HTTP/1.1 404 ...": the status's first digit is byte 9.
    if output.get(mark + 9).is_some_and(|&digit| digit >= b'4') {
        state.stats.http_errors += 1;
    }
}

/// Answers a request that cannot be served with its status, and closes: after a malformed
/// request the next one's start is unknown.
fn refuse(conn: &mut Connection, error: HttpError, state: &mut ServerState) {
    let (status, reason) = error.status();
    let body = format!("{error}\n");
    let mark = conn.output.len();
    let response = Response::new(status, reason, TEXT).close();
    response.write(body.as_bytes(), false, &mut conn.output);
    count(state, &conn.output, mark);
    conn.closing = Closing::AfterFlush;
}

/// The response for a client refused at `maxclients` (503) or by protected mode (403), with
/// the text a RESP client would get.
pub(super) fn refusal_response(status: u16, reason: &'static str, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Response::new(status, reason, TEXT)
        .close()
        .write(text, false, &mut out);
    out
}

/// A status line and headers; the body is given to [`Response::write`].
#[derive(Debug, Clone, Copy)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    /// `Connection: close` (true) or, for HTTP/1.0 keep-alive, `Connection: keep-alive`.
    close: bool,
    keep_alive_header: bool,
    authenticate: bool,
    allow: Option<&'static str>,
    /// A stream: no Content-Length, the body runs until the connection closes.
    streaming: bool,
    /// The console's headers: [`console::SECURITY_HEADERS`] and this `Cache-Control`.
    console: Option<&'static str>,
    /// The body is gzip-compressed, with this entity tag.
    gzip_etag: Option<&'static str>,
}

impl Response {
    fn new(status: u16, reason: &'static str, content_type: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type,
            close: false,
            keep_alive_header: false,
            authenticate: false,
            allow: None,
            streaming: false,
            console: None,
            gzip_etag: None,
        }
    }

    /// With the console's security headers and `Cache-Control: cache`.
    fn console(mut self, cache: &'static str) -> Response {
        self.console = Some(cache);
        self
    }

    fn close(mut self) -> Response {
        self.close = true;
        self
    }

    /// Appends the response; `head_only` (HEAD) leaves out the body but keeps its length.
    fn write(self, body: &[u8], head_only: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.streaming {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(self.content_type.as_bytes());
            out.extend_from_slice(b"\r\nCache-Control: no-cache\r\n");
        } else if self.status != 204 && self.status != 304 {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(self.content_type.as_bytes());
            out.extend_from_slice(b"\r\nContent-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(etag) = self.gzip_etag {
            if self.status != 304 {
                out.extend_from_slice(b"Content-Encoding: gzip\r\n");
            }
            out.extend_from_slice(b"Vary: Accept-Encoding\r\nETag: ");
            out.extend_from_slice(etag.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(cache) = self.console {
            out.extend_from_slice(b"Cache-Control: ");
            out.extend_from_slice(cache.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(console::SECURITY_HEADERS.as_bytes());
        }
        if let Some(allow) = self.allow {
            out.extend_from_slice(b"Allow: ");
            out.extend_from_slice(allow.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if self.authenticate {
            out.extend_from_slice(b"WWW-Authenticate: Bearer realm=\"pocketkv\"\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if self.keep_alive_header {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && self.status != 204 && self.status != 304 {
            out.extend_from_slice(body);
        }
    }
}

/// Which key route a command serves, for rendering its reply.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Get,
    Put,
    Delete,
    /// At most this many keys.
    List(usize),
    /// A Server-Sent Events stream of a channel.
    Subscribe,
}

/// What a request asks for once its path is understood.
enum Route<'a> {
    Health,
    Metrics,
    List(Arg<'a>, usize),
    Get(Arg<'a>),
    Put(Arg<'a>, Option<&'a [u8]>),
    Delete(Arg<'a>),
    Subscribe(Arg<'a>),
    Tx,
    /// The console's charts: `GET /v1/stats`.
    Stats,
    /// The console's command line: `POST /v1/command`.
    Command,
}

/// Answers one request into `out`; returns whether the connection stays open, and whether a
/// change went into the journal.
fn serve(
    request: &HttpRequest<'_>,
    client: &mut ClientState,
    out: &mut Vec<u8>,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> (bool, bool) {
    let keep_alive = request.keep_alive;
    let head_only = request.method == Method::Head;
    let shape = |mut response: Response| {
        response.close = !keep_alive;
        response.keep_alive_header = keep_alive && request.version == Version::Http10;
        response
    };
    if state.config.http_console {
        if let Some(answer) = console::answer(request) {
            console_file(answer, shape, head_only, out);
            return (keep_alive, false);
        }
    }
    let (path, _) = http::split_target(request.target);
    let user = if path == b"/healthz" {
        Ok(crate::acl::DEFAULT_USER)
    } else {
        authorized(request, state)
    };
    let user = match user {
        Ok(user) => user,
        Err(tried) => {
            if let Some(name) = tried {
                // In ACL LOG as a failed AUTH is (reason auth, the name tried).
                client.user = crate::acl::DEFAULT_USER;
                let mut ctx = crate::command::Ctx::new(store, client, state);
                crate::command::record_failed_login(&mut ctx, b"AUTH", &name);
            }
            let mut response = Response::new(401, "Unauthorized", TEXT);
            response.authenticate = true;
            shape(response).write(b"unauthorized\n", head_only, out);
            return (keep_alive, false);
        }
    };
    let route = match route(request) {
        Ok(route) => route,
        Err((response, body)) => {
            shape(response).write(body.as_bytes(), head_only, out);
            return (keep_alive, false);
        }
    };
    // Each request carries its own credentials; nothing is remembered between them.
    client.authenticated = true;
    client.user = user;
    // One call site for every key route, so the command path is compiled once for HTTP.
    let mut command = |kind: Kind, args: Vec<Arg<'_>>| {
        // A command renamed or disabled with --rename-command is hidden from clients that do not
        // know its new name; HTTP clients cannot name it, so its route is refused.
        let name = args.first().map_or(&b""[..], |a| a.as_ref());
        if let Some((response, body)) = renamed_away(name, state) {
            shape(response).write(body.as_bytes(), head_only, out);
            return false;
        }
        let mut render = |reply: &Reply<'_>, out: &mut Vec<u8>| match (kind, reply) {
            (Kind::Get, Reply::Bulk(value)) => {
                shape(Response::new(200, "OK", BINARY)).write(value, head_only, out)
            }
            (Kind::Get, Reply::Nil) | (Kind::Delete, Reply::Integer(0)) => {
                not_found(shape, head_only, out)
            }
            (Kind::Put, Reply::Status(_)) | (Kind::Delete, Reply::Integer(_)) => {
                shape(Response::new(204, "No Content", TEXT)).write(b"", head_only, out)
            }
            (Kind::Subscribe, Reply::Many(frames)) if !frames.iter().any(Reply::is_error) => {
                // No length and no chunking: the stream is the rest of the connection, and ends
                // cleanly when the server closes it.
                let mut response = Response::new(200, "OK", EVENT_STREAM).close();
                response.streaming = true;
                response.write(b": subscribed\n\n", false, out);
            }
            (Kind::List(limit), Reply::Array(items)) => {
                let mut keys: Vec<&[u8]> = items
                    .iter()
                    .filter_map(|item| match item {
                        Reply::Bulk(key) => Some(key.as_ref()),
                        _ => None,
                    })
                    .collect();
                keys.sort_unstable();
                keys.truncate(limit);
                let body = json_keys(&keys);
                shape(Response::new(200, "OK", JSON)).write(&body, head_only, out)
            }
            (_, other) => error_response(other, shape, head_only, out),
        };
        execute_args(&args, client, out, store, state, journal, &mut render).1
    };
    let recorded = match route {
        Route::Health => {
            shape(Response::new(200, "OK", TEXT)).write(b"ok\n", head_only, out);
            false
        }
        Route::Metrics => {
            // The figures INFO shows, for the users that may run INFO.
            if let Err(refusal) = may_run_info(client, store, state) {
                error_response(&refusal, shape, head_only, out);
                return (keep_alive, false);
            }
            let body = metrics::render(store, state);
            shape(Response::new(200, "OK", PROMETHEUS)).write(body.as_bytes(), head_only, out);
            false
        }
        Route::Get(key) => command(Kind::Get, vec![Cow::Borrowed(b"GET"), key]),
        Route::Put(key, ttl) => {
            let mut args = vec![Cow::Borrowed(&b"SET"[..]), key, Cow::Borrowed(request.body)];
            if let Some(ttl) = ttl {
                args.push(Cow::Borrowed(b"EX"));
                args.push(Cow::Borrowed(ttl));
            }
            command(Kind::Put, args)
        }
        Route::Delete(key) => command(Kind::Delete, vec![Cow::Borrowed(b"DEL"), key]),
        Route::Subscribe(channel) => {
            let streaming = command(Kind::Subscribe, vec![Cow::Borrowed(b"SUBSCRIBE"), channel]);
            // Messages are written as events from now on; the connection closes after an error.
            client.sse = client.subs.active();
            // A stream stays open (its response says `Connection: close`: it ends with the
            // connection); after an error the connection closes.
            return (client.sse, streaming);
        }
        Route::List(pattern, limit) => {
            command(Kind::List(limit), vec![Cow::Borrowed(b"KEYS"), pattern])
        }
        Route::Tx => {
            let (response, body, recorded) =
                transaction(request.body, client, store, state, journal);
            shape(response).write(&body, head_only, out);
            recorded
        }
        Route::Stats => {
            let mut body = Vec::with_capacity(512);
            console::stats_json(&sample(store, state), &mut body);
            let response = Response::new(200, "OK", JSON).console("no-store");
            shape(response).write(&body, head_only, out);
            false
        }
        Route::Command => {
            let (response, body, recorded) =
                console_command(request.body, client, store, state, journal);
            shape(response.console("no-store")).write(&body, head_only, out);
            recorded
        }
    };
    (keep_alive, recorded)
}

/// `POST /v1/tx`: the body's commands, checked first (a body that is not an array of commands,
/// or names an unknown command or one with the wrong arity, runs nothing: 400), then run as one
/// transaction; the answer is the array of their replies.
// Kept out of the request loop: only POST /v1/tx comes here.
#[inline(never)]
fn transaction(
    body: &[u8],
    client: &mut ClientState,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> (Response, Vec<u8>, bool) {
    const SHAPE: &str = "the body must be a JSON array of commands, each an array of strings";
    let Some(commands) = crate::protocol::json::parse_commands(body) else {
        let (response, text) = bad_request(SHAPE);
        return (response, text.into_bytes(), false);
    };
    run_commands(commands, Tx::Json, client, store, state, journal)
}

/// `POST /v1/command` (the console's command line): the body is one command as the text
/// dialect writes it (quotes and escapes as in `redis-cli`), run as `POST /v1/tx` runs its
/// commands; the answer is its reply as the text dialect prints it.
// Kept out of the request loop: only the console's command line comes here.
#[inline(never)]
fn console_command(
    body: &[u8],
    client: &mut ClientState,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> (Response, Vec<u8>, bool) {
    let line = body.strip_suffix(b"\n").unwrap_or(body);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let refuse = |why: &str| {
        let (response, text) = bad_request(why);
        (response, text.into_bytes(), false)
    };
    let Some(args) = crate::protocol::split_args(line) else {
        return refuse("unbalanced quotes in the command");
    };
    if args.is_empty() {
        return refuse("the body must be a command");
    }
    // A subscription would turn this request's connection into a stream of pushes.
    if args.first().is_some_and(|name| {
        [&b"subscribe"[..], b"psubscribe"]
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s))
    }) {
        return refuse("SUBSCRIBE and PSUBSCRIBE cannot run here: follow a channel with GET /v1/subscribe/{channel}");
    }
    let args = args.into_iter().map(Cow::into_owned).collect();
    run_commands(vec![args], Tx::Text, client, store, state, journal)
}

/// How [`run_commands`] writes replies: a JSON array, or each reply in the text dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    Json,
    Text,
}

/// Checks `commands` (400 for an unknown command or wrong arity, with nothing run), then runs
/// them as one transaction, their replies written as `form` says.
fn run_commands(
    commands: Vec<Vec<Vec<u8>>>,
    form: Tx,
    client: &mut ClientState,
    store: &mut Store,
    state: &mut ServerState,
    journal: &mut Journal,
) -> (Response, Vec<u8>, bool) {
    let queue = match tx_queue(commands, state) {
        Ok(queue) => queue,
        Err((response, text)) => return (response, text.into_bytes(), false),
    };
    let mut replies = if form == Tx::Json {
        b"[".to_vec()
    } else {
        Vec::new()
    };
    let mut item = |reply: &Reply<'_>, _: bool, _: &mut Vec<u8>| {
        if form == Tx::Text {
            crate::protocol::encode_reply(reply, crate::protocol::Dialect::Text, &mut replies);
            return;
        }
        if replies.len() > 1 {
            replies.push(b',');
        }
        json_reply(reply, &mut replies);
    };
    let mut unused = Vec::new();
    match super::transaction::exec_queue(
        &queue,
        client,
        &mut unused,
        store,
        state,
        journal,
        &mut item,
    ) {
        Ok(recorded) if form == Tx::Text => (Response::new(200, "OK", TEXT), replies, recorded),
        Ok(recorded) => {
            replies.extend_from_slice(b"]\n");
            (Response::new(200, "OK", JSON), replies, recorded)
        }
        Err(refusal) => {
            let (status, reason, text) = error_status(&refusal);
            (
                Response::new(status, reason, TEXT),
                [text, b"\n"].concat(),
                false,
            )
        }
    }
}

/// The queue of `commands` (`POST /v1/tx`'s body), or why it is refused.
fn tx_queue(commands: Vec<Vec<Vec<u8>>>, state: &ServerState) -> Result<Queue, Refusal> {
    const SHAPE: &str = "the body must be a JSON array of commands, each an array of strings";
    let mut queue = Queue::default();
    for command in commands {
        let args: Vec<Arg<'_>> = command.into_iter().map(Cow::Owned).collect();
        // Unknown, wrong arity, unknown subcommand: Redis's error text, as a 400.
        let refuse = |error: Reply<'_>| match error {
            Reply::Error(text) => bad_request(&String::from_utf8_lossy(&text)),
            _ => bad_request(SHAPE),
        };
        let spec = match crate::command::resolve(&args) {
            Some(Ok(spec)) => spec,
            Some(Err(error)) => return Err(refuse(error)),
            None => return Err(refuse(crate::command::unknown(&args))),
        };
        if spec.refused_in_multi() || spec.group == "transactions" {
            return Err(bad_request(
                "MULTI, EXEC, DISCARD, WATCH, UNWATCH, SAVE and SHUTDOWN cannot be in a transaction",
            ));
        }
        if let Some(refusal) = renamed_away(spec.name.as_bytes(), state) {
            return Err(refusal);
        }
        queue.push(spec, &args);
    }
    Ok(queue)
}

/// The 403 for a command renamed or disabled with `--rename-command`: HTTP clients cannot use
/// the new name, so the rename hides the command from them too.
fn renamed_away(name: &[u8], state: &ServerState) -> Option<Refusal> {
    let (own, _) = state
        .config
        .renames
        .iter()
        .find(|(own, _)| own.as_bytes().eq_ignore_ascii_case(name))?;
    let body = format!("the {own} command is renamed or disabled on this server\n");
    Some((Response::new(403, "Forbidden", TEXT), body))
}

/// A reply as JSON: strings (a value that is not UTF-8 as `{"base64": ...}`), integers, null,
/// arrays, and `{"error": "..."}`.
fn json_reply(reply: &Reply<'_>, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(text) => json_string(text, out),
        Reply::Text(text) => json_string(text, out),
        Reply::Bulk(bytes) | Reply::Double(bytes) => json_value(bytes, out),
        Reply::Integer(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Reply::Nil | Reply::NilArray => out.extend_from_slice(b"null"),
        Reply::Error(text) => {
            out.extend_from_slice(b"{\"error\":");
            json_string(&String::from_utf8_lossy(text), out);
            out.push(b'}');
        }
        // SUBSCRIBE's frames inside a transaction read as arrays.
        Reply::Array(items) | Reply::Push(items) | Reply::Many(items) | Reply::Set(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_reply(item, out);
            }
            out.push(b']');
        }
        Reply::Map(pairs) => {
            out.push(b'[');
            for (i, (field, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_reply(field, out);
                out.push(b',');
                json_reply(value, out);
            }
            out.push(b']');
        }
    }
}

/// Whether the request's user may read `/metrics`: as INFO, whose figures it shows. A refusal
/// is the `NOPERM` reply, in ACL LOG as a refused INFO.
#[inline(never)]
fn may_run_info(
    client: &mut ClientState,
    store: &mut Store,
    state: &mut ServerState,
) -> Result<(), Reply<'static>> {
    let (Some(spec), false) = (
        crate::command::lookup(b"info"),
        state.acl.unrestricted(client.user),
    ) else {
        return Ok(());
    };
    let mut ctx = crate::command::Ctx::new(store, client, state);
    crate::command::check_acl(&mut ctx, spec, &[Cow::Borrowed(&b"INFO"[..])], false)
}

/// The user a request runs as: `Authorization: Basic` with user:password, `Bearer <password>`
/// for the default user, or the default user when it needs no password. `Err` (401) when the
/// credentials are missing or wrong, with the user name tried when there was one.
fn authorized(
    request: &HttpRequest<'_>,
    state: &ServerState,
) -> Result<crate::acl::UserRef, Option<Vec<u8>>> {
    let acl = &state.acl;
    let Some(value) = request.authorization else {
        return acl
            .default_open()
            .then_some(crate::acl::DEFAULT_USER)
            .ok_or(None);
    };
    let space = value.iter().position(|&b| b == b' ').ok_or(None)?;
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    let (name, password) = if scheme.eq_ignore_ascii_case(b"Bearer") {
        (b"default".to_vec(), token.to_vec())
    } else if scheme.eq_ignore_ascii_case(b"Basic") {
        let mut decoded = crate::protocol::json::base64_decode(token).ok_or(None)?;
        let colon = decoded.iter().position(|&b| b == b':').ok_or(None)?;
        let password = decoded.split_off(colon + 1);
        decoded.truncate(colon);
        (decoded, password)
    } else {
        return Err(None);
    };
    acl.authenticate(&name, &password).ok_or(Some(name))
}

type Refusal = (Response, String);

fn bad_request(why: &str) -> Refusal {
    (
        Response::new(400, "Bad Request", TEXT),
        format!("bad request: {why}\n"),
    )
}

/// Finds the route for a request's method and path.
fn route<'a>(request: &HttpRequest<'a>) -> Result<Route<'a>, Refusal> {
    let (path, query) = http::split_target(request.target);
    let method = request.method;
    let read_only = |allowed: &'static str| -> Result<(), Refusal> {
        match method {
            Method::Get | Method::Head => Ok(()),
            _ => Err(not_allowed(allowed)),
        }
    };
    match path {
        b"/healthz" => {
            read_only("GET, HEAD")?;
            no_query(query)?;
            Ok(Route::Health)
        }
        b"/metrics" => {
            read_only("GET, HEAD")?;
            no_query(query)?;
            Ok(Route::Metrics)
        }
        b"/v1/keys" => {
            read_only("GET, HEAD")?;
            list_route(query)
        }
        b"/v1/tx" | b"/v1/command" => {
            if method != Method::Post {
                return Err(not_allowed("POST"));
            }
            no_query(query)?;
            Ok(if path == b"/v1/tx" {
                Route::Tx
            } else {
                Route::Command
            })
        }
        b"/v1/stats" => {
            read_only("GET, HEAD")?;
            no_query(query)?;
            Ok(Route::Stats)
        }
        _ if path.starts_with(b"/v1/subscribe/") => {
            if method != Method::Get {
                return Err(not_allowed("GET"));
            }
            no_query(query)?;
            let encoded = path.get(b"/v1/subscribe/".len()..).unwrap_or_default();
            let channel = http::percent_decode(encoded, false)
                .ok_or_else(|| bad_request("invalid percent-encoding in the channel"))?;
            Ok(Route::Subscribe(channel))
        }
        _ => {
            let Some(encoded) = path.strip_prefix(b"/v1/keys/") else {
                return Err((
                    Response::new(404, "Not Found", TEXT),
                    "not found\n".to_string(),
                ));
            };
            let key = http::percent_decode(encoded, false)
                .ok_or_else(|| bad_request("invalid percent-encoding in the key"))?;
            match method {
                Method::Get | Method::Head => {
                    no_query(query)?;
                    Ok(Route::Get(key))
                }
                Method::Delete => {
                    no_query(query)?;
                    Ok(Route::Delete(key))
                }
                Method::Put => {
                    let mut ttl = None;
                    for (name, value) in http::query_pairs(query) {
                        if name != b"ttl" {
                            return Err(bad_request("unknown query parameter"));
                        }
                        let valid = !value.is_empty()
                            && value.len() <= 18
                            && value.iter().all(u8::is_ascii_digit)
                            && value.iter().any(|&d| d != b'0');
                        if !valid {
                            return Err(bad_request("ttl must be a positive number of seconds"));
                        }
                        ttl = Some(value);
                    }
                    if request.content_length.is_none() {
                        return Err((
                            Response::new(411, "Length Required", TEXT),
                            "length required: send the value with a Content-Length\n".into(),
                        ));
                    }
                    Ok(Route::Put(key, ttl))
                }
                Method::Post | Method::Other => Err(not_allowed("GET, HEAD, PUT, DELETE")),
            }
        }
    }
}

fn list_route(query: &[u8]) -> Result<Route<'_>, Refusal> {
    let mut prefix: Cow<'_, [u8]> = Cow::Borrowed(b"");
    let mut limit = DEFAULT_LIST_LIMIT;
    for (name, value) in http::query_pairs(query) {
        match name {
            b"prefix" => {
                prefix = http::percent_decode(value, true)
                    .ok_or_else(|| bad_request("invalid percent-encoding in prefix"))?;
            }
            b"limit" => {
                limit = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n <= MAX_LIST_LIMIT)
                    .ok_or_else(|| bad_request("limit must be a number from 0 to 1000000"))?;
            }
            _ => return Err(bad_request("unknown query parameter")),
        }
    }
    // The prefix as a glob that matches it literally, then anything.
    let mut pattern = Vec::with_capacity(prefix.len() * 2 + 1);
    for &b in prefix.iter() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern.push(b'*');
    Ok(Route::List(Cow::Owned(pattern), limit))
}

/// Writes the console's answer for one of its files.
fn console_file(
    answer: Answer,
    shape: impl Fn(Response) -> Response,
    head_only: bool,
    out: &mut Vec<u8>,
) {
    // `no-cache`: the browser keeps the file but asks each time whether it is still current
    // (a `304` when it is), so a new server version is never hidden behind an old page.
    let (mut response, body): (Response, &[u8]) = match answer {
        Answer::File(asset) => (Response::new(200, "OK", asset.content_type), asset.gzip),
        Answer::NotModified(_) => (Response::new(304, "Not Modified", TEXT), b""),
        Answer::NotAcceptable => (
            Response::new(406, "Not Acceptable", TEXT),
            b"the console is served gzip-compressed only\n",
        ),
        Answer::NotAllowed => {
            let mut response = Response::new(405, "Method Not Allowed", TEXT);
            response.allow = Some("GET, HEAD");
            (response, b"method not allowed\n")
        }
    };
    if let Answer::File(asset) | Answer::NotModified(asset) = answer {
        response.gzip_etag = Some(asset.etag);
    }
    shape(response.console("no-cache")).write(body, head_only, out);
}

/// The figures `GET /v1/stats` reports.
fn sample(store: &Store, state: &ServerState) -> console::Sample {
    let mut latency = vec![0; crate::command::BUCKET_BOUNDS_USEC.len() + 1];
    for stat in state.stats.per_command.values() {
        for (sum, count) in latency.iter_mut().zip(stat.latency.counts.iter()) {
            *sum += count;
        }
    }
    let stats = &state.stats;
    console::Sample {
        uptime_ms: u64::try_from(state.uptime().as_millis()).unwrap_or(u64::MAX),
        commands: stats.commands,
        keys: store.len() as u64,
        used_memory: store.used_bytes() as u64,
        maxmemory: state.config.maxmemory as u64,
        rss: state.rss_bytes as u64,
        clients: state.connected_clients as u64,
        net_input: stats.net_input_bytes,
        net_output: stats.net_output_bytes,
        latency,
    }
}

fn no_query(query: &[u8]) -> Result<(), Refusal> {
    if http::query_pairs(query).next().is_some() {
        return Err(bad_request("unknown query parameter"));
    }
    Ok(())
}

fn not_allowed(allow: &'static str) -> Refusal {
    let mut response = Response::new(405, "Method Not Allowed", TEXT);
    response.allow = Some(allow);
    (response, "method not allowed\n".to_string())
}

fn not_found(shape: impl Fn(Response) -> Response, head_only: bool, out: &mut Vec<u8>) {
    shape(Response::new(404, "Not Found", TEXT)).write(b"not found\n", head_only, out);
}

/// A command's error reply as a status: refused writes and memory limits are the server's
/// state (503, 507), a feature not there yet 501, a value too large 413, other `ERR`s the
/// request's fault (400), anything else 500. The body is the error text.
fn error_response(
    reply: &Reply<'_>,
    shape: impl Fn(Response) -> Response,
    head_only: bool,
    out: &mut Vec<u8>,
) {
    let (status, reason, text) = error_status(reply);
    let mut body = text.to_vec();
    body.push(b'\n');
    shape(Response::new(status, reason, TEXT)).write(&body, head_only, out);
}

/// The status for a command's error reply (see [`error_response`]) and the error's text.
fn error_status<'r>(reply: &'r Reply<'_>) -> (u16, &'static str, &'r [u8]) {
    let text: &[u8] = match reply {
        Reply::Error(text) => text,
        _ => b"ERR unexpected reply",
    };
    let contains = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    let (status, reason) = if text.starts_with(b"MISCONF") || contains(b": MISCONF") {
        (503, "Service Unavailable")
    } else if text.starts_with(b"OOM") || contains(b": OOM") {
        (507, "Insufficient Storage")
    } else if text.starts_with(b"NOAUTH") {
        (401, "Unauthorized")
    } else if text.starts_with(b"NOPERM") {
        (403, "Forbidden")
    } else if contains(b"not supported yet") {
        (501, "Not Implemented")
    } else if contains(b"maximum allowed size") {
        (413, "Content Too Large")
    } else if text.starts_with(b"ERR") {
        (400, "Bad Request")
    } else {
        (500, "Internal Server Error")
    };
    (status, reason, text)
}

/// One Server-Sent Event for a message: `data: ` and the payload as a JSON string when it is
/// UTF-8, else as `{"base64": "..."}`, then the blank line that ends the event. Either form is
/// one line, whatever bytes the payload holds.
pub(super) fn sse_event(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    json_value(payload, out);
    out.extend_from_slice(b"\n\n");
}

/// `bytes` as a JSON string, or `{"base64": "..."}` when they are not UTF-8.
fn json_value(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => json_string(text, out),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            base64(bytes, out);
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Keys as a JSON array: a key that is valid UTF-8 is a JSON string; any other key is an object
/// `{"base64": "..."}` holding its bytes, so every key can be told apart and recovered exactly.
fn json_keys(keys: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.iter().map(|k| k.len() + 3).sum::<usize>() + 2);
    out.push(b'[');
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_value(key, &mut out);
    }
    out.extend_from_slice(b"]\n");
    out
}

fn json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_json() {
        let keys: [&[u8]; 4] = [b"a", b"q\"\\\n\x01", b"\xff\x00", "é".as_bytes()];
        assert_eq!(
            String::from_utf8(json_keys(&keys)).unwrap(),
            "[\"a\",\"q\\\"\\\\\\n\\u0001\",{\"base64\":\"/wA=\"},\"é\"]\n"
        );
        assert_eq!(json_keys(&[]), b"[]\n");
    }

    #[test]
    fn base64_padding() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
        ] {
            let mut out = Vec::new();
            base64(input, &mut out);
            assert_eq!(out, expected.as_bytes());
        }
    }
}
