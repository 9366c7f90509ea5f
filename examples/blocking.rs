//! Blocking routes: synchronous handlers that run whole on the CPU pool (like FastAPI's plain
//! `def` endpoints), for code that blocks — CPU work, a synchronous client library, file I/O.
//!
//! Run: `cargo run --example blocking`, then
//! `curl --data-binary @Cargo.toml localhost:3002/checksum` or `curl 'localhost:3002/wait?ms=300'`.

use std::time::Duration;

use steadyloop::{Error, Request, Result, Router, Server};

/// The routes. A function, so `tests/examples.rs` can serve them on a free port.
pub fn app() -> Router {
    Router::new()
        // The body is read on the loop; hashing it happens on the pool.
        .blocking_post("/checksum", |req: Request| {
            format!("{:016x}\n", fnv1a(req.body()))
        })
        // Stands in for a synchronous call (a database driver, a subprocess) that blocks.
        .blocking_get("/wait", |req: Request| -> Result<String> {
            let ms: u64 = req.query("ms")?.unwrap_or(100);
            if ms > 5_000 {
                return Err(Error::bad_request("ms must be at most 5000"));
            }
            std::thread::sleep(Duration::from_millis(ms));
            Ok(format!("waited {ms} ms\n"))
        })
}

/// The 64-bit FNV-1a hash of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() -> steadyloop::Result<()> {
    let server = Server::builder().addr("127.0.0.1:3002").build(app())?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
