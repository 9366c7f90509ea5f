//! Stopping a server from outside its loop: `ShutdownHandle`, the loop's end of it
//! (`ShutdownRequests`), and the `ServerHandle` of a spawned server.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;

use crate::error::{Error, Result};

/// The server is running.
const RUNNING: u8 = 0;
/// A graceful shutdown was asked for.
const GRACEFUL: u8 = 1;
/// An immediate stop was asked for.
const NOW: u8 = 2;

/// Stops a running [`Server`](crate::Server) from any thread; cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    /// `RUNNING`, `GRACEFUL` or `NOW`; only ever increases.
    state: Arc<AtomicU8>,
    /// Wakes the loop to look at `state`.
    wake: async_channel::Sender<()>,
}

/// How the loop is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Stop accepting, finish what is in flight within the drain timeout.
    Graceful,
    /// Stop at once.
    Now,
}

/// The loop's end of its [`ShutdownHandle`]s: waits for their requests.
pub(crate) struct ShutdownRequests {
    /// The state the handles raise.
    state: Arc<AtomicU8>,
    /// Woken when a handle raises the state.
    wake: async_channel::Receiver<()>,
}

impl ShutdownRequests {
    /// Waits for the first shutdown request and returns what it asks for.
    pub(crate) async fn first(&self) -> Stop {
        while self.state.load(Ordering::Acquire) == RUNNING {
            if self.wake.recv().await.is_err() {
                break;
            }
        }
        if self.state.load(Ordering::Acquire) == NOW {
            Stop::Now
        } else {
            Stop::Graceful
        }
    }

    /// Waits until an immediate stop is asked for (a second request during a drain).
    pub(crate) async fn now(&self) {
        while self.state.load(Ordering::Acquire) != NOW {
            if self.wake.recv().await.is_err() {
                futures_lite::future::pending::<()>().await;
            }
        }
    }
}

impl fmt::Debug for ShutdownRequests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownRequests")
            .field("state", &self.state.load(Ordering::Acquire))
            .finish()
    }
}

impl ShutdownHandle {
    /// Creates a handle for a running server and the loop's end that hears it.
    pub(crate) fn new() -> (ShutdownHandle, ShutdownRequests) {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let handle = ShutdownHandle {
            state: state.clone(),
            wake: wake_tx,
        };
        (
            handle,
            ShutdownRequests {
                state,
                wake: wake_rx,
            },
        )
    }

    /// Starts a graceful shutdown: stop accepting, close idle connections, let in-flight
    /// requests (and their pool jobs) finish within the drain timeout, then return from
    /// [`Server::run`](crate::Server::run). Calling it again has no further effect.
    ///
    /// It returns at once: the loop begins the shutdown as soon as it runs next, so a response
    /// being prepared at that very moment may still go out without `Connection: close`.
    pub fn shutdown(&self) {
        self.raise(GRACEFUL);
    }

    /// Stops at once: open connections are closed without waiting for their requests.
    pub fn shutdown_now(&self) {
        self.raise(NOW);
    }

    /// Returns `true` once a shutdown has been asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }

    /// Moves the state forward to `to` and wakes the loop.
    fn raise(&self, to: u8) {
        if self.state.fetch_max(to, Ordering::AcqRel) < to {
            // A full channel already holds a wake-up; the loop reads the state when it runs.
            let _ = self.wake.try_send(());
        }
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

/// A server running on its own thread, made by
/// [`ServerBuilder::spawn`](crate::ServerBuilder::spawn).
///
/// Dropping it stops the server at once and waits for its thread.
pub struct ServerHandle {
    /// The bound address.
    pub(super) addr: SocketAddr,
    /// Stops the server.
    pub(super) control: ShutdownHandle,
    /// The front end's health flag (see
    /// [`Server::is_frontend_healthy`](crate::Server::is_frontend_healthy)).
    pub(super) frontend_healthy: Arc<AtomicBool>,
    /// The loop's thread; `None` once joined.
    pub(super) thread: Option<thread::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns a handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.control.clone()
    }

    /// Returns `false` once the front end can no longer accept connections; see
    /// [`Server::is_frontend_healthy`](crate::Server::is_frontend_healthy).
    pub fn is_frontend_healthy(&self) -> bool {
        self.frontend_healthy.load(Ordering::Acquire)
    }

    /// Shuts the server down gracefully and waits for its thread.
    ///
    /// # Errors
    ///
    /// Returns the server's error, or [`Error::ServerThread`] if its thread panicked.
    pub fn shutdown(self) -> Result<()> {
        self.control.shutdown();
        self.join()
    }

    /// Waits for the server's thread to end (after a shutdown from elsewhere).
    ///
    /// # Errors
    ///
    /// As [`ServerHandle::shutdown`].
    pub fn join(mut self) -> Result<()> {
        self.join_thread()
    }

    /// Joins the thread if it has not been joined yet.
    fn join_thread(&mut self) -> Result<()> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or_else(|payload| {
                Err(Error::ServerThread(crate::error::panic_message(
                    payload.as_ref(),
                )))
            }),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.control.shutdown_now();
            let _ = self.join_thread();
        }
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("running", &self.thread.is_some())
            .finish()
    }
}
