//! The web console's side of the HTTP front door, as pure functions of a parsed request: which
//! of the page's files a path names (compressed at build time by `build.rs`, held in the binary,
//! never read from disk), whether the browser's copy is still good (`ETag`), the security
//! headers every console response carries, and the JSON the page's live charts poll.
//!
//! Everything else the page shows comes from the authenticated routes any HTTP client uses.

use crate::protocol::http::{HttpRequest, Method};

/// One file of the page.
pub struct Asset {
    /// Its URL path.
    pub path: &'static str,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// Its strong entity tag, quotes included: a hash of `gzip`.
    pub etag: &'static str,
    /// The file, gzip-compressed.
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Headers on every console response. The policy allows only the page's own files and
/// requests to its own origin: no inline script or style, no other site, no framing.
pub const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
     X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n";

/// What a request for one of the console's files gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The file, compressed (`200`, or its headers for HEAD).
    File(&'static Asset),
    /// The browser's copy is current (`304`).
    NotModified(&'static Asset),
    /// The client refuses gzip, the only form held (`406`).
    NotAcceptable,
    /// A method other than GET and HEAD (`405`).
    NotAllowed,
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Asset({} {}, {} bytes)",
            self.path,
            self.etag,
            self.gzip.len()
        )
    }
}

impl PartialEq for Asset {
    fn eq(&self, other: &Asset) -> bool {
        self.path == other.path
    }
}

impl Eq for Asset {}

/// The console's answer to `request`, or `None` when its path is not one of the page's files
/// (the caller's 404, or another route). The query string is ignored.
pub fn answer(request: &HttpRequest<'_>) -> Option<Answer> {
    let (path, _) = crate::protocol::http::split_target(request.target);
    let asset = ASSETS.iter().find(|a| a.path.as_bytes() == path)?;
    if !matches!(request.method, Method::Get | Method::Head) {
        return Some(Answer::NotAllowed);
    }
    if request
        .if_none_match
        .is_some_and(|tags| etag_matches(tags, asset.etag))
    {
        return Some(Answer::NotModified(asset));
    }
    if !accepts_gzip(request.accept_encoding) {
        return Some(Answer::NotAcceptable);
    }
    Some(Answer::File(asset))
}

/// Whether an `If-None-Match` list names `etag` (weakly, as RFC 9110 13.1.2 compares), or is `*`.
pub fn etag_matches(tags: &[u8], etag: &str) -> bool {
    tags.split(|&b| b == b',').map(trim).any(|tag| {
        let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
        tag == b"*" || tag == etag.as_bytes()
    })
}

/// Whether an `Accept-Encoding` value allows gzip: no header allows any coding (RFC 9110
/// 12.5.3); otherwise `gzip`, `x-gzip` or `*` with a weight above zero.
pub fn accepts_gzip(value: Option<&[u8]>) -> bool {
    let Some(value) = value else {
        return true;
    };
    value.split(|&b| b == b',').any(|item| {
        let mut parts = item.split(|&b| b == b';').map(trim);
        let coding = parts.next().unwrap_or_default();
        let named = [&b"gzip"[..], b"x-gzip", b"*"]
            .iter()
            .any(|name| coding.eq_ignore_ascii_case(name));
        // `q=0`, `q=0.0`, ... refuse the coding; any other weight accepts it.
        let refused = parts.any(|p| {
            let p = p.to_ascii_lowercase();
            p.strip_prefix(b"q=")
                .is_some_and(|w| w.iter().all(|&b| b == b'0' || b == b'.'))
        });
        named && !refused
    })
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// What `GET /v1/stats` reports: figures the server keeps anyway, read once per request. The
/// page polls it every second and computes rates and percentiles from the differences, so the
/// server keeps no history for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since start, on the monotonic clock (the page's time axis).
    pub uptime_ms: u64,
    /// Commands processed since start.
    pub commands: u64,
    /// Keys in the store.
    pub keys: u64,
    /// INFO's `used_memory`.
    pub used_memory: u64,
    /// `maxmemory` (0: no limit).
    pub maxmemory: u64,
    /// Resident set size, sampled each second.
    pub rss: u64,
    /// Connections open.
    pub clients: u64,
    /// Bytes read from and written to clients since start.
    pub net_input: u64,
    /// Bytes written to clients since start.
    pub net_output: u64,
    /// Command durations since start, all commands together: counts per bucket of
    /// [`crate::command::BUCKET_BOUNDS_USEC`], the last above its highest bound.
    pub latency: Vec<u64>,
}

/// `sample` as one JSON object, with the latency buckets' upper bounds in microseconds.
pub fn stats_json(sample: &Sample, out: &mut Vec<u8>) {
    let fields = [
        ("uptime_ms", sample.uptime_ms),
        ("commands", sample.commands),
        ("keys", sample.keys),
        ("used_memory", sample.used_memory),
        ("maxmemory", sample.maxmemory),
        ("rss", sample.rss),
        ("clients", sample.clients),
        ("net_input", sample.net_input),
        ("net_output", sample.net_output),
    ];
    let mut number = itoa::Buffer::new();
    out.push(b'{');
    for (name, value) in fields {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(number.format(value).as_bytes());
        out.push(b',');
    }
    let list = |out: &mut Vec<u8>, name: &str, values: &mut dyn Iterator<Item = u64>| {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":[");
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
        out.push(b']');
    };
    list(
        out,
        "latency_bounds_us",
        &mut crate::command::BUCKET_BOUNDS_USEC.iter().copied(),
    );
    out.push(b',');
    list(out, "latency", &mut sample.latency.iter().copied());
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_choice() {
        assert!(accepts_gzip(None));
        assert!(accepts_gzip(Some(b"gzip, deflate, br")));
        assert!(accepts_gzip(Some(b"br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some(b"*")));
        assert!(!accepts_gzip(Some(b"identity")));
        assert!(!accepts_gzip(Some(b"gzip;q=0, br")));
        assert!(!accepts_gzip(Some(b"gzip; q=0.000")));
        assert!(!accepts_gzip(Some(b"")));
    }

    #[test]
    fn etags() {
        assert!(etag_matches(b"\"a\", \"b\"", "\"b\""));
        assert!(etag_matches(b"W/\"b\"", "\"b\""));
        assert!(etag_matches(b"*", "\"b\""));
        assert!(!etag_matches(b"\"c\"", "\"b\""));
        assert!(!etag_matches(b"b", "\"b\""));
    }

    #[test]
    fn assets_are_gzip() {
        for asset in &ASSETS {
            assert_eq!(
                asset.gzip.get(..3),
                Some(&[0x1f, 0x8b, 8][..]),
                "{}",
                asset.path
            );
            assert_eq!(asset.etag.len(), 18);
        }
    }

    #[test]
    fn stats_shape() {
        let sample = Sample {
            keys: 3,
            latency: vec![1, 0, 2],
            ..Sample::default()
        };
        let mut out = Vec::new();
        stats_json(&sample, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"uptime_ms\":0,\"commands\":0,\"keys\":3,"));
        assert!(text.ends_with(",\"latency\":[1,0,2]}\n"), "{text}");
        assert!(text.contains("\"latency_bounds_us\":[1,2,5,10,"));
    }
}
