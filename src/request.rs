//! The request type handlers receive: front-end independent, owned, and `Send`.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::extensions::Extensions;

mod fields;

pub(crate) use fields::{HeaderFields, Spans};

/// Where a request's target is: a string of its own, or a span of the head's bytes that its
/// header fields keep (the native front end: no allocation of its own; as a `String`, a
/// `GET /healthz` spent a malloc and a free on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The target, owned.
    Owned(String),
    /// The target is these bytes of the head (checked ASCII by the parser).
    InHead {
        /// Offset of the first byte.
        start: u32,
        /// Offset past the last byte.
        end: u32,
    },
}

impl From<String> for Target {
    fn from(target: String) -> Target {
        Target::Owned(target)
    }
}

impl From<&str> for Target {
    fn from(target: &str) -> Target {
        Target::Owned(target.to_string())
    }
}

/// An HTTP request as handlers see it: method, path, decoded query, headers, the whole body and
/// the route's parameters.
///
/// The front end has already read and limited the body, so `body()` never waits. A `Request` is
/// `Send`, so it can move into a blocking route or an offloaded job.
pub struct Request {
    /// Everything but the request id, boxed: a request moves by value through the layers, the
    /// handler and the pool, and each future that holds one grew by its size (232 bytes inline:
    /// the connection's per-request future was past glibc's per-thread cache for it).
    parts: Box<Parts>,
    /// The id a `RequestId` layer gave the request (a field of its own: it is on the hot path
    /// of every request when the layer is on; held inline up to 22 bytes, so a fresh id
    /// allocates nothing).
    pub(crate) request_id: Option<crate::response::HeaderText>,
}

/// What a [`Request`] holds, behind one allocation.
struct Parts {
    /// The method, as sent (methods are case-sensitive); the common ones are not allocated.
    method: Cow<'static, str>,
    /// The target in origin form, still percent-encoded: the path, then `?` and the raw query
    /// if there is one (one string for both: one allocation fewer per request with a query).
    target: Target,
    /// Where the path ends in `target` (the `?`, or its length).
    path_end: usize,
    /// Query pairs, percent- and `+`-decoded, in order; `None` when there are none (an empty
    /// `Vec` here and in `params` cost about 36 instructions each to drop, a `None` a few).
    query: Option<Vec<(String, String)>>,
    /// `true` for HTTP/1.0 requests.
    http10: bool,
    /// Header fields in the order received; names as sent.
    headers: HeaderFields,
    /// The body, complete; shared so a large one can be parsed on the pool without a copy.
    /// `None` when empty, so a request without a body allocates nothing for it.
    body: Option<Arc<Vec<u8>>>,
    /// Route parameters (`:id` → value), percent-decoded; `None` when there are none.
    params: Option<Vec<(String, String)>>,
    /// The client's address, when the front end knows it.
    peer: Option<SocketAddr>,
    /// Typed values attached by layers; boxed when the first one is (an empty map cost about
    /// 40 instructions per request to drop).
    extensions: Option<Box<Extensions>>,
}

/// Empty parts, for a request whose head is still to be parsed.
impl Default for Parts {
    fn default() -> Parts {
        Parts {
            method: Cow::Borrowed(""),
            target: Target::InHead { start: 0, end: 0 },
            path_end: 0,
            query: None,
            http10: false,
            headers: HeaderFields::default(),
            body: None,
            params: None,
            peer: None,
            extensions: None,
        }
    }
}

/// Returns `method` as a static string when it is a common one (no allocation), else owned.
///
/// A `match`, which compares lengths first: searching a table of the nine names with `==`
/// cost 54 instructions per request.
pub(crate) fn method_name(method: &str) -> Cow<'static, str> {
    Cow::Borrowed(match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => return Cow::Owned(method.to_string()),
    })
}

impl Request {
    /// Creates a request from its parts, with one `(name, value)` pair per header field.
    pub(crate) fn new(
        method: impl Into<Cow<'static, str>>,
        target: impl Into<String>,
        http10: bool,
        headers: Vec<(String, Vec<u8>)>,
        peer: Option<SocketAddr>,
    ) -> Request {
        Request::with_fields(
            method,
            Target::Owned(target.into()),
            http10,
            headers.into(),
            peer,
        )
    }

    /// Creates a request from its parts; front ends call this after parsing. The target is
    /// kept as it is (it becomes the path and query): a span of the head's bytes from the
    /// native front end, so it is neither copied nor allocated.
    pub(crate) fn with_fields(
        method: impl Into<Cow<'static, str>>,
        target: impl Into<Target>,
        http10: bool,
        headers: HeaderFields,
        peer: Option<SocketAddr>,
    ) -> Request {
        let target = target.into();
        let (path_end, query) = split_target(&target, &headers);
        Request {
            parts: Box::new(Parts {
                method: method.into(),
                target,
                path_end,
                query,
                http10,
                headers,
                body: None,
                params: None,
                peer,
                extensions: None,
            }),
            request_id: None,
        }
    }

    /// Creates a request around a head's bytes before they are parsed; the parser then adds
    /// the fields' spans in place (see [`Request::head_mut`]) and sets the request line (see
    /// [`Request::set_line`]), so nothing it found is moved into the box afterwards.
    pub(crate) fn from_head_bytes(bytes: Vec<u8>) -> Request {
        // Made in the box (`Box::default` writes the value where it is allocated), then given
        // the bytes: `Box::new` of the parts built on the stack copied their 330 bytes over
        // and cost about 40 instructions more per request.
        let mut parts = Box::<Parts>::default();
        parts.headers.set_head(bytes);
        Request {
            parts,
            request_id: None,
        }
    }

    /// Returns the head's bytes and the spans of the fields in them, for the parser to add
    /// each field where it found it (a request made by [`Request::from_head_bytes`]).
    pub(crate) fn head_mut(&mut self) -> (&[u8], &mut Spans) {
        self.parts.headers.head_mut()
    }

    /// Sets the request line of a request made by [`Request::from_head_bytes`], once its
    /// target is known to be a span of the head's bytes or a string of its own.
    pub(crate) fn set_line(&mut self, method: Cow<'static, str>, target: Target, http10: bool) {
        let parts = &mut *self.parts;
        let (path_end, query) = split_target(&target, &parts.headers);
        parts.method = method;
        parts.target = target;
        parts.path_end = path_end;
        parts.query = query;
        parts.http10 = http10;
    }

    /// Sets the body (front ends, after reading it).
    pub(crate) fn set_body(&mut self, body: Vec<u8>) {
        self.parts.body = (!body.is_empty()).then(|| Arc::new(body));
    }

    /// Returns the request with `body` (the native front end: a plain move, where a borrow
    /// would keep the request in the connection's future across the handler's run).
    pub(crate) fn with_body(mut self, body: Vec<u8>) -> Request {
        self.set_body(body);
        self
    }

    /// Sets the client's address (front ends, once the head is parsed).
    pub(crate) fn set_peer(&mut self, peer: Option<SocketAddr>) {
        self.parts.peer = peer;
    }

    /// Returns the whole target in origin form, still percent-encoded (`/items?id=1`).
    #[cfg(test)]
    pub(crate) fn target(&self) -> &str {
        target_text(&self.parts.target, &self.parts.headers)
    }

    /// Returns the body, shared (for parsing on the pool).
    #[cfg(feature = "json")]
    pub(crate) fn shared_body(&self) -> Arc<Vec<u8>> {
        self.parts.body.clone().unwrap_or_default()
    }

    /// Returns the header fields, for the setters layers use.
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderFields {
        &mut self.parts.headers
    }

    /// Returns the typed values layers attached (see `extensions()`).
    pub(crate) fn extensions_ref(&self) -> &Extensions {
        /// What a request without extensions lends out.
        static EMPTY: OnceLock<Extensions> = OnceLock::new();
        match &self.parts.extensions {
            Some(extensions) => extensions,
            None => EMPTY.get_or_init(Extensions::new),
        }
    }

    /// Returns the typed values layers attached, for changing (see `extensions_mut()`).
    pub(crate) fn extensions_mut_ref(&mut self) -> &mut Extensions {
        self.parts.extensions.get_or_insert_with(Box::default)
    }

    /// Sets the route parameters (the router, after matching).
    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.parts.params = (!params.is_empty()).then_some(params);
    }

    /// Returns the method, for example `"GET"`.
    pub fn method(&self) -> &str {
        &self.parts.method
    }

    /// Returns the path of the request target, still percent-encoded (`/items/a%20b`).
    pub fn path(&self) -> &str {
        &target_text(&self.parts.target, &self.parts.headers)[..self.parts.path_end]
    }

    /// Returns the path's bytes, without the UTF-8 check [`Request::path`] makes of a target
    /// kept in the head's bytes (the router's exact match needs bytes only).
    pub(crate) fn path_bytes(&self) -> &[u8] {
        &target_bytes(&self.parts.target, &self.parts.headers)[..self.parts.path_end]
    }

    /// Returns the raw query string (the part after `?`, still encoded), or `""`.
    pub fn raw_query(&self) -> &str {
        target_text(&self.parts.target, &self.parts.headers)
            .get(self.parts.path_end + 1..)
            .unwrap_or("")
    }

    /// Returns the decoded value of query parameter `name` (the first one, if repeated).
    ///
    /// `+` decodes to a space and `%XX` to its byte; invalid UTF-8 is replaced with U+FFFD.
    pub fn query_str(&self, name: &str) -> Option<&str> {
        pairs(&self.parts.query)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses query parameter `name` as a `T`.
    ///
    /// Returns `Ok(None)` if it is absent, so a default reads naturally:
    /// `req.query("rows")?.unwrap_or(20_000)`.
    ///
    /// # Errors
    ///
    /// Returns a 400 [`Error`] naming the parameter if the value does not parse.
    pub fn query<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.query_str(name) {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| {
                Error::bad_request(format!(
                    "invalid value for query parameter `{name}`: {value:?}"
                ))
            }),
        }
    }

    /// Returns all decoded query pairs in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        pairs(&self.parts.query)
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Returns the decoded value of route parameter `name` (`:name` in the route pattern).
    pub fn param(&self, name: &str) -> Option<&str> {
        pairs(&self.parts.params)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Returns the value of header `name` (case-insensitive; the first one if repeated), if it
    /// is present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Returns the raw value of header `name` (case-insensitive; the first one if repeated).
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.parts.headers.get(name)
    }

    /// Returns all header fields in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.parts.headers.iter()
    }

    /// Returns the body (empty if the request had none).
    pub fn body(&self) -> &[u8] {
        self.parts.body.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Returns the body as UTF-8 text.
    ///
    /// # Errors
    ///
    /// Returns a 400 [`Error`] if the body is not valid UTF-8.
    pub fn body_str(&self) -> Result<&str> {
        std::str::from_utf8(self.body())
            .map_err(|e| Error::bad_request(format!("request body is not UTF-8: {e}")))
    }

    /// Takes the body out of the request.
    pub fn into_body(self) -> Vec<u8> {
        match self.parts.body {
            None => Vec::new(),
            Some(body) => Arc::try_unwrap(body).unwrap_or_else(|shared| shared.as_ref().clone()),
        }
    }

    /// Returns `true` if the request was made with HTTP/1.0.
    pub fn is_http10(&self) -> bool {
        self.parts.http10
    }

    /// Returns the client's address, when the front end knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.parts.peer
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &pairs(&self.parts.query))
            .field("params", &pairs(&self.parts.params))
            .field("headers", &self.parts.headers.len())
            .field("body", &self.body().len())
            .finish()
    }
}

/// Returns the text of a request's target, wherever it is kept.
fn target_text<'a>(target: &'a Target, headers: &'a HeaderFields) -> &'a str {
    match target {
        Target::Owned(text) => text,
        Target::InHead { start, end } => headers.text(*start as usize..*end as usize),
    }
}

/// Returns the bytes of a request's target, wherever it is kept.
fn target_bytes<'a>(target: &'a Target, headers: &'a HeaderFields) -> &'a [u8] {
    match target {
        Target::Owned(text) => text.as_bytes(),
        Target::InHead { start, end } => headers.bytes_at(*start as usize..*end as usize),
    }
}

/// Returns where the path ends in `target` (the `?`, or its length) and the decoded query
/// pairs, if there are any.
fn split_target(target: &Target, headers: &HeaderFields) -> (usize, Option<Vec<(String, String)>>) {
    // The `?` found in the bytes: a target in the head is text only after a UTF-8 check
    // (about 100 instructions), made here only when there is a query to decode.
    let bytes = target_bytes(target, headers);
    let path_end = bytes.iter().position(|&b| b == b'?').unwrap_or(bytes.len());
    let query = if path_end + 1 >= bytes.len() {
        // Most requests have no query: splitting an empty one cost about 70 instructions.
        None
    } else {
        let raw_query = &target_text(target, headers)[path_end + 1..];
        Some(decode_query(raw_query)).filter(|pairs| !pairs.is_empty())
    };
    (path_end, query)
}

/// Returns the pairs held, or none.
fn pairs(held: &Option<Vec<(String, String)>>) -> &[(String, String)] {
    held.as_deref().unwrap_or_default()
}

/// Splits a raw query into its pairs, percent- and `+`-decoded, in order.
fn decode_query(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(name, true), decode_component(value, true))
        })
        .collect()
}

/// Percent-decodes `input`; with `plus`, `+` becomes a space (query strings).
///
/// Malformed escapes are kept as they are; invalid UTF-8 becomes U+FFFD.
pub(crate) fn decode_component(input: &str, plus: bool) -> String {
    if !input.bytes().any(|b| b == b'%' || (plus && b == b'+')) {
        return input.to_string();
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Returns the value of an ASCII hex digit.
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded() {
        let req = Request::new(
            "GET",
            "/r?rows=10&name=a+b%20c&empty&x=%zz",
            false,
            vec![],
            None,
        );
        assert_eq!(req.path(), "/r");
        assert_eq!(req.query_str("name"), Some("a b c"));
        assert_eq!(req.query_str("empty"), Some(""));
        assert_eq!(req.query_str("x"), Some("%zz"));
        assert_eq!(req.query::<u32>("rows").unwrap(), Some(10));
        assert_eq!(req.query::<u32>("missing").unwrap(), None);
        assert_eq!(req.query::<u32>("name").unwrap_err().status_code(), 400);
    }

    #[test]
    fn decode_handles_edges() {
        assert_eq!(decode_component("%", false), "%");
        assert_eq!(decode_component("a%4", false), "a%4");
        assert_eq!(decode_component("a%41", false), "aA");
        assert_eq!(decode_component("%ff", false), "\u{fffd}");
        assert_eq!(decode_component("a+b", false), "a+b");
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let req = Request::new(
            "GET",
            "/",
            false,
            vec![
                ("X-Thing".into(), b"1".to_vec()),
                ("x-thing".into(), b"2".to_vec()),
            ],
            None,
        );
        assert_eq!(req.header("x-THING"), Some("1"));
    }
}
