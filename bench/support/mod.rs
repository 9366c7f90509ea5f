//! Shared pieces of the benchmark tools (`examples/stall_bench.rs`, `examples/footprint.rs`): a
//! minimal HTTP/1.1 keep-alive client, the server under test as a child process, `/proc`
//! readings, flags and statistics. Only `std` and steadyloop itself.

// Each tool uses a different subset.
#![allow(dead_code)]

pub mod client;
pub mod flags;
pub mod procfs;
pub mod server;
pub mod stats;
