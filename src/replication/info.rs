//! INFO replication and ROLE, field for field as Redis 7.0 writes them (Sentinel parses both).

use std::fmt::Write as _;
use std::time::Instant;

use super::LinkState;
use crate::command::ServerState;
use crate::protocol::Reply;

/// Appends the `# Replication` section.
pub fn write_info(server: &ServerState, out: &mut String) {
    let repl = &server.repl;
    let settings = &server.config.repl;
    let now = Instant::now();
    out.push_str("# Replication\r\n");
    match &repl.master {
        None => out.push_str("role:master\r\n"),
        Some(master) => {
            let up = master.state == LinkState::Connected;
            let last_io = match (up, master.last_io) {
                (true, Some(at)) => now.duration_since(at).as_secs() as i64,
                _ => -1,
            };
            let applied = if up || repl.resumable { repl.offset } else { 1 };
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\n\
                 master_last_io_seconds_ago:{last_io}\r\nmaster_sync_in_progress:{}\r\n\
                 slave_read_repl_offset:{applied}\r\nslave_repl_offset:{applied}\r\n",
                master.host,
                master.port,
                if up { "up" } else { "down" },
                u8::from(master.state == LinkState::Sync),
            );
            if master.state == LinkState::Sync {
                let total = master.sync_total.map_or(-1, |t| t as i64);
                let read = master.sync_read as i64;
                let perc = if total > 0 {
                    read as f64 * 100.0 / total as f64
                } else {
                    0.0
                };
                let io = master
                    .last_io
                    .map_or(0, |at| now.duration_since(at).as_secs());
                let _ = write!(
                    out,
                    "master_sync_total_bytes:{total}\r\nmaster_sync_read_bytes:{read}\r\n\
                     master_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\n\
                     master_sync_last_io_seconds_ago:{io}\r\n",
                    total - read
                );
            }
            if !up {
                let down = master
                    .down_since
                    .map_or(-1, |at| now.duration_since(at).as_secs() as i64);
                let _ = write!(out, "master_link_down_since_seconds:{down}\r\n");
            }
            let _ = write!(
                out,
                "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
                settings.priority,
                u8::from(settings.read_only),
                u8::from(settings.announced)
            );
        }
    }
    let _ = write!(out, "connected_slaves:{}\r\n", repl.replicas.len());
    for (i, replica) in repl.replicas.iter().enumerate() {
        let lag = if replica.state == "online" {
            now.duration_since(replica.ack_at).as_secs()
        } else {
            0
        };
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={},offset={},lag={lag}\r\n",
            replica.ip, replica.port, replica.state, replica.ack
        );
    }
    let (active, size, first, histlen) = match &repl.backlog {
        Some(b) => (1, b.size(), b.first(), b.len()),
        None => (0, settings.backlog_size, 0, 0),
    };
    let _ = write!(
        out,
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\n\
         master_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{active}\r\n\
         repl_backlog_size:{size}\r\nrepl_backlog_first_byte_offset:{first}\r\n\
         repl_backlog_histlen:{histlen}\r\n",
        repl.replid, repl.replid2, repl.offset, repl.second_offset
    );
}

/// ROLE's reply: `master offset [[ip port offset] ...]` or `slave host port state offset`.
pub fn role_reply(server: &ServerState) -> Reply<'static> {
    let repl = &server.repl;
    let text = |s: String| Reply::bulk_owned(s.into_bytes());
    match &repl.master {
        None => Reply::Array(vec![
            text("master".into()),
            Reply::Integer(repl.offset as i64),
            Reply::Array(
                repl.replicas
                    .iter()
                    .map(|r| {
                        Reply::Array(vec![
                            text(r.ip.clone()),
                            text(r.port.to_string()),
                            text(r.ack.to_string()),
                        ])
                    })
                    .collect(),
            ),
        ]),
        Some(master) => Reply::Array(vec![
            text("slave".into()),
            text(master.host.clone()),
            Reply::Integer(i64::from(master.port)),
            text(master.state.name().into()),
            Reply::Integer(if master.state == LinkState::Connected {
                repl.offset as i64
            } else {
                -1
            }),
        ]),
    }
}
