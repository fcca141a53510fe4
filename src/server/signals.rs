//! SIGINT and SIGTERM become a graceful shutdown message for the loop.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{Handle, News};

/// Starts a thread that forwards SIGINT/SIGTERM to the loop through `handle`.
pub fn forward(handle: Handle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
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
