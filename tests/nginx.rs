//! Restarts under load with nothing lost, with real parts: a real nginx (Debian's package) in
//! front of two demo instances on loopback, and a socket-activated pair of instances sharing one
//! listening socket.
//!
//! The load is keep-alive GETs (a light page and a small report on the CPU pool) and POSTs with
//! CSV bodies (on the CPU pool), from several client connections, while each instance in turn
//! gets SIGTERM and is started again. Every request must get exactly one 2xx answer: no non-2xx,
//! no socket error, no reset. These tests need nginx and `sh`; without nginx they fail (never
//! skip): `.ci/run` installs it, `apt-get install -y nginx` does it by hand.
//!
//! `control_drain_delay_zero_loses_requests` (ignored: it is expected to lose requests) shows
//! what the tests catch: with `drain-delay 0`, idle upstream connections are closed at once and
//! nginx's keep-alive timeout is above ours, so a POST nginx sends on a connection being closed
//! becomes a 502.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(feature = "systemd")]
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The load tests run one at a time: each wants the machine's cores to itself.
static SERIAL: Mutex<()> = Mutex::new(());

/// Client connections of the load.
const CLIENTS: usize = 6;

/// How long load runs before, between and after the restarts (with the restarts themselves,
/// about 20 s of load per scenario).
const PHASE: Duration = Duration::from_secs(4);

/// The upstream block the README documents; the test runs nginx with it.
const UPSTREAM_CONF: &str = include_str!("../deploy/nginx/steadyloop.conf");

/// A CSV upload for `POST /report`: a few hundred bytes.
fn csv_body() -> String {
    let mut body = String::from("id,value\n");
    for i in 0..40 {
        body.push_str(&format!("{i},{}\n", i * 7 % 13));
    }
    body
}

/// A scratch directory for one test's config, logs and sockets; removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    /// Creates `steadyloop-NAME-PID` in the temp directory.
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("steadyloop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        Scratch(dir)
    }

    /// The path of `file` inside the directory.
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free port on 127.0.0.1 (bound and released; nothing else on a test machine races for it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Finds the nginx binary, or fails the test saying how to install it.
fn nginx_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join("nginx");
        if path.exists() {
            return path;
        }
    }
    panic!("nginx is not installed: run `apt-get install -y nginx` (.ci/run does it in CI)");
}

/// A running nginx in front of two upstream ports.
struct Nginx {
    /// The process.
    child: Child,
    /// Where clients connect.
    addr: SocketAddr,
    /// Its error log.
    error_log: PathBuf,
    /// Its access log (`status upstream_addr` per request).
    access_log: PathBuf,
}

impl Nginx {
    /// Starts nginx with the documented upstream block, pointed at `upstreams`; `keepalive` overrides
    /// its upstream `keepalive_timeout` (the control run sets one above ours).
    fn start(scratch: &Scratch, upstreams: [u16; 2], keepalive: Option<&str>) -> Nginx {
        let port = free_port();
        let mut upstream = UPSTREAM_CONF
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", upstreams[0]))
            .replace("127.0.0.1:8082", &format!("127.0.0.1:{}", upstreams[1]))
            .replace("listen 127.0.0.1:8080", &format!("listen 127.0.0.1:{port}"));
        if let Some(timeout) = keepalive {
            upstream = upstream.replace(
                "keepalive_timeout 4s;",
                &format!("keepalive_timeout {timeout};"),
            );
        }
        let error_log = scratch.path("logs/error.log");
        let access_log = scratch.path("logs/access.log");
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log {error} warn;\nevents {{ worker_connections 1024; }}\nhttp {{\n\
             log_format upstream '$status $request_method $upstream_addr $upstream_status';\n\
             access_log {access} upstream;\n\
             client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
             {upstream}\n}}\n",
            dir = scratch.0.display(),
            error = error_log.display(),
            access = access_log.display(),
        );
        let conf_path = scratch.path("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&scratch.0)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(scratch.path("logs/nginx.stderr")).unwrap())
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until_listening(addr);
        Nginx {
            child,
            addr,
            error_log,
            access_log,
        }
    }

    /// Error-log lines about upstreams other than failed connects (which lose nothing: the
    /// request was never sent, and nginx passes it to the other server whatever its method).
    ///
    /// A failed connect is refused: the listener is closed (a connect that met the shut door
    /// just before is refused at its SYN's retransmission). It happens "while connecting to
    /// upstream", before a byte of the request is sent; a reset of a request that was sent is
    /// logged "while reading response header" and counts.
    fn upstream_errors(&self) -> Vec<String> {
        std::fs::read_to_string(&self.error_log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("upstream"))
            .filter(|line| !line.contains("while connecting to upstream"))
            .filter(|line| !line.contains("upstream server temporarily disabled"))
            .map(str::to_string)
            .collect()
    }

    /// Requests nginx logged, and how many of them went to more than one upstream (retries).
    fn logged(&self) -> (usize, usize) {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let retried = lines.iter().filter(|line| line.contains(", ")).count();
        (lines.len(), retried)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections at `addr` (polling: nginx says nothing when ready).
fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A demo instance: the process and where its log goes.
struct Instance {
    /// The process, until it has been waited for.
    child: Option<Child>,
}

impl Instance {
    /// Starts the demo on `127.0.0.1:port` with `flags`; returns once it listens.
    fn on_port(port: u16, flags: &[&str], log: &Path) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steadyloop"));
        command
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(flags);
        Instance::spawn(command, Stdio::null(), log)
    }

    /// Starts the demo on the listening socket `listener`, passed as descriptor 3 the way
    /// systemd passes it (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`): `sh` moves it from its
    /// standard input to descriptor 3 and sets `LISTEN_PID` to its own pid before exec'ing the
    /// demo, so this needs no unsafe code.
    #[cfg(feature = "systemd")]
    fn activated(listener: &TcpListener, flags: &[&str], log: &Path) -> Instance {
        let fd = OwnedFd::from(listener.try_clone().unwrap());
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(
                "exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ LISTEN_FDNAMES=http; \
                 export LISTEN_FDS LISTEN_PID LISTEN_FDNAMES; exec \"$0\" \"$@\"",
            )
            .arg(env!("CARGO_BIN_EXE_steadyloop"))
            .args(["--addr", "systemd:http"])
            .args(flags);
        Instance::spawn(command, Stdio::from(fd), log)
    }

    /// Spawns `command` and waits for the demo's "listening" line.
    fn spawn(mut command: Command, stdin: Stdio, log: &Path) -> Instance {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = command
            .env("STEADYLOOP_LOG", "info")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the demo starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("steadyloop demo listening on"), "{line:?}");
        Instance { child: Some(child) }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "the demo exited with {exit}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    /// Requests written.
    sent: AtomicU64,
    /// 2xx answers.
    ok: AtomicU64,
    /// Other answers.
    non_2xx: AtomicU64,
    /// Requests that got no answer: refused, reset or closed connections, timeouts.
    errors: AtomicU64,
    /// New client connections (the first ones and after each `Connection: close`).
    connections: AtomicU64,
    /// The first few failures, for the test's output.
    samples: Mutex<Vec<String>>,
}

impl Tally {
    /// Notes a failure.
    fn fail(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < 10 {
            samples.push(what);
        }
    }

    /// One line of figures.
    fn summary(&self) -> String {
        format!(
            "sent {} answered-2xx {} non-2xx {} errors {} client-connections {}",
            self.sent.load(Ordering::Relaxed),
            self.ok.load(Ordering::Relaxed),
            self.non_2xx.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
        )
    }
}

/// Client load against `addr` until `stop` is set.
struct Load {
    /// Set to end the load.
    stop: Arc<AtomicBool>,
    /// The client threads.
    threads: Vec<thread::JoinHandle<()>>,
    /// Their counters.
    tally: Arc<Tally>,
}

impl Load {
    /// Starts [`CLIENTS`] keep-alive clients.
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..CLIENTS)
            .map(|client| {
                let (stop, tally) = (stop.clone(), tally.clone());
                thread::spawn(move || client_loop(addr, client, &stop, &tally))
            })
            .collect();
        Load {
            stop,
            threads,
            tally,
        }
    }

    /// Ends the load and returns the counters.
    fn finish(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a client thread");
        }
        self.tally
    }
}

/// One client: requests one after another on a keep-alive connection, reconnecting after a
/// `Connection: close`; never retries a request.
fn client_loop(addr: SocketAddr, client: usize, stop: &AtomicBool, tally: &Tally) {
    let body = csv_body();
    let mut conn: Option<(TcpStream, Vec<u8>)> = None;
    let mut n = client;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let request = match n % 3 {
            0 => "GET / HTTP/1.1\r\nHost: test\r\n\r\n".to_string(),
            1 => "GET /report?rows=300 HTTP/1.1\r\nHost: test\r\n\r\n".to_string(),
            _ => format!(
                "POST /report HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        };
        let kind = request.split(" HTTP").next().unwrap_or("").to_string();
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    stream.set_nodelay(true).unwrap();
                    tally.connections.fetch_add(1, Ordering::Relaxed);
                    conn = Some((stream, Vec::new()));
                }
                Err(e) => {
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    tally.fail(&tally.errors, format!("{kind}: connect: {e}"));
                    continue;
                }
            }
        }
        let (stream, pending) = conn.as_mut().expect("connected above");
        tally.sent.fetch_add(1, Ordering::Relaxed);
        match exchange(stream, pending, request.as_bytes()) {
            Ok((status, close)) => {
                if (200..300).contains(&status) {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.fail(&tally.non_2xx, format!("{kind}: status {status}"));
                }
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                tally.fail(&tally.errors, format!("{kind}: {e}"));
                conn = None;
            }
        }
    }
}

/// Writes one request and reads its response: `(status, connection closes)`.
fn exchange(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    request: &[u8],
) -> Result<(u16, bool), String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    loop {
        if let Some((raw, used)) = common::parse_one_framed(pending, false) {
            pending.drain(..used);
            let close = raw
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            return Ok((raw.status, close));
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "closed after {} bytes of the response",
                    pending.len()
                ))
            }
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Runs load on `addr` for `phase`, then `restart(0)` to `restart(restarts - 1)` in turn with a
/// phase after each; returns what the clients saw.
fn under_load(
    addr: SocketAddr,
    phase: Duration,
    restarts: usize,
    restart: &mut dyn FnMut(usize),
) -> Arc<Tally> {
    let load = Load::start(addr);
    let mut next = Instant::now() + phase;
    for step in 0..restarts {
        pace_until(next);
        restart(step);
        next = Instant::now() + phase;
    }
    pace_until(next);
    load.finish()
}

/// Lets the load run until `at` (pacing the scenario, not waiting for an event).
fn pace_until(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    thread::sleep(left);
}

/// Asserts that every request got one 2xx answer, printing the figures either way.
fn assert_lossless(scenario: &str, tally: &Tally) {
    eprintln!("{scenario}: {}", tally.summary());
    let samples = tally.samples.lock().unwrap().clone();
    assert_eq!(
        tally.non_2xx.load(Ordering::Relaxed),
        0,
        "{scenario}: {samples:?}"
    );
    assert_eq!(
        tally.errors.load(Ordering::Relaxed),
        0,
        "{scenario}: {samples:?}"
    );
    let (sent, ok) = (
        tally.sent.load(Ordering::Relaxed),
        tally.ok.load(Ordering::Relaxed),
    );
    assert_eq!(sent, ok, "{scenario}: every request answered once");
    assert!(
        ok > 100,
        "{scenario}: too little load to mean anything ({ok} answers)"
    );
}

/// The flags of an instance behind nginx with the documented drain.
const DRAINED: &[&str] = &[
    "--drain-delay",
    "1s",
    "--workers",
    "1",
    "--keep-alive-timeout",
    "5s",
];

#[test]
fn nginx_restarts_of_both_instances_lose_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("nginx");
    let ports = [free_port(), free_port()];
    let log = scratch.path("logs/instances.log");
    let mut a = Some(Instance::on_port(ports[0], DRAINED, &log));
    let mut b = Some(Instance::on_port(ports[1], DRAINED, &log));
    let nginx = Nginx::start(&scratch, ports, None);
    // One instance, then the other: SIGTERM, wait for its exit, start it again.
    let tally = under_load(nginx.addr, PHASE, 2, &mut |step| {
        let (instance, port) = if step == 0 {
            (&mut a, ports[0])
        } else {
            (&mut b, ports[1])
        };
        instance.take().unwrap().stop();
        *instance = Some(Instance::on_port(port, DRAINED, &log));
    });
    let (logged, retried) = nginx.logged();
    eprintln!("nginx: {logged} requests logged, {retried} sent to a second upstream after a failed connect");
    // No upstream error but failed connects: a stop shuts the listener's door before closing
    // it (src/http/native/door.rs), so no connection the kernel queued is reset at the close,
    // which nginx would log "while reading response header" (a POST caught there is a 502).
    let errors = nginx.upstream_errors();
    assert!(errors.is_empty(), "nginx upstream errors: {errors:?}");
    assert_lossless("nginx, both instances restarted", &tally);
}

#[test]
#[cfg(feature = "systemd")]
fn socket_activated_restarts_refuse_and_reset_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("activated");
    let log = scratch.path("logs/instances.log");
    // The test holds the socket, as systemd would: it outlives every instance.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let flags = &["--drain-delay", "1s", "--workers", "1"];
    let mut running = vec![
        Instance::activated(&listener, flags, &log),
        Instance::activated(&listener, flags, &log),
    ];
    let tally = under_load(addr, PHASE, 3, &mut |step| {
        if step < 2 {
            // One instance at a time: the other keeps taking connections from the shared queue.
            running.remove(0).stop();
        } else {
            // Then every instance goes away before a successor starts: clients wait in the
            // kernel's backlog meanwhile.
            for instance in running.drain(..) {
                instance.stop();
            }
        }
        running.push(Instance::activated(&listener, flags, &log));
    });
    assert_lossless("socket-activated, restarted", &tally);
}

#[test]
#[cfg(feature = "systemd")]
fn systemd_socket_activate_starts_the_demo() {
    let scratch = Scratch::new("sdactivate");
    let (mut child, addr) = socket_activated_demo(&scratch.path("logs/demo.log"));
    let mut stream = common::connect(addr);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let response = common::read_until_close(&mut stream);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{:?}; log: {}",
        String::from_utf8_lossy(&response),
        std::fs::read_to_string(scratch.path("logs/demo.log")).unwrap_or_default()
    );
}

/// Starts `systemd-socket-activate` listening on a free port for the demo, and returns it once
/// its first connection (made here) has started the demo.
///
/// The port comes from [`free_port`], so another test may take it before
/// `systemd-socket-activate` binds it; that tool then exits at once (and a connection may even
/// reach the other test's listener), so a tool that is gone 100 ms after the first connection
/// is started again on another port, at most three times.
#[cfg(feature = "systemd")]
fn socket_activated_demo(log: &Path) -> (Child, SocketAddr) {
    for _ in 0..3 {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = Command::new("systemd-socket-activate")
            .args(["-l", &addr.to_string(), "--fdname=http"])
            .arg(env!("CARGO_BIN_EXE_steadyloop"))
            .args(["--addr", "systemd:http"])
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .expect("systemd-socket-activate is installed (it comes with systemd)");
        // The first connection starts the demo; it waits in the backlog until the demo accepts
        // it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listening = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if TcpStream::connect(addr).is_ok() {
                thread::sleep(Duration::from_millis(100));
                break child.try_wait().unwrap().is_none();
            }
            assert!(Instant::now() < deadline, "nothing listens on {addr}");
            thread::sleep(Duration::from_millis(20));
        };
        if listening {
            return (child, addr);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "systemd-socket-activate did not stay up on three free ports; its log: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
#[cfg(not(feature = "systemd"))]
fn without_the_systemd_feature_a_passed_socket_is_refused_by_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .args(["--addr", "systemd"])
        .stdin(Stdio::null())
        .output()
        .expect("the demo starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("`systemd` cargo feature"), "{stderr}");
}

/// The control run: drain-delay 0 and nginx's idle timeout above ours, the setup the docs warn
/// against. Run it with `cargo test --test nginx -- --ignored`; it passes when requests were
/// lost, showing that the lossless tests above would catch the race.
///
/// The race is at each stop and only some stops lose a request (one in 5 to 20 here), so one
/// instance is restarted until a loss shows, at most [`CONTROL_RESTARTS`] times, while the other
/// stays up (nginx always has somewhere to send).
#[test]
#[ignore = "expected to lose requests; shows what the other tests catch"]
fn control_drain_delay_zero_loses_requests() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let flags = &[
        "--drain-delay",
        "0s",
        "--workers",
        "1",
        "--keep-alive-timeout",
        "5s",
    ];
    let scratch = Scratch::new("control");
    let ports = [free_port(), free_port()];
    let log = scratch.path("logs/instances.log");
    let mut a = Instance::on_port(ports[0], flags, &log);
    let _b = Instance::on_port(ports[1], flags, &log);
    let nginx = Nginx::start(&scratch, ports, Some("60s"));
    let load = Load::start(nginx.addr);
    // A request that reached an instance and failed there counts even when nginx hid it from
    // the client by retrying (it does for GETs, not POSTs): the lossless tests check both.
    let lost = |tally: &Tally| {
        let client = tally.non_2xx.load(Ordering::Relaxed) + tally.errors.load(Ordering::Relaxed);
        client + nginx.upstream_errors().len() as u64
    };
    let mut restarts = 0;
    while restarts < CONTROL_RESTARTS && lost(&load.tally) == 0 {
        pace_until(Instant::now() + Duration::from_millis(500));
        a.stop();
        a = Instance::on_port(ports[0], flags, &log);
        restarts += 1;
    }
    pace_until(Instant::now() + Duration::from_millis(500));
    let tally = load.finish();
    let upstream = nginx.upstream_errors();
    eprintln!(
        "control, {restarts} restarts: {}; nginx upstream errors {}: {upstream:?}",
        tally.summary(),
        upstream.len()
    );
    assert!(
        lost(&tally) > 0,
        "the control caught nothing in {restarts} restarts"
    );
}

/// The most times the control run restarts an instance.
const CONTROL_RESTARTS: usize = 100;
