//! SIGTERM and SIGINT on the demo binary: the first finishes in-flight requests and exits 0, a
//! second exits at once (also 0).
//!
//! Requests are held in flight with `Expect: 100-continue`: the interim `100 Continue` proves
//! the server has read the head, and the body is sent (or not) after the signal.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// The CSV body of the held request.
const CSV: &str = "id,value\n1,10\n2,20\n";

/// The demo process, with its stderr lines forwarded to `log`; killed if still running when
/// dropped.
struct Demo {
    /// The process, until it has been waited for.
    child: Option<Child>,
    /// The address it listens on.
    addr: SocketAddr,
    /// Its stderr, line by line.
    log: Receiver<String>,
}

impl Demo {
    /// Starts the demo on a free port with `extra` flags and waits until it listens.
    fn start(extra: &[&str]) -> Demo {
        let (mut child, addr) = common::spawn_demo(extra, &[("STEADYLOOP_LOG", "info")], true);
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Demo {
            child: Some(child),
            addr,
            log,
        }
    }

    /// Sends `signal` (`TERM`, `INT`) to the process with the `kill` command.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for_log(&self, needle: &str) {
        loop {
            let line = self
                .log
                .recv_timeout(common::CLIENT_TIMEOUT)
                .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
            if line.contains(needle) {
                return;
            }
        }
    }

    /// Waits for the process to exit, at most `limit`; returns its status and how long it took.
    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(limit) {
            Ok(status) => (status.unwrap(), start.elapsed()),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("the demo did not exit within {limit:?}");
            }
        }
    }

    /// Starts `POST /report` with `Expect: 100-continue` and waits for `100 Continue`.
    fn hold_request(&self) -> TcpStream {
        let mut stream = common::connect(self.addr);
        stream
            .write_all(
                format!(
                    "POST /report HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
                     Expect: 100-continue\r\n\r\n",
                    CSV.len()
                )
                .as_bytes(),
            )
            .unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        stream
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let mut demo = Demo::start(&[]);
    let mut stream = demo.hold_request();
    demo.signal("TERM");
    demo.wait_for_log("shutting down: finishing 1 connection");
    stream.write_all(CSV.as_bytes()).unwrap();
    let responses = common::parse_responses(&common::read_until_close(&mut stream));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert!(
        responses[0].text().starts_with("{\"rows\":2,"),
        "{:?}",
        responses[0].text()
    );
    assert_eq!(responses[0].header("connection"), Some("close"));
    // Closing our end lets the server finish its lingering close at once.
    drop(stream);
    let (status, _) = demo.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn second_signal_exits_at_once_without_waiting_for_the_drain() {
    let mut demo = Demo::start(&["--drain-timeout", "60s", "--body-timeout", "60s"]);
    let mut stream = demo.hold_request();
    demo.signal("TERM");
    demo.wait_for_log("shutting down: finishing 1 connection");
    demo.signal("INT");
    let (status, took) = demo.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The held request never got a byte of a response.
    assert!(common::read_until_close(&mut stream).is_empty());
}

#[test]
fn sigint_on_an_idle_server_exits_0() {
    let mut demo = Demo::start(&[]);
    let mut idle = common::connect(demo.addr);
    demo.signal("INT");
    let (status, _) = demo.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(common::read_until_close(&mut idle).is_empty());
}
