//! Throughput and footprint of the demo app: start-to-first-response time, idle memory, memory
//! and threads with many idle keep-alive connections, light-route req/s, and the round-trip
//! cost of offloading a tiny job.
//!
//! Run: `cargo build --release --workspace && target/release/footprint` (`--help` lists the
//! flags; `--anchor axum` measures the axum + tokio anchor side by side, built with
//! `cargo build --release --manifest-path bench/anchors/axum/Cargo.toml`).
//!
//! Every repeat starts a fresh server process (the demo binary, `target/release/steadyloop`, or
//! the one given with `--bin`) and measures, in order:
//! 1. start: from spawning the process to the first `GET /healthz` answer;
//! 2. idle: RSS, RssAnon, PSS and threads after that one request and `--settle-ms`;
//! 3. idle connections: RSS, RssAnon and threads with `--idle-conns` keep-alive connections
//!    open, each having made one request;
//! 4. light load: `GET /healthz` req/s over `--load-conns` keep-alive connections for
//!    `--load-secs`, with `wrk` if it is on the PATH (else a built-in thread-per-connection load).
//!
//! Then the offload round trip: `--offload-ops` tiny jobs (`offload(|| 1)`) awaited one after
//! another from the loop, `--offload-repeats` times (the anchor: `spawn_blocking(|| 1)`).

use std::error::Error;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use steadyloop_bench::client::Client;
use steadyloop_bench::flags::Flags;
use steadyloop_bench::procfs;
use steadyloop_bench::server::{demo_binary, ServerProcess, Target};
use steadyloop_bench::stats::{ms, print_table, Spread};

/// The `--help` text.
const USAGE: &str = "footprint: start time, memory, threads, light req/s, offload cost

Usage: footprint [--FLAG VALUE]...
  --repeats N          fresh server processes per target; medians and min-max [5]
  --anchor axum        also measure the axum anchor (needs it built)
  --anchor-bin PATH    the anchor binary [bench/anchors/axum/target/release/axum-anchor]
  --bin PATH           the steadyloop demo binary [$STEADYLOOP_DEMO_BIN, else steadyloop
                       next to this tool, e.g. target/release/steadyloop]
  --settle-ms MS       pause before the idle reading [300]
  --idle-conns N       idle keep-alive connections to open [1000]
  --load-conns N       keep-alive connections for the light load [32]
  --load-secs S        light load duration [10]
  --load TOOL          wrk, builtin or auto (wrk if installed) [auto]
  --offload-ops N      tiny jobs per offload repeat [20000]
  --offload-repeats N  offload repeats [5]
  offload-bench ...    (internal) time the offload round trip in this process
";

/// What one repeat measured for one target.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Spawn to first answer, ms.
    first_response_ms: f64,
    /// Idle RSS, MiB.
    idle_rss_mb: f64,
    /// Idle anonymous (private) resident memory, MiB.
    idle_anon_mb: f64,
    /// Idle proportional set size, MiB.
    idle_pss_mb: f64,
    /// Idle threads.
    idle_threads: u64,
    /// RSS with the idle connections open, MiB.
    conns_rss_mb: f64,
    /// Anonymous resident memory with the idle connections open, MiB.
    conns_anon_mb: f64,
    /// Threads with the idle connections open.
    conns_threads: u64,
    /// Light requests per second.
    light_rps: f64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("offload-bench") {
        return offload_bench(&args[1..]);
    }
    let Some(mut flags) = Flags::parse(&args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let repeats: usize = flags.take("repeats", 5)?;
    let anchor = flags.take_opt("anchor");
    let anchor_bin = flags.take_opt("anchor-bin");
    let bin = flags.take_opt("bin");
    let settle = Duration::from_millis(flags.take("settle-ms", 300)?);
    let idle_conns: usize = flags.take("idle-conns", 1000)?;
    let load_conns: usize = flags.take("load-conns", 32)?;
    let load_secs: f64 = flags.take("load-secs", 10.0)?;
    let load = flags.take("load", "auto".to_string())?;
    let ops: u32 = flags.take("offload-ops", 20_000)?;
    let offload_repeats: usize = flags.take("offload-repeats", 5)?;
    flags.finish()?;
    let use_wrk = match load.as_str() {
        "wrk" => true,
        "builtin" => false,
        "auto" => Command::new("wrk").arg("--version").output().is_ok(),
        other => return Err(format!("--load: unknown tool {other:?}").into()),
    };

    let mut targets = vec![Target::steadyloop("steadyloop", demo_binary(bin)?, &[])];
    match anchor.as_deref() {
        None => {}
        Some("axum") => targets.push(Target::axum("axum", anchor_bin)?),
        Some(other) => return Err(format!("unknown anchor {other:?} (known: axum)").into()),
    }
    println!(
        "footprint: {repeats} repeat(s); {idle_conns} idle connections; light load {} with \
         {load_conns} connections for {load_secs} s",
        if use_wrk { "wrk" } else { "built-in" }
    );

    // Repeats are interleaved across targets so slow drift hits all alike.
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    for repeat in 1..=repeats {
        for (target, out) in targets.iter().zip(&mut samples) {
            let s = measure(target, settle, idle_conns, load_conns, load_secs, use_wrk)?;
            eprintln!("repeat {repeat} {:<12} {s:?}", target.name);
            out.push(s);
        }
    }

    println!("\nMedian (min–max) over {repeats} fresh process(es)\n");
    let header = ["figure"]
        .into_iter()
        .chain(targets.iter().map(|t| t.name.as_str()))
        .collect::<Vec<_>>();
    let row = |label: String, decimals: usize, f: &dyn Fn(&Sample) -> f64| {
        let mut row = vec![label];
        for runs in &samples {
            let values: Vec<f64> = runs.iter().map(f).collect();
            row.push(Spread::of(&values).show(decimals));
        }
        row
    };
    let mut rows = vec![
        row("start to first response, ms".into(), 2, &|s| {
            s.first_response_ms
        }),
        row("idle RSS, MiB".into(), 2, &|s| s.idle_rss_mb),
        row("idle RssAnon (private), MiB".into(), 2, &|s| s.idle_anon_mb),
        row("idle PSS, MiB".into(), 2, &|s| s.idle_pss_mb),
        row("idle threads".into(), 0, &|s| s.idle_threads as f64),
        row(format!("RSS with {idle_conns} idle conns, MiB"), 2, &|s| {
            s.conns_rss_mb
        }),
        row(
            format!("RssAnon with {idle_conns} idle conns, MiB"),
            2,
            &|s| s.conns_anon_mb,
        ),
        row(format!("threads with {idle_conns} idle conns"), 0, &|s| {
            s.conns_threads as f64
        }),
        row(format!("GET /healthz req/s, {load_conns} conns"), 0, &|s| {
            s.light_rps
        }),
    ];

    rows.push(offload_row(&targets, ops, offload_repeats)?);
    print_table(&header, &rows);
    Ok(())
}

/// The offload round trip of every target, each timed in its own process.
fn offload_row(
    targets: &[Target],
    ops: u32,
    repeats: usize,
) -> Result<Vec<String>, Box<dyn Error>> {
    let mut row = vec!["offload round trip (tiny job), ns/op".to_string()];
    for target in targets {
        // steadyloop's is timed by this tool itself (it links the library); the anchor has its
        // own mode.
        let program = if target.name == "steadyloop" {
            std::env::current_exe()?
        } else {
            target.program.clone()
        };
        let output = Command::new(program)
            .args(["offload-bench", "--ops", &ops.to_string()])
            .args(["--repeats", &repeats.to_string()])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "offload round trip: median N ns/op (min A, max B) over ..."
        let figure = match (
            field(&text, "median "),
            field(&text, "min "),
            field(&text, "max "),
        ) {
            (Some(median), Some(min), Some(max)) => Spread { median, min, max }.show(0),
            _ => format!("failed: {}", text.trim()),
        };
        row.push(figure);
    }
    Ok(row)
}

/// Measures one target once, on a fresh process.
fn measure(
    target: &Target,
    settle: Duration,
    idle_conns: usize,
    load_conns: usize,
    load_secs: f64,
    use_wrk: bool,
) -> Result<Sample, Box<dyn Error>> {
    let spawned = Instant::now();
    let server = ServerProcess::start(target)?;
    let addr = server.addr();
    let status = Client::connect(addr)?.get("/healthz")?;
    let first_response_ms = ms(spawned.elapsed());
    if status != 200 {
        return Err(format!("{}: GET /healthz answered {status}", target.name).into());
    }

    thread::sleep(settle);
    let idle = server.status()?;
    let idle_pss = procfs::pss_kb(server.pid())?;

    // Idle keep-alive connections, each served once so the server holds it as a connection.
    let mut conns = Vec::with_capacity(idle_conns);
    for _ in 0..idle_conns {
        let mut c = Client::connect(addr)?;
        c.get("/healthz")?;
        conns.push(c);
    }
    let with_conns = server.status()?;
    drop(conns);
    thread::sleep(settle);

    let light_rps = if use_wrk {
        wrk(addr, load_conns, load_secs)?
    } else {
        builtin_load(addr, load_conns, Duration::from_secs_f64(load_secs))?
    };

    let mib = |kb: u64| kb as f64 / 1024.0;
    Ok(Sample {
        first_response_ms,
        idle_rss_mb: mib(idle.rss_kb),
        idle_anon_mb: mib(idle.anon_kb),
        idle_pss_mb: mib(idle_pss),
        idle_threads: idle.threads,
        conns_rss_mb: mib(with_conns.rss_kb),
        conns_anon_mb: mib(with_conns.anon_kb),
        conns_threads: with_conns.threads,
        light_rps,
    })
}

/// Runs `wrk` against `GET /healthz` and returns its Requests/sec.
fn wrk(addr: SocketAddr, conns: usize, secs: f64) -> Result<f64, Box<dyn Error>> {
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(conns);
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &conns.to_string()])
        .args(["-d", &format!("{}s", secs.ceil() as u64)])
        .arg(format!("http://{addr}/healthz"))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("wrk reported errors:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("unexpected wrk output:\n{text}").into())
}

/// Loads `GET /healthz` closed-loop on `conns` connections (one thread each) for `duration`;
/// returns 200 answers per second.
fn builtin_load(addr: SocketAddr, conns: usize, duration: Duration) -> Result<f64, Box<dyn Error>> {
    let ok = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let ok = ok.clone();
            thread::spawn(move || -> std::io::Result<()> {
                let mut client = Client::connect(addr)?;
                while Instant::now() < end {
                    if client.get("/healthz")? == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("load thread")?;
    }
    Ok(ok.load(Ordering::Relaxed) as f64 / duration.as_secs_f64())
}

/// The `offload-bench` mode: awaits `--ops` tiny jobs one after another from the loop thread,
/// `--repeats` times, and prints the median ns per round trip.
fn offload_bench(args: &[String]) -> Result<(), Box<dyn Error>> {
    let mut flags = Flags::parse(args)?.unwrap_or_default();
    let ops: u32 = flags.take("ops", 20_000)?;
    let repeats: usize = flags.take("repeats", 5)?;
    flags.finish()?;
    let per_op: Vec<f64> = async_io::block_on(async {
        let mut out = Vec::new();
        for _ in 0..repeats {
            let start = Instant::now();
            for _ in 0..ops {
                std::hint::black_box(steadyloop::offload(|| 1u32).await?);
            }
            out.push(start.elapsed().as_nanos() as f64 / f64::from(ops));
        }
        Ok::<_, steadyloop::Error>(out)
    })?;
    let s = Spread::of(&per_op);
    println!(
        "offload round trip: median {:.0} ns/op (min {:.0}, max {:.0}) over {repeats} x {ops}",
        s.median, s.min, s.max
    );
    Ok(())
}

/// The number right after `key` in `text`.
fn field(text: &str, key: &str) -> Option<f64> {
    let rest = text.split(key).nth(1)?;
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?
        .parse()
        .ok()
}
