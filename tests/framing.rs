//! Request framing that cannot be smuggled: every malformed or ambiguous request is answered with
//! the right status and the connection closes, so nothing pipelined after it is ever served.
//!
//! Each case is sent on its own connection, followed by a pipelined canary request to a route
//! that counts its calls. The malformed request itself also targets a counted route, so a case
//! that was wrongly accepted shows up in the count too.

mod common;

use std::io::Write;

use common::{connect, counted, read_until_close, start_with, status_line, Calls};

/// The request pipelined after every malformed one; it must never be served.
const CANARY: &str = "GET /canary HTTP/1.1\r\nHost: x\r\n\r\n";

/// Body limit of the test server, so 413 cases stay small.
const BODY_LIMIT: usize = 1024;

/// Head limit of the test server.
const HEAD_LIMIT: usize = 4096;

/// A malformed request and the status it must get.
struct Case {
    /// What the case shows.
    name: &'static str,
    /// The raw request.
    request: Vec<u8>,
    /// The expected status line.
    status: &'static str,
}

/// Builds a case from text.
fn case(name: &'static str, request: impl Into<Vec<u8>>, status: u16) -> Case {
    let status = match status {
        400 => "HTTP/1.1 400 Bad Request",
        413 => "HTTP/1.1 413 Content Too Large",
        414 => "HTTP/1.1 414 URI Too Long",
        417 => "HTTP/1.1 417 Expectation Failed",
        431 => "HTTP/1.1 431 Request Header Fields Too Large",
        501 => "HTTP/1.1 501 Not Implemented",
        505 => "HTTP/1.1 505 HTTP Version Not Supported",
        other => panic!("no status line for {other}"),
    };
    Case {
        name,
        request: request.into(),
        status,
    }
}

/// A POST to the counted route with `headers` (each ending in CRLF) and `body`.
fn post(headers: &str, body: &str) -> String {
    format!("POST /target HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}")
}

/// A chunked POST with `body` as its (malformed) chunked body.
fn chunked(body: &str) -> String {
    post("Transfer-Encoding: chunked\r\n", body)
}

/// A GET to the counted route with extra `headers` (each ending in CRLF).
fn get(headers: &str) -> String {
    format!("GET /target HTTP/1.1\r\nHost: x\r\n{headers}\r\n")
}

/// Every framing rule of DESIGN.md (RFC 9112 §2–3, §5–7), with the status it gets.
fn cases() -> Vec<Case> {
    let mut cases = vec![
        // Content-Length and Transfer-Encoding together, in either order.
        case(
            "CL then TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        case(
            "TE then CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        case(
            "CL 0 with TE",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        // Conflicting Content-Length values, in one field or two.
        case(
            "two differing CL fields",
            post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"),
            400,
        ),
        case(
            "differing CL list",
            post("Content-Length: 3, 4\r\n", "abcd"),
            400,
        ),
        // Transfer codings: chunked must be present, once, and last; without a final chunked
        // coding the length is unknown, which is 400 and close (RFC 9112 §6.3).
        case(
            "TE gzip only",
            post("Transfer-Encoding: gzip\r\n", "abc"),
            400,
        ),
        case(
            "TE identity",
            post("Transfer-Encoding: identity\r\n", "abc"),
            400,
        ),
        case(
            "TE chunked then gzip",
            post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
            400,
        ),
        case(
            "TE chunked twice in one field",
            post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
            400,
        ),
        case(
            "TE chunked in two fields",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        case(
            "TE chunked then another field",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        case(
            "TE empty",
            post("Transfer-Encoding: \r\n", "0\r\n\r\n"),
            400,
        ),
        case(
            "TE quoted chunked",
            post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"),
            400,
        ),
        case(
            "TE xchunked",
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
            400,
        ),
        case(
            "TE in HTTP/1.0",
            "POST /target HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        // Chunk sizes: hex only, bounded, no overflow; lines end with CRLF.
        case(
            "chunk size not hex",
            chunked("zz\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        case(
            "chunk size negative",
            chunked("-5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        case(
            "chunk size with 0x",
            chunked("0x5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        case(
            "chunk size with +",
            chunked("+5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        case("chunk size empty", chunked("\r\nhello\r\n0\r\n\r\n"), 400),
        case(
            "chunk size over 16 digits",
            chunked("00000000000000005\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        // A size past the body limit is refused as soon as its digits say so, before any
        // overflow could happen (with no limit, the 17th digit is refused as too long).
        case(
            "chunk size overflowing u64",
            chunked("1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            413,
        ),
        case(
            "chunk size u64::MAX",
            chunked("ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            413,
        ),
        case(
            "chunk size two numbers",
            chunked("5 5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        case("chunk size bare LF", chunked("5\nhello\r\n0\r\n\r\n"), 400),
        case(
            "chunk data too long",
            chunked("5\r\nhelloXX\r\n0\r\n\r\n"),
            400,
        ),
        case("chunk data bare LF", chunked("5\r\nhello\n0\r\n\r\n"), 400),
        case(
            "chunks over the body limit",
            chunked(&format!("200\r\n{}\r\n", "a".repeat(512)).repeat(3)),
            413,
        ),
        // Chunk extensions and trailers are bounded.
        case(
            "unbounded chunk extension",
            chunked(&format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000))),
            400,
        ),
        case(
            "unbounded trailer section",
            chunked(&format!("0\r\nX: {}\r\n\r\n", "t".repeat(HEAD_LIMIT + 10))),
            431,
        ),
        case(
            "too many trailers",
            chunked(&format!("0\r\n{}\r\n", "T: v\r\n".repeat(101))),
            431,
        ),
        case(
            "folded trailer",
            chunked("0\r\nT: v\r\n folded\r\n\r\n"),
            400,
        ),
        case("trailer without colon", chunked("0\r\nT\r\n\r\n"), 400),
        // Content-Length must be 1*DIGIT.
        case("CL empty", post("Content-Length: \r\n", ""), 400),
        case("CL letters", post("Content-Length: abc\r\n", ""), 400),
        case("CL negative", post("Content-Length: -1\r\n", ""), 400),
        case("CL plus sign", post("Content-Length: +5\r\n", "hello"), 400),
        case("CL hex", post("Content-Length: 0x5\r\n", "hello"), 400),
        case(
            "CL two numbers",
            post("Content-Length: 5 5\r\n", "hello"),
            400,
        ),
        case(
            "CL decimal point",
            post("Content-Length: 5.0\r\n", "hello"),
            400,
        ),
        case(
            "CL empty list item",
            post("Content-Length: 5,\r\n", "hello"),
            400,
        ),
        case(
            "CL overflowing u64",
            post("Content-Length: 18446744073709551616\r\n", ""),
            400,
        ),
        // A huge but valid Content-Length is refused before any of it is read or allocated.
        case(
            "CL one TiB",
            post("Content-Length: 1099511627776\r\n", ""),
            413,
        ),
        case(
            "CL u64::MAX",
            post("Content-Length: 18446744073709551615\r\n", ""),
            413,
        ),
        case(
            "CL over the body limit",
            post(&format!("Content-Length: {}\r\n", BODY_LIMIT + 1), ""),
            413,
        ),
        // Header syntax.
        case("obs-fold with space", get("X-A: a\r\n b\r\n"), 400),
        case("obs-fold with tab", get("X-A: a\r\n\tb\r\n"), 400),
        case(
            "obs-fold of Transfer-Encoding",
            post("Transfer-Encoding: gzip,\r\n chunked\r\n", "0\r\n\r\n"),
            400,
        ),
        case("space before colon", get("X-A : b\r\n"), 400),
        case("tab before colon", get("X-A\t: b\r\n"), 400),
        case(
            "space before colon in TE",
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
            400,
        ),
        case(
            "space before colon in CL",
            post("Content-Length : 5\r\n", "hello"),
            400,
        ),
        case("header without colon", get("X-A b\r\n"), 400),
        case("empty header name", get(": b\r\n"), 400),
        case("header name with (", get("X(A: b\r\n"), 400),
        case("NUL in value", get("X-A: a\0b\r\n"), 400),
        case("CR in value", get("X-A: a\rb\r\n"), 400),
        case("LF in value", get("X-A: a\nb\r\n"), 400),
        case("control byte in value", get("X-A: a\x01b\r\n"), 400),
        case("DEL in value", get("X-A: a\x7fb\r\n"), 400),
        case(
            "missing Host",
            "GET /target HTTP/1.1\r\nX-A: b\r\n\r\n",
            400,
        ),
        case("repeated Host", get("Host: y\r\n"), 400),
        case(
            "repeated HTTP/1.0 Host",
            "GET /target HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        case(
            "Host with a space",
            "GET /target HTTP/1.1\r\nHost: a b\r\n\r\n",
            400,
        ),
        case(
            "Host with a path",
            "GET /target HTTP/1.1\r\nHost: a/b\r\n\r\n",
            400,
        ),
        case(
            "Host with userinfo",
            "GET /target HTTP/1.1\r\nHost: u@a\r\n\r\n",
            400,
        ),
        // Line endings: CRLF only (bare LF is refused, see the README).
        case(
            "bare LF everywhere",
            "GET /target HTTP/1.1\nHost: x\n\n",
            400,
        ),
        case(
            "bare LF after the request line",
            "GET /target HTTP/1.1\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "bare LF ending the head",
            "GET /target HTTP/1.1\r\nHost: x\r\n\n",
            400,
        ),
        case(
            "bare CR ending a line",
            "GET /target HTTP/1.1\rHost: x\r\n\r\n",
            400,
        ),
        case(
            "leading bare LF",
            "\nGET /target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        // Request lines.
        case(
            "two spaces after the method",
            "GET  /target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "tab as separator",
            "GET\t/target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "leading space",
            " GET /target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "trailing space",
            "GET /target HTTP/1.1 \r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "method with (",
            "G(T /target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case("no target", "GET HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        case("no version", "GET /target\r\nHost: x\r\n\r\n", 400),
        case(
            "relative target",
            "GET target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "non-ASCII target",
            "GET /t\u{e9}rget HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case("asterisk for GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        case(
            "absolute URI without host",
            "GET http:///target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "absolute URI with another scheme",
            "GET ftp://x/target HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "CONNECT",
            "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            501,
        ),
        case(
            "lowercase version",
            "GET /target http/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "garbage version",
            "GET /target FOO/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "long version",
            "GET /target HTTP/1.10\r\nHost: x\r\n\r\n",
            400,
        ),
        // A space inside the target makes the line malformed, whatever version ends it.
        case(
            "space in the target",
            "GET /foo bar/ HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "space in the target before a bad version",
            "GET /target bar HTTP/2.0\r\nHost: x\r\n\r\n",
            400,
        ),
        case("HTTP/2.0", "GET /target HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        case("HTTP/1.2", "GET /target HTTP/1.2\r\nHost: x\r\n\r\n", 505),
        case("HTTP/0.9", "GET /target HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        case("HTTP/3.0", "GET /target HTTP/3.0\r\nHost: x\r\n\r\n", 505),
        case(
            "binary garbage",
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            400,
        ),
        // Sizes.
        case(
            "over-long target",
            format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(HEAD_LIMIT + 10)
            ),
            414,
        ),
        case(
            "over-long head",
            get(&format!("X-A: {}\r\n", "a".repeat(HEAD_LIMIT + 10))),
            431,
        ),
        case(
            "too many header fields",
            get(&"X-A: b\r\n".repeat(100)),
            431,
        ),
        // Expectations other than 100-continue.
        case(
            "unknown expectation",
            post("Expect: tea\r\nContent-Length: 1\r\n", "x"),
            417,
        ),
    ];
    // Chunk-size lines follow RFC 9112 §7.1.1 exactly: no extension without a name, no
    // unbalanced quoted string, no whitespace after the size unless a `;` follows.
    for (name, line) in [
        ("chunk extension without a name", "2;"),
        ("chunk extension ;; without a name", "2;;a"),
        ("unbalanced quoted chunk extension", "5;a=\"abc"),
        (
            "unbalanced quote after a good extension",
            "5;a=\"abc\";b=\"def; ghi",
        ),
        ("space after the chunk size", "a "),
        ("tab after the chunk size", "a\t"),
        ("space after a chunk extension value", "2;a=b "),
        ("words after the chunk size", "2 erfrferferf"),
    ] {
        cases.push(case(
            name,
            chunked(&format!("{line}\r\n0123456789\r\n0\r\n\r\n")),
            400,
        ));
    }
    cases.push(case(
        "TE gzip in a second field after chunked",
        post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "0\r\n\r\n",
        ),
        400,
    ));
    cases.push(case(
        "TE gzip then chunked is unsupported",
        post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        501,
    ));
    // A body the route would read holds a request; the framing error stops it too.
    cases.push(case(
        "smuggled request in a bad chunk",
        chunked(&format!("5\r\nhello\r\nzz\r\n{CANARY}")),
        400,
    ));
    cases
}

#[test]
fn malformed_requests_get_their_status_and_close_and_nothing_after_them_is_served() {
    let calls = Calls::default();
    let routes = calls.clone();
    let server = start_with(
        common::builder()
            .max_body_bytes(BODY_LIMIT)
            .max_head_bytes(HEAD_LIMIT),
        move || {
            let router = counted(steadyloop::Router::new(), "/canary", &routes);
            counted(router, "/target", &routes)
        },
    );
    let mut failures = Vec::new();
    for case in cases() {
        let mut stream = connect(server.local_addr());
        let mut bytes = case.request.clone();
        bytes.extend_from_slice(CANARY.as_bytes());
        // The server may close before reading all of it; a failed write is part of that.
        let _ = stream.write_all(&bytes);
        let reply = read_until_close(&mut stream);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let responses = text.matches("HTTP/1.1 ").count();
        let line = status_line(&reply);
        if line != case.status
            || responses != 1
            || !text.contains("\r\nConnection: close\r\n")
            || calls.count() != 0
        {
            failures.push(format!(
                "{}: expected {:?}, got {} response(s), {} call(s): {text:?}",
                case.name,
                case.status,
                responses,
                calls.count()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The server still serves well-formed requests.
    let reply = common::exchange(
        server.local_addr(),
        b"GET /canary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&reply), "HTTP/1.1 200 OK");
    assert_eq!(calls.count(), 1);
}

#[test]
fn well_formed_variants_are_accepted() {
    let calls = Calls::default();
    let routes = calls.clone();
    let server = start_with(common::builder(), move || {
        counted(steadyloop::Router::new(), "/target", &routes)
    });
    let accepted = [
        // Identical Content-Length values are one value (RFC 9110 §8.6).
        post("Content-Length: 5, 5\r\n", "hello"),
        post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        post("Content-Length: 005\r\n", "hello"),
        // Codings and tokens are case-insensitive; whitespace around values is optional.
        post("Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        post(
            "Transfer-Encoding:\tchunked \r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        // Chunk extensions (with BWS before `;`), upper-case hex and trailers are fine.
        post(
            "Transfer-Encoding: chunked\r\n",
            "5 ;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
        ),
        // Every form of the chunk-extension grammar: BWS around `;` and `=`, token and
        // quoted values, quoted-pairs (RFC 9112 §7.1.1).
        post(
            "Transfer-Encoding: chunked\r\n",
            "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n",
        ),
        post(
            "Transfer-Encoding: chunked\r\n",
            "5;a=\"I \\\"q\\\" ;x=y\";b\r\nhello\r\n0\r\n\r\n",
        ),
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        format!("\r\n\r\n{}", get("")),
        // Absolute-form is accepted and reduced to the path.
        "GET http://example.com/target HTTP/1.1\r\nHost: example.com\r\n\r\n".to_string(),
        "GET HTTP://EXAMPLE.COM/target?q HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        // HTTP/1.0 needs no Host.
        "GET /target HTTP/1.0\r\n\r\n".to_string(),
        // obs-text in values is passed through.
        get("X-A: caf\u{e9}\r\n"),
        get("Host-Extra: y\r\n"),
    ];
    for (i, request) in accepted.iter().enumerate() {
        let mut stream = connect(server.local_addr());
        stream.write_all(request.as_bytes()).unwrap();
        let mut pending = Vec::new();
        let raw = common::read_response(&mut stream, &mut pending, false);
        assert_eq!(raw.status, 200, "{request:?}: {raw:?}");
        assert_eq!(raw.text(), "/target", "{request:?}");
        assert_eq!(calls.count(), i + 1, "{request:?}");
    }
}

/// An echo of what the server parsed: method, path, query, a header and the body.
fn echo_router() -> steadyloop::Router {
    let echo = |req: steadyloop::Request| async move {
        let summary = format!(
            "{} {} {} {}\n",
            req.method(),
            req.path(),
            req.raw_query(),
            req.header("x-probe").unwrap_or("-")
        );
        let mut body = summary.into_bytes();
        body.extend_from_slice(req.body());
        steadyloop::Response::bytes(body)
    };
    steadyloop::Router::new()
        .route("GET", "/e/*rest", echo)
        .route("POST", "/e/*rest", echo)
        .route("PUT", "/e/*rest", echo)
}

/// Serialises a request with a Content-Length or chunked body.
fn wire_request(
    method: &str,
    target: &str,
    probe: &str,
    body: &[u8],
    chunk: Option<usize>,
) -> Vec<u8> {
    let mut out =
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nX-Probe: {probe}\r\n").into_bytes();
    match chunk {
        Some(size) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(size) {
                out.extend_from_slice(format!("{:x};e\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        None => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Over a real socket, a valid request sent in arbitrary pieces (with a pipelined one after
    /// it) is answered exactly as if it had been sent in one write.
    #[test]
    fn any_split_over_a_socket_is_served_the_same(
        method in proptest::sample::select(vec!["GET", "POST", "PUT"]),
        path in "(/[a-z0-9%._~-]{0,10}){1,3}",
        query in "[a-z0-9=&%+]{0,16}",
        probe in "[!-~]([ -~]{0,20}[!-~])?",
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        chunk in proptest::option::of(1usize..700),
        cuts in proptest::collection::vec(proptest::prelude::any::<usize>(), 0..10),
    ) {
        use std::sync::OnceLock;
        static SERVER: OnceLock<steadyloop::ServerHandle> = OnceLock::new();
        let server = SERVER.get_or_init(|| start_with(common::builder(), echo_router));
        let target = format!("/e{path}?{query}");
        let mut wire = wire_request(method, &target, &probe, &body, chunk);
        wire.extend_from_slice(b"GET /e/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.extend([0, wire.len()]);
        points.sort_unstable();
        points.dedup();
        let mut stream = connect(server.local_addr());
        stream.set_nodelay(true).unwrap();
        for w in points.windows(2) {
            stream.write_all(&wire[w[0]..w[1]]).unwrap();
            stream.flush().unwrap();
        }
        let responses = common::parse_responses(&read_until_close(&mut stream));
        proptest::prop_assert_eq!(responses.len(), 2);
        let mut expected = format!("{method} /e{path} {query} {probe}\n").into_bytes();
        expected.extend_from_slice(&body);
        proptest::prop_assert_eq!(responses[0].status, 200);
        proptest::prop_assert_eq!(&responses[0].body, &expected);
        proptest::prop_assert_eq!(responses[1].text(), "GET /e/last  -\n");
    }
}

#[test]
fn a_small_body_of_an_unrouted_request_is_dropped_and_the_connection_kept() {
    let calls = Calls::default();
    let routes = calls.clone();
    let server = start_with(common::builder(), move || {
        counted(steadyloop::Router::new(), "/target", &routes)
    });
    // The body looks like a request; it is dropped unread, never served.
    let smuggled = "GET /target HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = format!(
        "PATCH /target HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}\
         POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
         GET /target HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        smuggled.len()
    );
    let responses = common::raw_responses(server.local_addr(), &request);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [405, 404, 200]);
    assert_eq!(responses[0].header("connection"), None);
    assert_eq!(calls.count(), 1);
    // A chunked or larger body still closes the connection after the answer.
    let responses = common::raw_responses(
        server.local_addr(),
        &format!(
            "PATCH /target HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\n{smuggled}"
        ),
    );
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 405);
    assert_eq!(responses[0].header("connection"), Some("close"));
    assert_eq!(calls.count(), 1);
}
