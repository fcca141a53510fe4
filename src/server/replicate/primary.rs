//! The primary's side: replicas of this server are client connections that sent PSYNC. They
//! get the backlog or an image (from a helper thread, through a socket pair the loop reads),
//! then the stream; their acknowledgements answer WAIT.

use super::*;

/// Bytes of image a sync thread buffers before each write to the replica's socket.
pub(in crate::server) const SYNC_CHUNK: usize = 64 * 1024;

/// Unfinished input a replica may hold: its acknowledgements are under 50 bytes each.
const MAX_ACK_INPUT: usize = 64 * 1024;

/// What a held WAIT gets when its server becomes a replica, as Redis words it.
const UNBLOCKED_BY_DEMOTION: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";

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
    /// A sync thread is writing the image to the socket: the loop writes nothing to it
    /// meanwhile, and shuts the socket down to stop the thread if it closes the replica.
    pub sending: bool,
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
            sending: false,
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

/// The replica's socket as the sync thread writes it: a blocking writer over the loop's
/// non-blocking socket (a duplicate of its descriptor, so the loop's own stays non-blocking),
/// each wait for room bounded by `repl-timeout`.
struct SockOut {
    fd: std::os::fd::OwnedFd,
    timeout_ms: i32,
}

impl Write for SockOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = self.fd.as_raw_fd();
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes and `fd` is open while self lives.
            // MSG_NOSIGNAL: a replica gone away is an error here, not a SIGPIPE.
            let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            if let Ok(n) = usize::try_from(n) {
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(e),
            }
            let mut want = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut want, 1, self.timeout_ms) } {
                0 => {
                    let why = "the replica read nothing for repl-timeout";
                    return Err(io::Error::new(io::ErrorKind::TimedOut, why));
                }
                n if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted => {
                    return Err(io::Error::last_os_error())
                }
                _ => {}
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts a thread that writes `head` (the replies still unsent and the image's opening
/// line), then `image` in the snapshot format, then `mark`, straight into the replica's socket
/// `fd`. The socket's send buffer is the bound: the thread waits while the replica is slow, and
/// the loop's turns carry none of the image (a snapshot's cost, nothing more).
pub(in crate::server) fn spawn_sync(
    handle: Handle,
    key: usize,
    id: u64,
    image: Image,
    head: Vec<u8>,
    mark: [u8; EOF_MARK],
    socket: (std::os::fd::OwnedFd, i32),
) -> io::Result<()> {
    helper(
        "replsync",
        Box::new(move || {
            let (fd, timeout_ms) = socket;
            let mut out = io::BufWriter::with_capacity(SYNC_CHUNK, SockOut { fd, timeout_ms });
            let ok = out
                .write_all(&head)
                .and_then(|()| crate::persist::encode_positioned(&image, 0, None, &mut out))
                .and_then(|()| out.write_all(&mark))
                .and_then(|()| out.flush());
            if let Err(e) = &ok {
                warn!("full sync to a replica failed: {e}");
            }
            // The descriptor is closed before the news: the loop owns the socket again.
            drop(out);
            handle.send(News::Sync {
                key,
                id,
                done: (ok.is_ok(), image),
            });
        }),
    )
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
        let psync = follower.psync;
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
        match psync {
            Psync::Continue(from) => {
                let repl = &self.state.repl;
                if let Some((a, b)) = repl.backlog.as_ref().and_then(|b| b.since(from)) {
                    conn.output.extend_from_slice(a);
                    conn.output.extend_from_slice(b);
                }
                if let Some(follower) = conn.follower.as_mut() {
                    follower.online = true;
                }
                row.state = "online";
                row.ack = from.saturating_sub(1);
                info!(
                    "replica {} continues from offset {from} (partial resync)",
                    conn.peer
                );
            }
            Psync::Full(_) => {
                let mark: [u8; EOF_MARK] = crate::replication::random_id()
                    .as_bytes()
                    .try_into()
                    .unwrap_or([b'0'; EOF_MARK]);
                // What is still unsent (the +FULLRESYNC line) goes first, from the thread:
                // from here until its news the loop writes nothing to this socket.
                let mut head = conn.take_unsent();
                head.extend_from_slice(b"$EOF:");
                head.extend_from_slice(&mark);
                head.extend_from_slice(b"\r\n");
                let timeout = self.state.config.repl.timeout.saturating_mul(1000);
                let timeout = i32::try_from(timeout).unwrap_or(i32::MAX);
                let id = conn.client.id;
                let fd = std::os::fd::AsFd::as_fd(&conn.stream).try_clone_to_owned();
                let image = self.store.image();
                let started = match fd {
                    Ok(fd) => spawn_sync(
                        self.handle.clone(),
                        key,
                        id,
                        image,
                        head,
                        mark,
                        (fd, timeout),
                    ),
                    Err(e) => {
                        self.store.retire(image);
                        Err(e)
                    }
                };
                if let Err(e) = started {
                    warn!("replica {}: cannot start a full sync: {e}", conn.peer);
                    self.close(key, "full sync failed to start");
                    return;
                }
                if let Some(follower) = conn.follower.as_mut() {
                    follower.sending = true;
                }
                info!(
                    "replica {} gets a full sync at offset {}",
                    conn.peer, self.state.repl.offset
                );
            }
        }
        self.state.repl.replicas.push(row);
        self.count_clients();
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
        self.after_io(key);
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
        follower.sending = false;
        if !ok {
            return self.close(key, "the full sync could not be sent");
        }
        let mut pending = std::mem::take(&mut follower.pending);
        follower.online = true;
        conn.output.append(&mut pending);
        if let Some(row) = self.state.repl.replicas.iter_mut().find(|r| r.key == key) {
            row.state = "online";
            row.ack_at = Instant::now();
        }
        info!("replica {} is online (full sync sent)", conn.peer);
        self.after_io(key);
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
            if self.state.repl.is_replica() {
                // Demoted: what it waited for will never be counted here. Redis answers so
                // and closes the connection, rather than a count that could read as a result.
                let reply = Reply::error(UNBLOCKED_BY_DEMOTION);
                protocol::encode_reply(&reply, wait.dialect, &mut conn.output);
                conn.closing = Closing::AfterFlush;
            } else {
                let reply = Reply::Integer(acked as i64);
                protocol::encode_reply(&reply, wait.dialect, &mut conn.output);
            }
            self.drive(key);
        }
    }
}
