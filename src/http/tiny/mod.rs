//! The tiny_http front end: tiny_http's threads read requests (one thread per connection), a
//! recv thread checks each head and forwards it over a bounded channel into the loop, and the
//! loop routes and runs the handlers exactly as for the native front end.
//!
//! The loop never does tiny_http's blocking I/O: reading a body, writing a response and
//! dropping a tiny_http request all happen on the `blocking` pool. What a wrapper can add, it
//! adds here: the native framing rules and head limits ([`head`]), a bounded bridge that answers
//! 503 off the loop when full, body limits checked before reading, a send timeout on every
//! connection, `Connection: close` after errors and during shutdown, and a watchdog for
//! tiny_http's accept thread. What it cannot add (read timeouts, connection limits, closing a
//! connection) is listed in the README.

mod head;
mod reply;

use std::fs;
use std::io::{self, Read as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use async_channel::TrySendError;
use futures_lite::FutureExt;
use rustix::net::sockopt;

use self::head::{Framing, Limits};
use self::reply::Raw;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::h1::parse::BodyKind;
use crate::request::Request;
use crate::response::Response;
use crate::router::{Dispatcher, Routed};
use crate::server::state::{BodyMemory, ConnGuard, ServerState};

/// How long the recv thread waits for a request before it looks at the watchdog and at
/// shutdown; it wakes at once for requests, so this only bounds how late those are noticed.
const POLL: Duration = Duration::from_secs(1);

/// A request checked by the recv thread, on its way to the loop.
struct Incoming {
    /// Our request, without its body yet.
    req: Request,
    /// How its body is delimited and what its response must honour.
    framing: Framing,
    /// The tiny_http request, for the body and the response.
    raw: Raw,
}

/// The loop's end of the tiny_http front end; [`Bridge::serve`] runs it.
pub(crate) struct Bridge {
    /// Requests from the recv thread; holds at most `max_connections`.
    rx: async_channel::Receiver<Incoming>,
    /// Ends the recv thread when the bridge and every request it started are gone.
    done: DoneOnDrop,
}

/// State shared by the loop and the recv thread.
struct Shared {
    /// A duplicate of the listening socket: shutting down its read side wakes tiny_http's accept
    /// thread with an error (it then ends) and refuses new connections at the TCP level.
    listener: TcpListener,
    /// `true` while the front end is expected to accept connections.
    accepting: AtomicBool,
    /// Set once no request will be served any more; the recv thread then leaves.
    done: AtomicBool,
    /// The server's front-end health flag, cleared when accepting stops unexpectedly.
    healthy: Arc<AtomicBool>,
}

impl Shared {
    /// Stops accepting on purpose (shutdown): new connections are refused.
    fn stop_accepting(&self) {
        if self.accepting.swap(false, Ordering::AcqRel) {
            let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Read);
        }
    }

    /// Reports, once, that the front end stopped accepting on its own, and closes the listening
    /// socket so clients are refused at once instead of waiting in its backlog.
    fn report_dead(&self, why: &str) {
        if self.accepting.swap(false, Ordering::AcqRel) {
            self.healthy.store(false, Ordering::Release);
            log::error!(
                "tiny_http front end: {why}; no new connections will be accepted \
                 (open connections are still served); restart the process"
            );
            let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Read);
        }
    }
}

/// Marks the bridge done when the last holder (the bridge task or a request task) is dropped.
struct DoneOnDrop(Arc<Shared>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.stop_accepting();
        self.0.done.store(true, Ordering::Release);
    }
}

/// What a request task holds while it runs: its place in the in-flight count.
struct Slot {
    /// Counts the request as in flight (graceful shutdown waits for it).
    _conn: ConnGuard,
    /// Keeps the recv thread running until the last request is answered.
    _done: Rc<DoneOnDrop>,
    /// Tells the bridge task a place has become free.
    freed: async_channel::Sender<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The bridge task runs on this thread only after this slot is gone entirely, so it sees
        // the in-flight count already lowered.
        let _ = self.freed.try_send(());
    }
}

impl Bridge {
    /// Starts tiny_http on `listener` and the recv thread that feeds the loop.
    ///
    /// `healthy` is cleared if tiny_http's accept thread or the recv thread ends unexpectedly.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket options cannot be set or a thread cannot start.
    pub(crate) fn start(
        listener: TcpListener,
        config: &Config,
        healthy: Arc<AtomicBool>,
    ) -> Result<Bridge> {
        // Accepted sockets inherit these from the listener (tiny_http gives no access to them):
        // the send timeout bounds each response write to a client that stopped reading, and
        // small responses are not delayed by Nagle's algorithm. A receive timeout cannot be set
        // this way: on the listener it also times out accept(), which ends tiny_http's accept
        // thread for good.
        sockopt::set_socket_timeout(
            &listener,
            sockopt::Timeout::Send,
            Some(config.write_timeout),
        )
        .map_err(io::Error::from)?;
        sockopt::set_tcp_nodelay(&listener, true).map_err(io::Error::from)?;
        let watch = ListenerWatch::new(&listener);
        let shared = Arc::new(Shared {
            listener: listener.try_clone()?,
            accepting: AtomicBool::new(true),
            done: AtomicBool::new(false),
            healthy,
        });
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
        let (tx, rx) = async_channel::bounded(config.max_connections);
        let limits = Limits {
            max_head_bytes: config.max_head_bytes,
            max_headers: config.max_headers,
        };
        let recv_shared = shared.clone();
        thread::Builder::new()
            .name("steadyloop-tiny".into())
            .spawn(move || recv_loop(&server, &tx, &recv_shared, limits, &watch))?;
        Ok(Bridge {
            rx,
            done: DoneOnDrop(shared),
        })
    }

    /// Feeds requests into the loop until a graceful shutdown begins, then stops accepting,
    /// hands the requests already queued to the loop too, and returns.
    ///
    /// At most `max_connections` requests are in flight; the rest wait in the bridge channel,
    /// and when that is full too the recv thread answers 503.
    pub(crate) async fn serve(self, state: Rc<ServerState>, dispatcher: Rc<Dispatcher>) {
        let Bridge { rx, done } = self;
        let shared = done.0.clone();
        let done = Rc::new(done);
        let (freed_tx, freed_rx) = async_channel::bounded::<()>(1);
        let cap = state.config().max_connections;
        let start = |incoming: Incoming| {
            let slot = Slot {
                _conn: state.open_connection(),
                _done: done.clone(),
                freed: freed_tx.clone(),
            };
            // The executor is gone only once the server has stopped; nothing is left to serve.
            let served = handle(state.clone(), dispatcher.clone(), incoming, slot);
            if let Some(task) = state.spawn(served) {
                task.detach();
            }
        };
        loop {
            let next = async {
                while state.connections() >= cap {
                    let _ = freed_rx.recv().await;
                }
                Some(rx.recv().await)
            }
            .or(async {
                state.stopped().await;
                None
            })
            .await;
            match next {
                Some(Ok(incoming)) => start(incoming),
                Some(Err(_)) => {
                    // The recv thread never leaves while the bridge runs: it died.
                    shared.report_dead("its request thread ended");
                    state.stopped().await;
                    break;
                }
                None => break,
            }
        }
        // From here on the recv thread answers new requests with 503 itself.
        shared.stop_accepting();
        rx.close();
        while let Ok(incoming) = rx.try_recv() {
            start(incoming);
        }
    }
}

/// Serves one request on the loop: route, read the body on the pool, run the handler, answer.
async fn handle(
    state: Rc<ServerState>,
    dispatcher: Rc<Dispatcher>,
    incoming: Incoming,
    _slot: Slot,
) {
    let Incoming {
        mut req,
        framing,
        raw,
    } = incoming;
    // An answer given before the body is read goes through tiny_http, which drains the body.
    let has_body = framing.body != BodyKind::Empty;
    let state = &state;
    let send = |raw: Raw, response: Response| {
        let stall = state.config().write_timeout;
        reply::respond(
            raw,
            response,
            framing,
            state.is_draining(),
            state.stopping_signal(),
            stall,
        )
    };
    let early = |raw: Raw, response: Response| async move {
        if has_body {
            reply::refuse(raw, response).await;
        } else {
            send(raw, response).await;
        }
    };
    let route_id = match dispatcher.route(&mut req) {
        Routed::Route(id) => id,
        unrouted @ Routed::Answer(_) => {
            // Routing's own answers pass through the layers like any other.
            let response = dispatcher.answer(req, unrouted).await;
            return early(raw, response).await;
        }
    };
    let limit = dispatcher.body_limit(route_id);
    // Bodies count against the server-wide body memory, as on the native front end; here the
    // share is taken up front (the declared length, or the limit for a chunked body), since the
    // body is read on another thread in one go.
    let mut held = state.body_memory();
    let share = match framing.body {
        BodyKind::Empty => 0,
        BodyKind::Length(n) => usize::try_from(n).unwrap_or(usize::MAX).min(limit),
        BodyKind::Chunked => limit.min(state.config().max_body_memory),
    };
    if !held.grow(share) {
        return early(raw, BodyMemory::full_response()).await;
    }
    let (raw, body) = match framing.body {
        BodyKind::Empty => (raw, Vec::new()),
        // Refused before a byte of the body is read.
        BodyKind::Length(n) if n > limit as u64 => return early(raw, too_large()).await,
        BodyKind::Length(n) => match read_body(raw, n).await {
            (raw, Ok(body)) if body.len() as u64 == n => (raw, body),
            // The client closed before sending the whole body: nobody to answer.
            _ => return,
        },
        BodyKind::Chunked => match read_body(raw, limit as u64 + 1).await {
            (raw, Ok(body)) if body.len() > limit => return early(raw, too_large()).await,
            (raw, Ok(body)) => (raw, body),
            (raw, Err(e)) if e.kind() == io::ErrorKind::InvalidInput => {
                let response = Response::text("invalid chunked body\n").with_status(400);
                return early(raw, response).await;
            }
            (_, Err(_)) => return,
        },
    };
    req.set_body(body);
    let response = dispatcher.answer(req, Routed::Route(route_id)).await;
    // The handler has had the body: its share is freed before the response goes out on
    // another thread, so a client that reads the answer and sends its next body at once finds
    // the memory free. (The native front end frees it once the response is written, on the
    // loop, where no client can see the answer before that.) A response that carries the body
    // on is not counted while tiny_http writes it.
    drop(held);
    send(raw, response).await;
}

/// The 413 answer for a body over the route's limit.
fn too_large() -> Response {
    Response::text("request body too large\n").with_status(413)
}

/// Reads up to `max` bytes of the body on the pool (sending `100 Continue` first if the
/// client waits for it).
async fn read_body(raw: Raw, max: u64) -> (Raw, io::Result<Vec<u8>>) {
    crate::pool::unblock_io(move || {
        let mut raw = raw;
        let mut body = Vec::new();
        let result = raw
            .get_mut()
            .as_reader()
            .take(max)
            .read_to_end(&mut body)
            .map(|_| body);
        (raw, result)
    })
    .await
}

/// The recv thread: takes requests from tiny_http, checks them and forwards them to the loop;
/// watches tiny_http's accept thread meanwhile.
fn recv_loop(
    server: &tiny_http::Server,
    tx: &async_channel::Sender<Incoming>,
    shared: &Shared,
    limits: Limits,
    watch: &ListenerWatch,
) {
    let mut last_check = Instant::now();
    while !shared.done.load(Ordering::Acquire) {
        match server.recv_timeout(POLL) {
            Ok(Some(raw)) => forward(raw, tx, limits),
            Ok(None) => {}
            // tiny_http reports an accept error once, then its accept thread is gone.
            Err(e) => shared.report_dead(&format!("its accept thread failed: {e}")),
        }
        if last_check.elapsed() >= POLL {
            last_check = Instant::now();
            // A thread tiny_http could not spawn panics its accept thread without a word.
            if !watch.is_open() {
                shared.report_dead("its accept thread ended");
            }
        }
    }
    // Requests that came in after the loop stopped taking them.
    while let Ok(Some(raw)) = server.try_recv() {
        reply::refuse_detached(raw, shutting_down(), true);
    }
}

/// Checks one request and hands it to the loop, or answers it on the pool.
fn forward(raw: tiny_http::Request, tx: &async_channel::Sender<Incoming>, limits: Limits) {
    let (req, framing) = match head::check(&raw, limits) {
        Ok(checked) => checked,
        Err(reject) => {
            let response =
                Response::text(format!("{}\n", reject.reason)).with_status(reject.status);
            return reply::refuse_detached(raw, response, true);
        }
    };
    let incoming = Incoming {
        req,
        framing,
        raw: Raw::new(raw),
    };
    match tx.try_send(incoming) {
        Ok(()) => {}
        Err(TrySendError::Full(incoming)) => {
            let response = Response::unavailable(Duration::from_secs(1), "server busy");
            // A chunked body left unread cannot be skipped: close after it.
            let close = incoming.framing.body != BodyKind::Empty;
            reply::refuse_detached(incoming.raw.take(), response, close);
        }
        Err(TrySendError::Closed(incoming)) => {
            reply::refuse_detached(incoming.raw.take(), shutting_down(), true);
        }
    }
}

/// The 503 answer for requests that arrive during shutdown.
fn shutting_down() -> Response {
    Response::unavailable(Duration::from_secs(1), "shutting down")
}

/// Notices that tiny_http's accept thread has ended, by watching its listening descriptor.
///
/// tiny_http gives no handle on that thread. When it ends (after an accept error, which
/// `recv` reports once, or a panic, which nothing reports) it drops the listener, so the
/// descriptor number leaves `/proc/self/fd` or names another file. Where `/proc` is missing
/// the watch never fires.
struct ListenerWatch {
    /// `/proc/self/fd/N` for the listener's descriptor.
    path: PathBuf,
    /// What that link named at the start (`socket:[inode]`), if `/proc` is there.
    target: Option<PathBuf>,
}

impl ListenerWatch {
    /// Records what the listener's descriptor names now.
    fn new(listener: &TcpListener) -> ListenerWatch {
        use std::os::fd::AsRawFd as _;
        let path = PathBuf::from(format!("/proc/self/fd/{}", listener.as_raw_fd()));
        let target = fs::read_link(&path).ok();
        ListenerWatch { path, target }
    }

    /// Returns `false` once the descriptor no longer names the listening socket.
    fn is_open(&self) -> bool {
        match &self.target {
            None => true,
            Some(target) => fs::read_link(&self.path).ok().as_ref() == Some(target),
        }
    }
}
