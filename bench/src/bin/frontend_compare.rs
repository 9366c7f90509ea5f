//! Measures the native and tiny_http front ends side by side, as the demo binary runs them:
//! threads and RSS with 1,000 idle keep-alive connections, light-route (`GET /healthz`)
//! throughput from an in-process keep-alive load generator, how many of a burst of new
//! connections are answered, and a set of hardening cases.
//!
//! Run `scripts/frontend-compare.sh` (builds the demo with `--features tiny_http`, then runs
//! this with its path), or `cargo run --release -p steadyloop-bench --bin frontend_compare --
//! DEMO [RUNS]` (DEMO defaults to `$STEADYLOOP_DEMO_BIN`, else `target/release/steadyloop`).
//! Each measurement runs RUNS times (default 3), alternating front ends; medians and ranges
//! are printed, because a shared machine is noisy.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The front ends compared, as `--frontend` values.
const FRONTENDS: [&str; 2] = ["native", "tiny_http"];
/// Idle keep-alive connections held open for the thread and memory figures.
const IDLE: usize = 1000;
/// Load-generator connections (one thread each) for the throughput figure.
const LOAD_CONNECTIONS: usize = 4;
/// How long each throughput run lasts.
const LOAD_TIME: Duration = Duration::from_secs(5);
/// The request every measurement sends.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// A running demo process; killed when dropped.
struct Demo {
    /// The process.
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
}

impl Demo {
    /// Starts `bin` on `frontend` with `extra` flags and waits for its "listening" line.
    fn start(bin: &str, frontend: &str, extra: &[&str]) -> io::Result<Demo> {
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0", "--frontend", frontend])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected first line {line:?}")))?;
        Ok(Demo { child, addr })
    }

    /// Returns (resident memory in KiB, threads, open descriptors) from `/proc/PID`.
    fn usage(&self) -> (u64, u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map_or(0, |dir| dir.count() as u64);
        (field("VmRSS:"), field("Threads:"), fds)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects with a read timeout.
fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    Ok(stream)
}

/// Reads one response with a Content-Length; returns its status.
fn read_response(reader: &mut impl BufRead) -> io::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    io::copy(&mut reader.take(length), &mut io::sink())?;
    Ok(status)
}

/// Sends `request` on a new connection; returns the status of the first response.
fn status_of(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut stream = connect(addr, Duration::from_secs(5)).ok()?;
    stream.write_all(request).ok()?;
    read_response(&mut BufReader::new(stream)).ok()
}

/// Returns `true` if the server closes `stream` within `wait`, reading whatever it sends.
fn closes_within(mut stream: TcpStream, wait: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(wait));
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

/// Usage figures of a process: (RSS KiB, threads, open descriptors).
type Usage = (u64, u64, u64);

/// Opens [`IDLE`] keep-alive connections (one request each) and returns the process's usage
/// before and with them.
fn idle_usage(bin: &str, frontend: &str) -> io::Result<(Usage, Usage)> {
    let long = ["--keep-alive-timeout", "300s", "--header-timeout", "300s"];
    let demo = Demo::start(
        bin,
        frontend,
        &[&long[..], &["--max-connections", "4000"]].concat(),
    )?;
    status_of(demo.addr, HEALTHZ);
    thread::sleep(Duration::from_millis(500));
    let before = demo.usage();
    let mut held = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut stream = connect(demo.addr, Duration::from_secs(10))?;
        stream.write_all(HEALTHZ)?;
        let mut reader = BufReader::new(stream);
        read_response(&mut reader)?;
        held.push(reader);
    }
    // Let thread stacks and buffers settle before reading the figures.
    thread::sleep(Duration::from_secs(1));
    Ok((before, demo.usage()))
}

/// Runs the keep-alive load generator against `/healthz`; returns requests per second.
fn throughput(bin: &str, frontend: &str) -> io::Result<f64> {
    let demo = Demo::start(bin, frontend, &[])?;
    let addr = demo.addr;
    let start = Instant::now();
    let workers: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|_| {
            thread::spawn(move || -> io::Result<u64> {
                let stream = connect(addr, Duration::from_secs(10))?;
                stream.set_nodelay(true)?;
                let mut writer = stream.try_clone()?;
                let mut reader = BufReader::new(stream);
                let mut done = 0;
                while start.elapsed() < LOAD_TIME {
                    writer.write_all(HEALTHZ)?;
                    read_response(&mut reader)?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.join().expect("load thread")?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Runs each hardening case once; returns (case, outcome) pairs.
fn hardening(bin: &str, frontend: &str) -> io::Result<Vec<(&'static str, String)>> {
    let short = ["--header-timeout", "1s", "--keep-alive-timeout", "1s"];
    let more = ["--body-timeout", "1s", "--max-connections", "64"];
    let demo = Demo::start(bin, frontend, &[&short[..], &more[..]].concat())?;
    let addr = demo.addr;
    let wait = Duration::from_secs(3);
    let yes_no = |ok: bool| if ok { "yes" } else { "no" }.to_string();
    let status = |request: &str| match status_of(addr, request.as_bytes()) {
        Some(code) => code.to_string(),
        None => "no answer".to_string(),
    };
    let mut out = Vec::new();

    let mut slow = connect(addr, wait)?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")?;
    out.push((
        "slow head closed (1 s header timeout)",
        yes_no(closes_within(slow, wait)),
    ));

    let mut idle = connect(addr, wait)?;
    idle.write_all(HEALTHZ)?;
    let mut reader = BufReader::new(idle);
    read_response(&mut reader)?;
    let idle = reader.into_inner();
    out.push((
        "idle keep-alive closed (1 s)",
        yes_no(closes_within(idle, wait)),
    ));

    let mut stalled = connect(addr, wait)?;
    stalled.write_all(b"POST /report HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")?;
    out.push((
        "stalled body closed (1 s body timeout)",
        yes_no(closes_within(stalled, wait)),
    ));

    let smuggle = "POST /report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n";
    out.push(("Transfer-Encoding + Content-Length", status(smuggle)));
    // Only the head: leftover body bytes would make tiny_http fail the next parse and close.
    let mut framing = connect(addr, wait)?;
    framing.write_all(b"POST /report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n")?;
    let closed = closes_within(framing, wait);
    out.push(("  ...then the connection closed", yes_no(closed)));
    let fold = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n X-B: 2\r\n\r\n";
    out.push(("obs-fold header line", status(fold)));
    out.push(("missing Host", status("GET /healthz HTTP/1.1\r\n\r\n")));
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    out.push(("20 KB header", status(&big)));
    let huge = "POST /report HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n";
    let answer = status(huge);
    let alive = status_of(addr, HEALTHZ) == Some(200);
    out.push((
        "Content-Length: 1 TiB",
        format!("{answer}, survives: {}", yes_no(alive)),
    ));

    // 100 connections against a cap of 64: how many are refused with 503?
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut stream = connect(addr, wait)?;
        stream.write_all(HEALTHZ)?;
        let mut reader = BufReader::new(stream);
        refused += u32::from(read_response(&mut reader).ok() == Some(503));
        held.push(reader);
    }
    out.push((
        "100 conns, --max-connections 64: refused",
        refused.to_string(),
    ));
    drop(held);

    Ok(out)
}

/// Opens a burst of 64 new keep-alive connections on a fresh server, back to back, sends a
/// request on each and keeps them open; returns how many are answered within 3 s.
///
/// tiny_http's pool counts a thread that was woken but has not run yet as idle, so several
/// new connections can queue behind one thread, where they wait until another one closes.
fn burst(bin: &str, frontend: &str) -> io::Result<f64> {
    let demo = Demo::start(bin, frontend, &[])?;
    let wait = Duration::from_secs(3);
    let streams: Vec<TcpStream> = (0..64)
        .map(|_| connect(demo.addr, wait))
        .collect::<io::Result<_>>()?;
    let mut readers = Vec::new();
    for mut stream in streams {
        stream.write_all(HEALTHZ)?;
        readers.push(BufReader::new(stream));
    }
    let deadline = Instant::now() + wait;
    let mut answered = 0;
    for reader in &mut readers {
        let left = deadline.saturating_duration_since(Instant::now());
        reader
            .get_ref()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        answered += u32::from(read_response(reader).ok() == Some(200));
    }
    Ok(f64::from(answered))
}

/// Returns the median and the range of `values` as text.
fn summary(values: &mut [f64], unit: &str) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    let (low, high) = (values[0], values[values.len() - 1]);
    format!("{median:.1}{unit} ({low:.1}-{high:.1})")
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .or_else(|| std::env::var(steadyloop_bench::server::DEMO_ENV).ok())
        .unwrap_or_else(|| "target/release/steadyloop".into());
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    println!("demo binary: {bin}; {runs} run(s) per figure, median (min-max)\n");

    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut idle: Vec<[Vec<f64>; 4]> = vec![Default::default(), Default::default()];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let mut bursts: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    for run in 0..runs {
        for (i, frontend) in FRONTENDS.iter().enumerate() {
            let ((rss0, thr0, fd0), (rss1, thr1, fd1)) = idle_usage(&bin, frontend)?;
            let per_conn = (thr1 as f64 - thr0 as f64) / IDLE as f64;
            idle[i][0].push(per_conn);
            idle[i][1].push(rss1 as f64 / 1024.0);
            idle[i][2].push(thr1 as f64);
            idle[i][3].push(fd1 as f64);
            rps[i].push(throughput(&bin, frontend)?);
            bursts[i].push(burst(&bin, frontend)?);
            println!(
                "run {run} {frontend:>9}: threads {thr0}->{thr1}, fds {fd0}->{fd1}, \
                 RSS {:.1}->{:.1} MiB, {:.0} req/s, burst {}/64",
                rss0 as f64 / 1024.0,
                rss1 as f64 / 1024.0,
                rps[i].last().unwrap(),
                bursts[i].last().unwrap()
            );
        }
    }
    rows.push(vec!["threads per idle connection".into()]);
    rows.push(vec![format!("threads with {IDLE} idle connections")]);
    rows.push(vec![format!("RSS with {IDLE} idle connections")]);
    rows.push(vec![format!("open fds with {IDLE} idle connections")]);
    rows.push(vec![format!(
        "GET /healthz, {LOAD_CONNECTIONS} keep-alive conns"
    )]);
    rows.push(vec!["burst of 64 new conns answered within 3 s".into()]);
    for i in 0..FRONTENDS.len() {
        rows[0].push(summary(&mut idle[i][0], ""));
        rows[1].push(summary(&mut idle[i][2], ""));
        rows[2].push(summary(&mut idle[i][1], " MiB"));
        rows[3].push(summary(&mut idle[i][3], ""));
        rows[4].push(summary(&mut rps[i], " req/s"));
        rows[5].push(summary(&mut bursts[i], "/64"));
    }
    let cases: Vec<_> = FRONTENDS
        .iter()
        .map(|f| hardening(&bin, f))
        .collect::<io::Result<_>>()?;
    for (j, (case, _)) in cases[0].iter().enumerate() {
        let mut row = vec![case.to_string()];
        row.extend(cases.iter().map(|c| c[j].1.clone()));
        rows.push(row);
    }
    println!("\n| measure | native | tiny_http |\n| --- | --- | --- |");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    Ok(())
}
