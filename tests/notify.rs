//! systemd's notify protocol, without systemd: the test binds the notify socket itself, starts
//! the demo with `NOTIFY_SOCKET` and `WATCHDOG_USEC`, and reads what it says: `READY=1` with
//! the listening address, `WATCHDOG=1` about every half interval, no pings while
//! `/report/inline` blocks the loop (a status naming the route and `WATCHDOG=trigger` instead),
//! pings again after it, and `STOPPING=1` on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// The watchdog interval given to the demo.
const INTERVAL: Duration = Duration::from_millis(500);

/// Rows of the inline report: well over one interval of blocking, even in a debug build on a
/// fast machine (about 8 µs per row there).
const STALL_ROWS: u32 = 300_000;

/// A notify socket bound by the test; messages arrive on `messages` with their arrival time.
struct NotifySocket {
    /// The socket's path (removed on drop).
    path: std::path::PathBuf,
    /// What the demo sent, in order.
    messages: Receiver<(Instant, String)>,
}

impl NotifySocket {
    /// Binds a fresh socket in the temp directory and starts reading it.
    fn bind(name: &str) -> NotifySocket {
        let path =
            std::env::temp_dir().join(format!("steadyloop-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let (tx, messages) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        NotifySocket { path, messages }
    }

    /// Waits up to `within` for a message containing `needle`; returns it with its time.
    fn wait_for(
        &self,
        needle: &str,
        within: Duration,
        seen: &mut Vec<(Instant, String)>,
    ) -> (Instant, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) => {
                    seen.push(message.clone());
                    if message.1.contains(needle) {
                        return message;
                    }
                }
                Err(_) => panic!("no {needle:?} within {within:?}; got {:?}", texts(seen)),
            }
        }
    }

    /// Collects every message that arrives until `until`.
    fn collect_until(&self, until: Instant, seen: &mut Vec<(Instant, String)>) {
        while let Ok(message) = self
            .messages
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            seen.push(message);
            if Instant::now() >= until {
                return;
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The texts of `messages`, for failure output.
fn texts(messages: &[(Instant, String)]) -> Vec<&str> {
    messages.iter().map(|(_, text)| text.as_str()).collect()
}

/// The arrival times of the `WATCHDOG=1` pings among `messages`.
fn pings(messages: &[(Instant, String)]) -> Vec<Instant> {
    messages
        .iter()
        .filter(|(_, text)| text.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn notify_protocol_ready_watchdog_stall_and_stopping() {
    let notify = NotifySocket::bind("notify");
    let usec = INTERVAL.as_micros().to_string();
    let path = notify.path.to_str().unwrap().to_string();
    let (mut child, addr) = common::spawn_demo(
        &["--stall-threshold", "100ms"],
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", &usec)],
        false,
    );
    let mut seen = Vec::new();

    // READY=1 once listening, with the address in the status line.
    let (_, ready) = notify.wait_for("READY=1", Duration::from_secs(10), &mut seen);
    assert!(
        ready.contains(&format!("STATUS=listening on http://{addr}")),
        "{ready:?}"
    );

    // Pings about every half interval while idle.
    let start = Instant::now();
    notify.collect_until(start + INTERVAL * 4, &mut seen);
    let idle: Vec<Instant> = pings(&seen).into_iter().filter(|at| *at >= start).collect();
    assert!(idle.len() >= 5, "pings while idle: {:?}", texts(&seen));
    for pair in idle.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > INTERVAL / 4 && gap < INTERVAL,
            "ping gap {gap:?} is not about half of {INTERVAL:?}"
        );
    }

    // A handler blocking the loop: the status names it and the pings stop.
    let blocked = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let request = format!(
            "GET /report/inline?rows={STALL_ROWS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let answered = Instant::now();
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
        answered
    });
    let (stall_seen, status) =
        notify.wait_for("GET /report/inline", Duration::from_secs(30), &mut seen);
    assert!(
        status.contains("STATUS=GET /report/inline blocking the loop for"),
        "{status:?}"
    );
    // The stall outlasts the interval, so the watchdog is triggered, after the route is named.
    let (trigger_at, _) = notify.wait_for("WATCHDOG=trigger", Duration::from_secs(30), &mut seen);
    // The loop sends the usual status again as soon as the stalled poll returns.
    let (stall_end, _) = notify.wait_for("STATUS=listening", Duration::from_secs(60), &mut seen);
    let answered = blocked.join().expect("the inline report is answered");
    notify.collect_until(answered + INTERVAL * 2, &mut seen);
    let all = pings(&seen);
    let last_before = all.iter().filter(|at| **at <= stall_seen).max().copied();
    let during = all
        .iter()
        .filter(|at| **at > stall_seen && **at < stall_end)
        .count();
    assert_eq!(
        during,
        0,
        "pings while the loop was blocked: {:?}",
        texts(&seen)
    );
    let last_before = last_before.expect("a ping before the stall");
    assert!(
        trigger_at - last_before >= INTERVAL / 2,
        "trigger {:?} after the last ping",
        trigger_at - last_before
    );
    // Pinging resumes once the loop runs again.
    assert!(
        all.iter()
            .any(|at| *at > stall_end && *at - stall_end < INTERVAL),
        "no ping within an interval after the stall: {:?}",
        texts(&seen)
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    notify.wait_for("STOPPING=1", Duration::from_secs(10), &mut seen);
    assert!(child.wait().expect("the demo exits").success());
}

#[test]
fn without_a_watchdog_nothing_pings() {
    let notify = NotifySocket::bind("nowatchdog");
    let path = notify.path.to_str().unwrap().to_string();
    let (mut child, _addr) = common::spawn_demo(&[], &[("NOTIFY_SOCKET", &path)], false);
    let mut seen = Vec::new();
    notify.wait_for("READY=1", Duration::from_secs(10), &mut seen);
    notify.collect_until(Instant::now() + Duration::from_millis(600), &mut seen);
    assert!(pings(&seen).is_empty(), "{:?}", texts(&seen));
    // A watchdog meant for another process (WATCHDOG_PID) is not ours to ping either.
    child.kill().unwrap();
    let _ = child.wait();
    let (mut other, _) = common::spawn_demo(
        &[],
        &[
            ("NOTIFY_SOCKET", &path),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
        false,
    );
    let mut seen = Vec::new();
    notify.wait_for("READY=1", Duration::from_secs(10), &mut seen);
    notify.collect_until(Instant::now() + Duration::from_millis(600), &mut seen);
    assert!(pings(&seen).is_empty(), "{:?}", texts(&seen));
    other.kill().unwrap();
    let _ = other.wait();
}
