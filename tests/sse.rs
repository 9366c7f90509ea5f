//! Server-sent events over a real socket: the encoding on the wire, keep-alives while the
//! producer is quiet, a client that stops reading is cut off, `Last-Event-ID`, the broadcast
//! helper with a slow client, and streams that end at once when a graceful shutdown starts.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{builder, connect, start_with};
use steadyloop::sse::{self, Broadcast, Event};
use steadyloop::{Config, Request, Response, Router, ServerHandle};

/// A server whose write timeout (and so keep-alive interval) is `write_timeout`.
fn serve(write_timeout: Duration, app: impl FnOnce() -> Router + Send + 'static) -> ServerHandle {
    let mut config = Config::default();
    config.write_timeout = write_timeout;
    config.drain_timeout = Duration::from_secs(20);
    start_with(builder().config(config).addr("127.0.0.1:0"), app)
}

/// Opens `path` as an event stream and returns the socket after the response head.
fn open(server: &ServerHandle, path: &str, extra: &str) -> (TcpStream, String) {
    let mut stream = connect(server.local_addr());
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

/// Reads from `stream` until `needle` appears in the de-chunked text, or panics after 10 s.
fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in {seen:?}");
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "stream closed before {needle:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn events_are_encoded_and_quiet_streams_get_keep_alives() {
    let (tx, rx) = mpsc::channel::<sse::EventSender>();
    let tx = std::sync::Mutex::new(tx);
    let server = serve(Duration::from_millis(300), move || {
        Router::new().get("/events", move |_req| {
            let (events, response) = sse::channel(4);
            tx.lock().unwrap().send(events).unwrap();
            async move { response }
        })
    });
    let (mut stream, head) = open(&server, "/events", "");
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");
    assert!(head.contains("Cache-Control: no-cache"), "{head}");
    let events = rx.recv().unwrap();
    events
        .send_blocking(Event::data("one\ntwo").event("reading").id("7"))
        .unwrap();
    let mut seen = String::new();
    read_until(
        &mut stream,
        &mut seen,
        "event: reading\nid: 7\ndata: one\ndata: two\n\n",
    );
    // The producer says nothing for several write timeouts: the stream stays open and the
    // server sends comment keep-alives meanwhile.
    let quiet_until = Instant::now() + Duration::from_millis(1200);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while Instant::now() < quiet_until {
        if let Ok(n) = stream.read(&mut buf) {
            assert!(n > 0, "the quiet stream was closed");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let keep_alives = seen.matches("\r\n:\n\n\r\n").count();
    assert!(keep_alives >= 2, "{keep_alives} keep-alives in {seen:?}");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    events.send_blocking(Event::data("still here")).unwrap();
    read_until(&mut stream, &mut seen, "data: still here\n\n");
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let (done_tx, done_rx) = mpsc::channel::<Duration>();
    let done_tx = std::sync::Mutex::new(done_tx);
    let server = serve(Duration::from_millis(500), move || {
        Router::new().get("/flood", move |_req| {
            let (events, response) = sse::channel(2);
            let done = done_tx.lock().unwrap().clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let big = "x".repeat(64 * 1024);
                while events.send_blocking(Event::data(big.clone())).is_ok() {}
                let _ = done.send(start.elapsed());
            });
            async move { response }
        })
    });
    // Open the stream and never read: socket buffers fill, the write stalls, the server gives
    // up after the write timeout and the producer's sends fail.
    let (_stream, _) = open(&server, "/flood", "");
    let took = done_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the producer learns the client is gone");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn last_event_id_reaches_the_handler() {
    let server = serve(Duration::from_secs(5), || {
        Router::new().get("/resume", |req: Request| async move {
            let from = sse::last_event_id(&req).unwrap_or("none").to_string();
            let (events, response) = sse::channel(1);
            std::thread::spawn(move || {
                let _ = events.send_blocking(Event::data(format!("resuming after {from}")));
            });
            response
        })
    });
    let (mut stream, _) = open(&server, "/resume", "Last-Event-ID: 41\r\n");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "data: resuming after 41\n\n");
}

#[test]
fn broadcast_drops_a_slow_client_without_slowing_the_others() {
    let hub = Broadcast::new(4);
    let subscribe = hub.clone();
    let server = serve(Duration::from_secs(5), move || {
        Router::new().get("/live", move |_req| {
            let response = subscribe.subscribe();
            async move { response }
        })
    });
    let (mut fast, _) = open(&server, "/live", "");
    let (_slow, _) = open(&server, "/live", "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.client_count() < 2 {
        assert!(Instant::now() < deadline, "clients did not subscribe");
        std::thread::yield_now();
    }
    // The fast client reads every event as it comes; the slow one never reads. Big events
    // fill the slow client's socket buffers and then its 4-event buffer.
    let big = "y".repeat(32 * 1024);
    let mut seen = String::new();
    let mut buf = vec![0u8; 256 * 1024];
    fast.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    for i in 0..200 {
        hub.send(&Event::data(format!("{i} {big}")).id(i.to_string()));
        loop {
            match fast.read(&mut buf) {
                Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
        if hub.dropped_count() > 0 && i > 20 {
            break;
        }
    }
    assert_eq!(hub.dropped_count(), 1, "the slow client is dropped");
    assert_eq!(hub.client_count(), 1, "the fast client stays");
    fast.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    hub.send(&Event::data("last").id("last"));
    read_until(&mut fast, &mut seen, "id: last\ndata: last\n\n");
}

#[test]
fn open_streams_end_at_once_when_shutdown_starts() {
    let (tx, rx) = mpsc::channel::<sse::EventSender>();
    let tx = std::sync::Mutex::new(tx);
    let server = serve(Duration::from_secs(5), move || {
        Router::new().get("/events", move |_req| {
            let (events, response) = sse::channel(4);
            tx.lock().unwrap().send(events).unwrap();
            async move { response }
        })
    });
    let (mut stream, _) = open(&server, "/events", "");
    let events = rx.recv().unwrap();
    events.send_blocking(Event::data("hello")).unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "data: hello\n\n");
    // The drain deadline is 20 s; the open stream must not hold it.
    common::shut_down_promptly(server);
    // The stream ended cleanly: the final chunk arrived before the close.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    seen.push_str(&String::from_utf8_lossy(&rest));
    assert!(seen.ends_with("0\r\n\r\n"), "{seen:?}");
    assert!(events.is_closed());
}

#[test]
fn a_response_can_also_be_built_by_hand() {
    // Event::to_bytes is public, so a whole-body response of events works too (for tests).
    let server = serve(Duration::from_secs(5), || {
        Router::new().get("/once", |_req| async {
            Response::new(200)
                .with_header("Content-Type", "text/event-stream")
                .with_body(Event::data("x").to_bytes())
        })
    });
    let (status, body) = common::get(&server, "/once");
    assert_eq!((status, body.as_str()), (200, "data: x\n\n"));
}

/// The tiny_http front end writes keep-alives and ends streams at shutdown too.
#[cfg(feature = "tiny_http")]
#[test]
fn tiny_http_keeps_quiet_streams_alive_and_ends_them_at_shutdown() {
    let mut config = Config::default();
    config.write_timeout = Duration::from_millis(300);
    config.drain_timeout = Duration::from_secs(20);
    let (tx, rx) = mpsc::channel::<sse::EventSender>();
    let tx = std::sync::Mutex::new(tx);
    let server = start_with(
        builder()
            .config(config)
            .addr("127.0.0.1:0")
            .frontend(steadyloop::Frontend::TinyHttp),
        move || {
            Router::new().get("/events", move |_req| {
                let (events, response) = sse::channel(4);
                tx.lock().unwrap().send(events).unwrap();
                async move { response }
            })
        },
    );
    let (mut stream, _) = open(&server, "/events", "");
    let events = rx.recv().unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, ":\n\n\r\n3\r\n:\n\n");
    events.send_blocking(Event::data("after quiet")).unwrap();
    read_until(&mut stream, &mut seen, "data: after quiet\n\n");
    common::shut_down_promptly(server);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    seen.push_str(&String::from_utf8_lossy(&rest));
    assert!(seen.ends_with("0\r\n\r\n"), "{seen:?}");
}
