//! Answering a request the front end has read: route it (or answer 404/405/`OPTIONS *`), run it
//! through the layers to its route's handler so that it always yields a response, then count the
//! response the client gets and log it.

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::error::{Error, Result};
use crate::observe::probes;
use crate::pool::scope::{scoped, RouteScope, RouteScopes};
use crate::pool::{self, panic_message};
use crate::request::Request;
use crate::response::{Body, IntoResponse, Response, Stream};
use crate::router::layer::{run_chain, Answered, Endpoint, LayerStack};
use crate::router::{Handler, Probe, Route, Router};
use crate::server::state::ServerState;

/// An async route's handler, as the route table holds it.
type AsyncHandler = Rc<dyn Fn(Request) -> crate::router::LocalResponseFuture>;

/// What routing decided for a request.
pub(crate) enum Routed {
    /// Route `id` answers; its parameters are set on the request.
    Route(usize),
    /// Routing answers itself: 404, 405, or `OPTIONS *` (boxed: the rare case, and a
    /// `Routed` travels with the request through the front ends' futures).
    Answer(Box<Response>),
}

/// The router with each route's pool class resolved; lives on the loop.
pub(crate) struct Dispatcher {
    /// The route table (shared with dashboard streams).
    router: Rc<Router>,
    /// The router's layers, in the order written.
    layers: LayerStack,
    /// The pool class and label (`GET /report`) of each route, by route id, as its requests'
    /// scopes and pool jobs carry them.
    route_scopes: RouteScopes,
    /// The server's counters, monitor and settings.
    state: Rc<ServerState>,
}

impl Dispatcher {
    /// Resolves the pool class of each route of `router` among those `state` declares.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] for a route naming an undeclared class.
    pub(crate) fn new(router: Router, state: Rc<ServerState>) -> Result<Dispatcher> {
        let route_scopes = router
            .routes()
            .iter()
            .map(|route| {
                let class = state.class(route.class.as_deref()).ok_or_else(|| {
                    Error::Config(format!(
                        "route {} uses pool class `{}`, which is not declared",
                        route.label,
                        route.class.as_deref().unwrap_or_default()
                    ))
                })?;
                let label = Arc::from(route.label.as_str());
                Ok(RouteScope { class, label })
            })
            .collect::<Result<Vec<_>>>()?;
        let route_scopes = RouteScopes::new(route_scopes);
        Ok(Dispatcher {
            layers: router.layer_stack(),
            router: Rc::new(router),
            route_scopes,
            state,
        })
    }

    /// Returns the route table.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// Returns the server state the dispatcher answers with.
    pub(crate) fn state(&self) -> &Rc<ServerState> {
        &self.state
    }

    /// Returns the body limit for the route `route_id`.
    pub(crate) fn body_limit(&self, route_id: usize) -> usize {
        self.router.routes()[route_id]
            .body_limit
            .unwrap_or(self.state.config().max_body_bytes)
    }

    /// Routes a request: the route with the parameters set on the request, or routing's own
    /// answer (404/405/`OPTIONS *`), which [`Dispatcher::answer`] then runs through the layers.
    pub(crate) fn route(&self, req: &mut Request) -> Routed {
        match self.router.resolve(req) {
            Ok(id) => Routed::Route(id),
            Err(response) => Routed::Answer(Box::new(response)),
        }
    }

    /// Runs `req` through the layers to what routing decided and returns the response for the
    /// client; counts it in the metrics and writes its access-log line.
    ///
    /// Never fails: a panic becomes 500, a shed job 503, a passed route deadline 504. Dropping
    /// the future drops the handler and any job it queued (counted as abandoned).
    pub(crate) async fn answer(self: &Rc<Self>, req: Request, routed: Routed) -> Response {
        let start = Instant::now();
        let head = req.method() == "HEAD";
        let logged = self
            .state
            .config()
            .access_log
            .then(|| (req.method().to_string(), req.path().to_string()));
        let mut in_flight = self.state.requests().start();
        let (response, route_id, queued) = match routed {
            Routed::Answer(response) => {
                let response = run_chain(&self.layers, req, Endpoint::Answer(response)).await;
                (response, None, Duration::ZERO)
            }
            Routed::Route(id) => {
                // The layers run in the route's scope too, so their offloaded work (gzip, large
                // JSON) goes to the route's pool class and their polls are charged to the route.
                let endpoint = Endpoint::Route(self.clone(), id);
                let chain = pin!(run_chain(&self.layers, req, endpoint));
                let (response, queued) =
                    scoped(&self.route_scopes, self.state.monitor(), id, chain).await;
                (response, Some(id), queued)
            }
        };
        let response = if head {
            without_stream(response)
        } else {
            response
        };
        in_flight.complete();
        let took = start.elapsed();
        self.state
            .requests()
            .record(route_id, response.status(), took);
        if let Some((method, path)) = logged {
            self.access_log(&method, &path, &response, took, queued);
        }
        response
    }

    /// Starts the handler of route `route_id` (inside the layers) with the route's deadline:
    /// its answer, or the future of it boxed as a layer's `Next` hands it on.
    ///
    /// Each kind of handler gets a box of its own size: one future for all of them was 512
    /// bytes (a pool task's 176 among them), copied whole into its box per request. A probe
    /// answers at once (it never waits, so no deadline can pass) and needs no box, and an
    /// async handler without a deadline is only the handler's future and the panic catch.
    pub(crate) fn run_route(self: Rc<Self>, route_id: usize, req: Request) -> Answered {
        let route = &self.router.routes()[route_id];
        match (&route.handler, route.timeout) {
            (Handler::Probe(probe), _) => Answered::Now(self.answer_probe(*probe)),
            (Handler::Async(handler), None) => {
                let handler = handler.clone();
                Answered::Later(Box::pin(self.run_async(route_id, handler, req)))
            }
            _ => Answered::Later(Box::pin(self.run_with_deadline(route_id, req))),
        }
    }

    /// Runs the handler of route `route_id` with the route's deadline, if it has one.
    async fn run_with_deadline(self: Rc<Self>, route_id: usize, req: Request) -> Response {
        let route = &self.router.routes()[route_id];
        let run = self.run_handler(route_id, req);
        match route.timeout {
            None => run.await,
            Some(timeout) => {
                let deadline = async {
                    crate::time::sleep(timeout).await;
                    log::warn!("request to {} passed its {timeout:?} deadline", route.label);
                    Error::Timeout.into_response()
                };
                run.or(deadline).await
            }
        }
    }

    /// Runs async handler `handler` of route `route_id` on the loop; a panic becomes a 500.
    async fn run_async(
        self: Rc<Self>,
        route_id: usize,
        handler: AsyncHandler,
        req: Request,
    ) -> Response {
        let outcome = AssertUnwindSafe(async move { handler(req).await })
            .catch_unwind()
            .await;
        outcome.unwrap_or_else(|payload| {
            // `into_response` logs the 500 with this detail.
            let message = panic_message(payload.as_ref());
            let label = &self.router.routes()[route_id].label;
            Error::HandlerPanicked(format!("{label}: {message}")).into_response()
        })
    }

    /// Runs the handler of route `route_id` where it belongs: on the loop (a panic becomes a
    /// 500), on the pool, or as a built-in probe.
    async fn run_handler(self: &Rc<Self>, route_id: usize, req: Request) -> Response {
        let route: &Route = &self.router.routes()[route_id];
        match route.handler.clone() {
            Handler::Async(handler) => self.clone().run_async(route_id, handler, req).await,
            Handler::Blocking(handler) => {
                let class = self.route_scopes[route_id].class.clone();
                pool::submit(class, move |_token| handler(req))
                    .await
                    .into_response()
            }
            #[cfg(feature = "websocket")]
            Handler::WebSocket(_) => {
                if crate::websocket::handshake::is_upgrade(&req) {
                    // Only the native front end hands connections over.
                    Response::text("websocket upgrades need the native front end\n")
                        .with_status(501)
                } else {
                    Response::text("this endpoint speaks websocket only\n")
                        .with_status(426)
                        .with_header("Upgrade", "websocket")
                        .with_header("Connection", "Upgrade")
                        .with_header("Sec-WebSocket-Version", "13")
                }
            }
            Handler::Probe(probe) => self.answer_probe(probe),
        }
    }

    /// Answers a built-in probe.
    fn answer_probe(&self, probe: Probe) -> Response {
        match probe {
            Probe::DashboardEvents => crate::observe::dashboard::events(&self.state, &self.router),
            probe => probes::answer(&self.state, self.router.routes(), probe),
        }
    }

    /// Returns the WebSocket route `route_id` is, if it is one.
    #[cfg(feature = "websocket")]
    pub(crate) fn websocket_route(&self, route_id: usize) -> Option<crate::router::WebSocketRoute> {
        match &self.router.routes()[route_id].handler {
            Handler::WebSocket(route) => Some(route.clone()),
            _ => None,
        }
    }

    /// Runs a WebSocket session of route `route_id` on the loop, seen by the stall detector
    /// under the route's name; a panic in the handler ends the session and is logged.
    #[cfg(feature = "websocket")]
    pub(crate) async fn run_websocket(
        &self,
        route_id: usize,
        route: crate::router::WebSocketRoute,
        ws: crate::websocket::WebSocket,
        req: Request,
    ) {
        let label = self.router.routes()[route_id].label.clone();
        self.state
            .requests()
            .record(Some(route_id), 101, Duration::ZERO);
        let session = AssertUnwindSafe((route.handler)(ws, req)).catch_unwind();
        // Boxed: a session is long-lived and rare, and its future stays out of the caller's.
        let mut session = Box::pin(session);
        let scoped = scoped(
            &self.route_scopes,
            self.state.monitor(),
            route_id,
            session.as_mut(),
        );
        if let (Err(payload), _) = scoped.await {
            log::error!(
                "websocket handler {label} panicked: {}",
                panic_message(payload.as_ref())
            );
        }
    }

    /// Writes the access-log line of a response, when the access log is on: method, path,
    /// status, body bytes, time, pool queue wait, and the request id when a layer set one.
    fn access_log(
        &self,
        method: &str,
        path: &str,
        response: &Response,
        took: Duration,
        queued: Duration,
    ) {
        let bytes = if response.is_streaming() {
            "-".to_string()
        } else {
            response.body_bytes().len().to_string()
        };
        let id = response.header("x-request-id").unwrap_or("-");
        log::info!(
            target: "steadyloop::access",
            "{method} {path} {} {bytes} {:.3}ms queue={:.3}ms id={id}",
            response.status(),
            took.as_secs_f64() * 1000.0,
            queued.as_secs_f64() * 1000.0,
        );
    }
}

/// Drops the receiving end of a streamed body at once (for `HEAD`, which sends no body): the
/// producer's next send fails and its cancel token flips, so it stops instead of running on
/// into a body nobody reads, whichever front end answers.
fn without_stream(mut response: Response) -> Response {
    if !response.is_streaming() {
        return response;
    }
    if let Body::Stream(open) = response.swap_body(Body::Full(Vec::new())) {
        // The length (a file's) still goes out as `Content-Length`; the chunks never do.
        let (_, closed) = async_channel::bounded(1);
        response.swap_body(Body::Stream(Stream {
            rx: closed,
            len: open.len,
            events: open.events,
        }));
    }
    response
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}
