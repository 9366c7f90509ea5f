//! The request-reading path of a connection without the socket, as one function a fuzzer (or a
//! property test) can drive with any bytes.
//!
//! Compiled for tests and for `cargo fuzz` (`--cfg fuzzing`) only; `lib.rs` re-exports it as
//! `steadyloop::fuzzing` in fuzzing builds. It is not part of the public API.

use super::chunked::ChunkedDecoder;
use super::parse::{BodyKind, HeadReader};

/// Head limit while fuzzing (small, so the limits are reached often).
const MAX_HEAD: usize = 1024;

/// Header-count limit while fuzzing.
const MAX_HEADERS: usize = 16;

/// Body limit while fuzzing.
const MAX_BODY: usize = 4096;

/// Reads pipelined requests from `data` the way a connection does and returns how many were
/// read whole; stops at the end of the input, at a rejection, or after a request that closes.
///
/// The first byte sets the size of each read (1 to 256 bytes), so a fuzzer explores how the
/// input is split into reads as well as the input itself.
///
/// # Panics
///
/// Only if an invariant breaks, which is a bug: the read buffer grows past its bound while a
/// head is incomplete, the chunked decoder leaves input unconsumed without finishing, or a body
/// grows past its limit.
pub fn read_requests(data: &[u8]) -> usize {
    let Some((&first, input)) = data.split_first() else {
        return 0;
    };
    let mut reads = input.chunks(usize::from(first) + 1);
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = 0;
    loop {
        let mut reader = HeadReader::default();
        let head = loop {
            match reader.advance(&mut buf, MAX_HEAD, MAX_HEADERS) {
                Ok(Some(head)) => break head,
                Ok(None) => {
                    assert!(buf.len() < MAX_HEAD, "head buffer past its bound");
                    match reads.next() {
                        Some(read) => buf.extend_from_slice(read),
                        None => return requests,
                    }
                }
                Err(_) => return requests,
            }
        };
        match head.body {
            BodyKind::Empty => {}
            BodyKind::Length(length) => {
                let Some(length) = usize::try_from(length).ok().filter(|&n| n <= MAX_BODY) else {
                    return requests;
                };
                while buf.len() < length {
                    match reads.next() {
                        Some(read) => buf.extend_from_slice(read),
                        None => return requests,
                    }
                }
                buf.drain(..length);
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new(MAX_HEAD, MAX_HEADERS);
                let mut body = Vec::new();
                loop {
                    let Ok(progress) = decoder.decode(&buf, &mut body, MAX_BODY) else {
                        return requests;
                    };
                    assert!(body.len() <= MAX_BODY, "body past its limit");
                    buf.drain(..progress.consumed);
                    if progress.done {
                        break;
                    }
                    assert!(buf.is_empty(), "decoder left input without finishing");
                    match reads.next() {
                        Some(read) => buf.extend_from_slice(read),
                        None => return requests,
                    }
                }
            }
        }
        requests += 1;
        if !head.keep_alive {
            return requests;
        }
    }
}
