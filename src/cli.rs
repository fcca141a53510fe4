//! Start-up: settings, logging, checks, loading the snapshot, binding, then the event loop.

use std::process::ExitCode;

use log::info;

use crate::config::{Config, ConfigError};
use crate::server::Server;

/// Runs the server as the command line asks; exit 0 on a clean stop, 2 on bad flags, 1 on
/// anything else (port in use, unwritable directory, damaged snapshot).
pub fn main() -> ExitCode {
    let mut config = match Config::from_sources(std::env::args().skip(1), |k| std::env::var(k).ok())
    {
        Ok(config) => config,
        Err(e @ (ConfigError::Help | ConfigError::Version)) => {
            println!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pocketkv: {e}");
            return ExitCode::from(2);
        }
    };
    if !config.logfile.is_empty() {
        if let Err(e) = crate::logging::open_file(std::path::Path::new(&config.logfile)) {
            eprintln!("pocketkv: cannot open log file {}: {e}", config.logfile);
            return ExitCode::FAILURE;
        }
    }
    config.loglevel = init_logging(config.loglevel);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pocketkv: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (and `--logfile`) at `level`, unless `RUST_LOG` names a level; returns the
/// level in force, which CONFIG GET loglevel then shows.
pub fn init_logging(level: log::LevelFilter) -> log::LevelFilter {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| crate::logging::level_from_env(&spec))
        .unwrap_or(level);
    crate::logging::init(level);
    level
}

/// Checks the data directory, loads the snapshot, binds, and serves until a signal stops it.
pub fn serve(mut config: Config) -> Result<(), String> {
    check_writable(&config)?;
    tune_allocator();
    let open_files = fit_clients_to_file_limit(&mut config);
    let path = config.snapshot_path();
    let recovered = crate::server::recover(&config)?;
    let found = recovered.snapshot_found;
    let replayed = recovered.replayed;
    let load_time = recovered.elapsed;
    let address = (config.bind.as_str(), config.port);
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.bind, config.port))?;
    let mut log_note = if config.appendonly {
        format!(", {replayed} log records replayed")
    } else {
        String::new()
    };
    if recovered.expired > 0 {
        log_note += &format!(", {} expired while stopped and dropped", recovered.expired);
    }
    let mut server = Server::new(listener, config, recovered).map_err(|e| e.to_string())?;
    server
        .stop_on_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let http_note = match server.http_addr() {
        Some(addr) => format!(", HTTP on {addr}"),
        None => String::new(),
    };
    info!(
        "pocketkv {} listening on {}{http_note}, data file {} ({}), {} keys loaded in {:.1} ms\
         {log_note}, open files limit {open_files}",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
        path.display(),
        if found {
            "loaded"
        } else {
            "not found, starting empty"
        },
        server.keys(),
        load_time.as_secs_f64() * 1e3
    );
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// Turns off glibc's fastbins. With them, every allocation of a kilobyte or more first merges
/// every small block freed since the last one; with a million keys being overwritten that is
/// milliseconds at a time on the loop (measured at 1.25M keys during a snapshot: the worst loop
/// turn fell from 19-25 ms to 3-6 ms of CPU). musl has no fastbins.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// File descriptors kept for the listener, the snapshot, logs and the poll itself.
const RESERVED_FDS: u64 = 32;

/// Raises the open-file soft limit to the hard limit, and lowers `maxclients` to what then fits,
/// as Redis does, so a client beyond the limit gets an error instead of an `accept` failure.
fn fit_clients_to_file_limit(config: &mut Config) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                limit.rlim_cur = before;
            }
        }
    }
    let fits = limit.rlim_cur.saturating_sub(RESERVED_FDS).max(1);
    if (config.maxclients as u64) > fits {
        log::warn!(
            "maxclients lowered from {} to {fits} to fit the open files limit ({})",
            config.maxclients,
            limit.rlim_cur
        );
        config.maxclients = usize::try_from(fits).unwrap_or(usize::MAX);
    }
    limit.rlim_cur
}

/// Fails early, with a clear message, when snapshots could never be written.
fn check_writable(config: &Config) -> Result<(), String> {
    let probe = config
        .dir
        .join(format!(".pocketkv-probe-{}", std::process::id()));
    let result = std::fs::File::create(&probe);
    let _ = std::fs::remove_file(&probe);
    result.map(drop).map_err(|e| {
        format!(
            "data directory {} is not writable: {e}",
            config.dir.display()
        )
    })
}
