//! `ServerBuilder`: the settings, pool classes and signal handling a server is built with.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::Async;

use super::{Listener, Server, ServerHandle, ShutdownHandle};
use crate::config::{ClassConfig, Config, Frontend};
use crate::error::{Error, Result};
use crate::router::{Dispatcher, Router};
use crate::server::signal::SignalWatch;
use crate::server::state::ServerState;

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
        let ex = Rc::new(LocalExecutor::new());
        let labels = router.routes().iter().map(|r| r.label.clone()).collect();
        let state = ServerState::new(self.config, self.classes, labels, Rc::downgrade(&ex))?;
        let state = Rc::new(state);
        let dispatcher = Rc::new(Dispatcher::new(router, state.clone())?);
        let listener = match state.config().frontend {
            Frontend::Native => Listener::Native(Async::new(listener)?),
            #[cfg(feature = "tiny_http")]
            Frontend::TinyHttp => Listener::Tiny(crate::http::tiny::Bridge::start(
                listener,
                state.config(),
                state.frontend_health(),
            )?),
            #[cfg(not(feature = "tiny_http"))]
            Frontend::TinyHttp => unreachable!("Config::validate refuses a missing front end"),
        };
        let signals = if self.signals {
            Some(SignalWatch::install()?)
        } else {
            None
        };
        let (control, requests) = ShutdownHandle::new();
        Ok(Server {
            ex,
            state,
            dispatcher,
            listener,
            local_addr,
            control,
            requests,
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
    /// Whatever [`ServerBuilder::build`] returns, [`Error::Io`] if the thread cannot start, or
    /// [`Error::ServerThread`] if it ends before the server is ready.
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
                    server.state.frontend_health(),
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
            Err(_) => Err(Error::ServerThread(join_panic(thread))),
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
        Err(payload) => crate::error::panic_message(payload.as_ref()),
        Ok(_) => "server thread ended before it was ready".to_string(),
    }
}
