//! The loop's own runtime through a real server: handlers keep using async-io (sockets to
//! other services, timers) and the `blocking` crate; a connection that retries shed work at once
//! is paused while other connections are served at once; well-behaved clients see no pause.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, held_route, read_response, start_with};
use steadyloop::{ClassConfig, Router};

/// Starts a one-shot echo service on another thread: it answers one connection's bytes with
/// the same bytes upper-cased.
fn echo_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).unwrap();
        stream.write_all(&buf[..n].to_ascii_uppercase()).unwrap();
    });
    addr
}

#[test]
fn handlers_can_use_async_io_sockets_and_timers_and_the_blocking_crate() {
    let upstream = echo_service();
    let server = start_with(common::builder(), move || {
        Router::new().get("/proxy", move |_req| async move {
            let mut stream = async_io::Async::<std::net::TcpStream>::connect(upstream)
                .await
                .expect("connect upstream");
            futures_lite::AsyncWriteExt::write_all(&mut stream, b"hello")
                .await
                .expect("write upstream");
            let mut buf = [0u8; 5];
            futures_lite::AsyncReadExt::read_exact(&mut stream, &mut buf)
                .await
                .expect("read upstream");
            async_io::Timer::after(Duration::from_millis(5)).await;
            let len = blocking::unblock(move || buf.len()).await;
            format!("{} {len}", String::from_utf8_lossy(&buf))
        })
    });
    assert_eq!(common::get(&server, "/proxy"), (200, "HELLO 5".to_string()));
}

/// Sends `GET path` on `stream` (keep-alive) and returns the status and how long it took.
fn timed_get(
    stream: &mut std::net::TcpStream,
    pending: &mut Vec<u8>,
    path: &str,
) -> (u16, Duration) {
    let start = Instant::now();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let raw = read_response(stream, pending, false);
    (raw.status, start.elapsed())
}

#[test]
fn a_connection_retrying_shed_work_is_paused_while_others_are_served() {
    // One worker, no queue: while `/held` runs, every other `/held` is shed with 503.
    let (started_tx, started) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        let builder = common::builder().class("held", ClassConfig::new(1, 0));
        start_with(builder, move || {
            held_route(Router::new(), started_tx, gate)
                .class("held")
                .get("/healthz", |_req| async { "ok" })
        })
    };
    let addr = server.local_addr();
    let holder = common::get_in_background(&server, "/held");
    started.recv().unwrap();

    // A client retrying at once: each 503 in a row pauses its next request longer
    // (1, 2, 4, ... ms); ten retries cannot take less than the sum of the first nine pauses.
    let mut storm = connect(addr);
    let mut pending = Vec::new();
    let start = Instant::now();
    for _ in 0..10 {
        let (status, _) = timed_get(&mut storm, &mut pending, "/held");
        assert_eq!(status, 503);
    }
    assert!(
        start.elapsed() >= Duration::from_millis(511),
        "ten retries took only {:?}",
        start.elapsed()
    );

    // Meanwhile another connection is served without a pause, and so is the storm's own next
    // request once it asks for something that is not shed.
    let mut other = connect(addr);
    let mut other_pending = Vec::new();
    for _ in 0..3 {
        assert_eq!(timed_get(&mut other, &mut other_pending, "/healthz").0, 200);
    }
    let (status, _) = timed_get(&mut storm, &mut pending, "/healthz");
    assert_eq!(status, 200);
    let (status, took) = timed_get(&mut storm, &mut pending, "/healthz");
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(200),
        "a 200 reset the pause, yet it took {took:?}"
    );

    gate.wait();
    assert_eq!(holder.join().unwrap(), "done");
}

/// Sums the context switches of every thread of process `pid`: a thread that wakes, for a
/// timer or a system call that blocks, adds at least one.
fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("procfs") {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    total
}

#[test]
#[cfg(target_os = "linux")]
fn an_idle_server_makes_no_system_calls() {
    let (mut child, addr) = common::spawn_demo(&[], &[], false);
    // Serve one request on a connection that then closes, so the loop has had work and timers.
    let raw = common::exchange(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        common::status_line(&raw).contains("200"),
        "{}",
        common::status_line(&raw)
    );
    // Settle: the closed connection's task ends, and the loop watchdog parks after a second
    // without polls (observe/monitor.rs, PARK_AFTER_IDLE).
    thread::sleep(Duration::from_millis(1500));
    let before = context_switches(child.id());
    // The idle interval under test: no thread of the server may wake meanwhile.
    thread::sleep(Duration::from_millis(2000));
    let after = context_switches(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        after,
        before,
        "an idle server's threads woke {} times",
        after - before
    );
}
