//! The built-in endpoints: liveness, readiness, and the Prometheus metrics exposition.
//!
//! They are answered on the loop from counters the server keeps anyway, so they stay fast while
//! the pool is saturated. Every metric family is one row of [`METRICS`]: its name, type and help
//! are written there once, with how its samples are read.

use crate::observe::metrics::{resident_bytes, Exposition, Family, Histogram, Kind};
use crate::pool::ClassHandle;
use crate::response::Response;
use crate::router::{Probe, Route};
use crate::server::state::ServerState;

/// Answers a built-in endpoint of a server with `routes`.
pub(crate) fn answer(state: &ServerState, routes: &[Route], probe: Probe) -> Response {
    match probe {
        Probe::Liveness => Response::static_text("ok"),
        Probe::Readiness => match not_ready(state) {
            None => Response::static_text("ready\n"),
            Some(reason) => Response::text(format!("not ready: {reason}\n"))
                .with_status(503)
                .with_header("Retry-After", "1"),
        },
        Probe::Metrics => Response::text(render(&Sources { state, routes }))
            .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
        // Answered by the dispatcher, which holds what the stream needs.
        Probe::Dashboard | Probe::DashboardEvents => crate::observe::dashboard::page(),
    }
}

/// Returns the metrics exposition of a server with `routes` (what `/metrics` serves).
pub(crate) fn exposition(state: &ServerState, routes: &[Route]) -> String {
    render(&Sources { state, routes })
}

/// Returns why the server should not get more traffic now, if it should not.
fn not_ready(state: &ServerState) -> Option<String> {
    let config = state.config();
    if state.is_draining() {
        return Some("shutting down".to_string());
    }
    if !state.is_frontend_healthy() {
        return Some("the HTTP front end can no longer accept connections".to_string());
    }
    let lag = state.monitor().recent_lag();
    if lag > config.ready_max_lag {
        return Some(format!(
            "event loop lag {} ms is over {} ms",
            lag.as_millis(),
            config.ready_max_lag.as_millis()
        ));
    }
    for class in state.classes() {
        if class.wedge().fully_for.is_some() {
            return Some(format!(
                "every worker of pool class `{}` ({}) has run one job for over {:.1} s (wedged)",
                class.name(),
                class.workers_max(),
                class.wedge_limit().as_secs_f64()
            ));
        }
    }
    for class in state.classes() {
        let capacity = class.queue_capacity();
        let queued = class.queue_depth();
        if capacity > 0 && queued > 0 && queued as f64 >= capacity as f64 * config.ready_queue_ratio
        {
            return Some(format!(
                "pool class `{}` queue is {queued}/{capacity} full",
                class.name()
            ));
        }
    }
    None
}

/// What the metrics are read from.
struct Sources<'a> {
    /// The server's counters, monitor and pool classes.
    state: &'a ServerState,
    /// The route table, for the route labels.
    routes: &'a [Route],
}

/// How a metric family's samples are read.
enum Read {
    /// One sample without labels; `None` leaves the whole family out (a reading the platform
    /// does not offer).
    Value(fn(&Sources<'_>) -> Option<f64>),
    /// One sample per pool class, labelled `class`.
    PerClass(fn(&ClassHandle) -> f64),
    /// One histogram per pool class, labelled `class`.
    PerClassHistogram(fn(&ClassHandle) -> &Histogram),
    /// Labelled samples, written by the function.
    Labelled(fn(&Sources<'_>, &mut Family<'_>)),
}

/// One metric family of the exposition.
struct Metric {
    /// The family's name.
    name: &'static str,
    /// Its type.
    kind: Kind,
    /// Its `# HELP` text.
    help: &'static str,
    /// How its samples are read.
    read: Read,
}

/// Every metric family, in the order of the exposition.
const METRICS: &[Metric] = &[
    Metric {
        name: "steadyloop_requests_total",
        kind: Kind::Counter,
        help: "Requests answered, by route, method and status class.",
        read: Read::Labelled(requests_by_route),
    },
    Metric {
        name: "steadyloop_requests_rejected_total",
        kind: Kind::Counter,
        help: "Requests refused by the HTTP front end before routing (malformed, too large, too slow), by status.",
        read: Read::Labelled(rejected_by_status),
    },
    Metric {
        name: "steadyloop_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Time from routing to the handler's response, by route.",
        read: Read::Labelled(latency_by_route),
    },
    Metric {
        name: "steadyloop_requests_in_flight",
        kind: Kind::Gauge,
        help: "Requests whose handler is running.",
        read: Read::Value(|s| Some(s.state.requests().in_flight() as f64)),
    },
    Metric {
        name: "steadyloop_requests_abandoned_total",
        kind: Kind::Counter,
        help: "Requests dropped before their handler answered (client gone, route deadline, forced shutdown).",
        read: Read::Value(|s| Some(s.state.requests().abandoned() as f64)),
    },
    Metric {
        name: "steadyloop_connections_open",
        kind: Kind::Gauge,
        help: "Open client connections.",
        read: Read::Value(|s| Some(s.state.connections() as f64)),
    },
    Metric {
        name: "steadyloop_connections_refused_total",
        kind: Kind::Counter,
        help: "Connections refused because max_connections was reached.",
        read: Read::Value(|s| Some(s.state.refused() as f64)),
    },
    Metric {
        name: "steadyloop_accept_errors_total",
        kind: Kind::Counter,
        help: "Accept errors (such as running out of file descriptors) that made the server back off.",
        read: Read::Value(|s| Some(s.state.accept_errors() as f64)),
    },
    Metric {
        name: "steadyloop_loop_lag_seconds",
        kind: Kind::Histogram,
        help: "How long woken tasks waited before the event loop ran them.",
        read: Read::Labelled(|s, family| {
            family.histogram(&[], &s.state.monitor().lag);
        }),
    },
    Metric {
        name: "steadyloop_loop_polls_total",
        kind: Kind::Counter,
        help: "Task polls run by the event loop.",
        read: Read::Value(|s| Some(s.state.monitor().polls() as f64)),
    },
    Metric {
        name: "steadyloop_loop_stalls_total",
        kind: Kind::Counter,
        help: "Polls that held the event loop longer than the stall threshold, by route.",
        read: Read::Labelled(|s, family| {
            for (label, count) in s.state.monitor().stalls() {
                family.sample(&[("route", label.as_str())], count as f64);
            }
        }),
    },
    Metric {
        name: "steadyloop_pool_workers_busy",
        kind: Kind::Gauge,
        help: "Pool workers running a job, by class.",
        read: Read::PerClass(|class| class.busy() as f64),
    },
    Metric {
        name: "steadyloop_pool_workers_max",
        kind: Kind::Gauge,
        help: "Most jobs a pool class runs at once.",
        read: Read::PerClass(|class| class.workers_max() as f64),
    },
    Metric {
        name: "steadyloop_pool_queue_depth",
        kind: Kind::Gauge,
        help: "Jobs waiting for a worker, by class.",
        read: Read::PerClass(|class| class.queue_depth() as f64),
    },
    Metric {
        name: "steadyloop_pool_queue_capacity",
        kind: Kind::Gauge,
        help: "Most jobs a pool class lets wait.",
        read: Read::PerClass(|class| class.queue_capacity() as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_completed_total",
        kind: Kind::Counter,
        help: "Jobs that ran to the end (panicked ones included).",
        read: Read::PerClass(|class| class.stats().completed() as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_shed_total",
        kind: Kind::Counter,
        help: "Jobs refused at once because the queue was full (503).",
        read: Read::PerClass(|class| class.stats().shed() as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_expired_total",
        kind: Kind::Counter,
        help: "Jobs dropped after waiting past the queue deadline (503).",
        read: Read::PerClass(|class| class.stats().expired() as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_cancelled_total",
        kind: Kind::Counter,
        help: "Queued jobs removed because nobody waited for them any more.",
        read: Read::PerClass(|class| class.stats().cancelled() as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_panicked_total",
        kind: Kind::Counter,
        help: "Jobs that panicked (500).",
        read: Read::PerClass(|class| class.stats().panicked() as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_wedged",
        kind: Kind::Gauge,
        help: "Running jobs past their class's wedge limit (job-wedge-limit), by class.",
        read: Read::PerClass(|class| class.wedge().wedged as f64),
    },
    Metric {
        name: "steadyloop_pool_jobs_wedged_total",
        kind: Kind::Counter,
        help: "Jobs that ran past their class's wedge limit, by class.",
        read: Read::PerClass(|class| class.wedged_total() as f64),
    },
    Metric {
        name: "steadyloop_pool_queue_wait_seconds",
        kind: Kind::Histogram,
        help: "Time jobs waited for a worker, by class.",
        read: Read::PerClassHistogram(|class| class.stats().queue_wait()),
    },
    Metric {
        name: "steadyloop_pool_run_seconds",
        kind: Kind::Histogram,
        help: "Time jobs ran, by class.",
        read: Read::PerClassHistogram(|class| class.stats().run_time()),
    },
    Metric {
        name: "process_resident_memory_bytes",
        kind: Kind::Gauge,
        help: "Resident memory size in bytes.",
        read: Read::Value(|_| resident_bytes().map(|rss| rss as f64)),
    },
    Metric {
        name: "steadyloop_uptime_seconds",
        kind: Kind::Gauge,
        help: "Seconds since the server was built.",
        read: Read::Value(|s| Some(s.state.uptime().as_secs_f64())),
    },
    Metric {
        name: "steadyloop_build_info",
        kind: Kind::Gauge,
        help: "Build information; the value is always 1.",
        read: Read::Labelled(|_, family| {
            family.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        }),
    },
];

/// Renders every metric in the Prometheus text exposition format.
fn render(sources: &Sources<'_>) -> String {
    let mut e = Exposition::default();
    for metric in METRICS {
        let Metric {
            name, kind, help, ..
        } = *metric;
        match metric.read {
            Read::Value(read) => {
                if let Some(value) = read(sources) {
                    e.family(name, kind, help).sample(&[], value);
                }
            }
            Read::PerClass(read) => {
                let mut family = e.family(name, kind, help);
                for class in sources.state.classes() {
                    family.sample(&[("class", class.name())], read(class));
                }
            }
            Read::PerClassHistogram(read) => {
                let mut family = e.family(name, kind, help);
                for class in sources.state.classes() {
                    family.histogram(&[("class", class.name())], read(class));
                }
            }
            Read::Labelled(write) => write(sources, &mut e.family(name, kind, help)),
        }
    }
    e.finish()
}

/// Writes the answered requests of each route by status class, then those no route took.
fn requests_by_route(s: &Sources<'_>, family: &mut Family<'_>) {
    let requests = s.state.requests();
    for (id, route) in s.routes.iter().enumerate() {
        for (class, count) in requests.counts(Some(id)) {
            let labels = [
                ("route", route.pattern.as_str()),
                ("method", route.method.as_str()),
                ("status", class),
            ];
            family.sample(&labels, count as f64);
        }
    }
    for (class, count) in requests.counts(None) {
        let labels = [
            ("route", "(unmatched)"),
            ("method", "(any)"),
            ("status", class),
        ];
        family.sample(&labels, count as f64);
    }
}

/// Writes the requests refused before routing, by status.
fn rejected_by_status(s: &Sources<'_>, family: &mut Family<'_>) {
    for (status, count) in s.state.requests().rejected() {
        family.sample(&[("status", &status.to_string())], count as f64);
    }
}

/// Writes the latency histogram of each route.
fn latency_by_route(s: &Sources<'_>, family: &mut Family<'_>) {
    for (id, route) in s.routes.iter().enumerate() {
        let labels = [
            ("route", route.pattern.as_str()),
            ("method", route.method.as_str()),
        ];
        family.histogram(&labels, s.state.requests().latency(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_family_is_named_once() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a family appears twice");
        for name in names {
            assert!(
                name.starts_with("steadyloop_") || name.starts_with("process_"),
                "{name}"
            );
        }
    }
}
