//! A minimal logger for the demo binary: one line per record on stderr.
//!
//! The level comes from `STEADYLOOP_LOG` (`error`, `warn`, `info`, `debug`, `trace` or `off`),
//! and defaults to `info`, so startup, shutdown and overload messages are visible.

use std::io::Write as _;

/// Writes records to stderr.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            // A closed stderr is no reason to stop serving.
            let _ = writeln!(
                std::io::stderr().lock(),
                "steadyloop {}: {}",
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger with the level from `STEADYLOOP_LOG`.
pub fn install() {
    let level = std::env::var("STEADYLOOP_LOG")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
