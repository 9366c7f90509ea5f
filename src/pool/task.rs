//! A job on its way through a pool class: [`submit`] queues it, a worker runs it, and the
//! [`Task`] the caller awaits gets its outcome (or removes it from the queue when dropped).

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::rt::Sleep;

use super::class::{lock, Class, ClassHandle, Enqueued, Pickup, Queued};
use super::priority::start_worker;
use crate::error::{panic_message, Error, Result};
use crate::response::BodySender;

/// A cooperative cancellation flag handed to jobs started with
/// [`offload_cancellable`](crate::offload_cancellable).
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
    pub(super) fn with_body(&self, body: &BodySender) -> CancelToken {
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
        timer: Option<Sleep>,
        /// Wakes the task when its running job passes the wedge limit, to report it.
        wedge_timer: Option<Sleep>,
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
    /// When a worker started it.
    started_at: Option<Instant>,
    /// The outcome, once there is one.
    result: Option<Result<T>>,
    /// The task to wake when the outcome is set.
    waker: Option<Waker>,
    /// Set by [`Task::detach`]: nobody reads the outcome, so a failure is logged instead.
    detached: bool,
}

impl<T> Job<T> {
    /// Creates a job that has not started, with queue id `id`.
    fn new(id: u64) -> Job<T> {
        Job {
            slot: Mutex::new(Slot {
                started: false,
                waited: Duration::ZERO,
                started_at: None,
                result: None,
                waker: None,
                detached: false,
            }),
            token: CancelToken::default(),
            id,
        }
    }

    /// Records that a worker took the job at `at` after it `waited` in the queue.
    fn start(&self, waited: Duration, at: Instant) {
        let mut slot = lock(&self.slot);
        slot.started = true;
        slot.waited = waited;
        slot.started_at = Some(at);
    }

    /// Stores the outcome and wakes the task; logs a failure nobody will read.
    fn finish(&self, result: Result<T>) {
        let waker = {
            let mut slot = lock(&self.slot);
            if slot.detached {
                if let Err(err) = &result {
                    log::error!("detached pool job failed: {err}");
                }
            }
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Submits `f` to `class`: queues it, starts a worker if needed, or sheds it.
pub(crate) fn submit<T, F>(class: ClassHandle, f: F) -> Task<T>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    let ClassHandle(class) = class;
    let job = Arc::new(Job::new(class.next_id()));
    let enqueued = Instant::now();
    let deadline = enqueued + class.config.queue_timeout;
    let route = super::scope::current_route().unwrap_or_else(|| "(no request)".into());
    let queued = Queued {
        id: job.id,
        enqueued,
        deadline,
        run: runner(job.clone(), class.clone(), route, f),
    };
    match class.enqueue(queued) {
        Err(shed) => {
            return Task {
                state: TaskState::Failed(Some(shed)),
            }
        }
        Ok(Enqueued::StartWorker) => start_worker(class.clone()),
        Ok(Enqueued::Waiting) => {}
    }
    Task {
        state: TaskState::Submitted {
            job,
            class,
            deadline,
            timer: None,
            wedge_timer: None,
        },
    }
}

/// Wraps `f` into the closure a worker calls when it takes the job from the queue; `route`
/// names the request that submitted it, should it be wedged.
fn runner<T, F>(
    job: Arc<Job<T>>,
    class: Arc<Class>,
    route: Arc<str>,
    f: F,
) -> Box<dyn FnOnce(Pickup) + Send>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    Box::new(move |pickup| {
        let outcome = match pickup {
            Pickup::Expired => Err(class.queue_timeout_error()),
            Pickup::InTime { waited } => {
                let start = Instant::now();
                job.start(waited, start);
                class.wedges.started(job.id, route, start);
                let outcome = run_caught(&class, start, || f(&job.token));
                class.wedges.finished(job.id);
                outcome
            }
        };
        // Counters first, so whoever sees the result also sees the worker free.
        class.release();
        job.finish(outcome);
    })
}

/// Runs a job, timing it for `class` and turning a panic into [`Error::HandlerPanicked`].
///
/// The panic is not logged here: whoever answers the request with the error logs the 500.
fn run_caught<T>(class: &Class, start: Instant, f: impl FnOnce() -> T) -> Result<T> {
    let outcome = catch_unwind(AssertUnwindSafe(f));
    class.record_run(start.elapsed(), outcome.is_err());
    outcome.map_err(|payload| Error::HandlerPanicked(panic_message(payload.as_ref())))
}

impl<T> Task<T> {
    /// Lets the job run to completion without anyone waiting for its result.
    ///
    /// A detached job still counts against its class's limits; if it was shed, nothing happens.
    /// If it fails later (it panics or expires in the queue), the error is logged, since nobody
    /// else will see it.
    pub fn detach(self) {
        if let TaskState::Submitted { job, .. } = &self.state {
            let mut slot = lock(&job.slot);
            match &slot.result {
                Some(Err(err)) => log::error!("detached pool job failed: {err}"),
                _ => slot.detached = true,
            }
        }
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // No field is structurally pinned: `Sleep` and `Arc` are `Unpin`.
        let this = self.get_mut();
        let (job, class, deadline, timer, wedge_timer) = match &mut this.state {
            TaskState::Failed(err) => {
                let err = err.take().expect("Task polled after completion");
                return Poll::Ready(Err(err));
            }
            TaskState::Submitted {
                job,
                class,
                deadline,
                timer,
                wedge_timer,
            } => (job, class, *deadline, timer, wedge_timer),
        };
        {
            let mut slot = lock(&job.slot);
            if let Some(result) = slot.result.take() {
                super::scope::add_queue_wait(slot.waited);
                return Poll::Ready(result);
            }
            slot.waker = Some(cx.waker().clone());
            if let Some(started_at) = slot.started_at {
                drop(slot);
                // Running: report it if it passes the wedge limit while this task waits. The
                // task is polled when the job starts (the worker wakes it at its queue deadline
                // at the latest), which arms this.
                let limit = class.wedges.limit();
                let timer = wedge_timer.get_or_insert_with(|| Sleep::until(started_at + limit));
                if Pin::new(timer).poll(cx).is_ready() {
                    class.wedge(Instant::now());
                    *wedge_timer = Some(Sleep::never());
                }
                return Poll::Pending;
            }
            if slot.started {
                return Poll::Pending;
            }
        }
        // Still queued: enforce the queue deadline here, so it holds even while every worker
        // is busy with long jobs.
        if Instant::now() >= deadline {
            if class.remove_expired(job.id) {
                return Poll::Ready(Err(class.queue_timeout_error()));
            }
            // A worker took it meanwhile; it will wake us.
            return Poll::Pending;
        }
        let timer = timer.get_or_insert_with(|| Sleep::until(deadline));
        if Pin::new(timer).poll(cx).is_ready() {
            // The deadline passed while we registered; poll again to expire the job.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let TaskState::Submitted { job, class, .. } = &self.state {
            {
                let slot = lock(&job.slot);
                if slot.detached || slot.result.is_some() {
                    return;
                }
            }
            if !class.remove_cancelled(job.id) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClassConfig;
    use futures_lite::future::block_on;
    use std::sync::{mpsc, Barrier};

    #[test]
    fn jobs_run_and_return() {
        let class = ClassHandle::new("t", ClassConfig::new(2, 4), false);
        let task = submit(class, |_| 6 * 7);
        assert_eq!(block_on(task).unwrap(), 42);
    }

    #[test]
    fn full_queue_sheds_immediately_and_recovers() {
        let class = ClassHandle::new("t", ClassConfig::new(1, 1), false);
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
        assert_eq!(class.stats().shed(), 1);
        assert_eq!(block_on(submit(class, |_| 4)).unwrap(), 4);
    }

    #[test]
    fn dropped_queued_task_never_runs() {
        let class = ClassHandle::new("t", ClassConfig::new(1, 4), false);
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
        assert_eq!(class.stats().cancelled(), 1);
    }

    #[test]
    fn panicking_job_becomes_an_error_and_the_pool_survives() {
        let class = ClassHandle::new("t", ClassConfig::new(1, 1), false);
        let task = submit(class.clone(), |_| -> u32 { panic!("boom") });
        match block_on(task) {
            Err(Error::HandlerPanicked(message)) => assert_eq!(message, "boom"),
            other => panic!("expected a panic error, got {other:?}"),
        }
        assert_eq!(block_on(submit(class.clone(), |_| 5)).unwrap(), 5);
        assert_eq!(
            (class.stats().completed(), class.stats().panicked()),
            (2, 1)
        );
    }

    #[test]
    fn dropping_a_running_task_flips_its_token() {
        let class = ClassHandle::new("t", ClassConfig::new(1, 1), false);
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

    #[test]
    fn a_job_that_waited_past_its_deadline_never_runs() {
        let mut config = ClassConfig::new(1, 1);
        config.queue_timeout = Duration::from_millis(20);
        let class = ClassHandle::new("t", config, false);
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
        let late = {
            let ran = ran.clone();
            submit(class.clone(), move |_| ran.store(true, Ordering::SeqCst))
        };
        // The task's own timer expires the job while the only worker is held.
        match block_on(late) {
            Err(Error::QueueTimeout { .. }) => {}
            other => panic!("expected a queue timeout, got {other:?}"),
        }
        gate.wait();
        block_on(running).unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(class.stats().expired(), 1);
    }
}
