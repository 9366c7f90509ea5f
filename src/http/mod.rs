//! HTTP front ends: the native HTTP/1.1 server on the loop (the default).

pub(crate) mod date;
pub(crate) mod native;
