//! The loop's side of Pub/Sub: delivering what commands published, each message encoded for its
//! receiver, and closing receivers that fall too far behind.

use log::warn;

use super::execute::push_dialect;
use super::{http, Server};
use crate::protocol;
use crate::pubsub::message_frame;

impl Server {
    /// Appends every message waiting in the outbox to its receiver's output. Receivers are
    /// flushed once at the end of the turn, so a burst of messages costs each one write, and a
    /// receiver that does not read only grows its own output until its limit closes it: the
    /// publisher and everyone else go on as before.
    pub(super) fn deliver(&mut self) {
        if self.state.pubsub.outbox.is_empty() {
            return;
        }
        let outbox = self.state.pubsub.take_outbox();
        let hard = self.state.config.pubsub_output_limit.hard;
        for delivery in &outbox.deliveries {
            let Some(conn) = self.conns.get_mut(delivery.to.key) else {
                continue;
            };
            // The id check: the slot may hold a newer client if the subscriber left meanwhile.
            if conn.client.id != delivery.to.id {
                continue;
            }
            let Some(message) = outbox.messages.get(delivery.message) else {
                continue;
            };
            if conn.client.sse {
                http::sse_event(&message.payload, &mut conn.output);
            } else {
                let frame = message_frame(message, delivery.pattern.as_deref());
                protocol::encode_reply(&frame, push_dialect(&conn.client), &mut conn.output);
            }
            if !conn.queued_flush {
                conn.queued_flush = true;
                self.to_flush.push(delivery.to.key);
            }
            if hard > 0 && conn.pending_output() >= hard {
                // Closed at once, as Redis does at the hard limit; its later messages find no
                // connection (or a newer client) under its key and are skipped.
                self.close_over_limit(delivery.to.key, "hard");
            }
        }
        // The emptied outbox's storage is kept for the next turn's messages.
        let mut spare = outbox;
        spare.messages.clear();
        spare.deliveries.clear();
        self.state.pubsub.outbox = spare;
    }

    /// Flushes the receivers that got messages this turn.
    pub(super) fn flush_receivers(&mut self) {
        for key in std::mem::take(&mut self.to_flush) {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.queued_flush = false;
                self.after_io(key);
            }
        }
    }

    /// Closes `key` for passing the pub/sub output limit, counted as any output limit close.
    fn close_over_limit(&mut self, key: usize, which: &str) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        self.state.stats.output_buffer_limit_disconnections += 1;
        warn!(
            "client {} closed for overcoming of output buffer limits ({which} pubsub limit, {} \
             bytes pending)",
            conn.peer,
            conn.pending_output()
        );
        self.close(key, "output buffer limit");
    }

    /// Takes a closing client's subscriptions out of the registry.
    pub(super) fn forget_subscriptions(&mut self, client: &crate::command::ClientState) {
        if client.subs.active() {
            self.state
                .pubsub
                .drop_client(client.subscriber(), &client.subs);
        }
    }
}
