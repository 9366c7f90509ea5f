//! steadyloop: a small HTTP/1.1 service runtime for small hosts.
//!
//! One thread runs the event loop (smol's reactor driving a `LocalExecutor`) and every request
//! handler; CPU-heavy work goes to a bounded pool with [`offload`] or `blocking_*` routes, so a
//! slow report never freezes health checks. Every queue is bounded, every wait has a deadline,
//! and overload is answered with `503` + `Retry-After` instead of growing queues.
//!
//! # Quick start
//!
//! ```
//! use steadyloop::{offload, Request, Response, Router, Server};
//!
//! fn app() -> Router {
//!     Router::new()
//!         .get("/healthz", |_req| async { "ok" })
//!         .get("/sum", |req: Request| async move {
//!             let n: u64 = req.query("n")?.unwrap_or(1_000_000);
//!             // CPU work runs on the pool; the loop keeps serving others meanwhile.
//!             let sum = offload(move || (1..=n).sum::<u64>()).await?;
//!             Ok(Response::json(format!("{{\"sum\":{sum}}}")))
//!         })
//!         .blocking_post("/len", |req| format!("{}\n", req.body().len()))
//! }
//!
//! # fn main() -> steadyloop::Result<()> {
//! // In a real program: Server::builder().addr("127.0.0.1:8080").build(app())?.run()
//! let server = Server::builder().addr("127.0.0.1:0").spawn(app)?;
//! # use std::io::{Read, Write};
//! # let mut s = std::net::TcpStream::connect(server.local_addr())?;
//! # s.write_all(b"GET /sum?n=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! # let mut text = String::new();
//! # s.read_to_string(&mut text)?;
//! # assert!(text.ends_with("{\"sum\":55}"), "{text}");
//! server.shutdown()
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod activation;
mod config;
mod error;
mod extensions;
mod files;
mod http;
#[cfg(feature = "json")]
mod json;
mod layers;
mod notify;
mod observe;
mod pool;
mod request;
mod request_builder;
mod response;
mod router;
mod rt;
mod server;
pub mod sse;
mod task;
mod testing;
pub mod time;
#[cfg(feature = "websocket")]
pub mod websocket;

pub use config::{ClassConfig, Config, Frontend, Setting, DEFAULT_QUEUE, SETTINGS};
pub use error::{Error, Result};
pub use extensions::Extensions;
pub use files::StaticFiles;
#[cfg(feature = "json")]
pub use json::{Json, POOL_PARSE_BYTES};
#[cfg(feature = "compress")]
pub use layers::Compression;
pub use layers::{Cors, RequestId};
pub use pool::{offload, offload_cancellable, offload_stream, CancelToken, Task};
pub use request::Request;
pub use request_builder::RequestBuilder;
pub use response::{BodyClosed, BodySender, IntoResponse, Response};
pub use router::{Layer, Next, ResponseFuture, RouteOptions, Router};
pub use server::{Server, ServerBuilder, ServerHandle, ShutdownHandle};
pub use task::{shutting_down, spawn, JoinHandle};
pub use testing::{TestClient, TestResponse};

/// The request parser's fuzzing entry point (`cargo fuzz`, see `fuzz/`); only in builds with
/// `--cfg fuzzing`, never part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub use http::h1::fuzz as fuzzing;

/// The README's examples use the default features (typed JSON, gzip), so the lean build skips them.
#[cfg(all(doctest, feature = "json", feature = "compress"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
