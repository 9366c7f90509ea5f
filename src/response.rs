//! The response type handlers return, and the conversions into it.

use std::fmt;
use std::time::Duration;

use crate::http::h1::grammar::{is_field_value, is_token};

/// An HTTP response: a status, headers and a body (whole, or streamed through a channel).
///
/// Built with the constructors and `with_*` methods; the server adds `Date`, `Content-Length` or
/// `Transfer-Encoding`, and `Connection` itself, and ignores those headers if a handler sets them
/// (except `Connection: close`, which is honoured).
///
/// # Examples
///
/// ```
/// use steadyloop::Response;
///
/// let response = Response::json(r#"{"ok":true}"#)
///     .with_status(201)
///     .with_header("Cache-Control", "no-store");
/// assert_eq!(response.status(), 201);
/// assert_eq!(response.header("content-type"), Some("application/json"));
/// ```
pub struct Response {
    /// The status code, 200–599.
    status: u16,
    /// Header fields in the order they were added.
    headers: HeaderList,
    /// The body.
    body: Body,
    /// Set when a handler added an unsafe header; the server answers 500 instead of sending it.
    /// A `Box<str>`, not a `String`: a response moves by value through every layer, and one
    /// word fewer is one copy fewer at each move.
    invalid: Option<Box<str>>,
}

mod headers;
mod name;
mod text;

pub(crate) use headers::HeaderList;
pub(crate) use name::eq_ignore_case;
pub(crate) use text::HeaderText;

/// A header name: borrowed when the server wrote it as a constant (`Content-Type` of
/// [`Response::text`], `Vary`, `Content-Encoding`), owned otherwise.
///
/// A `Cow` rather than a [`HeaderText`]: names are nearly always constants, and every header
/// lookup reads each name, which a two-way `Cow` does in fewer instructions than a three-way
/// enum.
pub(crate) type HeaderName = std::borrow::Cow<'static, str>;

/// Returns `true` if header names `a` and `b` are equal ignoring ASCII case.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    eq_ignore_case(a.as_bytes(), b.as_bytes())
}

/// Where a response body comes from.
pub(crate) enum Body {
    /// The whole body, in memory.
    Full(Vec<u8>),
    /// The whole body, a constant of the server's own code (probe answers, 404/405 bodies, a
    /// handler's `&'static str`): no allocation, about 100 instructions per response less.
    Static(&'static [u8]),
    /// Chunks pushed by a producer through a bounded channel; sent with chunked encoding
    /// unless its length is known.
    Stream(Stream),
}

/// A streamed body: the channel its chunks come through, and what its writer must know.
pub(crate) struct Stream {
    /// The producer's chunks; the body ends when every sender is gone.
    pub(crate) rx: async_channel::Receiver<Vec<u8>>,
    /// The exact length, when the producer knows it (a file): sent as `Content-Length`, and a
    /// producer that ends early or sends too much closes the connection.
    pub(crate) len: Option<u64>,
    /// Set for server-sent events: the writer sends keep-alive comments while the producer is
    /// quiet (instead of failing after the write timeout) and ends the body when a graceful
    /// shutdown starts.
    pub(crate) events: bool,
}

impl Response {
    /// Creates an empty response with `status`.
    ///
    /// A status outside 200–599 makes the server answer 500 instead (1xx responses are the
    /// server's own business).
    pub fn new(status: u16) -> Response {
        let mut response = Response {
            status,
            // Room for the usual few (type, vary, request id), reused from a dropped response.
            headers: HeaderList::new(),
            body: Body::Full(Vec::new()),
            invalid: None,
        };
        if !(200..=599).contains(&status) {
            response.invalid =
                Some(format!("status {status} is not a final status (200-599)").into());
        }
        response
    }

    /// Creates a `200 OK` response with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::typed(
            "text/plain; charset=utf-8",
            Body::Full(body.into().into_bytes()),
        )
    }

    /// Creates a `200 OK` response with a `text/plain; charset=utf-8` body that is a constant,
    /// sent without copying it.
    pub(crate) fn static_text(body: &'static str) -> Response {
        Response::typed("text/plain; charset=utf-8", Body::Static(body.as_bytes()))
    }

    /// Creates a `200 OK` response with an `application/json` body.
    ///
    /// The text is sent as given; steadyloop does not serialise or validate JSON.
    pub fn json(body: impl Into<String>) -> Response {
        Response::typed("application/json", Body::Full(body.into().into_bytes()))
    }

    /// Creates a `200 OK` response with an `application/octet-stream` body.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Response {
        Response::typed("application/octet-stream", Body::Full(body.into()))
    }

    /// Creates a `200 OK` response with `body` and the constant `content_type`.
    ///
    /// Written out field by field: `new(200)`, then the `with_*` setters, moved the response
    /// through three calls and dropped the empty body it started with (about 60 instructions
    /// per probe answer).
    fn typed(content_type: &'static str, body: Body) -> Response {
        let mut headers = HeaderList::new();
        headers.push((
            HeaderName::Borrowed("Content-Type"),
            HeaderText::Static(content_type),
        ));
        Response {
            status: 200,
            headers,
            body,
            invalid: None,
        }
    }

    /// Creates a `200 OK` response whose body is streamed from the returned [`BodySender`].
    ///
    /// The channel holds at most `capacity` chunks (at least 1): a producer that runs ahead of a
    /// slow client waits, so memory stays bounded. The body ends when every sender is dropped.
    /// The server sends it with chunked encoding (HTTP/1.0 clients: until the connection closes).
    /// For a producer on the CPU pool, use [`offload_stream`](crate::offload_stream): it answers
    /// only once the job has started, so a shed job is a 503 rather than an empty 200.
    ///
    /// # Examples
    ///
    /// A producer on a thread of its own (for example, one that relays a device's readings):
    ///
    /// ```
    /// use steadyloop::Response;
    ///
    /// fn readings() -> Response {
    ///     let (tx, response) = Response::channel(4);
    ///     std::thread::spawn(move || {
    ///         for i in 0..10 {
    ///             if tx.send_blocking(format!("{i}\n")).is_err() {
    ///                 break; // the client went away
    ///             }
    ///         }
    ///     });
    ///     response.with_header("Content-Type", "text/plain")
    /// }
    /// # let _ = readings();
    /// ```
    pub fn channel(capacity: usize) -> (BodySender, Response) {
        let (tx, rx) = async_channel::bounded(capacity.max(1));
        let mut response = Response::new(200);
        response.body = Body::Stream(Stream {
            rx,
            len: None,
            events: false,
        });
        (BodySender { tx }, response)
    }

    /// Creates a `503 Service Unavailable` response with `message` as its plain-text body and
    /// `Retry-After` set to `retry_after` in whole seconds, rounded up, at least 1.
    ///
    /// Every 503 the server builds goes through here: pool shedding, body memory, a busy or
    /// stopping front end, readiness, and (checked by a test) the canned connection-cap bytes.
    pub(crate) fn unavailable(retry_after: Duration, message: &str) -> Response {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Response::text(format!("{message}\n"))
            .with_status(503)
            .with_header("Retry-After", secs.max(1).to_string())
    }

    /// Sets the status code.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        if !(200..=599).contains(&status) && self.invalid.is_none() {
            self.invalid = Some(format!("status {status} is not a final status (200-599)").into());
        }
        self
    }

    /// Adds a header field, replacing an earlier one with the same name (case-insensitive).
    ///
    /// A name that is not an HTTP token, or a value containing CR, LF, NUL or another control
    /// character (other than tab), is not sent: the server answers `500` and logs the problem, so
    /// a value taken from client input can never split the response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let (name, value) = (name.into(), value.into());
        self.check_header(&name, &value);
        self.set_header(HeaderName::Owned(name), HeaderText::Owned(value));
        self
    }

    /// Replaces any header named `name` (case-insensitive) with `name: value`.
    pub(crate) fn set_header(&mut self, name: HeaderName, value: HeaderText) {
        // Usually there is none to replace: a scan, without `retain`'s bookkeeping.
        if self.headers.iter().any(|(n, _)| same_name(n, &name)) {
            self.headers.retain(|(n, _)| !same_name(n, &name));
        }
        self.headers.push((name, value));
    }

    /// Adds a header field, keeping earlier ones with the same name, so it is sent once per call
    /// (`Set-Cookie`, `Link`). Checked as [`Response::with_header`] is.
    ///
    /// # Examples
    ///
    /// ```
    /// let response = steadyloop::Response::text("hi")
    ///     .append_header("Set-Cookie", "a=1; HttpOnly")
    ///     .append_header("Set-Cookie", "b=2; HttpOnly");
    /// assert_eq!(response.header_all("set-cookie").count(), 2);
    /// ```
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let (name, value) = (name.into(), value.into());
        self.check_header(&name, &value);
        self.headers
            .push((HeaderName::Owned(name), HeaderText::Owned(value)));
        self
    }

    /// Removes every header field named `name` (case-insensitive).
    pub fn without_header(mut self, name: &str) -> Response {
        self.headers.retain(|(n, _)| !same_name(n, name));
        self
    }

    /// Returns the values of every header field named `name` (case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| same_name(n, name))
            .map(|(_, v)| &**v)
    }

    /// Sets header `name` to `value` like [`Response::with_header`], without checking them: for
    /// names and values the server made itself and already knows to be safe (a layer's
    /// configured header name, a value it validated or generated), on the per-request path.
    /// (Only the gzip layer still takes a response by value this way.)
    #[cfg(feature = "compress")]
    pub(crate) fn with_known_header(
        mut self,
        name: impl Into<HeaderName>,
        value: impl Into<HeaderText>,
    ) -> Response {
        let (name, value) = (name.into(), value.into());
        debug_assert!(is_token(name.as_bytes()) && is_field_value(value.as_bytes()));
        self.set_header(name, value);
        self
    }

    /// Sets header `name` to `value` like [`Response::with_header`], for constants written in
    /// the server's own code: no allocation, no check (a debug build checks them).
    #[cfg(feature = "compress")]
    pub(crate) fn with_static_header(self, name: &'static str, value: &'static str) -> Response {
        self.with_known_header(name, value)
    }

    /// Marks the response unsendable if `name` or `value` could not be sent safely.
    fn check_header(&mut self, name: &str, value: &str) {
        if self.invalid.is_none() {
            if !is_token(name.as_bytes()) {
                self.invalid = Some(format!("invalid header name {name:?}").into());
            } else if !is_field_value(value.as_bytes()) {
                self.invalid = Some(format!("invalid value for header {name}").into());
            }
        }
    }

    /// Replaces the body with `body`.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Body::Full(body.into());
        self
    }

    /// Returns the status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Returns the value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| &**v)
    }

    /// Returns all header fields in the order they were added.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (&**n, &**v))
    }

    /// Returns the body, or an empty slice for a streamed body.
    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Full(bytes) => bytes,
            Body::Static(bytes) => bytes,
            Body::Stream(_) => &[],
        }
    }

    /// Returns `true` if the body is streamed from a [`BodySender`].
    pub fn is_streaming(&self) -> bool {
        matches!(self.body, Body::Stream(_))
    }

    /// Declares the exact length of a streamed body (files), so it is sent with
    /// `Content-Length`; no effect on a whole body.
    pub(crate) fn with_stream_len(mut self, len: u64) -> Response {
        if let Body::Stream(stream) = &mut self.body {
            stream.len = Some(len);
        }
        self
    }

    /// Marks a streamed body as server-sent events (keep-alives, ends at shutdown).
    pub(crate) fn into_event_stream(mut self) -> Response {
        if let Body::Stream(stream) = &mut self.body {
            stream.events = true;
        }
        self
    }

    /// Returns why the response cannot be sent as built, if it cannot.
    pub(crate) fn invalid_reason(&self) -> Option<&str> {
        self.invalid.as_deref()
    }

    /// Swaps the body for `body` and returns the old one (layers that re-encode bodies).
    pub(crate) fn swap_body(&mut self, body: Body) -> Body {
        std::mem::replace(&mut self.body, body)
    }

    /// Splits the response into its parts for a front end to write.
    pub(crate) fn into_parts(self) -> (u16, HeaderList, Body) {
        (self.status, self.headers, self.body)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            Body::Full(bytes) => format!("{} bytes", bytes.len()),
            Body::Static(bytes) => format!("{} bytes", bytes.len()),
            Body::Stream(_) => "stream".to_string(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

/// The sending half of a streamed response body, made by [`Response::channel`].
///
/// It is `Send`: hand it to an offloaded job and push chunks as they are computed. Sending waits
/// while the channel is full (the client is slower than the producer) and fails once the client
/// has gone away, which is the producer's signal to stop.
#[derive(Clone)]
pub struct BodySender {
    /// The bounded channel the server drains into the socket.
    tx: async_channel::Sender<Vec<u8>>,
}

/// The error returned when the receiving side of a streamed body is gone (the client disconnected
/// or the response was dropped); the chunk is handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyClosed(pub Vec<u8>);

impl fmt::Display for BodyClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body receiver is gone")
    }
}

impl std::error::Error for BodyClosed {}

impl BodySender {
    /// Sends a chunk, blocking the current thread while the channel is full.
    ///
    /// For offloaded jobs and other threads; never call it on the event loop.
    ///
    /// # Errors
    ///
    /// Returns [`BodyClosed`] once the client is gone.
    pub fn send_blocking(&self, chunk: impl Into<Vec<u8>>) -> Result<(), BodyClosed> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return Ok(());
        }
        self.tx.send_blocking(chunk).map_err(|e| BodyClosed(e.0))
    }

    /// Sends a chunk, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// Returns [`BodyClosed`] once the client is gone.
    pub async fn send(&self, chunk: impl Into<Vec<u8>>) -> Result<(), BodyClosed> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return Ok(());
        }
        self.tx.send(chunk).await.map_err(|e| BodyClosed(e.0))
    }

    /// Offers a chunk without waiting (for broadcasts, which drop a client that is full).
    pub(crate) fn try_send(
        &self,
        chunk: Vec<u8>,
    ) -> Result<(), async_channel::TrySendError<Vec<u8>>> {
        self.tx.try_send(chunk)
    }

    /// Returns `true` if the client is gone and further chunks would be discarded.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl fmt::Debug for BodySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodySender")
            .field("queued", &self.tx.len())
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

/// Conversion of a handler's return value into a [`Response`].
///
/// Implemented for [`Response`], `&'static str` and `String` (200, plain text),
/// [`Error`](crate::Error) (through [`Error::into_response`](crate::Error::into_response)), and
/// `Result<T, Error>` for any `T` that converts, so handlers can use `?` and return `Ok(...)`.
pub trait IntoResponse {
    /// Converts `self` into a response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::static_text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_with_crlf_marks_the_response_invalid() {
        let response = Response::text("x").with_header("X-Echo", "a\r\nSet-Cookie: b");
        assert!(response.invalid_reason().is_some());
        let response = Response::text("x").with_header("Bad Name", "v");
        assert!(response.invalid_reason().is_some());
        let response = Response::text("x").with_header("X-Ok", "v\tw ü");
        assert!(response.invalid_reason().is_none());
    }

    #[test]
    fn with_header_replaces_case_insensitively() {
        let response = Response::text("x").with_header("content-type", "text/csv");
        assert_eq!(response.header("Content-Type"), Some("text/csv"));
        assert_eq!(response.headers().count(), 1);
    }

    #[test]
    fn unavailable_rounds_retry_after_up_to_whole_seconds() {
        let response = Response::unavailable(Duration::from_millis(1500), "busy");
        assert_eq!(response.status(), 503);
        assert_eq!(response.header("retry-after"), Some("2"));
        assert_eq!(response.body_bytes(), b"busy\n");
        let response = Response::unavailable(Duration::ZERO, "busy");
        assert_eq!(response.header("retry-after"), Some("1"));
    }

    #[test]
    fn informational_status_is_invalid() {
        assert!(Response::new(101).invalid_reason().is_some());
        assert!(Response::new(204).invalid_reason().is_none());
    }
}
