//! Answering tiny_http requests, always on the `blocking` pool: tiny_http's `respond`, its
//! `into_writer`, and even dropping one of its requests do blocking socket I/O.
//!
//! Two ways out:
//! - [`respond`]: the request's body has been read (or there was none). The response is written
//!   by us through tiny_http's raw writer, with the native front end's head and framing, so both
//!   front ends send the same bytes, and a streamed body goes out chunk by chunk.
//! - [`refuse`]: the body may be unread. tiny_http writes the answer first and drains the body
//!   afterwards (its writer-only path would drain first, so a client waiting for the answer
//!   before sending its body would wait forever). It always asks the client to close.

use std::io::{self, Cursor, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::FutureExt;

use super::head::Framing;
use crate::http::h1::date;
use crate::http::h1::write::{self, OutBody, Outgoing};
use crate::response::{Body, Response, Stream};

/// Largest unread request body that may be dropped normally.
///
/// Dropping a tiny_http request whose body was not read drains it, and the drain allocates the
/// whole remaining declared length at once: `Content-Length: 1099511627776` aborts the process,
/// `usize::MAX` panics with "capacity overflow". Refused requests declaring more than this are
/// answered, then their body reader is leaked (see [`refuse_blocking`]). Below it, the
/// allocation is virtual memory that the drain touches only as data arrives.
const DRAIN_ALLOC_MAX: usize = 64 * 1024 * 1024;

/// Requests whose body reader was leaked to avoid tiny_http's drain allocation.
static LEAKED: AtomicU64 = AtomicU64::new(0);

/// A tiny_http request held on the loop, which must never drop it there.
///
/// Dropping the guard while it still holds its request (a cancelled handler, a shutdown that
/// does not wait) answers it with 503 on the pool.
pub(super) struct Raw(Option<tiny_http::Request>);

impl Raw {
    /// Wraps `request`.
    pub(super) fn new(request: tiny_http::Request) -> Raw {
        Raw(Some(request))
    }

    /// Returns the request, for use on the pool.
    pub(super) fn get_mut(&mut self) -> &mut tiny_http::Request {
        self.0
            .as_mut()
            .expect("a Raw holds its request until taken")
    }

    /// Takes the request out; the guard no longer answers it.
    pub(super) fn take(mut self) -> tiny_http::Request {
        self.0.take().expect("a Raw holds its request until taken")
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(request) = self.0.take() {
            let response = crate::Error::Cancelled.into_response();
            refuse_detached(request, response, true);
        }
    }
}

/// Writes `response` to a request whose body has been read, on the pool.
pub(super) async fn respond(
    raw: Raw,
    response: Response,
    framing: Framing,
    draining: bool,
    stopping: async_channel::Receiver<()>,
    stall: Duration,
) {
    crate::pool::unblock_io(move || {
        respond_blocking(raw.take(), response, framing, draining, &stopping, stall);
    })
    .await;
}

/// Answers a request whose body may be unread with `response`, on the pool.
pub(super) async fn refuse(raw: Raw, response: Response) {
    crate::pool::unblock_io(move || refuse_blocking(raw.take(), response, true)).await;
}

/// Answers `request` with `response` on the pool without waiting (for the recv thread).
///
/// `close` asks the client to close the connection afterwards.
pub(super) fn refuse_detached(request: tiny_http::Request, response: Response, close: bool) {
    crate::pool::unblock_io(move || refuse_blocking(request, response, close)).detach();
}

/// Writes `response` as the native front end would, through tiny_http's raw writer.
fn respond_blocking(
    request: tiny_http::Request,
    response: Response,
    framing: Framing,
    draining: bool,
    stopping: &async_channel::Receiver<()>,
    stall: Duration,
) {
    let shutting_down = draining || stopping.is_closed();
    let exchange = framing.exchange;
    // An HTTP/1.0 stream is delimited by closing the connection, which only tiny_http can do,
    // and only when the client did not ask for keep-alive: otherwise send it whole.
    let response = if exchange.http10 && exchange.keep_alive && response.is_streaming() {
        collect_stream(response, stall)
    } else {
        response
    };
    let out = write::prepare(response, exchange, shutting_down);
    // Taking the writer drops the request, which is free now that its body has been read.
    let mut writer = request.into_writer();
    if let Err(e) = write_out(&mut writer, out, stall, stopping) {
        log::debug!("tiny_http front end: response not fully written: {e}");
    }
}

/// Writes a prepared response: head and body, flushing after each streamed chunk.
fn write_out(
    writer: &mut dyn Write,
    out: Outgoing,
    stall: Duration,
    stopping: &async_channel::Receiver<()>,
) -> io::Result<()> {
    let (first, rest) = out.into_first_write();
    writer.write_all(&first)?;
    match rest {
        OutBody::Empty => {}
        OutBody::Full(bytes) => writer.write_all(&bytes)?,
        OutBody::Chunked(stream) => {
            writer.flush()?;
            write_stream(writer, &stream, stall, true, stopping)?;
        }
        OutBody::UntilClose(stream) | OutBody::Sized(stream) => {
            writer.flush()?;
            write_stream(writer, &stream, stall, false, stopping)?;
        }
    }
    writer.flush()
}

/// Writes chunks as the producer sends them; `chunked` adds the chunk framing.
///
/// A producer that sends nothing for `stall` ends the response without the final chunk, so
/// the client can tell the body was cut short; an event stream gets a keep-alive comment
/// instead, and ends (with the final chunk) once a graceful shutdown begins. A stream of known
/// length that ends early or runs long is an error (the connection closes). A write error (the
/// client left) drops the receiver, which tells the producer to stop.
fn write_stream(
    writer: &mut dyn Write,
    stream: &Stream,
    stall: Duration,
    chunked: bool,
    stopping: &async_channel::Receiver<()>,
) -> io::Result<()> {
    let quiet = if stream.events {
        crate::sse::KEEP_ALIVE.min(stall)
    } else {
        stall
    };
    let mut remaining = stream.len;
    let mut frame = Vec::new();
    loop {
        let chunk = match next_chunk(&stream.rx, quiet, stream.events.then_some(stopping)) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) if stream.events && e.kind() == io::ErrorKind::TimedOut => {
                crate::sse::KEEP_ALIVE_COMMENT.to_vec()
            }
            Err(e) => return Err(e),
        };
        if let Some(left) = &mut remaining {
            *left = left.checked_sub(chunk.len() as u64).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "streamed body longer than its length",
                )
            })?;
        }
        write::frame_chunk(&mut frame, &chunk, chunked);
        writer.write_all(&frame)?;
        writer.flush()?;
        if remaining == Some(0) {
            return Ok(());
        }
    }
    if remaining.is_some_and(|left| left > 0) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "streamed body shorter than its length",
        ));
    }
    if chunked {
        writer.write_all(write::LAST_CHUNK)?;
    }
    Ok(())
}

/// Waits on this pool thread for the producer's next chunk; `None` once it is done (or, with
/// `stopping`, once a graceful shutdown begins).
///
/// # Errors
///
/// `TimedOut` if nothing arrives within `stall`.
fn next_chunk(
    rx: &async_channel::Receiver<Vec<u8>>,
    stall: Duration,
    stopping: Option<&async_channel::Receiver<()>>,
) -> io::Result<Option<Vec<u8>>> {
    let shutdown = async {
        match stopping {
            Some(stopping) => {
                let _ = stopping.recv().await;
                Ok(None)
            }
            None => std::future::pending().await,
        }
    };
    async_io::block_on(async { Ok(rx.recv().await.ok()) }.or(shutdown).or(async {
        async_io::Timer::after(stall).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "response producer stalled",
        ))
    }))
}

/// Reads a streamed response whole, for a client that cannot take a stream; a producer that
/// stalls turns it into a 500.
fn collect_stream(response: Response, stall: Duration) -> Response {
    let (status, headers, body) = response.into_parts();
    let Body::Stream(stream) = body else {
        unreachable!("collect_stream is only called for streamed responses");
    };
    let mut bytes = Vec::new();
    loop {
        match next_chunk(&stream.rx, stall, None) {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            // `into_response` logs the 500.
            Err(_) => return crate::Error::StreamStalled(stall).into_response(),
        }
    }
    headers
        .into_iter()
        .fold(Response::new(status), |response, (name, value)| {
            response.append_header(name, value)
        })
        .with_body(bytes)
}

/// Answers through tiny_http's own `respond`, which writes before it drains an unread body.
///
/// `close` adds `Connection: close`. tiny_http refuses to send that header and never closes a
/// keep-alive connection itself, so it rides in the value of our `Date` header: tiny_http
/// sends header values as given, and this one is a constant we build.
fn refuse_blocking(request: tiny_http::Request, response: Response, close: bool) {
    let unread = request.body_length().unwrap_or(0);
    if unread > DRAIN_ALLOC_MAX {
        // Dropping this request would allocate `unread` bytes at once. `upgrade` is the only
        // way to answer that hands the body reader over instead of dropping it: the answer
        // goes out (with `Connection: upgrade` and `Upgrade` headers tiny_http adds, no body,
        // `Content-Length: 0` and `Connection: close`), and the reader is leaked, which keeps
        // tiny_http's thread for this connection and its socket until the process exits.
        let leaked = LEAKED.fetch_add(1, Ordering::Relaxed) + 1;
        log::warn!(
            "tiny_http front end: refused a request declaring a {unread}-byte body; its \
             connection is leaked to avoid tiny_http's drain allocation ({leaked} so far)"
        );
        let stream = request.upgrade("HTTP/1.1", to_tiny(response, close, true));
        std::mem::forget(stream);
        return;
    }
    if let Err(e) = request.respond(to_tiny(response, close, false)) {
        log::debug!("tiny_http front end: refusal not written: {e}");
    }
}

/// Converts one of our (small, whole) responses into a tiny_http response.
///
/// `upgrading` adds `Content-Length: 0`, which tiny_http leaves out when it upgrades.
fn to_tiny(response: Response, close: bool, upgrading: bool) -> tiny_http::ResponseBox {
    let (status, headers, body) = write::sendable(response).into_parts();
    let body = match body {
        Body::Full(bytes) => bytes,
        Body::Static(bytes) => bytes.to_vec(),
        Body::Stream(_) => Vec::new(),
    };
    let mut date = Vec::with_capacity(64);
    date::append_now(&mut date);
    if upgrading {
        date.extend_from_slice(b"\r\nContent-Length: 0");
    }
    if close {
        date.extend_from_slice(b"\r\nConnection: close");
    }
    let mut tiny_headers = Vec::with_capacity(headers.len() + 1);
    tiny_headers.extend(tiny_http::Header::from_bytes(&b"Date"[..], date).ok());
    for (name, value) in headers {
        // The server owns framing and dates; these are ours or tiny_http's to write.
        if write::is_owned_header(&name) {
            continue;
        }
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => tiny_headers.push(header),
            Err(()) => log::warn!("tiny_http front end: header {name} is not ASCII; left out"),
        }
    }
    let length = body.len();
    tiny_http::Response::new(
        tiny_http::StatusCode(status),
        tiny_headers,
        Box::new(Cursor::new(body)) as Box<dyn io::Read + Send>,
        Some(length),
        None,
    )
    .with_chunked_threshold(usize::MAX)
}
