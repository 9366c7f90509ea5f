//! Offloading CPU work from an async handler: `offload(f).await` runs `f` on the bounded CPU
//! pool, and the event loop keeps answering other requests meanwhile.
//!
//! Run: `cargo run --example offload`, then `curl 'localhost:3001/primes?below=20000000'` and,
//! while it computes, `curl localhost:3001/healthz` (answered at once).

use steadyloop::{offload, Error, Request, Router, Server};

/// Largest `below` accepted, to keep one request's work bounded.
const MAX_BELOW: usize = 100_000_000;

/// The routes. A function, so `tests/examples.rs` can serve them on a free port.
pub fn app() -> Router {
    Router::new().get("/healthz", |_req| async { "ok\n" }).get(
        "/primes",
        |req: Request| async move {
            let below: usize = req.query("below")?.unwrap_or(1_000_000);
            if below > MAX_BELOW {
                return Err(Error::bad_request(format!(
                    "below must be at most {MAX_BELOW}"
                )));
            }
            // On the pool. `?` turns a full queue into 503 + Retry-After and a panic into 500.
            let count = offload(move || count_primes(below)).await?;
            Ok(format!("{count} primes below {below}\n"))
        },
    )
}

/// Counts the primes below `n` with a sieve of Eratosthenes: plain synchronous CPU work.
fn count_primes(n: usize) -> usize {
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            for multiple in (i * i..n).step_by(i) {
                composite[multiple] = true;
            }
        }
    }
    count
}

fn main() -> steadyloop::Result<()> {
    let server = Server::builder().addr("127.0.0.1:3001").build(app())?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
