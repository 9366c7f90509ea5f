//! The smallest service: two routes answered on the event loop, one with a path parameter.
//!
//! Run: `cargo run --example hello`, then `curl localhost:3000/hello/you`.

use steadyloop::{Request, Router, Server};

/// The routes. A function, so `tests/examples.rs` can serve them on a free port.
pub fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "hello, world\n" })
        .get("/hello/:name", |req: Request| async move {
            let name = req.param("name").unwrap_or("world");
            format!("hello, {name}\n")
        })
}

fn main() -> steadyloop::Result<()> {
    let server = Server::builder().addr("127.0.0.1:3000").build(app())?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
