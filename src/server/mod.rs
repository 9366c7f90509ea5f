//! The server: its builder, the event loop that runs it, and shutdown.

mod builder;
mod shutdown;
pub(crate) mod signal;

pub use builder::ServerBuilder;
pub use shutdown::{ServerHandle, ShutdownHandle};
pub(crate) use shutdown::{NOW, RUNNING};

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::FutureExt;

use crate::app::App;
use crate::error::Result;
use crate::http::native;
use crate::observe::monitor::Instrumented;
use crate::server::signal::SignalWatch;

/// A bound HTTP server, ready to run its event loop.
///
/// [`Server::run`] turns the current thread into the loop; [`Server::serve`] is the same as a
/// future, for programs that already drive a single-threaded executor. A `Server` is `!Send`:
/// its handlers may hold `!Send` state and must stay on the loop's thread.
pub struct Server {
    /// The application, shared by the loop's tasks.
    pub(super) app: Rc<App>,
    /// The listening side of the front end.
    pub(super) listener: Listener,
    /// The bound address.
    pub(super) local_addr: SocketAddr,
    /// Closed when a graceful shutdown begins (connections watch the other end).
    pub(super) stop_tx: async_channel::Sender<()>,
    /// Receives a message when a connection closes.
    pub(super) closed_rx: async_channel::Receiver<()>,
    /// The shutdown control shared with handles.
    pub(super) control: ShutdownHandle,
    /// Woken when a handle asks for shutdown.
    pub(super) wake_rx: async_channel::Receiver<()>,
    /// SIGTERM/SIGINT handlers, when [`ServerBuilder::handle_signals`] asked for them.
    pub(super) signals: Option<SignalWatch>,
}

impl Server {
    /// Returns a builder with every setting at its default.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Returns the address the server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns a handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.control.clone()
    }

    /// Returns `false` once the front end can no longer accept connections.
    ///
    /// Only the tiny_http front end can get there: its accept thread ends for good on any
    /// accept error (such as running out of file descriptors). Open connections are still
    /// served; the process should be restarted.
    pub fn is_frontend_healthy(&self) -> bool {
        self.app.is_frontend_healthy()
    }

    /// Runs the event loop on the current thread until the server is shut down.
    ///
    /// # Errors
    ///
    /// Returns an error only if the loop cannot run; request errors are answered, not returned.
    pub fn run(self) -> Result<()> {
        async_io::block_on(self.serve())
    }

    /// Serves until shut down; the same as [`Server::run`], as a future.
    ///
    /// The future is `!Send`: poll it on one thread, for example with `async_io::block_on` or
    /// inside a `LocalExecutor`. Other tasks of that executor keep running alongside.
    ///
    /// # Errors
    ///
    /// As [`Server::run`].
    pub async fn serve(self) -> Result<()> {
        let ex = Rc::new(LocalExecutor::new());
        ex.run(self.main(ex.clone())).await
    }

    /// Accepts until shutdown is asked for, then drains.
    async fn main(self, ex: Rc<LocalExecutor<'static>>) -> Result<()> {
        let Server {
            app,
            listener,
            local_addr,
            stop_tx,
            closed_rx,
            control,
            wake_rx,
            signals,
        } = self;
        log::info!("listening on http://{local_addr}");
        if let Some(signals) = signals {
            ex.spawn(signals.run(control.clone())).detach();
        }
        // Tasks hold the executor weakly: a strong reference from a task it owns would keep
        // every connection alive after an immediate stop.
        let accept = match listener {
            Listener::Native(listener) => {
                let accept = native::accept_loop(app.clone(), listener, Rc::downgrade(&ex));
                ex.spawn(Instrumented::new(app.monitor.clone(), accept))
            }
            #[cfg(feature = "tiny_http")]
            Listener::Tiny(bridge) => {
                let serve = bridge.serve(app.clone(), Rc::downgrade(&ex));
                ex.spawn(Instrumented::new(app.monitor.clone(), serve))
            }
        };

        // Wait for the first shutdown request.
        while control.state.load(Ordering::Acquire) == RUNNING {
            if wake_rx.recv().await.is_err() {
                break;
            }
        }
        if control.state.load(Ordering::Acquire) == NOW {
            log::info!("stopping now");
            app.close_pools();
            return Ok(());
        }

        // Graceful: stop accepting, close idle connections, let in-flight requests finish.
        let open = app.connections.get();
        log::info!(
            "shutting down: finishing {open} connection(s), waiting up to {:?}",
            app.config.drain_timeout
        );
        stop_tx.close();
        accept.await;
        let drained = async {
            while app.connections.get() > 0 {
                let _ = closed_rx.recv().await;
            }
        };
        let forced = async {
            while control.state.load(Ordering::Acquire) != NOW {
                if wake_rx.recv().await.is_err() {
                    futures_lite::future::pending::<()>().await;
                }
            }
            log::info!("second shutdown request: stopping now");
        };
        let expired = async {
            Timer::after(app.config.drain_timeout).await;
            log::warn!(
                "drain deadline passed with {} connection(s) open; closing them",
                app.connections.get()
            );
        };
        drained.or(forced).or(expired).await;
        app.close_pools();
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("router", &self.app.router)
            .finish()
    }
}

/// The listening side of the chosen front end.
pub(super) enum Listener {
    /// The native front end's listening socket, accepted from on the loop.
    Native(Async<TcpListener>),
    /// The tiny_http front end, already accepting on its own threads.
    #[cfg(feature = "tiny_http")]
    Tiny(crate::http::tiny::Bridge),
}
