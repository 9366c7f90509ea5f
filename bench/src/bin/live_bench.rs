//! Static files and server-sent events under load: the figures of issue 12's closing note.
//!
//! Run: `cargo build --release -p steadyloop-bench && target/release/live_bench` (`--help`
//! lists the flags). The tool starts itself a second time as the server under test (`--serve`),
//! so the server's memory is its own, and measures three scenarios, each on a fresh server:
//! 1. slow download: one client reads a 1 GiB (sparse) file at about `--slow-kib-s` KiB/s for
//!    `--secs`; server RSS before and its maximum during (sampled every 100 ms);
//! 2. downloads vs health checks: `--downloads` clients download a 64 MiB file as fast as they
//!    can, over and over, while one client sends `GET /healthz` back to back; its p50/p99/max,
//!    and the same without the downloads first;
//! 3. broadcast: `--sse-clients` clients hold an event stream while the server broadcasts a
//!    200-byte event every 100 ms; server RSS before and with the clients, events received, the
//!    loop lag over the run (mean and p99 bucket, from `/metrics`) and `GET /healthz` latency
//!    meanwhile (one client, back to back).

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use steadyloop::sse::{Broadcast, Event};
use steadyloop::{Router, Server};
use steadyloop_bench::client::Client;
use steadyloop_bench::flags::Flags;
use steadyloop_bench::procfs::{ProcStatus, Sampler};
use steadyloop_bench::stats::{ms, percentile, print_table};

/// The `--help` text.
const USAGE: &str = "live_bench: static files and SSE under load

Usage: live_bench [--FLAG VALUE]...
  --secs S          length of each loaded phase [8]
  --slow-kib-s N    the slow reader's speed in KiB/s [1024]
  --downloads N     concurrent downloads in scenario 2 [50]
  --download-kib-s N  each download's speed in KiB/s; 0 is as fast as it goes [0]
  --sse-clients N   event-stream clients in scenario 3 [500]
  --dir PATH        where the test files are made [a temporary directory]
";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve(Path::new(args.get(1).ok_or("--serve DIR")?));
    }
    let Some(mut flags) = Flags::parse(&args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let secs = flags.take_secs("secs", 8.0)?;
    let slow_kib: u64 = flags.take("slow-kib-s", 1024)?;
    let downloads: usize = flags.take("downloads", 50)?;
    let download_kib: u64 = flags.take("download-kib-s", 0)?;
    let sse_clients: usize = flags.take("sse-clients", 500)?;
    let dir = flags
        .take_opt("dir")
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("live-bench-{}", std::process::id())));
    flags.finish()?;
    std::fs::create_dir_all(&dir)?;
    // Sparse files: the page cache serves their zeros, so the disk is not what is measured.
    std::fs::File::create(dir.join("1g.bin"))?.set_len(1 << 30)?;
    std::fs::File::create(dir.join("64m.bin"))?.set_len(64 << 20)?;

    let mut rows = Vec::new();
    rows.extend(slow_download(&dir, secs, slow_kib)?);
    rows.extend(downloads_vs_healthz(&dir, secs, downloads, download_kib)?);
    rows.extend(broadcast(&dir, secs, sse_clients)?);
    print_table(&["scenario", "figure", "value"], &rows);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The server under test: `/healthz`, `/metrics`, the files under `/files`, and `/live`, a
/// broadcast of a 200-byte event every 100 ms.
fn serve(dir: &Path) -> Result<(), Box<dyn Error>> {
    let hub = Broadcast::new(16);
    let feed = hub.clone();
    thread::spawn(move || {
        let payload = "x".repeat(200);
        for i in 0u64.. {
            feed.send(&Event::data(payload.as_str()).id(i.to_string()));
            thread::sleep(Duration::from_millis(100));
        }
    });
    let dir = dir.to_path_buf();
    let server = Server::builder().addr("127.0.0.1:0").spawn(move || {
        Router::new()
            .liveness("/healthz")
            .metrics("/metrics")
            .static_dir("/files", dir)
            .get("/live", move |_req| {
                let response = hub.subscribe();
                async move { response }
            })
    })?;
    println!("listening on {}", server.local_addr());
    server.join()?;
    Ok(())
}

/// The server as a child process.
struct Served {
    /// The process.
    child: Child,
    /// Its address.
    addr: SocketAddr,
}

impl Served {
    fn start(dir: &Path) -> Result<Served, Box<dyn Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(dir)
            .env("STEADYLOOP_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or("no address")?
            .parse()?;
        Ok(Served { child, addr })
    }

    fn status(&self) -> ProcStatus {
        ProcStatus::read(self.child.id()).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One figure of the results table.
fn row(scenario: &str, figure: &str, value: String) -> Vec<String> {
    vec![scenario.to_string(), figure.to_string(), value]
}

/// Sends `GET path` on a new connection and returns the socket after the response head.
fn open(addr: SocketAddr, path: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    Ok(stream)
}

/// Scenario 1: RSS while one client reads a 1 GiB file slowly.
fn slow_download(
    dir: &Path,
    secs: Duration,
    kib_s: u64,
) -> Result<Vec<Vec<String>>, Box<dyn Error>> {
    let server = Served::start(dir)?;
    Client::connect(server.addr)?.get("/healthz")?;
    let before = server.status();
    let sampler = Sampler::start(server.child.id(), Duration::from_millis(100));
    let mut stream = open(server.addr, "/files/1g.bin")?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        // Pace the reader: sleep until it is no further ahead than its rate allows.
        let due = Duration::from_secs_f64(read as f64 / (kib_s as f64 * 1024.0));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
    }
    let during = sampler.finish();
    let mib = |kb: u64| format!("{:.1} MiB", kb as f64 / 1024.0);
    Ok(vec![
        row(
            "1 GiB file, slow reader",
            "server RSS before",
            mib(before.rss_kb),
        ),
        row(
            "1 GiB file, slow reader",
            "server RSS max during",
            mib(during.rss_kb),
        ),
        row(
            "1 GiB file, slow reader",
            "read",
            format!(
                "{:.1} MiB in {:.1} s",
                read as f64 / 1048576.0,
                start.elapsed().as_secs_f64()
            ),
        ),
    ])
}

/// `GET /healthz` back to back for `secs`; the sorted latencies.
fn probe(addr: SocketAddr, secs: Duration) -> std::io::Result<Vec<Duration>> {
    let mut client = Client::connect(addr)?;
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        client.get("/healthz")?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times)
}

/// Scenario 2: `/healthz` latency with and without `downloads` concurrent downloads.
fn downloads_vs_healthz(
    dir: &Path,
    secs: Duration,
    downloads: usize,
    kib_s: u64,
) -> Result<Vec<Vec<String>>, Box<dyn Error>> {
    let server = Served::start(dir)?;
    let idle = probe(server.addr, secs / 2)?;
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..downloads)
        .map(|_| {
            let (stop, bytes, addr) = (stop.clone(), bytes.clone(), server.addr);
            thread::spawn(move || {
                if kib_s == 0 {
                    let mut client = Client::connect(addr).expect("connect");
                    while !stop.load(Ordering::Relaxed) {
                        if client.get("/files/64m.bin").is_ok() {
                            bytes.fetch_add(64 << 20, Ordering::Relaxed);
                        }
                    }
                    return;
                }
                // A paced reader, like a device's client on a slow link.
                let mut stream = open(addr, "/files/1g.bin").expect("download");
                let mut buf = vec![0u8; 16 * 1024];
                let (start, mut read) = (Instant::now(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match stream.read(&mut buf) {
                        Ok(n) if n > 0 => read += n as u64,
                        _ => break,
                    }
                    bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    let due = Duration::from_secs_f64(read as f64 / (kib_s as f64 * 1024.0));
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        thread::sleep(wait);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let loaded = probe(server.addr, secs)?;
    stop.store(true, Ordering::Relaxed);
    for loader in loaders {
        let _ = loader.join();
    }
    let show = |t: &[Duration]| {
        format!(
            "p50 {:.2} / p99 {:.2} / max {:.2} ms ({} requests)",
            ms(percentile(t, 50.0)),
            ms(percentile(t, 99.0)),
            ms(*t.last().unwrap_or(&Duration::ZERO)),
            t.len()
        )
    };
    let name = if kib_s == 0 {
        format!("/healthz, {downloads} downloads (unpaced)")
    } else {
        format!("/healthz, {downloads} downloads at {kib_s} KiB/s")
    };
    Ok(vec![
        row(&name, "unloaded", show(&idle)),
        row(&name, "during downloads", show(&loaded)),
        row(
            &name,
            "downloaded",
            format!(
                "{:.0} MiB/s",
                bytes.load(Ordering::Relaxed) as f64 / 1048576.0 / (secs.as_secs_f64() + 0.5)
            ),
        ),
    ])
}

/// The loop-lag histogram as `/metrics` shows it: (count, sum in seconds, cumulative buckets as
/// (upper bound, count)).
type LagHistogram = (f64, f64, Vec<(f64, f64)>);

/// Reads the loop-lag histogram from `/metrics`.
fn loop_lag(addr: SocketAddr) -> Result<LagHistogram, Box<dyn Error>> {
    let mut stream = open(addr, "/metrics")?;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let (mut count, mut sum, mut buckets) = (0.0, 0.0, Vec::new());
    for line in text.lines() {
        let value = |l: &str| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        if let Some(rest) = line.strip_prefix("steadyloop_loop_lag_seconds_bucket{le=\"") {
            let le = rest.split('"').next().unwrap_or("+Inf");
            buckets.push((le.parse().unwrap_or(f64::INFINITY), value(line)));
        } else if line.starts_with("steadyloop_loop_lag_seconds_count") {
            count = value(line);
        } else if line.starts_with("steadyloop_loop_lag_seconds_sum") {
            sum = value(line);
        }
    }
    Ok((count, sum, buckets))
}

/// Scenario 3: a broadcast to `clients` event streams.
fn broadcast(
    dir: &Path,
    secs: Duration,
    clients: usize,
) -> Result<Vec<Vec<String>>, Box<dyn Error>> {
    let server = Served::start(dir)?;
    Client::connect(server.addr)?.get("/healthz")?;
    let before = server.status();
    let events = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Every client on one thread of async reads, so the clients cost the shared cores little
    // (500 blocking reader threads would mostly measure their own wake-ups).
    let mut streams = Vec::new();
    for _ in 0..clients {
        streams.push(open(server.addr, "/live")?);
    }
    let readers = {
        let (events, stop) = (events.clone(), stop.clone());
        thread::spawn(move || {
            let ex = async_executor::LocalExecutor::new();
            let tasks: Vec<_> = streams
                .into_iter()
                .map(|stream| {
                    let (events, stop) = (events.clone(), stop.clone());
                    ex.spawn(async move {
                        use futures_lite::AsyncReadExt;
                        let mut stream = async_io::Async::new(stream).expect("non-blocking");
                        let mut buf = [0u8; 4096];
                        while !stop.load(Ordering::Relaxed) {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    let seen = buf[..n].windows(4).filter(|w| w == b"id: ").count();
                                    events.fetch_add(seen as u64, Ordering::Relaxed);
                                }
                            }
                        }
                    })
                })
                .collect();
            async_io::block_on(ex.run(async {
                while !stop.load(Ordering::Relaxed) {
                    async_io::Timer::after(Duration::from_millis(100)).await;
                }
            }));
            drop(tasks);
        })
    };
    let (count0, sum0, buckets0) = loop_lag(server.addr)?;
    let received0 = events.load(Ordering::Relaxed);
    let sampler = Sampler::start(server.child.id(), Duration::from_millis(100));
    // Health checks back to back meanwhile: what a load balancer would see.
    let healthz = probe(server.addr, secs)?;
    let during = sampler.finish();
    let received = events.load(Ordering::Relaxed) - received0;
    let (count1, sum1, buckets1) = loop_lag(server.addr)?;
    stop.store(true, Ordering::Relaxed);
    let _ = readers.join();
    let polls = count1 - count0;
    let mean = if polls > 0.0 {
        (sum1 - sum0) / polls
    } else {
        0.0
    };
    let p99 = buckets1
        .iter()
        .zip(&buckets0)
        .find(|((_, n1), (_, n0))| n1 - n0 >= 0.99 * polls)
        .map_or(f64::NAN, |((le, _), _)| *le);
    let mib = |kb: u64| format!("{:.1} MiB", kb as f64 / 1024.0);
    let name = format!("broadcast to {clients} SSE clients");
    Ok(vec![
        row(&name, "server RSS before", mib(before.rss_kb)),
        row(&name, "server RSS max with clients", mib(during.rss_kb)),
        row(
            &name,
            "events received",
            format!(
                "{received} of {} sent",
                (secs.as_millis() / 100) as usize * clients
            ),
        ),
        row(
            &name,
            "loop lag",
            format!("mean {:.3} ms, p99 <= {} ms", mean * 1000.0, p99 * 1000.0),
        ),
        row(
            &name,
            "/healthz meanwhile",
            format!(
                "p50 {:.2} / p99 {:.2} / max {:.2} ms",
                ms(percentile(&healthz, 50.0)),
                ms(percentile(&healthz, 99.0)),
                ms(*healthz.last().unwrap_or(&Duration::ZERO))
            ),
        ),
    ])
}
