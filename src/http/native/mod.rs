//! The native HTTP/1.1 front end: accepts connections on the loop and serves each one as a
//! task of the loop's executor.

mod conn;

use std::io::{self, Write as _};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::FutureExt;

use crate::router::Dispatcher;
use crate::server::state::ServerState;

/// What a connection over the cap receives before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 29\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver at its connection limit\n";

/// Longest pause after an accept error such as running out of file descriptors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections until a graceful shutdown begins, spawning one task per connection.
///
/// Connections over `max_connections` are answered with a canned 503 and closed without ever
/// being registered with the reactor. Accept errors never end the loop: transient ones are
/// retried at once, resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off and is
/// logged once per episode.
pub(crate) async fn accept_loop(
    state: Rc<ServerState>,
    dispatcher: Rc<Dispatcher>,
    listener: Async<TcpListener>,
) {
    let mut backoff = Duration::ZERO;
    loop {
        let stopping = state.stopped();
        let ready = async { Some(listener.readable().await) }
            .or(async move {
                stopping.await;
                None
            })
            .await;
        let Some(ready) = ready.filter(|_| !state.is_stopping()) else {
            // Dropping the listener refuses new connections at the TCP level.
            return;
        };
        if let Err(e) = ready {
            // The reactor could not watch the listener: pause and retry rather than stop
            // accepting for good while the process keeps running.
            log::error!("waiting for connections failed: {e}; retrying");
            Timer::after(MAX_BACKOFF).await;
            continue;
        }
        // Take every pending connection before waiting again.
        loop {
            match listener.get_ref().accept() {
                Ok((stream, peer)) => {
                    if backoff > Duration::ZERO {
                        log::info!("accepting connections again");
                        backoff = Duration::ZERO;
                    }
                    let Some(guard) = state.try_open_connection() else {
                        let _ = stream.set_nonblocking(true);
                        let _ = (&stream).write(REFUSED);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok(stream) = Async::new(stream) else {
                        continue;
                    };
                    let conn_state = state.clone();
                    let dispatcher = dispatcher.clone();
                    let serve = async move {
                        conn::serve(conn_state, dispatcher, stream, peer).await;
                        drop(guard);
                    };
                    let Some(task) = state.spawn(serve) else {
                        // The server has stopped.
                        return;
                    };
                    task.detach();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    if backoff == Duration::ZERO {
                        log::error!("accept failed: {e}; backing off and retrying");
                        state.count_accept_error();
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                    Timer::after(backoff).await;
                    break;
                }
            }
        }
    }
}

/// Returns `true` for accept errors that concern one connection only.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
