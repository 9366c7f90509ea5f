//! The in-process test client: a request through the whole application (layers, routing, body
//! limits, 404/405, handlers and the real CPU pool) without a socket.

use std::fmt;
use std::rc::Rc;

use async_executor::LocalExecutor;

#[cfg(feature = "json")]
use crate::error::Result;
use crate::http::h1::write;
use crate::request::Request;
use crate::request_builder::RequestBuilder;
use crate::response::{Body, Response};
use crate::router::{Dispatcher, Routed, Router};
use crate::server::ServerBuilder;
use crate::task::{InContext, LoopContext};

/// Runs requests through an application in-process, for tests of handlers and layers.
///
/// Each request goes through what a server does after parsing it: routing (404, 405, `OPTIONS`),
/// the route's body limit (413, which, as on a server, skips the layers), the layers, the
/// handler on the loop or on the real CPU pool with its classes and deadlines, and the check
/// that the response can be sent (500 otherwise). Streamed bodies are collected whole; `HEAD`
/// answers have their body removed. HTTP itself (framing, timeouts, keep-alive, the
/// connection cap and the server-wide body memory) is the front end's and is not exercised:
/// test those against a real server.
///
/// Requests run on the calling thread, which acts as the loop while [`TestClient::send`] waits;
/// tasks spawned by handlers run then too, and are dropped with the client.
///
/// # Examples
///
/// ```
/// use steadyloop::{Request, Router, TestClient};
///
/// let app = Router::new().post("/echo", |req: Request| async move {
///     format!("{} bytes\n", req.body().len())
/// });
/// let client = TestClient::new(app);
/// assert_eq!(client.post("/echo", "hello").text(), "5 bytes\n");
/// assert_eq!(client.get("/echo").status(), 405);
/// assert_eq!(client.get("/elsewhere").status(), 404);
/// ```
pub struct TestClient {
    /// The loop requests and spawned tasks run on.
    executor: Rc<LocalExecutor<'static>>,
    /// The application, with the server state it answers with.
    dispatcher: Rc<Dispatcher>,
    /// What `spawn` and `shutting_down` see.
    context: Rc<LoopContext>,
}

impl TestClient {
    /// Creates a client for `router` with every server setting at its default.
    ///
    /// # Panics
    ///
    /// Panics if the router names an undeclared pool class; use
    /// [`ServerBuilder::test_client`] to declare classes and change settings.
    pub fn new(router: Router) -> TestClient {
        ServerBuilder::default()
            .test_client(router)
            .expect("router needs settings of its own: use Server::builder()...test_client()")
    }

    /// Assembles a client (for [`ServerBuilder::test_client`]).
    pub(crate) fn new_parts(
        executor: Rc<LocalExecutor<'static>>,
        dispatcher: Rc<Dispatcher>,
        context: Rc<LoopContext>,
    ) -> TestClient {
        TestClient {
            executor,
            dispatcher,
            context,
        }
    }

    /// Sends `req` through the application and returns the response with its body collected.
    pub fn send(&self, req: impl Into<Request>) -> TestResponse {
        let req = req.into();
        let dispatcher = self.dispatcher.clone();
        let run = async move {
            let head = req.method() == "HEAD";
            let response = answer(&dispatcher, req).await;
            collect(write::sendable(response), head).await
        };
        let on_loop = InContext::new(self.context.clone(), self.executor.run(run));
        async_io::block_on(on_loop)
    }

    /// Sends `GET uri`.
    pub fn get(&self, uri: &str) -> TestResponse {
        self.send(Request::builder().uri(uri))
    }

    /// Sends `POST uri` with `body` (no `Content-Type`).
    pub fn post(&self, uri: &str, body: impl Into<Vec<u8>>) -> TestResponse {
        self.send(Request::builder().method("POST").uri(uri).body(body))
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        let state = self.dispatcher.state();
        state.begin_stopping();
        state.close_pools();
    }
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("router", self.dispatcher.router())
            .finish()
    }
}

impl From<RequestBuilder> for Request {
    fn from(builder: RequestBuilder) -> Request {
        builder.build()
    }
}

/// Routes and answers `req` as a front end would once the body is read.
async fn answer(dispatcher: &Rc<Dispatcher>, mut req: Request) -> Response {
    let routed = dispatcher.route(&mut req);
    if let Routed::Route(id) = routed {
        // The front end refuses an over-limit body before the layers, and so does this.
        if req.body().len() > dispatcher.body_limit(id) {
            dispatcher.state().record_rejected(413);
            return Response::text("request body too large\n").with_status(413);
        }
    }
    dispatcher.answer(req, routed).await
}

/// Reads a streamed body to its end.
async fn collect(mut response: Response, head: bool) -> TestResponse {
    let streamed = response.is_streaming();
    let body = match response.swap_body(Body::Full(Vec::new())) {
        Body::Full(bytes) => bytes,
        Body::Static(bytes) => bytes.to_vec(),
        Body::Stream(stream) => {
            let mut bytes = Vec::new();
            while let Ok(chunk) = stream.rx.recv().await {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        }
    };
    let bodiless = head || matches!(response.status(), 204 | 304);
    TestResponse {
        status: response.status(),
        headers: response
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: if bodiless { Vec::new() } else { body },
        streamed,
    }
}

/// A response as a [`TestClient`] received it: status, headers and the whole body.
#[derive(Clone, PartialEq, Eq)]
pub struct TestResponse {
    /// The status code.
    status: u16,
    /// Header fields in order, as the handler and layers set them.
    headers: Vec<(String, String)>,
    /// The body, collected.
    body: Vec<u8>,
    /// Whether the body was streamed.
    streamed: bool,
}

impl TestResponse {
    /// Returns the status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Returns the value of header `name` (case-insensitive; the first one if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Returns every value of header `name` (case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Returns all header fields in order (without the ones the server adds on the wire:
    /// `Date`, `Content-Length`, `Transfer-Encoding`, `Connection`).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Returns the body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Returns the body as text (invalid UTF-8 replaced with U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Returns `true` if the body was streamed rather than sent whole.
    pub fn is_streamed(&self) -> bool {
        self.streamed
    }

    /// Parses the body as JSON.
    ///
    /// # Errors
    ///
    /// A 400 [`Error`](crate::Error) naming the field if the body does not fit `T`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::Error::bad_request(format!("response is not the JSON expected: {e}"))
        })
    }
}

impl fmt::Debug for TestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}
