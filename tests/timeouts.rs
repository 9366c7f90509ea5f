//! Slow clients: every wait of a connection has a deadline, and while slow sockets hold
//! connections open, other clients are still served.
//!
//! Each test configures short timeouts and synchronises by reading until the server closes;
//! the only pauses are the ones a trickling client makes between its bytes.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, read_until_close, start_with, status_line};
use steadyloop::{offload, Response, Router};

/// The short timeout the tests configure.
const SHORT: Duration = Duration::from_millis(300);

/// Slack allowed past a deadline on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

fn app() -> Router {
    Router::new()
        .get("/hello", |_req| async { "hello" })
        .post("/echo", |req: steadyloop::Request| async move {
            Response::bytes(req.into_body())
        })
}

/// Reads until the server closes and checks when that happened relative to `start`.
fn closed_between(stream: &mut TcpStream, start: Instant, min: Duration) -> Vec<u8> {
    let bytes = read_until_close(stream);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= min && elapsed < min + SLACK,
        "closed after {elapsed:?}, expected about {min:?}"
    );
    bytes
}

#[test]
fn silent_connection_is_closed_without_a_response() {
    let server = start_with(common::builder().header_timeout(SHORT), app);
    let start = Instant::now();
    let mut stream = connect(server.local_addr());
    let bytes = closed_between(&mut stream, start, SHORT);
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
}

#[test]
fn head_trickled_a_byte_at_a_time_gets_408_at_the_whole_head_deadline() {
    let server = start_with(common::builder().header_timeout(SHORT), app);
    let mut stream = connect(server.local_addr());
    let mut writer = stream.try_clone().unwrap();
    let start = Instant::now();
    // Each byte arrives well inside any per-read timeout, but the whole head would take ~2 s.
    let trickle = thread::spawn(move || {
        let head = format!(
            "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(150)
        );
        for byte in head.as_bytes() {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let bytes = closed_between(&mut stream, start, SHORT);
    assert_eq!(status_line(&bytes), "HTTP/1.1 408 Request Timeout");
    assert!(String::from_utf8_lossy(&bytes).contains("\r\nConnection: close\r\n"));
    trickle.join().unwrap();
}

#[test]
fn keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start_with(common::builder().keep_alive_timeout(SHORT), app);
    let mut stream = connect(server.local_addr());
    // Taken before the request, so it surely precedes the server's idle timer.
    let start = Instant::now();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let raw = common::read_response(&mut stream, &mut pending, false);
    assert_eq!(raw.text(), "hello");
    let bytes = closed_between(&mut stream, start, SHORT);
    assert!(bytes.is_empty() && pending.is_empty());
}

#[test]
fn body_that_stops_midway_gets_408_and_close() {
    let server = start_with(common::builder().body_timeout(SHORT), app);
    for request in [
        &b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"[..],
        &b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nonly part"[..],
    ] {
        let mut stream = connect(server.local_addr());
        let start = Instant::now();
        stream.write_all(request).unwrap();
        let bytes = closed_between(&mut stream, start, SHORT);
        assert_eq!(status_line(&bytes), "HTTP/1.1 408 Request Timeout");
    }
}

#[test]
fn body_read_deadline_is_per_pause_not_per_body() {
    // A body that keeps arriving is read to the end even if it takes longer than the timeout.
    let server = start_with(common::builder().body_timeout(SHORT), app);
    let mut stream = connect(server.local_addr());
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    for byte in b"abcdefgh" {
        stream.write_all(&[*byte]).unwrap();
        thread::sleep(SHORT / 4);
    }
    let responses = common::parse_responses(&read_until_close(&mut stream));
    assert_eq!(responses[0].text(), "abcdefgh");
}

#[test]
fn slow_sockets_do_not_stop_other_clients() {
    // Long timeouts: the slow sockets stay open for the whole test.
    let server = start_with(common::builder(), app);
    let addr = server.local_addr();
    let mut slow = Vec::new();
    for i in 0..60 {
        let mut stream = connect(addr);
        match i % 3 {
            // Silent.
            0 => {}
            // Half a head.
            1 => stream.write_all(b"GET /hello HTTP/1.1\r\nHo").unwrap(),
            // Half a body.
            _ => stream
                .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
                .unwrap(),
        }
        slow.push(stream);
    }
    let start = Instant::now();
    let responses = common::raw_responses(
        addr,
        "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses[0].text(), "hello");
    assert!(start.elapsed() < SLACK, "took {:?}", start.elapsed());
    // The slow sockets were all still open: finishing one of them now still works.
    slow[2].write_all(b"defghij").unwrap();
    let echoed = common::read_response(&mut slow[2], &mut Vec::new(), false);
    assert_eq!(echoed.text(), "abcdefghij");
}

#[test]
fn client_that_stops_reading_a_streamed_response_is_closed_by_the_write_timeout() {
    let (gone_tx, gone_rx) = mpsc::channel::<usize>();
    let server = start_with(common::builder().write_timeout(SHORT), move || {
        Router::new().get("/stream", move |_req| {
            let gone_tx = gone_tx.clone();
            async move {
                let (tx, response) = Response::channel(4);
                // The producer runs until the server drops the body: it then reports how much
                // it managed to send. Chunks are 64 KiB; the channel holds 4.
                offload(move || {
                    let mut sent = 0;
                    while tx.send_blocking(vec![b'x'; 64 * 1024]).is_ok() {
                        sent += 64 * 1024;
                    }
                    let _ = gone_tx.send(sent);
                })
                .detach();
                response
            }
        })
    });
    let mut stream = connect(server.local_addr());
    let start = Instant::now();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Not reading: the socket buffers fill, writes stall, the server gives up.
    let sent = gone_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server closes a connection whose client stopped reading");
    assert!(
        start.elapsed() >= SHORT,
        "gave up after {:?}",
        start.elapsed()
    );
    // What the server produced is bounded by the socket buffers plus the channel, not by the
    // (endless) body.
    assert!(sent < 64 * 1024 * 1024, "produced {sent} bytes");
    let received = read_until_close(&mut stream);
    assert!(received.len() <= sent + 1024);
    assert!(received.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn client_that_stops_reading_a_large_response_is_closed_by_the_write_timeout() {
    const SIZE: usize = 64 * 1024 * 1024;
    let server = start_with(
        common::builder()
            .write_timeout(SHORT)
            .drain_timeout(Duration::from_secs(30)),
        || Router::new().get("/big", |_req| async { Response::bytes(vec![b'x'; SIZE]) }),
    );
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Wait until the response has started, then stop reading.
    let mut first = [0u8; 17];
    std::io::Read::read_exact(&mut stream, &mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
    // A graceful shutdown waits for the connection; it ends by the write timeout, long
    // before the drain deadline.
    let start = Instant::now();
    server.shutdown().unwrap();
    assert!(start.elapsed() < SLACK, "took {:?}", start.elapsed());
    let rest = read_until_close(&mut stream);
    assert!(rest.len() < SIZE, "the whole body arrived");
}
