//! Wedged pool work: jobs that run past their class's wedge limit.
//!
//! A job that never returns keeps its worker for good; once every worker of a class holds one,
//! the class serves nothing. Each class keeps the start time and route of its running jobs;
//! [`WedgeWatch::check`] (called by readiness, metrics, the systemd watchdog and the job's own
//! task) logs each job once when it passes the limit, counts it, and says whether the whole
//! class is wedged and for how long. Nothing here runs on a timer of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::class::lock;

/// A job being run.
#[derive(Debug)]
struct RunningJob {
    /// Its queue id.
    id: u64,
    /// When a worker started it.
    started: Instant,
    /// The route whose request submitted it (`"(no request)"` outside one).
    route: Arc<str>,
    /// Set once it has been logged as wedged.
    reported: bool,
}

/// What [`WedgeWatch::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wedge {
    /// Running jobs past the limit.
    pub(crate) wedged: usize,
    /// How long every worker of the class has held a wedged job, if they all do.
    pub(crate) fully_for: Option<Duration>,
}

/// The running jobs of one class, checked against its wedge limit.
#[derive(Debug)]
pub(crate) struct WedgeWatch {
    /// A job running longer than this is wedged.
    limit: Duration,
    /// Jobs being run, in start order.
    jobs: Mutex<Vec<RunningJob>>,
    /// Jobs that passed the limit so far.
    wedged_total: AtomicU64,
}

impl WedgeWatch {
    /// Watches jobs against `limit`.
    pub(crate) fn new(limit: Duration) -> WedgeWatch {
        WedgeWatch {
            limit,
            jobs: Mutex::new(Vec::new()),
            wedged_total: AtomicU64::new(0),
        }
    }

    /// Returns the wedge limit.
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// Returns how many jobs have passed the limit so far.
    pub(crate) fn wedged_total(&self) -> u64 {
        self.wedged_total.load(Ordering::Relaxed)
    }

    /// Records that job `id`, submitted by `route`, started at `started`.
    pub(crate) fn started(&self, id: u64, route: Arc<str>, started: Instant) {
        lock(&self.jobs).push(RunningJob {
            id,
            started,
            route,
            reported: false,
        });
    }

    /// Records that job `id` returned.
    pub(crate) fn finished(&self, id: u64) {
        let mut jobs = lock(&self.jobs);
        if let Some(index) = jobs.iter().position(|job| job.id == id) {
            let job = jobs.remove(index);
            if job.reported {
                log::warn!(
                    "wedged job for {} in pool class finished after {:.1} s",
                    job.route,
                    job.started.elapsed().as_secs_f64()
                );
            }
        }
    }

    /// Logs and counts jobs that passed the limit since the last check, and reports whether
    /// all `workers` of class `class` hold one.
    pub(crate) fn check(&self, class: &str, workers: usize, now: Instant) -> Wedge {
        let mut jobs = lock(&self.jobs);
        let mut wedged = 0;
        let mut last_wedged_at = None::<Instant>;
        for job in jobs.iter_mut() {
            let running = now.saturating_duration_since(job.started);
            if running <= self.limit {
                continue;
            }
            wedged += 1;
            let at = job.started + self.limit;
            last_wedged_at = Some(last_wedged_at.map_or(at, |t| t.max(at)));
            if !job.reported {
                job.reported = true;
                self.wedged_total.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "wedged: a job for {} in pool class `{class}` has been running for {:.1} s \
                     (limit {:.1} s); it keeps its worker until it returns",
                    job.route,
                    running.as_secs_f64(),
                    self.limit.as_secs_f64()
                );
            }
        }
        let fully_for = (workers > 0 && wedged >= workers)
            .then(|| last_wedged_at.map(|at| now.saturating_duration_since(at)))
            .flatten();
        Wedge { wedged, fully_for }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_past_the_limit_are_counted_once_and_wedge_the_class() {
        let watch = WedgeWatch::new(Duration::from_secs(10));
        let t0 = Instant::now();
        watch.started(1, "GET /a".into(), t0);
        watch.started(2, "GET /b".into(), t0 + Duration::from_secs(5));
        let early = watch.check("c", 2, t0 + Duration::from_secs(9));
        assert_eq!(
            early,
            Wedge {
                wedged: 0,
                fully_for: None
            }
        );
        let one = watch.check("c", 2, t0 + Duration::from_secs(12));
        assert_eq!(
            one,
            Wedge {
                wedged: 1,
                fully_for: None
            }
        );
        let both = watch.check("c", 2, t0 + Duration::from_secs(20));
        assert_eq!(
            both,
            Wedge {
                wedged: 2,
                fully_for: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(watch.wedged_total(), 2);
        watch.finished(1);
        let after = watch.check("c", 2, t0 + Duration::from_secs(21));
        assert_eq!(
            after,
            Wedge {
                wedged: 1,
                fully_for: None
            }
        );
        assert_eq!(watch.wedged_total(), 2);
    }
}
