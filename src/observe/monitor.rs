//! The loop monitor: loop lag measured by the loop itself, and a watchdog thread that reports a
//! stall while it is happening, naming the route being polled.
//!
//! Every task the server spawns on the loop (through `ServerState::spawn`) is wrapped in
//! [`Instrumented`]: its waker records when the task was woken, and each poll records how long
//! the task waited to run (loop lag), marks "a poll started at T" in atomics, and checks its
//! own length when it ends. Handler polls also record their route. The watchdog thread reads those atomics a few times per
//! threshold while the loop is busy, and parks when the loop is idle, so an idle server costs no
//! wake-ups at all (nothing here uses a timer on the loop).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::notify::Notifier;
use crate::observe::metrics::Histogram;

/// How long the loop must stay idle before the watchdog parks.
const PARK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The label used for polls outside any handler (the server's own code).
pub(crate) const SERVER_LABEL: &str = "(server)";

/// Most distinct task names the monitor labels; further names share one label, so tasks
/// spawned with made-up names cannot grow the metrics without bound.
const MAX_TASK_LABELS: usize = 64;

/// Shared between the loop and its watchdog thread.
pub(crate) struct Monitor {
    /// Time zero for the nanosecond timestamps below: the loop's ([`crate::rt::epoch`]), so
    /// the reactor's dispatch time is one of them already.
    epoch: Instant,
    /// When the current poll began, in nanoseconds since `epoch` plus one; 0 while not polling.
    poll_start: AtomicU64,
    /// Polls started so far; also the generation of the current poll.
    polls: AtomicU64,
    /// Route id plus one of the last handler polled in the current task poll; 0 for none.
    route: AtomicUsize,
    /// The generation of the poll the watchdog last reported as a stall in progress.
    reported: AtomicU64,
    /// Stalls per route id plus one (index 0: the server's own code).
    stalls: Box<[AtomicU64]>,
    /// `"GET /report"` per route id plus one (index 0: [`SERVER_LABEL`]).
    labels: Box<[String]>,
    /// `"task NAME"` and its stall count for each spawned task name; slot `labels.len() + i`.
    tasks: Mutex<Vec<(String, u64)>>,
    /// A poll longer than this is a stall.
    threshold: Duration,
    /// How long woken tasks waited before the loop polled them.
    pub(crate) lag: Histogram,
    /// The largest lag of the current and the previous second, for readiness.
    recent_lag: RecentMax,
    /// Set while the watchdog should be checking; cleared when it parks.
    armed: AtomicBool,
    /// The watchdog thread, to unpark it.
    watchdog: OnceLock<Thread>,
    /// Set when the server stops; the watchdog exits.
    stopped: AtomicBool,
    /// When `false`, tasks are not measured and no watchdog runs (for overhead comparisons).
    enabled: bool,
    /// The supervisor's notify socket: stalls show in its status line, and a stall longer than
    /// its watchdog interval triggers the watchdog.
    notifier: Option<Arc<Notifier>>,
}

impl Monitor {
    /// Creates a monitor for routes labelled `labels` (by route id) and, if `enabled`, starts
    /// its watchdog.
    pub(crate) fn start(
        labels: Vec<String>,
        threshold: Duration,
        enabled: bool,
        notifier: Option<Arc<Notifier>>,
    ) -> Arc<Monitor> {
        let labels: Box<[String]> = std::iter::once(SERVER_LABEL.to_string())
            .chain(labels)
            .collect();
        let monitor = Arc::new(Monitor {
            epoch: crate::rt::epoch(),
            poll_start: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            route: AtomicUsize::new(0),
            reported: AtomicU64::new(u64::MAX),
            stalls: labels.iter().map(|_| AtomicU64::new(0)).collect(),
            labels,
            tasks: Mutex::new(Vec::new()),
            threshold,
            lag: Histogram::default(),
            recent_lag: RecentMax::default(),
            armed: AtomicBool::new(false),
            watchdog: OnceLock::new(),
            stopped: AtomicBool::new(false),
            enabled,
            notifier,
        });
        if !enabled {
            return monitor;
        }
        let watched = monitor.clone();
        let spawned = thread::Builder::new()
            .name("steadyloop-watchdog".into())
            .spawn(move || watched.watch());
        match spawned {
            Ok(handle) => {
                let _ = monitor.watchdog.set(handle.thread().clone());
            }
            Err(e) => log::error!(
                "could not start the stall watchdog: {e}; stalls are reported after they end"
            ),
        }
        monitor
    }

    /// Stops the watchdog thread.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(thread) = self.watchdog.get() {
            thread.unpark();
        }
    }

    /// Returns the number of polls the loop has run.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Returns `(label, stalls)` for every route with its counter, the server's own code first,
    /// then every task name seen.
    pub(crate) fn stalls(&self) -> Vec<(String, u64)> {
        let routes = self
            .labels
            .iter()
            .zip(self.stalls.iter())
            .map(|(label, count)| (label.clone(), count.load(Ordering::Relaxed)));
        let tasks = self.lock_tasks().clone();
        routes.chain(tasks).collect()
    }

    /// Returns the label slot of the task named `name`, adding it on first sight.
    pub(crate) fn task_slot(&self, name: &str) -> usize {
        let mut tasks = self.lock_tasks();
        let mut label = format!("task {name}");
        if !tasks.iter().any(|(l, _)| *l == label) && tasks.len() >= MAX_TASK_LABELS {
            label = "task (other)".to_string();
        }
        let at = match tasks.iter().position(|(l, _)| *l == label) {
            Some(at) => at,
            None => {
                tasks.push((label, 0));
                tasks.len() - 1
            }
        };
        self.labels.len() + at
    }

    /// Records that the task in label slot `slot` (from [`Monitor::task_slot`]) is being polled.
    pub(crate) fn enter_slot(&self, slot: usize) {
        self.route.store(slot, Ordering::Relaxed);
    }

    /// Returns the label of slot `slot` (a route id plus one, or a task slot).
    fn label(&self, slot: usize) -> String {
        match self.labels.get(slot) {
            Some(label) => label.clone(),
            None => self
                .lock_tasks()
                .get(slot - self.labels.len())
                .map_or_else(|| SERVER_LABEL.to_string(), |(label, _)| label.clone()),
        }
    }

    /// Counts a stall for slot `slot`.
    fn count_stall(&self, slot: usize) {
        match self.stalls.get(slot) {
            Some(count) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                if let Some((_, count)) = self.lock_tasks().get_mut(slot - self.labels.len()) {
                    *count += 1;
                }
            }
        }
    }

    /// Locks the task labels (a poisoned lock still holds valid counters).
    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<(String, u64)>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the largest loop lag seen in the last one to two seconds.
    pub(crate) fn recent_lag(&self) -> Duration {
        self.recent_lag.get(self.now_nanos())
    }

    /// Records that the handler of route `route_id` is being polled.
    pub(crate) fn enter_route(&self, route_id: usize) {
        self.route.store(route_id + 1, Ordering::Relaxed);
    }

    /// Nanoseconds since `epoch` (at least 1, so 0 can mean "none").
    fn now_nanos(&self) -> u64 {
        nanos_since(self.epoch, Instant::now())
    }

    /// Marks the start of a task poll and wakes the watchdog if it sleeps.
    fn poll_begin(&self, now_nanos: u64) -> u64 {
        let generation = self.polls.fetch_add(1, Ordering::AcqRel) + 1;
        self.route.store(0, Ordering::Relaxed);
        self.poll_start.store(now_nanos, Ordering::Release);
        if !self.armed.load(Ordering::Relaxed) {
            self.armed.store(true, Ordering::Relaxed);
            if let Some(thread) = self.watchdog.get() {
                thread.unpark();
            }
        }
        generation
    }

    /// Marks the end of a task poll; a long one is counted and logged as a stall.
    #[inline]
    fn poll_end(&self, generation: u64, started: Instant) {
        self.poll_start.store(0, Ordering::Release);
        let now = Instant::now();
        // A comparison of instants: `elapsed` (a subtraction into a `Duration`) cost about 40
        // instructions per poll, and only a stall needs the length.
        if let Some(stall_at) = started.checked_add(self.threshold) {
            if now >= stall_at {
                self.stalled(generation, now.saturating_duration_since(started));
            }
        }
    }

    /// Counts and logs the stall of a poll that took `took`.
    ///
    /// Apart from [`Monitor::poll_end`], so that every poll's path stays short.
    #[cold]
    #[inline(never)]
    fn stalled(&self, generation: u64, took: Duration) {
        let route = self.route.load(Ordering::Relaxed);
        self.count_stall(route);
        let label = self.label(route);
        if self.reported.load(Ordering::Acquire) == generation {
            log::warn!(
                "stall ended: {label} blocked the event loop for {} ms in total",
                took.as_millis()
            );
            if let Some(notifier) = &self.notifier {
                notifier.restore_status();
            }
        } else {
            log::warn!(
                "stall: {label} blocked the event loop for {} ms; move CPU-heavy work to \
                 offload() or a blocking_* route",
                took.as_millis()
            );
        }
    }

    /// Records how long a woken task waited for the loop (`now` in nanoseconds, as `woken_at`).
    fn record_lag(&self, woken_at: u64, now: u64) {
        let lag = now.saturating_sub(woken_at);
        self.lag.observe_nanos(lag);
        self.recent_lag.record(now, lag);
    }

    /// The watchdog thread's body.
    fn watch(&self) {
        let interval =
            (self.threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let mut idle_for = Duration::ZERO;
        let mut last_polls = self.polls();
        // The generation whose stall triggered the supervisor's watchdog.
        let mut triggered = u64::MAX;
        while !self.stopped.load(Ordering::Acquire) {
            if !self.armed.load(Ordering::Relaxed) {
                thread::park();
                continue;
            }
            thread::sleep(interval);
            let generation = self.polls.load(Ordering::Acquire);
            let start = self.poll_start.load(Ordering::Acquire);
            if start != 0 {
                idle_for = Duration::ZERO;
                let running = Duration::from_nanos(self.now_nanos().saturating_sub(start));
                if running >= self.threshold && self.reported.load(Ordering::Relaxed) != generation
                {
                    self.reported.store(generation, Ordering::Release);
                    let label = self.label(self.route.load(Ordering::Relaxed));
                    log::warn!(
                        "stall in progress: {label} has been running on the event loop for {} ms; \
                         move CPU-heavy work to offload() or a blocking_* route",
                        running.as_millis()
                    );
                    if let Some(notifier) = &self.notifier {
                        notifier.status(&stall_status(&label, running));
                    }
                }
                if let Some(notifier) = &self.notifier {
                    let past_watchdog = notifier.watchdog().is_some_and(|w| running >= w);
                    if past_watchdog && triggered != generation {
                        triggered = generation;
                        let label = &self.labels[self.route.load(Ordering::Relaxed)];
                        log::error!(
                            "{label} has blocked the event loop for {} ms, past the systemd \
                             watchdog interval: triggering the watchdog",
                            running.as_millis()
                        );
                        notifier.trigger(&stall_status(label, running));
                    }
                }
            } else if generation == last_polls {
                idle_for += interval;
                if idle_for >= PARK_AFTER_IDLE {
                    // Park until the next poll; re-check so a poll that began meanwhile is seen.
                    self.armed.store(false, Ordering::Relaxed);
                    if self.polls.load(Ordering::Acquire) != generation {
                        self.armed.store(true, Ordering::Relaxed);
                    }
                    idle_for = Duration::ZERO;
                }
            } else {
                idle_for = Duration::ZERO;
            }
            last_polls = generation;
        }
    }
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("polls", &self.polls())
            .field("threshold", &self.threshold)
            .finish()
    }
}

/// The status line of a stall in progress: `GET /x blocking the loop for 2.1 s`.
fn stall_status(label: &str, running: Duration) -> String {
    format!(
        "{label} blocking the loop for {:.1} s",
        running.as_secs_f64()
    )
}

/// Nanoseconds from `epoch` to `at`, plus one so the result is never 0.
fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// The largest value recorded in the current and the previous one-second window.
#[derive(Debug, Default)]
struct RecentMax {
    /// Index of the current window (seconds since the epoch).
    window: AtomicU64,
    /// Largest value in the current window.
    current: AtomicU64,
    /// Largest value in the previous window.
    previous: AtomicU64,
}

impl RecentMax {
    /// Records `value` (nanoseconds) at time `now` (nanoseconds).
    fn record(&self, now: u64, value: u64) {
        self.roll(now);
        // Only the loop records, so a plain look first spares the read-modify-write of almost
        // every (smaller) value.
        if value > self.current.load(Ordering::Relaxed) {
            self.current.fetch_max(value, Ordering::Relaxed);
        }
    }

    /// Returns the largest value of the last one to two seconds at time `now`.
    fn get(&self, now: u64) -> Duration {
        self.roll(now);
        let max = self
            .current
            .load(Ordering::Relaxed)
            .max(self.previous.load(Ordering::Relaxed));
        Duration::from_nanos(max)
    }

    /// Moves to the window of `now`, dropping values older than the previous window.
    fn roll(&self, now: u64) {
        let window = now / 1_000_000_000;
        if self.window.load(Ordering::Relaxed) == window {
            return;
        }
        let old = self.window.swap(window, Ordering::Relaxed);
        if old == window {
            return;
        }
        let current = self.current.swap(0, Ordering::Relaxed);
        let previous = if window == old + 1 { current } else { 0 };
        self.previous.store(previous, Ordering::Relaxed);
    }
}

/// A loop task wrapped for lag and stall measurement.
pub(crate) struct Instrumented<F> {
    /// The monitor to report to.
    monitor: Arc<Monitor>,
    /// The task's future.
    inner: Pin<Box<F>>,
    /// The waker handed to `inner`: records wake-up times, then wakes the executor's waker.
    waker: Option<(Arc<LagWaker>, Waker)>,
}

impl<F: Future> Instrumented<F> {
    /// Wraps `inner`.
    pub(crate) fn new(monitor: Arc<Monitor>, inner: F) -> Instrumented<F> {
        Instrumented {
            monitor,
            inner: Box::pin(inner),
            waker: None,
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if !this.monitor.enabled {
            return this.inner.as_mut().poll(cx);
        }
        let now = Instant::now();
        // Reuse our waker while the executor's waker stays the same (it does for a task).
        let fresh = match &this.waker {
            Some((lag_waker, _)) => !lag_waker.inner.will_wake(cx.waker()),
            None => true,
        };
        if fresh {
            let lag_waker = Arc::new(LagWaker {
                inner: cx.waker().clone(),
                epoch: this.monitor.epoch,
                woken_at: AtomicU64::new(0),
            });
            let waker = Waker::from(lag_waker.clone());
            this.waker = Some((lag_waker, waker));
        }
        let (lag_waker, waker) = this.waker.as_ref().expect("waker set above");
        // One conversion for both uses.
        let now_nanos = nanos_since(this.monitor.epoch, now);
        let woken_at = lag_waker.woken_at.swap(0, Ordering::AcqRel);
        if woken_at != 0 {
            this.monitor.record_lag(woken_at, now_nanos);
        }
        let generation = this.monitor.poll_begin(now_nanos);
        let mut context = Context::from_waker(waker);
        let result = this.inner.as_mut().poll(&mut context);
        this.monitor.poll_end(generation, now);
        result
    }
}

/// A waker that notes when it was first woken since the last poll.
struct LagWaker {
    /// The executor's waker for the task.
    inner: Waker,
    /// The monitor's time zero.
    epoch: Instant,
    /// When the task was woken (nanoseconds since `epoch` plus one); 0 if not since the poll.
    woken_at: AtomicU64,
}

impl Wake for LagWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Woken by the loop's reactor (the common case), the time it saw the events will do,
        // converted once for all the tasks it wakes.
        let now =
            crate::rt::dispatch_nanos().unwrap_or_else(|| nanos_since(self.epoch, Instant::now()));
        let _ = self
            .woken_at
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
        self.inner.wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_max_forgets_old_windows() {
        let recent = RecentMax::default();
        let second = 1_000_000_000;
        recent.record(5 * second, 300);
        recent.record(5 * second + 10, 100);
        assert_eq!(recent.get(5 * second + 20), Duration::from_nanos(300));
        assert_eq!(recent.get(6 * second), Duration::from_nanos(300));
        assert_eq!(recent.get(7 * second), Duration::ZERO);
        recent.record(7 * second, 50);
        assert_eq!(recent.get(9 * second), Duration::ZERO);
    }

    #[test]
    fn task_names_get_labels_up_to_the_cap() {
        let monitor = Monitor::start(vec!["GET /a".into()], Duration::from_secs(1), false, None);
        let sampler = monitor.task_slot("sampler");
        assert_eq!(monitor.task_slot("sampler"), sampler);
        assert_eq!(monitor.label(sampler), "task sampler");
        for i in 0..MAX_TASK_LABELS {
            monitor.task_slot(&format!("job {i}"));
        }
        let other = monitor.task_slot("one too many");
        assert_eq!(monitor.label(other), "task (other)");
        assert_eq!(monitor.task_slot("yet another"), other);
        monitor.count_stall(sampler);
        let stalls = monitor.stalls();
        assert_eq!(stalls.len(), 2 + MAX_TASK_LABELS + 1);
        assert!(stalls.contains(&("task sampler".to_string(), 1)));
    }

    #[test]
    fn instrumented_task_counts_polls_and_stalls() {
        let monitor = Monitor::start(
            vec!["GET /slow".into()],
            Duration::from_millis(20),
            true,
            None,
        );
        let m = monitor.clone();
        futures_lite::future::block_on(Instrumented::new(monitor.clone(), async move {
            m.enter_route(0);
            std::thread::sleep(Duration::from_millis(30));
        }));
        let stalls = monitor.stalls();
        assert_eq!(
            stalls,
            vec![(SERVER_LABEL.to_string(), 0), ("GET /slow".to_string(), 1)]
        );
        assert!(monitor.polls() >= 1);
        monitor.stop();
    }
}
