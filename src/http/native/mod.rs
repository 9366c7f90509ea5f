//! The native HTTP/1.1 front end: accepts connections on the loop and serves each one as a
//! task of the loop's executor.

mod conn;
mod door;

use std::io::{self, Write as _};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::FutureExt;

use crate::activation;
use crate::router::Dispatcher;
use crate::rt::{self, Sleep};
use crate::server::state::ServerState;

/// What a connection over the cap receives before it is closed: written without a task, so
/// canned (and without `Date`). A test checks it is what `Response::unavailable` would send.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 31\r\n\
Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
server at its connection limit\n";

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
    listener: rt::TcpListener,
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
        let last_sweep = ready.is_none() || state.is_stopping();
        if last_sweep && state.config().drain_delay.is_zero() {
            // Dropping the listener refuses new connections at the TCP level (and resets the
            // ones queued: no drain was asked for).
            return;
        }
        if last_sweep {
            // Stopping with a drain delay: take the connections already queued before closing
            // the listener, which would reset them. With the door shut, none completes after
            // the sweep but the handshakes already under way, which the settle lets finish. A
            // socket a supervisor passed outlives this process, and keeps no filter of ours.
            let passed = activation::is_activation_addr(&state.config().addr);
            if !passed && door::shut(listener.get_ref()) {
                take_pending(&state, &dispatcher, &listener, &mut backoff, true).await;
                Sleep::after(door::HANDSHAKE_SETTLE).await;
            }
            take_pending(&state, &dispatcher, &listener, &mut backoff, true).await;
            return;
        }
        if let Some(Err(e)) = ready {
            // The reactor could not watch the listener: pause and retry rather than stop
            // accepting for good while the process keeps running.
            log::error!("waiting for connections failed: {e}; retrying");
            Sleep::after(MAX_BACKOFF).await;
            continue;
        }
        if !take_pending(&state, &dispatcher, &listener, &mut backoff, false).await {
            return;
        }
    }
}

/// Takes every pending connection, spawning a task for each; `false` once the server has
/// stopped. In the `last` sweep of a stop an accept error ends the sweep rather than backing
/// off.
async fn take_pending(
    state: &Rc<ServerState>,
    dispatcher: &Rc<Dispatcher>,
    listener: &rt::TcpListener,
    backoff: &mut Duration,
    last: bool,
) -> bool {
    loop {
        match listener.try_accept() {
            Ok((stream, peer)) => {
                if *backoff > Duration::ZERO {
                    log::info!("accepting connections again");
                    *backoff = Duration::ZERO;
                }
                let Some(guard) = state.try_open_connection() else {
                    let _ = stream.set_nonblocking(true);
                    let _ = (&stream).write(REFUSED);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok(stream) = rt::TcpStream::new(stream) else {
                    continue;
                };
                let serve = conn::serve(state.clone(), dispatcher.clone(), stream, peer, guard);
                let Some(task) = state.spawn(serve) else {
                    // The server has stopped.
                    return false;
                };
                task.detach();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if is_transient(&e) => continue,
            Err(_) if last => return true,
            Err(e) => {
                if *backoff == Duration::ZERO {
                    log::error!("accept failed: {e}; backing off and retrying");
                    state.count_accept_error();
                }
                *backoff = (*backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                Sleep::after(*backoff).await;
                return true;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::REFUSED;
    use crate::http::h1::write::{error_bytes, prepare, Exchange, OutBody};
    use crate::response::Response;

    /// Returns the bytes the server writes for `response` on a connection it then closes.
    fn written(response: Response) -> Vec<u8> {
        let exchange = Exchange {
            head_request: false,
            http10: false,
            keep_alive: false,
        };
        let out = prepare(response, exchange, false);
        let mut bytes = out.head;
        if let OutBody::Full(body) = out.body {
            bytes.extend_from_slice(&body);
        }
        bytes
    }

    /// Splits a response into its status line, its header lines sorted and without `Date`,
    /// and its body.
    fn canonical(bytes: &[u8]) -> (String, Vec<String>, String) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n").map(str::to_string);
        let status = lines.next().unwrap();
        let mut headers: Vec<String> = lines.filter(|l| !l.starts_with("Date: ")).collect();
        headers.sort();
        (status, headers, body.to_string())
    }

    #[test]
    fn refused_bytes_are_the_unavailable_response_without_its_date() {
        let message = "server at its connection limit";
        let built = written(Response::unavailable(Duration::from_secs(1), message));
        let text = String::from_utf8(built).unwrap();
        let undated: String = text
            .split_inclusive("\r\n")
            .filter(|line| !line.starts_with("Date: "))
            .collect();
        assert_eq!(String::from_utf8_lossy(REFUSED), undated);
    }

    #[test]
    fn a_rejected_request_503_is_the_unavailable_response() {
        let message = "too many request bodies in memory; retry later";
        let built = written(Response::unavailable(Duration::from_secs(1), message));
        assert_eq!(canonical(&error_bytes(503, message)), canonical(&built));
    }
}
