//! Graceful shutdown: in-flight requests finish (with `Connection: close`), idle connections close
//! at once, new connections are refused, and the server returns within the drain deadline; a
//! second request stops at once; a passed drain deadline closes what is left without a partial
//! response; with a drain delay no connection the kernel completed is reset at the listener's
//! close, and a connection paused after `503`s still answers the request it was sent.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, read_until_close, start_with};
use steadyloop::{offload, Router, ServerHandle};

/// Slack allowed past a deadline on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

/// A gate that offloaded jobs wait at until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Blocks until the gate is open.
    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
    }

    /// Opens the gate for every waiting and future job.
    fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
}

/// Signals from the server: a handler was entered, a job started.
struct Events {
    /// A `/hold` handler was entered (its job is queued or running).
    entered: Receiver<()>,
    /// A `/hold` job started on a worker.
    started: Receiver<()>,
}

impl Events {
    /// Waits for `entered` handler calls and `started` jobs.
    fn wait_for(&self, entered: usize, started: usize) {
        for _ in 0..entered {
            self.entered
                .recv_timeout(Duration::from_secs(10))
                .expect("handler entered");
        }
        for _ in 0..started {
            self.started
                .recv_timeout(Duration::from_secs(10))
                .expect("job started");
        }
    }
}

/// Starts a server with `/hold` (an offloaded job that waits at `gate`) and `/fast`.
fn start(builder: steadyloop::ServerBuilder, gate: &Gate) -> (ServerHandle, Events) {
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let gate = gate.clone();
    let server = start_with(builder, move || {
        Router::new()
            .get("/fast", |_req| async { "fast" })
            .get("/hold", move |_req| {
                let (entered_tx, started_tx): (Sender<()>, Sender<()>) =
                    (entered_tx.clone(), started_tx.clone());
                let gate = gate.clone();
                async move {
                    entered_tx.send(()).unwrap();
                    offload(move || {
                        started_tx.send(()).unwrap();
                        gate.wait();
                        "held"
                    })
                    .await
                }
            })
    });
    (server, Events { entered, started })
}

/// Opens a connection and sends a keep-alive `GET path`.
fn send(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    stream
}

/// Joins the server on another thread; `None` if it takes longer than `limit`.
fn join_within(server: ServerHandle, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(server.join());
    });
    match done_rx.recv_timeout(limit) {
        Ok(result) => {
            result.expect("server returns Ok");
            Some(start.elapsed())
        }
        Err(_) => None,
    }
}

/// Asserts that a new connection gets no response: refused, or reset before any byte.
fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect(addr) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        Ok(mut stream) => {
            stream
                .set_read_timeout(Some(common::CLIENT_TIMEOUT))
                .unwrap();
            let _ = stream.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
            let bytes = read_until_close(&mut stream);
            assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests_and_closes_idle_connections_at_once() {
    let gate = Gate::default();
    let (server, events) = start(
        common::builder()
            .workers(2)
            .drain_timeout(Duration::from_secs(20)),
        &gate,
    );
    let addr = server.local_addr();
    // Three requests in flight: two jobs running, one queued behind them.
    let mut held: Vec<TcpStream> = (0..3).map(|_| send(addr, "/hold")).collect();
    events.wait_for(3, 2);
    // One idle keep-alive connection.
    let mut idle = send(addr, "/fast");
    let raw = common::read_response(&mut idle, &mut Vec::new(), false);
    assert_eq!(raw.text(), "fast");

    let control = server.shutdown_handle();
    let start = Instant::now();
    control.shutdown();
    // The idle connection closes while the jobs are still held: it did not wait for the drain.
    let bytes = read_until_close(&mut idle);
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
    assert_refused(addr);

    gate.open();
    for stream in &mut held {
        let responses = common::parse_responses(&read_until_close(stream));
        assert_eq!(responses.len(), 1);
        assert_eq!(responses[0].status, 200);
        assert_eq!(responses[0].text(), "held");
        assert_eq!(responses[0].header("connection"), Some("close"));
    }
    let joined = join_within(server, SLACK).expect("server returns once drained");
    assert!(start.elapsed() < Duration::from_secs(20), "{joined:?}");
}

#[test]
fn request_arriving_during_the_drain_on_an_open_connection_is_answered_with_close() {
    let gate = Gate::default();
    let (server, events) = start(common::builder().workers(1), &gate);
    let addr = server.local_addr();
    let mut held = send(addr, "/hold");
    events.wait_for(1, 1);
    // Pipelined behind the held request: already sent when shutdown starts.
    held.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut idle = send(addr, "/fast");
    common::read_response(&mut idle, &mut Vec::new(), false);
    server.shutdown_handle().shutdown();
    // `shutdown` only asks; the idle connection closing shows the loop has begun it.
    assert!(read_until_close(&mut idle).is_empty());
    gate.open();
    let responses = common::parse_responses(&read_until_close(&mut held));
    // The held request is answered and closes the connection; the pipelined one was never
    // started, and the client can see that from the close.
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].text(), "held");
    assert_eq!(responses[0].header("connection"), Some("close"));
    join_within(server, SLACK).expect("server returns");
}

#[test]
fn second_shutdown_request_stops_at_once() {
    let gate = Gate::default();
    let (server, events) = start(
        common::builder().drain_timeout(Duration::from_secs(30)),
        &gate,
    );
    let mut held = send(server.local_addr(), "/hold");
    events.wait_for(1, 1);
    let control = server.shutdown_handle();
    control.shutdown();
    control.shutdown_now();
    join_within(server, SLACK).expect("an immediate stop does not wait for the drain");
    // The connection is closed before any byte of a response.
    let bytes = read_until_close(&mut held);
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
    gate.open();
}

#[test]
fn immediate_shutdown_closes_every_connection() {
    let gate = Gate::default();
    let (server, events) = start(common::builder(), &gate);
    let addr = server.local_addr();
    let mut held = send(addr, "/hold");
    events.wait_for(1, 1);
    let mut idle = send(addr, "/fast");
    common::read_response(&mut idle, &mut Vec::new(), false);
    server.shutdown_handle().shutdown_now();
    join_within(server, SLACK).expect("server returns");
    assert!(read_until_close(&mut held).is_empty());
    assert!(read_until_close(&mut idle).is_empty());
    assert_refused(addr);
    gate.open();
}

#[test]
fn drain_deadline_closes_connections_whose_jobs_are_still_running_or_queued() {
    let gate = Gate::default();
    let drain = Duration::from_millis(300);
    let (server, events) = start(common::builder().workers(1).drain_timeout(drain), &gate);
    let addr = server.local_addr();
    let mut running = send(addr, "/hold");
    let mut queued = send(addr, "/hold");
    events.wait_for(2, 1);
    let start = Instant::now();
    server.shutdown_handle().shutdown();
    join_within(server, SLACK).expect("server returns at the drain deadline");
    assert!(
        start.elapsed() >= drain,
        "returned after {:?}",
        start.elapsed()
    );
    // Neither request got a byte of a response: their connections were closed instead.
    assert!(read_until_close(&mut running).is_empty());
    assert!(read_until_close(&mut queued).is_empty());
    gate.open();
}

/// Stops under a storm of new connections: rounds of it, each stop a chance to meet the race.
/// With the shut door (src/http/native/door.rs) stubbed out by hand, 5 runs of 6 here reset 1 or
/// 2 connections the kernel had completed and queued but the server never accepted.
const STORM_ROUNDS: usize = 24;

/// Client threads of the storm, each connecting, sending one request and reading its answer.
const STORM_CLIENTS: usize = 3;

#[test]
fn a_stop_with_a_drain_delay_resets_no_connection_it_let_complete() {
    let lost = Arc::new(Mutex::new(Vec::new()));
    let mut answered = 0;
    for round in 0..STORM_ROUNDS {
        let server = start_with(
            common::builder().drain_delay(Duration::from_millis(20)),
            || Router::new().get("/fast", |_req| async { "fast" }),
        );
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..STORM_CLIENTS)
            .map(|_| {
                let (stop, lost) = (stop.clone(), lost.clone());
                thread::spawn(move || storm_client(addr, round, &stop, &lost))
            })
            .collect();
        // Let the storm run into the server before the stop, then through the stop.
        thread::sleep(Duration::from_millis(30));
        server.shutdown().unwrap();
        stop.store(true, Ordering::Relaxed);
        answered += clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .sum::<usize>();
    }
    let lost = lost.lock().unwrap();
    assert!(answered > 0, "the storm never reached the server");
    assert!(
        lost.is_empty(),
        "{} of {} connections that completed got no answer: {lost:?}",
        lost.len(),
        answered + lost.len()
    );
}

/// Connects, sends one request and reads the answer until `stop`; returns how many were
/// answered, and records in `lost` each connection that completed but got no answer (reset or
/// closed unread). A connect that fails or times out sent nothing and loses nothing.
fn storm_client(
    addr: SocketAddr,
    round: usize,
    stop: &AtomicBool,
    lost: &Mutex<Vec<String>>,
) -> usize {
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            continue;
        };
        stream
            .set_read_timeout(Some(common::CLIENT_TIMEOUT))
            .unwrap();
        let sent = stream.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let bytes = read_until_close(&mut stream);
        if sent.is_ok() && bytes.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        } else {
            let what = format!("round {round}: sent {sent:?}, read {} bytes", bytes.len());
            lost.lock().unwrap().push(what);
        }
    }
    answered
}

/// A graceful stop that begins while a connection is paused after a run of `503`s (up to 1 s,
/// see docs/operations.md) ends the pause, not the connection: the request the client already
/// sent is read and answered with `Connection: close` instead of being reset unread (behind
/// nginx, a POST caught there was a 502).
#[test]
fn a_stop_during_the_pause_after_503s_answers_the_request_already_sent() {
    let server = start_with(
        common::builder().drain_delay(Duration::from_millis(50)),
        || {
            Router::new()
                .get("/fast", |_req| async { "fast" })
                .get("/busy", |_req| async {
                    steadyloop::Response::text("busy\n").with_status(503)
                })
        },
    );
    let addr = server.local_addr();
    let mut stream = connect(addr);
    let mut pending = Vec::new();
    // Eleven 503s in a row: the pause before the next read is 1 ms doubled ten times, at its
    // 1 s cap.
    for _ in 0..11 {
        stream
            .write_all(b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let response = common::read_response(&mut stream, &mut pending, false);
        assert_eq!(response.status, 503);
    }
    // Sent while the connection pauses; the stop (after the 50 ms drain delay) comes well
    // inside the pause.
    stream
        .write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    server.shutdown_handle().shutdown();
    let responses = common::parse_responses(&read_until_close(&mut stream));
    assert_eq!(
        responses.len(),
        1,
        "the request sent during the pause got no answer"
    );
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].text(), "fast");
    assert_eq!(responses[0].header("connection"), Some("close"));
    join_within(server, SLACK).expect("server returns");
}
