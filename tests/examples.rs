//! The examples, served on a free port and asked a real request each.
//!
//! Each example keeps its routes in a public function (`app()`, and `builder()` where it needs
//! settings), and this file includes the example's source as a module to reach it: no child
//! processes, no fixed ports, no waiting for `cargo run`. Only the examples' `main` (which binds
//! a fixed port) is left unused here. `cargo test` also builds every example as a binary.

mod common;

#[allow(dead_code)]
#[path = "../examples/blocking.rs"]
mod blocking;
#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;
#[allow(dead_code)]
#[path = "../examples/hello.rs"]
mod hello;
#[allow(dead_code)]
#[path = "../examples/offload.rs"]
mod offload;
#[allow(dead_code)]
#[path = "../examples/overload.rs"]
mod overload;
#[allow(dead_code)]
#[path = "../examples/shared_state.rs"]
mod shared_state;
#[allow(dead_code)]
#[path = "../examples/streaming.rs"]
mod streaming;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{client, get, start, start_with, url};

#[test]
fn hello_greets_by_path_parameter() {
    let server = start(hello::app);
    assert_eq!(get(&server, "/"), (200, "hello, world\n".to_string()));
    assert_eq!(
        get(&server, "/hello/you"),
        (200, "hello, you\n".to_string())
    );
}

#[test]
fn offload_counts_primes_on_the_pool() {
    let server = start(offload::app);
    assert_eq!(
        get(&server, "/primes?below=100"),
        (200, "25 primes below 100\n".to_string())
    );
    assert_eq!(get(&server, "/primes?below=1000000000").0, 400);
}

#[test]
fn blocking_routes_answer_from_the_pool() {
    let server = start(blocking::app);
    let response = client()
        .post(&url(&server, "/checksum"))
        .send_string("hello")
        .expect("checksum");
    assert_eq!(response.into_string().unwrap(), "a430d84680aabd0b\n");
    assert_eq!(
        get(&server, "/wait?ms=1"),
        (200, "waited 1 ms\n".to_string())
    );
}

#[test]
fn shared_state_keeps_notes_between_requests() {
    let server = start(shared_state::app);
    assert_eq!(get(&server, "/notes/todo").0, 404);
    let put = client()
        .put(&url(&server, "/notes/todo"))
        .send_string("buy milk")
        .expect("put");
    assert_eq!(put.status(), 204);
    assert_eq!(get(&server, "/notes/todo"), (200, "buy milk\n".to_string()));
}

#[test]
fn streaming_sends_every_line() {
    let server = start(streaming::app);
    let (status, body) = get(&server, "/count?to=2500");
    assert_eq!(status, 200);
    let expected: String = (1..=2500).map(|i| format!("{i}\n")).collect();
    assert_eq!(body, expected);
}

#[test]
fn overload_sheds_a_burst_with_retry_after() {
    let server = start_with(overload::builder().addr("127.0.0.1:0"), overload::app);
    // One export runs and two wait; a burst of eight arriving within the first job's 300 ms
    // cannot all be admitted, so some are shed. (Exactly five would be, were the burst
    // instantaneous; a slow machine may spread it out, so only "some" is asserted.)
    let statuses: Vec<(u16, Option<String>)> = thread::scope(|s| {
        let requests: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(
                    || match client().get(&url(&server, "/export?ms=300")).call() {
                        Ok(r) => (r.status(), None),
                        Err(ureq::Error::Status(code, r)) => {
                            (code, r.header("Retry-After").map(String::from))
                        }
                        Err(e) => panic!("export failed: {e}"),
                    },
                )
            })
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let shed: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(ok >= 1 && !shed.is_empty(), "{statuses:?}");
    assert_eq!(ok + shed.len(), 8, "{statuses:?}");
    assert!(
        shed.iter().all(|(_, retry)| retry.is_some()),
        "{statuses:?}"
    );
    // The default class was never involved: the light route answers.
    assert_eq!(get(&server, "/healthz"), (200, "ok\n".to_string()));
}

#[test]
fn embedded_server_runs_next_to_the_programs_own_task() {
    // The server and the ticker live on one thread; the test talks to it from outside.
    let (tx, rx) = mpsc::channel();
    let program = thread::spawn(move || {
        let ticks = Rc::new(Cell::new(0));
        let server = steadyloop::Server::builder()
            .addr("127.0.0.1:0")
            .build(embed::app(ticks.clone()))
            .expect("server builds");
        tx.send((server.local_addr(), server.shutdown_handle()))
            .unwrap();
        embed::run(server, ticks)
    });
    let (addr, shutdown) = rx.recv().expect("server started");
    // The ticker advances every 100 ms; seeing the count move proves both tasks run. This polls
    // a condition with a deadline; the pause only spares the CPU.
    let deadline = Instant::now() + common::CLIENT_TIMEOUT;
    loop {
        let body = client()
            .get(&format!("http://{addr}/ticks"))
            .call()
            .expect("ticks")
            .into_string()
            .unwrap();
        if body != "0 ticks\n" {
            assert!(body.ends_with(" ticks\n"), "{body:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the ticker never ran");
        thread::sleep(Duration::from_millis(20));
    }
    shutdown.shutdown();
    program.join().unwrap().expect("server ran");
}
