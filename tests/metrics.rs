//! Observability through a real server: the live stall detector names the route while the stall
//! is happening, /metrics parses with a real Prometheus parser and its counters move, pool
//! gauges show busy workers, and an idle server's loop is not woken.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, read_until_close, start, start_with};
use steadyloop::Router;

/// Log records captured by the test logger.
static RECORDS: OnceLock<(Mutex<Vec<String>>, Condvar)> = OnceLock::new();

/// A logger that keeps every warning and above, so tests can wait for a record.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let (records, changed) = records();
            records.lock().unwrap().push(record.args().to_string());
            changed.notify_all();
        }
    }
    fn flush(&self) {}
}

fn records() -> &'static (Mutex<Vec<String>>, Condvar) {
    RECORDS.get_or_init(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Warn);
        (Mutex::new(Vec::new()), Condvar::new())
    })
}

/// Waits until a captured record contains every one of `needles`; returns it.
fn wait_for_record(needles: &[&str]) -> String {
    let (records, changed) = records();
    let deadline = Instant::now() + common::CLIENT_TIMEOUT;
    let mut guard = records.lock().unwrap();
    loop {
        if let Some(found) = guard.iter().find(|r| needles.iter().all(|n| r.contains(n))) {
            return found.clone();
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("log record never came");
        guard = changed.wait_timeout(guard, left).unwrap().0;
    }
}

/// Fetches /metrics on a fresh connection and parses it.
fn scrape(addr: std::net::SocketAddr) -> Metrics {
    let mut stream = connect(addr);
    std::io::Write::write_all(
        &mut stream,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let raw = common::parse_responses(&read_until_close(&mut stream)).remove(0);
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Metrics::parse(&raw.text())
}

/// Samples by `name{sorted labels}`.
struct Metrics(HashMap<String, f64>);

impl Metrics {
    /// Parses with `prometheus-parse`, and checks that it understood every sample line (the
    /// parser skips lines it cannot read, so a count mismatch means malformed output).
    fn parse(text: &str) -> Metrics {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        let sample_lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        let parsed: usize = scrape
            .samples
            .iter()
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.len(),
                _ => 1,
            })
            .sum();
        assert_eq!(parsed, sample_lines, "the parser skipped lines:\n{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let kind = line.rsplit(' ').next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
        }
        let mut map = HashMap::new();
        for sample in scrape.samples {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    let inf = buckets.last().expect("+Inf bucket").count;
                    assert!(
                        buckets.windows(2).all(|w| w[0].count <= w[1].count),
                        "{}",
                        sample.metric
                    );
                    inf
                }
                prometheus_parse::Value::Summary(_) => panic!("no summaries expected"),
            };
            map.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
        }
        Metrics(map)
    }

    fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key}; have {:?}", self.0.keys()))
    }
}

#[test]
fn malformed_exposition_is_caught_by_the_check() {
    let result = std::panic::catch_unwind(|| Metrics::parse("# TYPE a counter\na{x=\"1\" 3\n"));
    assert!(
        result.is_err(),
        "the validity check must reject a broken line"
    );
}

#[test]
fn metrics_parse_and_counters_move() {
    let server = start(|| {
        Router::new()
            .get("/hello", |_req| async { "hi" })
            .metrics("/metrics")
    });
    let before = scrape(server.local_addr());
    let key = "steadyloop_requests_total{method=GET,route=/hello,status=2xx}";
    assert_eq!(before.get(key), 0.0);
    for _ in 0..3 {
        assert_eq!(common::get(&server, "/hello").0, 200);
    }
    assert_eq!(common::get(&server, "/nope").0, 404);
    let after = scrape(server.local_addr());
    assert_eq!(after.get(key), 3.0);
    assert_eq!(
        after.get("steadyloop_requests_total{method=(any),route=(unmatched),status=4xx}"),
        1.0
    );
    assert_eq!(
        after.get("steadyloop_request_duration_seconds_count{method=GET,route=/hello}"),
        3.0
    );
    assert!(
        after.get("steadyloop_loop_polls_total{}") > before.get("steadyloop_loop_polls_total{}")
    );
    assert!(after.get("process_resident_memory_bytes{}") > 0.0);
    assert_eq!(after.get("steadyloop_build_info{version=0.1.0}"), 1.0);
}

#[test]
fn pool_gauges_show_a_busy_worker_while_a_job_is_held() {
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        start_with(common::builder().workers(2), move || {
            common::held_route(Router::new().metrics("/metrics"), started_tx, gate)
        })
    };
    let held = common::get_in_background(&server, "/held");
    started_rx.recv().unwrap();
    let during = scrape(server.local_addr());
    assert_eq!(
        during.get("steadyloop_pool_workers_busy{class=default}"),
        1.0
    );
    assert_eq!(during.get("steadyloop_requests_in_flight{}"), 2.0); // /held and /metrics itself
    gate.wait();
    assert_eq!(held.join().unwrap(), "done");
    let after = scrape(server.local_addr());
    assert_eq!(
        after.get("steadyloop_pool_workers_busy{class=default}"),
        0.0
    );
    assert_eq!(
        after.get("steadyloop_pool_jobs_completed_total{class=default}"),
        1.0
    );
    assert_eq!(
        after.get("steadyloop_pool_run_seconds_count{class=default}"),
        1.0
    );
}

#[test]
fn a_stall_is_reported_while_it_happens_and_names_its_route() {
    records();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let server = start_with(
        common::builder().stall_threshold(Duration::from_millis(50)),
        move || {
            Router::new()
                .metrics("/metrics")
                .get("/stall-here", move |_req| {
                    let release_rx = release_rx.clone();
                    async move {
                        // The anti-pattern on purpose: block the loop until the test has seen the log.
                        release_rx.lock().unwrap().recv().unwrap();
                        "unstalled"
                    }
                })
        },
    );
    let stalled = common::get_in_background(&server, "/stall-here");
    let line = wait_for_record(&["stall in progress", "GET /stall-here"]);
    assert!(
        line.contains("offload"),
        "the message should hint at the fix: {line}"
    );
    assert!(
        !stalled.is_finished(),
        "the log line must come while the stall is happening"
    );
    release_tx.send(()).unwrap();
    assert_eq!(stalled.join().unwrap(), "unstalled");
    wait_for_record(&["stall ended", "GET /stall-here"]);
    let (records, _) = records();
    let in_progress = records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains("stall in progress") && r.contains("/stall-here"))
        .count();
    assert_eq!(in_progress, 1);
    let metrics = scrape(server.local_addr());
    assert_eq!(
        metrics.get("steadyloop_loop_stalls_total{route=GET /stall-here}"),
        1.0
    );
}

#[test]
fn an_idle_server_does_not_wake_its_loop() {
    let server = start(|| Router::new().metrics("/metrics"));
    let polls = || scrape(server.local_addr()).get("steadyloop_loop_polls_total{}");
    let a = polls();
    // The idle interval under test: nothing may run on the loop meanwhile.
    thread::sleep(Duration::from_millis(3000));
    let b = polls();
    // What one scrape costs, at most, over a few back-to-back scrapes (it varies by a poll or
    // two when the machine is busy: a request's bytes may arrive a poll after its accept).
    let mut last = b;
    let mut scrape_cost: f64 = 0.0;
    for _ in 0..4 {
        let next = polls();
        scrape_cost = scrape_cost.max(next - last);
        last = next;
    }
    // b - a spans one scrape plus the idle interval. A timer firing even once a second during
    // those three seconds would add three polls or more.
    assert!(
        b - a <= scrape_cost + 1.0,
        "idle loop was woken: {} polls vs at most {scrape_cost} for a scrape",
        b - a
    );
}
