//! CLIENT PAUSE and CLIENT UNPAUSE: an operator holds clients' requests for a while, typically
//! writes on a primary about to hand over to a replica. Held requests wait unread in their
//! connection's input (the mechanism a shutdown waiting for replicas uses); the event loop lets
//! them run when the pause ends or is lifted.

use std::time::{Duration, Instant};

use super::{Arg, ClientPause, Ctx};
use crate::protocol::Reply;

/// CLIENT PAUSE timeout [WRITE|ALL]. As in Redis 7.0, a second pause keeps the later end and the
/// stricter kind (ALL over WRITE), each on its own.
pub(super) fn client_pause<'a>(ctx: &'a mut Ctx<'_>, args: &[Arg<'_>]) -> Reply<'a> {
    // Redis checks the mode before the timeout.
    let all = match args {
        [_, _, _] => true,
        [_, _, _, mode] if mode.eq_ignore_ascii_case(b"write") => false,
        [_, _, _, mode] if mode.eq_ignore_ascii_case(b"all") => true,
        [_, _, _, _] => return Reply::error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
        // Redis's own wording, naming the subcommand as sent: its handler, not its arity
        // table, refuses a fifth argument.
        _ => {
            let name = args.get(1).map_or(&b""[..], |a| a.as_ref());
            let mut message = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
            message.extend_from_slice(name);
            message.extend_from_slice(b"'. Try CLIENT HELP.");
            return Reply::error_bytes(message);
        }
    };
    let Some(timeout) = args.get(2) else {
        return Reply::OK; // Unreachable: the arity check asks for a timeout.
    };
    let ms = match crate::protocol::parse_i64(timeout) {
        None => return Reply::error("ERR timeout is not an integer or out of range"),
        Some(ms) if ms < 0 => return Reply::error("ERR timeout is negative"),
        Some(ms) => ms as u64,
    };
    let now = Instant::now();
    // A timeout whose end overflows Redis's clock ends at once there; the same here.
    let unix_ms = super::unix_ms();
    let until = if ms > i64::MAX as u64 - unix_ms {
        now
    } else {
        now.checked_add(Duration::from_millis(ms)).unwrap_or(now)
    };
    let server = &mut *ctx.server;
    server.client_pause = Some(match server.client_pause {
        Some(old) => ClientPause {
            until: old.until.max(until),
            all: old.all || all,
        },
        None => ClientPause { until, all },
    });
    // From the next request on, a key whose time passes is treated as gone but stays: its DEL
    // would join the replication stream (Redis, too, expires nothing during a pause).
    ctx.db.defer_expiry(true);
    Reply::OK
}

/// CLIENT UNPAUSE: lifts CLIENT PAUSE (not a shutdown's wait for replicas); the loop then lets
/// the held requests run, in the order they were held.
pub(super) fn client_unpause<'a>(ctx: &'a mut Ctx<'_>, _: &[Arg<'_>]) -> Reply<'a> {
    if ctx.server.client_pause.take().is_some() {
        ctx.server.unpaused = true;
    }
    Reply::OK
}
