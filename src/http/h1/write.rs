//! Turning a [`Response`] into bytes on the wire: the status line, the headers the server owns
//! (`Date`, `Content-Length` or `Transfer-Encoding`, `Connection`), and the body framing.

use std::ops::Deref;

use crate::http::h1::date;
use crate::http::h1::grammar::{reason, status_line};
use crate::response::{Body, Response, Stream};

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

/// A response ready to write (the tiny_http front end's; the native one writes a small
/// response from the stack, see [`prepare_first_write`]).
#[cfg(any(feature = "tiny_http", test))]
pub(crate) struct Outgoing {
    /// Status line and headers, ending with the blank line.
    pub(crate) head: Vec<u8>,
    /// What follows the head.
    pub(crate) body: OutBody,
}

/// The body part of an [`Outgoing`].
pub(crate) enum OutBody {
    /// Nothing.
    Empty,
    /// These bytes, delimited by `Content-Length`.
    Full(BodyBytes),
    /// Chunks from the channel, with chunked encoding.
    Chunked(Stream),
    /// Chunks from the channel, delimited by closing the connection (HTTP/1.0).
    UntilClose(Stream),
    /// Chunks from the channel, exactly the stream's length, delimited by `Content-Length`.
    Sized(Stream),
}

/// A whole body to write: owned, or a constant of the server's own code (see
/// [`Body::Static`]).
pub(crate) enum BodyBytes {
    /// Bytes the response owned.
    Owned(Vec<u8>),
    /// A constant.
    Static(&'static [u8]),
}

impl Deref for BodyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            BodyBytes::Owned(bytes) => bytes,
            BodyBytes::Static(bytes) => bytes,
        }
    }
}

impl<const N: usize> PartialEq<[u8; N]> for BodyBytes {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}

/// Bodies up to this size go out in the same write as the head; larger ones in a write of
/// their own.
///
/// 32 KiB, for both front ends (the tiny_http bridge used 64 KiB, the native one 32 KiB). Joining
/// saves one write call but copies the body into the head's buffer, and by 32 KiB the copy
/// costs about as much as the call it saves, so a higher bound only moves more bytes for
/// nothing. The native front end, the default and the one the benchmarks measured, keeps the
/// bound it had; for tiny_http the bytes on the wire are the same either way (only how they are
/// split into writes changes), and no test depends on where the split falls.
pub(crate) const COALESCE: usize = 32 * 1024;

/// The last chunk of a chunked body, with an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(any(feature = "tiny_http", test))]
impl Outgoing {
    /// Splits the response into its first write and what follows it: the head, with the body
    /// appended when it is whole and at most [`COALESCE`] bytes (then the rest is
    /// [`OutBody::Empty`]).
    pub(crate) fn into_first_write(self) -> (Vec<u8>, OutBody) {
        let Outgoing { mut head, body, .. } = self;
        match body {
            OutBody::Full(bytes) if bytes.len() <= COALESCE => {
                head.extend_from_slice(&bytes);
                (head, OutBody::Empty)
            }
            body => (head, body),
        }
    }
}

/// Replaces the contents of `frame` with `chunk` in chunked framing (size line, data, CRLF),
/// or with `chunk` alone when `chunked` is false (a body delimited by closing the connection).
///
/// `frame` is reused across chunks so a stream allocates its frame buffer once. An empty
/// `chunk` is skipped (an empty frame), since a zero-size chunk would end the body.
pub(crate) fn frame_chunk(frame: &mut Vec<u8>, chunk: &[u8], chunked: bool) {
    frame.clear();
    if chunk.is_empty() {
        return;
    }
    if chunked {
        push_hex(frame, chunk.len());
        frame.extend_from_slice(b"\r\n");
    }
    frame.extend_from_slice(chunk);
    if chunked {
        frame.extend_from_slice(b"\r\n");
    }
}

/// Where a head's bytes are appended: a `Vec`, or the stack buffer [`HeadBytes`].
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Bytes of a head gathered on the stack, with a `Vec` only for what does not fit.
///
/// Each piece of a head (status line, `Date`, each header's name, `: `, value and CRLF) went
/// into the `Vec` with `extend_from_slice`, a call with its own capacity check per piece (about
/// 25 instructions each beside the copy); here a constant piece is a plain store and a
/// variable one a bounds check and a copy. A head longer than the buffer moves on to the `Vec`
/// in order. The native front end writes a first write that fits straight from here, so a
/// small response allocates nothing (the `Vec` cost a malloc, a free and a copy of the bytes,
/// about 280 instructions per `GET /healthz`).
pub(crate) struct HeadBytes {
    /// The bytes after those in `out`; the first `len` are used.
    stack: [u8; HEAD_STACK],
    /// How much of `stack` is used.
    len: usize,
    /// The bytes before those in `stack`; allocated only when they do not all fit there.
    out: Vec<u8>,
    /// The capacity `out` is given when it is first needed: an estimate of the whole write.
    spill: usize,
}

/// Room on the stack for a first write: the demo's `/healthz` head takes about 190 bytes, 250
/// with its request-id and gzip layers.
const HEAD_STACK: usize = 512;

impl HeadBytes {
    /// Starts an empty first write.
    pub(crate) fn new() -> HeadBytes {
        HeadBytes {
            stack: [0; HEAD_STACK],
            len: 0,
            out: Vec::new(),
            spill: 0,
        }
    }

    /// Returns the bytes gathered so far, moving them into one place first if they are in two.
    pub(crate) fn bytes(&mut self) -> &[u8] {
        if self.out.capacity() == 0 {
            return &self.stack[..self.len];
        }
        self.flush();
        &self.out
    }

    /// Returns the bytes gathered, as a `Vec` (with room for `extra` more).
    pub(crate) fn into_vec(mut self, extra: usize) -> Vec<u8> {
        if self.out.capacity() == 0 {
            self.out.reserve_exact(self.len + extra);
        }
        self.flush();
        self.out
    }

    /// Moves the bytes on the stack to the end of `out`.
    fn flush(&mut self) {
        if self.out.capacity() == 0 {
            self.out.reserve_exact(self.spill.max(self.len));
        }
        self.out.extend_from_slice(&self.stack[..self.len]);
        self.len = 0;
    }
}

impl Sink for HeadBytes {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(room) = self.stack.get_mut(self.len..end) {
            room.copy_from_slice(bytes);
            self.len = end;
            return;
        }
        self.flush();
        self.out.extend_from_slice(bytes);
    }
}

/// Appends `n` in decimal.
///
/// By hand rather than with `write!`: the status and `Content-Length` of every response went
/// through `std::io::Write::write_fmt`, about 870 instructions per request of the demo's
/// `GET /healthz` (this costs about 30).
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let (digits, at) = decimal(n);
    out.extend_from_slice(&digits[at..]);
}

/// `n`'s decimal digits, right-aligned: they are `digits[at..]`.
fn decimal(mut n: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (digits, at);
        }
    }
}

/// Appends the `Content-Length: n\r\n` line.
fn push_content_length(out: &mut impl Sink, n: u64) {
    let (digits, at) = decimal(n);
    out.put(b"Content-Length: ");
    out.put(&digits[at..]);
    out.put(b"\r\n");
}

/// Appends `n` in lowercase hexadecimal (a chunk size).
fn push_hex(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends the status line of `status` (`HTTP/1.1 200 OK\r\n`).
fn push_status_line(out: &mut impl Sink, status: u16) {
    if let Some(line) = status_line(status) {
        out.put(line.as_bytes());
        return;
    }
    let (digits, at) = decimal(u64::from(status));
    out.put(b"HTTP/1.1 ");
    out.put(&digits[at..]);
    out.put(b" ");
    out.put(reason(status).as_bytes());
    out.put(b"\r\n");
}

/// Returns `true` for a header the server writes itself (a handler's value is ignored).
pub(crate) fn is_owned_header(name: &str) -> bool {
    // The length first: most names are rejected without comparing a byte.
    let owned = match name.len() {
        4 => "date",
        10 if name.as_bytes()[0].eq_ignore_ascii_case(&b'c') => "connection",
        10 => "keep-alive",
        14 => "content-length",
        17 => "transfer-encoding",
        _ => return false,
    };
    name.eq_ignore_ascii_case(owned)
}

/// Returns `true` if a `Connection` value lists `close`.
fn lists_close(value: &str) -> bool {
    value
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
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
#[cfg(any(feature = "tiny_http", test))]
pub(crate) fn prepare(response: Response, exchange: Exchange, shutting_down: bool) -> Outgoing {
    let mut head = HeadBytes::new();
    // Whether to close is the native front end's business: tiny_http manages its connections.
    let (body, _close) = write_head(response, exchange, shutting_down, &mut head);
    // Room for a body that joins the head (see `Outgoing::into_first_write`).
    let joined = match &body {
        OutBody::Full(bytes) if bytes.len() <= COALESCE => bytes.len(),
        _ => 0,
    };
    Outgoing {
        head: head.into_vec(joined),
        body,
    }
}

/// Prepares `response` for writing into `first`, its first write, and returns what follows
/// that write and whether to close after it: the same split as [`Outgoing::into_first_write`],
/// with no `Vec` for a first write that fits on the stack.
pub(crate) fn prepare_first_write(
    response: Response,
    exchange: Exchange,
    shutting_down: bool,
    first: &mut HeadBytes,
) -> (OutBody, bool) {
    match write_head(response, exchange, shutting_down, first) {
        (OutBody::Full(bytes), close) if bytes.len() <= COALESCE => {
            first.put(&bytes);
            (OutBody::Empty, close)
        }
        out => out,
    }
}

/// Writes the head of `response` into `head` and returns its body's framing and whether to
/// close after it.
fn write_head(
    response: Response,
    exchange: Exchange,
    shutting_down: bool,
    head: &mut HeadBytes,
) -> (OutBody, bool) {
    let (status, headers, body) = sendable(response).into_parts();
    let mut close = !exchange.keep_alive || shutting_down;

    // One allocation for the whole first write if it does not fit on the stack: the head, and
    // the body when it joins it. Room for the status, date and framing lines and 64 bytes per
    // header: a head with longer headers grows once. An estimate rather than a pass over the
    // headers to size them, which cost more than the growth it saved for the usual few short
    // headers.
    let joined = match &body {
        Body::Full(bytes) if bytes.len() <= COALESCE => bytes.len(),
        Body::Static(bytes) if bytes.len() <= COALESCE => bytes.len(),
        _ => 0,
    };
    head.spill = 128 + 64 * headers.len() + joined;
    push_status_line(head, status);
    date::with_line(|line| head.put(line));

    // 204 and 304 never carry a body; HEAD carries the headers a GET would.
    let bodiless_status = status == 204 || status == 304;
    let body = match body {
        _ if bodiless_status => OutBody::Empty,
        Body::Full(bytes) => {
            push_content_length(head, bytes.len() as u64);
            if exchange.head_request || bytes.is_empty() {
                OutBody::Empty
            } else {
                OutBody::Full(BodyBytes::Owned(bytes))
            }
        }
        Body::Static(bytes) => {
            push_content_length(head, bytes.len() as u64);
            if exchange.head_request || bytes.is_empty() {
                OutBody::Empty
            } else {
                OutBody::Full(BodyBytes::Static(bytes))
            }
        }
        Body::Stream(stream) if stream.len.is_some() => {
            let len = stream.len.unwrap_or_default();
            push_content_length(head, len);
            if exchange.head_request || len == 0 {
                OutBody::Empty
            } else {
                OutBody::Sized(stream)
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
            head.put(b"Transfer-Encoding: chunked\r\n");
            if exchange.head_request {
                OutBody::Empty
            } else {
                OutBody::Chunked(rx)
            }
        }
    };

    for (name, value) in &headers {
        if is_owned_header(name) {
            // The handler's own `Connection: close` is honoured; the rest of these are ours.
            close |= name.eq_ignore_ascii_case("connection") && lists_close(value);
            continue;
        }
        head.put(name.as_bytes());
        head.put(b": ");
        head.put(value.as_bytes());
        head.put(b"\r\n");
    }
    if close {
        head.put(b"Connection: close\r\n");
    } else if exchange.http10 {
        head.put(b"Connection: keep-alive\r\n");
    }
    head.put(b"\r\n");
    (body, close)
}

/// Builds the complete bytes of a server-generated error response (always `Connection: close`).
pub(crate) fn error_bytes(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + message.len());
    push_status_line(&mut out, status);
    out.extend_from_slice(b"Date: ");
    date::append_now(&mut out);
    if status == 503 {
        out.extend_from_slice(b"\r\nRetry-After: 1");
    }
    out.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    push_decimal(&mut out, message.len() as u64 + 1);
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &Outgoing) -> String {
        String::from_utf8(out.head.clone()).unwrap()
    }

    /// Returns the first write of `response` as the native front end makes it, what follows
    /// it, and whether the connection closes after it.
    fn first_write(
        response: Response,
        exchange: Exchange,
        shutting_down: bool,
    ) -> (String, OutBody, bool) {
        let mut first = HeadBytes::new();
        let (rest, close) = prepare_first_write(response, exchange, shutting_down, &mut first);
        (String::from_utf8(first.into_vec(0)).unwrap(), rest, close)
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
        assert!(!first_write(Response::text("hello"), GET11, false).2);
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
        let response = Response::text("x").with_header("Connection", "close");
        let (head, _, close) = first_write(response, GET11, false);
        assert!(close && head.contains("Connection: close\r\n"));
        let (head, _, close) = first_write(Response::text("x"), GET11, true);
        assert!(close && head.contains("Connection: close\r\n"));
    }

    #[test]
    fn streams_are_chunked_for_http11_and_close_delimited_for_http10() {
        let (_tx, response) = Response::channel(1);
        let out = prepare(response, GET11, false);
        assert!(text(&out).contains("Transfer-Encoding: chunked\r\n"));
        let (_tx, response) = Response::channel(1);
        let http10 = Exchange {
            http10: true,
            ..GET11
        };
        let (head, rest, close) = first_write(response, http10, false);
        assert!(close && !head.contains("chunked"));
        assert!(matches!(rest, OutBody::UntilClose(_)));
    }

    #[test]
    fn small_bodies_join_the_head_and_large_ones_follow_it() {
        let (first, rest) = prepare(Response::text("hello"), GET11, false).into_first_write();
        assert!(first.ends_with(b"\r\n\r\nhello"));
        assert!(matches!(rest, OutBody::Empty));
        let big = vec![b'x'; COALESCE + 1];
        let (first, rest) = prepare(Response::bytes(big), GET11, false).into_first_write();
        assert!(first.ends_with(b"\r\n\r\n"));
        assert!(matches!(rest, OutBody::Full(ref b) if b.len() == COALESCE + 1));
        let (first, rest, _) = first_write(Response::text("hello"), GET11, false);
        assert!(first.ends_with("\r\n\r\nhello"));
        assert!(matches!(rest, OutBody::Empty));
    }

    #[test]
    fn a_first_write_longer_than_the_stack_keeps_its_order() {
        let mut response = Response::text("b".repeat(HEAD_STACK));
        for i in 0..20 {
            response = response.with_header(format!("X-{i}"), "v".repeat(40));
        }
        let (first, rest, _) = first_write(response, GET11, false);
        assert!(matches!(rest, OutBody::Empty));
        assert!(first.len() > 2 * HEAD_STACK);
        let mut at = 0;
        for i in 0..20 {
            let line = format!("\r\nX-{i}: {}\r\n", "v".repeat(40));
            at += first[at..].find(&line).expect("each header, in order");
        }
        assert!(first.ends_with(&format!("\r\n\r\n{}", "b".repeat(HEAD_STACK))));
    }

    #[test]
    fn chunks_are_framed_with_a_hex_size() {
        let mut frame = Vec::new();
        frame_chunk(&mut frame, &[b'a'; 26], true);
        assert_eq!(frame, [&b"1a\r\n"[..], &[b'a'; 26], b"\r\n"].concat());
        frame_chunk(&mut frame, b"xyz", false);
        assert_eq!(frame, b"xyz");
        frame_chunk(&mut frame, b"", true);
        assert!(frame.is_empty());
    }

    #[test]
    fn numbers_are_written_by_hand_as_format_would() {
        for n in [0u64, 7, 10, 99, 100, 4096, 65_535, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
            let mut out = Vec::new();
            push_content_length(&mut out, n);
            assert_eq!(out, format!("Content-Length: {n}\r\n").into_bytes());
        }
        for n in [1usize, 15, 16, 26, 4096, usize::MAX] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").into_bytes());
        }
    }

    #[test]
    fn owned_headers_are_recognised_in_any_case() {
        for name in [
            "Date",
            "CONNECTION",
            "keep-alive",
            "Content-Length",
            "transfer-Encoding",
        ] {
            assert!(is_owned_header(name), "{name}");
        }
        for name in [
            "Datz",
            "Connectio",
            "keep-alivf",
            "Content-Type",
            "X-Request-Id",
            "",
        ] {
            assert!(!is_owned_header(name), "{name}");
        }
    }

    #[test]
    fn error_bytes_are_a_complete_closing_response() {
        let bytes = String::from_utf8(error_bytes(503, "busy")).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 503 Service Unavailable\r\nDate: "));
        assert!(bytes.ends_with(
            " GMT\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
        ));
        let bytes = String::from_utf8(error_bytes(299, "odd")).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 299 \r\nDate: "));
        let bytes = String::from_utf8(error_bytes(400, "bad")).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(!bytes.contains("Retry-After") && bytes.contains("Content-Length: 4\r\n"));
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
