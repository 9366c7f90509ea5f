//! Bounded resources: the connection cap, huge declared bodies, and pipelining clients that do
//! not read.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, counted, read_response, read_until_close, start_with, status_line, Calls};
use steadyloop::{Request, Response, RouteOptions, Router};

fn app() -> Router {
    Router::new()
        .get("/hello", |_req| async { "hello" })
        .get("/n/:n", |req: Request| async move {
            format!("{}\n", req.param("n").unwrap_or("?"))
        })
        .post("/ignore", |_req| async { "ignored" })
        .post_with(
            "/unlimited",
            RouteOptions::new().body_limit(usize::MAX),
            |req: Request| async move { format!("{}\n", req.body().len()) },
        )
}

/// Sends a keep-alive `GET /hello` on `stream` and checks the answer.
fn hello(stream: &mut std::net::TcpStream) {
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let raw = read_response(stream, &mut Vec::new(), false);
    assert_eq!((raw.status, raw.text()), (200, "hello".to_string()));
}

#[test]
fn connections_over_the_cap_are_refused_and_existing_ones_keep_working() {
    let server = start_with(common::builder().max_connections(3), app);
    let addr = server.local_addr();
    let mut open: Vec<_> = (0..3).map(|_| connect(addr)).collect();
    for stream in &mut open {
        hello(stream);
    }
    // The cap is reached: a new connection gets a canned 503 and is closed.
    let mut refused = connect(addr);
    let bytes = read_until_close(&mut refused);
    assert_eq!(status_line(&bytes), "HTTP/1.1 503 Service Unavailable");
    assert!(String::from_utf8_lossy(&bytes).contains("\r\nRetry-After: 1\r\n"));
    // One that sends a request at once gets the 503 or, if the close resets it, nothing.
    let bytes = common::exchange(addr, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        bytes.is_empty() || status_line(&bytes) == "HTTP/1.1 503 Service Unavailable",
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    // Existing connections are served as before.
    for stream in &mut open {
        hello(stream);
    }
    // Closing one frees its slot (the server notices the close on its own time, so retry).
    let mut last = open.pop().unwrap();
    last.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_until_close(&mut last);
    drop(last);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = common::exchange(
            addr,
            b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if status_line(&bytes) == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
    }
}

#[test]
fn huge_declared_content_length_is_refused_without_reading_or_allocating_it() {
    let calls = Calls::default();
    let routes = calls.clone();
    let server = start_with(common::builder(), move || {
        counted(app(), "/counted", &routes)
    });
    let addr = server.local_addr();
    for length in [
        "1099511627776",
        "18446744073709551615",
        "9223372036854775808",
    ] {
        let request =
            format!("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nabc");
        let bytes = common::exchange(addr, request.as_bytes());
        assert_eq!(
            status_line(&bytes),
            "HTTP/1.1 413 Content Too Large",
            "{length}"
        );
    }
    // The server is still up and serving.
    let mut stream = connect(addr);
    hello(&mut stream);
}

#[test]
fn huge_content_length_on_an_unlimited_route_is_read_as_it_arrives_not_allocated_up_front() {
    let server = start_with(
        common::builder().body_timeout(Duration::from_millis(300)),
        app,
    );
    let addr = server.local_addr();
    // A route without a body limit takes the declared length at its word, but only buffers
    // what actually arrives: a 1 TiB allocation would abort the process instead of this 408.
    let bytes = common::exchange(
        addr,
        b"POST /unlimited HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\nabc",
    );
    assert_eq!(status_line(&bytes), "HTTP/1.1 408 Request Timeout");
    let mut stream = connect(addr);
    hello(&mut stream);
}

#[test]
fn thousands_of_pipelined_requests_are_answered_in_order() {
    const COUNT: usize = 20_000;
    let server = start_with(common::builder(), app);
    let mut stream = connect(server.local_addr());
    let mut writer = stream.try_clone().unwrap();
    // Written from another thread while this one reads: neither side waits for the other.
    let sender = thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..COUNT {
            let close = if i + 1 == COUNT {
                "Connection: close\r\n"
            } else {
                ""
            };
            batch.extend_from_slice(
                format!("GET /n/{i} HTTP/1.1\r\nHost: x\r\n{close}\r\n").as_bytes(),
            );
        }
        writer.write_all(&batch).unwrap();
    });
    let bytes = read_until_close(&mut stream);
    sender.join().unwrap();
    let responses = common::parse_responses(&bytes);
    assert_eq!(responses.len(), COUNT);
    for (i, raw) in responses.iter().enumerate() {
        assert_eq!(raw.text(), format!("{i}\n"));
    }
}

#[test]
fn pipelining_client_that_never_reads_is_closed_by_the_write_timeout() {
    // Each response is 16 KiB, so the socket buffers fill after a few hundred answers; the
    // server then stops reading requests (it handles one at a time and buffers at most one
    // head's worth of the next ones), its write stalls, and the write timeout closes the
    // connection. Requests are padded to 1 KiB so the 20,000 of them (20 MB) cannot all fit in
    // socket buffers either: the writer blocks until that close fails its write.
    const COUNT: usize = 20_000;
    let calls = Calls::default();
    let routes = calls.clone();
    let server = start_with(
        common::builder().write_timeout(Duration::from_millis(300)),
        move || {
            let calls = routes.clone();
            Router::new().get("/big", move |_req| {
                calls.hit();
                async { Response::bytes(vec![b'x'; 16 * 1024]) }
            })
        },
    );
    let stream = connect(server.local_addr());
    let mut writer = stream.try_clone().unwrap();
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let request = format!(
            "GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(1000)
        );
        for _ in 0..COUNT {
            writer.write_all(request.as_bytes())?;
        }
        Ok::<(), std::io::Error>(())
    });
    let written = sender.join().unwrap();
    assert!(
        written.is_err(),
        "all {COUNT} requests were accepted without the client reading"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    let served = calls.count();
    assert!(
        served < COUNT / 4,
        "{served} requests served to a client that never read"
    );
    // What reached the client is a prefix of whole responses, then the close.
    let mut stream = stream;
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    let complete = received
        .windows(17)
        .filter(|w| w == b"HTTP/1.1 200 OK\r\n")
        .count();
    assert!(complete <= served);
}

#[test]
fn bodies_held_across_connections_are_bounded_by_max_body_memory() {
    use std::sync::{mpsc, Arc, Barrier, Mutex};
    let (started_tx, started_rx) = mpsc::channel::<usize>();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        start_with(common::builder().max_body_memory(100), move || {
            let started = Mutex::new(started_tx);
            Router::new().post("/hold", move |req: Request| {
                let started = started.lock().unwrap().clone();
                let gate = gate.clone();
                async move {
                    // Keeps the request (and its body) in progress until the test lets go.
                    steadyloop::offload(move || {
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
    let post = |body: &str| {
        let mut stream = connect(addr);
        let request = format!(
            "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream
    };
    let body = "x".repeat(80);
    let mut first = post(&body);
    assert_eq!(started_rx.recv().unwrap(), 80);
    // 80 of the 100 bytes are held: another 80-byte body does not fit.
    let mut second = post(&body);
    let refused = read_until_close(&mut second);
    assert_eq!(status_line(&refused), "HTTP/1.1 503 Service Unavailable");
    assert!(String::from_utf8_lossy(&refused).contains("Retry-After: 1\r\n"));
    gate.wait();
    assert!(String::from_utf8_lossy(&read_until_close(&mut first)).ends_with("80\n"));
    // The first request's share was given back.
    let mut third = post(&body);
    assert_eq!(started_rx.recv().unwrap(), 80);
    gate.wait();
    assert!(String::from_utf8_lossy(&read_until_close(&mut third)).ends_with("80\n"));
}
