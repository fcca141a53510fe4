//! The config file (`pocketkv FILE [--flags]`) in redis.conf syntax, its precedence, and
//! CONFIG GET/SET of what it set, against the real binary.

mod common;

use std::process::Stdio;

use common::{bulk, server_command, Server};

/// Writes `text` to a config file in a fresh directory; returns both (the directory lives as
/// long as the returned guard).
fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pocketkv.conf");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `CONFIG GET name`'s value.
fn config_get(client: &mut common::Client, name: &str) -> String {
    client.send(&common::resp(&["CONFIG", "GET", name]));
    assert_eq!(client.read_line(), "*2\r\n");
    for _ in 0..3 {
        client.read_line();
    }
    client.read_line().trim_end().to_string()
}

#[test]
fn settings_come_from_the_file_and_flags_win() {
    let (_dir, path) = config_file(
        "# pocketkv settings\n\
         \n\
         requirepass \"s3cret pw\"\n\
         timeout 30\n\
         \tsave 900 1 300 10\n\
         client-output-buffer-limit normal 64mb 16mb 10\n\
         client-output-buffer-limit pubsub 32mb 8mb 60\n\
         maxclients 100\n",
    );
    let server = Server::start_with_config(&path, &["--maxclients", "50"]);
    let mut c = server.connect();
    c.cmd(&["GET", "k"], b"-NOAUTH Authentication required.\r\n");
    c.cmd(&["AUTH", "s3cret pw"], b"+OK\r\n");
    assert_eq!(config_get(&mut c, "timeout"), "30");
    assert_eq!(config_get(&mut c, "save-interval"), "300");
    assert_eq!(config_get(&mut c, "save"), "300 1");
    assert_eq!(config_get(&mut c, "maxclients"), "50", "the flag wins");
    assert_eq!(
        config_get(&mut c, "client-output-buffer-limit"),
        "normal 67108864 16777216 10 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    c.cmd(&["CONFIG", "SET", "timeout", "5"], b"+OK\r\n");
    assert_eq!(config_get(&mut c, "timeout"), "5");
    c.cmd(&["SET", "k", "v"], b"+OK\r\n");
    c.cmd(&["GET", "k"], &bulk("v"));
}

#[test]
fn the_file_beats_the_environment_which_beats_defaults() {
    let (dir, path) = config_file("timeout 7\n");
    let output = server_command()
        .args([
            path.to_str().unwrap(),
            "--dir",
            dir.path().to_str().unwrap(),
            "--help",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "--help after a config file");
    let child = server_command()
        .arg(&path)
        .args(["--port", "0", "--dir", dir.path().to_str().unwrap()])
        .env("POCKETKV_TIMEOUT", "9")
        .env("POCKETKV_SAVE_INTERVAL", "11")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on drop, even when an assertion fails.
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let addr = loop {
        let line = lines.next().expect("start-up line").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split([',', ' ']).next().unwrap().parse().unwrap();
        }
    };
    let mut c = common::Client::connect(addr);
    assert_eq!(
        config_get(&mut c, "timeout"),
        "7",
        "the file beats the environment"
    );
    assert_eq!(
        config_get(&mut c, "save-interval"),
        "11",
        "the environment beats the default"
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args` and returns (exit code, stderr).
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let output = server_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_files_name_the_file_and_line() {
    let cases = [
        ("port 1\nnosuch 3\n", 2, "unknown directive 'nosuch'"),
        ("port 1\n\nrequirepass \"open\n", 3, "unbalanced quotes"),
        (
            "timeout soon\n",
            1,
            "invalid value 'soon' for timeout: expected a number of seconds",
        ),
        ("# fine\nport\n", 2, "'port' needs a value"),
        (
            "requirepass two words # not a comment\n",
            1,
            "'requirepass' takes one value (quote it if it holds spaces)",
        ),
        (
            "save 900\n",
            1,
            "expected save \"\" or save <seconds> <changes> ...",
        ),
    ];
    for (text, line, message) in cases {
        let (_dir, path) = config_file(text);
        let path = path.to_str().unwrap();
        let (code, stderr) = fails(&[path, "--port", "0"]);
        assert_eq!(code, Some(2), "{text:?}: {stderr}");
        assert_eq!(
            stderr,
            format!("pocketkv: {path}:{line}: {message}\n"),
            "{text:?}"
        );
    }
    let (code, stderr) = fails(&["/nonexistent/pocketkv.conf"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("pocketkv: cannot read config file /nonexistent/pocketkv.conf: "),
        "{stderr}"
    );
    // Only the first argument may be a file.
    let (code, stderr) = fails(&["--port", "0", "stray"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown flag 'stray'"), "{stderr}");
}

#[test]
fn config_set_save_interval_and_appendfsync_take_effect() {
    let server = Server::start(&["--appendonly", "yes", "--save-interval", "0"]);
    let mut c = server.connect();
    c.cmd(&["CONFIG", "SET", "appendfsync", "always"], b"+OK\r\n");
    // INFO shows the policy the log thread now follows.
    c.send(&common::resp(&["INFO", "persistence"]));
    let header = c.read_line();
    let len: usize = header[1..].trim_end().parse().unwrap();
    let info = String::from_utf8(c.read_n(len + 2)).unwrap();
    assert!(info.contains("aof_fsync:always\r\n"), "{info}");
    c.cmd(&["SET", "k", "v"], b"+OK\r\n");
    c.cmd(
        &["CONFIG", "SET", "appendfsync", "sometimes"],
        b"-ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument must be always, everysec or no\r\n",
    );
    // A snapshot timer turned on at run time fires.
    c.cmd(&["CONFIG", "SET", "save-interval", "1"], b"+OK\r\n");
    let mut server = server;
    server.wait_log("snapshot saved");
}

#[test]
fn rename_command_hides_and_renames_dangerous_commands() {
    let (_dir, path) = config_file("rename-command CONFIG \"\"\nrename-command keys secret-keys\n");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let flags = [
        "--dir",
        data,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--rename-command",
        "FLUSHALL",
        "wipe-it",
    ];
    let server = Server::start_with_config(&path, &flags);
    let mut c = server.connect();
    c.cmd(
        &["FLUSHALL"],
        b"-ERR unknown command 'FLUSHALL', with args beginning with: \r\n",
    );
    c.cmd(
        &["CONFIG", "GET", "rename-command"],
        b"-ERR unknown command 'CONFIG', with args beginning with: 'GET' 'rename-command' \r\n",
    );
    c.cmd(&["SET", "a", "1"], b"+OK\r\n");
    c.cmd(&["SECRET-KEYS", "*"], b"*1\r\n$1\r\na\r\n");
    c.cmd(
        &["KEYS", "*"],
        b"-ERR unknown command 'KEYS', with args beginning with: '*' \r\n",
    );
    c.roundtrip(b"wipe-it\n", b"OK\n");
    c.cmd(&["SET", "b", "2"], b"+OK\r\n");
    // Killed: no final snapshot, only the log (fsynced before each reply) tells the story.
    drop(server);
    assert!(!dir.path().join("data.json").exists());
    // The log holds FLUSHALL under its own name: it replays without any renames.
    let server = Server::start_in(dir.path(), &["--appendonly", "yes"]);
    let mut c = server.connect();
    c.cmd(&["KEYS", "*"], b"*1\r\n$1\r\nb\r\n");
    c.cmd(&["CONFIG", "GET", "rename-command"], b"*0\r\n");
}

#[test]
fn rename_command_of_an_unknown_command_is_refused() {
    let (code, stderr) = fails(&["--port", "0", "--rename-command", "NOSUCH", "x"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("invalid value 'NOSUCH x' for --rename-command"),
        "{stderr}"
    );
}
