//! Shared state without locks: every async handler runs on the one event-loop thread, so an
//! `Rc<RefCell<…>>` is enough (and the compiler keeps it away from the pool, which needs `Send`).
//!
//! Run: `cargo run --example shared_state`, then
//! `curl -X PUT --data 'buy milk' localhost:3003/notes/todo` and `curl localhost:3003/notes/todo`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use steadyloop::{Error, Request, Response, Router, Server};

/// Notes by key, shared by the handlers.
type Notes = Rc<RefCell<HashMap<String, String>>>;

/// The routes. A function, so `tests/examples.rs` can serve them on a free port.
pub fn app() -> Router {
    let notes = Notes::default();
    let (put, get) = (notes.clone(), notes);
    Router::new()
        .put("/notes/:key", move |req: Request| {
            let notes = put.clone();
            async move {
                let key = req.param("key").unwrap_or_default().to_string();
                let text = req.body_str()?.to_string();
                // Borrow, change, release: never hold a borrow across an `.await`.
                notes.borrow_mut().insert(key, text);
                Ok::<_, Error>(Response::new(204))
            }
        })
        .get("/notes/:key", move |req: Request| {
            let notes = get.clone();
            async move {
                let key = req.param("key").unwrap_or_default();
                match notes.borrow().get(key) {
                    Some(text) => Ok(format!("{text}\n")),
                    None => Err(Error::status(404, format!("no note {key:?}"))),
                }
            }
        })
}

fn main() -> steadyloop::Result<()> {
    let server = Server::builder().addr("127.0.0.1:3003").build(app())?;
    println!("listening on http://{}", server.local_addr());
    server.run()
}
