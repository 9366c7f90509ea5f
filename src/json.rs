//! Typed bodies and queries (the `json` feature): [`Request::json`], [`Request::form`],
//! [`Request::query_as`] and the [`Json`] response.
//!
//! Every parse error is a 400 whose message names the field path (`readings[2].value`) and, for
//! JSON, the line and column; a body whose `Content-Type` is not the expected one is a 415.
//! Bodies larger than [`POOL_PARSE_BYTES`] are parsed on the CPU pool (in the route's class), so
//! an 8 MiB upload never holds the loop.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pool::offload;
use crate::request::Request;
use crate::request_builder::RequestBuilder;
use crate::response::{IntoResponse, Response};

/// Bodies up to this many bytes are parsed on the loop; larger ones on the pool. Parsing 64 KiB
/// of JSON takes well under a millisecond, less than handing it to a worker and back costs in
/// latency under load.
pub const POOL_PARSE_BYTES: usize = 64 * 1024;

/// A JSON response (`200 OK`, `Content-Type: application/json`) serialised from `T`.
///
/// # Examples
///
/// ```
/// use serde::Serialize;
/// use steadyloop::{Json, Router};
///
/// #[derive(Serialize)]
/// struct Reading {
///     sensor: &'static str,
///     celsius: f32,
/// }
///
/// let app = Router::new().get("/api/readings", |_req| async {
///     Json(vec![Reading { sensor: "attic", celsius: 21.5 }])
/// });
/// let response = steadyloop::TestClient::new(app).get("/api/readings");
/// assert_eq!(response.text(), r#"[{"sensor":"attic","celsius":21.5}]"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::new(200)
                .with_header("Content-Type", "application/json")
                .with_body(body),
            Err(e) => Error::status(500, format!("could not serialise a JSON response: {e}"))
                .into_response(),
        }
    }
}

/// Typed bodies and queries; each parse error is a 400 naming the field.
impl Request {
    /// Parses the body as JSON into a `T`.
    ///
    /// Bodies over [`POOL_PARSE_BYTES`] are parsed on the CPU pool, in the route's class (so a
    /// full queue answers 503, as any offloaded work does).
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::Deserialize;
    /// use steadyloop::{Request, Router};
    ///
    /// #[derive(Deserialize)]
    /// struct Config {
    ///     interval_s: u32,
    /// }
    ///
    /// let app = Router::new().post("/api/config", |req: Request| async move {
    ///     let config: Config = req.json().await?;
    ///     Ok(format!("every {} s\n", config.interval_s))
    /// });
    /// let client = steadyloop::TestClient::new(app);
    /// let ok = client.send(
    ///     Request::builder().method("POST").uri("/api/config")
    ///         .header("Content-Type", "application/json")
    ///         .body(r#"{"interval_s": 30}"#),
    /// );
    /// assert_eq!(ok.text(), "every 30 s\n");
    /// let bad = client.send(
    ///     Request::builder().method("POST").uri("/api/config")
    ///         .header("Content-Type", "application/json")
    ///         .body(r#"{"interval_s": "often"}"#),
    /// );
    /// assert_eq!(bad.status(), 400);
    /// assert!(bad.text().contains("interval_s"), "{}", bad.text());
    /// ```
    ///
    /// # Errors
    ///
    /// 415 if `Content-Type` is not `application/json` (or `application/*+json`); 400 if the
    /// body is not JSON or does not fit `T` (the message names the field path, line and
    /// column); 503 if the body is large and the pool sheds the parse.
    pub async fn json<T>(&self) -> Result<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        if !is_json(self.header("content-type")) {
            return Err(unsupported("application/json"));
        }
        if self.body().len() <= POOL_PARSE_BYTES {
            return parse_json(self.body());
        }
        let body = self.shared_body();
        offload(move || parse_json(&body)).await?
    }

    /// Parses an `application/x-www-form-urlencoded` body into a `T`; large bodies on the pool,
    /// as [`Request::json`] does.
    ///
    /// # Errors
    ///
    /// 415 for another `Content-Type`; 400 naming the field if the form does not fit `T`.
    pub async fn form<T>(&self) -> Result<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        if !has_media_type(
            self.header("content-type"),
            "application/x-www-form-urlencoded",
        ) {
            return Err(unsupported("application/x-www-form-urlencoded"));
        }
        if self.body().len() <= POOL_PARSE_BYTES {
            return parse_form(self.body(), "form body");
        }
        let body = self.shared_body();
        offload(move || parse_form(&body, "form body")).await?
    }

    /// Parses the query string into a `T` (`?rows=10&name=x` into a struct with `rows` and
    /// `name`); absent optional fields are `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::Deserialize;
    /// use steadyloop::Request;
    ///
    /// #[derive(Debug, Deserialize)]
    /// struct Page {
    ///     rows: u32,
    ///     after: Option<String>,
    /// }
    ///
    /// let req = Request::builder().uri("/items?rows=20").build();
    /// let page: Page = req.query_as()?;
    /// assert_eq!((page.rows, page.after), (20, None));
    /// let bad = Request::builder().uri("/items?rows=lots").build();
    /// let err = bad.query_as::<Page>().unwrap_err();
    /// assert_eq!(err.status_code(), 400);
    /// assert!(err.to_string().contains("rows"), "{err}");
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// 400 naming the parameter if the query does not fit `T`.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T> {
        parse_form(self.raw_query().as_bytes(), "query string")
    }
}

/// Typed bodies for requests built by hand (tests, the [`TestClient`](crate::TestClient)).
impl RequestBuilder {
    /// Sets the body to `value` as JSON and `Content-Type` to `application/json`.
    ///
    /// # Panics
    ///
    /// Panics if `value` cannot be serialised (a map with non-string keys, a failing
    /// `Serialize` implementation).
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> RequestBuilder {
        let body = serde_json::to_vec(value).expect("a test request body serialises to JSON");
        self.header("Content-Type", "application/json").body(body)
    }

    /// Sets the body to `value` form-encoded and `Content-Type` to
    /// `application/x-www-form-urlencoded`.
    ///
    /// # Panics
    ///
    /// Panics if `value` is not a flat struct or map of plain values.
    pub fn form<T: Serialize + ?Sized>(self, value: &T) -> RequestBuilder {
        let body = serde_urlencoded::to_string(value).expect("a test form body serialises");
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// Parses `bytes` as one JSON value of type `T`.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        invalid("JSON body", &path, e.into_inner())
    })?;
    // Trailing data after the value is an error too, not silently ignored.
    de.end().map_err(|e| invalid("JSON body", ".", e))?;
    Ok(value)
}

/// Parses `bytes` as `application/x-www-form-urlencoded` pairs into a `T`.
fn parse_form<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        invalid(what, &path, e.into_inner())
    })
}

/// The 400 for a body or query that does not fit: `invalid JSON body at items[2].value: ...`.
fn invalid(what: &str, path: &str, error: impl fmt::Display) -> Error {
    if path == "." || path.is_empty() {
        Error::bad_request(format!("invalid {what}: {error}"))
    } else {
        Error::bad_request(format!("invalid {what} at {path}: {error}"))
    }
}

/// The 415 for a body of the wrong type.
fn unsupported(expected: &str) -> Error {
    Error::status(415, format!("expected Content-Type: {expected}"))
}

/// Returns `true` for `application/json` and `application/<anything>+json`, with parameters.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(media) = content_type.map(media_type) else {
        return false;
    };
    media.eq_ignore_ascii_case("application/json")
        || (media.len() > "application/+json".len()
            && media[.."application/".len()].eq_ignore_ascii_case("application/")
            && media[media.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Returns `true` if `content_type`'s media type is `expected` (case-insensitive).
fn has_media_type(content_type: Option<&str>, expected: &str) -> bool {
    content_type.is_some_and(|value| media_type(value).eq_ignore_ascii_case(expected))
}

/// Returns the media type of a `Content-Type` value, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Reading {
        id: u32,
        value: f64,
    }

    #[derive(Debug, Deserialize)]
    struct Batch {
        #[allow(dead_code)]
        readings: Vec<Reading>,
    }

    #[test]
    fn json_errors_name_the_field_and_position() {
        let body =
            b"{\"readings\": [\n {\"id\": 1, \"value\": 2.5},\n {\"id\": 2, \"value\": \"x\"}]}";
        let message = parse_json::<Batch>(body).unwrap_err().to_string();
        assert!(message.contains("readings[1].value"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        let missing = parse_json::<Reading>(br#"{"id": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing field `value`"), "{missing}");
        let trailing = parse_json::<Reading>(br#"{"id":1,"value":1} x"#).unwrap_err();
        assert_eq!(trailing.status_code(), 400);
    }

    #[test]
    fn content_types_are_matched_by_media_type() {
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("Application/JSON")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/json+plain")));
        assert!(!is_json(Some("application/+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
        assert!(has_media_type(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "application/x-www-form-urlencoded"
        ));
    }

    #[test]
    fn form_errors_name_the_field() {
        let err = parse_form::<Reading>(b"id=1&value=warm", "form body").unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(err.to_string().contains("value"), "{err}");
        let ok: Reading = parse_form(b"id=1&value=2.5", "form body").unwrap();
        assert_eq!(ok, Reading { id: 1, value: 2.5 });
    }

    #[test]
    fn json_response_sets_the_content_type() {
        let response = Json(vec![1, 2]).into_response();
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body_bytes(), b"[1,2]");
    }
}
