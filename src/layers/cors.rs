//! The `Cors` layer: answers preflight requests and adds the `Access-Control-*` headers that let
//! browsers on other origins read the responses.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::layers::add_vary;
use crate::request::Request;
use crate::response::Response;
use crate::router::{Layer, Next, ResponseFuture};

/// Which origins may read responses.
#[derive(Debug, Clone)]
enum Origins {
    /// Any origin (`*`, or the request's own origin when credentials are allowed).
    Any,
    /// Only these (compared exactly, as browsers send them: `https://app.example`).
    List(Vec<String>),
}

/// Cross-origin resource sharing: lets browser code on other origins call the application.
///
/// A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the
/// layer itself with `204` and the allowed methods and headers; it never reaches a route. Other
/// requests from an allowed origin pass through and get `Access-Control-Allow-Origin` (plus
/// `-Credentials` and `-Expose-Headers` when configured). Requests without `Origin` are left
/// alone. A preflight from an origin that is not allowed gets a `204` without CORS headers,
/// which the browser refuses.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadyloop::{Cors, Request, Router, TestClient};
///
/// let cors = Cors::new()
///     .allow_origin("https://dashboard.example")
///     .allow_methods(&["GET", "POST"])
///     .allow_headers(&["Content-Type", "Authorization"])
///     .max_age(Duration::from_secs(600));
/// let app = Router::new().layer(cors).post("/api/config", |_req| async { "saved" });
/// let preflight = TestClient::new(app).send(
///     Request::builder()
///         .method("OPTIONS")
///         .uri("/api/config")
///         .header("Origin", "https://dashboard.example")
///         .header("Access-Control-Request-Method", "POST"),
/// );
/// assert_eq!(preflight.status(), 204);
/// assert_eq!(
///     preflight.header("access-control-allow-origin"),
///     Some("https://dashboard.example")
/// );
/// assert_eq!(preflight.header("access-control-allow-methods"), Some("GET, POST"));
/// ```
#[derive(Clone)]
pub struct Cors {
    /// Allowed origins.
    origins: Origins,
    /// `Access-Control-Allow-Methods`; `None` echoes the method the preflight asks for.
    methods: Option<String>,
    /// `Access-Control-Allow-Headers`; `None` echoes the headers the preflight asks for.
    headers: Option<String>,
    /// `Access-Control-Expose-Headers`, if any.
    expose: Option<String>,
    /// Whether cookies and `Authorization` may be sent along.
    credentials: bool,
    /// How long browsers may cache a preflight answer.
    max_age: Option<Duration>,
}

impl Cors {
    /// Creates a layer that allows no origin yet; add them with [`Cors::allow_origin`].
    /// Methods default to `GET, HEAD, POST`, headers to none beyond the CORS-safelisted ones.
    pub fn new() -> Cors {
        Cors {
            origins: Origins::List(Vec::new()),
            methods: Some("GET, HEAD, POST".to_string()),
            headers: Some(String::new()),
            expose: None,
            credentials: false,
            max_age: None,
        }
    }

    /// Creates a layer that allows every origin, method and request header, without
    /// credentials; preflights are cached for an hour. For development and public APIs.
    pub fn permissive() -> Cors {
        Cors {
            origins: Origins::Any,
            methods: None,
            headers: None,
            expose: None,
            credentials: false,
            max_age: Some(Duration::from_secs(3600)),
        }
    }

    /// Allows `origin` (scheme, host and port as the browser sends it:
    /// `https://app.example:8443`). Defaults to none.
    pub fn allow_origin(mut self, origin: &str) -> Cors {
        match &mut self.origins {
            Origins::List(list) => list.push(origin.trim_end_matches('/').to_string()),
            Origins::Any => {}
        }
        self
    }

    /// Allows every origin. Defaults to off.
    pub fn allow_any_origin(mut self) -> Cors {
        self.origins = Origins::Any;
        self
    }

    /// Sets the methods a preflight allows. Defaults to `GET, HEAD, POST`.
    pub fn allow_methods(mut self, methods: &[&str]) -> Cors {
        self.methods = Some(methods.join(", "));
        self
    }

    /// Sets the request headers a preflight allows (beyond the CORS-safelisted ones). Defaults
    /// to none.
    pub fn allow_headers(mut self, headers: &[&str]) -> Cors {
        self.headers = Some(headers.join(", "));
        self
    }

    /// Sets the response headers browser code may read (beyond the safelisted ones). Defaults
    /// to none.
    pub fn expose_headers(mut self, headers: &[&str]) -> Cors {
        self.expose = (!headers.is_empty()).then(|| headers.join(", "));
        self
    }

    /// Sets whether browsers may send cookies and credentials along; with any origin allowed,
    /// the request's origin is echoed instead of `*` (browsers refuse `*` with credentials).
    /// Defaults to `false`.
    pub fn allow_credentials(mut self, allow: bool) -> Cors {
        self.credentials = allow;
        self
    }

    /// Sets how long browsers may cache a preflight's answer. Defaults to not saying (browsers
    /// then cache it for a few seconds); [`Cors::permissive`] sets an hour.
    pub fn max_age(mut self, max_age: Duration) -> Cors {
        self.max_age = Some(max_age);
        self
    }

    /// Returns the `Access-Control-Allow-Origin` value for `origin`, or `None` if it may not
    /// read responses.
    fn allowed_origin(&self, origin: &str) -> Option<String> {
        match &self.origins {
            Origins::Any if self.credentials => Some(origin.to_string()),
            Origins::Any => Some("*".to_string()),
            Origins::List(list) => list.iter().any(|o| o == origin).then(|| origin.to_string()),
        }
    }

    /// Adds the headers every allowed cross-origin response carries.
    fn decorate(&self, mut response: Response, allow_origin: &str) -> Response {
        if allow_origin != "*" {
            response = add_vary(response, "Origin");
        }
        response = response.with_header("Access-Control-Allow-Origin", allow_origin);
        if self.credentials {
            response = response.with_header("Access-Control-Allow-Credentials", "true");
        }
        response
    }

    /// Answers a preflight from `origin`.
    fn preflight(&self, req: &Request, origin: &str) -> Response {
        let response = add_vary(Response::new(204), "Origin");
        let response = add_vary(response, "Access-Control-Request-Method");
        let response = add_vary(response, "Access-Control-Request-Headers");
        let Some(allow_origin) = self.allowed_origin(origin) else {
            return response;
        };
        let mut response = self.decorate(response, &allow_origin);
        let methods = match &self.methods {
            Some(methods) => methods.clone(),
            None => sanitised(req.header("access-control-request-method")),
        };
        response = response.with_header("Access-Control-Allow-Methods", methods);
        let headers = match &self.headers {
            Some(headers) => headers.clone(),
            None => sanitised(req.header("access-control-request-headers")),
        };
        if !headers.is_empty() {
            response = response.with_header("Access-Control-Allow-Headers", headers);
        }
        if let Some(max_age) = self.max_age {
            response =
                response.with_header("Access-Control-Max-Age", max_age.as_secs().to_string());
        }
        response
    }
}

impl Default for Cors {
    fn default() -> Cors {
        Cors::new()
    }
}

impl fmt::Debug for Cors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cors")
            .field("origins", &self.origins)
            .field("methods", &self.methods)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Layer for Cors {
    fn call(self: Rc<Self>, req: Request, next: Next) -> ResponseFuture {
        let Some(origin) = req.header("origin").map(str::to_string) else {
            return next.run(req);
        };
        let is_preflight =
            req.method() == "OPTIONS" && req.header("access-control-request-method").is_some();
        if is_preflight {
            let response = self.preflight(&req, &origin);
            return Box::pin(async move { response });
        }
        Box::pin(async move {
            let response = next.run(req).await;
            match self.allowed_origin(&origin) {
                None => add_vary(response, "Origin"),
                Some(allow_origin) => {
                    let response = self.decorate(response, &allow_origin);
                    match &self.expose {
                        Some(expose) => {
                            response.with_header("Access-Control-Expose-Headers", expose.as_str())
                        }
                        None => response,
                    }
                }
            }
        })
    }
}

/// Echoes a preflight's request header value, keeping only token characters, commas and spaces
/// (so an echoed value can never break the response).
fn sanitised(value: Option<&str>) -> String {
    value
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_, ".contains(*c))
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_matched_exactly() {
        let cors = Cors::new().allow_origin("https://a.example/");
        assert_eq!(
            cors.allowed_origin("https://a.example").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(cors.allowed_origin("https://a.example.evil"), None);
        assert_eq!(Cors::permissive().allowed_origin("x").as_deref(), Some("*"));
        let with_cookies = Cors::permissive().allow_credentials(true);
        assert_eq!(
            with_cookies.allowed_origin("https://b").as_deref(),
            Some("https://b")
        );
    }

    #[test]
    fn permissive_preflight_echoes_sanitised_requests() {
        let req = Request::builder()
            .method("OPTIONS")
            .header("Origin", "https://x")
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "x-token, content-type\r\n",
            )
            .build();
        let response = Cors::permissive().preflight(&req, "https://x");
        assert_eq!(response.status(), 204);
        assert_eq!(response.header("access-control-allow-methods"), Some("PUT"));
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("x-token, content-type")
        );
        assert_eq!(response.header("access-control-max-age"), Some("3600"));
        assert!(response.invalid_reason().is_none());
    }
}
