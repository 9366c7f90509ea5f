//! The sensor example's tests (`cargo test --example sensor`): the routes in-process with the
//! test client, the live feeds and a new interval over a real socket, and the example's own
//! `main` as a child process stopped with SIGTERM while a stream is open.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use steadyloop::{Request, ShutdownHandle, TestClient, TestResponse};
use tungstenite::protocol::frame::coding::CloseCode;

use super::*;

/// The token the tests configure.
const TOKEN: &str = "t0ken";

/// How long any network read in these tests may take before it fails the test.
const PATIENCE: Duration = Duration::from_secs(10);

/// `POST /api/config` with `body` as JSON and `auth` as the `Authorization` header.
fn post_config(client: &TestClient, auth: Option<&str>, body: &str) -> TestResponse {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/config")
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    client.send(req)
}

#[test]
fn readings_are_the_last_hundred_oldest_first() {
    let sensor = Sensor::new();
    for _ in 0..150 {
        sensor.sample();
    }
    let client = TestClient::new(app(&sensor, TOKEN));
    let response = client.get("/api/readings");
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let readings: Vec<Reading> = response.json().unwrap();
    let seqs: Vec<u64> = readings.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (51..=150).collect::<Vec<_>>());
    assert!(readings
        .iter()
        .all(|r| (19.0..23.0).contains(&r.celsius) && r.label == "sensor-1"));
}

#[test]
fn stats_are_percentiles_of_the_burst_and_bad_sizes_are_400() {
    let client = TestClient::new(app(&Sensor::new(), TOKEN));
    let stats: Stats = client.get("/api/stats?samples=5000").json().unwrap();
    assert_eq!(stats.samples, 5000);
    let ordered = [stats.min, stats.p50, stats.p90, stats.p99, stats.max];
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{stats:?}");
    // No reading yet: the burst is 21.0 ± 0.25, and its noise spreads over the whole range.
    assert!(stats.min >= 20.74 && stats.max <= 21.26, "{stats:?}");
    assert!(stats.max - stats.min > 0.4, "{stats:?}");
    let default: Stats = client.get("/api/stats").json().unwrap();
    assert_eq!(default.samples, 1000);
    for bad in ["abc", "-1", "0", "100001", "1e3"] {
        let response = client.get(&format!("/api/stats?samples={bad}"));
        assert_eq!(response.status(), 400, "samples={bad}");
        assert!(
            response.text().contains("samples"),
            "{bad}: {}",
            response.text()
        );
    }
}

#[test]
fn config_needs_the_bearer_token() {
    let client = TestClient::new(app(&Sensor::new(), TOKEN));
    let good = r#"{"interval_ms": 100, "label": "x"}"#;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("t0ken"),
        Some("Basic dDBrZW4="),
    ] {
        let response = post_config(&client, auth, good);
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer realm=\"sensor\"")
        );
        assert!(response.header("x-request-id").is_some());
    }
    assert_eq!(client.get("/api/config").status(), 401);
    // Nothing changed.
    let shown = client.send(
        Request::builder()
            .uri("/api/config")
            .header("Authorization", "Bearer t0ken"),
    );
    let settings: Settings = shown.json().unwrap();
    assert_eq!(settings.interval_ms, 200);
}

#[test]
fn bad_config_is_a_400_naming_the_field() {
    let client = TestClient::new(app(&Sensor::new(), TOKEN));
    let auth = Some("Bearer t0ken");
    let cases = [
        (r#"{"interval_ms": "fast", "label": "x"}"#, "interval_ms"),
        (r#"{"interval_ms": 100}"#, "label"),
        (r#"{"interval_ms": 100, "label": 7}"#, "label"),
        (r#"{"interval": 100, "label": "x"}"#, "interval"),
        (r#"{"interval_ms": 9, "label": "x"}"#, "interval_ms"),
        (r#"{"interval_ms": 60001, "label": "x"}"#, "interval_ms"),
        (r#"{"interval_ms": 100, "label": ""}"#, "label"),
        (r#"{"interval_ms": 100, "label": "x""#, "line 1"),
    ];
    for (body, field) in cases {
        let response = post_config(&client, auth, body);
        assert_eq!(response.status(), 400, "{body}");
        assert!(
            response.text().contains(field),
            "{body}: {}",
            response.text()
        );
    }
    // A body that does not say it is JSON.
    let plain = client.send(
        Request::builder()
            .method("POST")
            .uri("/api/config")
            .header("Authorization", "Bearer t0ken")
            .body(r#"{"interval_ms": 100, "label": "x"}"#),
    );
    assert_eq!(plain.status(), 415);
}

#[test]
fn good_config_is_204_and_takes_effect() {
    let sensor = Sensor::new();
    let client = TestClient::new(app(&sensor, TOKEN));
    let response = post_config(
        &client,
        Some("Bearer t0ken"),
        r#"{"interval_ms": 60000, "label": "attic"}"#,
    );
    assert_eq!(response.status(), 204, "{}", response.text());
    assert!(response.body().is_empty());
    let shown = client.send(
        Request::builder()
            .uri("/api/config")
            .header("Authorization", "Bearer t0ken"),
    );
    let settings: Settings = shown.json().unwrap();
    assert_eq!(settings.interval_ms, 60_000);
    assert_eq!(settings.label, "attic");
    // The sampler was restarted with it, and new readings carry the new label.
    assert!(sensor.sampler.borrow().is_some());
    sensor.sample();
    let readings: Vec<Reading> = client.get("/api/readings").json().unwrap();
    assert_eq!(readings.last().map(|r| r.label.as_str()), Some("attic"));
}

#[test]
fn every_answer_has_a_request_id_even_a_404() {
    let client = TestClient::new(app(&Sensor::new(), TOKEN));
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/api/nope", 404),
        ("GET", "/../Cargo.toml", 404),
        ("DELETE", "/api/readings", 405),
        ("GET", "/api/readings", 200),
    ] {
        let response = client.send(Request::builder().method(method).uri(path));
        assert_eq!(response.status(), status, "{method} {path}");
        let id = response.header("x-request-id").unwrap_or_default();
        assert_eq!(id.len(), 16, "{method} {path}: {response:?}");
    }
}

#[test]
fn the_page_and_its_script_come_from_public() {
    let client = TestClient::new(app(&Sensor::new(), TOKEN));
    let page = client.get("/");
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains(r#"<script src="/app.js"></script>"#));
    let script = client.get("/app.js");
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.text().contains(r#"new EventSource("/api/live")"#));
    // Offline devices: nothing from elsewhere.
    assert!(!page.text().contains("http") && !script.text().contains("http"));
}

/// The example's server on a free port, on a thread of its own; stopped when dropped.
struct Running {
    /// The bound address.
    addr: SocketAddr,
    /// Stops it.
    stop: ShutdownHandle,
    /// The server's thread.
    thread: Option<thread::JoinHandle<()>>,
}

impl Running {
    /// Starts the server as `main` does, but on `127.0.0.1:0` and without signal handlers.
    fn start() -> Running {
        let (ready, started) = mpsc::channel();
        let thread = thread::spawn(move || {
            let server = server(Server::builder().addr("127.0.0.1:0"), TOKEN).expect("builds");
            ready
                .send((server.local_addr(), server.shutdown_handle()))
                .unwrap();
            server.run().expect("runs");
        });
        let (addr, stop) = started.recv().expect("server starts");
        Running {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of `path` on this server.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.shutdown_now();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP client that fails a test instead of hanging it.
fn http() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_read(PATIENCE).build()
}

/// The readings of an open event stream, one per `reading` event.
struct Stream {
    /// The de-chunked body, line by line.
    lines: std::io::Lines<BufReader<Box<dyn std::io::Read + Send + Sync>>>,
}

impl Stream {
    /// Opens `GET /api/live` and checks that it is an event stream.
    fn open(url: &str) -> Stream {
        let response = http().get(url).call().expect("the stream opens");
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        assert!(response.header("x-request-id").is_some());
        Stream {
            lines: BufReader::new(response.into_reader()).lines(),
        }
    }

    /// Waits for the next reading; `None` when the stream ends. Panics after `PATIENCE`
    /// without one (keep-alive comments alone would otherwise keep a test waiting forever).
    fn next(&mut self) -> Option<Reading> {
        let deadline = Instant::now() + PATIENCE;
        let mut event = None;
        for line in self.lines.by_ref() {
            assert!(Instant::now() < deadline, "no reading for {PATIENCE:?}");
            let line = line.expect("the stream reads");
            if line == "event: reading" {
                event = Some(());
            } else if let (Some(()), Some(data)) = (event, line.strip_prefix("data: ")) {
                return Some(serde_json::from_str(data).expect("a reading"));
            }
        }
        None
    }
}

#[test]
fn live_readings_arrive_over_server_sent_events() {
    let server = Running::start();
    let mut stream = Stream::open(&server.url("/api/live"));
    let first = stream.next().expect("a reading");
    let second = stream.next().expect("another reading");
    assert_eq!(second.seq, first.seq + 1);
    assert!(
        second.unix_ms >= first.unix_ms + 150,
        "{first:?} {second:?}"
    );
    // They are the ones the API remembers too.
    let body = http()
        .get(&server.url("/api/readings"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let remembered: Vec<Reading> = serde_json::from_str(&body).unwrap();
    assert!(
        remembered.contains(&first),
        "{first:?} not in {remembered:?}"
    );
}

/// Opens `GET /api/ws` as a WebSocket client.
fn websocket(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let url = format!("ws://{addr}/api/ws");
    let (ws, response) = tungstenite::client(url.as_str(), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the next reading from a WebSocket.
fn ws_reading(ws: &mut tungstenite::WebSocket<TcpStream>) -> Reading {
    match ws.read().expect("a message") {
        tungstenite::Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn live_readings_arrive_over_websocket() {
    let server = Running::start();
    let mut ws = websocket(server.addr);
    let first = ws_reading(&mut ws);
    // What the client sends is ignored, and the feed goes on.
    ws.send(tungstenite::Message::text("hello")).unwrap();
    let second = ws_reading(&mut ws);
    assert_eq!(second.seq, first.seq + 1);
    assert_eq!(first.label, "sensor-1");
}

#[test]
fn a_new_interval_changes_the_sampling_rate() {
    let server = Running::start();
    let mut stream = Stream::open(&server.url("/api/live"));
    let before: Vec<Reading> = (0..3).map(|_| stream.next().expect("reading")).collect();
    let gaps = |readings: &[Reading]| -> Vec<u64> {
        readings
            .windows(2)
            .map(|w| w[1].unix_ms - w[0].unix_ms)
            .collect()
    };
    assert!(gaps(&before).iter().all(|gap| *gap >= 150), "{before:?}");
    let response = http()
        .post(&server.url("/api/config"))
        .set("Authorization", "Bearer t0ken")
        .set("Content-Type", "application/json")
        .send_string(r#"{"interval_ms": 20, "label": "fast"}"#)
        .expect("204");
    assert_eq!(response.status(), 204);
    let after: Vec<Reading> = std::iter::from_fn(|| stream.next())
        .filter(|r| r.label == "fast")
        .take(11)
        .collect();
    assert_eq!(after.len(), 11);
    // Ten gaps of 20 ms; a timer that comes late under load still averages far below 200 ms.
    let total: u64 = gaps(&after).iter().sum();
    assert!(total < 1000, "{:?}", gaps(&after));
}

/// Kills the child process (by its id) if the test ends before it exited.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A child process that runs the example's `main` (the `child_main` test of this binary,
/// started with `SENSOR_ADDR=127.0.0.1:0`), and the address it printed.
fn spawn_main() -> (Child, SocketAddr) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["--exact", "tests::child_main", "--ignored", "--nocapture"])
        .env("SENSOR_TEST_CHILD", "1")
        .env("SENSOR_ADDR", "127.0.0.1:0")
        .env("SENSOR_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let addr = loop {
        let line = stdout
            .next()
            .expect("the child prints its address")
            .unwrap();
        if let Some(addr) = line.strip_prefix("sensor listening on http://") {
            break addr.parse().expect("an address");
        }
    };
    // Keep draining stdout, so the child never blocks on a full pipe.
    thread::spawn(move || stdout.for_each(drop));
    (child, addr)
}

/// The child process of `sigterm_ends_the_streams_and_exits_0`: the example's `main`.
#[test]
#[ignore = "started by sigterm_ends_the_streams_and_exits_0 in a child process"]
fn child_main() {
    if std::env::var_os("SENSOR_TEST_CHILD").is_some() {
        main().expect("main returns Ok after SIGTERM");
    }
}

#[test]
fn sigterm_ends_the_streams_and_exits_0() {
    let (mut child, addr) = spawn_main();
    let mut guard = KillOnDrop(Some(child.id()));
    let mut stream = Stream::open(&format!("http://{addr}/api/live"));
    stream.next().expect("a reading before the signal");
    let mut ws = websocket(addr);
    ws_reading(&mut ws);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let signalled = Instant::now();

    // The event stream ends cleanly (its final chunk), well before the 10 s drain deadline.
    while stream.next().is_some() {}
    // The WebSocket session is closed with 1001 (going away).
    let code = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Away));
    // And the process exits 0, promptly.
    let (done, exited) = mpsc::channel();
    thread::spawn(move || done.send(child.wait()));
    let status = exited
        .recv_timeout(Duration::from_secs(5))
        .expect("the child exits within 5 s of SIGTERM")
        .expect("wait works");
    guard.0 = None;
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
}
