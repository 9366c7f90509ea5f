//! What polls the reactor: our own `block_on` (the loop of `Server::run`), or, when the server
//! is embedded in a program's own async-io executor, a driver future that waits for the epoll
//! instance through async-io.
//!
//! # `block_on`
//!
//! Polls the future (in the server, `LocalExecutor::run`, which runs tasks until none is
//! runnable or 200 have run), then waits in `epoll_wait` with the nearest deadline as timeout.
//! Other threads (a pool job finishing) wake the loop through one eventfd, registered once and
//! written only while the loop is parked: the waker sets a `notified` flag, and only if the
//! loop has announced it is `sleeping` does it write. A busy loop is never written to.
//!
//! # Embedded
//!
//! [`with_reactor`] runs a future with this thread's reactor driven: directly if our
//! `block_on` is already driving it, otherwise alongside a driver that registers the epoll
//! descriptor with async-io (an epoll instance is readable when it has events) and sets an
//! async-io timer for the nearest deadline. Then `Server::serve()` keeps working inside
//! `async_io::block_on` or a smol executor.

use std::fmt;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use rustix::event::{eventfd, EventfdFlags};

use super::reactor::Reactor;

thread_local! {
    /// This thread's notifier, registered with its reactor on first use.
    static NOTIFIER: Arc<Notifier> = Notifier::new(&Reactor::current())
        .expect("cannot create the loop's eventfd");
}

/// Wakes the loop from any thread, writing its eventfd only while it is parked.
pub(crate) struct Notifier {
    /// Set by a wake; cleared by the loop before each poll.
    notified: AtomicBool,
    /// Set by the loop just before it parks in `epoll_wait`.
    sleeping: AtomicBool,
    /// The eventfd, registered edge-triggered with the loop's reactor.
    eventfd: OwnedFd,
}

impl Notifier {
    /// Creates the eventfd and registers it with `reactor`.
    fn new(reactor: &Reactor) -> std::io::Result<Arc<Notifier>> {
        let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        reactor.register_notifier(std::os::fd::AsFd::as_fd(&eventfd))?;
        Ok(Arc::new(Notifier {
            notified: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            eventfd,
        }))
    }

    /// Writes the eventfd, which makes the parked loop's `epoll_wait` return.
    fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        if rustix::io::write(&self.eventfd, &one) == Err(rustix::io::Errno::AGAIN) {
            // The counter is never read (edge-triggered), so after 2^64 - 2 wakes it is full:
            // empty it and write again.
            let mut drain = [0u8; 8];
            let _ = rustix::io::read(&self.eventfd, &mut drain);
            let _ = rustix::io::write(&self.eventfd, &one);
        }
    }
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The first wake since the loop's last poll writes, and only if the loop is parked
        // (or about to park: it checks `notified` after setting `sleeping`).
        if !self.notified.swap(true, SeqCst) && self.sleeping.load(SeqCst) {
            self.signal();
        }
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("notified", &self.notified)
            .field("sleeping", &self.sleeping)
            .finish()
    }
}

/// Creates this thread's reactor and its eventfd now, so a server built on this thread does
/// not first need descriptors when it starts running (the process may be out of them by then).
pub(crate) fn prepare() {
    NOTIFIER.with(|_| ());
}

/// Runs `future` to completion on this thread, driving this thread's reactor while it waits.
pub(crate) fn block_on<T>(future: impl Future<Output = T>) -> T {
    let reactor = Reactor::current();
    let notifier = NOTIFIER.with(Arc::clone);
    let _driven = reactor.enter();
    let waker = Waker::from(notifier.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let result = loop {
        notifier.notified.store(false, SeqCst);
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            break value;
        }
        let timeout = if notifier.notified.load(SeqCst) {
            // More to run: only collect what the kernel has ready, without waiting.
            Some(Duration::ZERO)
        } else {
            // Announce the park, then look again: a wake that came before the announcement
            // set `notified` without writing the eventfd.
            notifier.sleeping.store(true, SeqCst);
            if notifier.notified.load(SeqCst) {
                Some(Duration::ZERO)
            } else {
                reactor.next_timeout(Instant::now())
            }
        };
        let waited = reactor.wait(timeout);
        // Awake before the wakes below: the tasks they schedule must not write the eventfd.
        notifier.sleeping.store(false, SeqCst);
        if let Err(e) = waited {
            // Only a broken epoll descriptor fails here; keep going rather than spin silently.
            log::error!("waiting for events failed: {e}");
        }
        reactor.dispatch_events();
    };
    // A `block_on` nested in another may have consumed a wake meant for the outer one.
    notifier.notified.store(true, SeqCst);
    result
}

/// Runs `future` with this thread's reactor driven: as it is under [`block_on`], or by an
/// embedded driver on async-io when polled from another executor.
pub(crate) async fn with_reactor<T>(future: impl Future<Output = T>) -> T {
    let reactor = Reactor::current();
    if reactor.is_driven() {
        return future.await;
    }
    let _driven = reactor.enter();
    let driver = match Embedded::new(reactor.clone()) {
        Ok(driver) => driver,
        Err(e) => {
            log::error!("cannot watch the loop's epoll instance: {e}");
            return future.await;
        }
    };
    let result = future.or(driver).await;
    reactor.clear_driver();
    result
}

/// Drives a reactor from inside an async-io executor; never completes.
struct Embedded<T> {
    /// The reactor.
    reactor: Rc<Reactor>,
    /// A duplicate of the epoll descriptor, registered with async-io.
    epoll: async_io::Async<OwnedFd>,
    /// The async-io timer for the nearest deadline, and that deadline.
    timer: Option<(Instant, async_io::Timer)>,
    /// The output type of the future this driver races (never produced).
    _output: std::marker::PhantomData<fn() -> T>,
}

impl<T> Embedded<T> {
    /// Registers a duplicate of the reactor's epoll descriptor with async-io.
    fn new(reactor: Rc<Reactor>) -> std::io::Result<Embedded<T>> {
        let fd = reactor.epoll_fd().try_clone_to_owned()?;
        Ok(Embedded {
            epoll: async_io::Async::new_nonblocking(fd)?,
            reactor,
            timer: None,
            _output: std::marker::PhantomData,
        })
    }
}

impl<T> Future for Embedded<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        // Bounded, so a descriptor that stays readable cannot keep this poll going forever.
        for _ in 0..16 {
            let events = this.epoll.poll_readable(cx).is_ready();
            if events {
                if let Err(e) = this.reactor.react(Some(Duration::ZERO)) {
                    log::error!("waiting for events failed: {e}");
                }
            } else {
                this.reactor.fire_timers(Instant::now());
            }
            let next = this.reactor.next_deadline();
            this.reactor.set_driver(cx.waker(), next);
            let timer_fired = match next {
                None => {
                    this.timer = None;
                    false
                }
                Some(at) => {
                    let (set, timer) = this
                        .timer
                        .get_or_insert_with(|| (at, async_io::Timer::at(at)));
                    if *set != at {
                        *set = at;
                        timer.set_at(at);
                    }
                    Pin::new(timer).poll(cx).is_ready()
                }
            };
            if !events && !timer_fired {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::Sleep;

    #[test]
    fn a_wake_from_another_thread_ends_the_park() {
        let (tx, rx) = async_channel::bounded::<u32>(1);
        let sender = std::thread::spawn(move || {
            std::thread::park_timeout(Duration::from_millis(20));
            tx.send_blocking(7).unwrap();
        });
        assert_eq!(block_on(rx.recv()).unwrap(), 7);
        sender.join().unwrap();
    }

    #[test]
    fn block_on_waits_for_the_nearest_sleep() {
        let start = Instant::now();
        block_on(async {
            let long = Sleep::after(Duration::from_secs(30));
            let short = Sleep::after(Duration::from_millis(10));
            long.or(short).await;
        });
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(10) && took < Duration::from_secs(10));
    }

    #[test]
    fn an_embedded_driver_serves_sleeps_and_sockets_under_async_io() {
        async_io::block_on(with_reactor(async {
            assert!(Reactor::current().is_driven());
            Sleep::after(Duration::from_millis(5)).await;
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let listener = crate::rt::TcpListener::new(listener).unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let server = crate::rt::TcpStream::new(server).unwrap();
            std::io::Write::write_all(&mut &client, b"hi").unwrap();
            let mut buf = Vec::new();
            server.read_append(&mut buf, 64).await.unwrap();
            assert_eq!(buf, b"hi");
        }));
        assert!(!Reactor::current().is_driven());
    }
}
