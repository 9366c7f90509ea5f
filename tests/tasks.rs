//! Tasks and timers on the server's loop: spawned from setup code and from handlers, seen by
//! the stall detector under their names, ended by the shutdown signal within the drain
//! deadline; and `HEAD` on a streaming route stops its producer.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{builder, builder_on, get, start_with};
use steadyloop::{offload_stream, time, Error, Frontend, Router, TestClient};

frontend_tests!(head_on_a_streaming_route_stops_the_producer);

/// Reads `steadyloop_loop_stalls_total` for `route` from `/metrics`.
fn stalls(server: &steadyloop::ServerHandle, route: &str) -> u64 {
    let (_, metrics) = get(server, "/metrics");
    let prefix = format!("steadyloop_loop_stalls_total{{route=\"{route}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse::<f64>().expect("a number") as u64)
        .unwrap_or_else(|| panic!("no stall counter for {route} in:\n{metrics}"))
}

#[test]
fn a_task_that_blocks_the_loop_is_reported_by_name() {
    let (ran_tx, ran_rx) = mpsc::channel::<&'static str>();
    let ran = Mutex::new(ran_tx.clone());
    let server = start_with(
        builder()
            .stall_threshold(Duration::from_millis(40))
            .task("sampler", move || {
                let ran = ran.lock().unwrap().clone();
                async move {
                    // The bug this catches: CPU work in a task of one's own, on the loop.
                    std::thread::sleep(Duration::from_millis(120));
                    ran.send("sampler").unwrap();
                }
            }),
        move || {
            let ran = Mutex::new(ran_tx);
            Router::new()
                .metrics("/metrics")
                .post("/kick", move |_req| {
                    let ran = ran.lock().unwrap().clone();
                    async move {
                        steadyloop::spawn("kicked", async move {
                            std::thread::sleep(Duration::from_millis(120));
                            ran.send("kicked").unwrap();
                        });
                        "kicked\n"
                    }
                })
        },
    );
    assert_eq!(ran_rx.recv().unwrap(), "sampler");
    assert_eq!(stalls(&server, "task sampler"), 1);
    let kicked = common::client()
        .post(&common::url(&server, "/kick"))
        .call()
        .unwrap();
    assert_eq!(kicked.status(), 200);
    assert_eq!(ran_rx.recv().unwrap(), "kicked");
    assert_eq!(stalls(&server, "task kicked"), 1);
    assert_eq!(stalls(&server, "(server)"), 0);
}

#[test]
fn tasks_see_the_shutdown_and_the_drain_does_not_wait_for_its_deadline() {
    let (tx, rx) = mpsc::channel::<&'static str>();
    let tx = Mutex::new(tx);
    let server = start_with(
        builder()
            .drain_timeout(Duration::from_secs(20))
            .task("watcher", move || {
                let tx = tx.lock().unwrap().clone();
                // Asked for while the builder makes the future, before the loop runs.
                let stopping = steadyloop::shutting_down();
                async move {
                    tx.send("started").unwrap();
                    stopping.await;
                    // Cleanup may still await after the signal.
                    time::sleep(Duration::from_millis(10)).await;
                    tx.send("saw shutdown").unwrap();
                }
            }),
        || Router::new().liveness("/healthz"),
    );
    assert_eq!(rx.recv().unwrap(), "started");
    common::shut_down_promptly(server);
    assert_eq!(rx.try_recv(), Ok("saw shutdown"));
}

/// Sends on drop: proves a task's future was dropped.
struct Dropped(mpsc::Sender<&'static str>);

impl Drop for Dropped {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

#[test]
fn a_task_that_ignores_the_shutdown_is_dropped_at_the_drain_deadline() {
    let (tx, rx) = mpsc::channel::<&'static str>();
    let tx = Mutex::new(tx);
    let server = start_with(
        builder()
            .drain_timeout(Duration::from_millis(300))
            .task("stubborn", move || {
                let guard = Dropped(tx.lock().unwrap().clone());
                async move {
                    let _guard = guard;
                    let mut every = time::interval(Duration::from_millis(20));
                    loop {
                        every.tick().await;
                    }
                }
            }),
        || Router::new().liveness("/healthz"),
    );
    let start = Instant::now();
    server.shutdown().unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("dropped"));
}

#[test]
fn join_handles_give_the_output_and_a_panic_ends_only_its_task() {
    let app = Router::new().get("/join", |_req| async {
        let answer = steadyloop::spawn("answer", async { 6 * 7 }).await?;
        let panicked = steadyloop::spawn("bad", async move {
            if answer > 0 {
                panic!("task bug");
            }
        })
        .await;
        let timed_out = time::timeout(
            Duration::from_millis(5),
            time::sleep(Duration::from_secs(9)),
        )
        .await
        .is_err();
        Ok::<_, Error>(format!(
            "{answer} {} {timed_out}\n",
            matches!(panicked, Err(Error::HandlerPanicked(_)))
        ))
    });
    let client = TestClient::new(app);
    assert_eq!(client.get("/join").text(), "42 true true\n");
    // The loop survived the panic.
    assert_eq!(client.get("/join").text(), "42 true true\n");
}

fn head_on_a_streaming_route_stops_the_producer(frontend: Frontend) {
    let produced = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let counter = produced.clone();
    let done_tx = Mutex::new(done_tx);
    let server = start_with(builder_on(frontend), move || {
        Router::new().get("/rows", move |_req| {
            let counter = counter.clone();
            let done = done_tx.lock().unwrap().clone();
            async move {
                offload_stream(2, move |body, token| {
                    for i in 0..100_000 {
                        // A producer that ignores send errors: only the token tells it to stop.
                        if token.is_cancelled() {
                            break;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = body.send_blocking(format!("row {i}\n"));
                    }
                    done.send(()).unwrap();
                })
                .await
            }
        })
    });
    let bytes = common::exchange(
        server.local_addr(),
        b"HEAD /rows HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (response, _) = common::parse_one(&bytes, true).expect("one response");
    assert_eq!(response.status, 200);
    done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let rows = produced.load(Ordering::SeqCst);
    assert!(rows <= 8, "the producer ran on for {rows} rows");
}
