//! The open-loop light probe on its own, for scripts: `probe --addr HOST:PORT [--rate R]
//! [--secs S] [--path P]` asks `GET P` at R requests a second for S seconds on one keep-alive
//! connection and prints one line: `p50 p99 max errors count` (latencies in ms, counted from
//! each request's due time; see `steadyloop_bench::probe`).
//!
//! `scripts/retry_storm.sh` uses it beside wrk's closed-loop probe: a health check asks at a
//! steady rate, and a closed-loop probe is itself a load that competes for the CPU.

use std::error::Error;
use std::net::SocketAddr;

use steadyloop_bench::flags::Flags;
use steadyloop_bench::probe::probe;
use steadyloop_bench::stats::{ms, percentile};

/// The `--help` text.
const USAGE: &str = "probe: open-loop GET latency on one keep-alive connection

Usage: probe --addr HOST:PORT [--FLAG VALUE]...
  --addr HOST:PORT   the server
  --path P           the path to ask for [/healthz]
  --rate R           requests per second [1000]
  --secs S           how long [8]
Prints: p50 p99 max errors count (ms; from each request's due time)
";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mut flags) = Flags::parse(&args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let Some(addr) = flags.take_opt("addr") else {
        return Err(format!("--addr is required\n\n{USAGE}").into());
    };
    let addr: SocketAddr = addr.parse()?;
    let path: String = flags.take("path", "/healthz".to_string())?;
    let rate: f64 = flags.take("rate", 1000.0)?;
    let secs = flags.take_secs("secs", 8.0)?;
    flags.finish()?;
    if rate.is_nan() || rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    let (latencies, errors) = probe(addr, &path, rate, secs)?;
    if latencies.is_empty() {
        return Err("no requests: --secs times --rate rounds to 0".into());
    }
    println!(
        "{:.3} {:.3} {:.3} {} {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 100.0)),
        errors,
        latencies.len()
    );
    Ok(())
}
