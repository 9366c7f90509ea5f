//! Socket activation: listening sockets passed by systemd (or `systemd-socket-activate`) as
//! file descriptors from 3 up, described by `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`.
//!
//! The address setting `systemd` takes the first passed socket, `systemd:NAME` the one whose
//! `FileDescriptorName=` is `NAME`. Each socket is checked to be a listening TCP socket before
//! it is used. The supervisor keeps its own copy of the socket: the server only ever closes its
//! descriptor, never calls `shutdown()`, so connections that arrive while the service restarts
//! wait in the kernel's backlog for the next process, and several processes given the same
//! socket share one accept queue.
//!
//! Turning a descriptor number into a `TcpListener` takes `unsafe` code, which this crate
//! forbids; the `listenfd` crate (no dependencies besides `libc`, already in the tree) does it
//! after checking the descriptor's type. It is behind the `systemd` cargo feature.

use std::net::TcpListener;

use crate::error::{Error, Result};

/// The address setting's prefix that asks for a passed socket.
pub(crate) const SCHEME: &str = "systemd";

/// Returns `true` if `addr` names a passed socket (`systemd` or `systemd:NAME`) rather than an
/// address to bind.
pub(crate) fn is_activation_addr(addr: &str) -> bool {
    addr == SCHEME || addr.starts_with("systemd:")
}

/// What the supervisor passed, read from the environment.
// Used only by `take_listener` with the `systemd` feature (and by the tests).
#[cfg_attr(not(feature = "systemd"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
struct Passed {
    /// How many descriptors, from 3 up.
    count: usize,
    /// Their names, when `LISTEN_FDNAMES` gave them.
    names: Vec<String>,
}

/// Takes the listening socket that `addr` (`systemd` or `systemd:NAME`) names.
///
/// The variables are removed from the environment when read, so child processes do not take the
/// sockets for theirs; a second server in the same process therefore finds none.
///
/// # Errors
///
/// [`Error::Config`] when no socket was passed to this process, the name matches none, or the
/// descriptor is not a listening TCP socket.
#[cfg(feature = "systemd")]
pub(crate) fn take_listener(addr: &str) -> Result<TcpListener> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let passed = parse(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )
    .map_err(|reason| Error::Config(format!("address {addr:?}: {reason}")))?;
    let index = pick(&passed, addr.strip_prefix("systemd:"))
        .map_err(|reason| Error::Config(format!("address {addr:?}: {reason}")))?;
    // listenfd reads LISTEN_PID and LISTEN_FDS again and removes them; the names are ours.
    std::env::remove_var("LISTEN_FDNAMES");
    let mut fds = listenfd::ListenFd::from_env();
    let listener = fds
        .take_tcp_listener(index)
        .map_err(|e| Error::Config(format!("address {addr:?}: descriptor {}: {e}", 3 + index)))?
        .ok_or_else(|| {
            Error::Config(format!(
                "address {addr:?}: descriptor {} is gone",
                3 + index
            ))
        })?;
    let listening = rustix::net::sockopt::socket_acceptconn(&listener).unwrap_or(false);
    if !listening {
        return Err(Error::Config(format!(
            "address {addr:?}: descriptor {} is a TCP socket that is not listening \
             (use ListenStream= with Accept=no)",
            3 + index
        )));
    }
    Ok(listener)
}

/// Without the `systemd` feature, passed sockets cannot be used.
///
/// # Errors
///
/// Always [`Error::Config`], naming the feature to turn on.
#[cfg(not(feature = "systemd"))]
pub(crate) fn take_listener(addr: &str) -> Result<TcpListener> {
    Err(Error::Config(format!(
        "address {addr:?}: socket activation needs the `systemd` cargo feature"
    )))
}

/// Checks the variables against process `pid`.
// Used only by `take_listener` with the `systemd` feature (and by the tests).
#[cfg_attr(not(feature = "systemd"), allow(dead_code))]
fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    ours: u32,
) -> std::result::Result<Passed, String> {
    let Some(fds) = fds else {
        return Err(
            "no sockets were passed (LISTEN_FDS is not set; start the service through \
                    its .socket unit or systemd-socket-activate)"
                .into(),
        );
    };
    match pid.map(|p| p.trim().parse::<u32>()) {
        Some(Ok(pid)) if pid == ours => {}
        Some(Ok(pid)) => {
            return Err(format!(
                "the sockets were passed to process {pid}, not to this one ({ours})"
            ))
        }
        _ => return Err("LISTEN_PID is missing or not a process id".into()),
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS is not a number: {fds:?}"))?;
    if count == 0 {
        return Err("LISTEN_FDS is 0: no sockets were passed".into());
    }
    let names = names
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Passed { count, names })
}

/// Returns the index (from descriptor 3) of the socket called `name`, or of the first one.
// Used only by `take_listener` with the `systemd` feature (and by the tests).
#[cfg_attr(not(feature = "systemd"), allow(dead_code))]
fn pick(passed: &Passed, name: Option<&str>) -> std::result::Result<usize, String> {
    let Some(name) = name else {
        return Ok(0);
    };
    passed
        .names
        .iter()
        .take(passed.count)
        .position(|n| n == name)
        .ok_or_else(|| {
            format!(
                "no passed socket is named {name:?} (LISTEN_FDNAMES: {})",
                passed.names.join(":")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_for_another_process_are_refused() {
        assert!(parse(Some("7"), Some("1"), None, 8).is_err());
        assert!(parse(None, Some("1"), None, 8).is_err());
        assert!(parse(Some("8"), None, None, 8).is_err());
        assert!(parse(Some("8"), Some("0"), None, 8).is_err());
        let passed = parse(Some("8"), Some("2"), Some("http:admin"), 8).unwrap();
        assert_eq!(passed.count, 2);
    }

    #[test]
    fn names_pick_their_descriptor() {
        let passed = parse(Some("8"), Some("2"), Some("http:admin"), 8).unwrap();
        assert_eq!(pick(&passed, None), Ok(0));
        assert_eq!(pick(&passed, Some("admin")), Ok(1));
        assert!(pick(&passed, Some("metrics")).is_err());
        assert!(is_activation_addr("systemd"));
        assert!(is_activation_addr("systemd:admin"));
        assert!(!is_activation_addr("127.0.0.1:8080"));
    }
}
