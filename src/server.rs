//! The server: its builder, the event loop that runs it, and shutdown.

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::FutureExt;

use crate::app::App;
use crate::config::{ClassConfig, Config, Frontend};
use crate::error::{Error, Result};
use crate::http::native;
use crate::monitor::Instrumented;
use crate::router::Router;
use crate::signal::SignalWatch;

/// Configures and builds a [`Server`].
///
/// Every setter states its default; [`ServerBuilder::config`] sets them all at once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadyloop::{ClassConfig, Router, Server};
///
/// let app = Router::new().get("/", |_req| async { "hi" });
/// let server = Server::builder()
///     .addr("127.0.0.1:0")
///     .workers(2)
///     .queue(32)
///     .class("reports", ClassConfig::new(1, 8))
///     .keep_alive_timeout(Duration::from_secs(2))
///     .build(app)?;
/// assert!(server.local_addr().port() > 0);
/// # Ok::<(), steadyloop::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    /// The settings.
    config: Config,
    /// Declared pool classes besides the default one.
    classes: Vec<(String, ClassConfig)>,
    /// Whether SIGTERM and SIGINT stop the server.
    signals: bool,
}

impl ServerBuilder {
    /// Replaces every setting with `config`.
    pub fn config(mut self, config: Config) -> ServerBuilder {
        self.config = config;
        self
    }

    /// Sets the address to listen on; port 0 picks a free port. Defaults to `127.0.0.1:8080`.
    pub fn addr(mut self, addr: impl Into<String>) -> ServerBuilder {
        self.config.addr = addr.into();
        self
    }

    /// Sets how many CPU jobs of the default class run at once. Defaults to the number of cores.
    pub fn workers(mut self, workers: usize) -> ServerBuilder {
        self.config.pool.workers = workers;
        self
    }

    /// Sets how many CPU jobs of the default class may wait for a worker; more are shed with
    /// 503. Defaults to 64.
    pub fn queue(mut self, queue: usize) -> ServerBuilder {
        self.config.pool.queue = queue;
        self
    }

    /// Sets how long a CPU job of the default class may wait to start before it is dropped with
    /// 503. Defaults to 5 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.config.pool.queue_timeout = timeout;
        self
    }

    /// Declares pool class `name` with its own workers, queue and queue deadline; routes join it
    /// with [`Router::class`]. Classes do not share workers or queues, so a flood of one kind of
    /// work cannot delay another. Defaults to none besides the default class.
    pub fn class(mut self, name: &str, class: ClassConfig) -> ServerBuilder {
        self.classes.push((name.to_string(), class));
        self
    }

    /// Sets whether pool workers run at a lower OS scheduling priority than the loop, so the
    /// loop wins the CPU when both want it (Linux only). Defaults to `true`.
    pub fn low_priority_workers(mut self, low: bool) -> ServerBuilder {
        self.config.low_priority_workers = low;
        self
    }

    /// Sets the largest request head; larger heads get 431 (414 if the request line alone is
    /// too long). Defaults to 16 KiB.
    pub fn max_head_bytes(mut self, bytes: usize) -> ServerBuilder {
        self.config.max_head_bytes = bytes;
        self
    }

    /// Sets the most header fields a request may have (431 beyond). Defaults to 100.
    pub fn max_headers(mut self, count: usize) -> ServerBuilder {
        self.config.max_headers = count;
        self
    }

    /// Sets the largest request body (413 beyond) for routes without their own limit. Defaults
    /// to 1 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> ServerBuilder {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Sets the most bytes of request bodies the server holds at once, across all connections.
    /// A request whose body would go past it is answered 503 (with `Retry-After`) and its
    /// connection closed, so many slow uploads cannot exhaust memory together. It should be at
    /// least the largest body limit. Defaults to 64 MiB.
    pub fn max_body_memory(mut self, bytes: usize) -> ServerBuilder {
        self.config.max_body_memory = bytes;
        self
    }

    /// Sets the time allowed for a whole request head, from its first byte (408 after). Defaults
    /// to 10 s.
    pub fn header_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.config.header_timeout = timeout;
        self
    }

    /// Sets the longest pause while reading a request body (408 after). Defaults to 10 s.
    pub fn body_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.config.body_timeout = timeout;
        self
    }

    /// Sets how long an idle keep-alive connection stays open. Defaults to 5 s.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.config.keep_alive_timeout = timeout;
        self
    }

    /// Sets how long a response write (or a streamed body's next chunk) may make no progress
    /// before the connection is closed. Defaults to 10 s.
    pub fn write_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.config.write_timeout = timeout;
        self
    }

    /// Sets the most open connections; more are answered 503 and closed at once. Defaults to
    /// 1,024.
    pub fn max_connections(mut self, count: usize) -> ServerBuilder {
        self.config.max_connections = count;
        self
    }

    /// Sets how long a graceful shutdown waits for in-flight requests. Defaults to 10 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> ServerBuilder {
        self.config.drain_timeout = timeout;
        self
    }

    /// Sets how long one poll on the loop may run before it is reported as a stall. Defaults to
    /// 100 ms.
    pub fn stall_threshold(mut self, threshold: Duration) -> ServerBuilder {
        self.config.stall_threshold = threshold;
        self
    }

    /// Sets the loop lag above which the readiness endpoint answers 503. Defaults to 250 ms.
    pub fn ready_max_lag(mut self, lag: Duration) -> ServerBuilder {
        self.config.ready_max_lag = lag;
        self
    }

    /// Sets how full (0–1) a pool class's queue may get before the readiness endpoint answers
    /// 503. Defaults to 0.8.
    pub fn ready_queue_ratio(mut self, ratio: f64) -> ServerBuilder {
        self.config.ready_queue_ratio = ratio;
        self
    }

    /// Sets whether one line per request is logged (target `steadyloop::access`, level info):
    /// method, path, status, body bytes, handler time and pool queue wait. Defaults to `false`.
    pub fn access_log(mut self, on: bool) -> ServerBuilder {
        self.config.access_log = on;
        self
    }

    /// Sets whether the loop measures its lag and a watchdog thread reports stalls as they
    /// happen. Turning it off saves two clock reads per task poll and one thread. Defaults to
    /// `true`.
    pub fn loop_monitor(mut self, on: bool) -> ServerBuilder {
        self.config.loop_monitor = on;
        self
    }

    /// Sets whether SIGTERM and SIGINT stop the server: the first one starts a graceful
    /// shutdown (as [`ShutdownHandle::shutdown`]), the next one stops at once (as
    /// [`ShutdownHandle::shutdown_now`]); [`Server::run`] then returns `Ok`. Defaults to `false`:
    /// a library does not take over the process's signals unless asked.
    ///
    /// The handlers are installed by [`ServerBuilder::build`] and removed when the server's
    /// loop ends, but the signals' default action (ending the process) is not restored: a
    /// program that goes on after the server stops and wants Ctrl-C to kill it must exit by
    /// itself.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use steadyloop::{Router, Server};
    ///
    /// let app = Router::new().get("/", |_req| async { "hi" });
    /// // Runs until SIGTERM or Ctrl-C, then drains in-flight requests and returns.
    /// Server::builder().handle_signals(true).build(app)?.run()?;
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    pub fn handle_signals(mut self, handle: bool) -> ServerBuilder {
        self.signals = handle;
        self
    }

    /// Sets the HTTP front end. [`Frontend::TinyHttp`] needs the `tiny_http` cargo feature
    /// ([`build`](ServerBuilder::build) fails with [`Error::Config`] without it); with it,
    /// `max_connections` caps requests in flight rather than connections. Defaults to
    /// [`Frontend::Native`].
    pub fn frontend(mut self, frontend: Frontend) -> ServerBuilder {
        self.config.frontend = frontend;
        self
    }

    /// Binds the listening socket and builds the server for `router`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings or undeclared pool classes; [`Error::Io`] if the
    /// address does not resolve or cannot be bound, or the signal handlers cannot be installed.
    pub fn build(self, router: Router) -> Result<Server> {
        let addr = resolve(&self.config.addr)?;
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let (stop_tx, stopping) = async_channel::bounded(1);
        let (closed_tx, closed_rx) = async_channel::bounded(1);
        let app = App::new(router, self.config, self.classes, stopping, closed_tx)?;
        let listener = match app.config.frontend {
            Frontend::Native => Listener::Native(Async::new(listener)?),
            #[cfg(feature = "tiny_http")]
            Frontend::TinyHttp => Listener::Tiny(crate::http::tiny::Bridge::start(
                listener,
                &app.config,
                app.frontend_healthy.clone(),
            )?),
            #[cfg(not(feature = "tiny_http"))]
            Frontend::TinyHttp => unreachable!("Config::validate refuses a missing front end"),
        };
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let signals = if self.signals {
            Some(SignalWatch::install()?)
        } else {
            None
        };
        Ok(Server {
            app: Rc::new(app),
            listener,
            local_addr,
            stop_tx,
            closed_rx,
            control: ShutdownHandle {
                state: Arc::new(AtomicU8::new(RUNNING)),
                wake: wake_tx,
            },
            wake_rx,
            signals,
        })
    }

    /// Builds the server on a new thread and runs it there; returns once it is listening.
    ///
    /// The router is made on the server's thread by `make_router`, so its handlers may hold
    /// `!Send` state. Dropping the returned handle stops the server at once; call
    /// [`ServerHandle::shutdown`] for a graceful stop.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadyloop::{Router, Server};
    ///
    /// let server = Server::builder()
    ///     .addr("127.0.0.1:0")
    ///     .spawn(|| Router::new().get("/healthz", |_req| async { "ok" }))?;
    /// let addr = server.local_addr();
    /// # use std::io::{Read, Write};
    /// # let mut s = std::net::TcpStream::connect(addr)?;
    /// # s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    /// # let mut text = String::new();
    /// # s.read_to_string(&mut text)?;
    /// # assert!(text.ends_with("ok"));
    /// server.shutdown()?;
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Whatever [`ServerBuilder::build`] returns, or [`Error::Io`] if the thread cannot start.
    pub fn spawn<F>(self, make_router: F) -> Result<ServerHandle>
    where
        F: FnOnce() -> Router + Send + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("steadyloop".into())
            .spawn(move || {
                let server = match self.build(make_router()) {
                    Ok(server) => server,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return Ok(());
                    }
                };
                let ready = (
                    server.local_addr(),
                    server.shutdown_handle(),
                    server.app.frontend_healthy.clone(),
                );
                let _ = ready_tx.send(Ok(ready));
                server.run()
            })?;
        match ready_rx.recv() {
            Ok(Ok((addr, control, frontend_healthy))) => Ok(ServerHandle {
                addr,
                control,
                frontend_healthy,
                thread: Some(thread),
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => Err(Error::HandlerPanicked(join_panic(thread))),
        }
    }
}

/// Resolves `addr` to the first socket address it names.
fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| Error::Config(format!("address {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("address {addr:?} resolves to nothing")))
}

/// Waits for a thread that failed before reporting, and returns its panic message.
fn join_panic(thread: thread::JoinHandle<Result<()>>) -> String {
    match thread.join() {
        Err(payload) => crate::offload::panic_message(payload.as_ref()),
        Ok(_) => "server thread ended before it was ready".to_string(),
    }
}

/// A bound HTTP server, ready to run its event loop.
///
/// [`Server::run`] turns the current thread into the loop; [`Server::serve`] is the same as a
/// future, for programs that already drive a single-threaded executor. A `Server` is `!Send`:
/// its handlers may hold `!Send` state and must stay on the loop's thread.
pub struct Server {
    /// The application, shared by the loop's tasks.
    app: Rc<App>,
    /// The listening side of the front end.
    listener: Listener,
    /// The bound address.
    local_addr: SocketAddr,
    /// Closed when a graceful shutdown begins (connections watch the other end).
    stop_tx: async_channel::Sender<()>,
    /// Receives a message when a connection closes.
    closed_rx: async_channel::Receiver<()>,
    /// The shutdown control shared with handles.
    control: ShutdownHandle,
    /// Woken when a handle asks for shutdown.
    wake_rx: async_channel::Receiver<()>,
    /// SIGTERM/SIGINT handlers, when [`ServerBuilder::handle_signals`] asked for them.
    signals: Option<SignalWatch>,
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
enum Listener {
    /// The native front end's listening socket, accepted from on the loop.
    Native(Async<TcpListener>),
    /// The tiny_http front end, already accepting on its own threads.
    #[cfg(feature = "tiny_http")]
    Tiny(crate::http::tiny::Bridge),
}

/// The server is running.
const RUNNING: u8 = 0;
/// A graceful shutdown was asked for.
const GRACEFUL: u8 = 1;
/// An immediate stop was asked for.
const NOW: u8 = 2;

/// Stops a running [`Server`] from any thread; cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    /// `RUNNING`, `GRACEFUL` or `NOW`; only ever increases.
    state: Arc<AtomicU8>,
    /// Wakes the loop to look at `state`.
    wake: async_channel::Sender<()>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown: stop accepting, close idle connections, let in-flight
    /// requests (and their pool jobs) finish within the drain timeout, then return from
    /// [`Server::run`]. Calling it again has no further effect.
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

/// A server running on its own thread, made by [`ServerBuilder::spawn`].
///
/// Dropping it stops the server at once and waits for its thread.
pub struct ServerHandle {
    /// The bound address.
    addr: SocketAddr,
    /// Stops the server.
    control: ShutdownHandle,
    /// The front end's health flag (see [`Server::is_frontend_healthy`]).
    frontend_healthy: Arc<AtomicBool>,
    /// The loop's thread; `None` once joined.
    thread: Option<thread::JoinHandle<Result<()>>>,
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
    /// [`Server::is_frontend_healthy`].
    pub fn is_frontend_healthy(&self) -> bool {
        self.frontend_healthy.load(Ordering::Acquire)
    }

    /// Shuts the server down gracefully and waits for its thread.
    ///
    /// # Errors
    ///
    /// Returns the server's error, or [`Error::HandlerPanicked`] if its thread panicked.
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
                Err(Error::HandlerPanicked(crate::offload::panic_message(
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
