//! Stopping, on SHUTDOWN, SIGTERM or SIGINT. As in Redis 7.0, a primary whose replicas have not
//! acknowledged the whole stream first waits for them, up to `shutdown-timeout` seconds (unless
//! SHUTDOWN NOW): writes wait meanwhile, unread, so the stream stops growing; reads and every
//! other command run; SHUTDOWN ABORT cancels. Then the loop stops accepting, sends the replies
//! it computed, saves and returns.

use std::time::{Duration, Instant};

use log::{info, warn};

use super::replicate::GETACK;
use super::Server;
use crate::protocol::{self, Reply};
use crate::replication::ReplicaRow;

/// What the SHUTDOWN callers get when SHUTDOWN ABORT cancels their shutdown: Redis 7.0's text.
const ABORTED: Reply<'static> = Reply::error("ERR Errors trying to SHUTDOWN. Check logs.");

impl Server {
    /// Once per turn: a SHUTDOWN ABORT, a SHUTDOWN, the end of the wait for replicas.
    pub(super) fn shutdown_turn(&mut self, now: Instant) {
        if std::mem::take(&mut self.state.shutdown_aborted) {
            self.abort_shutdown();
        }
        if let Some(save) = self.state.shutdown.take() {
            // Only the SHUTDOWN that started the shutdown sets it (a later one waits with it).
            self.skip_final_save = !save;
            let asked_now = self.state.shutdown_now;
            self.begin_shutdown("SHUTDOWN command", asked_now);
        }
        if self.state.shutdown_wait.is_some() && self.replicas_done(now) {
            self.stop("shutting down");
        }
    }

    /// SIGINT or SIGTERM. As in Redis, a SIGINT after a signal already asked for the shutdown
    /// under way (Ctrl-C pressed twice) means now: exit at once, without waiting for replicas
    /// and without the final snapshot; the data is what the log and the last snapshot hold.
    pub(super) fn shutdown_signal(&mut self, name: &'static str) {
        let under_way = self.state.shutdown_wait.is_some() || self.stopping.is_some();
        if name == "SIGINT" && self.shutdown_signalled && under_way {
            warn!("SIGINT again: exiting now, without saving (\"You insist... exiting now.\")");
            // A final snapshot being written is left unfinished: its temporary file goes.
            let mut temp = self.state.config.snapshot_path().into_os_string();
            temp.push(".tmp");
            let _ = std::fs::remove_file(temp);
            std::process::exit(1);
        }
        self.shutdown_signalled = true;
        self.begin_shutdown(name, false);
    }

    /// Starts a shutdown, unless one is under way: first a wait for lagging replicas unless
    /// `now` (SHUTDOWN NOW) or `shutdown-timeout 0`, else at once.
    pub(super) fn begin_shutdown(&mut self, why: &str, now: bool) {
        if self.stopping.is_some() {
            return;
        }
        if self.state.shutdown_wait.is_some() {
            // As in Redis: a signal or SHUTDOWN during the wait changes nothing.
            info!("{why}: a shutdown already waits for the replicas");
            return;
        }
        let timeout = self.state.config.repl.shutdown_timeout;
        if now || timeout == 0 || !self.state.repl.replicas_lag() {
            return self.stop(why);
        }
        // Asked at once; their answers come through REPLCONF ACK.
        self.state.repl.feed(GETACK);
        self.state.writes_paused = true;
        // Keys whose time passes now are treated as gone but not deleted: a DEL would join
        // the stream the replicas are catching up with (Redis, too, expires nothing meanwhile).
        self.store.defer_expiry(true);
        self.state.shutdown_wait = Some(Instant::now() + Duration::from_secs(timeout));
        info!("{why}: waiting for replicas before shutting down (shutdown-timeout {timeout} s); writes wait meanwhile");
    }

    /// Stops accepting and running commands; the loop exits once replies are out.
    fn stop(&mut self, why: &str) {
        info!("{why}: no longer accepting, flushing replies, then saving");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        if let Some(mut listener) = self.http_listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.state.shutdown_wait = None;
        self.stopping = Some(Instant::now());
    }

    /// SHUTDOWN ABORT: the SHUTDOWN callers get an error, the writes that waited run (unless a
    /// CLIENT PAUSE still holds them).
    fn abort_shutdown(&mut self) {
        // SHUTDOWN ABORT resumed the writes itself (a SHUTDOWN after it this turn may have
        // paused them again).
        self.state.shutdown_wait = None;
        self.shutdown_signalled = false;
        info!("SHUTDOWN ABORT: shutdown cancelled, writes resume");
        let callers: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.awaiting_shutdown.is_some())
            .map(|(key, _)| key)
            .collect();
        for key in callers {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if let Some(dialect) = conn.awaiting_shutdown.take() {
                protocol::encode_reply(&ABORTED, dialect, &mut conn.output);
                self.state.stats.error_replies += 1;
            }
            // Next turn it runs what waited in its input, and sends its replies.
            self.unfinished.push(key);
        }
        self.resume_held();
    }

    /// Once per turn: ends a CLIENT PAUSE whose time is up, or that CLIENT UNPAUSE lifted.
    pub(super) fn pause_turn(&mut self, now: Instant) {
        let ended = self.state.client_pause.is_some_and(|p| p.until <= now);
        if ended {
            self.state.client_pause = None;
            info!("CLIENT PAUSE ended: held requests resume");
        }
        if std::mem::take(&mut self.state.unpaused) || ended {
            self.resume_held();
        }
        // Entries of clients closed while held go once they outnumber the connections, so the
        // list stays bounded however many come and go during a long pause.
        if self.paused.len() > 2 * self.conns.len() + 64 {
            let conns = &self.conns;
            self.paused.retain(|&(key, id)| {
                conns
                    .get(key)
                    .is_some_and(|c| c.client.id == id && c.postponed)
            });
        }
    }

    /// A pause ended: held clients go through their input again next turn, in the order they
    /// were held (what a pause still under way holds waits again).
    fn resume_held(&mut self) {
        self.store
            .defer_expiry(self.state.repl.is_replica() || self.state.paused());
        for (key, id) in std::mem::take(&mut self.paused) {
            // A closed client's slot may hold another client now: the id tells.
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.client.id == id && conn.postponed {
                    conn.postponed = false;
                    self.unfinished.push(key);
                }
            }
        }
    }

    /// When the loop must wake: the wait for replicas times out, or a CLIENT PAUSE ends.
    pub(super) fn pause_timer(&self, now: Instant) -> Option<Duration> {
        let pause = self.state.client_pause.map(|p| p.until);
        let end = match (self.state.shutdown_wait, pause) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        end.map(|deadline| deadline.saturating_duration_since(now))
    }

    /// True once the shutdown need not wait for replicas any longer: none to wait for, all
    /// caught up, or `shutdown-timeout` passed (the lagging ones are logged).
    fn replicas_done(&mut self, now: Instant) -> bool {
        let Some(deadline) = self.state.shutdown_wait else {
            return true;
        };
        let repl = &self.state.repl;
        let behind: Vec<&ReplicaRow> = repl
            .replicas
            .iter()
            .filter(|r| r.ack < repl.offset)
            .collect();
        if behind.is_empty() {
            info!("replicas caught up: shutting down");
        } else if now < deadline {
            return false;
        }
        for row in behind {
            warn!(
                "replica {}:{} has not caught up ({} bytes behind): shutting down anyway",
                row.ip,
                row.port,
                repl.offset - row.ack
            );
        }
        true
    }
}
