//! The web console in a real browser: headless Chromium driven over WebDriver
//! (`tests/common/webdriver.rs`) against the real server, checking what a person would see and
//! what the data becomes over RESP. Each view is also photographed at 1280 and 360 px wide:
//! into `target/console-screenshots/`, and into `docs/console/` (the pictures the docs show)
//! when `POCKETKV_UPDATE_SCREENSHOTS=1` or when a picture there is missing.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::http::{http_addr, start_http};
use common::webdriver::{missing, Browser};
use common::{eventually, resp, resp_bytes, Client, Server};
use serde_json::json;

const ENTER: &str = "\u{E007}";
const UP: &str = "\u{E013}";
const ESCAPE: &str = "\u{E00C}";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// Fails with the reason when the browser is not installed (`make test` installs it).
fn browser(width: u32, height: u32) -> Browser {
    if let Some(why) = missing() {
        panic!("{why}");
    }
    Browser::start(width, height)
}

/// The raw value of `key` over RESP, or `None` when it does not exist.
fn get_bytes(c: &mut Client, key: &[u8]) -> Option<Vec<u8>> {
    c.send(&resp_bytes(&[b"GET", key]));
    let header = c.read_line();
    if header == "$-1\r\n" {
        return None;
    }
    let len: usize = header[1..].trim_end().parse().expect("bulk length");
    let body = c.read_n(len + 2);
    Some(body[..len].to_vec())
}

/// Console messages at SEVERE level (errors: scripts, policy violations, failed loads).
fn errors(browser: &Browser) -> Vec<String> {
    browser
        .console_log()
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .map(|(_, message)| message)
        .collect()
}

fn open_view(browser: &Browser, view: &str) {
    browser.click(&format!("#tabs button[data-view='{view}']"));
    browser.wait(&format!("the {view} view shown"), || {
        let shown = browser.js(
            "return !document.getElementById('view-' + arguments[0]).hidden;",
            json!([view]),
        );
        shown.as_bool().filter(|&b| b)
    });
}

/// The key browser's row button for `key`, after searching for `pattern`.
fn find_key(browser: &Browser, pattern: &str, key: &str) -> String {
    open_view(browser, "keys");
    browser.type_into("#key-pattern", pattern, true);
    browser.click("#key-search button[type=submit]");
    browser.find_by(
        &format!("the key {key:?} listed"),
        "return [...document.querySelectorAll('#key-table tbody button')]
             .find(b => b.textContent === arguments[0]) || null;",
        json!([key]),
    )
}

/// Opens `key` in the key browser and waits for its value to show.
fn open_key(browser: &Browser, pattern: &str, key: &str) {
    let button = find_key(browser, pattern, key);
    browser.click_element(&button);
    browser.wait("the key's details", || {
        (browser.text("#key-name") == key).then_some(())
    });
}

/// Replaces the value in the open editor with `typed`, saves, and waits for the page to show
/// the key again.
fn edit_value(browser: &Browser, typed: &str) {
    browser.click("#key-edit-open");
    browser.type_into("#key-edit", typed, true);
    save(browser);
}

/// Clicks Save and waits until the editor is closed (the key shown again, as stored).
fn save(browser: &Browser) {
    browser.click("#key-save");
    browser.wait("the editor closed after saving", || {
        browser
            .js(
                "return document.getElementById('key-editor').hidden;",
                json!([]),
            )
            .as_bool()
            .filter(|&hidden| hidden)
    });
}

/// Waits until the confirmation dialog is closed.
fn dialog_closed(browser: &Browser) {
    browser.wait("the dialog closed", || {
        browser
            .js(
                "return !document.getElementById('confirm').open;",
                json!([]),
            )
            .as_bool()
            .filter(|&closed| closed)
    });
}

fn overview_fact(browser: &Browser, name: &str) -> Option<String> {
    browser
        .js(
            "for (const d of document.querySelectorAll('#facts div'))
                 if (d.querySelector('dt').textContent === arguments[0])
                     return d.querySelector('dd').textContent;
             return null;",
            json!([name]),
        )
        .as_str()
        .map(str::to_string)
}

/// Writes a screenshot (see the file's header for where).
fn keep_screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot();
    assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "a PNG");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let scratch = root.join("target/console-screenshots");
    fs::create_dir_all(&scratch).expect("target writable");
    fs::write(scratch.join(name), &png).expect("write screenshot");
    let docs = root.join("docs/console").join(name);
    if std::env::var_os("POCKETKV_UPDATE_SCREENSHOTS").is_some() || !docs.exists() {
        fs::create_dir_all(root.join("docs/console")).expect("docs writable");
        fs::write(docs, &png).expect("write screenshot");
    }
}

/// A client sending pipelined SETs until told to stop, so the throughput chart has something
/// to show.
fn load(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let batch: Vec<u8> = (0..100)
            .flat_map(|i| resp(&["SET", &format!("load:{}", i % 10), "x"]))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            c.send(&batch);
            c.read_n(5 * 100);
        }
    })
}

#[test]
fn the_console_in_a_browser() {
    let (server, http) = start_http(&[]);
    let mut c = server.connect();
    for i in 0..7 {
        c.cmd(&["SET", &format!("seed:{i}"), "v"], b"+OK\r\n");
    }
    let browser = browser(1280, 900);
    browser.goto(&format!("http://{http}/"));

    // Loads with no console errors, and the overview shows the real key count.
    browser.wait("the overview's key count", || {
        overview_fact(&browser, "Keys").filter(|keys| keys == "7")
    });
    assert!(browser.text("#server-line").contains("primary"));
    assert_eq!(
        errors(&browser),
        Vec::<String>::new(),
        "console errors on load"
    );

    // The views are reached from the keyboard too: Enter on a focused tab.
    browser.type_into("#tabs button[data-view='console']", ENTER, false);
    browser.find("#view-console:not([hidden])");
    // A key created through the console appears in the key browser.
    browser.type_into(
        "#console-input",
        &format!("SET greeting \"hello world\"{ENTER}"),
        false,
    );
    browser.wait("the console's reply", || {
        browser.text("#console-log").contains("OK").then_some(())
    });
    browser.type_into("#console-input", &format!("GET greeting{ENTER}"), false);
    browser.wait("GET's reply, quoted as the text port prints it", || {
        browser
            .text("#console-log")
            .contains("\"hello world\"")
            .then_some(())
    });
    // The up arrow brings the last command back.
    browser.type_into("#console-input", UP, false);
    let recalled = browser.js(
        "return document.getElementById('console-input').value;",
        json!([]),
    );
    assert_eq!(recalled, "GET greeting");
    browser.type_into("#console-input", "", true);
    open_key(&browser, "gree*", "greeting");
    assert_eq!(browser.text("#key-value"), "hello world");

    // Editing there changes what GET returns over RESP, byte for byte.
    edit_value(&browser, "héllo ✓ console");
    browser.wait("the edit stored", || {
        (get_bytes(&mut c, b"greeting") == Some("héllo ✓ console".as_bytes().to_vec()))
            .then_some(())
    });

    // A binary value: shown and edited as hex, back over RESP exactly.
    let binary = b"\x00\xff\x80abc\r\n";
    c.roundtrip(&resp_bytes(&[b"SET", b"blob", binary]), b"+OK\r\n");
    open_key(&browser, "blob", "blob");
    browser.click("#key-edit-open");
    let editing = browser.js(
        "return document.getElementById('key-edit').value;",
        json!([]),
    );
    assert_eq!(
        editing, "00 ff 80 61 62 63 0d 0a",
        "the bytes as the page read them"
    );
    save(&browser);
    assert_eq!(
        get_bytes(&mut c, b"blob"),
        Some(binary.to_vec()),
        "a round trip"
    );
    edit_value(&browser, "00 ff 80 61 62 63 0d 0a fe 00");
    let mut changed = binary.to_vec();
    changed.extend_from_slice(b"\xfe\x00");
    browser.wait("the binary edit stored", || {
        (get_bytes(&mut c, b"blob") == Some(changed.clone())).then_some(())
    });
    // A TTL set in the page is the key's TTL.
    browser.type_into("#key-ttl", "500", true);
    browser.click("#key-ttl-set");
    browser.wait("the TTL set", || {
        c.send(&resp(&["TTL", "blob"]));
        let line = c.read_line();
        line.trim_end()
            .strip_prefix(':')
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|&ttl| ttl > 0 && ttl <= 500)
    });
    assert_eq!(
        get_bytes(&mut c, b"blob"),
        Some(changed.clone()),
        "the value kept"
    );

    // Deleting asks first: cancelling keeps the key, confirming removes it.
    browser.click("#key-delete");
    browser.wait("the confirmation", || {
        browser.text("#confirm-text").contains("blob").then_some(())
    });
    browser.click("#confirm-cancel");
    dialog_closed(&browser);
    assert_eq!(
        get_bytes(&mut c, b"blob"),
        Some(changed.clone()),
        "cancelled"
    );
    // From the keyboard: Enter on the Delete button asks, Escape cancels.
    browser.type_into("#key-delete", ENTER, false);
    browser.wait("the confirmation from the keyboard", || {
        browser.text("#confirm-text").contains("blob").then_some(())
    });
    browser.type_into("#confirm-cancel", ESCAPE, false);
    dialog_closed(&browser);
    assert_eq!(
        get_bytes(&mut c, b"blob"),
        Some(changed),
        "cancelled by Escape"
    );
    browser.click("#key-delete");
    browser.wait("the confirmation again", || {
        browser.text("#confirm-text").contains("blob").then_some(())
    });
    browser.click("#confirm-ok");
    dialog_closed(&browser);
    browser.wait("the key deleted", || {
        get_bytes(&mut c, b"blob").is_none().then_some(())
    });

    // A key that is not UTF-8 is listed by its bytes, and its value edited in place.
    c.roundtrip(&resp_bytes(&[b"SET", b"k\xff\x01", b"v"]), b"+OK\r\n");
    open_key(&browser, "k?*", "k\\xff\\x01");
    edit_value(&browser, "ok ✓");
    browser.wait("the binary key's value changed", || {
        (get_bytes(&mut c, b"k\xff\x01") == Some("ok ✓".as_bytes().to_vec())).then_some(())
    });
    // A key named like markup is shown as text: no image element, no dialog.
    c.cmd(&["SET", XSS, "<script>alert(2)</script>"], b"+OK\r\n");
    open_key(&browser, "<img*", XSS);
    assert_eq!(browser.text("#key-value"), "<script>alert(2)</script>");
    let markup = browser.js(
        "return document.querySelectorAll('main img, main script').length;",
        json!([]),
    );
    assert_eq!(markup, 0, "no element made from the key or its value");
    assert_eq!(browser.alert(), None, "no dialog opened");

    // The throughput chart moves while a load runs.
    open_view(&browser, "overview");
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(server.addr, stop.clone());
    browser.wait("the throughput chart showing the load", || {
        let now = browser.text("#chart-ops .now");
        let rate: f64 = now.trim_end_matches("/s").parse().ok()?;
        let points = browser.js(
            "const p = document.querySelector('#chart-ops polyline');
             return p ? p.getAttribute('points') : '';",
            json!([]),
        );
        // The last point is above the chart's floor (y = 100).
        let last_y: f64 = points
            .as_str()?
            .split(' ')
            .next_back()?
            .split(',')
            .nth(1)?
            .parse()
            .ok()?;
        (rate > 0.0 && last_y < 100.0).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    loader.join().expect("the load thread");

    // Clients and the slow log show the server's own tables; Kill asks first, then the
    // client is gone.
    let mut watched = server.connect();
    watched.cmd(&["CLIENT", "SETNAME", "watched"], b"+OK\r\n");
    open_view(&browser, "clients");
    let kill = browser.find_by(
        "the watched client's Kill button",
        "for (const row of document.querySelectorAll('#client-table tbody tr'))
             if (row.cells[2].textContent === 'watched') return row.querySelector('button');
         return null;",
        json!([]),
    );
    browser.click_element(&kill);
    browser.wait("the confirmation", || {
        browser
            .text("#confirm-text")
            .contains("Disconnect")
            .then_some(())
    });
    browser.click("#confirm-ok");
    dialog_closed(&browser);
    watched.expect_closed();
    c.cmd(
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
        b"+OK\r\n",
    );
    c.cmd(&["SET", "slow", "one"], b"+OK\r\n");
    open_view(&browser, "slowlog");
    browser.wait("the slow log's entries", || {
        browser
            .text("#slow-table")
            .contains("SET slow one")
            .then_some(())
    });

    assert_eq!(
        errors(&browser),
        Vec::<String>::new(),
        "console errors while used"
    );
    // The check above can fail: an error the page logs does reach it.
    browser.js("console.error('probe: the log is read');", json!([]));
    let probe = errors(&browser);
    assert!(
        probe.iter().any(|e| e.contains("probe: the log is read")),
        "{probe:?}"
    );

    screenshots(&server, &browser);
}

/// Each view at 1280 and 360 px wide.
fn screenshots(server: &Server, browser: &Browser) {
    let mut c = server.connect();
    c.cmd(
        &[
            "SET",
            "user:42",
            "{\"name\":\"Ada\",\"langs\":[\"en\",\"fr\"]}",
        ],
        b"+OK\r\n",
    );
    c.cmd(&["EXPIRE", "user:42", "3600"], b":1\r\n");
    if std::env::var_os("POCKETKV_UPDATE_SCREENSHOTS").is_some() {
        // Pictures for the docs: a minute of varied load first, so the charts have a shape.
        let stop = Arc::new(AtomicBool::new(false));
        let points = || {
            browser
                .js(
                    "const p = document.querySelector('#chart-ops polyline');
                     return p ? p.getAttribute('points').split(' ').length : 0;",
                    json!([]),
                )
                .as_u64()
                .unwrap_or(0)
        };
        for _ in 0..3 {
            let start = points();
            let loader = load(server.addr, stop.clone());
            browser.wait("twenty seconds of load", || {
                (points() >= start + 20).then_some(())
            });
            stop.store(true, Ordering::Relaxed);
            loader.join().expect("the load thread");
            stop.store(false, Ordering::Relaxed);
            browser.wait("ten quiet seconds", || {
                (points() >= start + 30).then_some(())
            });
        }
    }
    for (width, height) in [(1280, 900), (360, 740)] {
        browser.resize(width, height);
        open_view(browser, "overview");
        browser.js("window.scrollTo(0, 0);", json!([]));
        keep_screenshot(browser, &format!("overview-{width}.png"));
        open_key(browser, "user:*", "user:42");
        browser.click("input[name=view][value=json]");
        browser.js("window.scrollTo(0, 0);", json!([]));
        keep_screenshot(browser, &format!("keys-{width}.png"));
        open_view(browser, "console");
        browser.type_into("#console-input", &format!("INFO keyspace{ENTER}"), false);
        browser.wait("INFO's reply", || {
            browser
                .text("#console-log")
                .contains("db0:keys=")
                .then_some(())
        });
        keep_screenshot(browser, &format!("console-{width}.png"));
        open_view(browser, "clients");
        browser.wait("the clients table", || {
            browser
                .text("#client-table")
                .contains("127.0.0.1")
                .then_some(())
        });
        keep_screenshot(browser, &format!("clients-{width}.png"));
        open_view(browser, "slowlog");
        browser.wait("the slow log", || {
            browser.text("#slow-table").contains("SET").then_some(())
        });
        keep_screenshot(browser, &format!("slowlog-{width}.png"));
    }
}

#[test]
fn a_wrong_password_shows_an_error_and_no_data() {
    let (server, http) = start_http(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    c.cmd(&["AUTH", "s3cret"], b"+OK\r\n");
    c.cmd(&["SET", "secret-key", "secret-value"], b"+OK\r\n");
    let browser = browser(1280, 900);
    browser.goto(&format!("http://{http}/"));
    browser.find("#login:not([hidden])");
    browser.type_into("#login-pass", &format!("wrong{ENTER}"), false);
    browser.wait("the error", || {
        browser
            .text("#login-error")
            .contains("Wrong user name or password")
            .then_some(())
    });
    let shown = browser.js(
        "return {app: !document.getElementById('app').hidden,
                 tabs: !document.getElementById('tabs').hidden,
                 text: document.body.innerText};",
        json!([]),
    );
    assert_eq!(shown["app"], false, "no data view");
    assert_eq!(shown["tabs"], false);
    let text = shown["text"].as_str().unwrap();
    assert!(
        !text.contains("secret-key") && !text.contains("Keys"),
        "{text}"
    );
    keep_screenshot(&browser, "signin-1280.png");

    // The right password opens it, and the page remembers it only in memory.
    browser.type_into("#login-pass", &format!("s3cret{ENTER}"), true);
    browser.wait("the overview's key count", || {
        overview_fact(&browser, "Keys").filter(|keys| keys == "1")
    });
    let stored = browser.js(
        "return document.cookie + localStorage.length + sessionStorage.length;",
        json!([]),
    );
    assert_eq!(stored, "00", "nothing kept outside the page's memory");
}

#[test]
fn replication_in_the_overview() {
    let (primary, http) = start_http(&[]);
    let mut replica = Server::replica_of(&primary, &["--http-port", "0"]);
    let replica_http = http_addr(&mut replica);
    eventually("the replica linked", || {
        replica
            .info("replication")
            .contains(&("master_link_status".to_string(), "up".to_string()))
    });
    let browser = browser(1280, 900);
    browser.goto(&format!("http://{http}/"));
    browser.wait("the primary's replica, online, with its lag", || {
        let role = overview_fact(&browser, "Role")?;
        (role.contains("online, lag") && role.starts_with("primary")).then_some(())
    });
    browser.goto(&format!("http://{replica_http}/"));
    let expected = format!("replica of 127.0.0.1:{} · link up", primary.addr.port());
    browser.wait("the replica's primary and link", || {
        overview_fact(&browser, "Role")?
            .starts_with(&expected)
            .then_some(())
    });
    assert!(browser.text("#server-line").contains("replica"));
}
