//! What the tiny_http front end adds around tiny_http: a bounded bridge that sheds with 503 off
//! the loop, body limits before reading, refused ambiguous framing, `Connection: close` after
//! errors, a send timeout, and graceful shutdown. Built only with the `tiny_http` feature.

#![cfg(feature = "tiny_http")]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, held_route, read_one_response, start_with};
use steadyloop::{offload, Frontend, Request, Response, Router, ServerBuilder};

/// A builder for a tiny_http test server.
fn tiny() -> ServerBuilder {
    common::builder_on(Frontend::TinyHttp)
}

/// Echoes POST bodies, and says hello.
fn echo_app() -> Router {
    Router::new()
        .get("/hello", |_req| async { "hello" })
        .post("/echo", |req: Request| async move {
            Response::bytes(req.into_body())
        })
}

/// Sends `request` on a new connection and reads one response, leaving the connection open
/// (tiny_http does not close after an error; it asks the client to).
fn one_response(server: &steadyloop::ServerHandle, request: &str) -> common::Raw {
    let mut stream = connect(server.local_addr());
    stream.write_all(request.as_bytes()).unwrap();
    read_one_response(&mut stream, false)
}

/// Starts a GET on its own thread and returns its (status, body, Retry-After).
fn spawn_get(url: String) -> thread::JoinHandle<(u16, String, Option<String>)> {
    thread::spawn(move || match common::client().get(&url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap(), None),
        Err(ureq::Error::Status(code, r)) => {
            let after = r.header("retry-after").map(str::to_string);
            (code, r.into_string().unwrap(), after)
        }
        Err(e) => panic!("GET {url}: {e}"),
    })
}

#[test]
fn full_bridge_answers_503_off_a_stalled_loop() {
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        let started = Mutex::new(started_tx);
        // One request in flight and one waiting in the bridge; a third finds it full.
        start_with(tiny().max_connections(1), move || {
            Router::new()
                .get("/stall", move |_req| {
                    started.lock().unwrap().send(()).unwrap();
                    // The anti-pattern on purpose: block the loop thread itself.
                    gate.wait();
                    async { "stalled" }
                })
                .get("/quick", |_req| async { "quick" })
        })
    };
    let stalled = spawn_get(common::url(&server, "/stall"));
    started_rx.recv().unwrap();
    // The loop is blocked: only the recv thread and the pool can answer now. Of two more
    // requests, one waits in the bridge and the other is shed at once.
    let (results_tx, results_rx) = mpsc::channel();
    for _ in 0..2 {
        let results = results_tx.clone();
        let quick = spawn_get(common::url(&server, "/quick"));
        thread::spawn(move || results.send(quick.join().unwrap()).unwrap());
    }
    let (status, body, retry_after) = results_rx.recv().unwrap();
    assert_eq!((status, body.as_str()), (503, "server busy\n"));
    assert_eq!(retry_after.as_deref(), Some("1"));
    gate.wait();
    assert_eq!(stalled.join().unwrap().1, "stalled");
    assert_eq!(results_rx.recv().unwrap().0, 200);
}

#[test]
fn declared_body_over_the_limit_is_refused_before_it_is_read() {
    let server = start_with(tiny().max_body_bytes(10), echo_app);
    // Only the head is sent: the answer must not wait for the body.
    let raw = one_response(
        &server,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    assert_eq!(raw.status, 413);
    assert_eq!(raw.header("connection"), Some("close"));
    // Lengths tiny_http would try to allocate at once when dropping the request (1 TiB aborts
    // the process, usize::MAX panics): refused, and the server keeps serving.
    for length in ["1099511627776", "18446744073709551615"] {
        let raw = one_response(
            &server,
            &format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"),
        );
        assert_eq!(raw.status, 413, "Content-Length: {length}");
        assert_eq!(raw.header("content-length"), Some("0"));
    }
    assert_eq!(common::get(&server, "/hello"), (200, "hello".to_string()));
}

#[test]
fn chunked_body_over_the_limit_gets_413_and_one_within_it_is_decoded() {
    let server = start_with(tiny().max_body_bytes(10), echo_app);
    let raw = one_response(
        &server,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n",
    );
    assert_eq!(raw.status, 413);
    assert_eq!(raw.header("connection"), Some("close"));
    let raw = one_response(
        &server,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;ext=1\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!((raw.status, raw.text()), (200, "hello".to_string()));
}

#[test]
fn ambiguous_framing_is_refused_and_the_client_asked_to_close() {
    let server = start_with(tiny(), echo_app);
    let cases = [
        // Both framings: tiny_http alone would use chunked and keep the connection.
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "0\r\n\r\n",
            400,
        ),
        // tiny_http applies chunked decoding to any Transfer-Encoding value.
        ("Transfer-Encoding: gzip\r\n", "", 400),
        // tiny_http reads `+5` as 5.
        ("Content-Length: +5\r\n", "hello", 400),
        ("Content-Length: 5, 5\r\n", "hello", 400),
    ];
    for (headers, body, status) in cases {
        let raw = one_response(
            &server,
            &format!("POST /echo HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}"),
        );
        assert_eq!(raw.status, status, "{headers:?}");
        assert_eq!(raw.header("connection"), Some("close"), "{headers:?}");
    }
    let no_host = one_response(&server, "GET /hello HTTP/1.1\r\n\r\n");
    assert_eq!(no_host.status, 400);
}

#[test]
fn head_limits_apply_after_tiny_http_has_read_the_head() {
    let server = start_with(tiny(), echo_app);
    let big = format!(
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let raw = one_response(&server, &big);
    assert_eq!(raw.status, 431);
    assert_eq!(raw.header("connection"), Some("close"));
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = start_with(tiny(), echo_app);
    let mut stream = connect(server.local_addr());
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_one_response(&mut stream, true).status, 100);
    stream.write_all(b"data").unwrap();
    assert_eq!(read_one_response(&mut stream, false).text(), "data");
}

#[test]
fn a_client_that_stops_reading_releases_the_response_after_the_write_timeout() {
    let (returned_tx, returned_rx) = mpsc::channel();
    let server = {
        let returned = Mutex::new(returned_tx);
        start_with(
            tiny()
                .write_timeout(Duration::from_millis(300))
                .drain_timeout(Duration::from_secs(60)),
            move || {
                Router::new().get("/big", move |_req| {
                    let returned = returned.lock().unwrap().clone();
                    async move {
                        let body = offload(|| vec![b'x'; 32 * 1024 * 1024]).await?;
                        returned.send(()).unwrap();
                        Ok::<_, steadyloop::Error>(Response::bytes(body))
                    }
                })
            },
        )
    };
    // Ask for 32 MiB and never read: the socket buffers fill and the write stalls.
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    returned_rx.recv().unwrap();
    // A graceful shutdown waits for the response; without the send timeout the write would
    // block until the 60 s drain deadline.
    let start = Instant::now();
    server.shutdown().unwrap();
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(10), "shutdown took {waited:?}");
    drop(stream);
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        start_with(tiny(), move || held_route(Router::new(), started_tx, gate))
    };
    let addr = server.local_addr();
    let held = spawn_get(common::url(&server, "/held"));
    started_rx.recv().unwrap();
    let stopper = thread::spawn(move || server.shutdown());
    gate.wait();
    assert_eq!(held.join().unwrap().1, "done");
    stopper.join().unwrap().unwrap();
    let refused = TcpStream::connect(addr).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn bodies_held_at_once_are_bounded_by_max_body_memory() {
    let (started_tx, started_rx) = mpsc::channel::<usize>();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        start_with(tiny().max_body_memory(100), move || {
            let started = Mutex::new(started_tx);
            Router::new().post("/hold", move |req: Request| {
                let started = started.lock().unwrap().clone();
                let gate = gate.clone();
                async move {
                    offload(move || {
                        started.send(req.body().len()).unwrap();
                        gate.wait();
                        Response::text(format!("{}\n", req.body().len()))
                    })
                    .await
                }
            })
        })
    };
    let addr = server.local_addr();
    let post = || {
        let mut stream = connect(addr);
        let body = "x".repeat(80);
        let request = format!(
            "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 80\r\nConnection: close\r\n\r\n{body}"
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream
    };
    // Every wait has a deadline: a refused third body fails the test instead of hanging it.
    let started = || started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut first = post();
    assert_eq!(started(), 80);
    let mut second = post();
    assert_eq!(read_one_response(&mut second, false).status, 503);
    gate.wait();
    assert_eq!(read_one_response(&mut first, false).text(), "80\n");
    let mut third = post();
    assert_eq!(started(), 80);
    gate.wait();
    assert_eq!(read_one_response(&mut third, false).text(), "80\n");
}

#[test]
fn head_rules_shared_with_the_native_codec_give_the_same_answers() {
    let server = start_with(tiny(), echo_app);
    for (request, status) in [
        // A final coding other than chunked: 400, as on the native front end.
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
            400,
        ),
        // An unknown coding before a final chunked: 501.
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        // A space inside the target: 400, not 505.
        ("GET /foo bar/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ] {
        let raw = one_response(&server, request);
        assert_eq!(raw.status, status, "{request:?}");
    }
}
