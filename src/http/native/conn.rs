//! One HTTP/1.1 connection on the loop: read a head, route, read the body, run the handler
//! while watching for the client to leave, write the response; repeat while keep-alive holds.
//!
//! Every wait has a deadline (head, body idle, keep-alive idle, write stall), every buffer is
//! bounded, and requests on a connection are handled one at a time, so pipelined requests are
//! answered in order and a client that never reads cannot make the server buffer responses.
//!
//! # What one connection can hold
//!
//! - The read buffer `buf`: under `max_head_bytes + READ_CHUNK` bytes. It grows in three places
//!   only: [`Conn::fill`] while a head is incomplete (which [`HeadReader`] refuses at
//!   `max_head_bytes`, so `buf` is under that before each read) or while a chunked body is
//!   decoded (the decoder consumes all of `buf` before asking for more); and
//!   [`watch_disconnect`] while a handler runs or a stream is written, which stops reading at
//!   `max_head_bytes`. `fill` checks this in debug builds.
//! - One request body, at most the route's body limit, read as it arrives (never allocated
//!   from the declared length).
//! - One response: the next request is not read until it is written.
//!
//! So a client that pipelines thousands of requests without reading fills the socket buffers,
//! the response write stalls, and the write timeout closes the connection; nothing queues in the
//! server meanwhile.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::http::h1::chunked::ChunkedDecoder;
use crate::http::h1::parse::{self, BodyKind, Head, HeadReader, Reject};
use crate::http::h1::write::{self, Exchange, HeadBytes, OutBody};
use crate::request::Request;
use crate::router::{Dispatcher, Routed};
use crate::rt::{timeout, Sleep, TcpStream, Wait};
use crate::server::state::{BodyMemory, ConnGuard, ServerState, BODY_MEMORY_FULL};
#[cfg(feature = "websocket")]
use crate::websocket::WebSocket;

mod respond;
mod stream;

use respond::{write_all_to, Unsent};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Largest body of an unrouted request (404, 405) that is read and dropped to keep the
/// connection open; 64 KiB, what a few reads bring in, so draining it costs next to nothing.
const DISCARD_MAX: usize = 64 * 1024;

/// After deciding to close, how long to keep reading (and discarding) what the client still
/// sends, so the response is not destroyed by a TCP reset.
const LINGER: Duration = Duration::from_secs(1);

/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 64 * 1024;

/// After a `503` (work shed), the connection's next request is read only after this pause,
/// doubled for each further `503` in a row up to [`SHED_PAUSE_MAX`]; see [`shed_pause`].
const SHED_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause after a run of `503`s: the least `Retry-After` a shed request is given
/// (one second), so a client that honours it never waits for the pause; it is reached after
/// eleven `503`s in a row. A cap of 256 ms left a storm of 80 clients retrying at once at
/// ~300 refusals a second, and the loop's wake-ups for them lengthened an open-loop probe's
/// p99 under the storm about fivefold (`scripts/retry_storm.sh`; at 1 s, ~120 a second).
const SHED_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Why a connection stops.
enum Stop {
    /// Close without a response (client left, idle, or nothing to answer).
    Quiet,
    /// Answer with this status and reason, then close.
    Reject(Reject),
    /// The `101` went out: hand the connection to this WebSocket route with its request.
    #[cfg(feature = "websocket")]
    Upgrade(Box<(usize, crate::router::WebSocketRoute, Request)>),
}

impl From<Reject> for Stop {
    fn from(reject: Reject) -> Stop {
        Stop::Reject(reject)
    }
}

/// A connection being served.
struct Conn {
    /// The server's settings, counters and body budget.
    state: Rc<ServerState>,
    /// Routes requests and runs their handlers.
    dispatcher: Rc<Dispatcher>,
    /// The socket.
    stream: TcpStream,
    /// The client's address.
    peer: SocketAddr,
    /// Bytes read but not yet consumed (the start of the next head, pipelined requests).
    buf: Vec<u8>,
    /// `503`s answered in a row on this connection.
    shed_streak: u32,
    /// The idle (keep-alive or first-head) deadline: one sleep, moved for each wait.
    idle: Sleep,
    /// The graceful-shutdown notice, awaited by every idle wait: one registration for the
    /// connection's life (a wait made per request cost about 110 instructions to register and
    /// drop; while the connection is busy, a shutdown only wakes it once, harmlessly).
    stop: Wait,
    /// Keeps the connection counted against the cap while it lives.
    _open: ConnGuard,
}

/// Serves one connection until it closes; `open` keeps it counted until then.
///
/// A plain function that builds the connection and returns the loop as a future capturing
/// only it: an `async fn` keeps its arguments beside the connection made from them, and the
/// accept loop's wrapper around that kept them a third time (1,040 bytes per connection).
pub(crate) fn serve(
    state: Rc<ServerState>,
    dispatcher: Rc<Dispatcher>,
    stream: TcpStream,
    peer: SocketAddr,
    open: ConnGuard,
) -> impl Future<Output = ()> {
    let stop = state.stopped();
    let mut conn = Conn {
        state,
        dispatcher,
        stream,
        peer,
        buf: Vec::new(),
        shed_streak: 0,
        idle: Sleep::never(),
        stop,
        _open: open,
    };
    async move {
        let mut first = true;
        loop {
            if conn.shed_streak > 0 {
                conn.pause_after_shed().await;
            }
            if conn.buf.is_empty() {
                if let Err(stop) = conn.wait_for_request(first).await {
                    conn.stop(stop).await;
                    return;
                }
            }
            // In place, not boxed per request: a box of the exchange (992 bytes) cost a malloc,
            // a free and a copy of it per request, about 450 instructions; in place it adds
            // its size to an idle connection's future instead.
            match conn.exchange().await {
                Ok(true) => first = false,
                Ok(false) => {
                    conn.linger().await;
                    return;
                }
                #[cfg(feature = "websocket")]
                Err(Stop::Upgrade(upgrade)) => {
                    let (route_id, route, req) = *upgrade;
                    let Conn {
                        state,
                        dispatcher,
                        stream,
                        buf,
                        _open: open,
                        ..
                    } = conn;
                    let limits = route.limits;
                    let ws = WebSocket::new(stream, buf, limits, state.stopping());
                    dispatcher.run_websocket(route_id, route, ws, req).await;
                    // Counted until the session ends.
                    drop(open);
                    return;
                }
                Err(stop) => {
                    conn.stop(stop).await;
                    return;
                }
            }
        }
    }
}

impl Conn {
    /// Ends the connection: quietly, or with the rejection's error response first.
    async fn stop(&mut self, stop: Stop) {
        if let Stop::Reject(reject) = stop {
            self.state.record_rejected(reject.status);
            let bytes = write::error_bytes(reject.status, reject.reason);
            if self.write_all(&bytes).await.is_ok() {
                self.linger().await;
            }
        }
    }

    /// Waits out the pause after a `503`, or until a graceful shutdown begins.
    ///
    /// A client that retries shed work at once would otherwise keep the loop busy refusing
    /// it (tens of thousands of `503`s a second), and every other connection's request would
    /// wait its turn behind those refusals. Paused, the connection costs nothing: its retry
    /// waits in the socket buffer, unread, while the loop serves everyone else. A shutdown
    /// ends the pause rather than the connection: a request already sent is then read and
    /// answered (with `Connection: close`) like any other, not reset unread.
    async fn pause_after_shed(&mut self) {
        let stopping = self.state.stopped();
        let pause = shed_pause(self.shed_streak);
        Sleep::after(pause).or(stopping).await;
    }

    /// Waits, with no buffer held, for the first bytes of the next request.
    ///
    /// Before the first byte the connection is idle: the keep-alive timer runs (the head timer
    /// for a brand-new connection), and a graceful shutdown closes it at once.
    async fn wait_for_request(&mut self, first: bool) -> Result<(), Stop> {
        let config = self.state.config();
        let idle_limit = if first {
            config.header_timeout
        } else {
            config.keep_alive_timeout
        };
        self.buf = Vec::new();
        // With a drain delay, a draining server leaves idle connections open: closing one races
        // with a proxy sending on it (a POST would become a 502). Each closes after its next
        // request (answered with `Connection: close`) or at its keep-alive timeout, which a
        // proxy's own upstream idle timeout stays below. Without one, they close at once.
        let close_idle = config.drain_delay.is_zero();
        if close_idle && self.state.is_stopping() {
            return Err(Stop::Quiet);
        }
        let (stream, buf, idle, stopping) =
            (&self.stream, &mut self.buf, &mut self.idle, &mut self.stop);
        let mut read = pin!(read_some(stream, buf, READ_CHUNK));
        // The deadline is read from the clock, and the connection's one sleep moved to it (see
        // `Sleep::reset`), only if the read has to wait.
        let mut clock = Some(Instant::now);
        // One future polling the three in turn: an `or` of `async` blocks around a timeout
        // made and moved three nested futures per request.
        let outcome = poll_fn(|cx| {
            if let Poll::Ready(read) = read.as_mut().poll(cx) {
                return Poll::Ready(read.ok());
            }
            if let Some(clock) = clock.take() {
                let now = clock();
                idle.reset(now + idle_limit);
                // Both were registered by this task at an earlier wait: when the sleep's heap
                // entry is not due yet (so still queued) and the shutdown notice has its slot
                // (a notice already given closed the connection above), neither needs a poll
                // to wake this one (polling them cost about 140 instructions per request).
                if idle.queued_past(now) && (!close_idle || stopping.is_registered()) {
                    return Poll::Pending;
                }
            }
            // A timeout or a failed read closes alike.
            if Pin::new(&mut *idle).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if close_idle && Pin::new(&mut *stopping).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match outcome {
            Some(n) if n > 0 => Ok(()),
            _ => Err(Stop::Quiet),
        }
    }

    /// Handles one request; `Ok(true)` if the connection stays open for another.
    /// The first bytes of the request are already buffered.
    ///
    /// This future runs in place in the connection's (see [`serve`]) but is made and moved
    /// there once per request, so its size is a per-request cost and part of every idle
    /// connection's: each step that waits is a small future of its own, made only when it
    /// must wait (a head already whole, a response the socket takes at once, need none), the
    /// request's parts are built by plain functions (a local borrowed across an await stays
    /// in the frame), and the handler and the disconnect watch are polled in place rather
    /// than moved into an `or` of `async` blocks (which stores each future twice).
    async fn exchange(&mut self) -> Result<bool, Stop> {
        // Most heads arrive whole in the read that ended the idle wait: taken at once, with no
        // head-reading future made (and moved) for them.
        let config = self.state.config();
        let mut reader = HeadReader::default();
        let head = match reader.advance(&mut self.buf, config.max_head_bytes, config.max_headers)? {
            Some(head) => head,
            None => self.read_head(reader).await?,
        };
        let dispatcher = self.dispatcher.clone();
        let (req, framing) = begin(head, Some(self.peer));
        let (req, route_id) = match route(&dispatcher, req) {
            Ok(routed) => routed,
            Err((req, unrouted)) => {
                // Routing's own answers pass through the layers like any other.
                let response = dispatcher.answer(req, unrouted).await;
                return self.answer_unrouted(response, framing).await;
            }
        };
        #[cfg(feature = "websocket")]
        if let Some(route) = dispatcher.websocket_route(route_id) {
            if crate::websocket::handshake::is_upgrade(&req) {
                // Boxed: the handshake's future (920 bytes) made every exchange 1,336 bytes,
                // past glibc's per-thread cache, for a request that is rarely an upgrade.
                let body = framing.body;
                return Box::pin(self.upgrade(route_id, route, req, body, framing.exchange)).await;
            }
        }
        let limit = dispatcher.body_limit(route_id);
        // Counts this request's body against the server-wide body memory until the exchange
        // ends, so a thousand slow uploads cannot add up to more than `max-body-memory`.
        let mut held = self.state.body_memory();
        let body = match framing.body {
            BodyKind::Empty => Vec::new(),
            BodyKind::Length(n) if n > limit as u64 => {
                return Err(parse::reject(413, "request body too large").into())
            }
            BodyKind::Length(n) => {
                self.continue_if_expected(framing.expect_continue).await?;
                let idle = self.state.config().body_timeout;
                self.read_sized_body(n as usize, idle, &mut held).await?
            }
            BodyKind::Chunked => {
                self.continue_if_expected(framing.expect_continue).await?;
                self.read_chunked_body(limit, &mut held).await?
            }
        };
        let req = req.with_body(body);

        // Run the handler, but stop at once if the client leaves: its queued job never starts.
        let cap = self.state.config().max_head_bytes;
        let response = {
            let mut dispatch = pin!(dispatcher.answer(req, Routed::Route(route_id)));
            let mut watch = pin!(watch_disconnect(&self.stream, &mut self.buf, cap));
            poll_fn(|cx| {
                if let Poll::Ready(response) = dispatch.as_mut().poll(cx) {
                    return Poll::Ready(Some(response));
                }
                watch.as_mut().poll(cx).map(|()| None)
            })
            .await
        };
        let Some(response) = response else {
            return Err(Stop::Quiet);
        };
        // Not `respond`: its future would be made (and moved) even when nothing waits.
        match self.respond_now(response, framing.exchange)? {
            Ok(keep_alive) => Ok(keep_alive),
            Err(unsent) => self.finish_response(unsent).await,
        }
    }

    /// Completes a WebSocket handshake: the error answer for a bad one, or the `101` and
    /// [`Stop::Upgrade`] to hand the connection over.
    #[cfg(feature = "websocket")]
    async fn upgrade(
        &mut self,
        route_id: usize,
        route: crate::router::WebSocketRoute,
        req: Request,
        body: BodyKind,
        exchange: Exchange,
    ) -> Result<bool, Stop> {
        if !matches!(body, BodyKind::Empty) {
            return Err(parse::reject(400, "a websocket upgrade has no body").into());
        }
        match crate::websocket::handshake::accept(&req) {
            Err(response) => {
                self.state
                    .requests()
                    .record(Some(route_id), response.status(), Duration::ZERO);
                self.respond(response, exchange).await
            }
            Ok(accept) => {
                let bytes = crate::websocket::handshake::switching_protocols(&accept);
                self.write_all(&bytes).await.map_err(|_| Stop::Quiet)?;
                Err(Stop::Upgrade(Box::new((route_id, route, req))))
            }
        }
    }

    /// Answers a request that routing answered itself (404, 405, `OPTIONS *`); `Ok(true)` if
    /// the connection may carry another request.
    ///
    /// A body of at most [`DISCARD_MAX`] bytes is read and dropped after the answer, so a
    /// small unrouted upload does not cost the connection (nginx and hyper do the same). A
    /// larger, chunked or `100-continue` body closes it instead: nothing else safely skips it.
    async fn answer_unrouted(
        &mut self,
        response: crate::Response,
        framing: Framing,
    ) -> Result<bool, Stop> {
        let exchange = framing.exchange;
        let discard = match framing.body {
            _ if framing.expect_continue => None,
            BodyKind::Empty => Some(0),
            BodyKind::Length(n) if n <= DISCARD_MAX as u64 => Some(n as usize),
            BodyKind::Length(_) | BodyKind::Chunked => None,
        };
        let Some(len) = discard else {
            let unread = Exchange {
                keep_alive: false,
                ..exchange
            };
            return self.respond(response, unread).await;
        };
        if !self.respond(response, exchange).await? {
            return Ok(false);
        }
        self.discard_body(len).await?;
        Ok(true)
    }

    /// Reads and drops the next `len` bytes of the request body, waiting at most the body
    /// timeout for each read.
    async fn discard_body(&mut self, mut len: usize) -> Result<(), Stop> {
        let idle = self.state.config().body_timeout;
        loop {
            let take = self.buf.len().min(len);
            self.buf.drain(..take);
            len -= take;
            if len == 0 {
                return Ok(());
            }
            match self.fill(|| Instant::now() + idle).await {
                Ok(n) if n > 0 => {}
                _ => return Err(Stop::Quiet),
            }
        }
    }

    /// Writes `response`; `Ok(true)` if the connection may carry another request.
    ///
    /// A plain function that prepares the bytes and writes what the socket takes at once (see
    /// [`Conn::respond_now`]), returning only the rest of the writing as a future.
    fn respond(
        &mut self,
        response: crate::Response,
        exchange: Exchange,
    ) -> impl Future<Output = Result<bool, Stop>> + '_ {
        let now = self.respond_now(response, exchange);
        async move {
            match now? {
                Ok(keep_alive) => Ok(keep_alive),
                Err(unsent) => self.finish_response(unsent).await,
            }
        }
    }

    /// Prepares `response` and writes what the socket takes right away: `Ok(keep_alive)` when
    /// that was all of it, else what [`Conn::finish_response`] still has to write.
    ///
    /// Most responses fit in the socket's buffer at once, and then no writing future is made:
    /// making one (488 bytes, with its write timeout) and moving it into the exchange's future
    /// cost about 250 instructions per request.
    fn respond_now(
        &mut self,
        response: crate::Response,
        exchange: Exchange,
    ) -> Result<Result<bool, Unsent>, Stop> {
        if response.status() == 503 {
            self.shed_streak = self.shed_streak.saturating_add(1);
        } else {
            self.shed_streak = 0;
        }
        // The first write is gathered on the stack, and copied to the heap only if the socket
        // does not take all of it now.
        let mut first = HeadBytes::new();
        let (rest, close) =
            write::prepare_first_write(response, exchange, self.state.is_draining(), &mut first);
        let bytes = first.bytes();
        let len = bytes.len();
        let written = match self.stream.write_now(bytes) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(_) => return Err(Stop::Quiet),
        };
        if written == len && matches!(rest, OutBody::Empty) {
            return Ok(Ok(!close));
        }
        Ok(Err(Unsent {
            first: first.into_vec(0),
            written,
            rest,
            close,
        }))
    }

    /// Reads the rest of the request head `reader` has begun.
    async fn read_head(&mut self, mut reader: HeadReader) -> Result<Head, Stop> {
        let state = self.state.clone();
        let config = state.config();
        // The head timer starts with the head's first read that has to wait: the first bytes
        // are already buffered, and most heads arrive in one read.
        let mut deadline = None;
        loop {
            let limit = config.header_timeout;
            match self
                .fill(|| *deadline.get_or_insert_with(|| Instant::now() + limit))
                .await
            {
                Ok(0) => return Err(Stop::Quiet),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(parse::reject(408, "request head not received in time").into())
                }
                Err(_) => return Err(Stop::Quiet),
            }
            if let Some(head) =
                reader.advance(&mut self.buf, config.max_head_bytes, config.max_headers)?
            {
                return Ok(head);
            }
        }
    }

    /// Sends `100 Continue` if the client waits for it.
    async fn continue_if_expected(&mut self, expected: bool) -> Result<(), Stop> {
        if expected && self.buf.is_empty() {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| Stop::Quiet)?;
        }
        Ok(())
    }

    /// Reads a body of exactly `len` bytes (already checked against the limit).
    async fn read_sized_body(
        &mut self,
        len: usize,
        idle: Duration,
        held: &mut BodyMemory,
    ) -> Result<Vec<u8>, Stop> {
        let buffered = self.buf.len().min(len);
        hold(held, buffered)?;
        let mut body: Vec<u8> = self.buf.drain(..buffered).collect();
        while body.len() < len {
            let want = (len - body.len()).min(64 * 1024);
            hold(held, body.len() + want)?;
            let n = read_into(&self.stream, &mut body, want, || Instant::now() + idle)
                .await
                .map_err(|e| body_read_error(&e))?;
            if n == 0 {
                return Err(Stop::Quiet);
            }
        }
        Ok(body)
    }

    /// Reads and decodes a chunked body of at most `limit` bytes.
    async fn read_chunked_body(
        &mut self,
        limit: usize,
        held: &mut BodyMemory,
    ) -> Result<Vec<u8>, Stop> {
        let state = self.state.clone();
        let config = state.config();
        let mut decoder = ChunkedDecoder::new(config.max_head_bytes, config.max_headers);
        let mut body = Vec::new();
        loop {
            // The decoder can add at most what is buffered.
            hold(held, body.len() + self.buf.len())?;
            let progress = decoder.decode(&self.buf, &mut body, limit)?;
            self.buf.drain(..progress.consumed);
            if progress.done {
                return Ok(body);
            }
            let idle = config.body_timeout;
            let n = self
                .fill(|| Instant::now() + idle)
                .await
                .map_err(|e| body_read_error(&e))?;
            if n == 0 {
                return Err(Stop::Quiet);
            }
        }
    }

    /// Reads more bytes into the buffer, waiting until `deadline` (read only if it must wait).
    fn fill<'a>(
        &'a mut self,
        deadline: impl FnOnce() -> Instant + 'a,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        debug_assert!(
            self.buf.len() < self.state.config().max_head_bytes,
            "read buffer past its bound (see the module docs)"
        );
        read_into(&self.stream, &mut self.buf, READ_CHUNK, deadline)
    }

    /// Writes all of `bytes`; fails if no progress is made for the write timeout.
    fn write_all<'a>(&'a self, bytes: &'a [u8]) -> impl Future<Output = io::Result<()>> + 'a {
        write_all_to(&self.stream, bytes, self.state.config().write_timeout)
    }

    /// Closes gracefully: stop sending, then read and discard for a moment so unread input does
    /// not turn the close into a reset that destroys the response in flight.
    async fn linger(&mut self) {
        let _ = self.stream.get_ref().shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            self.buf.clear();
            match read_into(&self.stream, &mut self.buf, READ_CHUNK, || deadline).await {
                Ok(n) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }
}

/// What the connection needs from a head once the request is built from it.
struct Framing {
    /// How the body is delimited.
    body: BodyKind,
    /// Whether the client waits for `100 Continue`.
    expect_continue: bool,
    /// What writing the response needs to know.
    exchange: Exchange,
}

/// Takes the request from its head, with the client's address, keeping apart what framing the
/// exchange needs.
fn begin(head: Head, peer: Option<SocketAddr>) -> (Request, Framing) {
    let mut req = head.request;
    let framing = Framing {
        body: head.body,
        expect_continue: head.expect_continue,
        exchange: Exchange {
            head_request: req.method() == "HEAD",
            http10: req.is_http10(),
            keep_alive: head.keep_alive,
        },
    };
    req.set_peer(peer);
    (req, framing)
}

/// Routes `req`: its route, or routing's own answer (404, 405, `OPTIONS *`).
///
/// A plain function, so the borrow of the request stays out of the exchange's future.
fn route(dispatcher: &Dispatcher, mut req: Request) -> Result<(Request, usize), (Request, Routed)> {
    match dispatcher.route(&mut req) {
        Routed::Route(id) => Ok((req, id)),
        unrouted @ Routed::Answer(_) => Err((req, unrouted)),
    }
}

/// Returns the pause before reading the next request after `streak` `503`s in a row:
/// [`SHED_PAUSE`] doubled per further `503`, at most [`SHED_PAUSE_MAX`].
fn shed_pause(streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(16);
    (SHED_PAUSE * (1u32 << doublings)).min(SHED_PAUSE_MAX)
}

/// Grows this request's share of the server-wide body memory to `bytes`, or refuses the request
/// with 503 when the server already holds `max-body-memory` of other bodies.
fn hold(held: &mut BodyMemory, bytes: usize) -> Result<(), Stop> {
    if held.grow(bytes) {
        Ok(())
    } else {
        Err(parse::reject(503, BODY_MEMORY_FULL).into())
    }
}

/// Maps a body read failure: a timeout gets 408, anything else just closes.
fn body_read_error(e: &io::Error) -> Stop {
    if e.kind() == io::ErrorKind::TimedOut {
        Stop::Reject(parse::reject(408, "request body not received in time"))
    } else {
        Stop::Quiet
    }
}

/// Appends up to `max` bytes from `stream` to `buf`, waiting until `deadline` (called only if
/// the read has to wait).
async fn read_into(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: impl FnOnce() -> Instant,
) -> io::Result<usize> {
    let read = pin!(read_some(stream, buf, max));
    timeout(deadline, read)
        .await
        .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out")))
}

/// Appends up to `max` bytes (at most `READ_CHUNK`) from `stream` to `buf` as soon as some
/// arrive.
///
/// Cancel-safe: the buffer only changes inside the non-blocking read, never across an await.
/// Reads land on the stack first, so a read that finds nothing leaves `buf` as it was: an idle
/// connection holds no buffer (growing `buf` before reading kept 4 KiB per idle connection).
fn read_some<'a>(
    stream: &'a TcpStream,
    buf: &'a mut Vec<u8>,
    max: usize,
) -> impl Future<Output = io::Result<usize>> + 'a {
    // A buffer with no allocation is not given one until there is something to read (the
    // read goes through the stack then), so a waiting connection (idle keep-alive, or a
    // handler running) holds no read buffer; an allocated one is read into straight (bodies
    // take up to 64 KiB per read). No wait for readiness first: the read waits for it itself,
    // and a separate wait cost a future and a readiness check per request.
    stream.read_append(buf, max)
}

/// Resolves when the client closes or resets the connection; bytes it sends meanwhile (a
/// pipelined request) are kept in `buf`, up to `cap` bytes, after which reading pauses.
async fn watch_disconnect(stream: &TcpStream, buf: &mut Vec<u8>, cap: usize) {
    loop {
        if buf.len() >= cap {
            return futures_lite::future::pending().await;
        }
        match read_some(stream, buf, READ_CHUNK.min(cap - buf.len())).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_pause_after_shed_work_doubles_up_to_its_cap() {
        assert_eq!(shed_pause(1), SHED_PAUSE);
        assert_eq!(shed_pause(2), SHED_PAUSE * 2);
        assert_eq!(shed_pause(9), Duration::from_millis(256));
        assert_eq!(shed_pause(11), Duration::from_secs(1));
        assert_eq!(shed_pause(u32::MAX), SHED_PAUSE_MAX);
    }

    #[test]
    fn a_read_that_finds_nothing_leaves_no_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = TcpStream::new(listener.accept().unwrap().0).unwrap();
        let mut buf = Vec::new();
        // The client sends nothing, so the read can only time out.
        let deadline = Instant::now() + Duration::from_millis(1);
        let result = crate::rt::block_on(read_into(&stream, &mut buf, READ_CHUNK, || deadline));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(buf.capacity(), 0);
    }
}
