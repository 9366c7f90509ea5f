//! The crate's error type, the response each error is answered with, and the text of a panic.
//!
//! [`Error::into_response`] is the one place an error becomes a response: the [`IntoResponse`]
//! impls call it, and it logs every 500 with its detail while the client gets a generic body.

use std::any::Any;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::response::{IntoResponse, Response};

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in steadyloop, from binding a port to a job that panicked.
///
/// Handlers return it with `?`; the server turns each variant into a response (see
/// [`Error::into_response`]), so a handler error never takes the loop down.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// An I/O operation failed (binding, accepting, reading a file in a handler, ...).
    Io(io::Error),
    /// The server configuration is invalid; the message says which setting and why.
    Config(String),
    /// The pool class's queue is full; the job was not queued. Answered with 503 and `Retry-After`.
    Overloaded {
        /// The pool class that shed the job.
        class: String,
        /// When the class is expected to have room again, from its observed drain rate.
        retry_after: Duration,
    },
    /// The job waited in the queue past its class's queue deadline and never started. Answered with
    /// 503 and `Retry-After`.
    QueueTimeout {
        /// The pool class the job waited in.
        class: String,
        /// When the class is expected to have room again, from its observed drain rate.
        retry_after: Duration,
    },
    /// The job or handler panicked; the text is the panic message. Answered with 500; the message is
    /// logged, never sent to the client.
    HandlerPanicked(String),
    /// The producer of a streamed response body sent nothing for this long while the server had
    /// to collect the whole body first (an HTTP/1.0 client on the tiny_http front end). Answered
    /// with 500.
    StreamStalled(Duration),
    /// The server's thread panicked or ended before it was ready; the text says which. Returned
    /// by [`ServerBuilder::spawn`](crate::ServerBuilder::spawn) and
    /// [`ServerHandle::join`](crate::ServerHandle::join), never sent to a client.
    ServerThread(String),
    /// The work was cancelled before it finished (client gone, shutdown). Answered with 503.
    Cancelled,
    /// The request ran past its route's deadline. Answered with 504.
    Timeout,
    /// A response with this status code and plain-text message, for errors a handler reports on
    /// purpose (`Error::status(400, "rows must be a number")`). A 500's message is logged and
    /// the client gets the generic text, as for the internal errors above.
    Status(u16, String),
    /// An error answered with exactly this response: what [`Error::with_header`] makes, and what
    /// `?` makes of a [`Response`] (`Err(response)?`).
    Response(Box<Response>),
}

impl Error {
    /// Builds an error answered with `status` and `message` as a plain-text body.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadyloop::Error::status(404, "no such item");
    /// assert_eq!(err.into_response().status(), 404);
    /// ```
    pub fn status(status: u16, message: impl Into<String>) -> Error {
        Error::Status(status, message.into())
    }

    /// Builds an error answered with `400 Bad Request` and `message`.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::Status(400, message.into())
    }

    /// Builds a `401 Unauthorized` error whose `WWW-Authenticate` header is `challenge`
    /// (`Bearer realm="api"`, `Basic realm="admin"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadyloop::{Error, Request, Result};
    ///
    /// fn check(req: &Request) -> Result<()> {
    ///     match req.header("authorization") {
    ///         Some("Bearer s3cret") => Ok(()),
    ///         _ => Err(Error::unauthorized("Bearer realm=\"api\"")),
    ///     }
    /// }
    /// let response = check(&Request::builder().build()).unwrap_err().into_response();
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(response.header("www-authenticate"), Some("Bearer realm=\"api\""));
    /// ```
    pub fn unauthorized(challenge: impl Into<String>) -> Error {
        Error::status(401, "unauthorized").with_header("WWW-Authenticate", challenge)
    }

    /// Adds a header to the response this error is answered with (replacing one of the same
    /// name); use [`Error::append_header`] for a header that may repeat.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadyloop::Error::status(429, "slow down").with_header("Retry-After", "30");
    /// let response = err.into_response();
    /// assert_eq!((response.status(), response.header("retry-after")), (429, Some("30")));
    /// ```
    pub fn with_header(self, name: impl Into<String>, value: impl Into<String>) -> Error {
        Error::Response(Box::new(self.into_response().with_header(name, value)))
    }

    /// Adds a header to the response this error is answered with, keeping any of the same name.
    pub fn append_header(self, name: impl Into<String>, value: impl Into<String>) -> Error {
        Error::Response(Box::new(self.into_response().append_header(name, value)))
    }

    /// Returns the HTTP status code the server answers this error with.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Overloaded { .. } | Error::QueueTimeout { .. } | Error::Cancelled => 503,
            Error::Timeout => 504,
            Error::Status(code, _) => *code,
            Error::Response(response) => response.status(),
            Error::Io(_)
            | Error::Config(_)
            | Error::HandlerPanicked(_)
            | Error::StreamStalled(_)
            | Error::ServerThread(_) => 500,
        }
    }

    /// Turns the error into the response the server sends for it.
    ///
    /// Overload and cancellation answer 503 with `Retry-After` (whole seconds, at least 1).
    /// Every 500 (I/O, panics, configuration, a stalled stream, `Error::status(500, ..)`) is
    /// answered with the same generic body and logged here with its detail, so a 500 tells the
    /// client the same thing and is logged once, whichever way it came about. An
    /// [`Error::Response`] is its response.
    pub fn into_response(self) -> Response {
        if let Some(after) = self.retry_hint() {
            return Response::unavailable(after, &self.to_string());
        }
        match self {
            Error::Response(response) => *response,
            Error::Status(500, message) => internal_error(&message),
            Error::Status(code, message) => {
                Response::text(format!("{message}\n")).with_status(code)
            }
            internal if internal.is_internal() => internal_error(&internal),
            other => Response::text(format!("{other}\n")).with_status(other.status_code()),
        }
    }

    /// Returns how long the client should wait before retrying, for overload errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Overloaded { retry_after, .. } | Error::QueueTimeout { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Returns the `Retry-After` the response carries: the class's estimate for overload, one
    /// second for cancelled work.
    fn retry_hint(&self) -> Option<Duration> {
        match self {
            Error::Cancelled => Some(Duration::from_secs(1)),
            other => other.retry_after(),
        }
    }

    /// Returns `true` for errors whose detail is the server's business, not the client's.
    fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Io(_)
                | Error::Config(_)
                | Error::HandlerPanicked(_)
                | Error::StreamStalled(_)
                | Error::ServerThread(_)
        )
    }
}

/// Logs `detail` and returns the 500 the client gets instead: a generic body, since the detail
/// is the server's business. Every 500 the server builds itself goes through here.
pub(crate) fn internal_error(detail: &dyn fmt::Display) -> Response {
    log::error!("answering 500: {detail}");
    Response::text("internal server error\n").with_status(500)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "i/o error: {err}"),
            Error::Config(message) => write!(f, "invalid configuration: {message}"),
            Error::Overloaded { class, .. } => {
                write!(f, "overloaded: pool class `{class}` is full")
            }
            Error::QueueTimeout { class, .. } => {
                write!(f, "overloaded: job waited too long in pool class `{class}`")
            }
            Error::HandlerPanicked(message) => write!(f, "handler panicked: {message}"),
            Error::StreamStalled(idle) => {
                write!(f, "streamed body producer sent nothing for {idle:?}")
            }
            Error::ServerThread(message) => write!(f, "server thread failed: {message}"),
            Error::Cancelled => write!(f, "cancelled"),
            Error::Timeout => write!(f, "request deadline exceeded"),
            Error::Status(code, message) => write!(f, "{code}: {message}"),
            Error::Response(response) => write!(f, "{} response", response.status()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<Response> for Error {
    fn from(response: Response) -> Error {
        Error::Response(Box::new(response))
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::Io(err)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Error::into_response(self)
    }
}

impl<T: IntoResponse> IntoResponse for Result<T, Error> {
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(err) => Error::into_response(err),
        }
    }
}

/// Extracts the text of a panic payload (a caught panic, or a joined thread that panicked).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_maps_to_503_with_whole_seconds() {
        let err = Error::Overloaded {
            class: "reports".into(),
            retry_after: Duration::from_millis(1500),
        };
        let response = err.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.header("retry-after"), Some("2"));
    }

    #[test]
    fn errors_carry_headers_through_question_mark() {
        fn guarded() -> Result<&'static str> {
            Err(Error::unauthorized("Bearer"))?;
            Ok("never")
        }
        let response = guarded().unwrap_err().into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(response.header("WWW-Authenticate"), Some("Bearer"));
        assert_eq!(response.body_bytes(), b"unauthorized\n");
        let err = Error::status(409, "taken")
            .append_header("Set-Cookie", "a=1")
            .append_header("Set-Cookie", "b=2");
        assert_eq!(err.status_code(), 409);
        let response = err.into_response();
        assert_eq!(response.header_all("set-cookie").count(), 2);
    }

    #[test]
    fn panic_message_is_not_sent_to_the_client() {
        let response = Error::HandlerPanicked("secret".into()).into_response();
        assert_eq!(response.status(), 500);
        assert!(!String::from_utf8_lossy(response.body_bytes()).contains("secret"));
    }

    #[test]
    fn internal_errors_get_the_generic_body_and_status_errors_their_own() {
        for err in [
            Error::StreamStalled(Duration::from_secs(10)),
            Error::ServerThread("boom".into()),
            Error::Config("bad".into()),
        ] {
            let response = err.into_response();
            assert_eq!(response.status(), 500);
            assert_eq!(response.body_bytes(), b"internal server error\n");
        }
        // Issue 11: a 500 says the same whichever way it came; the detail is logged.
        let response = Error::status(500, "disk full").into_response();
        assert_eq!(response.body_bytes(), b"internal server error\n");
        let response = Error::status(418, "short and stout").into_response();
        assert_eq!(response.body_bytes(), b"short and stout\n");
        let response = Error::status(503, "later").into_response();
        assert_eq!(response.header("retry-after"), None);
    }

    #[test]
    fn cancelled_is_the_unavailable_response_with_one_second() {
        let response = Error::Cancelled.into_response();
        let expected = Response::unavailable(Duration::from_secs(1), "cancelled");
        assert_eq!(response.status(), expected.status());
        assert_eq!(
            response.headers().collect::<Vec<_>>(),
            expected.headers().collect::<Vec<_>>()
        );
        assert_eq!(response.body_bytes(), expected.body_bytes());
    }

    #[test]
    fn panic_message_reads_str_and_string_payloads() {
        let payload = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "plain");
        let payload = std::panic::catch_unwind(|| panic!("{}", 42)).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "42");
    }
}
