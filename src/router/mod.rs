//! The route table: which handler answers a method and path, and how it runs; the 404, 405 and
//! `OPTIONS *` answers for requests no route takes.

mod dispatch;
mod layer;
mod options;
mod pattern;
mod table;

use std::cell::OnceCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::files::StaticFiles;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

pub(crate) use dispatch::{Dispatcher, Routed};
pub use layer::{Layer, Next, ResponseFuture};
pub use options::RouteOptions;
pub(crate) use pattern::Pattern;
use table::{Params, RouteIndex};

/// A boxed handler future; it lives on the loop and need not be `Send`.
pub(crate) type LocalResponseFuture = Pin<Box<dyn Future<Output = Response>>>;

/// A boxed WebSocket session future; it lives on the loop.
#[cfg(feature = "websocket")]
pub(crate) type LocalSessionFuture = Pin<Box<dyn Future<Output = ()>>>;

/// How a route's handler runs.
#[derive(Clone)]
pub(crate) enum Handler {
    /// An async handler, polled on the event loop.
    Async(Rc<dyn Fn(Request) -> LocalResponseFuture>),
    /// A synchronous handler, run whole on the CPU pool.
    Blocking(Arc<dyn Fn(Request) -> Response + Send + Sync>),
    /// An endpoint the server answers itself.
    Probe(Probe),
    /// A WebSocket endpoint: the native front end hands the upgraded connection to it.
    #[cfg(feature = "websocket")]
    WebSocket(WebSocketRoute),
}

/// A WebSocket route's session handler and limits.
#[cfg(feature = "websocket")]
#[derive(Clone)]
pub(crate) struct WebSocketRoute {
    /// Runs one session on the loop.
    pub(crate) handler: Rc<dyn Fn(crate::websocket::WebSocket, Request) -> LocalSessionFuture>,
    /// The session's limits.
    pub(crate) limits: crate::websocket::Limits,
}

/// The built-in endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// 200 `ok` while the process runs.
    Liveness,
    /// 200 when ready for traffic, 503 with the reason when saturated or stopping.
    Readiness,
    /// The Prometheus text exposition.
    Metrics,
    /// The live dashboard page.
    Dashboard,
    /// The dashboard's event stream.
    DashboardEvents,
}

/// One entry of the route table.
pub(crate) struct Route {
    /// The method it answers (`HEAD` is also answered by `GET` routes).
    pub(crate) method: String,
    /// The path pattern.
    pub(crate) pattern: Pattern,
    /// The handler.
    pub(crate) handler: Handler,
    /// The pool class its offloaded work goes to; `None` means the default class.
    pub(crate) class: Option<String>,
    /// Its own body limit, overriding the server's.
    pub(crate) body_limit: Option<usize>,
    /// Its whole-request deadline, if any (504 when exceeded).
    pub(crate) timeout: Option<Duration>,
    /// `"GET /items/:id"`: the label used in logs and metrics.
    pub(crate) label: String,
}

/// The outcome of looking up a method and path.
pub(crate) enum Lookup {
    /// The route with this id answers; here are its decoded parameters.
    Found(usize, Vec<(String, String)>),
    /// The path exists, but not for this method; the value is the `Allow` header.
    MethodNotAllowed(String),
    /// No route has this path.
    NotFound,
}

/// A table of routes: method + path pattern → handler.
///
/// Patterns are literal segments, `:name` parameters (one segment) and a final `*name` (the rest
/// of the path): `/items/:id`, `/files/*path`. When several patterns match, literal segments win
/// over parameters. `GET` routes also answer `HEAD` (without a body). An unknown path gets 404; a
/// known path with another method gets 405 with an `Allow` header.
///
/// Async handlers run on the event loop and may hold `!Send` state such as `Rc<RefCell<_>>`.
/// Handlers registered with `blocking_*` run whole on the CPU pool.
///
/// # Examples
///
/// ```
/// use steadyloop::{offload, Request, Response, Router};
///
/// let app = Router::new()
///     .get("/healthz", |_req| async { "ok" })
///     .get("/items/:id", |req: Request| async move {
///         let id: u64 = req.param("id").unwrap_or("").parse()
///             .map_err(|_| steadyloop::Error::bad_request("id must be a number"))?;
///         let square = offload(move || id * id).await?;
///         Ok(Response::json(format!("{{\"square\":{square}}}")))
///     })
///     .blocking_post("/digest", |req| format!("{} bytes\n", req.body().len()));
/// # let _ = app;
/// ```
///
/// Loop handlers may hold `!Send` state:
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let hits = Rc::new(Cell::new(0u64));
/// let app = steadyloop::Router::new().get("/hits", move |_req| {
///     let hits = hits.clone();
///     async move {
///         hits.set(hits.get() + 1);
///         format!("{}\n", hits.get())
///     }
/// });
/// # let _ = app;
/// ```
///
/// but blocking handlers run on another thread, so they may not:
///
/// ```compile_fail
/// use std::{cell::Cell, rc::Rc};
/// let hits = Rc::new(Cell::new(0u64));
/// let app = steadyloop::Router::new().blocking_get("/hits", move |_req| {
///     hits.set(hits.get() + 1);
///     "counted"
/// });
/// ```
#[derive(Default)]
pub struct Router {
    /// The routes in registration order.
    routes: Vec<Route>,
    /// The layers in the order written.
    layers: Vec<layer::LayerEntry>,
    /// Which routes can match which paths, built on the first lookup (and dropped when a
    /// route is added).
    index: OnceCell<RouteIndex>,
}

/// Writes the per-method helpers once: each adds an async route for one method.
macro_rules! method_helpers {
    ($($(#[$doc:meta])* $name:ident => $method:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name<H, Fut, R>(self, pattern: &str, handler: H) -> Router
        where
            H: Fn(Request) -> Fut + 'static,
            Fut: Future<Output = R> + 'static,
            R: IntoResponse,
        {
            self.route($method, pattern, handler)
        }
    )*};
}

impl Router {
    /// Creates an empty router.
    pub fn new() -> Router {
        Router::default()
    }

    method_helpers! {
        /// Adds an async handler for `GET` (and `HEAD`) on `pattern`.
        ///
        /// # Panics
        ///
        /// Panics if `pattern` is malformed or already has a `GET` route (a programming error,
        /// caught at startup).
        get => "GET";
        /// Adds an async handler for `POST` on `pattern`. Panics as [`Router::get`] does.
        post => "POST";
        /// Adds an async handler for `PUT` on `pattern`. Panics as [`Router::get`] does.
        put => "PUT";
        /// Adds an async handler for `DELETE` on `pattern`. Panics as [`Router::get`] does.
        delete => "DELETE";
    }

    /// Adds an async handler for `method` on `pattern`; the handler runs on the event loop.
    ///
    /// # Panics
    ///
    /// Panics if `method` is not an HTTP token, `pattern` is malformed, or the route exists.
    pub fn route<H, Fut, R>(self, method: &str, pattern: &str, handler: H) -> Router
    where
        H: Fn(Request) -> Fut + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        let handler = Rc::new(move |req: Request| -> LocalResponseFuture {
            let future = handler(req);
            Box::pin(async move { future.await.into_response() })
        });
        self.push(method, pattern, Handler::Async(handler))
    }

    /// Adds a synchronous handler for `GET` (and `HEAD`) that runs whole on the CPU pool.
    /// Panics as [`Router::route`] does.
    pub fn blocking_get<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.blocking_route("GET", pattern, handler)
    }

    /// Adds a synchronous handler for `POST` that runs whole on the CPU pool.
    /// Panics as [`Router::route`] does.
    pub fn blocking_post<H, R>(self, pattern: &str, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.blocking_route("POST", pattern, handler)
    }

    /// Adds a synchronous handler for `method` that runs whole on the CPU pool, like FastAPI's
    /// plain `def` endpoints: it waits in its pool class's queue, is shed with 503 when the queue
    /// is full, and a panic in it becomes a 500.
    ///
    /// # Panics
    ///
    /// Panics if `method` is not an HTTP token, `pattern` is malformed, or the route exists.
    pub fn blocking_route<H, R>(self, method: &str, pattern: &str, handler: H) -> Router
    where
        H: Fn(Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        let handler = Arc::new(move |req: Request| handler(req).into_response());
        self.push(method, pattern, Handler::Blocking(handler))
    }

    /// Adds a `GET` liveness endpoint: `200 ok` for as long as the process serves requests.
    ///
    /// Answered on the loop; it never waits behind pool work. Panics as [`Router::route`] does.
    pub fn liveness(self, pattern: &str) -> Router {
        self.push("GET", pattern, Handler::Probe(Probe::Liveness))
    }

    /// Adds a `GET` readiness endpoint for load balancers and Kubernetes: `200 ready` normally,
    /// `503` with the reason in the body while the loop lags (recent lag over the
    /// `ready_max_lag` setting), a pool class's queue is over the `ready_queue_ratio` setting,
    /// or the server is shutting down. Panics as [`Router::route`] does.
    pub fn readiness(self, pattern: &str) -> Router {
        self.push("GET", pattern, Handler::Probe(Probe::Readiness))
    }

    /// Adds a `GET` endpoint serving the server's metrics in the Prometheus text format:
    /// requests by route and status class, latency histograms, in-flight requests,
    /// connections, loop lag, stalls by route, per pool class workers, queue depth and job
    /// outcomes, process memory and uptime. Panics as [`Router::route`] does.
    pub fn metrics(self, pattern: &str) -> Router {
        self.push("GET", pattern, Handler::Probe(Probe::Metrics))
    }

    /// Adds a live dashboard at `path` (a `GET` page) and its event stream at `path/events`.
    ///
    /// The page is one small self-contained file (no external scripts or fonts, so it works
    /// offline) that shows, updated every second over server-sent events: event loop lag (p99
    /// and mean), stalls by route or task with the last offender, each pool class's busy and
    /// maximum workers, queue depth, shed and expired jobs, requests per second by route and
    /// status class, open connections and resident memory. It reads the same numbers as
    /// [`Router::metrics`]. Each open page costs one sample a second; nobody watching costs
    /// nothing. Panics as [`Router::route`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// let app = steadyloop::Router::new().dashboard("/dashboard");
    /// # let _ = app;
    /// ```
    pub fn dashboard(self, path: &str) -> Router {
        let events = format!("{}/events", path.trim_end_matches('/'));
        self.push("GET", path, Handler::Probe(Probe::Dashboard))
            .push("GET", &events, Handler::Probe(Probe::DashboardEvents))
    }

    /// Serves the files under `dir` at paths below `prefix`: `/static/app.js` → `dir/app.js`,
    /// `/static/` → `dir/index.html` (see [`StaticFiles`] for types, caching, ranges,
    /// precompressed siblings and what is refused). `prefix` may be `"/"` for the whole tree.
    /// Use [`Router::files`] for other settings. Panics as [`Router::route`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// let app = steadyloop::Router::new()
    ///     .get("/healthz", |_req| async { "ok" })
    ///     .static_dir("/static", "public");
    /// # let _ = app;
    /// ```
    pub fn static_dir(self, prefix: &str, dir: impl Into<std::path::PathBuf>) -> Router {
        let files = StaticFiles::dir(prefix, dir);
        self.files(files)
    }

    /// Serves one file at `path` (with the same headers as [`Router::static_dir`]).
    /// Panics as [`Router::route`] does.
    pub fn static_file(self, path: &str, file: impl Into<std::path::PathBuf>) -> Router {
        let files = StaticFiles::file(file);
        self.get(path, move |req: Request| files.serve(&req))
    }

    /// Mounts `files`, built with [`StaticFiles::dir`] and its settings, at its prefix.
    ///
    /// # Panics
    ///
    /// Panics as [`Router::route`] does, and if `files` is a single file
    /// ([`StaticFiles::file`]: mount that on a route of its own with [`StaticFiles::serve`]).
    pub fn files(self, files: StaticFiles) -> Router {
        let prefix = files
            .dir_prefix()
            .expect("Router::files takes StaticFiles::dir; mount one file with .get(path, ...)")
            .to_string();
        let below = files.clone();
        let router = self.get(&format!("{prefix}/*path"), move |req: Request| {
            below.serve(&req)
        });
        if prefix.is_empty() {
            router
        } else {
            router.get(&prefix, move |req: Request| files.serve(&req))
        }
    }

    /// Adds a WebSocket endpoint at `path` (feature `websocket`, native front end): a `GET`
    /// with a valid RFC 6455 upgrade gets `101 Switching Protocols`, and `handler` runs the
    /// session on the loop (it may hold `!Send` state) with the request that opened it.
    ///
    /// A bad handshake gets 400 (426 for a version other than 13, with
    /// `Sec-WebSocket-Version: 13`); a plain `GET` gets 426 with `Upgrade: websocket`. The
    /// session has the default [`Limits`](crate::websocket::Limits) (64 KiB messages, ping
    /// after 20 s quiet, close after 60 s idle, close 1001 at shutdown) and counts as an open
    /// connection. The tiny_http front end cannot hand over a connection: there the route
    /// answers upgrades with 501. Panics as [`Router::route`] does.
    ///
    /// # Examples
    ///
    /// An echo endpoint:
    ///
    /// ```
    /// use steadyloop::websocket::{Message, WebSocket};
    /// use steadyloop::{Request, Router};
    ///
    /// let app = Router::new().websocket("/echo", |mut ws: WebSocket, _req: Request| async move {
    ///     while let Some(message) = ws.recv().await {
    ///         if ws.send(message).await.is_err() {
    ///             break;
    ///         }
    ///     }
    /// });
    /// # let _ = app;
    /// ```
    #[cfg(feature = "websocket")]
    pub fn websocket<H, Fut>(self, path: &str, handler: H) -> Router
    where
        H: Fn(crate::websocket::WebSocket, Request) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.websocket_with(path, crate::websocket::Limits::default(), handler)
    }

    /// Adds a WebSocket endpoint like [`Router::websocket`], with `limits` instead of the
    /// defaults. Panics as [`Router::route`] does.
    #[cfg(feature = "websocket")]
    pub fn websocket_with<H, Fut>(
        self,
        path: &str,
        limits: crate::websocket::Limits,
        handler: H,
    ) -> Router
    where
        H: Fn(crate::websocket::WebSocket, Request) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let handler = Rc::new(move |ws, req| -> Pin<Box<dyn Future<Output = ()>>> {
            Box::pin(handler(ws, req))
        });
        self.push(
            "GET",
            path,
            Handler::WebSocket(WebSocketRoute { handler, limits }),
        )
    }

    /// Puts the route added last into pool class `class`, so its offloaded work (and, for a
    /// blocking route, its handler) shares that class's workers and queue.
    ///
    /// Classes are declared with [`ServerBuilder::class`](crate::ServerBuilder::class); building a
    /// server whose routes name an undeclared class fails. Defaults to the default class.
    ///
    /// # Panics
    ///
    /// Panics if no route has been added yet.
    #[deprecated(
        since = "0.2.0",
        note = "it configures whichever route was added last; pass RouteOptions with the route: `.get_with(pattern, RouteOptions::new().class(..), handler)`"
    )]
    pub fn class(mut self, class: &str) -> Router {
        self.last_route().class = Some(class.to_string());
        self
    }

    /// Sets the largest request body the route added last accepts (413 beyond).
    ///
    /// Defaults to the server's `max_body_bytes`. Panics if no route has been added yet.
    #[deprecated(
        since = "0.2.0",
        note = "it configures whichever route was added last; pass RouteOptions with the route: `.get_with(pattern, RouteOptions::new().body_limit(..), handler)`"
    )]
    pub fn body_limit(mut self, bytes: usize) -> Router {
        self.last_route().body_limit = Some(bytes);
        self
    }

    /// Gives the route added last a whole-request deadline: if its handler has not produced a
    /// response by then, the client gets 504 and the handler (and any job it queued) is dropped;
    /// a running job's cancel token flips.
    ///
    /// Defaults to no deadline. Panics if no route has been added yet.
    #[deprecated(
        since = "0.2.0",
        note = "it configures whichever route was added last; pass RouteOptions with the route: `.get_with(pattern, RouteOptions::new().timeout(..), handler)`"
    )]
    pub fn timeout(mut self, timeout: Duration) -> Router {
        self.last_route().timeout = Some(timeout);
        self
    }

    /// Returns the route added last, for the per-route setters.
    fn last_route(&mut self) -> &mut Route {
        self.routes
            .last_mut()
            .expect("a route setter was called before any route was added")
    }

    /// Adds a route after checking it.
    fn push(mut self, method: &str, pattern: &str, handler: Handler) -> Router {
        assert!(
            crate::http::h1::grammar::is_token(method.as_bytes()),
            "invalid HTTP method {method:?}"
        );
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
        let duplicate = self
            .routes
            .iter()
            .any(|r| r.method == method && r.pattern == pattern);
        assert!(
            !duplicate,
            "route {method} {} is registered twice",
            pattern.as_str()
        );
        self.index = OnceCell::new();
        self.routes.push(Route {
            label: format!("{method} {}", pattern.as_str()),
            method: method.to_string(),
            pattern,
            handler,
            class: None,
            body_limit: None,
            timeout: None,
        });
        self
    }

    /// Returns the routes in registration order; a route's index is its id.
    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Returns the `Allow` value for the server as a whole (`OPTIONS *`): every method a route
    /// answers, `HEAD` wherever there is `GET`, and `OPTIONS`.
    pub(crate) fn allow_any(&self) -> String {
        let mut methods: Vec<&str> = self.routes.iter().map(|r| r.method.as_str()).collect();
        if methods.contains(&"GET") {
            methods.push("HEAD");
        }
        methods.push("OPTIONS");
        methods.sort_unstable();
        methods.dedup();
        methods.join(", ")
    }

    /// Finds the route for a request: `Ok(route id)` with the parameters set on the request, or
    /// the answer when no route takes it: 404, 405 with `Allow`, or 204 with `Allow` for
    /// `OPTIONS *`.
    pub(crate) fn resolve(&self, req: &mut Request) -> Result<usize, Response> {
        // `OPTIONS *` (the only request with the target `*`) asks about the server as a whole.
        // The path as bytes: kept in the head's bytes it is text only after a UTF-8 check
        // (about 100 instructions), which only a path no literal route has needs.
        let path = req.path_bytes();
        if path == b"*" {
            return Err(Response::new(204).with_header("Allow", self.allow_any()));
        }
        match self.lookup_with(req.method(), path, || req.path()) {
            Lookup::Found(id, params) => {
                req.set_params(params);
                Ok(id)
            }
            Lookup::MethodNotAllowed(allow) => Err(Response::static_text("method not allowed\n")
                .with_status(405)
                .with_header("Allow", allow)),
            Lookup::NotFound => Err(Response::static_text("not found\n").with_status(404)),
        }
    }

    /// Finds the route for `method` and `path` (percent-encoded, without the query).
    #[cfg(test)]
    pub(crate) fn lookup(&self, method: &str, path: &str) -> Lookup {
        self.lookup_with(method, path.as_bytes(), || path)
    }

    /// [`Router::lookup`] for a path given as bytes, with `text` to read it as text (called
    /// only when no all-literal route has this path).
    fn lookup_with<'p>(&self, method: &str, path: &[u8], text: impl FnOnce() -> &'p str) -> Lookup {
        let index = self.index.get_or_init(|| RouteIndex::new(&self.routes));
        match index.exact(path) {
            Some(matches) => {
                self.choose(method, || matches.iter().map(|m| (m.id, m.params.clone())))
            }
            None => {
                let path = text();
                self.choose(method, || {
                    index
                        .candidates(&self.routes, path)
                        .filter_map(|id| self.routes[id].pattern.matches(path).map(|p| (id, p)))
                })
            }
        }
    }

    /// Chooses among the routes matching a path (`matching` yields them in registration order,
    /// with their parameters): the most specific one answering `method`, else 405 with the
    /// methods of all of them, else 404.
    fn choose<I>(&self, method: &str, matching: impl Fn() -> I) -> Lookup
    where
        I: Iterator<Item = (usize, Params)>,
    {
        // The best match so far and its parameters. Specificities are compared only when a
        // second route answers (rare), and the methods for `Allow` only when none does, so a
        // request with one matching route allocates nothing here.
        let mut best: Option<usize> = None;
        let mut best_params = Vec::new();
        let mut matched = false;
        for (id, params) in matching() {
            let route = &self.routes[id];
            matched = true;
            let answers = route.method == method || (method == "HEAD" && route.method == "GET");
            if !answers {
                continue;
            }
            // An explicit HEAD route beats the GET fallback for the same pattern.
            let exact = route.method == method;
            let better = match best {
                None => true,
                Some(best_id) => {
                    let rank = route.pattern.specificity();
                    let best_rank = self.routes[best_id].pattern.specificity();
                    rank > best_rank
                        || (rank == best_rank && exact && self.routes[best_id].method != method)
                }
            };
            if better {
                best = Some(id);
                best_params = params;
            }
        }
        if let Some(id) = best {
            return Lookup::Found(id, best_params);
        }
        if !matched {
            return Lookup::NotFound;
        }
        let mut allowed: Vec<&str> = matching()
            .map(|(id, _)| self.routes[id].method.as_str())
            .collect();
        if allowed.contains(&"GET") {
            allowed.push("HEAD");
        }
        allowed.sort_unstable();
        allowed.dedup();
        Lookup::MethodNotAllowed(allowed.join(", "))
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> = self.routes.iter().map(|r| r.label.as_str()).collect();
        f.debug_struct("Router").field("routes", &labels).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Router {
        Router::new()
            .get("/items/:id", |_req| async { "param" })
            .get("/items/new", |_req| async { "literal" })
            .post("/items/:id", |_req| async { "post" })
            .blocking_get("/files/*path", |_req| "files")
    }

    fn found(router: &Router, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        match router.lookup(method, path) {
            Lookup::Found(id, params) => Some((router.routes()[id].label.clone(), params)),
            _ => None,
        }
    }

    #[test]
    fn most_specific_pattern_wins() {
        let router = app();
        assert_eq!(
            found(&router, "GET", "/items/new").unwrap().0,
            "GET /items/new"
        );
        let (label, params) = found(&router, "GET", "/items/7").unwrap();
        assert_eq!(label, "GET /items/:id");
        assert_eq!(params, vec![("id".to_string(), "7".to_string())]);
    }

    #[test]
    fn head_falls_back_to_get() {
        assert_eq!(
            found(&app(), "HEAD", "/items/7").unwrap().0,
            "GET /items/:id"
        );
    }

    #[test]
    fn wrong_method_lists_allowed_methods() {
        match app().lookup("DELETE", "/items/7") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD, POST"),
            _ => panic!("expected 405"),
        }
        assert!(matches!(app().lookup("GET", "/nope"), Lookup::NotFound));
    }

    #[test]
    fn allow_any_lists_every_method_served() {
        assert_eq!(app().allow_any(), "GET, HEAD, OPTIONS, POST");
    }

    /// Resolves by trying every route in turn: the definition the index must agree with.
    fn reference(router: &Router, method: &str, path: &str) -> String {
        let mut best: Option<(usize, Params)> = None;
        let mut allowed = Vec::new();
        for (id, route) in router.routes().iter().enumerate() {
            let Some(params) = route.pattern.matches(path) else {
                continue;
            };
            allowed.push(route.method.as_str());
            if route.method != method && !(method == "HEAD" && route.method == "GET") {
                continue;
            }
            let better = best.as_ref().is_none_or(|(best_id, _)| {
                let (rank, best_rank) = (
                    route.pattern.specificity(),
                    router.routes()[*best_id].pattern.specificity(),
                );
                rank > best_rank
                    || (rank == best_rank
                        && route.method == method
                        && router.routes()[*best_id].method != method)
            });
            if better {
                best = Some((id, params));
            }
        }
        match best {
            Some((id, params)) => format!("{} {params:?}", router.routes()[id].label),
            None if allowed.is_empty() => "404".to_string(),
            None => {
                if allowed.contains(&"GET") {
                    allowed.push("HEAD");
                }
                allowed.sort_unstable();
                allowed.dedup();
                format!("405 {}", allowed.join(", "))
            }
        }
    }

    fn described(router: &Router, method: &str, path: &str) -> String {
        match router.lookup(method, path) {
            Lookup::Found(id, params) => format!("{} {params:?}", router.routes()[id].label),
            Lookup::NotFound => "404".to_string(),
            Lookup::MethodNotAllowed(allow) => format!("405 {allow}"),
        }
    }

    #[test]
    fn the_index_resolves_as_trying_every_route_does() {
        let router = app()
            .get("/", |_req| async { "root" })
            .get("/static", |_req| async { "dir" })
            .get("/static/*path", |_req| async { "below" })
            .route("HEAD", "/items/new", |_req| async { "head" })
            .post("/items/new", |_req| async { "post" })
            .get("/a b", |_req| async { "space" })
            .get("/x/:a/y", |_req| async { "param" })
            .get("/x/b/:c", |_req| async { "param" })
            .get("/x/%41/y", |_req| async { "escaped literal" });
        let paths = [
            "/",
            "",
            "/items",
            "/items/new",
            "/items/n%65w",
            "/items/7",
            "/items/",
            "/static",
            "/static/",
            "/static/a/b",
            "/st%61tic",
            "/a b",
            "/a%20b",
            "/x/b/y",
            "/x/%41/y",
            "/x/A/y",
            "/x/%2541/y",
            "/files",
            "/files/",
            "/files/a%2Fb",
            "/nope",
            "//",
        ];
        for method in ["GET", "HEAD", "POST", "DELETE"] {
            for path in paths {
                assert_eq!(
                    described(&router, method, path),
                    reference(&router, method, path),
                    "{method} {path}"
                );
            }
        }
        // A rest pattern matching its bare prefix is more specific than the literal route.
        assert!(described(&router, "GET", "/static").starts_with("GET /static/*path"));
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn duplicate_routes_panic() {
        let _ = Router::new()
            .get("/a", |_req| async { "1" })
            .get("/a", |_req| async { "2" });
    }

    #[test]
    #[should_panic(expected = "before any route")]
    #[allow(deprecated)]
    fn setter_without_route_panics() {
        let _ = Router::new().class("reports");
    }
}
