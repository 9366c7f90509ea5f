//! Request heads: finding their end, parsing them with `httparse`, and the framing rules of
//! RFC 9112 §2–3 and §6 that decide how the body is delimited.
//!
//! Everything here is synchronous and works on bytes already read, so it can be tested (and
//! fuzzed) without sockets. A [`Reject`] means: answer with its status, then close.

use std::mem::MaybeUninit;

use super::grammar::{is_host_byte, is_token, list_items, trim_ows};
use crate::request::{Request, Target};

/// A request head that passed every check.
///
/// The request it describes is built as soon as the head has passed, so what moves from here
/// on (out of the head reader, into the connection, to the router) is the request's box and a
/// few flags: moved by value, the parsed method, target and field spans (about 240 bytes)
/// were copied three times more on the way into the request, about 100 instructions per
/// request.
#[derive(Debug)]
pub(crate) struct Head {
    /// The request, with neither a peer address nor a body yet; its header fields point into
    /// the head's bytes, and a target in origin form is a span of them.
    pub(crate) request: Request,
    /// How the body is delimited.
    pub(crate) body: BodyKind,
    /// Whether the client allows the connection to stay open after this request.
    pub(crate) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
}

#[cfg(test)]
impl Head {
    /// Returns the method.
    pub(crate) fn method(&self) -> &str {
        self.request.method()
    }

    /// Returns the target's text, in origin form.
    pub(crate) fn target(&self) -> &str {
        self.request.target()
    }
}

/// Heads are equal when their requests have the same method, target, version and fields and
/// their framing agrees (the property tests compare heads read in different splits).
#[cfg(test)]
impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.method() == other.method()
            && self.target() == other.target()
            && self.request.headers().eq(other.request.headers())
            && (
                self.request.is_http10(),
                self.body,
                self.keep_alive,
                self.expect_continue,
            ) == (
                other.request.is_http10(),
                other.body,
                other.keep_alive,
                other.expect_continue,
            )
    }
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A request that must be refused: the status to answer with and a short reason for the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    /// 400, 413, 414, 417, 431, 501 or 505.
    pub(crate) status: u16,
    /// A short, lowercase explanation sent as the body.
    pub(crate) reason: &'static str,
}

/// Shorthand for a [`Reject`].
pub(crate) const fn reject(status: u16, reason: &'static str) -> Reject {
    Reject { status, reason }
}

/// Where the search for the end of a head stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// No end yet; keep reading. The value is how far the buffer has been checked.
    Incomplete(usize),
    /// The head ends after this many bytes (including the blank line).
    Complete(usize),
}

/// Looks for the end of a head in `buf`, checking only bytes from `checked` on.
///
/// Bare LF line endings are refused (400) as soon as they are seen, rather than accepted as some
/// parsers do: a front proxy and this server must never disagree on where a line ends.
///
/// # Errors
///
/// 400 for a bare LF; 414 if the request line alone exceeds `max_head`; 431 if the head does.
pub(crate) fn scan_head(buf: &[u8], checked: usize, max_head: usize) -> Result<Scan, Reject> {
    let mut from = checked.min(buf.len());
    while let Some(found) = find_lf(&buf[from..]) {
        let i = from + found;
        if i == 0 || buf[i - 1] != b'\r' {
            return Err(reject(
                400,
                "bare LF in request head; lines must end with CRLF",
            ));
        }
        if i >= 3 && buf[i - 2] == b'\n' && buf[i - 3] == b'\r' {
            let end = i + 1;
            if end > max_head {
                return Err(too_large(buf, max_head));
            }
            return Ok(Scan::Complete(end));
        }
        from = i + 1;
    }
    if buf.len() >= max_head {
        return Err(too_large(buf, max_head));
    }
    // Every LF so far has been checked together with the bytes before it.
    Ok(Scan::Incomplete(buf.len()))
}

/// Returns the position of the first LF in `bytes`.
///
/// Eight bytes at a time (a word with an LF has a zero byte after `^ 0x0a..`, which the
/// borrow trick finds): a loop over single bytes cost about 240 instructions for wrk's
/// 48-byte head, most of what finding its end cost.
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("chunks of 8")) ^ LFS;
        // The lowest flagged byte is the first zero byte, so the first LF (little-endian).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + zeros.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| at + i)
}

/// Finds, parses and removes request heads from the front of a connection's read buffer, one
/// call per read, checking each byte for the end of the head only once.
///
/// This is the whole of head reading except the socket: the connection calls
/// [`HeadReader::advance`] after every read, so tests and fuzzers can drive it with any split of
/// the input into reads.
#[derive(Debug, Default)]
pub(crate) struct HeadReader {
    /// How far the buffer has been searched for the end of the head.
    checked: usize,
}

impl HeadReader {
    /// Takes the next complete head off the front of `buf`; `Ok(None)` if more bytes are needed.
    ///
    /// Empty lines before a request line are dropped (RFC 9112 §2.2). On success the head's bytes
    /// are removed from `buf` and anything after them (a body, pipelined requests) stays. While
    /// it returns `Ok(None)`, `buf` holds less than `max_head` bytes.
    ///
    /// # Errors
    ///
    /// A [`Reject`] as [`scan_head`] and [`parse_head`] give them.
    pub(crate) fn advance(
        &mut self,
        buf: &mut Vec<u8>,
        max_head: usize,
        max_headers: usize,
    ) -> Result<Option<Head>, Reject> {
        let blank = buf.chunks(2).take_while(|pair| *pair == b"\r\n").count() * 2;
        if blank > 0 {
            buf.drain(..blank);
            self.checked = 0;
        }
        if buf.is_empty() {
            return Ok(None);
        }
        match scan_head(buf, self.checked, max_head)? {
            Scan::Complete(end) => {
                // The head's bytes become the request's header storage: the buffer itself
                // when it holds just the head (one request per read, the common case), so
                // neither a copy nor an allocation is spent on them.
                let bytes = if end == buf.len() {
                    std::mem::take(buf)
                } else {
                    let bytes = buf[..end].to_vec();
                    buf.drain(..end);
                    bytes
                };
                self.checked = 0;
                parse_head(bytes, max_headers).map(Some)
            }
            Scan::Incomplete(upto) => {
                // Refuse at once what cannot become a request line (a TLS handshake, binary
                // noise) rather than waiting for the head deadline: the method is a token.
                let method_end = buf.iter().position(|&b| b == b' ').unwrap_or(buf.len());
                let lone_cr = buf.as_slice() == b"\r";
                if !lone_cr && !is_token(&buf[..method_end]) {
                    return Err(reject(400, "malformed request line"));
                }
                // `scan_head` looks back from each LF, so an end split across reads is still
                // found when its last byte arrives; nothing needs checking twice.
                self.checked = upto;
                Ok(None)
            }
        }
    }
}

/// The rejection for a head over the limit: 414 if the request line never ended, else 431.
fn too_large(buf: &[u8], max_head: usize) -> Reject {
    let window = &buf[..buf.len().min(max_head)];
    if window.windows(2).any(|w| w == b"\r\n") {
        reject(431, "request header fields too large")
    } else {
        reject(414, "request target too long")
    }
}

/// Parses a complete head (as found by [`scan_head`]) and applies the framing rules; the
/// request's header fields keep `bytes`.
///
/// Four steps: the syntax (`httparse`), the request line, each header field, then the rules
/// that look at the fields together (framing, Host, keep-alive).
///
/// # Errors
///
/// A [`Reject`] for anything malformed, ambiguous or unsupported; see the module docs. A head
/// of 4 GiB or more (only possible with a head limit that high) is refused with 431.
pub(crate) fn parse_head(bytes: Vec<u8>, max_headers: usize) -> Result<Head, Reject> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(reject(431, "request header fields too large"));
    }
    // Slots httparse fills without their being initialised first: setting 100 empty headers
    // cost about 500 instructions per request, more than parsing a short head.
    let mut storage;
    let mut small = [MaybeUninit::<httparse::Header<'_>>::uninit(); 100];
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= small.len() {
        &mut small[..max_headers]
    } else {
        storage = vec![MaybeUninit::uninit(); max_headers];
        &mut storage
    };
    // The request is boxed first, around the head's bytes, and the fields' spans go straight
    // into it: gathered on the stack and then moved, they were copied twice more on the way
    // into the request's box (about 80 instructions per request).
    let mut request = Request::from_head_bytes(bytes);
    let (bytes, spans) = request.head_mut();
    let mut req = httparse::Request::new(&mut []);
    parse_syntax(&mut req, bytes, slots)?;
    let method = req.method.unwrap_or_default();
    let http10 = req.version == Some(0);
    let base = bytes.as_ptr() as usize;
    let target = request_target(method, req.path.unwrap_or_default(), base)?;
    let mut fields = Fields::default();
    for header in req.headers.iter() {
        fields.add(header.name, header.value, http10)?;
        // Where httparse found the field in `bytes`.
        let name = header.name.as_ptr() as usize - base;
        let value = header.value.as_ptr() as usize - base;
        spans.push(
            name..name + header.name.len(),
            value..value + header.value.len(),
        );
    }
    let method = crate::request::method_name(method);
    request.set_line(method, target, http10);
    fields.into_head(request)
}

/// Runs `httparse` over a complete head, mapping its errors to rejections.
fn parse_syntax<'h, 'b>(
    req: &mut httparse::Request<'h, 'b>,
    bytes: &'b [u8],
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<(), Reject> {
    match req.parse_with_uninit_headers(bytes, slots) {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Ok(httparse::Status::Partial) => Err(reject(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => Err(reject(431, "too many header fields")),
        Err(httparse::Error::Version) => Err(version_error(bytes)),
        Err(httparse::Error::HeaderName) => Err(reject(
            400,
            "invalid header field name (or folded line, or space before colon)",
        )),
        Err(httparse::Error::HeaderValue) => Err(reject(400, "invalid header field value")),
        Err(httparse::Error::Token) => Err(reject(400, "invalid request method")),
        Err(_) => Err(reject(400, "malformed request line")),
    }
}

/// Checks the request target (and refuses `CONNECT`), returning it in origin form: a span of
/// the head's bytes (which start at address `base`) when it is in that form already.
fn request_target(method: &str, target: &str, base: usize) -> Result<Target, Reject> {
    if !target.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(reject(
            400,
            "request target must be ASCII without spaces or controls",
        ));
    }
    if method == "CONNECT" {
        return Err(reject(501, "CONNECT is not supported"));
    }
    if target.starts_with('/') {
        // Where httparse found it; the head is under 4 GiB (checked first).
        let start = target.as_ptr() as usize - base;
        let at = |n: usize| u32::try_from(n).expect("head bytes stay under 4 GiB");
        return Ok(Target::InHead {
            start: at(start),
            end: at(start + target.len()),
        });
    }
    origin_form(method, target).map(Target::Owned)
}

/// What the header fields of one head say, gathered field by field.
#[derive(Debug, Default)]
struct Fields {
    /// The Content-Length, once all its fields agree.
    content_length: Option<u64>,
    /// Whether a Transfer-Encoding field was present.
    saw_te: bool,
    /// Whether the last transfer coding so far is `chunked`.
    chunked: bool,
    /// Whether a transfer coding other than `chunked` was named.
    other_coding: bool,
    /// Number of Host fields.
    hosts: usize,
    /// `Connection: close` was sent.
    close: bool,
    /// `Connection: keep-alive` was sent.
    keep_alive_token: bool,
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    expect_continue: bool,
}

impl Fields {
    /// Checks one header field and records what it says about framing and the connection.
    fn add(&mut self, name: &str, value: &[u8], http10: bool) -> Result<(), Reject> {
        // httparse refuses NUL, CR and LF in a value (`HeaderValue`, the same 400 as here), so
        // they are not looked for again: that cost 60 instructions per request for one Host.
        debug_assert!(!value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'));
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value)?;
            if self.content_length.is_some_and(|seen| seen != length) {
                return Err(reject(400, "conflicting Content-Length values"));
            }
            self.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.add_codings(value)?;
        } else if name.eq_ignore_ascii_case("host") {
            self.hosts += 1;
            if !value.iter().all(|&b| is_host_byte(b)) {
                return Err(reject(400, "invalid Host"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in list_items(value) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") && !http10 {
            if value.eq_ignore_ascii_case(b"100-continue") {
                self.expect_continue = true;
            } else {
                return Err(reject(417, "unsupported expectation"));
            }
        }
        Ok(())
    }

    /// Records the codings of one Transfer-Encoding field; they accumulate across fields, and
    /// `chunked` must come once, last.
    fn add_codings(&mut self, value: &[u8]) -> Result<(), Reject> {
        for coding in list_items(value) {
            if self.chunked {
                return Err(reject(400, "chunked must be the final transfer coding"));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else if !coding.is_empty() {
                self.other_coding = true;
            }
        }
        self.saw_te = true;
        Ok(())
    }

    /// Applies the rules that look at all fields together and builds the [`Head`].
    fn into_head(self, request: Request) -> Result<Head, Reject> {
        let http10 = request.is_http10();
        // Without a final chunked coding the body length cannot be known: 400 and close
        // (RFC 9112 §6.3). With one, other codings are only unsupported: 501.
        if self.saw_te && !self.chunked {
            return Err(reject(
                400,
                "Transfer-Encoding without a final chunked coding",
            ));
        }
        if self.other_coding {
            return Err(reject(501, "unsupported transfer coding"));
        }
        if self.saw_te && self.content_length.is_some() {
            return Err(reject(400, "both Transfer-Encoding and Content-Length"));
        }
        if self.saw_te && http10 {
            return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        match self.hosts {
            0 if !http10 => return Err(reject(400, "missing Host")),
            0 | 1 => {}
            _ => return Err(reject(400, "repeated Host")),
        }
        let body = match (self.chunked, self.content_length) {
            (true, _) => BodyKind::Chunked,
            (false, Some(0) | None) => BodyKind::Empty,
            (false, Some(n)) => BodyKind::Length(n),
        };
        Ok(Head {
            request,
            body,
            keep_alive: !self.close && (!http10 || self.keep_alive_token),
            expect_continue: self.expect_continue && body != BodyKind::Empty,
        })
    }
}

/// Chooses between 505 (a well-formed but unsupported version) and 400 (garbage).
fn version_error(bytes: &[u8]) -> Reject {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    let line = &bytes[..line_end];
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    // `GET /a b HTTP/1.1` ends in a good version but is not a request line: a space in the
    // target makes it four parts, and that is malformed (400), not an unsupported version.
    let three_parts = line.iter().filter(|&&b| b == b' ').count() == 2;
    let well_formed = three_parts
        && version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if well_formed {
        reject(505, "HTTP version not supported")
    } else {
        reject(400, "malformed request line")
    }
}

/// Reduces a request target to origin form: `/path?query`.
///
/// Absolute-form (`http://host/path`) is accepted as RFC 9112 §3.2.2 requires; `*` only for
/// `OPTIONS`; authority-form is only for `CONNECT`, which is refused earlier.
fn origin_form(method: &str, target: &str) -> Result<String, Reject> {
    if target.starts_with('/') {
        return Ok(target.to_string());
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok("*".to_string())
        } else {
            Err(reject(400, "asterisk target is only valid for OPTIONS"))
        };
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return Err(reject(
            400,
            "request target must be a path or an absolute URI",
        ));
    };
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    if path_start == 0 {
        return Err(reject(400, "absolute URI without a host"));
    }
    let path = &rest[path_start..];
    Ok(if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    })
}

/// Parses one Content-Length field: `1*DIGIT`, or a list of identical ones (RFC 9110 §8.6).
fn parse_content_length(value: &[u8]) -> Result<u64, Reject> {
    let bad = reject(400, "invalid Content-Length");
    let mut result: Option<u64> = None;
    for item in value.split(|&b| b == b',') {
        let item = trim_ows(item);
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let mut n: u64 = 0;
        for &digit in item {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit - b'0')))
                .ok_or(bad)?;
        }
        if result.is_some_and(|seen| seen != n) {
            return Err(reject(400, "conflicting Content-Length values"));
        }
        result = Some(n);
    }
    result.ok_or(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Head, Reject> {
        let bytes = raw.as_bytes();
        match scan_head(bytes, 0, 16 * 1024)? {
            Scan::Complete(end) => parse_head(bytes[..end].to_vec(), 100),
            Scan::Incomplete(_) => panic!("incomplete: {raw:?}"),
        }
    }

    fn status(raw: &str) -> u16 {
        head(raw).expect_err("expected a rejection").status
    }

    #[test]
    fn simple_get() {
        let h = head("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((h.method(), h.target()), ("GET", "/a?b=1"));
        assert!(h.keep_alive && !h.request.is_http10());
        assert_eq!(h.body, BodyKind::Empty);
    }

    #[test]
    fn framing_rules() {
        let cl = |v: &str| format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {v}\r\n\r\n");
        assert_eq!(head(&cl("5")).unwrap().body, BodyKind::Length(5));
        assert_eq!(head(&cl("5, 5")).unwrap().body, BodyKind::Length(5));
        for bad in [
            "-1",
            "+5",
            "5 5",
            "0x5",
            "",
            "5,6",
            "99999999999999999999999",
        ] {
            assert_eq!(status(&cl(bad)), 400, "Content-Length {bad:?}");
        }
        let te = |v: &str| format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {v}\r\n\r\n");
        assert_eq!(head(&te("chunked")).unwrap().body, BodyKind::Chunked);
        assert_eq!(head(&te("Chunked")).unwrap().body, BodyKind::Chunked);
        assert_eq!(status(&te("gzip, chunked")), 501);
        assert_eq!(status(&te("chunked, gzip")), 400);
        assert_eq!(status(&te("chunked, chunked")), 400);
        // A final coding other than chunked leaves the length unknown: 400 (RFC 9112 §6.3).
        assert_eq!(status(&te("identity")), 400);
        assert_eq!(status(&te("gzip")), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn header_syntax_rules() {
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n"),
            400
        ); // obs-fold
        assert_eq!(status("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\nA: b\0c\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert!(head("GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn request_line_rules() {
        assert_eq!(status("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status("GET / FOO\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET /foo bar/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET /foo bar HTTP/2.0\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET /\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET x HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n"), 501);
        assert_eq!(status("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        let absolute = head("GET http://example.com/a?b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(absolute.target(), "/a?b");
        let bare = head("GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(bare.target(), "/");
    }

    #[test]
    fn connection_and_expect() {
        assert!(
            !head("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        let expect =
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n";
        assert!(head(expect).unwrap().expect_continue);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n"),
            417
        );
    }

    #[test]
    fn scan_limits_and_line_endings() {
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\nHost: x\n\n", 0, 1024)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            scan_head(b"GET / HTTP/1.1\r\nHo", 0, 1024).unwrap(),
            Scan::Incomplete(18)
        );
        let long_target = format!("GET /{} HTTP/1.1\r\n", "a".repeat(200));
        assert_eq!(
            scan_head(long_target.as_bytes(), 0, 100)
                .unwrap_err()
                .status,
            414
        );
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert_eq!(
            scan_head(long_header.as_bytes(), 0, 100)
                .unwrap_err()
                .status,
            431
        );
        // The end is found when it straddles two reads.
        let full = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let Scan::Incomplete(checked) = scan_head(&full[..26], 0, 1024).unwrap() else {
            panic!()
        };
        assert_eq!(
            scan_head(full, checked, 1024).unwrap(),
            Scan::Complete(full.len())
        );
    }

    #[test]
    fn noise_is_refused_before_the_head_ends() {
        let mut reader = HeadReader::default();
        let mut tls = vec![0x16, 0x03, 0x01, 0x02, 0x00];
        assert_eq!(reader.advance(&mut tls, 1024, 100).unwrap_err().status, 400);
        // A request line arriving in pieces is not refused.
        for partial in [&b"GE"[..], b"GET", b"GET /pa", b"\r", b"\r\nGET"] {
            let mut buf = partial.to_vec();
            assert!(
                HeadReader::default()
                    .advance(&mut buf, 1024, 100)
                    .unwrap()
                    .is_none(),
                "{partial:?}"
            );
        }
    }

    #[test]
    fn the_first_lf_is_found_in_any_position() {
        for len in 0..40 {
            for lf in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[lf] = b'\n';
                // A later LF and bytes next to 0x0a must not move the answer.
                if lf + 1 < len {
                    bytes[lf + 1] = 0x0b;
                }
                if lf + 3 < len {
                    bytes[lf + 3] = b'\n';
                }
                if lf > 0 {
                    bytes[lf - 1] = 0x09;
                }
                assert_eq!(find_lf(&bytes), Some(lf), "len {len}, lf {lf}");
            }
            assert_eq!(find_lf(&vec![0x8a; len]), None);
            assert_eq!(find_lf(&vec![0x0b; len]), None);
        }
    }

    #[test]
    fn too_many_headers() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..100 {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(status(&raw), 431);
    }
}
