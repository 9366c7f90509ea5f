//! What the server keeps while it runs, apart from the application: the settings, the pool
//! classes, connection counters, the request-body budget, front-end health, the drain and stop
//! signals for connections, the supervisor's notify socket, the loop monitor and request
//! counters, and the one way to spawn a loop task.
//!
//! It lives on the loop (`Rc`, plain cells): front ends, routing and the probes read and update
//! it through methods, never through its fields.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;

use crate::config::{ClassConfig, Config};
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::observe::metrics::RequestMetrics;
use crate::observe::monitor::{Instrumented, Monitor};
use crate::pool::ClassHandle;
#[cfg(feature = "tiny_http")]
use crate::response::Response;

/// Why a request is refused (503) when other requests' bodies use up `max-body-memory`.
pub(crate) const BODY_MEMORY_FULL: &str = "too many request bodies in memory; retry later";

/// The server's own state, shared by the loop's tasks.
pub(crate) struct ServerState {
    /// The settings.
    config: Config,
    /// Every pool class, the default one first.
    classes: Vec<ClassHandle>,
    /// The loop's executor, held weakly: its tasks hold this state.
    ex: Weak<LocalExecutor<'static>>,
    /// Set when a graceful shutdown begins: readiness fails and every response closes its
    /// connection, while accepting goes on for the drain delay.
    draining: Cell<bool>,
    /// Fired when the server stops accepting (after the drain delay); connections wait on it
    /// while idle.
    stopping: crate::rt::Signal,
    /// Closed together with `stopping` fires, for threads that wait on it (tiny_http's writers
    /// of event streams); the sender is kept so it closes only then.
    #[cfg(feature = "tiny_http")]
    stop_notice: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// Gets a message whenever a connection closes, so a drain can wait for the last one.
    closed_tx: async_channel::Sender<()>,
    /// Receives those messages.
    closed_rx: async_channel::Receiver<()>,
    /// Open connections (tiny_http: requests in flight).
    connections: Cell<usize>,
    /// Connections refused because the cap was reached.
    refused: Cell<u64>,
    /// Accept errors that made the accept loop back off.
    accept_errors: Cell<u64>,
    /// Bytes of request bodies held by requests in progress, across connections.
    body_memory: Cell<usize>,
    /// Cleared when the front end can no longer accept connections (a dead tiny_http accept
    /// thread); shared with the front end's threads and the server's handle.
    frontend_healthy: Arc<AtomicBool>,
    /// Loop lag and stall detection.
    monitor: Arc<Monitor>,
    /// Request counters and latencies.
    requests: RequestMetrics,
    /// The supervisor's notify socket (`NOTIFY_SOCKET`), when there is one.
    notifier: Option<Arc<Notifier>>,
    /// When the server was built.
    started: Instant,
}

impl ServerState {
    /// Checks the settings, declares the pool classes, and starts the loop monitor for routes
    /// labelled `route_labels` (by route id); tasks are spawned on `ex`, and the supervisor is
    /// told about the server through `notifier`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] for invalid settings or a class declared twice.
    pub(crate) fn new(
        config: Config,
        declared: Vec<(String, ClassConfig)>,
        route_labels: Vec<String>,
        ex: Weak<LocalExecutor<'static>>,
        notifier: Option<Arc<Notifier>>,
    ) -> Result<ServerState> {
        config.validate()?;
        let classes = declare_classes(&config, declared)?;
        let requests = RequestMetrics::new(route_labels.len());
        let monitor = Monitor::start(
            route_labels,
            config.stall_threshold,
            config.loop_monitor,
            notifier.clone(),
        );
        let (closed_tx, closed_rx) = async_channel::bounded(1);
        Ok(ServerState {
            config,
            classes,
            ex,
            draining: Cell::new(false),
            stopping: crate::rt::Signal::default(),
            #[cfg(feature = "tiny_http")]
            stop_notice: async_channel::bounded(1),
            closed_tx,
            closed_rx,
            connections: Cell::new(0),
            refused: Cell::new(0),
            accept_errors: Cell::new(0),
            body_memory: Cell::new(0),
            frontend_healthy: Arc::new(AtomicBool::new(true)),
            monitor,
            requests,
            notifier,
            started: Instant::now(),
        })
    }

    /// Returns the settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Returns every pool class, the default one first.
    pub(crate) fn classes(&self) -> &[ClassHandle] {
        &self.classes
    }

    /// Returns the pool class called `name` (`None`: the default class), if it is declared.
    pub(crate) fn class(&self, name: Option<&str>) -> Option<ClassHandle> {
        let name = name.unwrap_or("default");
        self.classes.iter().find(|c| c.name() == name).cloned()
    }

    /// Returns the loop monitor.
    pub(crate) fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Returns the request counters.
    pub(crate) fn requests(&self) -> &RequestMetrics {
        &self.requests
    }

    /// Returns the supervisor's notify socket, when the server was started with one.
    pub(crate) fn notifier(&self) -> Option<&Arc<Notifier>> {
        self.notifier.as_ref()
    }

    /// Returns how long ago the server was built.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Spawns `future` as a task of the loop, measured by the loop monitor.
    ///
    /// Returns `None` once the server has stopped (its executor is gone); `future` is dropped.
    pub(crate) fn spawn<T: 'static>(
        &self,
        future: impl Future<Output = T> + 'static,
    ) -> Option<async_executor::Task<T>> {
        let ex = self.ex.upgrade()?;
        Some(ex.spawn(Instrumented::new(self.monitor.clone(), future)))
    }

    /// Counts a request the front end refused before routing it (malformed, too large, slow).
    pub(crate) fn record_rejected(&self, status: u16) {
        self.requests.record_rejected(status);
    }

    /// Returns the number of open connections (tiny_http: requests in flight).
    pub(crate) fn connections(&self) -> usize {
        self.connections.get()
    }

    /// Returns the number of connections refused at the cap.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Returns the number of accept errors the accept loop backed off from.
    pub(crate) fn accept_errors(&self) -> u64 {
        self.accept_errors.get()
    }

    /// Counts a new connection; the guard uncounts it.
    pub(crate) fn open_connection(self: &Rc<Self>) -> ConnGuard {
        self.connections.set(self.connections.get() + 1);
        ConnGuard {
            state: self.clone(),
        }
    }

    /// Counts a new connection if there is room under `max-connections`; otherwise counts it
    /// as refused and returns `None`.
    pub(crate) fn try_open_connection(self: &Rc<Self>) -> Option<ConnGuard> {
        if self.connections.get() >= self.config.max_connections {
            self.refused.set(self.refused.get() + 1);
            return None;
        }
        Some(self.open_connection())
    }

    /// Counts an accept error that made the accept loop back off.
    pub(crate) fn count_accept_error(&self) {
        self.accept_errors.set(self.accept_errors.get() + 1);
    }

    /// Waits until every connection has closed.
    pub(crate) async fn all_closed(&self) {
        while self.connections.get() > 0 {
            let _ = self.closed_rx.recv().await;
        }
    }

    /// Starts a request's (empty) share of the server-wide body memory.
    pub(crate) fn body_memory(self: &Rc<Self>) -> BodyMemory {
        BodyMemory {
            state: self.clone(),
            bytes: 0,
        }
    }

    /// Returns `false` once the front end can no longer accept connections (for `/readyz`).
    pub(crate) fn is_frontend_healthy(&self) -> bool {
        self.frontend_healthy.load(Ordering::Acquire)
    }

    /// Returns the front end's health flag, for the threads and handles that clear or read it.
    pub(crate) fn frontend_health(&self) -> Arc<AtomicBool> {
        self.frontend_healthy.clone()
    }

    /// Returns a receiver that is closed once the server stops accepting, for threads that
    /// wait on it (tiny_http's writers of event streams).
    #[cfg(feature = "tiny_http")]
    pub(crate) fn stopping_signal(&self) -> async_channel::Receiver<()> {
        self.stop_notice.1.clone()
    }

    /// Returns the signal that fires once the server stops accepting, for loop code that
    /// waits on it many times over (WebSocket sessions).
    #[cfg(feature = "websocket")]
    pub(crate) fn stopping(&self) -> crate::rt::Signal {
        self.stopping.clone()
    }

    /// Begins a graceful shutdown's first phase: readiness fails and every response closes
    /// its connection ([`ServerState::is_draining`]), while the server still accepts.
    pub(crate) fn begin_draining(&self) {
        self.draining.set(true);
    }

    /// Returns `true` once a graceful shutdown has begun, even while the drain delay keeps
    /// accepting: responses close their connections and readiness fails.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.get() || self.is_stopping()
    }

    /// Stops accepting (after the drain delay): connections and accept loops see
    /// [`ServerState::is_stopping`] and their [`ServerState::stopped`] futures complete.
    pub(crate) fn begin_stopping(&self) {
        self.draining.set(true);
        self.stopping.fire();
        #[cfg(feature = "tiny_http")]
        self.stop_notice.0.close();
    }

    /// Returns `true` once the server has stopped accepting.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.is_fired()
    }

    /// Returns a future that completes when a graceful shutdown begins; it holds no borrow of
    /// the state, so it can race a read of the same connection, and it can be awaited again and
    /// again (a connection keeps one for its whole life).
    pub(crate) fn stopped(&self) -> crate::rt::Wait {
        self.stopping.wait()
    }

    /// Stops every pool class: idle workers leave, running jobs finish.
    pub(crate) fn close_pools(&self) {
        // The file I/O class is shared by every server in the process; it stays open.
        for class in self
            .classes
            .iter()
            .filter(|c| c.name() != crate::files::IO_CLASS)
        {
            class.close();
        }
    }
}

impl Drop for ServerState {
    fn drop(&mut self) {
        self.monitor.stop();
    }
}

impl fmt::Debug for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerState")
            .field("connections", &self.connections.get())
            .field("body_memory", &self.body_memory.get())
            .field("draining", &self.draining.get())
            .field("stopping", &self.is_stopping())
            .finish_non_exhaustive()
    }
}

/// Creates the default pool class from `config` and one class per declared one.
fn declare_classes(
    config: &Config,
    declared: Vec<(String, ClassConfig)>,
) -> Result<Vec<ClassHandle>> {
    let low_priority = config.low_priority_workers;
    let mut classes = vec![ClassHandle::new(
        "default",
        config.pool.clone(),
        low_priority,
    )];
    for (name, class_config) in declared {
        class_config.validate(&name)?;
        if classes.iter().any(|c| c.name() == name) {
            return Err(Error::Config(format!(
                "pool class `{name}` is declared twice"
            )));
        }
        if name == crate::files::IO_CLASS {
            return Err(Error::Config(format!(
                "pool class `{name}` is the server's own class for file I/O; pick another name"
            )));
        }
        classes.push(ClassHandle::new(&name, class_config, low_priority));
    }
    // The process-wide file I/O class, so /metrics and readiness see it too.
    classes.push(crate::files::io_class());
    Ok(classes)
}

/// One request's share of the server-wide body memory; released when dropped.
pub(crate) struct BodyMemory {
    /// The server whose budget this is.
    state: Rc<ServerState>,
    /// Bytes held.
    bytes: usize,
}

impl BodyMemory {
    /// Grows the share to `bytes`; `false` (and no change) if the budget cannot cover it.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let in_use = self.state.body_memory.get();
        let more = bytes - self.bytes;
        if in_use.saturating_add(more) > self.state.config.max_body_memory {
            return false;
        }
        self.state.body_memory.set(in_use + more);
        self.bytes = bytes;
        true
    }

    /// The 503 answer to a request whose body the budget cannot cover (see
    /// [`BODY_MEMORY_FULL`]); the native front end sends the same with its own error writer.
    #[cfg(feature = "tiny_http")]
    pub(crate) fn full_response() -> Response {
        Response::unavailable(Duration::from_secs(1), BODY_MEMORY_FULL)
    }
}

impl Drop for BodyMemory {
    fn drop(&mut self) {
        let in_use = self.state.body_memory.get();
        self.state.body_memory.set(in_use - self.bytes);
    }
}

impl fmt::Debug for BodyMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyMemory")
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// Counts a connection as open until dropped.
pub(crate) struct ConnGuard {
    /// The server whose count this is.
    state: Rc<ServerState>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let open = self.state.connections.get();
        self.state.connections.set(open - 1);
        let _ = self.state.closed_tx.try_send(());
    }
}

impl fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnGuard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with `max_connections` and `max_body_memory` set, on a fresh executor.
    fn state(
        max_connections: usize,
        max_body_memory: usize,
    ) -> (Rc<ServerState>, Rc<LocalExecutor<'static>>) {
        let ex = Rc::new(LocalExecutor::new());
        let config = Config {
            max_connections,
            max_body_memory,
            ..Config::default()
        };
        let state = ServerState::new(config, Vec::new(), Vec::new(), Rc::downgrade(&ex), None)
            .expect("valid settings");
        (Rc::new(state), ex)
    }

    #[test]
    fn body_memory_is_shared_and_released_on_drop() {
        let (state, _ex) = state(10, 100);
        let mut first = state.body_memory();
        assert!(first.grow(60));
        let mut second = state.body_memory();
        assert!(
            !second.grow(41),
            "over the budget with the first share held"
        );
        assert!(second.grow(40));
        drop(first);
        assert!(second.grow(100));
    }

    #[test]
    fn connections_over_the_cap_are_refused_and_counted() {
        let (state, _ex) = state(1, 100);
        let open = state.try_open_connection().expect("room for one");
        assert!(state.try_open_connection().is_none());
        assert_eq!((state.connections(), state.refused()), (1, 1));
        drop(open);
        assert_eq!(state.connections(), 0);
    }

    #[test]
    fn spawn_needs_the_executor() {
        let (state, ex) = state(1, 100);
        assert!(state.spawn(async {}).is_some());
        drop(ex);
        assert!(state.spawn(async {}).is_none());
    }

    #[test]
    fn a_class_declared_twice_is_refused() {
        let ex = Rc::new(LocalExecutor::new());
        let declared = vec![("default".to_string(), ClassConfig::default())];
        let err = ServerState::new(
            Config::default(),
            declared,
            Vec::new(),
            Rc::downgrade(&ex),
            None,
        )
        .expect_err("default is declared already");
        assert!(err.to_string().contains("declared twice"), "{err}");
    }
}
