//! Embedding the server in a program that already runs a single-threaded smol executor:
//! `Server::serve()` is a future, so it runs next to the program's own tasks on one thread, and
//! they can share `!Send` state.
//!
//! Run: `cargo run --example embed`, then `curl localhost:3006/ticks`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::Timer;
use steadyloop::{Router, Server};

/// The routes; `/ticks` reads the counter that the program's own task advances.
pub fn app(ticks: Rc<Cell<u64>>) -> Router {
    Router::new().get("/ticks", move |_req| {
        let ticks = ticks.clone();
        async move { format!("{} ticks\n", ticks.get()) }
    })
}

/// The program's own work: advances `ticks` every `period`, forever.
async fn ticker(ticks: Rc<Cell<u64>>, period: Duration) {
    loop {
        Timer::after(period).await;
        ticks.set(ticks.get() + 1);
    }
}

/// Runs `server` and the ticker on this thread until the server shuts down.
pub fn run(server: Server, ticks: Rc<Cell<u64>>) -> steadyloop::Result<()> {
    let ex = LocalExecutor::new();
    ex.spawn(ticker(ticks, Duration::from_millis(100))).detach();
    async_io::block_on(ex.run(server.serve()))
}

fn main() -> steadyloop::Result<()> {
    let ticks = Rc::new(Cell::new(0));
    let server = Server::builder()
        .addr("127.0.0.1:3006")
        .build(app(ticks.clone()))?;
    println!("listening on http://{}", server.local_addr());
    run(server, ticks)
}
