//! The application as the front ends see it: the router, its resolved pool classes, the
//! settings, and `dispatch`, which runs one request's handler and always yields a response.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_lite::FutureExt;

use crate::config::{ClassConfig, Config};
use crate::error::{Error, Result};
use crate::offload::{self, panic_message, Class};
use crate::request::Request;
use crate::response::{IntoResponse, Response};
use crate::router::{Handler, Lookup, Router};
use crate::scope::Scoped;

/// Everything a front end needs to serve requests; lives on the loop.
pub(crate) struct App {
    /// The route table.
    pub(crate) router: Router,
    /// The pool class of each route, by route id.
    route_classes: Vec<Arc<Class>>,
    /// Every pool class, the default one first.
    pub(crate) classes: Vec<Arc<Class>>,
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
    /// Cleared when the front end can no longer accept connections (a dead tiny_http accept
    /// thread); shared with the front end's threads.
    pub(crate) frontend_healthy: Arc<AtomicBool>,
}

/// Counts a connection as open until dropped.
pub(crate) struct ConnGuard {
    /// The application whose count this is.
    app: std::rc::Rc<App>,
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
        let default = Class::new("default", config.pool.clone(), config.low_priority_workers);
        let mut classes = vec![default.clone()];
        let mut by_name: HashMap<String, Arc<Class>> = HashMap::new();
        for (name, class_config) in declared {
            class_config.validate(&name)?;
            if name == "default" || by_name.contains_key(&name) {
                return Err(Error::Config(format!(
                    "pool class `{name}` is declared twice"
                )));
            }
            let class = Class::new(&name, class_config, config.low_priority_workers);
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
        Ok(App {
            router,
            route_classes,
            classes,
            config,
            stopping,
            closed_tx,
            connections: Cell::new(0),
            refused: Cell::new(0),
            accept_errors: Cell::new(0),
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

    /// Counts a new connection; the guard uncounts it.
    pub(crate) fn open_connection(self: &std::rc::Rc<Self>) -> ConnGuard {
        self.connections.set(self.connections.get() + 1);
        ConnGuard { app: self.clone() }
    }

    /// Returns the body limit for the route `route_id`.
    pub(crate) fn body_limit(&self, route_id: usize) -> usize {
        self.router.routes()[route_id]
            .body_limit
            .unwrap_or(self.config.max_body_bytes)
    }

    /// Routes a request: `Ok(route id)` with the parameters set on it, or the 404/405 response.
    pub(crate) fn route(&self, req: &mut Request) -> std::result::Result<usize, Response> {
        match self.router.lookup(req.method(), req.path()) {
            Lookup::Found(id, params) => {
                req.set_params(params);
                Ok(id)
            }
            Lookup::MethodNotAllowed(allow) => Err(Response::text("method not allowed\n")
                .with_status(405)
                .with_header("Allow", allow)),
            Lookup::NotFound => Err(Response::text("not found\n").with_status(404)),
        }
    }

    /// Runs the handler of route `route_id` for `req` and returns its response.
    ///
    /// Never fails: a panic becomes 500, a shed job 503, a passed route deadline 504. Dropping
    /// the future drops the handler and any job it queued.
    pub(crate) async fn dispatch(&self, route_id: usize, req: Request) -> Response {
        let route = &self.router.routes()[route_id];
        let class = self.route_classes[route_id].clone();
        let handler = route.handler.clone();
        let label = route.label.as_str();
        let run = async {
            match handler {
                Handler::Async(handler) => {
                    let outcome = AssertUnwindSafe(async move { handler(req).await })
                        .catch_unwind()
                        .await;
                    outcome.unwrap_or_else(|payload| {
                        let message = panic_message(payload.as_ref());
                        log::error!("handler {label} panicked: {message}");
                        Error::HandlerPanicked(message).into_response()
                    })
                }
                Handler::Blocking(handler) => {
                    offload::submit(class.clone(), move |_token| handler(req))
                        .await
                        .into_response()
                }
            }
        };
        let scoped = Scoped::new(class.clone(), run);
        match route.timeout {
            None => scoped.await,
            Some(timeout) => {
                let deadline = async {
                    async_io::Timer::after(timeout).await;
                    log::warn!("request to {label} passed its {timeout:?} deadline");
                    Error::Timeout.into_response()
                };
                scoped.or(deadline).await
            }
        }
    }

    /// Stops every pool class: idle workers leave, running jobs finish.
    pub(crate) fn close_pools(&self) {
        for class in &self.classes {
            class.close();
        }
    }
}
