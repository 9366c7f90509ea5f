//! The application as the front ends see it: the router, its resolved pool classes, the
//! settings, and `dispatch`, which runs one request's handler and always yields a response.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::config::{ClassConfig, Config};
use crate::error::{Error, Result};
use crate::observe::metrics::RequestMetrics;
use crate::observe::monitor::Monitor;
use crate::observe::probes;
use crate::pool::scope::{RequestScope, Scoped};
use crate::pool::{self, panic_message, ClassHandle};
use crate::request::Request;
use crate::response::{IntoResponse, Response};
use crate::router::{Handler, Lookup, Router};

/// Everything a front end needs to serve requests; lives on the loop.
pub(crate) struct App {
    /// The route table.
    pub(crate) router: Router,
    /// The pool class of each route, by route id.
    route_classes: Vec<ClassHandle>,
    /// Every pool class, the default one first.
    pub(crate) classes: Vec<ClassHandle>,
    /// The settings.
    pub(crate) config: Config,
    /// Closed when a graceful shutdown begins; connections wait on it while idle.
    pub(crate) stopping: async_channel::Receiver<()>,
    /// Gets a message whenever a connection closes, so a drain can wait for the last one.
    closed_tx: async_channel::Sender<()>,
    /// Open connections.
    pub(crate) connections: Cell<usize>,
    /// Connections refused because the cap was reached.
    pub(crate) refused: Cell<u64>,
    /// Accept errors that made the accept loop back off.
    pub(crate) accept_errors: Cell<u64>,
    /// Bytes of request bodies held by requests in progress, across connections.
    body_memory: Cell<usize>,
    /// Loop lag and stall detection.
    pub(crate) monitor: Arc<Monitor>,
    /// Request counters and latencies.
    pub(crate) requests: RequestMetrics,
    /// When the server was built.
    pub(crate) started: Instant,
    /// Cleared when the front end can no longer accept connections (a dead tiny_http accept
    /// thread); shared with the front end's threads.
    pub(crate) frontend_healthy: Arc<AtomicBool>,
}

/// One request's share of the server-wide body memory; released when dropped.
pub(crate) struct BodyMemory {
    /// The application whose budget this is.
    app: Rc<App>,
    /// Bytes held.
    bytes: usize,
}

impl BodyMemory {
    /// Grows the share to `bytes`; `false` (and no change) if the budget cannot cover it.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let in_use = self.app.body_memory.get();
        let more = bytes - self.bytes;
        if in_use.saturating_add(more) > self.app.config.max_body_memory {
            return false;
        }
        self.app.body_memory.set(in_use + more);
        self.bytes = bytes;
        true
    }
}

impl Drop for BodyMemory {
    fn drop(&mut self) {
        self.app
            .body_memory
            .set(self.app.body_memory.get() - self.bytes);
    }
}

/// Counts a connection as open until dropped.
pub(crate) struct ConnGuard {
    /// The application whose count this is.
    app: Rc<App>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.app.connections.set(self.app.connections.get() - 1);
        let _ = self.app.closed_tx.try_send(());
    }
}

impl App {
    /// Resolves each route's pool class and checks the settings.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] for invalid settings or a route naming an undeclared class.
    pub(crate) fn new(
        router: Router,
        config: Config,
        declared: Vec<(String, ClassConfig)>,
        stopping: async_channel::Receiver<()>,
        closed_tx: async_channel::Sender<()>,
    ) -> Result<App> {
        config.validate()?;
        let default = ClassHandle::new("default", config.pool.clone(), config.low_priority_workers);
        let mut classes = vec![default.clone()];
        let mut by_name: HashMap<String, ClassHandle> = HashMap::new();
        for (name, class_config) in declared {
            class_config.validate(&name)?;
            if name == "default" || by_name.contains_key(&name) {
                return Err(Error::Config(format!(
                    "pool class `{name}` is declared twice"
                )));
            }
            let class = ClassHandle::new(&name, class_config, config.low_priority_workers);
            by_name.insert(name, class.clone());
            classes.push(class);
        }
        let route_classes = router
            .routes()
            .iter()
            .map(|route| match route.class.as_deref() {
                None | Some("default") => Ok(default.clone()),
                Some(name) => by_name.get(name).cloned().ok_or_else(|| {
                    Error::Config(format!(
                        "route {} uses pool class `{name}`, which is not declared",
                        route.label
                    ))
                }),
            })
            .collect::<Result<_>>()?;
        let labels = router.routes().iter().map(|r| r.label.clone()).collect();
        let monitor = Monitor::start(labels, config.stall_threshold, config.loop_monitor);
        let requests = RequestMetrics::new(router.routes().len());
        Ok(App {
            monitor,
            requests,
            started: Instant::now(),
            router,
            route_classes,
            classes,
            config,
            stopping,
            closed_tx,
            connections: Cell::new(0),
            refused: Cell::new(0),
            accept_errors: Cell::new(0),
            body_memory: Cell::new(0),
            frontend_healthy: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Returns `true` once a graceful shutdown has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.is_closed()
    }

    /// Returns `false` once the front end can no longer accept connections (for `/readyz`).
    pub(crate) fn is_frontend_healthy(&self) -> bool {
        self.frontend_healthy.load(Ordering::Acquire)
    }

    /// Starts a request's (empty) share of the server-wide body memory.
    pub(crate) fn body_memory(self: &Rc<Self>) -> BodyMemory {
        BodyMemory {
            app: self.clone(),
            bytes: 0,
        }
    }

    /// Counts a new connection; the guard uncounts it.
    pub(crate) fn open_connection(self: &Rc<Self>) -> ConnGuard {
        self.connections.set(self.connections.get() + 1);
        ConnGuard { app: self.clone() }
    }

    /// Returns the body limit for the route `route_id`.
    pub(crate) fn body_limit(&self, route_id: usize) -> usize {
        self.router.routes()[route_id]
            .body_limit
            .unwrap_or(self.config.max_body_bytes)
    }

    /// Routes a request: `Ok(route id)` with the parameters set on it, or the 404/405 response
    /// (counted in the metrics).
    pub(crate) fn route(&self, req: &mut Request) -> std::result::Result<usize, Response> {
        // `OPTIONS *` (the only request with the target `*`) asks about the server as a whole.
        let lookup = if req.path() == "*" {
            Lookup::MethodNotAllowed(self.router.allow_any())
        } else {
            self.router.lookup(req.method(), req.path())
        };
        let response = match lookup {
            Lookup::Found(id, params) => {
                req.set_params(params);
                return Ok(id);
            }
            Lookup::MethodNotAllowed(allow) if req.path() == "*" => {
                Response::new(204).with_header("Allow", allow)
            }
            Lookup::MethodNotAllowed(allow) => Response::text("method not allowed\n")
                .with_status(405)
                .with_header("Allow", allow),
            Lookup::NotFound => Response::text("not found\n").with_status(404),
        };
        self.requests
            .record(None, response.status(), Duration::ZERO);
        self.access_log(
            req.method(),
            req.path(),
            &response,
            Duration::ZERO,
            Duration::ZERO,
        );
        Err(response)
    }

    /// Counts a request the front end refused before routing it (malformed, too large, slow).
    pub(crate) fn record_rejected(&self, status: u16) {
        self.requests.record_rejected(status);
    }

    /// Runs the handler of route `route_id` for `req` and returns its response.
    ///
    /// Never fails: a panic becomes 500, a shed job 503, a passed route deadline 504. Dropping
    /// the future drops the handler and any job it queued (counted as abandoned).
    pub(crate) async fn dispatch(&self, route_id: usize, req: Request) -> Response {
        let start = Instant::now();
        let route = &self.router.routes()[route_id];
        let class = self.route_classes[route_id].clone();
        let logged = self
            .config
            .access_log
            .then(|| (req.method().to_string(), req.path().to_string()));
        let mut in_flight = InFlight::new(&self.requests);
        let scope = RequestScope::new(class.clone());
        let label = route.label.as_str();
        let run = async {
            match route.handler.clone() {
                Handler::Async(handler) => {
                    let outcome = AssertUnwindSafe(async move { handler(req).await })
                        .catch_unwind()
                        .await;
                    outcome.unwrap_or_else(|payload| {
                        // `into_response` logs the 500 with this detail.
                        let message = panic_message(payload.as_ref());
                        Error::HandlerPanicked(format!("{label}: {message}")).into_response()
                    })
                }
                Handler::Blocking(handler) => pool::submit(class, move |_token| handler(req))
                    .await
                    .into_response(),
                Handler::Probe(probe) => probes::answer(self, probe),
            }
        };
        let scoped = Scoped::new(scope.clone(), &self.monitor, route_id, run);
        let response = match route.timeout {
            None => scoped.await,
            Some(timeout) => {
                let deadline = async {
                    async_io::Timer::after(timeout).await;
                    log::warn!("request to {label} passed its {timeout:?} deadline");
                    Error::Timeout.into_response()
                };
                scoped.or(deadline).await
            }
        };
        in_flight.complete();
        let took = start.elapsed();
        self.requests
            .record(Some(route_id), response.status(), took);
        if let Some((method, path)) = logged {
            self.access_log(&method, &path, &response, took, scope.queue_wait.get());
        }
        response
    }

    /// Writes the access-log line of a response, when the access log is on.
    fn access_log(
        &self,
        method: &str,
        path: &str,
        response: &Response,
        took: Duration,
        queued: Duration,
    ) {
        if !self.config.access_log {
            return;
        }
        let bytes = if response.is_streaming() {
            "-".to_string()
        } else {
            response.body_bytes().len().to_string()
        };
        log::info!(
            target: "steadyloop::access",
            "{method} {path} {} {bytes} {:.3}ms queue={:.3}ms",
            response.status(),
            took.as_secs_f64() * 1000.0,
            queued.as_secs_f64() * 1000.0,
        );
    }

    /// Stops every pool class: idle workers leave, running jobs finish.
    pub(crate) fn close_pools(&self) {
        for class in &self.classes {
            class.close();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.monitor.stop();
    }
}

/// Counts a request as in flight until dropped; a request dropped before completing (client
/// gone, forced shutdown) is counted as abandoned.
struct InFlight<'a> {
    /// The counters.
    metrics: &'a RequestMetrics,
    /// Set when the handler produced a response.
    completed: bool,
}

impl<'a> InFlight<'a> {
    /// Counts one more request in flight.
    fn new(metrics: &'a RequestMetrics) -> InFlight<'a> {
        metrics.in_flight.set(metrics.in_flight.get() + 1);
        InFlight {
            metrics,
            completed: false,
        }
    }

    /// Marks the request as answered.
    fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.set(self.metrics.in_flight.get() - 1);
        if !self.completed {
            self.metrics.abandoned.set(self.metrics.abandoned.get() + 1);
        }
    }
}
