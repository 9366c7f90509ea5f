//! Turning a [`Response`] into bytes on the wire: the status line, the headers the server owns
//! (`Date`, `Content-Length` or `Transfer-Encoding`, `Connection`), and the body framing.

use std::io::Write as _;

use crate::http::h1::date;
use crate::response::{reason, Body, Response};

/// What a request asked of its response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange {
    /// The request was `HEAD`: send headers only.
    pub(crate) head_request: bool,
    /// The request was HTTP/1.0: no chunked encoding.
    pub(crate) http10: bool,
    /// The connection may stay open after this response.
    pub(crate) keep_alive: bool,
}

/// A response ready to write.
pub(crate) struct Outgoing {
    /// Status line and headers, ending with the blank line.
    pub(crate) head: Vec<u8>,
    /// What follows the head.
    pub(crate) body: OutBody,
    /// Close the connection after this response.
    pub(crate) close: bool,
}

/// The body part of an [`Outgoing`].
pub(crate) enum OutBody {
    /// Nothing.
    Empty,
    /// These bytes, delimited by `Content-Length`.
    Full(Vec<u8>),
    /// Chunks from the channel, with chunked encoding.
    Chunked(async_channel::Receiver<Vec<u8>>),
    /// Chunks from the channel, delimited by closing the connection (HTTP/1.0).
    UntilClose(async_channel::Receiver<Vec<u8>>),
}

/// Headers the server writes itself; handler values for them are ignored.
const OWNED: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "keep-alive",
];

/// Returns `true` for a header the server writes itself (a handler's value is ignored).
pub(crate) fn is_owned_header(name: &str) -> bool {
    OWNED.iter().any(|owned| name.eq_ignore_ascii_case(owned))
}

/// Returns `response`, or a 500 (logged) if the handler built one that cannot be sent safely.
pub(crate) fn sendable(response: Response) -> Response {
    match response.invalid_reason() {
        None => response,
        Some(why) => crate::error::internal_error(&format_args!(
            "handler returned an unsendable response ({why})"
        )),
    }
}

/// Prepares `response` for writing.
pub(crate) fn prepare(response: Response, exchange: Exchange, shutting_down: bool) -> Outgoing {
    let (status, headers, body) = sendable(response).into_parts();
    let handler_close = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("connection")
            && value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
    });
    let mut close = !exchange.keep_alive || shutting_down || handler_close;

    let mut head = Vec::with_capacity(256);
    let _ = write!(head, "HTTP/1.1 {status} {}\r\nDate: ", reason(status));
    date::append_now(&mut head);
    head.extend_from_slice(b"\r\n");

    // 204 and 304 never carry a body; HEAD carries the headers a GET would.
    let bodiless_status = status == 204 || status == 304;
    let body = match body {
        _ if bodiless_status => OutBody::Empty,
        Body::Full(bytes) => {
            let _ = write!(head, "Content-Length: {}\r\n", bytes.len());
            if exchange.head_request || bytes.is_empty() {
                OutBody::Empty
            } else {
                OutBody::Full(bytes)
            }
        }
        Body::Stream(rx) if exchange.http10 => {
            close = true;
            if exchange.head_request {
                OutBody::Empty
            } else {
                OutBody::UntilClose(rx)
            }
        }
        Body::Stream(rx) => {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            if exchange.head_request {
                OutBody::Empty
            } else {
                OutBody::Chunked(rx)
            }
        }
    };

    for (name, value) in &headers {
        if is_owned_header(name) {
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if close {
        head.extend_from_slice(b"Connection: close\r\n");
    } else if exchange.http10 {
        head.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Outgoing { head, body, close }
}

/// Builds the complete bytes of a server-generated error response (always `Connection: close`).
pub(crate) fn error_bytes(status: u16, message: &str) -> Vec<u8> {
    let body = format!("{message}\n");
    let mut out = Vec::with_capacity(160 + body.len());
    let _ = write!(out, "HTTP/1.1 {status} {}\r\nDate: ", reason(status));
    date::append_now(&mut out);
    if status == 503 {
        out.extend_from_slice(b"\r\nRetry-After: 1");
    }
    let _ = write!(
        out,
        "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &Outgoing) -> String {
        String::from_utf8(out.head.clone()).unwrap()
    }

    const GET11: Exchange = Exchange {
        head_request: false,
        http10: false,
        keep_alive: true,
    };

    #[test]
    fn full_body_gets_content_length_and_owned_headers_are_replaced() {
        let response = Response::text("hello")
            .with_header("Content-Length", "999")
            .with_header("Transfer-Encoding", "chunked");
        let out = prepare(response, GET11, false);
        let head = text(&out);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nDate: "));
        assert!(head.contains("Content-Length: 5\r\n"));
        assert!(!head.contains("999") && !head.contains("chunked"));
        assert!(!out.close);
        assert!(matches!(out.body, OutBody::Full(ref b) if b == b"hello"));
    }

    #[test]
    fn head_keeps_length_but_drops_body() {
        let out = prepare(
            Response::text("hello"),
            Exchange {
                head_request: true,
                ..GET11
            },
            false,
        );
        assert!(text(&out).contains("Content-Length: 5\r\n"));
        assert!(matches!(out.body, OutBody::Empty));
    }

    #[test]
    fn no_content_has_no_length() {
        let out = prepare(Response::text("ignored").with_status(204), GET11, false);
        assert!(!text(&out).contains("Content-Length"));
        assert!(matches!(out.body, OutBody::Empty));
    }

    #[test]
    fn connection_close_from_handler_or_shutdown() {
        let out = prepare(
            Response::text("x").with_header("Connection", "close"),
            GET11,
            false,
        );
        assert!(out.close && text(&out).contains("Connection: close\r\n"));
        let out = prepare(Response::text("x"), GET11, true);
        assert!(out.close && text(&out).contains("Connection: close\r\n"));
    }

    #[test]
    fn streams_are_chunked_for_http11_and_close_delimited_for_http10() {
        let (_tx, response) = Response::channel(1);
        let out = prepare(response, GET11, false);
        assert!(text(&out).contains("Transfer-Encoding: chunked\r\n"));
        let (_tx, response) = Response::channel(1);
        let out = prepare(
            response,
            Exchange {
                http10: true,
                ..GET11
            },
            false,
        );
        assert!(out.close && !text(&out).contains("chunked"));
    }

    #[test]
    fn unsafe_header_becomes_500() {
        let out = prepare(
            Response::text("x").with_header("X", "a\r\nb: c"),
            GET11,
            false,
        );
        assert!(text(&out).starts_with("HTTP/1.1 500 "));
        assert!(!text(&out).contains("b: c"));
    }
}
