//! Bearer-token auth as a layer of a dozen lines: a 401 with `WWW-Authenticate` for the config
//! routes only, a request id on every response, CORS for a dashboard on another origin.
//!
//! Run: `cargo run --example bearer_auth`, then
//! `curl -i -H 'Authorization: Bearer s3cret' -X PUT -d 'interval=30' localhost:3000/api/config`.

use std::rc::Rc;

use steadyloop::{Cors, Error, Layer, Next, Request, RequestId, Router, Server};

/// A layer that lets a request through only with `Authorization: Bearer <token>`.
pub fn bearer_auth(token: &str) -> impl Layer {
    let expected: Rc<str> = format!("Bearer {token}").into();
    move |req: Request, next: Next| {
        let expected = expected.clone();
        async move {
            if req.header("authorization") != Some(&*expected) {
                return Error::unauthorized("Bearer realm=\"config\"").into_response();
            }
            next.run(req).await
        }
    }
}

/// The routes. A function, so the tests can run them in-process.
pub fn app(token: &str) -> Router {
    Router::new()
        .layer(RequestId::new())
        .layer(Cors::permissive())
        .get("/api/status", |_req| async { "running\n" })
        .put("/api/config", |req: Request| async move {
            format!("saved {} bytes\n", req.body().len())
        })
        .layer_on("/api/config", bearer_auth(token))
}

fn main() -> steadyloop::Result<()> {
    let server = Server::builder()
        .addr("127.0.0.1:3000")
        .build(app("s3cret"))?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
