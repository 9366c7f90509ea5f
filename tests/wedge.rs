//! Wedged pool work: a job running past its class's wedge limit is counted in `/metrics`, and
//! `/readyz` answers 503 while every worker of the class holds one.

mod common;

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use steadyloop::{ClassConfig, RouteOptions, Router};

/// The wedge limit of the test class.
const LIMIT: Duration = Duration::from_millis(300);

#[test]
fn a_class_whose_every_worker_is_stuck_is_not_ready() {
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let held_gate = gate.clone();
    let server = common::start_with(
        common::builder().class("slow", ClassConfig::new(1, 4).job_wedge_limit(LIMIT)),
        move || {
            let slow = RouteOptions::new().class("slow");
            common::held_route_with(Router::new(), slow, started_tx, held_gate)
                .readiness("/readyz")
                .metrics("/metrics")
        },
    );
    let held = common::get_in_background(&server, "/held");
    started_rx.recv().unwrap();
    assert_eq!(common::get(&server, "/readyz").0, 200);
    // The job has to outlive its limit: time passing is the point here, not a synchronisation.
    std::thread::sleep(LIMIT + Duration::from_millis(200));
    let (status, body) = common::get(&server, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("pool class `slow`") && body.contains("wedged"),
        "{body}"
    );
    let (_, metrics) = common::get(&server, "/metrics");
    assert!(
        metrics.contains("steadyloop_pool_jobs_wedged_total{class=\"slow\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("steadyloop_pool_jobs_wedged{class=\"slow\"} 1"));
    gate.wait();
    assert_eq!(held.join().unwrap(), "done");
    assert_eq!(common::get(&server, "/readyz").0, 200);
}
