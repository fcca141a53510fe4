//! The subscription registry and the outbox of messages waiting for delivery.

use std::collections::HashMap;

use crate::store::glob_match;

/// A subscribed connection: its slab key, and its client id because slab keys are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscriber {
    /// The connection's slab key (its token).
    pub key: usize,
    /// The client's id (CLIENT ID).
    pub id: u64,
}

/// Names to subscribers. The one map type of Pub/Sub: the registry's and each client's own
/// lists (whose values stay empty) share it, because every instantiation of the hash table
/// costs kilobytes of the static binary's 1 MiB budget.
pub type Names = HashMap<Vec<u8>, Vec<Subscriber>>;

/// The three namespaces of subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Channels (SUBSCRIBE, PUBLISH).
    Channels,
    /// Patterns over those channels (PSUBSCRIBE).
    Patterns,
    /// Shard channels (SSUBSCRIBE, SPUBLISH): without a cluster, a namespace of their own that
    /// PUBLISH and patterns never reach, as in Redis 7.0.
    Shard,
}

/// What one client is subscribed to (the names; their values are unused); lives in its
/// `ClientState`, so a closing connection can take its entries out of the registry without a
/// search.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Channels (SUBSCRIBE).
    pub channels: Names,
    /// Patterns (PSUBSCRIBE).
    pub patterns: Names,
    /// Shard channels (SSUBSCRIBE).
    pub shard: Names,
}

impl Subscriptions {
    /// The names of one kind.
    pub fn names(&mut self, kind: Kind) -> &mut Names {
        match kind {
            Kind::Channels => &mut self.channels,
            Kind::Patterns => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count Redis puts in every (un)subscribe frame: channels plus patterns, or for the
    /// shard kind shard channels alone.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// Every subscription, of all kinds (what `pubsub-max-subscriptions` bounds).
    pub fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }

    /// True while subscribed to anything (Redis's `P` flag, the pub/sub output limit class).
    pub fn active(&self) -> bool {
        self.total() > 0
    }
}

/// One published message; a delivery refers to it by index.
#[derive(Debug)]
pub struct Message {
    /// The channel it was published to.
    pub channel: Vec<u8>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Published with SPUBLISH: delivered as `smessage`.
    pub shard: bool,
}

/// One message for one receiver; `pattern` when it matched through PSUBSCRIBE.
#[derive(Debug)]
pub struct Delivery {
    /// Who gets it.
    pub to: Subscriber,
    /// Index into [`Outbox::messages`].
    pub message: usize,
    /// The pattern it matched (a `pmessage`), or none (a `message`).
    pub pattern: Option<Vec<u8>>,
}

/// Messages published since the loop last delivered, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The messages.
    pub messages: Vec<Message>,
    /// Who gets which, in the order they must arrive.
    pub deliveries: Vec<Delivery>,
}

impl Outbox {
    /// True when nothing waits for delivery.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

/// Every subscription on the server, and the outbox.
#[derive(Debug, Default)]
pub struct Registry {
    channels: Names,
    patterns: Names,
    shard: Names,
    /// Messages waiting for the loop.
    pub outbox: Outbox,
}

impl Registry {
    /// True when nobody is subscribed to anything: publishing then only counts zero.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty()
    }

    fn names(&self, kind: Kind) -> &Names {
        match kind {
            Kind::Channels => &self.channels,
            Kind::Patterns => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    fn names_mut(&mut self, kind: Kind) -> &mut Names {
        match kind {
            Kind::Channels => &mut self.channels,
            Kind::Patterns => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Adds `who` to a name's subscribers; the caller checked it was not one already.
    pub fn join(&mut self, who: Subscriber, name: &[u8], kind: Kind) {
        self.names_mut(kind)
            .entry(name.to_vec())
            .or_default()
            .push(who);
    }

    /// Takes `who` off a name.
    pub fn leave(&mut self, who: Subscriber, name: &[u8], kind: Kind) {
        let names = self.names_mut(kind);
        if let Some(subscribers) = names.get_mut(name) {
            subscribers.retain(|s| *s != who);
            if subscribers.is_empty() {
                names.remove(name);
            }
        }
    }

    /// Every channel and shard channel (then every pattern, `true`) with its subscribers.
    pub fn each(&self) -> impl Iterator<Item = (&[u8], bool, &[Subscriber])> {
        let channels = self.channels.iter().chain(&self.shard);
        let channels = channels.map(|(n, s)| (&n[..], false, &s[..]));
        channels.chain(self.patterns.iter().map(|(n, s)| (&n[..], true, &s[..])))
    }

    /// Takes every subscription of a client that is closing or resetting.
    pub fn drop_client(&mut self, who: Subscriber, subs: &Subscriptions) {
        for (names, kind) in [
            (&subs.channels, Kind::Channels),
            (&subs.patterns, Kind::Patterns),
            (&subs.shard, Kind::Shard),
        ] {
            for name in names.keys() {
                self.leave(who, name, kind);
            }
        }
    }

    /// Queues `payload` for every subscriber of `channel` and of each pattern matching it, or
    /// with `shard` (SPUBLISH) for the subscribers of the shard channel alone; returns how many
    /// deliveries that made (PUBLISH's reply).
    pub fn publish(&mut self, channel: &[u8], payload: &[u8], shard: bool) -> usize {
        if self.is_empty() {
            return 0;
        }
        let message = self.outbox.messages.len();
        let before = self.outbox.deliveries.len();
        let deliveries = &mut self.outbox.deliveries;
        let direct = if shard { &self.shard } else { &self.channels };
        if let Some(subscribers) = direct.get(channel) {
            deliveries.extend(subscribers.iter().map(|&to| Delivery {
                to,
                message,
                pattern: None,
            }));
        }
        // Shard channels are a namespace of their own: no pattern reaches them.
        let patterns = if shard { None } else { Some(&self.patterns) };
        for (pattern, subscribers) in patterns.into_iter().flatten() {
            if glob_match(pattern, channel) {
                for &to in subscribers {
                    deliveries.push(Delivery {
                        to,
                        message,
                        pattern: Some(pattern.clone()),
                    });
                }
            }
        }
        let made = deliveries.len() - before;
        if made > 0 {
            self.outbox.messages.push(Message {
                channel: channel.to_vec(),
                payload: payload.to_vec(),
                shard,
            });
        }
        made
    }

    /// Takes the messages waiting for delivery.
    pub fn take_outbox(&mut self) -> Outbox {
        std::mem::take(&mut self.outbox)
    }

    /// Channels (or shard channels) with at least one subscriber, matching `pattern` when
    /// given (PUBSUB CHANNELS, SHARDCHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>, kind: Kind) -> Vec<&[u8]> {
        self.names(kind)
            .keys()
            .filter(|channel| pattern.is_none_or(|p| glob_match(p, channel)))
            .map(Vec::as_slice)
            .collect()
    }

    /// Subscribers of `channel` (or of the shard channel) (PUBSUB NUMSUB, SHARDNUMSUB).
    pub fn numsub(&self, channel: &[u8], kind: Kind) -> usize {
        self.names(kind).get(channel).map_or(0, Vec::len)
    }

    /// Patterns with at least one subscriber (PUBSUB NUMPAT counts patterns, not clients).
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// Channels, patterns or shard channels with at least one subscriber (INFO stats).
    pub fn in_use(&self, kind: Kind) -> usize {
        self.names(kind).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_once_each() {
        let mut registry = Registry::default();
        let (a, b) = (Subscriber { key: 1, id: 10 }, Subscriber { key: 2, id: 20 });
        assert_eq!(registry.publish(b"news", b"x", false), 0);
        registry.join(a, b"news", Kind::Channels);
        registry.join(a, b"n*", Kind::Patterns);
        registry.join(b, b"n*", Kind::Patterns);
        registry.join(b, b"z*", Kind::Patterns);
        assert_eq!(registry.publish(b"news", b"hello", false), 3);
        assert_eq!(registry.publish(b"other", b"x", false), 0);
        let outbox = registry.take_outbox();
        assert_eq!(
            outbox.messages.len(),
            1,
            "a message nobody gets is not kept"
        );
        assert_eq!(outbox.deliveries[0].pattern, None);
        assert_eq!(registry.numpat(), 2);
        let subs = Subscriptions {
            channels: [(b"news".to_vec(), Vec::new())].into(),
            patterns: [(b"n*".to_vec(), Vec::new())].into(),
            shard: Names::default(),
        };
        registry.drop_client(a, &subs);
        assert_eq!(registry.numsub(b"news", Kind::Channels), 0);
        assert!(registry.channels(None, Kind::Channels).is_empty());
        assert_eq!(registry.publish(b"news", b"x", false), 1);
        registry.leave(b, b"n*", Kind::Patterns);
        registry.leave(b, b"z*", Kind::Patterns);
        assert!(registry.is_empty());
    }

    #[test]
    fn shard_channels_are_a_namespace_of_their_own() {
        let mut registry = Registry::default();
        let (a, b) = (Subscriber { key: 1, id: 10 }, Subscriber { key: 2, id: 20 });
        registry.join(a, b"news", Kind::Shard);
        registry.join(b, b"*", Kind::Patterns);
        assert_eq!(registry.publish(b"news", b"x", true), 1, "no pattern");
        assert_eq!(
            registry.publish(b"news", b"y", false),
            1,
            "no shard subscriber"
        );
        let outbox = registry.take_outbox();
        assert_eq!(outbox.deliveries[0].to, a);
        assert!(outbox.messages[0].shard && !outbox.messages[1].shard);
        assert_eq!(registry.numsub(b"news", Kind::Shard), 1);
        assert_eq!(registry.numsub(b"news", Kind::Channels), 0);
        assert_eq!(registry.channels(Some(b"n*"), Kind::Shard), [&b"news"[..]]);
        registry.leave(a, b"news", Kind::Shard);
        registry.leave(b, b"*", Kind::Patterns);
        assert!(registry.is_empty());
    }
}
