//! Pub/Sub: who listens to which channel or pattern, the messages a command published for the
//! event loop to deliver, and the keyspace notifications that ride on them.
//!
//! Commands never write to sockets: PUBLISH (or a write that raises a keyspace event) puts a
//! message and its receivers in the [`Outbox`]; the loop takes them after the command and appends
//! each to its receiver's output in the receiver's dialect.

mod keyspace;
mod registry;

pub use keyspace::{Events, EVENT_CLASSES};
pub use registry::{Delivery, Kind, Message, Outbox, Registry, Subscriber, Subscriptions};

use crate::protocol::Reply;

/// A delivered message as Redis frames it: `message channel payload` (`smessage` for
/// SPUBLISH), or `pmessage pattern channel payload` for a pattern's subscriber. A push in
/// RESP3, an array otherwise.
pub fn message_frame<'a>(message: &'a Message, pattern: Option<&'a [u8]>) -> Reply<'a> {
    let (channel, payload) = (Reply::bulk(&message.channel), Reply::bulk(&message.payload));
    let kind: &[u8] = if message.shard {
        b"smessage"
    } else {
        b"message"
    };
    Reply::Push(match pattern {
        None => vec![Reply::bulk(kind), channel, payload],
        Some(pattern) => vec![
            Reply::bulk(b"pmessage"),
            Reply::bulk(pattern),
            channel,
            payload,
        ],
    })
}
