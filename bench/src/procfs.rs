//! Memory and thread counts of a process, from `/proc/PID/status` (Linux).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// One reading of a process's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// Resident set size now, in KiB (`VmRSS`).
    pub rss_kb: u64,
    /// Highest resident set size so far, in KiB (`VmHWM`).
    pub peak_rss_kb: u64,
    /// Resident anonymous memory now, in KiB (`RssAnon`): heap, stacks and other private pages,
    /// without the mapped binary and shared libraries that `rss_kb` also counts.
    pub anon_kb: u64,
    /// Threads now.
    pub threads: u64,
}

impl ProcStatus {
    /// Reads the status of process `pid`.
    pub fn read(pid: u32) -> std::io::Result<ProcStatus> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let mut status = ProcStatus::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let number = || {
                value
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            match key {
                "VmRSS" => status.rss_kb = number(),
                "VmHWM" => status.peak_rss_kb = number(),
                "RssAnon" => status.anon_kb = number(),
                "Threads" => status.threads = number(),
                _ => {}
            }
        }
        Ok(status)
    }

    /// The field-wise maximum of two readings.
    pub fn max(self, other: ProcStatus) -> ProcStatus {
        ProcStatus {
            rss_kb: self.rss_kb.max(other.rss_kb),
            peak_rss_kb: self.peak_rss_kb.max(other.peak_rss_kb),
            anon_kb: self.anon_kb.max(other.anon_kb),
            threads: self.threads.max(other.threads),
        }
    }
}

/// Returns the proportional set size of process `pid` in KiB (`Pss` in `smaps_rollup`): its
/// private pages plus its share of pages it maps together with other processes (such as libc).
pub fn pss_kb(pid: u32) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    value.ok_or_else(|| std::io::Error::other("no Pss line in smaps_rollup"))
}

/// Reads a process's status every few milliseconds on its own thread, keeping the maxima.
#[derive(Debug)]
pub struct Sampler {
    /// Set to stop sampling.
    stop: Arc<AtomicBool>,
    /// The sampling thread; returns the maxima.
    thread: JoinHandle<ProcStatus>,
}

impl Sampler {
    /// Starts sampling process `pid` every `interval`.
    pub fn start(pid: u32, interval: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut max = ProcStatus::default();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(now) = ProcStatus::read(pid) {
                        max = max.max(now);
                    }
                    thread::sleep(interval);
                }
                // One last reading: VmHWM covers whatever happened between samples.
                if let Ok(now) = ProcStatus::read(pid) {
                    max = max.max(now);
                }
                max
            })
        };
        Sampler { stop, thread }
    }

    /// Stops sampling and returns the maxima seen.
    pub fn finish(self) -> ProcStatus {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}
