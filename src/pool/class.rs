//! A pool class: its limits, its bounded queue of type-erased jobs, its counters, and the loop
//! each of its workers runs.
//!
//! The class type stays inside `pool/`. The rest of the crate holds a [`ClassHandle`]: it can
//! create a class, close it and read its gauges and [`ClassStats`], and submit to it through
//! [`submit`](super::submit), but never touches the queue.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::wedge::{Wedge, WedgeWatch};
use crate::config::ClassConfig;
use crate::error::Error;
use crate::observe::metrics::Histogram;

/// How long an idle worker waits for a job before giving its thread back to `blocking`.
const WORKER_IDLE: Duration = Duration::from_secs(10);

/// A pool class as the rest of the crate sees it: created from its settings, submitted to,
/// read by the metrics, closed when the server stops. Cloning it is cheap.
#[derive(Clone, Debug)]
pub(crate) struct ClassHandle(pub(super) Arc<Class>);

impl ClassHandle {
    /// Creates a class; workers start when jobs arrive. With `low_priority` its workers lower
    /// their thread's scheduling priority.
    pub(crate) fn new(name: &str, config: ClassConfig, low_priority: bool) -> ClassHandle {
        ClassHandle(Arc::new(Class {
            name: name.to_string(),
            wedges: WedgeWatch::new(config.job_wedge_limit),
            config,
            low_priority,
            state: Mutex::new(ClassState::default()),
            wake: Condvar::new(),
            stats: ClassStats::default(),
            next_id: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }))
    }

    /// Returns the class `offload` uses outside any server: default limits, shared by the whole
    /// process.
    pub(crate) fn global() -> ClassHandle {
        static GLOBAL: OnceLock<ClassHandle> = OnceLock::new();
        GLOBAL
            .get_or_init(|| ClassHandle::new("global", ClassConfig::default(), true))
            .clone()
    }

    /// Returns its name (`default` for the default class).
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// Returns the number of jobs running.
    pub(crate) fn busy(&self) -> usize {
        self.0.busy.load(Ordering::Relaxed)
    }

    /// Returns the most jobs it runs at once.
    pub(crate) fn workers_max(&self) -> usize {
        self.0.config.workers
    }

    /// Returns the number of jobs waiting for a worker.
    pub(crate) fn queue_depth(&self) -> usize {
        self.0.queue_len()
    }

    /// Returns the most jobs it lets wait.
    pub(crate) fn queue_capacity(&self) -> usize {
        self.0.config.queue
    }

    /// Returns its counters.
    pub(crate) fn stats(&self) -> &ClassStats {
        &self.0.stats
    }

    /// Returns its running jobs past `job-wedge-limit` and whether every worker holds one,
    /// logging each job once when it first counts.
    pub(crate) fn wedge(&self) -> Wedge {
        self.0.wedge(Instant::now())
    }

    /// Returns how many of its jobs have run past `job-wedge-limit` so far.
    pub(crate) fn wedged_total(&self) -> u64 {
        self.0.wedges.wedged_total()
    }

    /// Returns how long a job may run before it counts as wedged.
    pub(crate) fn wedge_limit(&self) -> Duration {
        self.0.wedges.limit()
    }

    /// Stops the class: idle workers leave; running jobs finish.
    pub(crate) fn close(&self) {
        lock(&self.0.state).closed = true;
        self.0.wake.notify_all();
    }
}

/// The counters of one pool class, updated by the loop and the workers, read-only outside the
/// pool.
#[derive(Debug, Default)]
pub(crate) struct ClassStats {
    /// Jobs that ran to completion (including ones that panicked).
    completed: AtomicU64,
    /// Jobs rejected because the queue was full.
    shed: AtomicU64,
    /// Jobs dropped because they waited past the queue deadline.
    expired: AtomicU64,
    /// Jobs removed from the queue because their task was dropped.
    cancelled: AtomicU64,
    /// Jobs that panicked.
    panicked: AtomicU64,
    /// Time jobs waited for a worker.
    queue_wait: Histogram,
    /// Time jobs ran.
    run_time: Histogram,
    /// Moving average of run time in nanoseconds (0 until the first job), for `Retry-After`.
    avg_run_nanos: AtomicU64,
}

impl ClassStats {
    /// Returns the jobs that ran to the end, panicked ones included.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Returns the jobs refused at once because the queue was full.
    pub(crate) fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Returns the jobs dropped after waiting past the queue deadline.
    pub(crate) fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Returns the queued jobs removed because their task was dropped.
    pub(crate) fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Returns the jobs that panicked.
    pub(crate) fn panicked(&self) -> u64 {
        self.panicked.load(Ordering::Relaxed)
    }

    /// Returns the time jobs waited for a worker.
    pub(crate) fn queue_wait(&self) -> &Histogram {
        &self.queue_wait
    }

    /// Returns the time jobs ran.
    pub(crate) fn run_time(&self) -> &Histogram {
        &self.run_time
    }
}

/// What a worker found when it took a job from the queue.
pub(super) enum Pickup {
    /// The job is within its queue deadline: run it. It waited this long for a worker.
    InTime {
        /// Time from queueing to being taken.
        waited: Duration,
    },
    /// The job waited past its deadline: fail it with [`Error::QueueTimeout`], do not run it.
    Expired,
}

/// A queued job, type-erased.
pub(super) struct Queued {
    /// Matches the job's id in its task.
    pub(super) id: u64,
    /// When it was queued.
    pub(super) enqueued: Instant,
    /// When it must have started.
    pub(super) deadline: Instant,
    /// Runs the job or fails it as expired, as the [`Pickup`] says; either way it calls
    /// [`Class::release`] before publishing the outcome.
    pub(super) run: Box<dyn FnOnce(Pickup) + Send>,
}

/// What [`Class::enqueue`] did with a job it accepted.
pub(super) enum Enqueued {
    /// The job waits for a worker that is alive (an idle one was woken).
    Waiting,
    /// The class counted one more worker for it: the caller must start that worker.
    StartWorker,
}

/// Why a worker left its class.
pub(super) enum WorkerExit {
    /// It was idle too long.
    Idle,
    /// The class closed.
    Closed,
}

/// A pool class: its limits, queue and workers.
pub(super) struct Class {
    /// Its name (`default` for the default class).
    pub(super) name: String,
    /// Its limits.
    pub(super) config: ClassConfig,
    /// Whether its workers lower their scheduling priority.
    pub(super) low_priority: bool,
    /// Queue and worker bookkeeping.
    state: Mutex<ClassState>,
    /// Signals idle workers that a job (or closing) is waiting.
    wake: Condvar,
    /// Counters.
    stats: ClassStats,
    /// Ids for queued jobs.
    next_id: AtomicU64,
    /// Busy workers (running a job); mirrors `ClassState::running` for lock-free reads.
    busy: AtomicUsize,
    /// Running jobs, checked against the wedge limit.
    pub(super) wedges: WedgeWatch,
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
    /// Returns a fresh id for a job.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks the running jobs against the wedge limit at `now` (see [`WedgeWatch::check`]).
    pub(super) fn wedge(&self, now: Instant) -> Wedge {
        self.wedges.check(&self.name, self.config.workers, now)
    }

    /// Returns the number of jobs waiting for a worker.
    fn queue_len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Queues `job`, or sheds it with [`Error::Overloaded`] when the queue is full.
    ///
    /// Jobs that will start at once (free workers) do not count against the queue bound.
    pub(super) fn enqueue(&self, job: Queued) -> Result<Enqueued, Error> {
        let mut state = lock(&self.state);
        let free = self.config.workers.saturating_sub(state.running);
        if state.queue.len() >= free + self.config.queue {
            let queued = state.queue.len();
            drop(state);
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Overloaded {
                class: self.name.clone(),
                retry_after: self.retry_after(queued),
            });
        }
        state.queue.push_back(job);
        let short = state.running + state.queue.len() > state.workers;
        if short && state.workers < self.config.workers {
            state.workers += 1;
            return Ok(Enqueued::StartWorker);
        }
        drop(state);
        self.wake.notify_one();
        Ok(Enqueued::Waiting)
    }

    /// Removes a queued job whose task passed its deadline; returns `false` if a worker already
    /// took it.
    pub(super) fn remove_expired(&self, id: u64) -> bool {
        let removed = self.remove(id);
        if removed {
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// Removes a queued job whose task was dropped; returns `false` if a worker already took it.
    pub(super) fn remove_cancelled(&self, id: u64) -> bool {
        let removed = self.remove(id);
        if removed {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        removed
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
    pub(super) fn queue_timeout_error(&self) -> Error {
        Error::QueueTimeout {
            class: self.name.clone(),
            retry_after: self.retry_after(self.queue_len()),
        }
    }

    /// Records a finished job's run time.
    pub(super) fn record_run(&self, run: Duration, panicked: bool) {
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

    /// Marks the worker running a job as free; a job calls it before publishing its outcome,
    /// so whoever sees the result also sees the worker free.
    pub(super) fn release(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    /// The body of a worker: take jobs until idle for too long or the class closes.
    ///
    /// A worker on a thread whose priority it `lowered` never leaves for idleness: handing the
    /// thread back to `blocking` would leak the priority into unrelated work.
    pub(super) fn work(&self, lowered: bool) -> WorkerExit {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                self.busy.fetch_add(1, Ordering::Relaxed);
                drop(state);
                let pickup = self.pick_up(&job);
                (job.run)(pickup);
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

    /// Decides whether a job just taken from the queue runs, and counts it.
    fn pick_up(&self, job: &Queued) -> Pickup {
        let now = Instant::now();
        if now <= job.deadline {
            let waited = now - job.enqueued;
            self.stats.queue_wait.observe(waited);
            Pickup::InTime { waited }
        } else {
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
            Pickup::Expired
        }
    }
}

impl fmt::Debug for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Class")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .finish()
    }
}

/// Locks a mutex, ignoring poisoning: jobs run outside every lock, so a poisoned lock can only
/// come from a panic in our own bookkeeping, whose state stays consistent.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
