//! HTTP from tests: a server with its HTTP port, and one request per connection read to its end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{Server, DEADLINE};

/// Starts a server with HTTP on a free port (and `extra` flags); returns it and the HTTP
/// address from its start-up line.
pub fn start_http(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--http-port", "0"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args);
    let addr = http_addr(&mut server);
    (server, addr)
}

/// The HTTP address a started server names in its start-up line.
pub fn http_addr(server: &mut Server) -> SocketAddr {
    let line = server.wait_log("HTTP on ");
    line.split("HTTP on ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .expect("HTTP address in the start-up line")
        .parse()
        .expect("socket address")
}

/// A response: its status, its head (status line and headers as sent) and its body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `method path` with `headers` (each `Name: value`) and `body` on a new connection that
/// closes after it, and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Response {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP port");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(out.as_bytes()).expect("send");
    stream.write_all(body).expect("send body");
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read the response");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    let head = String::from_utf8(all[..split].to_vec()).expect("ASCII head");
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    Response {
        status,
        head,
        body: all[split..].to_vec(),
    }
}
