//! The loop's runtime: readiness, timers and `block_on`, built for the one-thread loop.
//!
//! On Linux this is a small readiness layer on rustix's (safe) epoll API: each socket is
//! registered once, edge-triggered; timers live in a heap in the loop, the nearest deadline
//! being `epoll_wait`'s timeout; other threads wake the loop through one eventfd written only
//! while the loop is parked. The steady state of a keep-alive request is then one read, one
//! write and a share of one wait (async-io adds an `epoll_ctl` re-arm per request, plus a
//! timerfd update and an eventfd write per wait). See `reactor.rs`, `timer.rs`, `driver.rs`.
//!
//! Elsewhere (macOS, where users develop, and the BSDs) the same API is a thin layer over
//! async-io (`fallback.rs`): portable, with async-io's costs.
//!
//! The API is what the front end needs and no more: [`TcpListener`], [`TcpStream`], [`Sleep`],
//! [`Signal`] (a loop-local one-shot broadcast: the graceful-shutdown notice), [`timeout`], [`block_on`] and [`with_reactor`] (drive the reactor from inside a program's
//! own async-io executor, so `Server::serve()` stays embeddable). Code in handlers keeps using
//! async-io freely: its reactor is driven by async-io's own thread while our loop runs.

#[cfg(target_os = "linux")]
mod driver;
#[cfg(target_os = "linux")]
mod net;
#[cfg(target_os = "linux")]
mod reactor;
mod signal;
#[cfg(target_os = "linux")]
mod timer;

#[cfg(target_os = "linux")]
pub(crate) use driver::{block_on, prepare, with_reactor};
#[cfg(target_os = "linux")]
pub(crate) use net::{TcpListener, TcpStream};
#[cfg(target_os = "linux")]
pub(crate) use reactor::dispatch_nanos;
pub(crate) use signal::{Signal, Wait};
#[cfg(target_os = "linux")]
pub(crate) use timer::Sleep;

#[cfg(not(target_os = "linux"))]
mod fallback;
#[cfg(not(target_os = "linux"))]
pub(crate) use fallback::{block_on, prepare, with_reactor, Sleep, TcpListener, TcpStream};

/// Returns when the loop woke for the events it is dispatching now (see [`nanos`]): never
/// known here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn dispatch_nanos() -> Option<u64> {
    None
}

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Instant;

/// Returns time zero of the loop's nanosecond timestamps ([`nanos`]), fixed at first use.
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from [`epoch`] to `at`, plus one so the result is never 0 (0 can mean "none").
///
/// One time zero for the process, so the reactor converts its reading once per dispatch and
/// every task it wakes takes the number as it is (the monitor's wake-up times).
pub(crate) fn nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// Polls `future` until it completes or the deadline passes; `None` if the deadline came first.
///
/// `deadline` is called, and a sleep registered, only if `future` does not complete on its
/// first poll: most reads and writes on a busy connection never wait, and then never read the
/// clock. The future is borrowed pinned (the caller pins it in its own frame with
/// [`std::pin::pin!`]) rather than taken by value: an `async fn` stores a by-value future twice
/// (the argument and its moved copy), and an `or` of two `async` blocks twice more; taking it
/// by value here made every read and write future of a connection about 3x larger.
pub(crate) fn timeout<'a, F: Future>(
    deadline: impl FnOnce() -> Instant + 'a,
    mut future: Pin<&'a mut F>,
) -> impl Future<Output = Option<F::Output>> + 'a {
    let mut deadline = Some(deadline);
    let mut sleep: Option<Sleep> = None;
    poll_fn(move |cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let sleep = sleep.get_or_insert_with(|| {
            let at = deadline.take().expect("the deadline is read once")();
            Sleep::until(at)
        });
        Pin::new(sleep).poll(cx).map(|()| None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeout_returns_the_value_or_none_at_the_deadline() {
        block_on(async {
            let soon = Instant::now() + Duration::from_millis(5);
            let ready = std::pin::pin!(async { 3 });
            assert_eq!(timeout(|| soon, ready).await, Some(3));
            let never = std::pin::pin!(futures_lite::future::pending::<()>());
            assert_eq!(timeout(|| soon, never).await, None);
            assert!(Instant::now() >= soon);
        });
    }

    #[test]
    fn async_io_code_keeps_working_under_our_block_on() {
        // A handler may talk to another service with async-io and sleep on its timers: the
        // async-io reactor is driven by its own thread while our loop runs.
        block_on(async {
            let listener =
                async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
            let addr = listener.get_ref().local_addr().unwrap();
            let accept = async { listener.accept().await.unwrap().0 };
            let connect = async { async_io::Async::<std::net::TcpStream>::connect(addr).await };
            let (mut server, client) = futures_lite::future::zip(accept, connect).await;
            let mut client = client.unwrap();
            futures_lite::AsyncWriteExt::write_all(&mut client, b"hello")
                .await
                .unwrap();
            let mut buf = [0u8; 5];
            futures_lite::AsyncReadExt::read_exact(&mut server, &mut buf)
                .await
                .unwrap();
            assert_eq!(&buf, b"hello");
            async_io::Timer::after(Duration::from_millis(2)).await;
            let n = blocking::unblock(|| 21 * 2).await;
            assert_eq!(n, 42);
        });
    }
}
