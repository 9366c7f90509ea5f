//! A small stderr logger for the demo binary: one line per record, written by its own thread.
//!
//! The loop only pushes formatted lines into a bounded channel and never waits: if stderr is
//! slower than the log rate (a full pipe), lines are dropped and counted, instead of the event
//! loop blocking on a write.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Lines that may wait for the writer thread.
const BACKLOG: usize = 4096;

/// The logger.
struct StderrLogger {
    /// The most verbose level logged.
    level: LevelFilter,
    /// Lines for the writer thread.
    lines: SyncSender<String>,
    /// Lines dropped because the backlog was full.
    dropped: AtomicU64,
    /// Start each line with its syslog priority (`<3>` ... `<7>`): set when stderr goes to
    /// journald (`JOURNAL_STREAM`), which then shows and filters by level.
    priorities: bool,
}

/// Parses a level name (`error`, `warn`, `info`, `debug`, `trace`, `off`).
pub fn parse_level(text: &str) -> Option<LevelFilter> {
    text.trim().parse().ok()
}

/// Installs the logger at `level`. Returns an error if a logger is already installed.
pub fn install(level: LevelFilter) -> Result<(), log::SetLoggerError> {
    let (tx, rx) = sync_channel::<String>(BACKLOG);
    let logger = Box::new(StderrLogger {
        level,
        lines: tx,
        dropped: AtomicU64::new(0),
        priorities: std::env::var_os("JOURNAL_STREAM").is_some(),
    });
    log::set_logger(Box::leak(logger))?;
    log::set_max_level(level);
    std::thread::Builder::new()
        .name("steadyloop-log".into())
        .spawn(move || {
            let stderr = std::io::stderr();
            for line in rx {
                let _ = stderr.lock().write_all(line.as_bytes());
            }
        })
        .map(drop)
        .unwrap_or_else(|e| eprintln!("steadyloop: no log thread ({e}); logging is off"));
    Ok(())
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        // UTC time of day: enough to line records up with a request, no calendar needed.
        let secs = now.as_secs() % 86_400;
        // journald adds its own timestamps; it reads the level from the `<N>` prefix.
        let priority = match record.level() {
            Level::Error => "<3>",
            Level::Warn => "<4>",
            Level::Info => "<6>",
            Level::Debug | Level::Trace => "<7>",
        };
        let mut line = format!(
            "{}{:02}:{:02}:{:02}.{:03}Z {level} {}: {}\n",
            if self.priorities { priority } else { "" },
            secs / 3600,
            secs % 3600 / 60,
            secs % 60,
            now.subsec_millis(),
            record.target(),
            record.args()
        );
        if dropped > 0 {
            line.push_str(&format!(
                "(log: {dropped} line(s) dropped, stderr was too slow)\n"
            ));
        }
        if let Err(TrySendError::Full(_)) = self.lines.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}
