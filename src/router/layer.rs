//! Middleware: layers, the `Next` step they call, and the chain every routed request runs
//! through.
//!
//! A layer is an async function of `(Request, Next)` that runs on the loop. It may answer early
//! (without calling `next`), change the request before passing it on, and change the response on
//! its way back. Layers wrap every response the router produces: handler answers, blocking-route
//! answers, 404/405/`OPTIONS`, route deadlines (504), shed work (503) and the built-in probes.
//! Answers the front end makes before routing (400/408/413/414/431 on malformed or oversized
//! input, 503 when the connection cap or the body memory is reached) do not pass through them.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::layers::{After, Builtin, Later};
use crate::request::Request;
use crate::response::{IntoResponse, Response};
use crate::router::{Dispatcher, Router};

/// The future a [`Layer`] returns: a response, produced on the loop (it need not be `Send`).
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response>>>;

/// Middleware: code that runs around the handler of every request it applies to.
///
/// Any `Fn(Request, Next) -> impl Future<Output = impl IntoResponse>` closure is a layer; types
/// with settings (such as [`RequestId`](crate::RequestId)) implement the trait directly. Add
/// layers with [`Router::layer`] (every request) or [`Router::layer_on`] (requests under a path
/// prefix).
///
/// # Examples
///
/// A layer that times each request and adds a header:
///
/// ```
/// use std::time::Instant;
/// use steadyloop::{Next, Request, Router};
///
/// let app = Router::new()
///     .layer(|req: Request, next: Next| async move {
///         let start = Instant::now();
///         let response = next.run(req).await;
///         let micros = start.elapsed().as_micros().to_string();
///         response.with_header("Server-Timing", format!("app;dur={micros}"))
///     })
///     .get("/", |_req| async { "hi" });
/// # let _ = app;
/// ```
pub trait Layer: 'static {
    /// Handles `req`: answers it, or passes it (changed or not) to `next` and returns the
    /// response (changed or not).
    fn call(self: Rc<Self>, req: Request, next: Next) -> ResponseFuture;
}

impl<F, Fut, R> Layer for F
where
    F: Fn(Request, Next) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    fn call(self: Rc<Self>, req: Request, next: Next) -> ResponseFuture {
        let future = (self)(req, next);
        Box::pin(async move { future.await.into_response() })
    }
}

/// One layer of a router, with the path prefix it is limited to.
#[derive(Clone)]
pub(crate) struct LayerEntry {
    /// `None` for a global layer; otherwise the prefix (without a trailing `/`, `""` for `/`).
    prefix: Option<Box<str>>,
    /// The layer.
    layer: Rc<dyn Layer>,
    /// The same layer when it is one of steadyloop's own, which the chain runs in place.
    builtin: Option<Builtin>,
}

impl LayerEntry {
    /// Makes the entry of `layer`, limited to `prefix` if given.
    fn new<L: Layer>(prefix: Option<Box<str>>, layer: L) -> LayerEntry {
        let layer = Rc::new(layer);
        LayerEntry {
            prefix,
            builtin: Builtin::of(layer.clone() as Rc<dyn Any>),
            layer,
        }
    }

    /// Returns `true` if the layer applies to `req` (whose path is read only for a layer
    /// limited to a prefix).
    fn applies_to(&self, req: &Request) -> bool {
        match self.prefix.as_deref() {
            None => true,
            Some(prefix) => under_prefix(req.path(), prefix),
        }
    }
}

/// Returns `true` if `path` is `prefix` or lies below it (`/api` covers `/api` and `/api/x`,
/// not `/apix`); `prefix` has no trailing `/`.
// Out of line: the chain's search for the next layer stays a few instructions for global ones.
#[inline(never)]
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The layers of an application, in the order they were written; built once, shared by every
/// request.
pub(crate) type LayerStack = Rc<[LayerEntry]>;

/// The innermost step of a chain: routing's answer for the request (the handler, or a
/// 404/405/`OPTIONS` response).
///
/// An enum rather than a boxed closure: the closure cost an allocation per request (and the
/// copy into it) for what is one of two known steps.
pub(crate) enum Endpoint {
    /// Route `id` of the dispatcher answers.
    Route(Rc<Dispatcher>, usize),
    /// Routing answered itself (boxed: the common step, a route, stays two words, and the
    /// chain's futures that carry an endpoint stay small to move).
    Answer(Box<Response>),
    /// Any other step (the layer tests).
    #[cfg(test)]
    Custom(Box<dyn FnOnce(Request) -> ResponseFuture>),
}

impl Endpoint {
    /// Runs the step for `req`.
    fn run(self, req: Request) -> Answered {
        match self {
            Endpoint::Route(dispatcher, id) => dispatcher.run_route(id, req),
            Endpoint::Answer(response) => Answered::Now(*response),
            #[cfg(test)]
            Endpoint::Custom(step) => Answered::Later(step(req)),
        }
    }
}

/// What a step of the chain gives: its answer, or the future of it.
pub(crate) enum Answered {
    /// The answer, made without waiting (a probe's, routing's own): the chain goes on with it
    /// at once, with no box for a future that is ready on its first poll (a malloc, a free and
    /// a dynamic poll per request, about 190 instructions).
    Now(Response),
    /// The future of the answer.
    Later(ResponseFuture),
}

impl Answered {
    /// Returns the answer as the boxed future a layer's [`Next`] hands on.
    fn boxed(self) -> ResponseFuture {
        match self {
            Answered::Now(response) => Box::pin(std::future::ready(response)),
            Answered::Later(future) => future,
        }
    }
}

/// The rest of the chain after the current layer: the next layers, then the handler.
///
/// Call [`Next::run`] once to pass the request on; dropping a `Next` without running it answers
/// the request from the current layer alone.
pub struct Next {
    /// Every layer of the application.
    stack: LayerStack,
    /// The index of the first layer not yet considered.
    index: usize,
    /// What answers once the layers are done.
    endpoint: Endpoint,
}

impl Next {
    /// Passes `req` to the next layer that applies to it (or to the handler, after the last
    /// one) and resolves to the response.
    ///
    /// Per-prefix layers are chosen by the request's path as it reaches them, so a layer that
    /// rewrites the path changes which later layers apply; routing itself happened before the
    /// first layer ran.
    pub fn run(self, req: Request) -> ResponseFuture {
        let Next {
            stack,
            index,
            endpoint,
        } = self;
        match next_applying(&stack, index, &req) {
            None => endpoint.run(req).boxed(),
            // Built-in layers run in place in one future, up to the next layer of the user's.
            Some(at) if stack[at].builtin.is_some() => {
                let (answered, afters) = start(stack, at, req, endpoint);
                Box::pin(Chain {
                    state: State::Running {
                        awaiting: answered.boxed(),
                        afters,
                    },
                    catch_panics: false,
                })
            }
            Some(at) => {
                let layer = stack[at].layer.clone();
                layer.call(
                    req,
                    Next {
                        stack,
                        index: at + 1,
                        endpoint,
                    },
                )
            }
        }
    }
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining_layers", &(self.stack.len() - self.index))
            .finish()
    }
}

/// Returns the index of the first layer of `stack`, from `index` on, that applies to `req`.
#[inline]
fn next_applying(stack: &[LayerEntry], index: usize, req: &Request) -> Option<usize> {
    let skipped = stack.get(index..)?.iter().position(|e| e.applies_to(req))?;
    Some(index + skipped)
}

/// How many built-in layers in a row one [`Chain`] runs in place; a further one runs in a
/// nested chain of its own.
const IN_PLACE: usize = 2;

/// The work built-in layers left for the response, in the order they ran.
#[derive(Default)]
struct Afters([Option<After>; IN_PLACE]);

impl Afters {
    /// Returns the free slot for one more layer's work, if there is one.
    fn slot(&mut self) -> Option<&mut Option<After>> {
        self.0.iter_mut().find(|slot| slot.is_none())
    }

    /// Returns the work of the innermost layer left, as nested layers would do it.
    fn pop(&mut self) -> Option<After> {
        self.0.iter_mut().rev().find_map(Option::take)
    }
}

/// The chain of one request from a layer on: the built-in layers in place (their work on the
/// request first, on the response once the rest has answered), the rest of the chain from the
/// first layer of the user's on through [`Next::run`].
///
/// A future written out rather than an `async fn`: that one kept its arguments for its whole
/// life and the locals made from them again (432 bytes, copied twice per request on the way
/// into the route's box). Everything it waits for is boxed, so it is `Unpin` and small.
pub(crate) struct Chain {
    /// Where the chain is.
    state: State,
    /// Whether a panic in the chain becomes a 500 here (the outermost chain) or unwinds on.
    catch_panics: bool,
}

/// The steps of a [`Chain`].
enum State {
    /// Not yet polled: the layers from `index` on are still to run for `req`.
    Start {
        /// Every layer of the application.
        stack: LayerStack,
        /// The first layer not yet considered.
        index: usize,
        /// The request.
        req: Request,
        /// What answers once the layers are done.
        endpoint: Endpoint,
    },
    /// Not yet polled, and the application has no layers: the endpoint alone answers `req`
    /// (without the search for layers, the built-ins' slots and their work on the response,
    /// about 170 instructions per request).
    Endpoint {
        /// The request.
        req: Request,
        /// What answers it.
        endpoint: Endpoint,
    },
    /// Waiting for `awaiting`: the rest of the chain, then any unfinished work of a built-in.
    Running {
        /// The future of the response.
        awaiting: ResponseFuture,
        /// What the built-in layers have left to do with it.
        afters: Afters,
    },
    /// Answered (or panicked).
    Done,
}

/// Runs the built-in layers of `stack` from `index` on for `req` and starts the rest of the
/// chain: its answer (or the future of it), and the built-ins' work left for the response.
fn start(
    stack: LayerStack,
    mut index: usize,
    mut req: Request,
    endpoint: Endpoint,
) -> (Answered, Afters) {
    let mut afters = Afters::default();
    let answered = loop {
        let Some(at) = next_applying(&stack, index, &req) else {
            break endpoint.run(req);
        };
        if let Some(builtin) = &stack[at].builtin {
            // Without room the layer runs in the nested chain instead.
            if let Some(slot) = afters.slot() {
                *slot = Some(builtin.before(&mut req));
                index = at + 1;
                continue;
            }
        }
        let next = Next {
            stack,
            index: at,
            endpoint,
        };
        break Answered::Later(next.run(req));
    };
    (answered, afters)
}

/// Does the built-in layers' work left in `afters` on `response`, innermost first, until one
/// has work that takes a future: that work, or `None` once all of it is done.
fn finish(afters: &mut Afters, response: &mut Response) -> Option<Later> {
    while let Some(after) = afters.pop() {
        if let Some(later) = after.finish(response) {
            return Some(later);
        }
    }
    None
}

impl Chain {
    /// Polls the chain on: starts it, then waits for the rest and does the built-ins' work.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Response> {
        if matches!(self.state, State::Endpoint { .. }) {
            let State::Endpoint { req, endpoint } = std::mem::replace(&mut self.state, State::Done)
            else {
                unreachable!("matched above");
            };
            match endpoint.run(req) {
                Answered::Now(response) => return Poll::Ready(response),
                Answered::Later(awaiting) => {
                    self.state = State::Running {
                        awaiting,
                        afters: Afters::default(),
                    };
                }
            }
        } else if matches!(self.state, State::Start { .. }) {
            let State::Start {
                stack,
                index,
                req,
                endpoint,
            } = std::mem::replace(&mut self.state, State::Done)
            else {
                unreachable!("matched above");
            };
            let (answered, mut afters) = start(stack, index, req, endpoint);
            let awaiting = match answered {
                Answered::Later(awaiting) => awaiting,
                // An answer made at once needs no poll: the built-ins' work is done on it now.
                Answered::Now(mut response) => match finish(&mut afters, &mut response) {
                    None => return Poll::Ready(response),
                    Some(later) => later.start(response),
                },
            };
            self.state = State::Running { awaiting, afters };
        }
        let State::Running { awaiting, afters } = &mut self.state else {
            panic!("layer chain polled after it answered");
        };
        loop {
            // The response is worked on where the poll put it, and that is what is returned
            // (each copy of a response is a dozen words).
            let mut poll = awaiting.as_mut().poll(cx);
            let Poll::Ready(response) = &mut poll else {
                return Poll::Pending;
            };
            // The built-ins' work in place, until one has work that takes a future.
            let Some(later) = finish(afters, response) else {
                self.state = State::Done;
                return poll;
            };
            if let Poll::Ready(response) = poll {
                *awaiting = later.start(response);
            }
        }
    }
}

impl Future for Chain {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let chain = self.get_mut();
        if !chain.catch_panics {
            return chain.step(cx);
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| chain.step(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                chain.state = State::Done;
                let message = crate::pool::panic_message(payload.as_ref());
                log::error!("a layer panicked: {message}");
                Poll::Ready(Error::HandlerPanicked(message).into_response())
            }
        }
    }
}

/// Runs `req` through `stack` to `endpoint`; a panic in a layer becomes a 500 (logged), so the
/// loop never goes down with a layer.
pub(crate) fn run_chain(stack: &LayerStack, req: Request, endpoint: Endpoint) -> Chain {
    if stack.is_empty() {
        // Without layers there is nothing to catch: the route catches its handler's panics.
        return Chain {
            catch_panics: false,
            state: State::Endpoint { req, endpoint },
        };
    }
    Chain {
        catch_panics: true,
        state: State::Start {
            stack: stack.clone(),
            index: 0,
            req,
            endpoint,
        },
    }
}

impl Router {
    /// Adds `layer` around every request this router answers, including 404/405/`OPTIONS`
    /// answers, route deadlines (504), shed work (503) and the built-in probes.
    ///
    /// Layers run in the order they are written, the first one outermost: it sees the request
    /// first and the response last. [`Router::layer`] and [`Router::layer_on`] calls share that
    /// one order, wherever they stand among the routes. Answers the front end makes before
    /// routing (400, 408, 413, 414, 431 for malformed or oversized input; 503 at the connection
    /// cap) do not pass through layers.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadyloop::{Cors, RequestId, Router};
    ///
    /// let app = Router::new()
    ///     .layer(RequestId::new())
    ///     .layer(Cors::permissive())
    ///     .get("/", |_req| async { "hi" });
    /// # let _ = app;
    /// ```
    pub fn layer(mut self, layer: impl Layer) -> Router {
        self.layers.push(LayerEntry::new(None, layer));
        self
    }

    /// Adds `layer` around the requests whose path is `prefix` or lies below it (`/api`
    /// covers `/api` and `/api/items`, not `/apis`), in the same order as [`Router::layer`].
    ///
    /// The prefix is matched literally against the request's (percent-encoded) path, so it
    /// applies to the 404s and 405s under it too. A route pattern such as `/items/:id` is not
    /// a prefix: give the literal part, `/items`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadyloop::{Error, Next, Request, Router};
    ///
    /// let app = Router::new()
    ///     .get("/admin/stats", |_req| async { "secret" })
    ///     .layer_on("/admin", |req: Request, next: Next| async move {
    ///         if req.header("x-admin") != Some("yes") {
    ///             return Error::status(403, "admins only").into_response();
    ///         }
    ///         next.run(req).await
    ///     });
    /// # let _ = app;
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `prefix` does not start with `/` (a programming error, caught at startup).
    pub fn layer_on(mut self, prefix: &str, layer: impl Layer) -> Router {
        assert!(
            prefix.starts_with('/'),
            "layer prefix {prefix:?} must start with '/'"
        );
        let prefix = prefix.trim_end_matches('/');
        self.layers
            .push(LayerEntry::new(Some(prefix.into()), layer));
        self
    }

    /// Returns the layers in the order written, for the application to run requests through.
    pub(crate) fn layer_stack(&self) -> LayerStack {
        self.layers.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer that appends `tag` to the `X-Trace` header on the way out and to the
    /// `X-Seen` request header on the way in.
    fn tracer(tag: &'static str) -> impl Layer {
        move |mut req: Request, next: Next| async move {
            let seen = format!("{}{tag}", req.header("x-seen").unwrap_or(""));
            req.insert_header("X-Seen", seen);
            let response = next.run(req).await;
            let trace = format!("{}{tag}", response.header("x-trace").unwrap_or(""));
            response.with_header("X-Trace", trace)
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint::Custom(Box::new(|req: Request| -> ResponseFuture {
            let seen = req.header("x-seen").unwrap_or("").to_string();
            Box::pin(async move { Response::text(seen) })
        }))
    }

    fn run(router: Router, path: &str) -> Response {
        let req = crate::Request::builder().uri(path).build();
        futures_lite::future::block_on(run_chain(&router.layer_stack(), req, endpoint()))
    }

    #[test]
    fn layers_run_in_written_order_first_outermost() {
        let router = Router::new()
            .layer(tracer("a"))
            .layer_on("/api", tracer("b"))
            .layer(tracer("c"));
        let response = run(router, "/api/x");
        assert_eq!(response.body_bytes(), b"abc");
        assert_eq!(response.header("x-trace"), Some("cba"));
    }

    #[test]
    fn prefix_layers_apply_on_segment_boundaries() {
        let router = || Router::new().layer_on("/api/", tracer("p"));
        assert_eq!(run(router(), "/api").body_bytes(), b"p");
        assert_eq!(run(router(), "/api/items").body_bytes(), b"p");
        assert_eq!(run(router(), "/apis").body_bytes(), b"");
        let everything = Router::new().layer_on("/", tracer("r"));
        assert_eq!(run(everything, "/x").body_bytes(), b"r");
    }

    #[test]
    fn a_layer_can_answer_early() {
        let router = Router::new()
            .layer(|_req: Request, _next: Next| async { Error::status(401, "no").into_response() });
        assert_eq!(run(router, "/").status(), 401);
    }

    #[test]
    fn a_panicking_layer_is_a_500() {
        let router = Router::new().layer(|_req: Request, _next: Next| async {
            if true {
                panic!("layer bug");
            }
            "unreachable"
        });
        let response = run(router, "/");
        assert_eq!(response.status(), 500);
        assert!(!String::from_utf8_lossy(response.body_bytes()).contains("layer bug"));
    }

    #[test]
    fn built_in_layers_keep_their_place_among_the_users_layers() {
        use crate::RequestId;
        // Three built-ins in a row: more than run in place in one chain.
        let router = Router::new()
            .layer(tracer("a"))
            .layer(RequestId::new().header("X-One"))
            .layer(tracer("b"))
            .layer(RequestId::new().header("X-Two"))
            .layer(RequestId::new().header("X-Three"))
            .layer(RequestId::new())
            .layer(tracer("c"))
            .layer(|req: Request, next: Next| async move {
                let id = req.request_id().unwrap_or("").to_string();
                let response = next.run(req).await;
                // The built-ins outside this layer have not answered yet.
                assert_eq!(response.header("x-three"), None);
                response.with_header("X-Inner-Id", id)
            });
        let response = run(router, "/");
        assert_eq!(response.body_bytes(), b"abc");
        assert_eq!(response.header("x-trace"), Some("cba"));
        for name in ["x-one", "x-two", "x-three", "x-request-id"] {
            assert_eq!(response.header(name).map(str::len), Some(16), "{name}");
        }
        // The innermost id is the one the handler sees.
        assert_eq!(
            response.header("x-inner-id"),
            response.header("x-request-id")
        );
    }

    #[test]
    fn a_panic_inside_built_in_layers_is_a_500_without_their_headers() {
        for router in [
            Router::new().layer(crate::RequestId::new()),
            Router::new()
                .layer(tracer("a"))
                .layer(crate::RequestId::new())
                .layer(crate::RequestId::new().header("X-Two")),
        ] {
            let router = router.layer(|_req: Request, _next: Next| async {
                if true {
                    panic!("layer bug");
                }
                "unreachable"
            });
            let response = run(router, "/");
            assert_eq!(response.status(), 500);
            assert_eq!(response.header("x-request-id"), None);
            assert_eq!(response.header("x-trace"), None);
        }
    }

    #[test]
    fn without_layers_the_endpoint_alone_answers() {
        let response = run(Router::new(), "/");
        assert_eq!((response.status(), response.body_bytes()), (200, &b""[..]));
        let answer = Endpoint::Answer(Box::new(Response::text("now")));
        let req = crate::Request::builder().uri("/").build();
        let stack = Router::new().layer_stack();
        let response = futures_lite::future::block_on(run_chain(&stack, req, answer));
        assert_eq!(response.body_bytes(), b"now");
    }

    #[test]
    fn the_chain_future_stays_small() {
        // Up to 128 bytes a move is a few vector copies in place, not a call to memcpy; the
        // chain moves twice on its way into the route's box.
        assert!(std::mem::size_of::<Chain>() <= 128);
    }

    #[test]
    #[should_panic(expected = "must start with '/'")]
    fn prefix_without_slash_panics() {
        let _ = Router::new().layer_on("api", tracer("x"));
    }
}
