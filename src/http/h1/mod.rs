//! The HTTP/1.1 codec both front ends share: request-head parsing, chunked framing, response
//! writing and the grammar helpers; no sockets, no connection state.

pub(crate) mod chunked;
pub(crate) mod date;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub(crate) mod grammar;
pub(crate) mod parse;
#[cfg(test)]
mod proptests;
pub(crate) mod write;
