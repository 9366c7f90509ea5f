//! Response safety: header values set by handlers cannot split a response, `Connection: close`
//! from a handler is honoured, and `Date` and `Content-Length` are right for every kind of
//! response, including HEAD, 204 and 304.

mod common;

use std::io::Write;

use common::{connect, parse_one, read_response, read_until_close, start, Calls};
use steadyloop::{Response, Router};

fn app() -> Router {
    Router::new()
        .get("/hello", |_req| async { "hello" })
        .get("/inject", |_req| async {
            Response::text("x").with_header("X-Note", "a\r\nSet-Cookie: evil=1")
        })
        .get("/inject-lf", |_req| async {
            Response::text("x").with_header("X-Note", "a\nSet-Cookie: evil=1")
        })
        .get("/inject-nul", |_req| async {
            Response::text("x").with_header("X-Note", "a\0b")
        })
        .get("/bad-name", |_req| async {
            Response::text("x").with_header("Set-Cookie: evil=1\r\nX", "v")
        })
        .get("/bad-status", |_req| async {
            Response::text("x").with_status(101)
        })
        .get("/close", |_req| async {
            Response::text("bye").with_header("Connection", "close")
        })
        .get("/close-list", |_req| async {
            Response::text("bye").with_header("Connection", "Keep-Alive, Close")
        })
        .get("/owned", |_req| async {
            Response::text("hello")
                .with_header("Content-Length", "999")
                .with_header("Transfer-Encoding", "chunked")
                .with_header("Date", "yesterday")
        })
        .get("/no-content", |_req| async {
            Response::text("ignored body").with_status(204)
        })
        .get("/not-modified", |_req| async {
            Response::text("ignored body")
                .with_status(304)
                .with_header("ETag", "\"v1\"")
        })
        .get("/stream", |_req| async {
            let (tx, response) = Response::channel(2);
            steadyloop::offload(move || {
                for part in ["one ", "two ", "three"] {
                    if tx.send_blocking(part).is_err() {
                        break;
                    }
                }
            })
            .detach();
            response
        })
}

/// Sends `request` on a new connection and returns everything until the close.
fn conversation(addr: std::net::SocketAddr, request: &str) -> String {
    String::from_utf8_lossy(&common::exchange(addr, request.as_bytes())).into_owned()
}

/// Checks that `value` is an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn assert_imf_fixdate(value: &str) {
    let b = value.as_bytes();
    let ok = b.len() == 29
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&value[..3])
        && &value[3..5] == ", "
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b' '
        && [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .contains(&&value[8..11])
        && b[11] == b' '
        && b[12..16].iter().all(u8::is_ascii_digit)
        && b[16] == b' '
        && b[17..19].iter().all(u8::is_ascii_digit)
        && b[19] == b':'
        && b[20..22].iter().all(u8::is_ascii_digit)
        && b[22] == b':'
        && b[23..25].iter().all(u8::is_ascii_digit)
        && &value[25..] == " GMT";
    assert!(ok, "not an IMF-fixdate: {value:?}");
}

#[test]
fn header_values_with_cr_lf_or_nul_become_500_and_are_never_sent() {
    let server = start(app);
    for path in [
        "/inject",
        "/inject-lf",
        "/inject-nul",
        "/bad-name",
        "/bad-status",
    ] {
        let text = conversation(
            server.local_addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{path}: {text:?}"
        );
        assert!(!text.contains("evil"), "{path}: {text:?}");
        assert!(!text.contains("X-Note"), "{path}: {text:?}");
        let responses = common::parse_responses(text.as_bytes());
        assert_eq!(responses.len(), 1, "{path}");
    }
}

#[test]
fn connection_close_from_a_handler_is_sent_and_honoured() {
    let calls = Calls::default();
    let routes = calls.clone();
    let server = common::start_with(common::builder(), move || {
        common::counted(app(), "/canary", &routes)
    });
    for path in ["/close", "/close-list"] {
        let text = conversation(
            server.local_addr(),
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /canary HTTP/1.1\r\nHost: x\r\n\r\n"
            ),
        );
        let responses = common::parse_responses(text.as_bytes());
        assert_eq!(responses.len(), 1, "{path}: {text:?}");
        assert_eq!(responses[0].text(), "bye");
        assert_eq!(responses[0].header("connection"), Some("close"));
        assert_eq!(
            text.matches("Connection:").count(),
            1,
            "{path}: one Connection header: {text:?}"
        );
    }
    assert_eq!(
        calls.count(),
        0,
        "a request after Connection: close was served"
    );
}

#[test]
fn server_owned_headers_are_the_servers_own() {
    let server = start(app);
    let text = conversation(
        server.local_addr(),
        "GET /owned HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let responses = common::parse_responses(text.as_bytes());
    assert_eq!(responses.len(), 1);
    let raw = &responses[0];
    assert_eq!(raw.text(), "hello");
    assert_eq!(raw.header("content-length"), Some("5"));
    assert_eq!(raw.header("transfer-encoding"), None);
    assert_imf_fixdate(raw.header("date").expect("Date"));
    assert_eq!(text.matches("Date:").count(), 1);
}

#[test]
fn head_204_and_304_have_right_framing_and_the_connection_stays_usable() {
    let server = start(app);
    let mut stream = connect(server.local_addr());
    // Everything pipelined: if any response carried body bytes it should not, the responses
    // after it would not parse.
    stream
        .write_all(
            b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /no-content HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /not-modified HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let bytes = read_until_close(&mut stream);
    let mut rest = &bytes[..];
    let mut next = |head_only: bool| {
        let (raw, used) = parse_one(rest, head_only).expect("a response");
        rest = &rest[used..];
        assert_imf_fixdate(raw.header("date").expect("Date on every response"));
        raw
    };
    let head = next(true);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("5"))
    );
    let no_content = next(false);
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("content-length"), None);
    assert_eq!(no_content.header("transfer-encoding"), None);
    let not_modified = next(false);
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));
    assert_eq!(not_modified.header("transfer-encoding"), None);
    let head_stream = next(true);
    assert_eq!(head_stream.header("transfer-encoding"), Some("chunked"));
    let head_404 = next(true);
    assert_eq!(head_404.status, 404);
    let last = next(false);
    assert_eq!(last.text(), "hello");
    assert!(
        rest.is_empty(),
        "stray bytes: {:?}",
        String::from_utf8_lossy(rest)
    );
}

#[test]
fn streamed_bodies_are_chunked_for_http11_and_close_delimited_for_http10() {
    let server = start(app);
    let mut stream = connect(server.local_addr());
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let raw = read_response(&mut stream, &mut Vec::new(), false);
    assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
    assert_eq!(raw.text(), "one two three");
    let text = conversation(
        server.local_addr(),
        "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let responses = common::parse_responses(text.as_bytes());
    assert_eq!(responses[0].header("connection"), Some("close"));
    assert_eq!(responses[0].header("transfer-encoding"), None);
    assert_eq!(responses[0].text(), "one two three");
}
