//! SIGINT and SIGTERM become a graceful shutdown message for the loop, SIGHUP a request to
//! reopen the log files.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{Handle, News};

/// Starts a thread that forwards SIGINT/SIGTERM/SIGHUP to the loop through `handle`.
pub fn forward(handle: Handle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    if !handle.send(News::Reopen) {
                        return;
                    }
                    continue;
                }
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                if !handle.send(News::Shutdown(name)) {
                    return;
                }
            }
        })?;
    Ok(())
}
