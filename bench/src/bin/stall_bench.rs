//! The stall scenario from DESIGN.md, measured: does a light route stay fast while a heavy route
//! saturates the CPU?
//!
//! Run: `cargo build --release --workspace && target/release/stall_bench` (about 5 minutes with
//! the defaults; `--help` lists the flags; `--anchor axum` adds the axum + tokio anchor, built
//! with `cargo build --release --manifest-path bench/anchors/axum/Cargo.toml`).
//!
//! Each run of each variant starts the server in a child process (the demo binary,
//! `target/release/steadyloop`, or the anchor), then:
//! 1. **unloaded**: one connection probes `GET /healthz` open-loop at `--rate` req/s for
//!    `--baseline-secs`;
//! 2. **loaded**: `--heavy-conns` keep-alive connections hammer the heavy route closed-loop for
//!    `--heavy-secs`; `--probe-delay-secs` in, the same probe runs for `--probe-secs`.
//!
//! The probe is open-loop: request *i* is due at `start + i / rate`. When the previous answer
//! came late and pushed a request past its due time, its latency counts from the due time, so a
//! stall shows up in full instead of as one slow sample (no coordinated omission).
//! Variants: `inline` (heavy route computed on the event loop: the bug), `offload` (on the pool:
//! the fix), `offload-normal-prio` (pool workers at the loop's priority),
//! `offload-short-slice` (the loop thread asks Linux 6.12+'s EEVDF scheduler for a short time
//! slice, `--slice-us`), `axum` (`spawn_blocking`), `axum-inline`.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use steadyloop_bench::client::Client;
use steadyloop_bench::flags::Flags;
use steadyloop_bench::probe::probe;
use steadyloop_bench::procfs::Sampler;
use steadyloop_bench::server::{demo_binary, ServerProcess, Target};
use steadyloop_bench::stats::{ms, percentile, print_table, Spread};

/// The demo's default report size (`GET /report` without `rows`).
const DEFAULT_ROWS: usize = 20_000;

/// The `--help` text.
const USAGE: &str = "stall_bench: light-route latency while a heavy route saturates the CPU

Usage: stall_bench [--FLAG VALUE]...
  --runs N               runs of every variant; medians and min-max are reported [3]
  --variants LIST        comma-separated: inline, offload, offload-normal-prio,
                         offload-short-slice, axum, axum-inline
                         [inline,offload,offload-normal-prio]
  --anchor axum          also run the `axum` variant (needs the anchor built)
  --anchor-bin PATH      the anchor binary [bench/anchors/axum/target/release/axum-anchor]
  --bin PATH             the steadyloop demo binary [$STEADYLOOP_DEMO_BIN, else
                         steadyloop next to this tool, e.g. target/release/steadyloop]
  --rows N               rows per heavy report (~1 us CPU each) [20000]
  --heavy-conns N        closed-loop connections on the heavy route [8]
  --heavy-secs S         heavy load duration [14]
  --probe-delay-secs S   probe start after the heavy load starts [2]
  --probe-secs S         probe duration, loaded [8]
  --baseline-secs S      probe duration, unloaded [8]
  --rate R               probe requests per second [100]
  --server-args ARGS     extra steadyloop settings, e.g. \"--workers 2 --queue 16\"
  --slice-us US          the EEVDF slice `offload-short-slice` asks for on the loop thread
                         (Linux 6.12+, root; scripts/set_slice.py) [100]
";

/// What to measure and how long.
#[derive(Debug, Clone)]
struct Options {
    /// Runs of every variant.
    runs: usize,
    /// Variant names, in order.
    variants: Vec<String>,
    /// Path of the axum anchor, if given.
    anchor_bin: Option<String>,
    /// Path of the demo binary, if given.
    demo_bin: Option<String>,
    /// Extra settings for steadyloop variants.
    server_args: Vec<String>,
    /// Rows per heavy report.
    rows: usize,
    /// Heavy connections.
    heavy_conns: usize,
    /// Heavy load duration.
    heavy: Duration,
    /// Probe start after the heavy load starts.
    probe_delay: Duration,
    /// Loaded probe duration.
    probe: Duration,
    /// Unloaded probe duration.
    baseline: Duration,
    /// Probe requests per second.
    rate: f64,
    /// The time slice the `offload-short-slice` variant asks for on the loop thread.
    slice_us: u64,
}

/// What one run of one variant measured.
#[derive(Debug, Clone)]
struct RunResult {
    /// Light latencies without load, sorted.
    unloaded: Vec<Duration>,
    /// Light latencies under load, sorted.
    loaded: Vec<Duration>,
    /// Light requests that failed or were not 200.
    light_errors: u64,
    /// Heavy responses with 200 per second of heavy load.
    heavy_rps: f64,
    /// Heavy responses with 503.
    heavy_503: u64,
    /// Heavy requests that failed otherwise.
    heavy_errors: u64,
    /// The slowest answer (200 or 503) to a heavy request, ms.
    heavy_max_ms: f64,
    /// Peak resident memory of the server, MiB.
    peak_rss_mb: f64,
    /// Most threads the server had.
    peak_threads: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(options) = options(&args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let targets = options
        .variants
        .iter()
        .map(|v| target(v, &options))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "stall_bench: {} run(s); heavy: {} conns x {:?} on {} rows; probe: {} req/s, {:?} \
         unloaded, {:?} loaded starting {:?} in",
        options.runs,
        options.heavy_conns,
        options.heavy,
        options.rows,
        options.rate,
        options.baseline,
        options.probe,
        options.probe_delay
    );

    // Runs are interleaved (every variant once, then again) so slow drift hits all alike.
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); targets.len()];
    for run in 1..=options.runs {
        for ((target, heavy_path), out) in targets.iter().zip(&mut results) {
            let r = run_once(target, heavy_path, &options)?;
            eprintln!(
                "run {run} {:<20} unloaded p99 {:.2} ms, loaded p99 {:.2} ms, heavy {:.1} req/s",
                target.name,
                ms(percentile(&r.unloaded, 99.0)),
                ms(percentile(&r.loaded, 99.0)),
                r.heavy_rps
            );
            out.push(r);
        }
    }
    report(&targets, &results, &options);
    Ok(())
}

/// Parses the flags; `None` for `--help`.
fn options(args: &[String]) -> Result<Option<Options>, String> {
    let Some(mut flags) = Flags::parse(args)? else {
        return Ok(None);
    };
    let mut variants: Vec<String> = flags
        .take("variants", "inline,offload,offload-normal-prio".to_string())?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    match flags.take_opt("anchor").as_deref() {
        None => {}
        Some("axum") => variants.push("axum".into()),
        Some(other) => return Err(format!("unknown anchor {other:?} (known: axum)")),
    }
    let options = Options {
        runs: flags.take("runs", 3)?,
        variants,
        anchor_bin: flags.take_opt("anchor-bin"),
        demo_bin: flags.take_opt("bin"),
        server_args: flags
            .take("server-args", String::new())?
            .split_whitespace()
            .map(String::from)
            .collect(),
        rows: flags.take("rows", DEFAULT_ROWS)?,
        slice_us: flags.take("slice-us", 100)?,
        heavy_conns: flags.take("heavy-conns", 8)?,
        heavy: flags.take_secs("heavy-secs", 14.0)?,
        probe_delay: flags.take_secs("probe-delay-secs", 2.0)?,
        probe: flags.take_secs("probe-secs", 8.0)?,
        baseline: flags.take_secs("baseline-secs", 8.0)?,
        rate: flags.take("rate", 100.0)?,
    };
    flags.finish()?;
    if options.runs == 0 || options.rate <= 0.0 || options.heavy_conns == 0 {
        return Err("--runs, --rate and --heavy-conns must be above 0".into());
    }
    Ok(Some(options))
}

/// The server and heavy path of `variant`.
fn target(variant: &str, options: &Options) -> Result<(Target, String), Box<dyn Error>> {
    let rows = options.rows;
    let mut settings = options.server_args.clone();
    let demo = || demo_binary(options.demo_bin.clone());
    let (target, path) = match variant {
        "inline" => (
            Target::steadyloop(variant, demo()?, &settings),
            "/report/inline",
        ),
        "offload" | "offload-short-slice" => {
            (Target::steadyloop(variant, demo()?, &settings), "/report")
        }
        "offload-normal-prio" => {
            settings.extend(["--low-priority-workers".into(), "false".into()]);
            (Target::steadyloop(variant, demo()?, &settings), "/report")
        }
        "axum" => (
            Target::axum(variant, options.anchor_bin.clone())?,
            "/report",
        ),
        "axum-inline" => (
            Target::axum(variant, options.anchor_bin.clone())?,
            "/report/inline",
        ),
        other => return Err(format!("unknown variant {other:?} (try --help)").into()),
    };
    Ok((target, format!("{path}?rows={rows}")))
}

/// Asks for an EEVDF slice of `micros` on thread `tid` through scripts/set_slice.py (std has no
/// `sched_setattr`, and the experiment should not add a dependency).
fn short_slice(tid: u32, micros: u64) -> Result<(), Box<dyn Error>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/set_slice.py");
    let out = std::process::Command::new("python3")
        .args([script, &tid.to_string(), &micros.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(format!("set_slice.py: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// Measures one variant once, on a fresh server process.
fn run_once(
    target: &Target,
    heavy_path: &str,
    options: &Options,
) -> Result<RunResult, Box<dyn Error>> {
    let server = ServerProcess::start(target)?;
    let addr = server.addr();
    if target.name == "offload-short-slice" {
        // The loop runs on the demo's main thread, whose id is the process id.
        short_slice(server.pid(), options.slice_us)?;
    }

    // Warm up both routes on one connection; a heavy route that fails is a setup error.
    let mut warm = Client::connect(addr)?;
    for _ in 0..50 {
        warm.get("/healthz")?;
    }
    let status = warm.get(heavy_path)?;
    if status != 200 {
        return Err(format!("{}: GET {heavy_path} answered {status}", target.name).into());
    }
    drop(warm);

    let sampler = Sampler::start(server.pid(), Duration::from_millis(20));
    let (unloaded, unloaded_errors) = probe(addr, "/healthz", options.rate, options.baseline)?;

    // Heavy load, with the probe joining after the delay.
    let heavy_start = Instant::now();
    let heavy_end = heavy_start + options.heavy;
    let heavy_path: Arc<str> = heavy_path.into();
    let heavy: Vec<_> = (0..options.heavy_conns)
        .map(|_| {
            let path = heavy_path.clone();
            thread::spawn(move || hammer(addr, &path, heavy_end))
        })
        .collect();
    thread::sleep(options.probe_delay);
    let (loaded, loaded_errors) = probe(addr, "/healthz", options.rate, options.probe)?;
    let (mut ok, mut shed, mut failed, mut slowest) = (0, 0, 0, Duration::ZERO);
    for h in heavy {
        let (o, s, f, w) = h.join().expect("heavy thread");
        (ok, shed, failed, slowest) = (ok + o, shed + s, failed + f, slowest.max(w));
    }
    let peak = sampler.finish();

    Ok(RunResult {
        unloaded,
        loaded,
        light_errors: unloaded_errors + loaded_errors,
        heavy_rps: ok as f64 / options.heavy.as_secs_f64(),
        heavy_503: shed,
        heavy_errors: failed,
        heavy_max_ms: ms(slowest),
        peak_rss_mb: peak.peak_rss_kb as f64 / 1024.0,
        peak_threads: peak.threads,
    })
}

/// Requests `path` back to back on one connection until `end`; returns (200s answered before
/// `end`, 503s, other failures, the slowest answer).
fn hammer(addr: SocketAddr, path: &str, end: Instant) -> (u64, u64, u64, Duration) {
    let (mut ok, mut shed, mut failed, mut slowest) = (0, 0, 0, Duration::ZERO);
    let mut client = Client::connect(addr).ok();
    while Instant::now() < end {
        let Some(c) = client.as_mut() else {
            failed += 1;
            client = Client::connect(addr).ok();
            continue;
        };
        let sent = Instant::now();
        let answer = c.get(path);
        if matches!(answer, Ok(200 | 503)) {
            slowest = slowest.max(sent.elapsed());
        }
        match answer {
            Ok(200) if Instant::now() <= end => ok += 1,
            Ok(200) => {}
            Ok(503) => shed += 1,
            Ok(_) | Err(_) => failed += 1,
        }
    }
    (ok, shed, failed, slowest)
}

/// Prints the tables: medians over runs with the min–max spread.
fn report(targets: &[(Target, String)], results: &[Vec<RunResult>], options: &Options) {
    let spread = |runs: &[RunResult], f: &dyn Fn(&RunResult) -> f64| {
        Spread::of(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let lat = |runs: &[RunResult], loaded: bool, p: f64| {
        spread(runs, &|r| {
            ms(percentile(if loaded { &r.loaded } else { &r.unloaded }, p))
        })
        .show(2)
    };
    println!(
        "\nLight GET /healthz latency in ms, median (min–max) over {} run(s); ratio = loaded p99 \
         / unloaded p99 per run\n",
        options.runs
    );
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(results)
        .map(|((t, _), runs)| {
            vec![
                t.name.clone(),
                lat(runs, false, 50.0),
                lat(runs, false, 99.0),
                lat(runs, false, 100.0),
                lat(runs, true, 50.0),
                lat(runs, true, 99.0),
                lat(runs, true, 100.0),
                spread(runs, &|r| {
                    ms(percentile(&r.loaded, 99.0)) / ms(percentile(&r.unloaded, 99.0))
                })
                .show(1),
            ]
        })
        .collect();
    print_table(
        &[
            "variant",
            "unloaded p50",
            "unloaded p99",
            "unloaded max",
            "loaded p50",
            "loaded p99",
            "loaded max",
            "p99 ratio",
        ],
        &rows,
    );
    // Heavy throughput relative to the axum anchor's median, when it ran.
    let axum_rps = targets
        .iter()
        .zip(results)
        .find(|((t, _), _)| t.name == "axum")
        .map(|(_, runs)| spread(runs, &|r| r.heavy_rps).median);
    println!("\nHeavy route and server footprint, median (min–max)\n");
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(results)
        .map(|((t, path), runs)| {
            let rps = spread(runs, &|r| r.heavy_rps);
            vec![
                t.name.clone(),
                path.clone(),
                rps.show(1),
                axum_rps.map_or("-".into(), |a| format!("{:.2}", rps.median / a)),
                spread(runs, &|r| r.heavy_503 as f64).show(0),
                spread(runs, &|r| r.heavy_max_ms).show(1),
                spread(runs, &|r| (r.heavy_errors + r.light_errors) as f64).show(0),
                spread(runs, &|r| r.peak_rss_mb).show(1),
                spread(runs, &|r| r.peak_threads as f64).show(0),
            ]
        })
        .collect();
    print_table(
        &[
            "variant",
            "heavy route",
            "heavy req/s",
            "vs axum",
            "503s",
            "slowest heavy answer ms",
            "other errors",
            "peak RSS MiB",
            "peak threads",
        ],
        &rows,
    );
}
