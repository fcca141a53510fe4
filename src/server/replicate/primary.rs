//! The primary's side: replicas of this server are client connections that sent PSYNC. They
//! get the backlog or an image (from a helper thread, through a socket pair the loop reads),
//! then the stream; their acknowledgements answer WAIT.

use super::*;

/// Bytes of image a sync thread writes to its pipe at a time.
pub(in crate::server) const SYNC_CHUNK: usize = 64 * 1024;

/// Unsent output above which the loop leaves the image in the pipe: the thread then blocks on
/// the full pipe, so a slow replica slows its sync thread, not the server's memory.
pub(in crate::server) const SYNC_HIGH_WATER: usize = 1 << 20;

/// Unfinished input a replica may hold: its acknowledgements are under 50 bytes each.
const MAX_ACK_INPUT: usize = 64 * 1024;

/// Most image bytes one round of a sync moves into the output, so a turn stays short.
const SYNC_SLICE: usize = 128 * 1024;

/// Tokens of full-sync pipes: this plus the replica's slab key.
pub(in crate::server) const SYNC_TOKENS: usize = usize::MAX / 2;

/// A WAIT whose reply is held.
#[derive(Debug, Clone, Copy)]
pub(in crate::server) struct Waiting {
    /// Replicas wanted.
    pub replicas: u64,
    /// The offset they must have acknowledged.
    pub offset: u64,
    /// When to answer anyway.
    pub deadline: Option<Instant>,
    /// How the reply is encoded.
    pub dialect: Dialect,
}

/// A replica of this server, on its client connection.
#[derive(Debug)]
pub(in crate::server) struct Follower {
    psync: Psync,
    /// Registered in the replica list, its sync started.
    started: bool,
    /// The read end of the pipe the sync thread writes the image into.
    pipe: Option<mio::net::UnixStream>,
    /// The thread sent the whole image.
    image_sent: bool,
    /// Stream bytes that came while the image was being sent.
    pending: Vec<u8>,
    /// The image is sent: stream bytes go straight to the output.
    online: bool,
}

impl Follower {
    /// A follower that PSYNC answered with `psync`.
    pub fn new(psync: Psync) -> Follower {
        Follower {
            psync,
            started: false,
            pipe: None,
            image_sent: false,
            pending: Vec::new(),
            online: false,
        }
    }
}

/// The highest `REPLCONF ACK` offset in a replica's input (all of which is consumed: a replica
/// sends nothing else that needs an answer).
pub(in crate::server) fn read_acks(conn: &mut Connection) -> Option<u64> {
    let limits = crate::protocol::Limits::default();
    let mut best = None;
    loop {
        let input = conn.input.pending();
        match protocol::parse_request(input, &limits) {
            Ok((request, used)) => {
                if let [name, option, offset, ..] = request.args.as_slice() {
                    if name.eq_ignore_ascii_case(b"REPLCONF") && option.eq_ignore_ascii_case(b"ACK")
                    {
                        let offset =
                            protocol::parse_i64(offset).and_then(|o| u64::try_from(o).ok());
                        best = best.max(offset);
                    }
                }
                conn.input.consume(used);
            }
            // A replica only sends short acknowledgements: anything long is dropped.
            Err(ParseError::Incomplete) if conn.input.pending().len() > MAX_ACK_INPUT => {
                let all = conn.input.pending().len();
                conn.input.consume(all);
                return best;
            }
            Err(ParseError::Incomplete) => return best,
            Err(_) => {
                let all = conn.input.pending().len();
                conn.input.consume(all);
                return best;
            }
        }
    }
}

/// The address part of `peer` as text, through SocketAddr's formatting (CLIENT LIST already
/// has it compiled in; IpAddr's own would add its IPv6 formatter again).
fn ip_text(peer: std::net::SocketAddr) -> String {
    let text = peer.to_string();
    let host = text
        .rsplit_once(':')
        .map_or(text.as_str(), |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// Starts a thread that serializes `image` into a pipe the loop reads, ending with `mark`;
/// returns the pipe's read end. The pipe is the bound: the thread blocks while it is full.
pub(in crate::server) fn spawn_sync(
    handle: Handle,
    key: usize,
    id: u64,
    image: Image,
    mark: [u8; EOF_MARK],
) -> io::Result<mio::net::UnixStream> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    helper(
        "replsync",
        Box::new(move || {
            // Written as a File, through the very writer type snapshots use: the serializer is
            // then compiled once for both (binary size). Nothing seeks: it is uncompressed.
            let pipe = std::fs::File::from(std::os::fd::OwnedFd::from(theirs));
            let mut out = io::BufWriter::with_capacity(SYNC_CHUNK, &pipe);
            let none = crate::persist::Compression::No;
            let ok = crate::persist::write_snapshot(&image, 0, None, none, &mut out)
                .and_then(|()| out.write_all(&mark))
                .and_then(|()| out.flush())
                .is_ok();
            // Closing the pipe tells the loop the image ended; the news says how.
            drop(out);
            drop(pipe);
            handle.send(News::Sync {
                key,
                id,
                done: (ok, image),
            });
        }),
    )?;
    Ok(mio::net::UnixStream::from_std(ours))
}

impl Server {
    /// Sends the stream bytes of this turn to every replica; ones that fall too far behind
    /// (`client-output-buffer-limit replica`) are disconnected.
    pub(in crate::server) fn propagate(&mut self) {
        if self.state.repl.outgoing.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.state.repl.outgoing);
        let limit = self.state.config.repl.output_limit;
        let now = Instant::now();
        let keys: Vec<usize> = self.state.repl.replicas.iter().map(|r| r.key).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.compact_sent();
            let Some(follower) = conn.follower.as_mut() else {
                continue;
            };
            if follower.online {
                conn.output.extend_from_slice(&bytes);
            } else {
                follower.pending.extend_from_slice(&bytes);
            }
            // During a full sync the image's chunks are not counted: they are bounded apart.
            let held = if follower.online {
                conn.pending_output()
            } else {
                follower.pending.len()
            };
            let soft_broken = limit.soft > 0 && held >= limit.soft && {
                let since = *conn.over_soft_limit_since.get_or_insert(now);
                now.duration_since(since).as_secs() > limit.soft_seconds
            };
            if limit.soft == 0 || held < limit.soft {
                conn.over_soft_limit_since = None;
            }
            if limit.hard > 0 && held >= limit.hard || soft_broken {
                self.state.stats.output_buffer_limit_disconnections += 1;
                warn!(
                    "replica {} closed for overcoming of output buffer limits ({held} bytes \
                     pending): it will resync",
                    conn.peer
                );
                self.close(key, "replica output buffer limit");
                continue;
            }
            self.after_io(key);
        }
        let mut outgoing = bytes;
        outgoing.clear();
        if self.state.repl.outgoing.is_empty() && outgoing.capacity() <= 1 << 20 {
            self.state.repl.outgoing = outgoing; // Keep the allocation for the next turn.
        }
    }

    /// A client just became a replica: list it, and send it the backlog or an image.
    pub(in crate::server) fn start_follower(&mut self, key: usize) {
        // Bytes already in this turn's stream are in the image or the backlog it gets.
        self.propagate();
        let backlog_size = self.state.config.repl.backlog_size;
        self.state.repl.ensure_backlog(backlog_size);
        self.state.repl.lonely_since = None;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(follower) = conn.follower.as_mut() else {
            return;
        };
        follower.started = true;
        if let Some(Some(info)) = self.state.clients.get_mut(key) {
            info.replica = true;
        }
        let now = Instant::now();
        let mut row = ReplicaRow {
            key,
            id: conn.client.id,
            ip: match &conn.client.replica_ip {
                Some(ip) => ip.clone(),
                None => ip_text(conn.peer),
            },
            port: conn.client.replica_port.unwrap_or(conn.peer.port()),
            state: "send_bulk",
            ack: 0,
            ack_at: now,
        };
        match follower.psync {
            Psync::Continue(from) => {
                let repl = &self.state.repl;
                if let Some((a, b)) = repl.backlog.as_ref().and_then(|b| b.since(from)) {
                    conn.output.extend_from_slice(a);
                    conn.output.extend_from_slice(b);
                }
                follower.online = true;
                row.state = "online";
                row.ack = from.saturating_sub(1);
                info!(
                    "replica {} continues from offset {from} (partial resync)",
                    conn.peer
                );
            }
            Psync::Full(_) => {
                let image = self.store.image();
                let mark: [u8; EOF_MARK] = crate::replication::random_id()
                    .as_bytes()
                    .try_into()
                    .unwrap_or([b'0'; EOF_MARK]);
                conn.output.extend_from_slice(b"$EOF:");
                conn.output.extend_from_slice(&mark);
                conn.output.extend_from_slice(b"\r\n");
                let id = conn.client.id;
                let pipe =
                    spawn_sync(self.handle.clone(), key, id, image, mark).and_then(|mut pipe| {
                        let token = Token(SYNC_TOKENS + key);
                        let registry = self.poll.registry();
                        registry.register(&mut pipe, token, Interest::READABLE)?;
                        Ok(pipe)
                    });
                match pipe {
                    Ok(pipe) => follower.pipe = Some(pipe),
                    Err(e) => {
                        warn!("replica {}: cannot start a full sync: {e}", conn.peer);
                        self.close(key, "full sync failed to start");
                        return;
                    }
                }
                info!(
                    "replica {} gets a full sync at offset {}",
                    conn.peer, self.state.repl.offset
                );
            }
        }
        self.state.repl.replicas.push(row);
        self.after_io(key);
    }

    /// Reads a replica's acknowledgements and sends what it is due.
    pub(in crate::server) fn drive_follower(&mut self, key: usize) {
        let mut acked = None;
        let mut reads = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if reads == READS_PER_TURN {
                // Edge-triggered: no new event comes for what is left; go on next turn.
                self.unfinished.push(key);
                break;
            }
            reads += 1;
            match conn.read_once() {
                Ok(ReadOutcome::Data { n, .. }) => self.state.stats.net_input_bytes += n as u64,
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => {
                    conn.peer_closed = true;
                    break;
                }
                Err(e) => return self.close(key, &e.to_string()),
            }
            acked = acked.max(read_acks(conn));
        }
        if let Some(conn) = self.conns.get_mut(key) {
            acked = acked.max(read_acks(conn));
        }
        if let Some(offset) = acked {
            if let Some(row) = self.state.repl.replicas.iter_mut().find(|r| r.key == key) {
                row.ack = row.ack.max(offset);
                row.ack_at = Instant::now();
            }
            self.answer_waiters(Instant::now());
        }
        self.feed_follower(key);
    }

    /// Moves the image from the sync thread's pipe into a replica's output while it keeps up;
    /// once the image is out, the stream that came meanwhile follows and the replica is online.
    pub(in crate::server) fn feed_follower(&mut self, key: usize) {
        // A few rounds at most, so one replica's sync never makes a long turn; the pipe's next
        // READABLE, the socket's next WRITABLE or the next turn brings it back.
        for _ in 0..2 {
            let full = self.pump(key);
            self.after_io(key);
            let Some(conn) = self.conns.get(key) else {
                return;
            };
            if !full {
                return;
            }
            if conn.pending_output() > 0 {
                return; // WRITABLE comes when the replica reads.
            }
        }
        // Sent all it was given and the pipe may hold more, with no event to say so.
        self.unfinished.push(key);
    }

    /// One slice of [`Server::feed_follower`]: true when it stopped with room used up (the
    /// pipe may hold more), false when the pipe is empty for now or the image is done.
    fn pump(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        conn.compact_sent();
        let room = SYNC_HIGH_WATER.saturating_sub(conn.pending_output());
        let mut room = room.min(SYNC_SLICE);
        let Some(follower) = conn.follower.as_mut() else {
            return false;
        };
        let Some(pipe) = follower.pipe.as_mut() else {
            return false;
        };
        let mut chunk = [0u8; 16 * 1024];
        while room > 0 {
            match io::Read::read(pipe, &mut chunk) {
                Ok(0) => {
                    if !follower.image_sent {
                        return false; // The thread's news says whether it all went.
                    }
                    if let Some(mut pipe) = follower.pipe.take() {
                        let _ = self.poll.registry().deregister(&mut pipe);
                    }
                    conn.output.append(&mut follower.pending);
                    follower.online = true;
                    if let Some(row) = self.state.repl.replicas.iter_mut().find(|r| r.key == key) {
                        row.state = "online";
                        row.ack_at = Instant::now();
                    }
                    info!("replica {} is online (full sync sent)", conn.peer);
                    return false;
                }
                Ok(n) => {
                    conn.output
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    room = room.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false, // WouldBlock: more comes with the next READABLE.
            }
        }
        true
    }

    /// A sync thread is done: whether all of the image went, and the image back.
    pub(in crate::server) fn sync_news(&mut self, key: usize, id: u64, done: (bool, Image)) {
        let (ok, image) = done;
        self.store.retire(image);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.client.id != id {
            return;
        }
        let Some(follower) = conn.follower.as_mut() else {
            return;
        };
        if !ok {
            return self.close(key, "the full sync could not be serialized");
        }
        follower.image_sent = true;
        self.feed_follower(key);
    }

    /// Answers held WAITs that are satisfied or past their deadline.
    pub(in crate::server) fn answer_waiters(&mut self, now: Instant) {
        for (key, id) in std::mem::take(&mut self.repl.waiters) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Some(wait) = conn.waiting.filter(|_| conn.client.id == id) else {
                continue;
            };
            let acked = self.state.repl.acknowledged(wait.offset);
            let late = wait.deadline.is_some_and(|d| now >= d);
            if acked < wait.replicas && !late && self.state.repl.master.is_none() {
                self.repl.waiters.push((key, id));
                continue;
            }
            conn.waiting = None;
            protocol::encode_reply(
                &Reply::Integer(acked as i64),
                wait.dialect,
                &mut conn.output,
            );
            self.drive(key);
        }
    }
}
