//! Making and changing requests outside a front end: `RequestBuilder` (for tests and the
//! [`TestClient`](crate::TestClient)) and the setters layers use to change a request on its way
//! to the handler.

use std::fmt;
use std::net::SocketAddr;

use crate::extensions::Extensions;
use crate::request::Request;

/// Builds a [`Request`] by hand, as a front end would from the wire.
///
/// Defaults: `GET /`, HTTP/1.1, no headers, an empty body, no peer address. Values are taken as
/// given; the builder does not apply the front end's limits (the [`TestClient`](crate::TestClient)
/// applies the route's body limit when it runs the request).
///
/// # Examples
///
/// ```
/// use steadyloop::Request;
///
/// let req = Request::builder()
///     .method("POST")
///     .uri("/items?draft=1")
///     .header("Content-Type", "text/plain")
///     .body("hello")
///     .build();
/// assert_eq!(req.path(), "/items");
/// assert_eq!(req.query_str("draft"), Some("1"));
/// assert_eq!(req.body(), b"hello");
/// ```
#[derive(Clone)]
pub struct RequestBuilder {
    /// The method.
    method: String,
    /// The request target: path and query, still percent-encoded.
    target: String,
    /// Whether the request claims HTTP/1.0.
    http10: bool,
    /// Header fields in order.
    headers: Vec<(String, Vec<u8>)>,
    /// The body.
    body: Vec<u8>,
    /// The client's address.
    peer: Option<SocketAddr>,
}

impl Default for RequestBuilder {
    fn default() -> RequestBuilder {
        RequestBuilder {
            method: "GET".to_string(),
            target: "/".to_string(),
            http10: false,
            headers: Vec::new(),
            body: Vec::new(),
            peer: None,
        }
    }
}

impl Request {
    /// Returns a builder for a request, `GET /` until told otherwise.
    pub fn builder() -> RequestBuilder {
        RequestBuilder::default()
    }
}

impl RequestBuilder {
    /// Sets the method (case-sensitive, as on the wire). Defaults to `GET`.
    pub fn method(mut self, method: impl Into<String>) -> RequestBuilder {
        self.method = method.into();
        self
    }

    /// Sets the request target: a path with an optional query, percent-encoded as on the wire
    /// (`/items/a%20b?x=1`). Defaults to `/`.
    pub fn uri(mut self, target: impl Into<String>) -> RequestBuilder {
        self.target = target.into();
        self
    }

    /// Adds a header field (several with the same name are kept, in order). Defaults to none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> RequestBuilder {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body. Defaults to empty.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RequestBuilder {
        self.body = body.into();
        self
    }

    /// Marks the request as HTTP/1.0. Defaults to `false` (HTTP/1.1).
    pub fn http10(mut self, http10: bool) -> RequestBuilder {
        self.http10 = http10;
        self
    }

    /// Sets the client's address. Defaults to none.
    pub fn peer(mut self, peer: SocketAddr) -> RequestBuilder {
        self.peer = Some(peer);
        self
    }

    /// Builds the request.
    pub fn build(self) -> Request {
        let mut req = Request::new(
            crate::request::method_name(&self.method),
            &self.target,
            self.http10,
            self.headers,
            self.peer,
        );
        req.set_body(self.body);
        req
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .finish()
    }
}

/// Changing a request, for layers that pass a different request on than they received.
impl Request {
    /// Sets header `name` to `value`, replacing every field of that name (case-insensitive).
    ///
    /// # Panics
    ///
    /// If the request's header bytes would pass 4 GiB.
    pub fn insert_header(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        let headers = self.headers_mut();
        headers.remove(&name);
        headers.push(&name, &value.into());
    }

    /// Adds a header field, keeping those already there.
    ///
    /// # Panics
    ///
    /// If the request's header bytes would pass 4 GiB.
    pub fn append_header(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.headers_mut().push(&name.into(), &value.into());
    }

    /// Removes every field named `name` (case-insensitive); `true` if there was one.
    pub fn remove_header(&mut self, name: &str) -> bool {
        self.headers_mut().remove(name)
    }

    /// Replaces the body.
    pub fn replace_body(&mut self, body: impl Into<Vec<u8>>) {
        self.set_body(body.into());
    }

    /// Returns the typed values layers attached to the request.
    pub fn extensions(&self) -> &Extensions {
        self.extensions_ref()
    }

    /// Returns the typed values attached to the request, for adding or changing one.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        self.extensions_mut_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_defaults_to_get_root() {
        let req = Request::builder().build();
        assert_eq!((req.method(), req.path()), ("GET", "/"));
        assert!(req.body().is_empty() && !req.is_http10());
    }

    #[test]
    fn header_setters_replace_append_and_remove() {
        let mut req = Request::builder()
            .header("X-A", "1")
            .header("x-a", "2")
            .build();
        assert_eq!(req.headers().count(), 2);
        req.insert_header("X-A", "3");
        assert_eq!(req.headers().count(), 1);
        assert_eq!(req.header("x-a"), Some("3"));
        req.append_header("X-A", "4");
        assert_eq!(req.headers().filter(|(n, _)| *n == "X-A").count(), 2);
        assert!(req.remove_header("X-a"));
        assert!(!req.remove_header("X-a"));
        assert_eq!(req.header("x-a"), None);
    }
}
