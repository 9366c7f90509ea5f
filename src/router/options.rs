//! `RouteOptions`: the settings of one route, given with the route itself so they cannot land
//! on another one.

use std::future::Future;
use std::time::Duration;

use crate::request::Request;
use crate::response::IntoResponse;
use crate::router::Router;

/// Settings of one route: its pool class, body limit and deadline, passed to the `*_with`
/// methods together with the route ([`Router::get_with`], [`Router::blocking_post_with`], ...).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadyloop::{ClassConfig, Request, RouteOptions, Router, Server};
///
/// let app = Router::new()
///     .get("/healthz", |_req| async { "ok" })
///     .blocking_post_with(
///         "/report",
///         RouteOptions::new()
///             .class("reports")
///             .body_limit(8 << 20)
///             .timeout(Duration::from_secs(30)),
///         |req: Request| format!("{} bytes\n", req.body().len()),
///     );
/// let server = Server::builder()
///     .addr("127.0.0.1:0")
///     .class("reports", ClassConfig::new(1, 8))
///     .build(app)?;
/// # drop(server);
/// # Ok::<(), steadyloop::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOptions {
    /// The pool class; `None` means the default class.
    pub(crate) class: Option<String>,
    /// The body limit; `None` means the server's.
    pub(crate) body_limit: Option<usize>,
    /// The whole-request deadline, if any.
    pub(crate) timeout: Option<Duration>,
}

impl RouteOptions {
    /// Creates options that change nothing: default class, the server's body limit, no deadline.
    pub fn new() -> RouteOptions {
        RouteOptions::default()
    }

    /// Puts the route into pool class `class`, so its offloaded work (and, for a blocking
    /// route, its handler) shares that class's workers and queue. Classes are declared with
    /// [`ServerBuilder::class`](crate::ServerBuilder::class); building a server whose routes
    /// name an undeclared class fails. Defaults to the default class.
    pub fn class(mut self, class: &str) -> RouteOptions {
        self.class = Some(class.to_string());
        self
    }

    /// Sets the largest request body the route accepts (413 beyond). Defaults to the server's
    /// `max_body_bytes`.
    pub fn body_limit(mut self, bytes: usize) -> RouteOptions {
        self.body_limit = Some(bytes);
        self
    }

    /// Gives the route a whole-request deadline: if its handler has not produced a response by
    /// then, the client gets 504 and the handler (and any job it queued) is dropped; a running
    /// job's cancel token flips. Defaults to no deadline.
    pub fn timeout(mut self, timeout: Duration) -> RouteOptions {
        self.timeout = Some(timeout);
        self
    }
}

/// Writes the `*_with` method helpers once: each adds a route for one method with its options.
macro_rules! with_options {
    ($($(#[$doc:meta])* $name:ident => $method:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name<H, Fut, R>(self, pattern: &str, options: RouteOptions, handler: H) -> Router
        where
            H: Fn(Request) -> Fut + 'static,
            Fut: Future<Output = R> + 'static,
            R: IntoResponse,
        {
            self.route_with($method, pattern, options, handler)
        }
    )*};
}

/// Routes with their settings.
impl Router {
    with_options! {
        /// Adds an async handler for `GET` (and `HEAD`) on `pattern` with `options`. Panics as
        /// [`Router::get`] does.
        get_with => "GET";
        /// Adds an async handler for `POST` on `pattern` with `options`. Panics as
        /// [`Router::get`] does.
        post_with => "POST";
        /// Adds an async handler for `PUT` on `pattern` with `options`. Panics as
        /// [`Router::get`] does.
        put_with => "PUT";
        /// Adds an async handler for `DELETE` on `pattern` with `options`. Panics as
        /// [`Router::get`] does.
        delete_with => "DELETE";
    }

    /// Adds an async handler for `method` on `pattern` with `options`. Panics as
    /// [`Router::route`] does.
    pub fn route_with<H, Fut, R>(
        self,
        method: &str,
        pattern: &str,
        options: RouteOptions,
        handler: H,
    ) -> Router
    where
        H: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        self.route(method, pattern, handler).configure_last(options)
    }

    /// Adds a synchronous `GET` (and `HEAD`) handler that runs whole on the CPU pool, with
    /// `options`. Panics as [`Router::route`] does.
    pub fn blocking_get_with<H, R>(self, pattern: &str, options: RouteOptions, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.blocking_route_with("GET", pattern, options, handler)
    }

    /// Adds a synchronous `POST` handler that runs whole on the CPU pool, with `options`.
    /// Panics as [`Router::route`] does.
    pub fn blocking_post_with<H, R>(
        self,
        pattern: &str,
        options: RouteOptions,
        handler: H,
    ) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.blocking_route_with("POST", pattern, options, handler)
    }

    /// Adds a synchronous handler for `method` that runs whole on the CPU pool, with `options`
    /// (see [`Router::blocking_route`]). Panics as [`Router::route`] does.
    pub fn blocking_route_with<H, R>(
        self,
        method: &str,
        pattern: &str,
        options: RouteOptions,
        handler: H,
    ) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.blocking_route(method, pattern, handler)
            .configure_last(options)
    }

    /// Applies `options` to the route just added by the caller.
    fn configure_last(mut self, options: RouteOptions) -> Router {
        let route = self
            .routes
            .last_mut()
            .expect("the caller has just added a route");
        route.class = options.class;
        route.body_limit = options.body_limit;
        route.timeout = options.timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_land_on_their_own_route() {
        let router = Router::new()
            .blocking_post_with(
                "/a",
                RouteOptions::new().class("reports").body_limit(10),
                |_req| "a",
            )
            .get("/b", |_req| async { "b" });
        let routes = router.routes();
        assert_eq!(routes[0].class.as_deref(), Some("reports"));
        assert_eq!(routes[0].body_limit, Some(10));
        assert_eq!(routes[1].class, None);
        assert_eq!(routes[1].body_limit, None);
    }
}
