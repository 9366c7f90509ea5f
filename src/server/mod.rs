//! The server: its builder, the event loop that runs it, the state it keeps, what it tells its
//! supervisor, and shutdown.

mod builder;
mod shutdown;
mod signal;
pub(crate) mod state;
mod supervise;

pub use builder::ServerBuilder;
pub use shutdown::{ServerHandle, ShutdownHandle};

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use async_executor::LocalExecutor;
use futures_lite::FutureExt;

use crate::error::Result;
use crate::http::native;
use crate::router::Dispatcher;
use crate::rt;
use crate::server::shutdown::{ShutdownRequests, Stop};
use crate::server::signal::SignalWatch;
use crate::server::state::ServerState;
use crate::task::{InContext, JoinHandle, LoopContext};

/// A bound HTTP server, ready to run its event loop.
///
/// [`Server::run`] turns the current thread into the loop; [`Server::serve`] is the same as a
/// future, for programs that already drive a single-threaded executor. A `Server` is `!Send`:
/// its handlers may hold `!Send` state and must stay on the loop's thread.
pub struct Server {
    /// The loop's executor; the state and the front ends hold it weakly.
    pub(super) ex: Rc<LocalExecutor<'static>>,
    /// What the server keeps: counters, body budget, health, pool classes.
    pub(super) state: Rc<ServerState>,
    /// What answers requests: the routes and their handlers.
    pub(super) dispatcher: Rc<Dispatcher>,
    /// The listening side of the front end.
    pub(super) listener: Listener,
    /// The bound address.
    pub(super) local_addr: SocketAddr,
    /// The shutdown control shared with handles.
    pub(super) control: ShutdownHandle,
    /// Hears the handles' shutdown requests.
    pub(super) requests: ShutdownRequests,
    /// SIGTERM/SIGINT handlers, when [`ServerBuilder::handle_signals`] asked for them.
    pub(super) signals: Option<SignalWatch>,
    /// What code on the loop reaches through `steadyloop::spawn` and `shutting_down`.
    pub(super) context: Rc<LoopContext>,
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
        self.state.is_frontend_healthy()
    }

    /// Spawns `future` as a task named `name` on the server's loop; it starts when the loop
    /// runs. See [`spawn`](crate::spawn) for what tasks get (stall reports by name, a graceful
    /// end at shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_lite::FutureExt;
    /// use steadyloop::{time, Router, Server};
    ///
    /// let server = Server::builder()
    ///     .addr("127.0.0.1:0")
    ///     .build(Router::new().liveness("/healthz"))?;
    /// let stop = server.shutdown_handle();
    /// let _sampler = server.spawn("sampler", async move {
    ///     let mut every = time::interval(Duration::from_millis(5));
    ///     let sample = async {
    ///         for _ in 0..3 {
    ///             every.tick().await; // read a sensor here
    ///         }
    ///         stop.shutdown(); // (only so that this example ends)
    ///     };
    ///     sample.or(steadyloop::shutting_down()).await;
    /// });
    /// server.run()?;
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    pub fn spawn<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + 'static,
        F::Output: 'static,
    {
        self.context.spawn(name, future)
    }

    /// Runs the event loop on the current thread until the server is shut down.
    ///
    /// # Errors
    ///
    /// Returns an error only if the loop cannot run; request errors are answered, not returned.
    pub fn run(self) -> Result<()> {
        rt::block_on(self.serve())
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
        let ex = self.ex.clone();
        let context = self.context.clone();
        rt::with_reactor(InContext::new(context, ex.run(self.main()))).await
    }

    /// Accepts until shutdown is asked for, then drains.
    async fn main(self) -> Result<()> {
        let Server {
            ex: _,
            state,
            dispatcher,
            listener,
            local_addr,
            control,
            requests,
            signals,
            context,
        } = self;
        log::info!("listening on http://{local_addr}");
        if let Some(signals) = signals {
            spawn_on_loop(&state, signals.run(control.clone())).detach();
        }
        let accept = match listener {
            Listener::Native(listener) => {
                let accept = native::accept_loop(state.clone(), dispatcher, listener);
                spawn_on_loop(&state, accept)
            }
            #[cfg(feature = "tiny_http")]
            Listener::Tiny(bridge) => {
                spawn_on_loop(&state, bridge.serve(state.clone(), dispatcher))
            }
        };

        // Tell a supervisor we are ready, and ping its watchdog from the loop itself.
        if let Some(notifier) = state.notifier() {
            notifier.ready(&format!("listening on http://{local_addr}"));
            if let Some(interval) = notifier.watchdog() {
                let watchdog = supervise::watchdog(state.clone(), notifier.clone(), interval);
                spawn_on_loop(&state, watchdog).detach();
            }
        }

        if requests.first().await == Stop::Now {
            log::info!("stopping now");
            state.begin_stopping();
            state.close_pools();
            return Ok(());
        }

        // Graceful: readiness fails and responses close their connections; after the drain
        // delay, stop accepting, close idle connections, let in-flight requests finish.
        if !supervise::announce(&state, &requests).await {
            log::info!("second shutdown request: stopping now");
            state.close_pools();
            return Ok(());
        }
        log::info!(
            "shutting down: finishing {} connection(s), waiting up to {:?}",
            state.connections(),
            state.config().drain_timeout
        );
        let deadline = Instant::now() + state.config().drain_timeout;
        state.begin_stopping();
        accept.await;
        let forced = async {
            requests.now().await;
            log::info!("second shutdown request: stopping now");
        };
        let expired = async {
            rt::Sleep::until(deadline).await;
            log::warn!(
                "drain deadline passed with {} connection(s) open; closing them",
                state.connections()
            );
            if context.live_tasks() > 0 {
                log::warn!(
                    "drain deadline passed with task(s) still running, now dropped: {}; end \
                     long-lived tasks when steadyloop::shutting_down() resolves",
                    context.running_names()
                );
            }
        };
        // Spawned tasks end when they see `shutting_down()`; they are waited for like
        // connections, and dropped with them at the deadline.
        let drained = async {
            state.all_closed().await;
            context.all_ended().await;
        };
        let progress = supervise::report_progress(&state, deadline);
        drained.or(forced).or(expired).or(progress).await;
        state.close_pools();
        Ok(())
    }
}

/// Spawns a task of the server itself on the loop, which is running while `main` is.
fn spawn_on_loop<T: 'static>(
    state: &ServerState,
    future: impl std::future::Future<Output = T> + 'static,
) -> async_executor::Task<T> {
    state
        .spawn(future)
        .expect("the executor lives while the server runs")
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("router", self.dispatcher.router())
            .finish()
    }
}

/// The listening side of the chosen front end.
pub(super) enum Listener {
    /// The native front end's listening socket, accepted from on the loop.
    Native(rt::TcpListener),
    /// The tiny_http front end, already accepting on its own threads.
    #[cfg(feature = "tiny_http")]
    Tiny(crate::http::tiny::Bridge),
}
