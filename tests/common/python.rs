//! The redis-py versions the tests drive pocketkv with, and the one place that picks the
//! interpreter and the library for each: Debian's python3-redis 4.3.4 (apt), and redis-py 8.2.0
//! from PyPI, which `ci/install-deps.sh` installs (pinned by sha256) into a directory of its
//! own. Both run on Debian's /usr/bin/python3 (a version manager's python3 first on PATH may
//! have neither). A library that is missing fails the test, saying how to install it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A redis-py release the tests run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisPy {
    /// Debian's python3-redis (4.3.4 on Debian 12): RESP2 only, no HELLO on connecting.
    Debian,
    /// redis-py 8.2.0: RESP3 by default (HELLO 3), CLIENT SETINFO and CLIENT
    /// MAINT_NOTIFICATIONS on connecting.
    V8,
}

/// Every version, for tests that run a script with each.
pub const REDIS_PY: [RedisPy; 2] = [RedisPy::Debian, RedisPy::V8];

const HOW: &str =
    "run `bash ci/install-deps.sh` (apt's python3-redis, and redis-py 8.2.0 from PyPI)";

impl RedisPy {
    /// The version `redis.__version__` must report.
    pub fn version(self) -> &'static str {
        match self {
            // Debian 12's package; another Debian release may carry another 4.x.
            RedisPy::Debian => "4.",
            RedisPy::V8 => "8.2.0",
        }
    }

    /// A name for failure messages.
    pub fn name(self) -> &'static str {
        match self {
            RedisPy::Debian => "redis-py (Debian's python3-redis)",
            RedisPy::V8 => "redis-py 8.2.0",
        }
    }

    /// Where redis-py 8.2.0 is installed: `REDIS_PY8_DIR`, or the default of
    /// ci/install-deps.sh (keep the two in step).
    pub fn v8_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("REDIS_PY8_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/pocketkv/redis-py-8.2.0")
    }

    /// A python3 command that imports this redis-py; add the script and its arguments. Checks
    /// once per test binary that the library is there and is the right version, and fails the
    /// test saying how to install it otherwise.
    pub fn python(self) -> Command {
        static CHECKED: [OnceLock<()>; 2] = [OnceLock::new(), OnceLock::new()];
        let slot = match self {
            RedisPy::Debian => &CHECKED[0],
            RedisPy::V8 => &CHECKED[1],
        };
        slot.get_or_init(|| self.check());
        self.bare()
    }

    fn bare(self) -> Command {
        let interpreter = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut command = Command::new(interpreter);
        // Neither the caller's PYTHONPATH nor a user site-packages may choose the library.
        command
            .env_remove("PYTHONPATH")
            .env("PYTHONNOUSERSITE", "1");
        if self == RedisPy::V8 {
            command.env("PYTHONPATH", Self::v8_dir());
        }
        command
    }

    fn check(self) {
        let output = self
            .bare()
            .args(["-c", "import redis; print(redis.__version__)"])
            .output()
            .unwrap_or_else(|e| panic!("python3 for {}: {e}; {HOW}", self.name()));
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let want = self.version();
        let right = if want.ends_with('.') {
            version.starts_with(want)
        } else {
            version == want
        };
        assert!(
            output.status.success() && right,
            "{} is not installed{}: python3 imported redis {version:?} {}; {HOW}",
            self.name(),
            if self == RedisPy::V8 {
                format!(" in {}", Self::v8_dir().display())
            } else {
                String::new()
            },
            String::from_utf8_lossy(&output.stderr).trim(),
        );
    }
}

/// The path of a script under tests/scripts.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name)
}
