//! A custom overload policy: expensive exports get their own pool class with one worker and a
//! short queue. A burst of exports is shed at once with `503` + `Retry-After` instead of
//! queueing, and other routes, whose work is in the default class, are not slowed down.
//!
//! Run: `cargo run --example overload`, then fire a burst (1 runs, 2 wait, the rest get 503):
//! `for i in 1 2 3 4 5 6; do curl -s -w '%{http_code}\n' -o /dev/null 'localhost:3005/export?ms=500' & done; wait`

use std::time::Duration;

use steadyloop::{offload, ClassConfig, Request, RouteOptions, Router, Server, ServerBuilder};

/// The server settings: the `export` class, one job at a time, two waiting, for at most 2 s.
pub fn builder() -> ServerBuilder {
    let export = ClassConfig::new(1, 2).queue_timeout(Duration::from_secs(2));
    Server::builder().class("export", export)
}

/// The routes. A function, so `tests/examples.rs` can serve them on a free port.
pub fn app() -> Router {
    Router::new()
        .get("/healthz", |_req| async { "ok\n" })
        .get_with(
            "/export",
            RouteOptions::new().class("export"),
            |req: Request| async move {
                let ms: u64 = req.query("ms")?.unwrap_or(500).min(5_000);
                let rows = offload(move || export(ms)).await?;
                Ok::<_, steadyloop::Error>(format!("exported {rows} rows\n"))
            },
        )
}

/// Stands in for an expensive export that takes `ms` milliseconds.
fn export(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms * 100
}

fn main() -> steadyloop::Result<()> {
    let server = builder().addr("127.0.0.1:3005").build(app())?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
