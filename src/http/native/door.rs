//! Shutting the listener's door before closing it, so a graceful stop resets nothing.
//!
//! Closing a listening socket resets every connection the kernel has completed but the server
//! has not accepted yet. A client there (a proxy) has seen its connect succeed and may have sent
//! its request: the reset loses it, and a proxy does not retry a POST it has sent (nginx answers
//! 502). The final sweep takes what is queued, but a connection can still complete in the
//! microseconds between the sweep's last `accept` and the close, or be mid-handshake when the
//! close comes. tests/shutdown.rs's connect storm met that window in 5 runs of 6 (24 stops
//! each) with `shut` made to return `false` by hand.
//!
//! On Linux the door is shut first: a socket filter on the listener drops every segment that
//! opens a connection (SYN without ACK) and lets every other one through. Handshakes already
//! under way complete and queue as before, and the sweep then takes them; a new connection's SYN
//! goes unanswered, the client sends it again after its retransmission timeout (1 s on Linux),
//! finds the socket closed and is refused, which a proxy retries on another server because
//! nothing was sent. The price is that retransmission delay for the few connections that arrive
//! in the last milliseconds of a stop.
//!
//! Only a listener this process bound gets the filter: a socket passed by a supervisor (socket
//! activation) outlives the process, and its queued connections wait for the next one anyway.
//! Elsewhere than Linux the door stays open and the window remains (see deploy/README.md).

use std::net::TcpListener;
use std::time::Duration;

/// How long a shut door waits for handshakes already under way (SYN answered, final ACK in
/// flight) to complete, so the sweep after it takes them: a round trip to a proxy on the same
/// host or network is well under this; each connection arriving in it waits one SYN
/// retransmission before it is refused.
pub(super) const HANDSHAKE_SETTLE: Duration = Duration::from_millis(5);

/// Shuts the door: from now on the kernel drops new connections' SYNs on `listener` (and on
/// the connections accepted from it, which inherit the filter and never see another one).
/// Returns `false` where that cannot be done (not Linux, or the filter was refused), and the
/// stop goes on as before.
#[cfg(target_os = "linux")]
pub(super) fn shut(listener: &TcpListener) -> bool {
    use socket2::{SockFilter, SockRef};
    // Classic BPF over the segment as a TCP socket's filter sees it: from its TCP header, whose
    // byte 13 holds the flags (ACK 0x10, SYN 0x02). A return of 0 drops the segment; any other
    // value keeps that many bytes, so u32::MAX keeps it whole.
    const LD_B_ABS: u16 = 0x30;
    const AND_K: u16 = 0x54;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const FLAGS_OFFSET: u32 = 13;
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    const DROP_NEW_CONNECTIONS: [SockFilter; 5] = [
        SockFilter::new(LD_B_ABS, 0, 0, FLAGS_OFFSET),
        SockFilter::new(AND_K, 0, 0, SYN | ACK),
        // SYN without ACK: on to the drop; anything else: skip it.
        SockFilter::new(JEQ_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ];
    match SockRef::from(listener).attach_filter(&DROP_NEW_CONNECTIONS) {
        Ok(()) => true,
        Err(e) => {
            log::debug!("could not shut the listener's door ({e}); closing it as it is");
            false
        }
    }
}

/// Shuts the door: not possible here, so the stop goes on as before.
#[cfg(not(target_os = "linux"))]
pub(super) fn shut(_listener: &TcpListener) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::shut;

    /// A connection completed before the door shut is still queued and served; one attempted
    /// after gets no handshake (its SYN is dropped), and once the listener closes it is refused
    /// rather than reset after a successful connect.
    #[test]
    fn a_shut_door_keeps_the_queue_and_completes_no_new_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut before = TcpStream::connect(addr).unwrap();
        before.write_all(b"ping").unwrap();
        assert!(shut(&listener));
        // Dropped SYN: the connect neither succeeds nor is refused within the timeout.
        let after = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        let err = after.expect_err("a connect completed through a shut door");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        // The connection queued before is accepted and its bytes read, filter or not.
        let (mut accepted, _) = listener.accept().unwrap();
        accepted
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0; 4];
        accepted.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        accepted.write_all(b"pong").unwrap();
        before
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        before.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        drop(listener);
        let err = TcpStream::connect(addr).expect_err("nothing listens");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    }
}
