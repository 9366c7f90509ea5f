//! Streaming a response: a pool job produces the body chunk by chunk through a bounded channel,
//! so a large body never sits in memory and a slow client slows the producer down.
//! `offload_stream` answers only once the job has started, so a shed job is a clean 503, never a
//! 200 with an empty body.
//!
//! Run: `cargo run --example streaming`, then `curl -N 'localhost:3004/count?to=1000000'`.

use steadyloop::{offload_stream, Request, Router, Server};

/// Lines per chunk: fewer, larger chunks cost less than one chunk per line.
const LINES_PER_CHUNK: u64 = 1000;

/// The routes. A function, so `tests/examples.rs` can serve them on a free port.
pub fn app() -> Router {
    Router::new().get("/count", |req: Request| async move {
        let to: u64 = req.query("to")?.unwrap_or(100);
        // At most 4 chunks wait for the client; the producer blocks beyond that.
        let response = offload_stream(4, move |body, _token| {
            let mut chunk = String::new();
            for i in 1..=to {
                chunk.push_str(&format!("{i}\n"));
                let full = i % LINES_PER_CHUNK == 0 || i == to;
                if full && body.send_blocking(std::mem::take(&mut chunk)).is_err() {
                    return; // The client went away.
                }
            }
        })
        .await?;
        Ok(response.with_header("Content-Type", "text/plain; charset=utf-8"))
    })
}

fn main() -> steadyloop::Result<()> {
    let server = Server::builder().addr("127.0.0.1:3004").build(app())?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
