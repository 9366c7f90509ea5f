//! The built-in endpoints: liveness, readiness, and the Prometheus metrics exposition.
//!
//! They are answered on the loop from counters the server keeps anyway, so they stay fast while
//! the pool is saturated.

use std::time::Duration;

use crate::app::App;
use crate::observe::metrics::{resident_bytes, Exposition, Histogram};
use crate::pool::{ClassHandle, ClassStats};
use crate::response::Response;
use crate::router::Probe;

/// Answers a built-in endpoint.
pub(crate) fn answer(app: &App, probe: Probe) -> Response {
    match probe {
        Probe::Liveness => Response::text("ok"),
        Probe::Readiness => match not_ready(app) {
            None => Response::text("ready\n"),
            Some(reason) => {
                Response::unavailable(Duration::from_secs(1), &format!("not ready: {reason}"))
            }
        },
        Probe::Metrics => Response::text(render(app))
            .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
    }
}

/// Returns why the server should not get more traffic now, if it should not.
pub(crate) fn not_ready(app: &App) -> Option<String> {
    if app.is_stopping() {
        return Some("shutting down".to_string());
    }
    if !app.is_frontend_healthy() {
        return Some("the HTTP front end can no longer accept connections".to_string());
    }
    let lag = app.monitor.recent_lag();
    if lag > app.config.ready_max_lag {
        return Some(format!(
            "event loop lag {} ms is over {} ms",
            lag.as_millis(),
            app.config.ready_max_lag.as_millis()
        ));
    }
    for class in &app.classes {
        let capacity = class.queue_capacity();
        let queued = class.queue_depth();
        if capacity > 0
            && queued > 0
            && queued as f64 >= capacity as f64 * app.config.ready_queue_ratio
        {
            return Some(format!(
                "pool class `{}` queue is {queued}/{capacity} full",
                class.name()
            ));
        }
    }
    None
}

/// Renders every metric in the Prometheus text exposition format.
pub(crate) fn render(app: &App) -> String {
    let mut e = Exposition::default();
    let routes = app.router.routes();

    e.family(
        "steadyloop_requests_total",
        "counter",
        "Requests answered, by route, method and status class.",
    );
    for (id, route) in routes.iter().enumerate() {
        for (class, count) in app.requests.counts(Some(id)) {
            let labels = [
                ("route", route.pattern.as_str()),
                ("method", route.method.as_str()),
                ("status", class),
            ];
            e.sample("steadyloop_requests_total", &labels, count as f64);
        }
    }
    for (class, count) in app.requests.counts(None) {
        let labels = [
            ("route", "(unmatched)"),
            ("method", "(any)"),
            ("status", class),
        ];
        e.sample("steadyloop_requests_total", &labels, count as f64);
    }

    e.family(
        "steadyloop_requests_rejected_total",
        "counter",
        "Requests refused by the HTTP front end before routing (malformed, too large, too slow), by status.",
    );
    for (status, count) in app.requests.rejected() {
        e.sample(
            "steadyloop_requests_rejected_total",
            &[("status", &status.to_string())],
            count as f64,
        );
    }

    e.family(
        "steadyloop_request_duration_seconds",
        "histogram",
        "Time from routing to the handler's response, by route.",
    );
    for (id, route) in routes.iter().enumerate() {
        let labels = [
            ("route", route.pattern.as_str()),
            ("method", route.method.as_str()),
        ];
        e.histogram(
            "steadyloop_request_duration_seconds",
            &labels,
            app.requests.latency(id),
        );
    }

    e.family(
        "steadyloop_requests_in_flight",
        "gauge",
        "Requests whose handler is running.",
    )
    .sample(
        "steadyloop_requests_in_flight",
        &[],
        app.requests.in_flight.get() as f64,
    );
    e.family(
        "steadyloop_requests_abandoned_total",
        "counter",
        "Requests dropped before their handler answered (client gone, route deadline, forced shutdown).",
    )
    .sample("steadyloop_requests_abandoned_total", &[], app.requests.abandoned.get() as f64);

    e.family(
        "steadyloop_connections_open",
        "gauge",
        "Open client connections.",
    )
    .sample(
        "steadyloop_connections_open",
        &[],
        app.connections.get() as f64,
    );
    e.family(
        "steadyloop_connections_refused_total",
        "counter",
        "Connections refused because max_connections was reached.",
    )
    .sample(
        "steadyloop_connections_refused_total",
        &[],
        app.refused.get() as f64,
    );
    e.family(
        "steadyloop_accept_errors_total",
        "counter",
        "Accept errors (such as running out of file descriptors) that made the server back off.",
    )
    .sample(
        "steadyloop_accept_errors_total",
        &[],
        app.accept_errors.get() as f64,
    );

    e.family(
        "steadyloop_loop_lag_seconds",
        "histogram",
        "How long woken tasks waited before the event loop ran them.",
    )
    .histogram("steadyloop_loop_lag_seconds", &[], &app.monitor.lag);
    e.family(
        "steadyloop_loop_polls_total",
        "counter",
        "Task polls run by the event loop.",
    )
    .sample(
        "steadyloop_loop_polls_total",
        &[],
        app.monitor.polls() as f64,
    );
    e.family(
        "steadyloop_loop_stalls_total",
        "counter",
        "Polls that held the event loop longer than the stall threshold, by route.",
    );
    for (label, count) in app.monitor.stalls() {
        e.sample(
            "steadyloop_loop_stalls_total",
            &[("route", label)],
            count as f64,
        );
    }

    render_pools(app, &mut e);

    if let Some(rss) = resident_bytes() {
        e.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        )
        .sample("process_resident_memory_bytes", &[], rss as f64);
    }
    e.family(
        "steadyloop_uptime_seconds",
        "gauge",
        "Seconds since the server was built.",
    )
    .sample(
        "steadyloop_uptime_seconds",
        &[],
        app.started.elapsed().as_secs_f64(),
    );
    e.family(
        "steadyloop_build_info",
        "gauge",
        "Build information; the value is always 1.",
    )
    .sample(
        "steadyloop_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    e.finish()
}

/// Renders the per-class pool metrics.
fn render_pools(app: &App, e: &mut Exposition) {
    type Gauge = fn(&ClassHandle) -> usize;
    let gauges: [(&str, &str, Gauge); 4] = [
        (
            "steadyloop_pool_workers_busy",
            "Pool workers running a job, by class.",
            ClassHandle::busy,
        ),
        (
            "steadyloop_pool_workers_max",
            "Most jobs a pool class runs at once.",
            ClassHandle::workers_max,
        ),
        (
            "steadyloop_pool_queue_depth",
            "Jobs waiting for a worker, by class.",
            ClassHandle::queue_depth,
        ),
        (
            "steadyloop_pool_queue_capacity",
            "Most jobs a pool class lets wait.",
            ClassHandle::queue_capacity,
        ),
    ];
    for (name, help, read) in gauges {
        e.family(name, "gauge", help);
        for class in &app.classes {
            e.sample(name, &[("class", class.name())], read(class) as f64);
        }
    }
    type Counter = fn(&ClassStats) -> u64;
    let counters: [(&str, &str, Counter); 5] = [
        (
            "steadyloop_pool_jobs_completed_total",
            "Jobs that ran to the end (panicked ones included).",
            ClassStats::completed,
        ),
        (
            "steadyloop_pool_jobs_shed_total",
            "Jobs refused at once because the queue was full (503).",
            ClassStats::shed,
        ),
        (
            "steadyloop_pool_jobs_expired_total",
            "Jobs dropped after waiting past the queue deadline (503).",
            ClassStats::expired,
        ),
        (
            "steadyloop_pool_jobs_cancelled_total",
            "Queued jobs removed because nobody waited for them any more.",
            ClassStats::cancelled,
        ),
        (
            "steadyloop_pool_jobs_panicked_total",
            "Jobs that panicked (500).",
            ClassStats::panicked,
        ),
    ];
    for (name, help, read) in counters {
        e.family(name, "counter", help);
        for class in &app.classes {
            let value = read(class.stats());
            e.sample(name, &[("class", class.name())], value as f64);
        }
    }
    type Pick = fn(&ClassStats) -> &Histogram;
    let histograms: [(&str, &str, Pick); 2] = [
        (
            "steadyloop_pool_queue_wait_seconds",
            "Time jobs waited for a worker, by class.",
            ClassStats::queue_wait,
        ),
        (
            "steadyloop_pool_run_seconds",
            "Time jobs ran, by class.",
            ClassStats::run_time,
        ),
    ];
    for (name, help, pick) in histograms {
        e.family(name, "histogram", help);
        for class in &app.classes {
            e.histogram(name, &[("class", class.name())], pick(class.stats()));
        }
    }
}
