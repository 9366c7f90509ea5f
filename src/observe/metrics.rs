//! Counters, histograms, and their rendering in the Prometheus text exposition format
//! (version 0.0.4), with no dependency beyond `std`.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; a final `+Inf` bucket is implied.
pub(crate) const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// [`LATENCY_BUCKETS`] in nanoseconds, what an observation is compared with (a test checks
/// they match): a conversion to float seconds and float comparisons cost about twice as much.
const BUCKET_NANOS: [u64; LATENCY_BUCKETS.len()] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// A fixed-bucket histogram of durations, safe to update from any thread.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Per-bucket counts (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of all observations, in nanoseconds.
    sum_nanos: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// Cumulative counts per bucket, matching [`LATENCY_BUCKETS`] plus `+Inf`.
    pub(crate) cumulative: Vec<u64>,
    /// Sum of observations in seconds.
    pub(crate) sum_seconds: f64,
    /// Number of observations.
    pub(crate) count: u64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, value: Duration) {
        self.observe_nanos(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one observation of `nanos` nanoseconds.
    pub(crate) fn observe_nanos(&self, nanos: u64) {
        let index = BUCKET_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKET_NANOS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the current values.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// The status classes counted per route (handlers never send 1xx).
const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Request counters kept by the loop (single-threaded, so plain cells).
#[derive(Debug)]
pub(crate) struct RequestMetrics {
    /// Per route id: responses by status class.
    by_route: Vec<[Cell<u64>; 4]>,
    /// Per route id: handler latency.
    latency: Vec<Histogram>,
    /// Responses to requests that matched no route (404/405), by status class.
    unmatched: [Cell<u64>; 4],
    /// Requests refused by the front end before routing (malformed, too large, timed out), by
    /// status code.
    rejected: RefCell<Vec<(u16, u64)>>,
    /// Requests whose handler is running.
    in_flight: Cell<u64>,
    /// Requests dropped before their handler answered (client gone, forced shutdown).
    abandoned: Cell<u64>,
}

impl RequestMetrics {
    /// Creates counters for `routes` routes.
    pub(crate) fn new(routes: usize) -> RequestMetrics {
        RequestMetrics {
            by_route: (0..routes).map(|_| Default::default()).collect(),
            latency: (0..routes).map(|_| Histogram::default()).collect(),
            unmatched: Default::default(),
            rejected: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            abandoned: Cell::new(0),
        }
    }

    /// Counts a response of route `route_id` (or of no route) with `status`, taking `took`.
    pub(crate) fn record(&self, route_id: Option<usize>, status: u16, took: Duration) {
        let class = usize::from(status / 100).clamp(2, 5) - 2;
        let cell = match route_id {
            Some(id) => {
                self.latency[id].observe(took);
                &self.by_route[id][class]
            }
            None => &self.unmatched[class],
        };
        cell.set(cell.get() + 1);
    }

    /// Counts a request as in flight until the guard is dropped.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight {
            metrics: self,
            completed: false,
        }
    }

    /// Returns the number of requests whose handler is running.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.get()
    }

    /// Returns the number of requests dropped before their handler answered.
    pub(crate) fn abandoned(&self) -> u64 {
        self.abandoned.get()
    }

    /// Counts a request refused by the front end with `status`.
    pub(crate) fn record_rejected(&self, status: u16) {
        let mut rejected = self.rejected.borrow_mut();
        match rejected.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += 1,
            None => {
                rejected.push((status, 1));
                rejected.sort_unstable();
            }
        }
    }
}

/// Counts a request as in flight until dropped; a request dropped before completing (client
/// gone, route deadline, forced shutdown) is counted as abandoned.
#[derive(Debug)]
pub(crate) struct InFlight<'a> {
    /// The counters.
    metrics: &'a RequestMetrics,
    /// Set when the handler produced a response.
    completed: bool,
}

impl InFlight<'_> {
    /// Marks the request as answered.
    pub(crate) fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.set(self.metrics.in_flight.get() - 1);
        if !self.completed {
            self.metrics.abandoned.set(self.metrics.abandoned.get() + 1);
        }
    }
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations with their sum and count.
    Histogram,
}

impl Kind {
    /// Returns the name used on the `# TYPE` line.
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Builds a Prometheus text exposition, writing `# HELP`/`# TYPE` once per metric family.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    /// The text so far.
    out: String,
}

impl Exposition {
    /// Starts the family `name` of `kind` and returns the writer of its samples.
    pub(crate) fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// Returns the exposition text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Writes the samples of one metric family, each under the family's name.
#[derive(Debug)]
pub(crate) struct Family<'a> {
    /// The exposition text.
    out: &'a mut String,
    /// The family's name.
    name: &'a str,
}

impl Family<'_> {
    /// Writes one sample with `labels` (name, value pairs; values are escaped).
    pub(crate) fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        write_labels(self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples of a histogram with `labels`.
    pub(crate) fn histogram(&mut self, labels: &[(&str, &str)], h: &Histogram) -> &mut Self {
        let name = self.name;
        let snapshot = h.snapshot();
        for (i, count) in snapshot.cumulative.iter().enumerate() {
            let bound = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_value(*b));
            let _ = write!(self.out, "{name}_bucket");
            write_labels(self.out, labels, Some(&bound));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = write!(self.out, "{name}_sum");
        write_labels(self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(snapshot.sum_seconds));
        let _ = write!(self.out, "{name}_count");
        write_labels(self.out, labels, None);
        let _ = writeln!(self.out, " {}", snapshot.count);
        self
    }
}

/// Writes `{a="1",b="2"}` (plus `le` for histogram buckets), or nothing without labels.
fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Formats a sample value: integers without a fraction, others in full precision.
fn format_value(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

impl RequestMetrics {
    /// Returns (status class, count) for route `route_id`, or for unmatched requests.
    pub(crate) fn counts(
        &self,
        route_id: Option<usize>,
    ) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let cells = match route_id {
            Some(id) => &self.by_route[id],
            None => &self.unmatched,
        };
        STATUS_CLASSES
            .iter()
            .copied()
            .zip(cells.iter().map(Cell::get))
    }

    /// Returns the latency histogram of route `route_id`.
    pub(crate) fn latency(&self, route_id: usize) -> &Histogram {
        &self.latency[route_id]
    }

    /// Returns (status, count) for requests refused before routing.
    pub(crate) fn rejected(&self) -> Vec<(u16, u64)> {
        self.rejected.borrow().clone()
    }
}

/// Reads this process's resident set size in bytes (Linux: `/proc/self/status`).
///
/// procfs reads are served from kernel memory and never wait on a disk, so this is safe to call
/// on the loop.
pub(crate) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_in_nanoseconds_match_the_ones_in_seconds() {
        for (nanos, secs) in BUCKET_NANOS.iter().zip(LATENCY_BUCKETS) {
            assert_eq!(*nanos, Duration::from_secs_f64(secs).as_nanos() as u64);
        }
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_nanos(100_001));
        h.observe(Duration::from_secs(6));
        let snapshot = h.snapshot();
        assert_eq!(snapshot.cumulative[0], 1);
        assert_eq!(snapshot.cumulative[1], 2);
        assert_eq!(snapshot.cumulative[LATENCY_BUCKETS.len() - 1], 2);
        assert_eq!(snapshot.cumulative[LATENCY_BUCKETS.len()], 3);
    }

    #[test]
    fn exposition_escapes_labels_and_formats_histograms() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(2));
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things.")
            .sample(&[("route", "GET /a\"b\\c\nd")], 3.0);
        e.family("y_seconds", Kind::Histogram, "Time.")
            .histogram(&[], &h);
        let text = e.finish();
        assert!(
            text.contains("x_total{route=\"GET /a\\\"b\\\\c\\nd\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("y_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("y_seconds_bucket{le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("y_seconds_count 1\n"), "{text}");
    }

    #[test]
    fn request_metrics_count_by_status_class() {
        let m = RequestMetrics::new(1);
        m.record(Some(0), 200, Duration::from_millis(1));
        m.record(Some(0), 503, Duration::from_millis(1));
        m.record(None, 404, Duration::ZERO);
        m.record_rejected(400);
        m.record_rejected(400);
        let route: Vec<_> = m.counts(Some(0)).collect();
        assert_eq!(route[0], ("2xx", 1));
        assert_eq!(route[3], ("5xx", 1));
        assert_eq!(m.counts(None).nth(2), Some(("4xx", 1)));
        assert_eq!(m.rejected(), vec![(400, 2)]);
    }

    #[test]
    fn histogram_counts_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[5], 2); // <= 5 ms
        assert_eq!(*s.cumulative.last().unwrap(), 3);
        assert!((s.sum_seconds - 60.00305).abs() < 1e-6);
    }
}
