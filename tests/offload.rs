//! The CPU pool seen through a real server: light routes stay responsive while every worker is
//! busy, a full queue sheds at once with 503 + Retry-After, on every front end; and panics
//! become 500s (application behaviour, so through the in-process test client).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use common::{get, held_route, start_with};
use steadyloop::{offload, Frontend, Request, Response, Router, TestClient};

frontend_tests!(
    healthz_answers_while_every_worker_is_busy,
    full_queue_sheds_with_503_and_retry_after_then_recovers,
    blocking_routes_run_off_the_loop,
);

fn healthz_answers_while_every_worker_is_busy(frontend: Frontend) {
    let workers = 2;
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(workers + 1));
    let server = {
        let gate = gate.clone();
        start_with(common::builder_on(frontend).workers(workers), move || {
            held_route(
                Router::new().get("/healthz", |_req| async { "ok" }),
                started_tx,
                gate,
            )
        })
    };
    let url = common::url(&server, "/held");
    let clients: Vec<_> = (0..workers)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || {
                common::client()
                    .get(&url)
                    .call()
                    .unwrap()
                    .into_string()
                    .unwrap()
            })
        })
        .collect();
    for _ in 0..workers {
        started_rx.recv().unwrap();
    }
    // Every worker is now blocked on the gate; the loop must still answer.
    assert_eq!(get(&server, "/healthz"), (200, "ok".to_string()));
    gate.wait();
    for client in clients {
        assert_eq!(client.join().unwrap(), "done");
    }
}

fn full_queue_sheds_with_503_and_retry_after_then_recovers(frontend: Frontend) {
    let (started_tx, started_rx) = mpsc::channel();
    let (queued_tx, queued_rx) = mpsc::channel::<()>();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        start_with(
            common::builder_on(frontend).workers(1).queue(1),
            move || {
                let queued_tx = Arc::new(Mutex::new(queued_tx));
                held_route(Router::new(), started_tx, gate).get("/quick", move |_req| {
                    let queued_tx = queued_tx.lock().unwrap().clone();
                    async move {
                        // `offload` queues the job when called; report that, then wait for it.
                        let task = offload(|| "quick");
                        queued_tx.send(()).unwrap();
                        task.await
                    }
                })
            },
        )
    };
    let held = common::get_in_background(&server, "/held");
    started_rx.recv().unwrap();
    let queued = common::get_in_background(&server, "/quick");
    queued_rx.recv().unwrap();

    // One running, one queued: the next job is shed at once.
    let shed = common::client().get(&common::url(&server, "/quick")).call();
    queued_rx.recv().unwrap();
    match shed {
        Err(ureq::Error::Status(503, response)) => {
            let after: u64 = response
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!((1..=60).contains(&after));
        }
        other => panic!("expected 503, got {other:?}"),
    }

    gate.wait();
    assert_eq!(held.join().unwrap(), "done");
    assert_eq!(queued.join().unwrap(), "quick");
    let again = common::get_in_background(&server, "/quick");
    queued_rx.recv().unwrap();
    assert_eq!(again.join().unwrap(), "quick");
}

#[test]
fn panics_in_jobs_and_handlers_become_500_and_the_server_keeps_serving() {
    let client = TestClient::new(
        Router::new()
            .get("/job-panics", |_req| async {
                offload(|| -> &'static str { panic!("job exploded") }).await
            })
            .get("/handler-panics", |req: Request| async move {
                if req.path().len() > 1 {
                    panic!("handler exploded");
                }
                "unreachable"
            })
            .blocking_get("/blocking-panics", |_req| -> Response {
                panic!("blocking exploded")
            })
            .get("/healthz", |_req| async { "ok" }),
    );
    let get = |path: &str| {
        let response = client.get(path);
        (response.status(), response.text())
    };
    for path in ["/job-panics", "/handler-panics", "/blocking-panics"] {
        let (status, body) = get(path);
        assert_eq!(status, 500, "{path}");
        assert!(!body.contains("exploded"), "panic text leaked: {body}");
        assert_eq!(get("/healthz"), (200, "ok".to_string()), "after {path}");
    }
}

fn blocking_routes_run_off_the_loop(frontend: Frontend) {
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let server = {
        let gate = gate.clone();
        start_with(common::builder_on(frontend).workers(1), move || {
            let started = Mutex::new(started_tx);
            Router::new()
                .blocking_get("/slow", move |_req| {
                    started.lock().unwrap().send(()).unwrap();
                    gate.wait();
                    format!("ran on {:?}", thread::current().name())
                })
                .get("/healthz", |_req| async { "ok" })
        })
    };
    let slow = common::get_in_background(&server, "/slow");
    started_rx.recv().unwrap();
    assert_eq!(get(&server, "/healthz").0, 200);
    gate.wait();
    let body = slow.join().unwrap();
    assert!(
        !body.contains("steadyloop\""),
        "blocking handler ran on the loop thread: {body}"
    );
}
