//! Fuzzes the request parser: heads (httparse plus the framing rules), Content-Length and
//! chunked bodies, pipelined requests, with the input split into reads of a fuzzed size.
//!
//! `cargo +nightly fuzz run request` from the repository root; see the README.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    steadyloop::fuzzing::read_requests(data);
});
