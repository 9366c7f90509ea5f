//! The HTTP/1.1 front ends, driven with raw bytes: keep-alive, pipelining, bodies, limits and
//! routing errors. Tests listed in `frontend_tests!` run on every front end compiled in; the
//! others check native hardening that tiny_http cannot offer, each with its reason.

mod common;

use std::io::Write;

use common::{connect, parse_one, raw_responses, read_until_close, start, start_on, start_with};
use steadyloop::{Frontend, Request, Response, Router};

frontend_tests!(
    keep_alive_reuses_the_connection,
    pipelined_requests_are_answered_in_order,
    unread_body_is_never_parsed_as_the_next_request,
    unknown_path_is_404_and_wrong_method_is_405_with_allow,
    options_asterisk_lists_the_methods_the_server_answers,
    head_gets_headers_without_body,
    http10_closes_unless_keep_alive_is_asked_for,
    malformed_request_gets_400_and_close,
    unsafe_response_header_becomes_500,
    streamed_body_arrives_whole_and_in_order,
    handler_connection_close_is_honoured,
);

fn echo_app() -> Router {
    Router::new()
        .get("/hello", |_req| async { "hello" })
        .get("/items/:id", |req: Request| async move {
            format!("item {}", req.param("id").unwrap_or("?"))
        })
        .post("/echo", |req: Request| async move {
            Response::bytes(req.into_body())
        })
        .post("/ignore", |_req| async { "ignored" })
}

fn keep_alive_reuses_the_connection(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let mut stream = connect(server.local_addr());
    let mut buf = Vec::new();
    for i in 0..3 {
        stream
            .write_all(format!("GET /items/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        // Read exactly one response; the connection must stay open for the next.
        let raw = loop {
            if let Some((raw, used)) = parse_one(&buf, false) {
                buf.drain(..used);
                break raw;
            }
            let mut chunk = [0u8; 1024];
            let n = std::io::Read::read(&mut stream, &mut chunk).unwrap();
            assert!(n > 0, "server closed a keep-alive connection");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert_eq!((raw.status, raw.text()), (200, format!("item {i}")));
        assert_eq!(raw.header("connection"), None);
    }
}

fn pipelined_requests_are_answered_in_order(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde\
         GET /items/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["item 1", "abcde", "item 3"]);
    assert_eq!(responses[2].header("connection"), Some("close"));
}

// Native only: tiny_http's chunked decoder refuses trailers (tests/tiny.rs covers chunked bodies without them).
#[test]
fn chunked_request_body_is_decoded() {
    let server = start(echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].text(), "hello, world");
}

fn unread_body_is_never_parsed_as_the_next_request(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    // The handler ignores the body, which looks like a request; it must not be served.
    let smuggled = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = format!(
        "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}\
         GET /items/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        smuggled.len()
    );
    let bodies: Vec<String> = raw_responses(server.local_addr(), &request)
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(bodies, ["ignored", "item after"]);
}

// Native only: tiny_http keeps the connection open after an error answer (it only asks the client to close).
#[test]
fn body_over_the_limit_gets_413_and_close() {
    let server = start_with(common::builder().max_body_bytes(10), echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890\
         GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 413);
    assert_eq!(responses[0].header("connection"), Some("close"));
    let chunked = raw_responses(
        server.local_addr(),
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n",
    );
    assert_eq!(chunked[0].status, 413);
}

// Native only: tiny_http reads heads of any size and keeps the connection open after the 431/414.
#[test]
fn oversized_head_gets_431_and_long_target_414() {
    let server = start(echo_app);
    let big_header = format!(
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let responses = raw_responses(server.local_addr(), &big_header);
    assert_eq!(responses[0].status, 431);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
    assert_eq!(
        raw_responses(server.local_addr(), &long_target)[0].status,
        414
    );
    let mut many = String::from("GET /hello HTTP/1.1\r\nHost: x\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw_responses(server.local_addr(), &many)[0].status, 431);
}

fn unknown_path_is_404_and_wrong_method_is_405_with_allow(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
         DELETE /items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses[0].status, 404);
    assert_eq!(responses[1].status, 405);
    assert_eq!(responses[1].header("allow"), Some("GET, HEAD"));
}

fn options_asterisk_lists_the_methods_the_server_answers(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses[0].status, 204);
    assert_eq!(
        responses[0].header("allow"),
        Some("GET, HEAD, OPTIONS, POST")
    );
    assert_eq!(responses[1].text(), "hello");
}

fn head_gets_headers_without_body(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let bytes = read_until_close(&mut stream);
    let (head, used) = parse_one(&bytes, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("5"));
    let (get, _) = parse_one(&bytes[used..], false).unwrap();
    assert_eq!(get.text(), "hello");
}

// Native only: tiny_http's own `100 Continue` carries extra headers (tests/tiny.rs checks it arrives first).
#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = start(echo_app);
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    std::io::Read::read_exact(&mut stream, &mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"data").unwrap();
    let responses = common::parse_responses(&read_until_close(&mut stream));
    assert_eq!(responses[0].text(), "data");
}

fn http10_closes_unless_keep_alive_is_asked_for(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "GET /hello HTTP/1.0\r\n\r\nGET /hello HTTP/1.0\r\n\r\n",
    );
    assert_eq!(
        responses.len(),
        1,
        "HTTP/1.0 without keep-alive must close after one response"
    );
    let responses = raw_responses(
        server.local_addr(),
        "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\n\r\n",
    );
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].header("connection"), Some("keep-alive"));
}

fn malformed_request_gets_400_and_close(frontend: Frontend) {
    let server = start_on(frontend, echo_app);
    let responses = raw_responses(
        server.local_addr(),
        "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 400);
}

/// Echoes `?v=` into a response header.
fn header_app() -> Router {
    Router::new().get("/echo-header", |req: Request| async move {
        let value = req.query_str("v").unwrap_or_default().to_string();
        Response::text("ok").with_header("X-Echo", value)
    })
}

fn unsafe_response_header_becomes_500(frontend: Frontend) {
    let server = start_on(frontend, header_app);
    let responses = raw_responses(
        server.local_addr(),
        "GET /echo-header?v=a%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /echo-header?v=fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].status, 500);
    assert_eq!(responses[0].header("set-cookie"), None);
    assert_eq!(responses[1].header("x-echo"), Some("fine"));
}

fn streamed_body_arrives_whole_and_in_order(frontend: Frontend) {
    let server = start_on(frontend, || {
        Router::new().get("/count", |_req| async {
            let (tx, response) = Response::channel(2);
            steadyloop::offload(move || {
                for i in 0..1000 {
                    if tx.send_blocking(format!("{i}\n")).is_err() {
                        break;
                    }
                }
            })
            .detach();
            response
        })
    });
    let expected: String = (0..1000).map(|i| format!("{i}\n")).collect();
    let responses = raw_responses(
        server.local_addr(),
        "GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses[0].header("transfer-encoding"), Some("chunked"));
    assert_eq!(responses[0].text(), expected);
    // HTTP/1.0 has no chunked encoding: the body ends with the connection.
    let responses = raw_responses(server.local_addr(), "GET /count HTTP/1.0\r\n\r\n");
    assert_eq!(responses[0].text(), expected);
    // With keep-alive, the native front end ends the body by closing; tiny_http cannot
    // close, so that front end sends it whole with a length and keeps the connection.
    let responses = raw_responses(
        server.local_addr(),
        "GET /count HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /count HTTP/1.0\r\n\r\n",
    );
    assert_eq!(responses[0].text(), expected);
}

fn handler_connection_close_is_honoured(frontend: Frontend) {
    let server = start_on(frontend, || {
        Router::new().get("/bye", |_req| async {
            Response::text("bye").with_header("Connection", "close")
        })
    });
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"GET /bye HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let raw = common::read_one_response(&mut stream, false);
    assert_eq!((raw.status, raw.text()), (200, "bye".to_string()));
    assert_eq!(raw.header("connection"), Some("close"));
}
