//! `ServerBuilder`: the settings, pool classes and signal handling a server is built with.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread;

use async_executor::LocalExecutor;

use super::{Listener, Server, ServerHandle, ShutdownHandle};
use crate::activation;
use crate::config::{ClassConfig, Config, Frontend};
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::router::{Dispatcher, Router};
use crate::server::signal::SignalWatch;
use crate::server::state::ServerState;
use crate::task::LoopContext;
use crate::testing::TestClient;

/// Configures and builds a [`Server`].
///
/// Every setting of [`SETTINGS`](crate::SETTINGS) has a setter named after it (`-` as `_`) that
/// states its default; the settings table in `src/config/mod.rs` generates them.
/// [`ServerBuilder::config`] sets them all at once.
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
    /// The settings; the generated setters (`src/config/table.rs`) write to it.
    pub(crate) config: Config,
    /// Declared pool classes besides the default one.
    classes: Vec<(String, ClassConfig)>,
    /// Whether SIGTERM and SIGINT stop the server.
    signals: bool,
    /// Tasks started on the loop of every server built.
    tasks: Vec<TaskFactory>,
}

/// A named task for [`ServerBuilder::task`]: makes the task's future on the loop's thread.
#[derive(Clone)]
struct TaskFactory {
    /// The task's name.
    name: String,
    /// Makes the future.
    make: Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>,
}

impl fmt::Debug for TaskFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFactory")
            .field("name", &self.name)
            .finish()
    }
}

impl ServerBuilder {
    /// Replaces every setting in [`SETTINGS`](crate::SETTINGS) with `config`'s, including the
    /// default pool class ([`Config::pool`]); what setters set before is overwritten, setters
    /// called after change `config`'s values.
    ///
    /// It does not replace the pool classes declared with [`ServerBuilder::class`] nor
    /// [`ServerBuilder::handle_signals`], whether set before or after: those are not settings
    /// (a class is a named group of limits, signal handling a choice about the whole process)
    /// and have no text form in the environment or on the command line.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadyloop::{Config, Router, Server};
    ///
    /// let mut config = Config::default();
    /// config.apply_vars([("STEADYLOOP_MAX_HEADERS", "50")])?;
    /// let app = Router::new().get("/", |_req| async { "hi" });
    /// let server = Server::builder().config(config).addr("127.0.0.1:0").build(app)?;
    /// # drop(server);
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    pub fn config(mut self, config: Config) -> ServerBuilder {
        self.config = config;
        self
    }

    /// Declares pool class `name` with its own workers, queue and queue deadline; routes join it
    /// with [`Router::class`]. Classes do not share workers or queues, so a flood of one kind of
    /// work cannot delay another. Defaults to none besides the default class.
    pub fn class(mut self, name: &str, class: ClassConfig) -> ServerBuilder {
        self.classes.push((name.to_string(), class));
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

    /// Adds a task named `name` that starts on the loop of every server this builder builds:
    /// `make` runs on the loop's thread when the server is built, so its future may hold
    /// `!Send` state. Works with [`ServerBuilder::spawn`] too, where setup code never sees the
    /// [`Server`], and with [`ServerBuilder::test_client`]. See [`spawn`](crate::spawn) for what
    /// tasks get. Defaults to none.
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
    ///     .task("cache refresher", || async {
    ///         let mut every = time::interval(Duration::from_secs(60));
    ///         let refresh = async {
    ///             loop {
    ///                 every.tick().await; // refresh the cache here
    ///             }
    ///         };
    ///         refresh.or(steadyloop::shutting_down()).await;
    ///     })
    ///     .spawn(|| Router::new().liveness("/healthz"))?;
    /// server.shutdown()?; // the task ends as the shutdown begins
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    pub fn task<F, Fut>(mut self, name: &str, make: F) -> ServerBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.tasks.push(TaskFactory {
            name: name.to_string(),
            make: Arc::new(move || Box::pin(make())),
        });
        self
    }

    /// Builds an in-process [`TestClient`] for `router` with this builder's settings, pool
    /// classes and tasks, without binding a socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadyloop::{Request, RouteOptions, Router, Server};
    ///
    /// let app = Router::new().post_with(
    ///     "/upload",
    ///     RouteOptions::new().body_limit(4),
    ///     |req: Request| async move { format!("{}\n", req.body().len()) },
    /// );
    /// let client = Server::builder().max_body_bytes(2).test_client(app)?;
    /// assert_eq!(client.post("/upload", "abcd").status(), 200);
    /// assert_eq!(client.post("/upload", "abcde").status(), 413);
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings or undeclared pool classes.
    pub fn test_client(self, router: Router) -> Result<TestClient> {
        let ex = Rc::new(LocalExecutor::new());
        let labels = router.routes().iter().map(|r| r.label.clone()).collect();
        // No notifier: a test client is not a service a supervisor watches.
        let state = ServerState::new(self.config, self.classes, labels, Rc::downgrade(&ex), None)?;
        let state = Rc::new(state);
        let dispatcher = Rc::new(Dispatcher::new(router, state.clone())?);
        let context = LoopContext::new(state);
        start_tasks(&self.tasks, &context);
        Ok(TestClient::new_parts(ex, dispatcher, context))
    }

    /// Binds the listening socket (or takes the one systemd passed, for the address `systemd`
    /// or `systemd:NAME`) and builds the server for `router`.
    ///
    /// When `NOTIFY_SOCKET` is set, the server speaks systemd's notify protocol (`READY=1`,
    /// status lines, `STOPPING=1`, watchdog pings from the loop); the protocol's variables
    /// (and the socket-activation ones) are removed from the environment, so child processes
    /// never see them.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings, undeclared pool classes, or an address `systemd`
    /// without a usable passed socket; [`Error::Io`] if the address does not resolve or cannot
    /// be bound, the notify socket cannot be used, or the signal handlers cannot be installed.
    pub fn build(self, router: Router) -> Result<Server> {
        // The loop runs on this thread (a `Server` is `!Send`): its reactor is made here.
        crate::rt::prepare();
        let listener = if activation::is_activation_addr(&self.config.addr) {
            if self.config.frontend != Frontend::Native {
                return Err(Error::Config(format!(
                    "address {:?}: socket activation needs the native front end",
                    self.config.addr
                )));
            }
            activation::take_listener(&self.config.addr)?
        } else {
            TcpListener::bind(resolve(&self.config.addr)?)?
        };
        let local_addr = listener.local_addr()?;
        let notifier = Notifier::from_env()?.map(Arc::new);
        let ex = Rc::new(LocalExecutor::new());
        let labels = router.routes().iter().map(|r| r.label.clone()).collect();
        let state = ServerState::new(
            self.config,
            self.classes,
            labels,
            Rc::downgrade(&ex),
            notifier,
        )?;
        let state = Rc::new(state);
        let dispatcher = Rc::new(Dispatcher::new(router, state.clone())?);
        let listener = match state.config().frontend {
            Frontend::Native => Listener::Native(crate::rt::TcpListener::new(listener)?),
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
        let context = LoopContext::new(state.clone());
        start_tasks(&self.tasks, &context);
        Ok(Server {
            context,
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

/// Spawns the builder's tasks on the loop of `context` (they run once the loop does).
fn start_tasks(tasks: &[TaskFactory], context: &Rc<LoopContext>) {
    for task in tasks {
        // The factory may call `shutting_down()` or `spawn` before its future exists.
        let future = context.enter(|| (task.make)());
        let _detached = context.spawn(&task.name, future);
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
