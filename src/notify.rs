//! systemd's notify protocol: readiness, status lines, stopping, stop-timeout extensions and a
//! watchdog that pings only while the service is healthy.
//!
//! Everything here is a no-op unless the supervisor set `NOTIFY_SOCKET` (systemd with
//! `Type=notify`, or any tool that speaks the same protocol). Messages are datagrams of
//! newline-separated `KEY=VALUE` lines sent to that socket, a path or an abstract `@name`. The
//! socket is non-blocking: a supervisor that does not read its queue loses messages, it never
//! blocks the loop.
//!
//! The watchdog ping (`WATCHDOG=1`) is sent by a task on the event loop itself at half of
//! `WATCHDOG_USEC`, so a loop frozen by a blocking handler stops pinging and the supervisor
//! restarts the process. With a watchdog configured the loop therefore wakes at half the
//! interval even when idle; without one, nothing here uses a timer.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The environment variables of the protocol; removed once read so child processes never see
/// them (a child that pinged our watchdog would hide our own stalls).
const VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// A connection to the supervisor's notify socket.
pub(crate) struct Notifier {
    /// Our unbound, non-blocking datagram socket.
    socket: UnixDatagram,
    /// The supervisor's socket address.
    addr: SocketAddr,
    /// `WATCHDOG_USEC` when it applies to this process.
    watchdog: Option<Duration>,
    /// The status shown while nothing special happens (`listening on ...`), restored after a
    /// stall ends.
    base_status: Mutex<String>,
    /// Set once a shutdown has begun: from then on status lines describe the drain.
    stopping: AtomicBool,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, removes them from the process
    /// environment, and returns a notifier if a notify socket was given.
    ///
    /// The variables are removed only when present, once, while the server is built (in a
    /// service's `main`, before it starts threads of its own); `std::env::remove_var` races
    /// only with C code reading the environment on another thread at that moment.
    ///
    /// # Errors
    ///
    /// An unusable `NOTIFY_SOCKET` value or a socket that cannot be created.
    pub(crate) fn from_env() -> io::Result<Option<Notifier>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        for name in VARIABLES {
            std::env::remove_var(name);
        }
        let path = path
            .into_string()
            .map_err(|_| invalid("NOTIFY_SOCKET is not UTF-8"))?;
        let watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
        Notifier::connect(&path, watchdog).map(Some)
    }

    /// Opens a notifier for the socket at `path` (`@name` for an abstract socket).
    ///
    /// # Errors
    ///
    /// An empty or unusable address, or a socket that cannot be created.
    pub(crate) fn connect(path: &str, watchdog: Option<Duration>) -> io::Result<Notifier> {
        let addr = parse_addr(path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            addr,
            watchdog,
            base_status: Mutex::new(String::new()),
            stopping: AtomicBool::new(false),
        })
    }

    /// Returns the watchdog interval the supervisor expects, if it asked for pings.
    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one message; failures are logged at debug level and otherwise ignored.
    pub(crate) fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            log::debug!("notify socket: {e} (message {message:?} lost)");
        }
    }

    /// Tells the supervisor the service is ready, with `status` as its status line.
    pub(crate) fn ready(&self, status: &str) {
        self.set_base_status(status);
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// Sets the status line shown while nothing special happens, and shows it now.
    pub(crate) fn set_base_status(&self, status: &str) {
        *self.base_status.lock().unwrap_or_else(|e| e.into_inner()) = status.to_string();
    }

    /// Shows `status` (a stall, a drain) in `systemctl status`.
    pub(crate) fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Shows the base status again (after a stall ended), unless a shutdown is under way.
    pub(crate) fn restore_status(&self) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let base = self
            .base_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.status(&base);
    }

    /// Tells the supervisor a graceful shutdown has begun.
    pub(crate) fn stopping(&self, status: &str) {
        self.stopping.store(true, Ordering::Release);
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// Asks the supervisor for `more` time before it gives up on the stop (sent while a long
    /// drain still makes progress).
    pub(crate) fn extend_timeout(&self, more: Duration, status: &str) {
        self.send(&format!(
            "EXTEND_TIMEOUT_USEC={}\nSTATUS={}",
            more.as_micros(),
            one_line(status)
        ));
    }

    /// Sends a watchdog ping.
    pub(crate) fn ping(&self) {
        self.send("WATCHDOG=1");
    }

    /// Asks the supervisor to act as if the watchdog expired (a stall past the interval).
    pub(crate) fn trigger(&self, status: &str) {
        self.send(&format!("STATUS={}\nWATCHDOG=trigger", one_line(status)));
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("addr", &self.addr)
            .field("watchdog", &self.watchdog)
            .finish()
    }
}

/// The watchdog interval from `WATCHDOG_USEC`, if set, positive, and meant for process `pid`
/// (`WATCHDOG_PID` unset or equal to it).
fn watchdog_interval(usec: Option<&str>, watchdog_pid: Option<&str>, pid: u32) -> Option<Duration> {
    if let Some(target) = watchdog_pid {
        if target.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Parses a `NOTIFY_SOCKET` value: an absolute path, or `@name` for an abstract socket.
fn parse_addr(path: &str) -> io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        return abstract_addr(name.as_bytes());
    }
    if !path.starts_with('/') {
        return Err(invalid(
            "NOTIFY_SOCKET must be an absolute path or an @abstract name",
        ));
    }
    SocketAddr::from_pathname(path)
}

/// An abstract socket address (Linux and Android only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

/// Abstract socket addresses exist only on Linux.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(invalid("abstract NOTIFY_SOCKET addresses need Linux"))
}

/// An `InvalidInput` error with `message`.
fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Keeps a status on one line (a newline would start another protocol field).
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_applies_only_to_its_process() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(watchdog_interval(Some("1000000"), None, 42), second);
        assert_eq!(watchdog_interval(Some("1000000"), Some("42"), 42), second);
        assert_eq!(watchdog_interval(Some("1000000"), Some("41"), 42), None);
        assert_eq!(watchdog_interval(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 42), None);
        assert_eq!(watchdog_interval(None, None, 42), None);
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("steadyloop-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let receiver = UnixDatagram::bind(&dir).unwrap();
        let notifier = Notifier::connect(dir.to_str().unwrap(), None).unwrap();
        notifier.ready("listening on\nhttp://x");
        let mut buf = [0; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=listening on http://x");
        let _ = std::fs::remove_file(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("steadyloop-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier::connect(&format!("@{name}"), None).unwrap();
        notifier.ping();
        let mut buf = [0; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn relative_paths_are_refused() {
        assert!(parse_addr("run/notify").is_err());
        assert!(parse_addr("/run/systemd/notify").is_ok());
    }
}
