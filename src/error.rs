//! The crate's error type.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::response::Response;

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
    /// The work was cancelled before it finished (client gone, shutdown). Answered with 503.
    Cancelled,
    /// The request ran past its route's deadline. Answered with 504.
    Timeout,
    /// A response with this status code and plain-text message, for errors a handler reports on
    /// purpose (`Error::status(400, "rows must be a number")`).
    Status(u16, String),
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

    /// Returns the HTTP status code the server answers this error with.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Overloaded { .. } | Error::QueueTimeout { .. } | Error::Cancelled => 503,
            Error::Timeout => 504,
            Error::Status(code, _) => *code,
            Error::Io(_) | Error::Config(_) | Error::HandlerPanicked(_) => 500,
        }
    }

    /// Turns the error into the response the server sends for it.
    ///
    /// 503s carry `Retry-After` (whole seconds, at least 1). Internal errors (I/O, panics,
    /// configuration) are answered with a generic body; their details go to the log instead.
    pub fn into_response(self) -> Response {
        let code = self.status_code();
        let body = match &self {
            Error::Status(_, message) => format!("{message}\n"),
            Error::Io(_) | Error::Config(_) | Error::HandlerPanicked(_) => {
                "internal server error\n".to_string()
            }
            other => format!("{other}\n"),
        };
        let mut response = Response::text(body).with_status(code);
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response = response.with_header("Retry-After", secs.max(1).to_string());
        } else if matches!(self, Error::Cancelled) {
            response = response.with_header("Retry-After", "1");
        }
        response
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
            Error::Cancelled => write!(f, "cancelled"),
            Error::Timeout => write!(f, "request deadline exceeded"),
            Error::Status(code, message) => write!(f, "{code}: {message}"),
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

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::Io(err)
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
    fn panic_message_is_not_sent_to_the_client() {
        let response = Error::HandlerPanicked("secret".into()).into_response();
        assert_eq!(response.status(), 500);
        assert!(!String::from_utf8_lossy(response.body_bytes()).contains("secret"));
    }
}
