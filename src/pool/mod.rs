//! The CPU pool: admission control, bounded queues, deadlines and cancellation on top of
//! `blocking`.
//!
//! Each pool class has at most `workers` jobs running and at most `queue` waiting. Workers are
//! long-running `blocking::unblock` tasks that pull jobs from their class's queue, so CPU jobs
//! never share a thread with other `unblock` work while a worker lives, and a job's hand-off
//! costs a condvar signal rather than a new task. A worker that lowered its thread's priority
//! gives the thread back to `blocking` only if it can restore the priority; otherwise it keeps
//! the thread for good (parked in a stash that later low-priority workers reuse).

pub(crate) mod scope;

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_io::Timer;

use crate::config::ClassConfig;
use crate::error::{Error, Result};
use crate::observe::metrics::Histogram;
use crate::response::{BodySender, Response};

/// The nice value pool workers run at when low priority is on (the loop stays at its own).
pub(crate) const WORKER_NICE: i32 = 10;

/// How long an idle worker waits for a job before giving its thread back to `blocking`.
const WORKER_IDLE: Duration = Duration::from_secs(10);

/// Runs `f` on the CPU pool and returns a [`Task`] that resolves to its result.
///
/// This is `run_in_executor` / `spawn_blocking` with limits: inside a request handler the job
/// goes to the route's pool class (see [`Router::class`](crate::Router::class)); elsewhere to a
/// process-wide default class. At most `workers` jobs of a class run at once and at most `queue`
/// wait; beyond that the task resolves at once to [`Error::Overloaded`] (the server answers 503
/// with `Retry-After`). A job that waits past the queue deadline never starts
/// ([`Error::QueueTimeout`]); dropping the task before the job starts removes it from the queue;
/// a panic in `f` becomes [`Error::HandlerPanicked`].
///
/// # Examples
///
/// ```
/// use steadyloop::offload;
///
/// # futures_lite::future::block_on(async {
/// let sum = offload(|| (1..=1_000_000u64).sum::<u64>()).await?;
/// assert_eq!(sum, 500_000_500_000);
/// # Ok::<(), steadyloop::Error>(()) }).unwrap();
/// ```
pub fn offload<T, F>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    submit(current_class(), move |_token| f())
}

/// Runs `f` on the CPU pool like [`offload`], handing it a [`CancelToken`] to poll.
///
/// The token flips when the task is dropped (the client disconnected, the route's deadline
/// passed, or shutdown's drain deadline expired). A long job should check it now and then and
/// return early; its result is discarded anyway.
///
/// # Examples
///
/// ```
/// use steadyloop::offload_cancellable;
///
/// # futures_lite::future::block_on(async {
/// let rows = offload_cancellable(|token| {
///     let mut done = 0;
///     while done < 1000 && !token.is_cancelled() {
///         done += 1;
///     }
///     done
/// })
/// .await?;
/// assert_eq!(rows, 1000);
/// # Ok::<(), steadyloop::Error>(()) }).unwrap();
/// ```
pub fn offload_cancellable<T, F>(f: F) -> Task<T>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    submit(current_class(), f)
}

/// Runs `f` on the CPU pool to produce a streamed response body, and resolves to the response
/// once the job has started.
///
/// `f` gets a [`BodySender`] for a channel of at most `capacity` chunks and a [`CancelToken`];
/// the response is `200 OK` with a chunked body fed by the job while it runs (add headers with
/// [`Response::with_header`]). A slow client slows the job down, since `send_blocking` waits while
/// the channel is full, so memory stays bounded; when the client goes away, sends fail and the
/// token flips. Admission works as for [`offload`]: if the job is shed or expires in the queue,
/// this resolves to that error (a 503) before any byte of the response is sent.
///
/// # Examples
///
/// ```
/// use steadyloop::{offload_stream, Router};
///
/// let app = Router::new().get("/count", |_req| async {
///     let response = offload_stream(8, |body, token| {
///         for i in 0..10_000 {
///             if token.is_cancelled() || body.send_blocking(format!("{i}\n")).is_err() {
///                 return; // the client went away
///             }
///         }
///     })
///     .await?;
///     Ok(response.with_header("Content-Type", "text/plain"))
/// });
/// # let _ = app;
/// ```
pub async fn offload_stream<F>(capacity: usize, f: F) -> Result<Response>
where
    F: FnOnce(BodySender, &CancelToken) + Send + 'static,
{
    let (sender, response) = Response::channel(capacity);
    let (started_tx, started_rx) = async_channel::bounded::<()>(1);
    let mut task = submit(current_class(), move |token| {
        let _ = started_tx.try_send(());
        drop(started_tx);
        // The task is detached once the job starts, so the client leaving shows up as the
        // body channel closing rather than as the task being dropped.
        let token = token.with_body(&sender);
        f(sender, &token);
    });
    // Resolve when the job starts; a job that fails before starting resolves the task first.
    let started = async {
        let _ = started_rx.recv().await;
        None
    };
    match futures_lite::future::or(async { Some((&mut task).await) }, started).await {
        Some(Err(err)) => Err(err),
        Some(Ok(())) | None => {
            task.detach();
            Ok(response)
        }
    }
}

/// A cooperative cancellation flag handed to jobs started with [`offload_cancellable`].
#[derive(Clone, Default)]
pub struct CancelToken {
    /// Set once; never cleared.
    flag: Arc<AtomicBool>,
    /// For streaming jobs: the body channel, whose closing (client gone) also cancels.
    body: Option<BodySender>,
}

impl CancelToken {
    /// Returns `true` once the job's result is no longer wanted.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.body.as_ref().is_some_and(BodySender::is_closed)
    }

    /// Returns a token that is also cancelled when `body`'s receiver is gone.
    fn with_body(&self, body: &BodySender) -> CancelToken {
        CancelToken {
            flag: self.flag.clone(),
            body: Some(body.clone()),
        }
    }

    /// Flips the token (the server does this; it is public so job functions can be tested).
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A job submitted to the CPU pool; await it for the job's result.
///
/// Dropping a `Task` whose job has not started removes the job from the queue, so it never runs;
/// dropping it while the job runs flips the job's [`CancelToken`]. Use [`Task::detach`] to let the
/// job run without waiting for it.
#[must_use = "a dropped task cancels its job; await it or call detach()"]
pub struct Task<T> {
    /// Either an immediate failure or a submitted job.
    state: TaskState<T>,
}

/// What a [`Task`] holds.
enum TaskState<T> {
    /// Rejected at submission; the error is handed out once.
    Failed(Option<Error>),
    /// Queued or running.
    Submitted {
        /// The job's shared slot.
        job: Arc<Job<T>>,
        /// Its class, to remove it from the queue on drop or deadline.
        class: Arc<Class>,
        /// When it must have started.
        deadline: Instant,
        /// Wakes the task at the deadline; created on first poll.
        timer: Option<Timer>,
        /// Set by `detach`: the job keeps running when the task is dropped.
        detached: bool,
    },
}

/// The state shared by a task and the worker running its job.
struct Job<T> {
    /// The job's phase, result and waiting task.
    slot: Mutex<Slot<T>>,
    /// Flipped when the task is dropped.
    token: CancelToken,
    /// Queue id, to find the job in its class's queue.
    id: u64,
}

/// The mutable part of a [`Job`].
struct Slot<T> {
    /// Set once the worker took the job.
    started: bool,
    /// How long the job waited for a worker, once it started.
    waited: Duration,
    /// The outcome, once there is one.
    result: Option<Result<T>>,
    /// The task to wake when the outcome is set.
    waker: Option<Waker>,
}

impl<T> Job<T> {
    /// Stores the outcome and wakes the task.
    fn finish(&self, result: Result<T>) {
        let waker = {
            let mut slot = lock(&self.slot);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Task<T> {
    /// Lets the job run to completion without anyone waiting for its result.
    ///
    /// A detached job still counts against its class's limits; if it was shed, nothing happens.
    pub fn detach(mut self) {
        if let TaskState::Submitted { detached, .. } = &mut self.state {
            *detached = true;
        }
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // No field is structurally pinned: `Timer` and `Arc` are `Unpin`.
        let this = self.get_mut();
        let (job, class, deadline, timer) = match &mut this.state {
            TaskState::Failed(err) => {
                let err = err.take().expect("Task polled after completion");
                return Poll::Ready(Err(err));
            }
            TaskState::Submitted {
                job,
                class,
                deadline,
                timer,
                ..
            } => (job, class, *deadline, timer),
        };
        {
            let mut slot = lock(&job.slot);
            if let Some(result) = slot.result.take() {
                crate::pool::scope::add_queue_wait(slot.waited);
                return Poll::Ready(result);
            }
            slot.waker = Some(cx.waker().clone());
            if slot.started {
                return Poll::Pending;
            }
        }
        // Still queued: enforce the queue deadline here, so it holds even while every worker
        // is busy with long jobs.
        if Instant::now() >= deadline {
            if class.remove(job.id) {
                class.stats.expired.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(Err(class.queue_timeout_error()));
            }
            // A worker took it meanwhile; it will wake us.
            return Poll::Pending;
        }
        let timer = timer.get_or_insert_with(|| Timer::at(deadline));
        if Pin::new(timer).poll(cx).is_ready() {
            // The deadline passed while we registered; poll again to expire the job.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let TaskState::Submitted {
            job,
            class,
            detached,
            ..
        } = &self.state
        {
            if *detached {
                return;
            }
            if lock(&job.slot).result.is_some() {
                return;
            }
            if class.remove(job.id) {
                class.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            } else {
                job.token.cancel();
            }
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            TaskState::Failed(err) => f.debug_struct("Task").field("failed", err).finish(),
            TaskState::Submitted { job, class, .. } => f
                .debug_struct("Task")
                .field("class", &class.name)
                .field("started", &lock(&job.slot).started)
                .finish(),
        }
    }
}

/// A queued job, type-erased.
struct Queued {
    /// Matches [`Job::id`].
    id: u64,
    /// When it was queued.
    enqueued: Instant,
    /// When it must have started.
    deadline: Instant,
    /// Runs the job (`true`) or fails it as expired (`false`); either way it decrements the
    /// class's `busy` count before publishing the outcome.
    run: Box<dyn FnOnce(bool) + Send>,
}

/// Counters of one pool class, updated by the loop and the workers.
#[derive(Debug, Default)]
pub(crate) struct ClassStats {
    /// Jobs that ran to completion (including ones that panicked).
    pub(crate) completed: AtomicU64,
    /// Jobs rejected because the queue was full.
    pub(crate) shed: AtomicU64,
    /// Jobs dropped because they waited past the queue deadline.
    pub(crate) expired: AtomicU64,
    /// Jobs removed from the queue because their task was dropped.
    pub(crate) cancelled: AtomicU64,
    /// Jobs that panicked.
    pub(crate) panicked: AtomicU64,
    /// Time jobs waited for a worker.
    pub(crate) queue_wait: Histogram,
    /// Time jobs ran.
    pub(crate) run_time: Histogram,
    /// Moving average of run time in nanoseconds (0 until the first job), for `Retry-After`.
    avg_run_nanos: AtomicU64,
}

/// A pool class: its limits, queue and workers.
pub(crate) struct Class {
    /// Its name (`default` for the default class).
    pub(crate) name: String,
    /// Its limits.
    pub(crate) config: ClassConfig,
    /// Whether its workers lower their scheduling priority.
    low_priority: bool,
    /// Queue and worker bookkeeping.
    state: Mutex<ClassState>,
    /// Signals idle workers that a job (or closing) is waiting.
    wake: Condvar,
    /// Counters.
    pub(crate) stats: ClassStats,
    /// Ids for queued jobs.
    next_id: AtomicU64,
    /// Busy workers (running a job); mirrors `ClassState::running` for lock-free reads.
    busy: AtomicUsize,
}

/// The part of a [`Class`] behind its mutex.
#[derive(Default)]
struct ClassState {
    /// Jobs not yet taken by a worker, oldest first.
    queue: VecDeque<Queued>,
    /// Jobs being run.
    running: usize,
    /// Worker threads alive (running, idle, or about to look at the queue).
    workers: usize,
    /// Set when the owning server has stopped: idle workers leave.
    closed: bool,
}

impl Class {
    /// Creates a class; workers start when jobs arrive.
    pub(crate) fn new(name: &str, config: ClassConfig, low_priority: bool) -> Arc<Class> {
        Arc::new(Class {
            name: name.to_string(),
            config,
            low_priority,
            state: Mutex::new(ClassState::default()),
            wake: Condvar::new(),
            stats: ClassStats::default(),
            next_id: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        })
    }

    /// Returns the number of jobs waiting for a worker.
    pub(crate) fn queue_len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Returns the number of jobs running.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Stops the class: idle workers leave; running jobs finish.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_all();
    }

    /// Removes a queued job; returns `false` if a worker already took it.
    fn remove(&self, id: u64) -> bool {
        let mut state = lock(&self.state);
        match state.queue.iter().position(|q| q.id == id) {
            Some(index) => {
                state.queue.remove(index);
                true
            }
            None => false,
        }
    }

    /// Estimates when the class will have room, from its average run time and queue length.
    fn retry_after(&self, queued: usize) -> Duration {
        let avg = self.stats.avg_run_nanos.load(Ordering::Relaxed);
        let workers = self.config.workers.max(1) as u64;
        let nanos = avg.saturating_mul(queued as u64 + 1) / workers;
        Duration::from_nanos(nanos).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// The error for a job that expired in the queue.
    fn queue_timeout_error(&self) -> Error {
        Error::QueueTimeout {
            class: self.name.clone(),
            retry_after: self.retry_after(self.queue_len()),
        }
    }

    /// Records a finished job's run time.
    fn record_run(&self, run: Duration, panicked: bool) {
        self.stats.run_time.observe(run);
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
        if panicked {
            self.stats.panicked.fetch_add(1, Ordering::Relaxed);
        }
        // Exponential moving average with weight 1/8, good enough for a Retry-After hint.
        let nanos = u64::try_from(run.as_nanos()).unwrap_or(u64::MAX);
        let old = self.stats.avg_run_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            nanos
        } else {
            old - old / 8 + nanos / 8
        };
        self.stats.avg_run_nanos.store(new, Ordering::Relaxed);
    }

    /// The body of a worker: take jobs until idle for too long or the class closes.
    fn work(self: Arc<Class>, lowered: bool) -> WorkerExit {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                self.busy.fetch_add(1, Ordering::Relaxed);
                drop(state);
                let now = Instant::now();
                let fresh = now <= job.deadline;
                if fresh {
                    self.stats.queue_wait.observe(now - job.enqueued);
                } else {
                    self.stats.expired.fetch_add(1, Ordering::Relaxed);
                }
                // The job releases `busy` itself, before publishing its result.
                (job.run)(fresh);
                state = lock(&self.state);
                state.running -= 1;
                continue;
            }
            if state.closed {
                break;
            }
            let (guard, timeout) = self
                .wake
                .wait_timeout(state, WORKER_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            state = guard;
            // A low-priority worker keeps its thread while the class lives: handing it back
            // would leak the priority into unrelated `blocking` work.
            if timeout.timed_out() && state.queue.is_empty() && !lowered {
                break;
            }
        }
        state.workers -= 1;
        if state.closed {
            WorkerExit::Closed
        } else {
            WorkerExit::Idle
        }
    }
}

/// Why a worker left its class.
enum WorkerExit {
    /// It was idle too long.
    Idle,
    /// The class closed.
    Closed,
}

impl fmt::Debug for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Class")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("busy", &self.busy())
            .finish()
    }
}

/// Submits `f` to `class`: queues it, starts a worker if needed, or sheds it.
pub(crate) fn submit<T, F>(class: Arc<Class>, f: F) -> Task<T>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    let job = Arc::new(Job {
        slot: Mutex::new(Slot {
            started: false,
            waited: Duration::ZERO,
            result: None,
            waker: None,
        }),
        token: CancelToken::default(),
        id: class.next_id.fetch_add(1, Ordering::Relaxed),
    });
    let now = Instant::now();
    let deadline = now + class.config.queue_timeout;
    let run = {
        let job = job.clone();
        let class = class.clone();
        Box::new(move |fresh: bool| {
            if !fresh {
                class.busy.fetch_sub(1, Ordering::Relaxed);
                job.finish(Err(class.queue_timeout_error()));
                return;
            }
            let start = Instant::now();
            {
                let mut slot = lock(&job.slot);
                slot.started = true;
                slot.waited = start.saturating_duration_since(now);
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| f(&job.token)));
            class.record_run(start.elapsed(), outcome.is_err());
            // Counters first, so whoever sees the result also sees the worker free.
            class.busy.fetch_sub(1, Ordering::Relaxed);
            job.finish(outcome.map_err(|payload| {
                let message = panic_message(payload.as_ref());
                log::error!("job in pool class `{}` panicked: {message}", class.name);
                Error::HandlerPanicked(message)
            }));
        })
    };
    let spawn_worker = {
        let mut state = lock(&class.state);
        // Jobs that will start at once (free workers) do not count against the queue bound.
        let free = class.config.workers.saturating_sub(state.running);
        if state.queue.len() >= free + class.config.queue {
            let queued = state.queue.len();
            drop(state);
            class.stats.shed.fetch_add(1, Ordering::Relaxed);
            let err = Error::Overloaded {
                class: class.name.clone(),
                retry_after: class.retry_after(queued),
            };
            return Task {
                state: TaskState::Failed(Some(err)),
            };
        }
        state.queue.push_back(Queued {
            id: job.id,
            enqueued: now,
            deadline,
            run,
        });
        let spawn = state.running + state.queue.len() > state.workers
            && state.workers < class.config.workers;
        if spawn {
            state.workers += 1;
        }
        spawn
    };
    if spawn_worker {
        start_worker(class.clone());
    } else {
        class.wake.notify_one();
    }
    Task {
        state: TaskState::Submitted {
            job,
            class,
            deadline,
            timer: None,
            detached: false,
        },
    }
}

/// Threads that lowered their priority, could not restore it, and wait to serve another class.
static STASH: Mutex<Vec<mpsc::Sender<Arc<Class>>>> = Mutex::new(Vec::new());

/// Starts a worker for `class`, reusing a stashed low-priority thread when one is free.
fn start_worker(class: Arc<Class>) {
    if class.low_priority {
        let mut class = class;
        while let Some(tx) = lock(&STASH).pop() {
            match tx.send(class) {
                Ok(()) => return,
                Err(mpsc::SendError(back)) => class = back,
            }
        }
        blocking::unblock(move || worker_thread(class)).detach();
    } else {
        blocking::unblock(move || worker_thread(class)).detach();
    }
}

/// Runs workers on this `blocking` thread for as long as it is ours.
fn worker_thread(class: Arc<Class>) {
    let original = if class.low_priority {
        lower_priority()
    } else {
        None
    };
    let lowered = original.is_some();
    let mut class = class;
    loop {
        let exit = class.clone().work(lowered);
        let Some(original) = original else {
            return;
        };
        if matches!(exit, WorkerExit::Idle) || restore_priority(original) {
            return;
        }
        // The priority cannot be raised back: keep the thread and wait for another class.
        let (tx, rx) = mpsc::channel();
        lock(&STASH).push(tx);
        match rx.recv() {
            Ok(next) => class = next,
            Err(_) => return,
        }
    }
}

/// Lowers this thread's scheduling priority; returns the previous nice value on success.
fn lower_priority() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let original = rustix::process::getpriority_process(Some(tid)).ok()?;
        if original >= WORKER_NICE {
            return None;
        }
        rustix::process::setpriority_process(Some(tid), WORKER_NICE).ok()?;
        Some(original)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Only Linux lets one thread's priority be changed on its own.
        None
    }
}

/// Restores this thread's nice value; returns `false` if the OS refuses (unprivileged).
fn restore_priority(original: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        rustix::process::setpriority_process(Some(tid), original).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = original;
        true
    }
}

/// Runs blocking I/O (not CPU work) on the `blocking` crate's pool, outside every pool class's
/// admission control: for the tiny_http front end, whose socket reads, writes and drops block.
///
/// Kept here so that this file stays the only one that touches `blocking`.
#[cfg(feature = "tiny_http")]
pub(crate) fn unblock_io<T, F>(f: F) -> blocking::Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    blocking::unblock(f)
}

/// Extracts the text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Locks a mutex, ignoring poisoning: jobs run outside every lock, so a poisoned lock can only
/// come from a panic in our own bookkeeping, whose state stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The class `offload` uses outside any server: default limits, shared by the whole process.
pub(crate) fn global_class() -> Arc<Class> {
    static GLOBAL: OnceLock<Arc<Class>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| Class::new("global", ClassConfig::default(), true))
        .clone()
}

/// Returns the class of the request being handled on this thread, or the process-wide one.
fn current_class() -> Arc<Class> {
    crate::pool::scope::current_class().unwrap_or_else(global_class)
}

/// Compile-time checks of which types cross to the pool.
#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Task<u32>>();
    is_send::<CancelToken>();
    is_send::<crate::Request>();
    is_send::<crate::Response>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use std::sync::Barrier;

    #[test]
    fn jobs_run_and_return() {
        let class = Class::new("t", ClassConfig::new(2, 4), false);
        let task = submit(class, |_| 6 * 7);
        assert_eq!(block_on(task).unwrap(), 42);
    }

    #[test]
    fn full_queue_sheds_immediately_and_recovers() {
        let class = Class::new("t", ClassConfig::new(1, 1), false);
        let gate = Arc::new(Barrier::new(2));
        let (started_tx, started_rx) = mpsc::channel();
        let running = {
            let gate = gate.clone();
            submit(class.clone(), move |_| {
                started_tx.send(()).unwrap();
                gate.wait();
                1
            })
        };
        started_rx.recv().unwrap();
        let queued = submit(class.clone(), |_| 2);
        let shed = submit(class.clone(), |_| 3);
        match block_on(shed) {
            Err(Error::Overloaded { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1))
            }
            other => panic!("expected overload, got {other:?}"),
        }
        gate.wait();
        assert_eq!(block_on(running).unwrap(), 1);
        assert_eq!(block_on(queued).unwrap(), 2);
        assert_eq!(class.stats.shed.load(Ordering::Relaxed), 1);
        assert_eq!(block_on(submit(class, |_| 4)).unwrap(), 4);
    }

    #[test]
    fn dropped_queued_task_never_runs() {
        let class = Class::new("t", ClassConfig::new(1, 4), false);
        let gate = Arc::new(Barrier::new(2));
        let (started_tx, started_rx) = mpsc::channel();
        let running = {
            let gate = gate.clone();
            submit(class.clone(), move |_| {
                started_tx.send(()).unwrap();
                gate.wait();
            })
        };
        started_rx.recv().unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let queued = {
            let ran = ran.clone();
            submit(class.clone(), move |_| ran.store(true, Ordering::SeqCst))
        };
        drop(queued);
        gate.wait();
        block_on(running).unwrap();
        // A job queued after the dropped one runs, so the worker has passed the dropped one.
        block_on(submit(class.clone(), |_| ())).unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(class.stats.cancelled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn panicking_job_becomes_an_error_and_the_pool_survives() {
        let class = Class::new("t", ClassConfig::new(1, 1), false);
        let task = submit(class.clone(), |_| -> u32 { panic!("boom") });
        match block_on(task) {
            Err(Error::HandlerPanicked(message)) => assert_eq!(message, "boom"),
            other => panic!("expected a panic error, got {other:?}"),
        }
        assert_eq!(block_on(submit(class, |_| 5)).unwrap(), 5);
    }

    #[test]
    fn dropping_a_running_task_flips_its_token() {
        let class = Class::new("t", ClassConfig::new(1, 1), false);
        let (started_tx, started_rx) = mpsc::channel();
        let (seen_tx, seen_rx) = mpsc::channel();
        let task = submit(class, move |token| {
            started_tx.send(()).unwrap();
            while !token.is_cancelled() {
                std::thread::yield_now();
            }
            seen_tx.send(()).unwrap();
        });
        started_rx.recv().unwrap();
        drop(task);
        seen_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
