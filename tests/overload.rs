//! Overload control through a real server: pool classes isolate each other, queued work of a
//! departed client never runs, queue deadlines shed, cancel tokens flip, readiness follows
//! saturation, and streamed responses keep memory bounded for slow readers.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, get, start_with};
use steadyloop::{offload, offload_cancellable, offload_stream, ClassConfig, RouteOptions, Router};

/// Sends a GET on a new raw connection without reading the answer.
fn send_get(addr: std::net::SocketAddr, path: &str) -> std::net::TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    stream
}

/// Reads one whole response from `stream` (until close) and returns it parsed.
fn response_of(mut stream: std::net::TcpStream) -> common::Raw {
    common::parse_responses(&common::read_until_close(&mut stream)).remove(0)
}

/// Shared plumbing for routes whose jobs report "started" and wait on a gate.
#[derive(Clone)]
struct Held {
    started: Arc<Mutex<mpsc::Sender<&'static str>>>,
    gate: Arc<Barrier>,
}

impl Held {
    fn new(parties: usize) -> (Held, mpsc::Receiver<&'static str>) {
        let (tx, rx) = mpsc::channel();
        let held = Held {
            started: Arc::new(Mutex::new(tx)),
            gate: Arc::new(Barrier::new(parties)),
        };
        (held, rx)
    }

    /// A job body: report `name`, then wait for the gate.
    fn job(&self, name: &'static str) -> impl FnOnce() -> &'static str + Send + 'static {
        let started = self.started.lock().unwrap().clone();
        let gate = self.gate.clone();
        move || {
            started.send(name).unwrap();
            gate.wait();
            name
        }
    }
}

#[test]
fn a_saturated_class_sheds_while_other_classes_and_light_routes_work() {
    let (held, started) = Held::new(2);
    let server = {
        let held = held.clone();
        let builder = common::builder()
            .class("reports", ClassConfig::new(1, 0))
            .class("digest", ClassConfig::new(1, 4));
        start_with(builder, move || {
            let h1 = held.clone();
            Router::new()
                .get("/healthz", |_req| async { "ok" })
                .get_with(
                    "/report",
                    RouteOptions::new().class("reports"),
                    move |_req| {
                        let job = h1.job("report");
                        async move { offload(job).await }
                    },
                )
                .get_with(
                    "/digest",
                    RouteOptions::new().class("digest"),
                    |_req| async { offload(|| "digest").await },
                )
        })
    };
    let first = send_get(server.local_addr(), "/report");
    assert_eq!(started.recv().unwrap(), "report");
    // `reports` has its one worker busy and no queue: the next report is shed at once...
    let shed = response_of(send_get(server.local_addr(), "/report"));
    assert_eq!(shed.status, 503);
    let after: u64 = shed
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(after >= 1);
    // ...while another class and the light route are unaffected.
    assert_eq!(get(&server, "/digest"), (200, "digest".to_string()));
    assert_eq!(get(&server, "/healthz"), (200, "ok".to_string()));
    held.gate.wait();
    assert_eq!(response_of(first).text(), "report");
}

#[test]
fn a_queued_job_whose_client_left_never_runs() {
    let (held, started) = Held::new(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let (gone_tx, gone_rx) = mpsc::channel::<()>();
    let server = {
        let (held, runs) = (held.clone(), runs.clone());
        start_with(common::builder().workers(1), move || {
            let gone = Arc::new(Mutex::new(gone_tx));
            Router::new()
                .get("/hold", move |_req| {
                    let job = held.job("hold");
                    async move { offload(job).await }
                })
                .get("/queued", move |_req| {
                    let runs = runs.clone();
                    // Reports when the handler (and with it the queued task) is dropped.
                    let guard = DropSignal(gone.lock().unwrap().clone());
                    async move {
                        let _guard = guard;
                        offload(move || runs.fetch_add(1, Ordering::SeqCst))
                            .await
                            .map(|_| "ran")
                    }
                })
        })
    };
    let hold = send_get(server.local_addr(), "/hold");
    assert_eq!(started.recv().unwrap(), "hold");
    let queued = send_get(server.local_addr(), "/queued");
    drop(queued); // the client gives up while its job waits in the queue
    gone_rx
        .recv_timeout(common::CLIENT_TIMEOUT)
        .expect("server noticed the disconnect");
    held.gate.wait();
    assert_eq!(response_of(hold).text(), "hold");
    // A later job runs, so the worker has passed where the dropped one was.
    assert_eq!(get(&server, "/queued").0, 200);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "only the later job may have run"
    );
}

/// Sends on its channel when dropped.
struct DropSignal(mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn a_job_past_its_queue_deadline_never_runs_and_the_client_gets_503() {
    let (held, started) = Held::new(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let server = {
        let (held, runs) = (held.clone(), runs.clone());
        start_with(
            common::builder()
                .workers(1)
                .queue_timeout(Duration::from_millis(100)),
            move || {
                Router::new()
                    .get("/hold", move |_req| {
                        let job = held.job("hold");
                        async move { offload(job).await }
                    })
                    .get("/late", move |_req| {
                        let runs = runs.clone();
                        async move {
                            offload(move || runs.fetch_add(1, Ordering::SeqCst))
                                .await
                                .map(|_| "ran")
                        }
                    })
            },
        )
    };
    let hold = send_get(server.local_addr(), "/hold");
    assert_eq!(started.recv().unwrap(), "hold");
    // The worker stays busy until after this answer arrives, so the job can only expire.
    let late = response_of(send_get(server.local_addr(), "/late"));
    assert_eq!(late.status, 503);
    assert!(late.header("retry-after").is_some());
    held.gate.wait();
    assert_eq!(response_of(hold).text(), "hold");
    assert_eq!(get(&server, "/healthz-missing").0, 404); // a round trip after the release
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

/// A route whose job spins until its token flips, reporting both moments.
fn spinning_route(started: mpsc::Sender<()>, saw_cancel: mpsc::Sender<()>) -> Router {
    let started = Arc::new(Mutex::new(started));
    let saw_cancel = Arc::new(Mutex::new(saw_cancel));
    Router::new().get("/spin", move |_req| {
        let started = started.lock().unwrap().clone();
        let saw_cancel = saw_cancel.lock().unwrap().clone();
        async move {
            offload_cancellable(move |token| {
                started.send(()).unwrap();
                let deadline = Instant::now() + common::CLIENT_TIMEOUT;
                while !token.is_cancelled() && Instant::now() < deadline {
                    thread::yield_now();
                }
                if token.is_cancelled() {
                    let _ = saw_cancel.send(());
                }
                "spun"
            })
            .await
        }
    })
}

#[test]
fn the_cancel_token_flips_when_the_client_disconnects() {
    let (started_tx, started) = mpsc::channel();
    let (cancel_tx, saw_cancel) = mpsc::channel();
    let server = start_with(common::builder(), move || {
        spinning_route(started_tx, cancel_tx)
    });
    let client = send_get(server.local_addr(), "/spin");
    started.recv().unwrap();
    drop(client);
    saw_cancel
        .recv_timeout(common::CLIENT_TIMEOUT)
        .expect("token flipped on disconnect");
}

#[test]
fn the_cancel_token_flips_when_shutdown_gives_up_waiting() {
    let (started_tx, started) = mpsc::channel();
    let (cancel_tx, saw_cancel) = mpsc::channel();
    let server = start_with(
        common::builder().drain_timeout(Duration::from_millis(100)),
        move || spinning_route(started_tx, cancel_tx),
    );
    let _client = send_get(server.local_addr(), "/spin");
    started.recv().unwrap();
    server.shutdown().unwrap();
    saw_cancel
        .recv_timeout(common::CLIENT_TIMEOUT)
        .expect("token flipped at the drain deadline");
}

#[test]
fn readiness_follows_queue_saturation() {
    let (held, started) = Held::new(2);
    let server = {
        let held = held.clone();
        start_with(
            common::builder().workers(1).queue(2).ready_queue_ratio(0.5),
            move || {
                Router::new()
                    .readiness("/readyz")
                    .get("/hold", move |_req| {
                        let job = held.job("hold");
                        async move { offload(job).await }
                    })
            },
        )
    };
    assert_eq!(get(&server, "/readyz"), (200, "ready\n".to_string()));
    let first = send_get(server.local_addr(), "/hold");
    assert_eq!(started.recv().unwrap(), "hold");
    let second = send_get(server.local_addr(), "/hold");
    // Wait until the second job is queued; readiness reports it.
    let deadline = Instant::now() + common::CLIENT_TIMEOUT;
    let (status, body) = loop {
        let (status, body) = get(&server, "/readyz");
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        thread::yield_now();
    };
    assert_eq!(status, 503);
    assert!(body.contains("queue is 1/2 full"), "{body}");
    held.gate.wait();
    assert_eq!(started.recv().unwrap(), "hold");
    held.gate.wait();
    assert_eq!(response_of(first).text(), "hold");
    assert_eq!(response_of(second).text(), "hold");
    assert_eq!(get(&server, "/readyz"), (200, "ready\n".to_string()));
}

#[test]
fn a_stream_to_a_slow_reader_keeps_memory_bounded() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1000; // 64 MiB in all
    let produced = Arc::new(AtomicUsize::new(0));
    let server = {
        let produced = produced.clone();
        start_with(common::builder(), move || {
            Router::new().get("/stream", move |_req| {
                let produced = produced.clone();
                async move {
                    offload_stream(4, move |body, _token| {
                        for i in 0..CHUNKS {
                            let chunk = vec![b'a' + (i % 26) as u8; CHUNK];
                            if body.send_blocking(chunk).is_err() {
                                return;
                            }
                            produced.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .await
                }
            })
        })
    };
    let mut client = send_get(server.local_addr(), "/stream");
    let mut head = [0u8; 16];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head[..12], b"HTTP/1.1 200");
    // Stop reading. The producer must stall once the socket buffers and the channel are full.
    let mut last = usize::MAX;
    let deadline = Instant::now() + common::CLIENT_TIMEOUT;
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = produced.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let stalled_at = produced.load(Ordering::SeqCst);
    assert!(
        stalled_at < CHUNKS / 4,
        "producer ran ahead of the reader: {stalled_at} of {CHUNKS} chunks buffered"
    );
    // Now read everything: the producer resumes and the body arrives complete.
    let rest = common::read_until_close(&mut client);
    assert!(
        rest.len() > CHUNK * CHUNKS,
        "body incomplete: {} bytes",
        rest.len()
    );
    assert_eq!(produced.load(Ordering::SeqCst), CHUNKS);
}
