//! A WebDriver client (the W3C protocol, JSON over HTTP, std only) driving headless Chromium
//! through Debian's `chromedriver`, for tests of the web console in a real browser.
//!
//! Chromium runs as it must in CI: as root (`--no-sandbox`), headless, with a fresh profile in a
//! temporary directory, and natively even when the server runs under qemu.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a browser step may take: generous, for a 2-core CI machine whose server may run
/// under qemu.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser itself, not Debian's `/usr/bin/chromium` wrapper script (which adds flags of its
/// own from /etc/chromium.d).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// Why the browser tests cannot run here, if they cannot: the programs `ci/install-deps.sh`
/// installs are missing.
pub fn missing() -> Option<String> {
    [CHROMEDRIVER, CHROMIUM]
        .iter()
        .find(|path| !Path::new(path).exists())
        .map(|path| {
            format!(
                "{path} is missing: install chromium and chromium-driver (bash ci/install-deps.sh)"
            )
        })
}

/// A WebDriver error: its `error` code and message.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with a window of
    /// `width` x `height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("address").port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("tempdir");
        let mut browser = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            _profile: profile,
        };
        browser.wait("chromedriver ready", || {
            browser_status(browser.addr).filter(|ready| *ready)
        });
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--no-first-run".to_string(),
            "--hide-scrollbars".to_string(),
            "--force-device-scale-factor=1".to_string(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 30000, "pageLoad": 60000},
        }}});
        let created = browser
            .raw("POST", "/session", Some(&capabilities))
            .unwrap_or_else(|e| panic!("starting Chromium: {e:?}"));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    /// Polls `check` until it gives a value; fails the test with `what` after the deadline.
    pub fn wait<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + BROWSER_DEADLINE;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not so within {BROWSER_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WdError> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let text = http(self.addr, method, path, &body).map_err(|e| WdError {
            error: "io".into(),
            message: e.to_string(),
        })?;
        let reply: Value = serde_json::from_str(&text).map_err(|e| WdError {
            error: "json".into(),
            message: format!("{e}: {text}"),
        })?;
        let value = reply["value"].clone();
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(WdError {
                error: error.to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(value)
    }

    /// A command of this session; a WebDriver error fails the test.
    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e:?}"))
    }

    /// A command of this session.
    pub fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let path = format!("/session/{}{path}", self.session);
        self.raw(method, &path, body.as_ref())
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its result.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The element matching `css`, once there is one.
    pub fn find(&self, css: &str) -> String {
        self.wait(&format!("an element {css}"), || {
            self.try_cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()
            .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
        })
    }

    /// The element a script returns, once it returns one.
    pub fn find_by(&self, what: &str, script: &str, args: Value) -> String {
        self.wait(what, || {
            self.js(script, args.clone())[ELEMENT]
                .as_str()
                .map(str::to_string)
        })
    }

    /// Clicks the element `css` as a person would (it must be visible and not covered).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.click_element(&id);
    }

    pub fn click_element(&self, id: &str) {
        self.wait(&format!("clicking {id}"), || {
            self.try_cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
                .ok()
        });
    }

    /// Types `text` into the element `css` (after clearing it when `clear`). `\u{E007}` is Enter,
    /// `\u{E013}` the up arrow.
    pub fn type_into(&self, css: &str, text: &str, clear: bool) {
        let id = self.find(css);
        if clear {
            self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        }
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The rendered text of `css` (empty for a hidden element).
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.cmd("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The open alert, confirm or prompt's text, if one is open.
    pub fn alert(&self) -> Option<String> {
        match self.try_cmd("GET", "/alert/text", None) {
            Ok(text) => Some(text.as_str().unwrap_or_default().to_string()),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("asking for an alert: {e:?}"),
        }
    }

    /// The browser's console messages since the last call: (level, message).
    pub fn console_log(&self) -> Vec<(String, String)> {
        let entries = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        entries
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or_default().to_string(),
                            e["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets the window's size in CSS pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// A PNG of the visible part of the page.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.cmd("GET", "/screenshot", None);
        base64_decode(encoded.as_str().expect("base64 PNG"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's `ready`, or `None` while it does not answer yet.
fn browser_status(addr: SocketAddr) -> Option<bool> {
    let text = http(addr, "GET", "/status", "").ok()?;
    let status: Value = serde_json::from_str(&text).ok()?;
    status["value"]["ready"].as_bool()
}

/// One HTTP/1.1 request on its own connection; the response's body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, BROWSER_DEADLINE)?;
    stream.set_read_timeout(Some(BROWSER_DEADLINE))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    // chromedriver keeps the connection open whatever the request says: read the head, then
    // the body by its length (or its chunks).
    let mut all = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(at) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before a complete head"));
        }
        all.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&all[..split]).to_ascii_lowercase();
    let mut body = all[split + 4..].to_vec();
    let length = head.lines().find_map(|line| {
        line.strip_prefix("content-length:")
            .and_then(|n| n.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match length {
            Some(length) => body.len() >= length,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if chunked {
        body = dechunk(&body);
    }
    String::from_utf8(body).map_err(std::io::Error::other)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    } as u32;
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut bits = 0u32;
        for &c in chunk {
            bits = bits << 6 | value(c);
        }
        bits <<= 6 * (4 - chunk.len()) as u32;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
