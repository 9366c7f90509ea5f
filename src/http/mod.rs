//! HTTP front ends: the native HTTP/1.1 server on the loop (the default) and, behind the
//! `tiny_http` feature, a bridge from tiny_http's threads into the loop.

pub(crate) mod h1;
pub(crate) mod native;
#[cfg(feature = "tiny_http")]
pub(crate) mod tiny;
