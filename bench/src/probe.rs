//! The open-loop light probe shared by `stall_bench` and the `probe` tool: one keep-alive
//! connection asks `GET /healthz` at a fixed rate, and every latency counts from the moment
//! the request was due, so a stall shows up in full (no coordinated omission) without the
//! probe itself becoming a load.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;

/// Probes `GET path` open-loop at `rate` per second for `duration` on one connection; returns
/// the sorted latencies and the number of failed or non-200 requests.
///
/// Request *i* is due at `start + i / rate`. When the previous answer came late and pushed a
/// request past its due time, its latency counts from the due time; otherwise from the actual
/// send, so the probe's own timer slack is not charged to the server.
///
/// # Errors
///
/// If the first connection cannot be opened.
pub fn probe(
    addr: SocketAddr,
    path: &str,
    rate: f64,
    duration: Duration,
) -> std::io::Result<(Vec<Duration>, u64)> {
    let mut client = Client::connect(addr)?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (duration.as_secs_f64() * rate).round() as u32;
    let mut latencies = Vec::with_capacity(count as usize);
    let mut errors = 0;
    let start = Instant::now();
    let mut previous_done = start;
    for i in 0..count {
        let due = start + interval * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let sent = Instant::now();
        let ok = matches!(client.get(path), Ok(200));
        let done = Instant::now();
        let from = if previous_done > due { due } else { sent };
        latencies.push(done - from);
        errors += u64::from(!ok);
        previous_done = done;
    }
    latencies.sort();
    Ok((latencies, errors))
}
