//! Running out of file descriptors does not kill the accept loop: it logs, backs off, and
//! accepts again once descriptors are free.
//!
//! This file holds a single test because it lowers the process's descriptor limit.

mod common;

use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::Duration;

use rustix::net::{AddressFamily, SocketType};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use steadyloop::Router;

/// A logger that forwards the server's messages to the test.
struct Capture {
    /// Where messages go once the test listens.
    tx: Mutex<Option<SyncSender<String>>>,
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if let Some(tx) = &*self.tx.lock().unwrap() {
            let _ = tx.try_send(format!("{}", record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture {
    tx: Mutex::new(None),
};

/// Installs the capturing logger and returns its messages.
fn capture_logs() -> Receiver<String> {
    let (tx, rx) = mpsc::sync_channel(1024);
    *LOGGER.tx.lock().unwrap() = Some(tx);
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    rx
}

/// Waits for a log message containing `needle`; a failure shows the messages seen meanwhile.
fn wait_for_log(logs: &Receiver<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        let message = logs
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no log message containing {needle:?}; seen: {seen:?}"));
        if message.contains(needle) {
            return message;
        }
        seen.push(message);
    }
}

#[test]
fn accept_loop_survives_descriptor_exhaustion() {
    let logs = capture_logs();
    let server = common::start(|| Router::new().get("/hello", |_req| async { "hello" }));
    let addr = server.local_addr();

    // The client's socket is made first, so connecting needs no new descriptor: another thread
    // (the monitor reading /proc, the test harness) may take any descriptor freed later.
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();

    // Lower the descriptor limit to a little above what is in use, then use up the rest.
    let original = getrlimit(Resource::Nofile);
    let in_use = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(in_use + 32),
            maximum: original.maximum,
        },
    )
    .unwrap();
    let mut filler = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        filler.push(file);
    }
    // Every descriptor is in use: the client's connection is queued, the server's accept fails.
    rustix::net::connect(&socket, &addr).unwrap();
    let mut client = std::net::TcpStream::from(socket);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let message = wait_for_log(&logs, "accept failed");
    assert!(message.contains("backing off"), "{message}");

    // Free the descriptors: the server accepts the waiting connection and serves it.
    drop(filler);
    setrlimit(Resource::Nofile, original).unwrap();
    client
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let responses = common::parse_responses(&common::read_until_close(&mut client));
    assert_eq!(responses[0].text(), "hello");
    wait_for_log(&logs, "accepting connections again");
    // And it keeps accepting new ones.
    let responses = common::raw_responses(
        addr,
        "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses[0].text(), "hello");
}
