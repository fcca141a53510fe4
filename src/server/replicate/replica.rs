//! The replica's side: the link to the primary, a connection in the loop with its own state
//! machine (connect, handshake, full sync, stream), and what a replica does with what comes.

use super::*;

/// How often a replica acknowledges its offset (Redis: every second).
pub(in crate::server) const ACK_PERIOD: Duration = Duration::from_secs(1);

/// First pause before a failed link is tried again; it doubles up to `RETRY_MAX`.
pub(in crate::server) const RETRY_FIRST: Duration = Duration::from_millis(100);

pub(in crate::server) const RETRY_MAX: Duration = Duration::from_secs(2);

/// The log record a replica appends after the changes it applied: the history and offset they
/// reach, so a replica restarted even after kill -9 knows exactly what it holds.
pub(in crate::server) const POSITION_RECORD: &[u8] = b"REPLPOS";

/// Where the link to our primary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::server) enum Phase {
    Connecting,
    Handshake,
    Payload,
    Loading,
    Online,
}

/// Our link to the primary, on its connection.
#[derive(Debug)]
pub(in crate::server) struct Link {
    phase: Phase,
    /// Replies still due, in order.
    steps: Vec<Step>,
    framing: Option<Framing>,
    /// Where a full sync's image goes as it arrives.
    spool: Option<Spool>,
    /// The FULLRESYNC's id and offset, taken on once the image is loaded.
    full: Option<(String, u64)>,
    since: Instant,
}

/// `REPLCONF ACK <offset>` onto the link's output.
pub(in crate::server) fn send_ack(conn: &mut Connection, offset: u64) {
    protocol::encode_request(&["REPLCONF", "ACK", &offset.to_string()], &mut conn.output);
}

/// Bytes of the unit starting `input`: one request, or a whole MULTI ... EXEC; None until all
/// of it is in.
pub(in crate::server) fn transaction_len(
    input: &[u8],
    limits: &crate::protocol::Limits,
) -> Result<Option<usize>, String> {
    let mut at = 0;
    let mut open = false;
    loop {
        match protocol::parse_request(&input[at..], limits) {
            Ok((request, used)) => {
                at += used;
                let name = request.args.first().map_or(&b""[..], |a| a.as_ref());
                if name.eq_ignore_ascii_case(b"MULTI") {
                    open = true;
                } else if name.eq_ignore_ascii_case(b"EXEC") || !open {
                    return Ok(Some(at));
                }
            }
            Err(ParseError::Incomplete) => return Ok(None),
            Err(e) => return Err(format!("the primary sent a bad request: {e:?}")),
        }
    }
}

/// A full sync's image on its way in: written to a file as it arrives (as a Redis replica
/// does by default), so the replica holds only what it has loaded, never the image as well.
#[derive(Debug)]
pub(in crate::server) struct Spool {
    /// Already unlinked: nothing is left behind, whatever happens.
    file: std::fs::File,
    /// Bytes written.
    size: u64,
    /// The last bytes received, held back while they may be the start of the end mark.
    tail: Vec<u8>,
}

impl Spool {
    /// A fresh spool file in `dir`.
    fn open(dir: &std::path::Path) -> Result<Spool, String> {
        let path = dir.join(format!("temp-fullsync-{}.spool", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|file| std::fs::remove_file(&path).map(|()| file))
            .map_err(|e| format!("cannot spool the full sync at {}: {e}", path.display()))?;
        Ok(Spool {
            file,
            size: 0,
            tail: Vec::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file
            .write_all(bytes)
            .map_err(|e| format!("cannot spool the full sync: {e}"))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Takes `input` of an image ended by `mark`: writes what cannot be part of the mark and
    /// returns how much of `input` belongs to the image and its mark once the mark is seen.
    fn take_until(&mut self, input: &[u8], mark: &[u8]) -> Result<Option<usize>, String> {
        let tail = std::mem::take(&mut self.tail);
        // The mark may straddle reads: look across the held tail and the input's start first.
        let mut edge = tail.clone();
        edge.extend_from_slice(input.get(..EOF_MARK - 1).unwrap_or(input));
        let found = memchr::memmem::find(&edge, mark)
            .or_else(|| memchr::memmem::find(input, mark).map(|at| at + tail.len()));
        let total = tail.len() + input.len();
        let cut = found.unwrap_or(total.saturating_sub(EOF_MARK - 1));
        let from_tail = cut.min(tail.len());
        let from_input = cut - from_tail;
        self.write(tail.get(..from_tail).unwrap_or_default())?;
        self.write(input.get(..from_input).unwrap_or_default())?;
        if let Some(at) = found {
            return Ok(Some(at + EOF_MARK - tail.len()));
        }
        self.tail = tail.get(from_tail..).unwrap_or_default().to_vec();
        self.tail
            .extend_from_slice(input.get(from_input..).unwrap_or_default());
        Ok(None)
    }
}

/// Frees a store on a helper thread: millions of records take a while, not for the loop.
fn free_off_loop(store: Box<Store>) {
    if let Err(e) = helper("replfree", Box::new(move || drop(store))) {
        warn!("replication: a store was freed on the loop ({e})");
    }
}

/// Decodes a full sync's image from its spool file into a fresh store (on the loader thread),
/// record by record: no key or value over `max_bulk` bytes (`proto-max-bulk-len`, as the
/// stream is held to), no key twice.
pub(in crate::server) fn load_image(spool: Spool, max_bulk: usize) -> Result<Box<Store>, String> {
    use std::os::fd::AsRawFd;
    let len = usize::try_from(spool.size).map_err(|e| e.to_string())?;
    if len == 0 {
        return Err("the image is empty".into());
    }
    // SAFETY: a private read-only mapping of `len` bytes of a file only this process has (it
    // was unlinked at creation), all written before and not written or truncated while mapped.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            spool.file.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(format!(
            "cannot map the spooled image: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: the mapping is `len` readable bytes and lives until the munmap below.
    let bytes = unsafe { std::slice::from_raw_parts(map.cast::<u8>().cast_const(), len) };
    let mut loading = Loading {
        store: Box::new(Store::new()),
        max_bulk,
    };
    let path = std::path::Path::new("the full sync");
    let decoded = crate::persist::decode_json_each(path, bytes, &mut loading);
    // SAFETY: the mapping made above, no longer borrowed (`bytes` is not used past here).
    unsafe { libc::munmap(map, len) };
    decoded.map_err(|e| e.to_string())?;
    Ok(loading.store)
}

/// A fresh store filled as the image is decoded.
struct Loading {
    store: Box<Store>,
    /// `proto-max-bulk-len`, as the stream is held to.
    max_bulk: usize,
}

impl crate::persist::Records for Loading {
    fn expect(&mut self, keys: usize) {
        self.store.reserve(keys);
    }

    fn add(&mut self, key: Vec<u8>, entry: crate::store::Entry) -> Result<(), String> {
        let max_bulk = self.max_bulk;
        if key.len() > max_bulk || entry.value.len() > max_bulk {
            return Err(format!(
                "a key or value is over proto-max-bulk-len ({max_bulk} bytes)"
            ));
        }
        if !self.store.load_one(&key, &entry) {
            let key = String::from_utf8_lossy(&key);
            return Err(format!("key {key:?} appears more than once"));
        }
        Ok(())
    }
}

impl Server {
    /// REPLICAOF host port: drop the old link and replicas, and connect (on the next cron).
    pub(in crate::server) fn follow(&mut self) {
        if let Some(key) = self.repl.link.take() {
            self.close(key, "REPLICAOF changed the primary");
        }
        let keys: Vec<usize> = self.state.repl.replicas.iter().map(|r| r.key).collect();
        for key in keys {
            // They follow a history that is about to change; they reconnect and resync.
            self.close(key, "this server follows another primary now");
        }
        self.store.defer_expiry(true);
        self.repl.resolving = false;
        self.repl.generation += 1;
        self.repl.retry_at = Instant::now();
        self.repl.backoff = RETRY_FIRST;
        self.repl.next_cron = Instant::now();
        self.answer_waiters(Instant::now());
    }

    /// REPLICAOF NO ONE: drop the link; the data stays, and so do this server's replicas.
    pub(in crate::server) fn promote(&mut self) {
        if let Some(key) = self.repl.link.take() {
            self.close(key, "REPLICAOF NO ONE");
        }
        self.repl.resolving = false;
        self.store.defer_expiry(false);
    }

    /// Starts a link attempt: at once for an IP address, else after a helper thread has
    /// resolved the name (a DNS query can take seconds; the loop never waits for one).
    pub(in crate::server) fn connect_link(&mut self, now: Instant) {
        let Some(master) = self.state.repl.master.as_mut() else {
            return;
        };
        if let Ok(ip) = master.host.parse::<std::net::IpAddr>() {
            let addr = std::net::SocketAddr::new(ip, master.port);
            return self.connect_addr(addr, now);
        }
        master.state = LinkState::Connecting;
        self.repl.generation += 1;
        self.repl.resolving = true;
        let (host, port) = (master.host.clone(), master.port);
        let (handle, generation) = (self.handle.clone(), self.repl.generation);
        let spawned = helper(
            "replresolve",
            Box::new(move || {
                let addr = match (host.as_str(), port).to_socket_addrs() {
                    Ok(mut addrs) => addrs.next().ok_or_else(|| "no address".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                handle.send(News::Resolved(generation, addr));
            }),
        );
        if let Err(e) = spawned {
            self.repl.resolving = false;
            self.link_failed(
                &format!("cannot start resolving the primary's name: {e}"),
                now,
            );
        }
    }

    /// A name resolved (or not) for link attempt `generation`.
    pub(in crate::server) fn resolved(
        &mut self,
        generation: u64,
        addr: Result<std::net::SocketAddr, String>,
    ) {
        if generation != self.repl.generation || !self.repl.resolving {
            return; // REPLICAOF changed the primary meanwhile.
        }
        self.repl.resolving = false;
        let now = Instant::now();
        match addr {
            Ok(addr) => self.connect_addr(addr, now),
            Err(e) => {
                let target = self
                    .state
                    .repl
                    .master
                    .as_ref()
                    .map_or(String::new(), |m| format!("{}:{}", m.host, m.port));
                self.link_failed(&format!("cannot resolve {target}: {e}"), now);
            }
        }
    }

    /// Opens the link's TCP connection to `addr`, without waiting for it.
    fn connect_addr(&mut self, addr: std::net::SocketAddr, now: Instant) {
        let Some(master) = self.state.repl.master.as_mut() else {
            return;
        };
        let target = format!("{}:{}", master.host, master.port);
        let mut stream = match mio::net::TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.link_failed(&format!("cannot connect to {target}: {e}"), now),
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), interest)
        {
            return self.link_failed(&format!("cannot register the link: {e}"), now);
        }
        let client = ClientState {
            id: self.next_client_id,
            peer: Some(addr),
            authenticated: true,
            is_master: true,
            ..ClientState::default()
        };
        // Listed as Redis lists its master client (CLIENT LIST `flags=M`, CLIENT KILL TYPE
        // master), with the laddr it will have once connected unknown until then.
        let laddr = stream.local_addr().unwrap_or(self.state.listening);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let mut info = crate::command::ClientInfo::new(client.id, addr, laddr, fd, now);
        info.master = true;
        super::super::list_client(&mut self.state.clients, key, info);
        self.next_client_id += 1;
        let mut conn = Connection::new(stream, addr, client);
        conn.wants_writable = true;
        conn.link = Some(Box::new(Link {
            phase: Phase::Connecting,
            steps: Vec::new(),
            framing: None,
            spool: None,
            full: None,
            since: now,
        }));
        entry.insert(conn);
        self.repl.link = Some(key);
        self.repl.generation += 1;
        master.state = LinkState::Connecting;
        info!("replication: connecting to primary {target}");
    }

    /// Notes a failed attempt and when the next one is due.
    pub(in crate::server) fn link_failed(&mut self, why: &str, now: Instant) {
        let backoff = self.repl.backoff;
        warn!(
            "replication: {why}; serving the data held, retrying in {:.1} s",
            backoff.as_secs_f64()
        );
        self.repl.retry_at = now + backoff;
        self.repl.backoff = (backoff * 2).min(RETRY_MAX);
        if let Some(master) = self.state.repl.master.as_mut() {
            master.state = LinkState::Connect;
        }
    }

    /// The link's connection was closed, for whatever reason.
    pub(in crate::server) fn link_closed(&mut self, key: usize, link: &Link, why: &str) {
        if self.repl.link != Some(key) {
            return;
        }
        self.repl.link = None;
        let now = Instant::now();
        if link.phase == Phase::Online {
            if let Some(master) = self.state.repl.master.as_mut() {
                master.down_since = Some(now);
            }
            self.repl.backoff = RETRY_FIRST;
        }
        let Some(master) = &self.state.repl.master else {
            return;
        };
        let target = format!("{}:{}", master.host, master.port);
        let what = match link.phase {
            Phase::Connecting => format!("cannot connect to primary {target} ({why})"),
            Phase::Handshake => format!("handshake with primary {target} failed: {why}"),
            Phase::Payload | Phase::Loading => {
                format!("full sync from primary {target} failed: {why}")
            }
            Phase::Online => format!("lost the link to primary {target} ({why})"),
        };
        self.link_failed(&what, now);
    }

    /// Closes a link that went quiet for `repl-timeout`, and acknowledges every second.
    pub(in crate::server) fn link_timers(&mut self, key: usize, now: Instant, timeout: Duration) {
        let offset = self.state.repl.offset;
        let last_io = self.state.repl.master.as_ref().and_then(|m| m.last_io);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(link) = conn.link.as_ref() else {
            return;
        };
        let heard = last_io.map_or(link.since, |at| at.max(link.since));
        if link.phase != Phase::Loading && now.duration_since(heard) > timeout {
            return self.close(key, "no news from the primary for repl-timeout");
        }
        if link.phase == Phase::Online && now.duration_since(self.repl.last_ack) >= ACK_PERIOD {
            self.repl.last_ack = now;
            send_ack(conn, offset);
            self.after_io(key);
        }
    }

    /// Reads and handles what the primary sent, whatever the link's phase.
    pub(in crate::server) fn drive_link(&mut self, key: usize) {
        let now = Instant::now();
        let mut reads = 0;
        loop {
            if reads == READS_PER_TURN {
                // Edge-triggered: no new event comes for what is left; go on next turn.
                self.unfinished.push(key);
                break;
            }
            reads += 1;
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Some(link) = conn.link.as_mut() else {
                return;
            };
            match link.phase {
                Phase::Connecting => match conn.stream.take_error() {
                    Ok(Some(e)) | Err(e) => return self.close(key, &format!("connect: {e}")),
                    // Not connected yet: WRITABLE stays registered and says when it is.
                    Ok(None) if conn.stream.peer_addr().is_err() => return,
                    Ok(None) => {
                        link.phase = Phase::Handshake;
                        link.steps = vec![Step::Pong];
                        link.since = now;
                        protocol::encode_request(&["PING"], &mut conn.output);
                        self.set_link_state(LinkState::Handshake);
                        continue;
                    }
                },
                // Stream bytes wait in the socket until the image is in.
                Phase::Loading => break,
                _ => {}
            }
            let more = match conn.read_once() {
                Ok(ReadOutcome::Data { n, .. }) => {
                    self.state.stats.net_input_bytes += n as u64;
                    if let Some(master) = self.state.repl.master.as_mut() {
                        master.last_io = Some(now);
                    }
                    true
                }
                Ok(ReadOutcome::WouldBlock) => false,
                Ok(ReadOutcome::Closed) => {
                    conn.peer_closed = true;
                    false
                }
                Err(e) => return self.close(key, &e.to_string()),
            };
            if let Err(why) = self.link_input(key) {
                return self.close(key, &why);
            }
            if !more {
                break;
            }
        }
        self.after_io(key);
    }

    /// Handles the input the link holds; an error closes it.
    pub(in crate::server) fn link_input(&mut self, key: usize) -> Result<(), String> {
        loop {
            let Some(phase) = self
                .conns
                .get(key)
                .and_then(|c| c.link.as_ref())
                .map(|l| l.phase)
            else {
                return Ok(());
            };
            let progressed = match phase {
                Phase::Handshake => self.handshake(key)?,
                Phase::Payload => self.payload(key)?,
                Phase::Online => return self.apply_stream(key),
                Phase::Connecting | Phase::Loading => return Ok(()),
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Checks the next handshake reply; true if one was complete.
    pub(in crate::server) fn handshake(&mut self, key: usize) -> Result<bool, String> {
        let settings = &self.state.config.repl;
        let repl = &self.state.repl;
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(false);
        };
        let Some(link) = conn.link.as_mut() else {
            return Ok(false);
        };
        let Some(&step) = link.steps.first() else {
            return Ok(false);
        };
        let Some((line, used)) = link::line(conn.input.pending()).map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let answer = link::check(step, line).map_err(|e| e.to_string())?;
        conn.input.consume(used);
        link.steps.remove(0);
        if step == Step::Pong {
            // The rest in one write, as Redis 7 does.
            let out = &mut conn.output;
            if !settings.masterauth.is_empty() {
                link.steps.push(Step::Auth);
                if settings.masteruser.is_empty() {
                    protocol::encode_request(&["AUTH", &settings.masterauth], out);
                } else {
                    let (user, pass) = (&settings.masteruser, &settings.masterauth);
                    protocol::encode_request(&["AUTH", user, pass], out);
                }
            }
            let port = match settings.announce_port {
                0 => self.state.listening.port(),
                port => port,
            }
            .to_string();
            protocol::encode_request(&["REPLCONF", "listening-port", &port], out);
            link.steps.push(Step::Port);
            if !settings.announce_ip.is_empty() {
                let ip = settings.announce_ip.as_str();
                protocol::encode_request(&["REPLCONF", "ip-address", ip], out);
                link.steps.push(Step::Port);
            }
            protocol::encode_request(&["REPLCONF", "capa", "eof", "capa", "psync2"], out);
            link.steps.push(Step::Capa);
            return Ok(true);
        }
        if step == Step::Capa {
            // PSYNC goes alone once the rest is answered: Redis refuses a PSYNC that arrives
            // while replies to the client are still pending.
            let offset = (repl.offset + 1).to_string();
            let (replid, offset) = if repl.resumable {
                (repl.replid.as_str(), offset.as_str())
            } else {
                ("?", "-1")
            };
            protocol::encode_request(&["PSYNC", replid, offset], &mut conn.output);
            link.steps.push(Step::Psync);
            return Ok(true);
        }
        match answer {
            Some(PsyncReply::Full { replid, offset }) => {
                info!("replication: the primary sends a full sync ({replid} at offset {offset})");
                link.full = Some((replid, offset));
                link.phase = Phase::Payload;
                link.since = Instant::now();
                self.set_link_state(LinkState::Sync);
                if let Some(master) = self.state.repl.master.as_mut() {
                    master.sync_read = 0;
                    master.sync_total = None;
                }
            }
            Some(PsyncReply::Continue(new_id)) => {
                link.phase = Phase::Online;
                let repl = &mut self.state.repl;
                if let Some(new_id) = new_id.filter(|id| *id != repl.replid) {
                    // The primary was promoted: our history goes on under its new id.
                    repl.replid2 = std::mem::replace(&mut repl.replid, new_id);
                    repl.second_offset = repl.offset as i64 + 1;
                    self.drop_followers("the primary's history has a new id");
                }
                let repl = &mut self.state.repl;
                repl.ensure_backlog(self.state.config.repl.backlog_size);
                info!(
                    "replication: partial resync from offset {}: the link is up",
                    repl.offset + 1
                );
                self.link_up();
            }
            None => {}
        }
        Ok(true)
    }

    /// Takes in payload bytes of a full sync, into the spool file; true if it made progress.
    pub(in crate::server) fn payload(&mut self, key: usize) -> Result<bool, String> {
        let max_bulk = self.state.config.limits.max_bulk_len;
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(false);
        };
        let Some(link) = conn.link.as_mut() else {
            return Ok(false);
        };
        let Some(framing) = link.framing.clone() else {
            let Some((line, used)) = link::line(conn.input.pending()).map_err(|e| e.to_string())?
            else {
                return Ok(false);
            };
            // Redis primaries send newlines to keep the link alive while they prepare.
            if !line.is_empty() {
                let framing = link::framing(line).map_err(|e| e.to_string())?;
                if let (Framing::Length(n), Some(master)) =
                    (&framing, self.state.repl.master.as_mut())
                {
                    master.sync_total = Some(*n);
                }
                link.framing = Some(framing);
                link.spool = Some(Spool::open(&self.state.config.dir)?);
            }
            conn.input.consume(used);
            return Ok(true);
        };
        let input = conn.input.pending();
        let Some(spool) = link.spool.as_mut() else {
            return Ok(false);
        };
        if input.is_empty() {
            return Ok(false);
        }
        let (take, done) = match &framing {
            Framing::Length(n) => {
                let left = n.saturating_sub(spool.size);
                let take = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                spool.write(input.get(..take).unwrap_or_default())?;
                (take, take as u64 == left)
            }
            Framing::Eof(mark) => match spool.take_until(input, mark)? {
                Some(used) => (used, true),
                None => (input.len(), false),
            },
        };
        conn.input.consume(take);
        if let Some(master) = self.state.repl.master.as_mut() {
            master.sync_read = spool.size;
        }
        if done {
            link.phase = Phase::Loading;
            let Some(spool) = link.spool.take() else {
                return Ok(false);
            };
            let handle = self.handle.clone();
            let generation = self.repl.generation;
            let spawned = helper(
                "replload",
                Box::new(move || {
                    let result = load_image(spool, max_bulk);
                    handle.send(News::Loaded(generation, result));
                }),
            );
            if let Err(e) = spawned {
                return Err(format!("cannot start loading the full sync: {e}"));
            }
        }
        Ok(!done)
    }

    /// A received image was decoded: swap it in and let the stream flow.
    pub(in crate::server) fn image_loaded(
        &mut self,
        generation: u64,
        result: Result<Box<Store>, String>,
    ) {
        let current = self
            .repl
            .link
            .filter(|_| generation == self.repl.generation);
        let full = current
            .and_then(|key| self.conns.get_mut(key))
            .and_then(|c| c.link.as_mut())
            .and_then(|l| l.full.take());
        let (Some(key), Some((replid, offset))) = (current, full) else {
            // From a link given up since: its store is dropped, off the loop too.
            if let Ok(store) = result {
                free_off_loop(store);
            }
            return;
        };
        let mut store = match result {
            Ok(store) => store,
            Err(why) => {
                warn!("replication: the full sync cannot be loaded: {why}; the data held is kept");
                return self.close(key, "bad full sync");
            }
        };
        store.defer_expiry(true);
        store.set_clock(unix_ms());
        let keys = store.len();
        let old = std::mem::replace(&mut self.store, *store);
        free_off_loop(Box::new(old));
        let size = self.state.config.repl.backlog_size;
        let repl = &mut self.state.repl;
        repl.replid = replid;
        repl.offset = offset;
        repl.clear_replid2();
        repl.backlog = Some(Backlog::new(size, offset + 1));
        repl.resumable = true;
        // Their data follows the old history.
        self.drop_followers("this server loaded a full sync");
        // The new data, with its position, goes to disk as a snapshot (and rotates the log).
        let snapshot = &mut self.state.snapshot;
        snapshot.wanted = true;
        self.repl.positions_after_save =
            snapshot.saves_ok + 1 + u64::from(snapshot.running_since.is_some());
        info!("replication: full sync loaded ({keys} keys at offset {offset}): the link is up");
        if let Some(link) = self.conns.get_mut(key).and_then(|c| c.link.as_mut()) {
            link.phase = Phase::Online;
        }
        self.link_up();
        self.drive_link(key);
    }

    pub(in crate::server) fn link_up(&mut self) {
        self.repl.backoff = RETRY_FIRST;
        if let Some(master) = self.state.repl.master.as_mut() {
            master.state = LinkState::Connected;
            master.down_since = None;
            master.last_io = Some(Instant::now());
        }
    }

    pub(in crate::server) fn set_link_state(&mut self, state: LinkState) {
        if let Some(master) = self.state.repl.master.as_mut() {
            master.state = state;
        }
    }

    /// Applies the primary's stream: each complete request runs as the primary's client (a
    /// transaction only once all of it is in), and its bytes go on to our own backlog and
    /// replicas unchanged, so offsets agree along a chain.
    pub(in crate::server) fn apply_stream(&mut self, key: usize) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        let limits = crate::protocol::Limits {
            unauthenticated: false,
            ..self.state.config.limits
        };
        let query_limit = self.state.config.query_buffer_limit;
        self.store.set_clock(unix_ms());
        // Keys live on the primary must be seen as live by what it sends, whatever our clock.
        self.store.pause_expiry(true);
        let mut discard = Vec::new();
        let mut applied = false;
        let mut ack = false;
        let Connection { input, client, .. } = conn;
        let result = loop {
            let pending = input.pending();
            // Nothing more once a role change is due (the stream asked for one): what follows
            // belongs to a history this server is leaving.
            if pending.is_empty() || self.state.repl.asked.is_some() {
                break Ok(());
            }
            if pending.first() != Some(&b'*') {
                break Err(format!(
                    "the primary sent something that is not a RESP request: {:?}",
                    String::from_utf8_lossy(&pending[..pending.len().min(40)])
                ));
            }
            let unit = match transaction_len(pending, &limits) {
                Ok(Some(unit)) => unit,
                Ok(None) if pending.len() < query_limit => break Ok(()),
                Ok(None) => {
                    break Err(format!(
                        "the primary sent an unfinished request of over {query_limit} bytes \
                         (client-query-buffer-limit)"
                    ))
                }
                Err(why) => break Err(why),
            };
            let mut at = 0;
            while at < unit {
                let Ok((request, used)) = protocol::parse_request(&pending[at..], &limits) else {
                    break;
                };
                at += used;
                let args = &request.args;
                let name = args.first().map_or(&b""[..], |a| a.as_ref());
                if name.eq_ignore_ascii_case(b"PING")
                    || name.eq_ignore_ascii_case(b"MULTI")
                    || name.eq_ignore_ascii_case(b"EXEC")
                {
                    continue;
                }
                if name.eq_ignore_ascii_case(b"REPLCONF") {
                    ack |= args
                        .get(1)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"));
                    continue;
                }
                discard.clear();
                let (store, state, journal) = (&mut self.store, &mut self.state, &mut self.journal);
                execute_args(
                    args,
                    client,
                    &mut discard,
                    store,
                    state,
                    journal,
                    &mut |_, _| {},
                );
                applied = true;
            }
            self.state.repl.feed(&pending[..unit]);
            input.consume(unit);
        };
        self.store.pause_expiry(false);
        crate::server::persistence::record_dropped(
            &mut self.store,
            &mut self.state,
            &mut self.journal,
        );
        let trusted = self.state.snapshot.saves_ok >= self.repl.positions_after_save;
        if applied && self.state.log.enabled && trusted {
            let repl = &self.state.repl;
            let position = [
                POSITION_RECORD.to_vec(),
                repl.replid.as_bytes().to_vec(),
                repl.offset.to_string().into_bytes(),
            ];
            self.journal.record(&position, &mut self.state);
        }
        if ack {
            let offset = self.state.repl.offset;
            if let Some(conn) = self.conns.get_mut(key) {
                send_ack(conn, offset);
            }
            self.repl.last_ack = Instant::now();
        }
        result
    }
}
