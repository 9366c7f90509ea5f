//! Tasks of the application's own on the server's loop: [`spawn`], [`JoinHandle`] and
//! [`shutting_down`].
//!
//! While a server's loop polls anything (a connection, a handler, a task), a thread-local points
//! at that loop's [`LoopContext`], so `spawn` and `shutting_down` find the right loop without a
//! handle being passed around, even with several servers on one thread. Spawned tasks are
//! measured by the loop monitor like connections are: a task that holds the loop past the stall
//! threshold is logged with its name and counted under `task NAME` in the stall metrics.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::FutureExt;

use crate::error::{Error, Result};
use crate::server::state::ServerState;

thread_local! {
    /// The context of the loop being polled on this thread, if any.
    static CURRENT: RefCell<Option<Rc<LoopContext>>> = const { RefCell::new(None) };
}

/// What code running on a server's loop can reach: the server's state (its executor, monitor
/// and shutdown signal) and the application's own tasks.
pub(crate) struct LoopContext {
    /// The server's state; it holds the executor weakly, so tasks do not keep the loop alive.
    state: Rc<ServerState>,
    /// Tasks spawned through this context that have not ended.
    live: Cell<usize>,
    /// Running tasks by name, for the drain's log line.
    names: RefCell<HashMap<Rc<str>, usize>>,
    /// Gets a message whenever a task ends, so the drain can wait for the last one.
    ended_tx: async_channel::Sender<()>,
    /// The other end of `ended_tx`.
    ended_rx: async_channel::Receiver<()>,
}

impl LoopContext {
    /// Creates the context of the loop of the server with `state`.
    pub(crate) fn new(state: Rc<ServerState>) -> Rc<LoopContext> {
        let (ended_tx, ended_rx) = async_channel::bounded(1);
        Rc::new(LoopContext {
            state,
            live: Cell::new(0),
            names: RefCell::new(HashMap::new()),
            ended_tx,
            ended_rx,
        })
    }

    /// Spawns `future` as task `name` on this loop.
    pub(crate) fn spawn<F>(self: &Rc<Self>, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let name: Rc<str> = name.into();
        let guard = LiveTask::new(self.clone(), name.clone());
        let slot = self.state.monitor().task_slot(&name);
        let body = async move {
            let _guard = guard;
            let outcome = AssertUnwindSafe(future).catch_unwind().await;
            outcome.map_err(|payload| {
                let message = crate::pool::panic_message(payload.as_ref());
                log::error!("task {name} panicked: {message}");
                Error::HandlerPanicked(message)
            })
        };
        let labelled = Labelled {
            state: self.state.clone(),
            slot,
            inner: Box::pin(body),
        };
        // `None` once the loop is gone: the future (and its guard) is dropped, and the handle
        // resolves to `Cancelled`.
        let task = self.state.spawn(InContext::new(self.clone(), labelled));
        JoinHandle {
            task: task.map(|task| task.fallible()),
        }
    }

    /// Runs `f` with this loop's context installed, so `spawn` and `shutting_down` called from
    /// code that builds a future (before the loop polls it) find the loop.
    pub(crate) fn enter<R>(self: &Rc<Self>, f: impl FnOnce() -> R) -> R {
        let _restore = Restore::install(self.clone());
        f()
    }

    /// Returns the number of spawned tasks still running.
    pub(crate) fn live_tasks(&self) -> usize {
        self.live.get()
    }

    /// Returns the names of the running tasks, for a log line.
    pub(crate) fn running_names(&self) -> String {
        let names = self.names.borrow();
        let mut list: Vec<String> = names
            .iter()
            .map(|(name, &count)| match count {
                1 => name.to_string(),
                n => format!("{name} (x{n})"),
            })
            .collect();
        list.sort();
        list.join(", ")
    }

    /// Resolves once no spawned task is running.
    pub(crate) async fn all_ended(&self) {
        while self.live.get() > 0 {
            let _ = self.ended_rx.recv().await;
        }
    }

    /// Returns the context of the loop being polled on this thread.
    pub(crate) fn current() -> Option<Rc<LoopContext>> {
        CURRENT.with(|current| current.borrow().clone())
    }
}

impl fmt::Debug for LoopContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopContext")
            .field("live_tasks", &self.live.get())
            .finish()
    }
}

/// Counts a task as running until dropped (when it ends or is dropped at shutdown).
struct LiveTask {
    /// The loop the task runs on.
    context: Rc<LoopContext>,
    /// The task's name.
    name: Rc<str>,
}

impl LiveTask {
    /// Counts task `name` as running.
    fn new(context: Rc<LoopContext>, name: Rc<str>) -> LiveTask {
        context.live.set(context.live.get() + 1);
        *context.names.borrow_mut().entry(name.clone()).or_insert(0) += 1;
        LiveTask { context, name }
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        let context = &self.context;
        context.live.set(context.live.get() - 1);
        let mut names = context.names.borrow_mut();
        if let Some(count) = names.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                names.remove(&self.name);
            }
        }
        let _ = context.ended_tx.try_send(());
    }
}

/// A future polled with its loop's context installed in the thread-local.
pub(crate) struct InContext<F> {
    /// The loop's context.
    context: Rc<LoopContext>,
    /// The future.
    inner: Pin<Box<F>>,
}

impl<F: Future> InContext<F> {
    /// Wraps `inner` so that it runs in `context`.
    pub(crate) fn new(context: Rc<LoopContext>, inner: F) -> InContext<F> {
        InContext {
            context,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for InContext<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _restore = Restore::install(self.context.clone());
        self.inner.as_mut().poll(cx)
    }
}

/// Installs a loop context in the thread-local and puts the previous one back when dropped,
/// even if the code in between panics (a caught panic must not leave this loop's context
/// installed for code that runs after it).
struct Restore(Option<Rc<LoopContext>>);

impl Restore {
    /// Installs `context` until the returned guard is dropped.
    fn install(context: Rc<LoopContext>) -> Restore {
        Restore(CURRENT.with(|current| current.replace(Some(context))))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// A task's future, telling the monitor which task is being polled.
struct Labelled<F> {
    /// The server state whose monitor is told.
    state: Rc<ServerState>,
    /// The task's label slot in the monitor.
    slot: usize,
    /// The task's future.
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Labelled<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.state.monitor().enter_slot(self.slot);
        self.inner.as_mut().poll(cx)
    }
}

/// Spawns `future` as a task named `name` on the server's loop and returns its handle.
///
/// Call it from code the loop runs: handlers, layers, other tasks, or futures started with
/// [`Server::spawn`](crate::Server::spawn) and [`ServerBuilder::task`](crate::ServerBuilder::task).
/// The task runs next to the handlers and may hold `!Send` state. It is measured by the stall
/// detector: holding the loop past the stall threshold is logged with `name` and counted under
/// `task NAME`. At a graceful shutdown the server waits for spawned tasks as for connections,
/// until the drain deadline, then drops them: end a long-lived task when [`shutting_down`]
/// resolves. A panic in the task is logged and ends only that task.
///
/// Dropping the handle lets the task run on (it is detached); await the handle for its output.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures_lite::FutureExt;
/// use steadyloop::{time, Router};
///
/// let app = Router::new().post("/refresh", |_req| async {
///     steadyloop::spawn("cache refresh", async {
///         // Runs after the response has gone; stops early if the server shuts down.
///         let refresh = async {
///             time::sleep(Duration::from_millis(50)).await;
///         };
///         refresh.or(steadyloop::shutting_down()).await;
///     });
///     "refreshing\n"
/// });
/// # let client = steadyloop::TestClient::new(app);
/// # assert_eq!(client.post("/refresh", "").status(), 200);
/// ```
///
/// # Panics
///
/// Panics when called on a thread that is not running a server's loop (a programming error).
pub fn spawn<F>(name: &str, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let context = LoopContext::current()
        .expect("steadyloop::spawn called outside a server's loop; use Server::spawn before run()");
    context.spawn(name, future)
}

/// Resolves once the server whose loop runs this code begins to shut down (at once if it has).
///
/// It waits without waking the loop in between, so an idle server stays idle. Use it to end
/// spawned tasks: `work.or(steadyloop::shutting_down())`.
///
/// # Panics
///
/// Panics when called on a thread that is not running a server's loop.
pub fn shutting_down() -> impl Future<Output = ()> + 'static {
    let context =
        LoopContext::current().expect("steadyloop::shutting_down called outside a server's loop");
    context.state.stopped()
}

/// The handle of a task started with [`spawn`]; await it for the task's output.
///
/// Resolves to `Err(Error::Cancelled)` if the task was dropped before it finished (shutdown), or
/// `Err(Error::HandlerPanicked)` if it panicked. Dropping the handle detaches the task; call
/// [`JoinHandle::cancel`] to stop it.
pub struct JoinHandle<T> {
    /// The executor's task; `None` if the loop was gone before the task could start.
    task: Option<async_executor::FallibleTask<Result<T>>>,
}

impl<T> JoinHandle<T> {
    /// Stops the task (dropping its future) and waits until it is stopped; returns its output
    /// if it had finished already.
    pub async fn cancel(mut self) -> Option<T> {
        let task = self.task.take()?;
        task.cancel().await.and_then(|outcome| outcome.ok())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match self.task.as_mut() {
            None => Poll::Ready(Err(Error::Cancelled)),
            Some(task) => match Pin::new(task).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(Err(Error::Cancelled)),
                Poll::Ready(Some(outcome)) => Poll::Ready(outcome),
            },
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.task.as_ref().map(|t| t.is_finished()))
            .finish()
    }
}
