//! Checking a request head that tiny_http has parsed, with the native front end's rules.
//!
//! tiny_http accepts heads of any size, ambiguous framing (Transfer-Encoding with
//! Content-Length, any Transfer-Encoding value, `+5` as a length, a missing Host). The head it
//! parsed is written back out as bytes and run through the native parser, so both front ends
//! apply the same framing rules and limits; then the request is only let through if tiny_http
//! frames its body the same way the native rules do.

use std::io::Write as _;

use crate::http::h1::parse::{self, BodyKind, Reject, Scan};
use crate::http::h1::write::Exchange;
use crate::request::Request;

/// The limits a head is checked against (copied from the settings).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Largest request head, in bytes.
    pub(super) max_head_bytes: usize,
    /// Most header fields.
    pub(super) max_headers: usize,
}

/// How a checked request's body is delimited and what its response must honour.
#[derive(Debug, Clone, Copy)]
pub(super) struct Framing {
    /// The body, as both parsers agree it is delimited.
    pub(super) body: BodyKind,
    /// HEAD, HTTP/1.0 and keep-alive, for writing the response.
    pub(super) exchange: Exchange,
}

/// Checks the head of `raw` and builds our [`Request`] (without its body) from it.
///
/// # Errors
///
/// The [`Reject`] the native front end would answer with, or 400 if tiny_http would delimit
/// the body differently from the native rules.
pub(super) fn check(
    raw: &tiny_http::Request,
    limits: Limits,
) -> Result<(Request, Framing), Reject> {
    let bytes = head_bytes(raw)?;
    // The size limits apply after the fact (tiny_http has read the head already), but a head
    // over them is still refused rather than served.
    match parse::scan_head(&bytes, 0, limits.max_head_bytes)? {
        Scan::Complete(end) if end == bytes.len() => {}
        _ => return Err(parse::reject(400, "malformed request head")),
    }
    let head = parse::parse_head(bytes, limits.max_headers)?;

    // Only let a request through if tiny_http frames its body exactly as the rules above do;
    // anything else would let the two disagree about where the next request starts.
    let tiny_chunked = first_header(raw, "Transfer-Encoding").is_some();
    let tiny_length = raw.body_length().map(|n| n as u64);
    let agree = match head.body {
        BodyKind::Empty => !tiny_chunked && tiny_length.unwrap_or(0) == 0,
        BodyKind::Length(n) => !tiny_chunked && tiny_length == Some(n),
        BodyKind::Chunked => tiny_chunked,
    };
    if !agree {
        return Err(parse::reject(400, "ambiguous message framing"));
    }
    // With `Connection: upgrade`, tiny_http hands over the rest of the connection as the body,
    // whatever the framing headers say.
    let upgrade = first_header(raw, "Connection")
        .is_some_and(|value| value.to_ascii_lowercase().contains("upgrade"));
    if upgrade && head.body != BodyKind::Empty {
        return Err(parse::reject(
            400,
            "a request body with Connection: upgrade is not supported",
        ));
    }

    let mut request = head.request;
    let framing = Framing {
        body: head.body,
        exchange: Exchange {
            head_request: request.method() == "HEAD",
            http10: request.is_http10(),
            keep_alive: head.keep_alive,
        },
    };
    request.set_peer(raw.remote_addr().copied());
    Ok((request, framing))
}

/// Writes the head tiny_http parsed back out as HTTP/1.1 bytes.
///
/// Bytes that would change the line structure (CR, LF, NUL) are refused first, so the bytes
/// parse into exactly the lines tiny_http saw.
fn head_bytes(raw: &tiny_http::Request) -> Result<Vec<u8>, Reject> {
    let method = raw.method().as_str();
    let target = raw.url();
    let clean = |text: &str| text.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !clean(method) || !clean(target) {
        return Err(parse::reject(400, "malformed request line"));
    }
    let tiny_http::HTTPVersion(major, minor) = *raw.http_version();
    let mut bytes = Vec::with_capacity(256);
    let _ = write!(bytes, "{method} {target} HTTP/{major}.{minor}\r\n");
    for header in raw.headers() {
        let name = header.field.as_str().as_bytes();
        let value = header.value.as_bytes();
        let breaks_line = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
        if name.iter().any(breaks_line) || value.iter().any(breaks_line) {
            return Err(parse::reject(400, "invalid header field value"));
        }
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    Ok(bytes)
}

/// Returns the value of the first header `name`, the one tiny_http acts on.
fn first_header<'a>(raw: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    raw.headers()
        .iter()
        .find(|header| header.field.equiv(name))
        .map(|header| header.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 16 * 1024,
        max_headers: 100,
    };

    /// Builds a tiny_http request with these headers (tiny_http adds `Content-Length: 0`
    /// unless one is given).
    fn request(method: &str, headers: &[(&str, &str)]) -> tiny_http::Request {
        request_with_body(method, headers, "")
    }

    /// Builds a tiny_http request with these headers and `body` behind them.
    fn request_with_body(
        method: &str,
        headers: &[(&str, &str)],
        body: &'static str,
    ) -> tiny_http::Request {
        let mut test = tiny_http::TestRequest::new()
            .with_method(method.parse().unwrap())
            .with_path("/p?q=1")
            .with_body(body);
        for (name, value) in headers {
            test = test.with_header(tiny_http::Header::from_bytes(*name, *value).unwrap());
        }
        test.into()
    }

    fn status(raw: &tiny_http::Request) -> u16 {
        match check(raw, LIMITS) {
            Ok(_) => 200,
            Err(reject) => reject.status,
        }
    }

    #[test]
    fn plain_requests_pass_with_their_framing() {
        let raw = request("POST", &[("Host", "x"), ("Content-Length", "0")]);
        let (req, framing) = check(&raw, LIMITS).unwrap();
        assert_eq!((req.method(), req.path()), ("POST", "/p"));
        assert_eq!(req.query_str("q"), Some("1"));
        assert_eq!(framing.body, BodyKind::Empty);
        assert!(framing.exchange.keep_alive && !framing.exchange.http10);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let te_and_cl = request(
            "POST",
            &[
                ("Host", "x"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "5"),
            ],
        );
        assert_eq!(status(&te_and_cl), 400);
        // As in the native front end: a final coding other than chunked is 400, chunked not
        // last is 400, an unknown coding before a final chunked is 501.
        let gzip = request("POST", &[("Host", "x"), ("Transfer-Encoding", "gzip")]);
        assert_eq!(status(&gzip), 400);
        let gzip_chunked = request(
            "POST",
            &[("Host", "x"), ("Transfer-Encoding", "gzip, chunked")],
        );
        assert_eq!(status(&gzip_chunked), 501);
        let not_last = request(
            "POST",
            &[("Host", "x"), ("Transfer-Encoding", "chunked, chunked")],
        );
        assert_eq!(status(&not_last), 400);
        // tiny_http parses `+5` as 5; the native rules refuse it.
        let plus = request_with_body("POST", &[("Host", "x"), ("Content-Length", "+5")], "hello");
        assert_eq!(status(&plus), 400);
        let no_host = request("GET", &[]);
        assert_eq!(status(&no_host), 400);
        let upgrade = request(
            "POST",
            &[
                ("Host", "x"),
                ("Connection", "upgrade"),
                ("Content-Length", "3"),
            ],
        );
        assert_eq!(status(&upgrade), 400);
    }

    #[test]
    fn control_bytes_in_values_are_refused() {
        let raw = request("GET", &[("Host", "x"), ("X-A", "a\rb")]);
        assert_eq!(status(&raw), 400);
    }

    #[test]
    fn heads_over_the_limits_are_refused() {
        let big = "a".repeat(20_000);
        let raw = request("GET", &[("Host", "x"), ("X-Big", &big)]);
        assert_eq!(status(&raw), 431);
        let many: Vec<(String, String)> =
            (0..101).map(|i| (format!("X-{i}"), "v".into())).collect();
        let mut headers: Vec<(&str, &str)> = vec![("Host", "x")];
        headers.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(status(&request("GET", &headers)), 431);
    }
}
