//! Shared pieces of steadyloop's benchmark tools (`stall_bench`, `footprint`): a minimal
//! HTTP/1.1 keep-alive client, the server under test as a child process (the demo binary or an
//! anchor), `/proc` readings, flags and statistics. Only `std`.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod client;
pub mod flags;
pub mod probe;
pub mod procfs;
pub mod server;
pub mod stats;
