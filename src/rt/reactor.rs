//! The loop's readiness layer on Linux: one epoll instance per thread, every socket registered
//! once, edge-triggered, and its readiness kept here with one waker per direction.
//!
//! # Why edge-triggered, registered once
//!
//! async-io registers each socket one-shot and re-arms it with `epoll_ctl(MOD)` before every
//! wait, about one extra system call per request. Here a socket is added once
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`) and never touched again: the kernel reports
//! each change of state once, the reactor records it as a readiness bit, and an operation
//! clears the bit only when the socket says `EAGAIN` (or a read or write came back short, which
//! shows the socket buffer is drained: the same rule tokio uses). So the steady state of a
//! keep-alive request is one read, one write and a share of one `epoll_wait`.
//!
//! Everything here lives on one thread (`Rc`, `Cell`): sources are registered and their events
//! dispatched by the thread that runs the loop. Other threads reach the loop only through the
//! [`Notifier`](super::driver) and its eventfd.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::event::{epoll, Timespec};

use super::timer::Timers;

/// Readiness bit: the source can be read (or has hung up, which a read reports).
pub(crate) const READ: u8 = 1;
/// Readiness bit: the source can be written.
pub(crate) const WRITE: u8 = 2;

/// The event key of the loop's eventfd; sources use slab indexes, which never reach it.
pub(crate) const NOTIFY_KEY: u64 = u64::MAX;

/// Most events taken from the kernel per wait.
const EVENTS: usize = 256;

/// The next reactor's thread id.
static NEXT_THREAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's reactor, created on first use.
    static CURRENT: Rc<Reactor> = Rc::new(Reactor::new().expect("cannot create an epoll instance"));

    /// When the events being dispatched on this thread arrived, as [`super::nanos`]; 0 outside
    /// a dispatch.
    static DISPATCHED_AT: Cell<u64> = const { Cell::new(0) };
}

/// Returns when the loop woke for the events it is dispatching now (as [`super::nanos`]), if
/// this thread is dispatching: a waker called from a dispatch can take this reading instead
/// of its own (a clock read and a conversion, about 80 instructions per woken task).
pub(crate) fn dispatch_nanos() -> Option<u64> {
    match DISPATCHED_AT.with(Cell::get) {
        0 => None,
        at => Some(at),
    }
}

/// One thread's epoll instance, its registered sources and its timers.
pub(crate) struct Reactor {
    /// The epoll instance.
    epoll: OwnedFd,
    /// Registered sources, indexed by the low half of their event key.
    slab: RefCell<Slab>,
    /// Buffer for the events of one wait.
    events: RefCell<Vec<epoll::Event>>,
    /// Deadlines of the loop's sleeps.
    pub(crate) timers: RefCell<Timers>,
    /// How many drivers (our `block_on`, or an embedded driver) poll this reactor right now.
    driven: Cell<usize>,
    /// The embedded driver's waker: woken when a timer earlier than the one it waits for is set.
    driver: RefCell<Option<Waker>>,
    /// The deadline the embedded driver currently waits for.
    driver_deadline: Cell<Option<Instant>>,
    /// A process-wide unique id of the thread owning this reactor.
    thread: u64,
}

/// Sources by slot, with a generation per slot so a stale event key is recognised.
#[derive(Default)]
struct Slab {
    /// The slots: the generation and the source's shared state, when occupied.
    slots: Vec<(u32, Option<Rc<SourceState>>)>,
    /// Free slot indexes.
    free: Vec<u32>,
}

/// What the reactor and the owner of a socket share: readiness bits and waiting tasks.
#[derive(Default)]
pub(crate) struct SourceState {
    /// `READ` and `WRITE` bits: set by events, cleared by operations that found nothing.
    ready: Cell<u8>,
    /// The task waiting to read.
    reader: RefCell<Option<Waker>>,
    /// The task waiting to write.
    writer: RefCell<Option<Waker>>,
}

impl Reactor {
    /// Creates an epoll instance with nothing registered.
    fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Reactor {
            epoll,
            slab: RefCell::default(),
            events: RefCell::new(Vec::with_capacity(EVENTS)),
            timers: RefCell::default(),
            driven: Cell::new(0),
            driver: RefCell::new(None),
            driver_deadline: Cell::new(None),
            thread: NEXT_THREAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Returns this thread's reactor.
    pub(crate) fn current() -> Rc<Reactor> {
        CURRENT.with(Rc::clone)
    }

    /// Runs `f` with this thread's reactor (no reference count touched).
    pub(crate) fn with<R>(f: impl FnOnce(&Reactor) -> R) -> R {
        CURRENT.with(|reactor| f(reactor))
    }

    /// Runs `f` with this thread's reactor unless the thread is tearing down its locals.
    pub(crate) fn try_with(f: impl FnOnce(&Reactor)) {
        let _ = CURRENT.try_with(|reactor| f(reactor));
    }

    /// Returns an id unique to this reactor's thread among the process's threads.
    pub(crate) fn thread_id(&self) -> u64 {
        self.thread
    }

    /// Returns `true` while some driver polls this thread's reactor.
    pub(crate) fn is_driven(&self) -> bool {
        self.driven.get() > 0
    }

    /// Marks the reactor as polled by one more driver until the guard is dropped.
    pub(crate) fn enter(self: &Rc<Self>) -> DrivenGuard {
        self.driven.set(self.driven.get() + 1);
        DrivenGuard(self.clone())
    }

    /// Returns the epoll instance (the embedded driver waits for it to become readable).
    pub(crate) fn epoll_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Registers `fd` edge-triggered for both directions; the state starts as ready both ways
    /// (an operation that finds nothing clears it, so a wrong guess costs one system call).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<(u64, Rc<SourceState>)> {
        let state = Rc::new(SourceState::default());
        state.ready.set(READ | WRITE);
        let key = {
            let mut slab = self.slab.borrow_mut();
            let index = match slab.free.pop() {
                Some(index) => index,
                None => {
                    slab.slots.push((0, None));
                    u32::try_from(slab.slots.len() - 1).expect("fewer than 2^32 sources")
                }
            };
            let slot = &mut slab.slots[index as usize];
            slot.1 = Some(state.clone());
            (u64::from(slot.0) << 32) | u64::from(index)
        };
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(&self.epoll, fd, epoll::EventData::new_u64(key), flags) {
            self.release(key);
            return Err(e.into());
        }
        Ok((key, state))
    }

    /// Registers the loop's eventfd, edge-triggered, under [`NOTIFY_KEY`].
    pub(crate) fn register_notifier(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(NOTIFY_KEY),
            flags,
        )?;
        Ok(())
    }

    /// Forgets the source under `key`; `fd`, when given, is also removed from the epoll set
    /// (needed only when the descriptor outlives the source, as closing it removes it).
    pub(crate) fn deregister(&self, key: u64, fd: Option<BorrowedFd<'_>>) {
        if let Some(fd) = fd {
            let _ = epoll::delete(&self.epoll, fd);
        }
        self.release(key);
    }

    /// Frees the slot of `key` for reuse under a new generation.
    fn release(&self, key: u64) {
        let mut slab = self.slab.borrow_mut();
        let index = key as u32;
        let slot = &mut slab.slots[index as usize];
        if slot.0 == (key >> 32) as u32 && slot.1.take().is_some() {
            slot.0 = slot.0.wrapping_add(1);
            slab.free.push(index);
        }
    }

    /// Waits for events up to `timeout` (`None`: until one comes), wakes the tasks they concern,
    /// and fires due timers; returns the number of events.
    pub(crate) fn react(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let n = self.wait(timeout)?;
        self.dispatch_events();
        Ok(n)
    }

    /// Waits for events up to `timeout` (`None`: until one comes) and keeps them for
    /// [`Reactor::dispatch_events`]; returns their number.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let spec = timeout.map(|d| Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        let mut events = self.events.borrow_mut();
        events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut *events),
            spec.as_ref(),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(events.len()),
            Err(e) => Err(e.into()),
        }
    }

    /// Wakes the tasks that the last [`Reactor::wait`]'s events concern, then the sleeps due.
    pub(crate) fn dispatch_events(&self) {
        // One reading for the whole dispatch: the time the events are seen.
        let now = Instant::now();
        DISPATCHED_AT.with(|at| at.set(super::nanos(now)));
        let mut events = self.events.borrow_mut();
        for event in events.drain(..) {
            self.dispatch(event.data.u64(), event.flags);
        }
        drop(events);
        self.fire_timers(now);
        DISPATCHED_AT.with(|at| at.set(0));
    }

    /// Records the readiness one event reports and wakes the tasks waiting for it.
    fn dispatch(&self, key: u64, flags: epoll::EventFlags) {
        if key == NOTIFY_KEY {
            // Edge-triggered: the eventfd is never read; its counter only matters on overflow,
            // which the writer handles.
            return;
        }
        let state = {
            let slab = self.slab.borrow();
            match slab.slots.get(key as u32 as usize) {
                Some((generation, Some(state))) if *generation == (key >> 32) as u32 => {
                    state.clone()
                }
                // A source dropped after the kernel queued its event.
                _ => return,
            }
        };
        use epoll::EventFlags as F;
        let mut bits = 0;
        if flags.intersects(F::IN | F::RDHUP | F::HUP | F::ERR | F::PRI) {
            bits |= READ;
        }
        if flags.intersects(F::OUT | F::HUP | F::ERR) {
            bits |= WRITE;
        }
        state.set_ready(bits);
    }

    /// Wakes the sleeps whose deadline has passed.
    pub(crate) fn fire_timers(&self, now: Instant) {
        // One at a time, so a woken task that sets a new sleep finds the timers unborrowed.
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            match due {
                Some(waker) => waker.wake(),
                None => break,
            }
        }
    }

    /// Returns how long until the nearest deadline (`None`: no sleep pending).
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.timers
            .borrow_mut()
            .next_deadline()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Returns the nearest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.borrow_mut().next_deadline()
    }

    /// Tells an embedded driver about a new deadline, waking it if the deadline is earlier
    /// than the one it waits for.
    pub(crate) fn deadline_added(&self, at: Instant) {
        if let Some(waiting) = self.driver_deadline.get() {
            if at >= waiting {
                return;
            }
        }
        if let Some(waker) = self.driver.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Stores the embedded driver's waker and the deadline it now waits for.
    pub(crate) fn set_driver(&self, waker: &Waker, deadline: Option<Instant>) {
        let mut driver = self.driver.borrow_mut();
        match driver.as_ref() {
            Some(old) if old.will_wake(waker) => {}
            _ => *driver = Some(waker.clone()),
        }
        self.driver_deadline.set(deadline);
    }

    /// Forgets the embedded driver.
    pub(crate) fn clear_driver(&self) {
        self.driver.borrow_mut().take();
        self.driver_deadline.set(None);
    }

    /// Returns the number of registered sources (tests).
    #[cfg(test)]
    pub(crate) fn sources(&self) -> usize {
        let slab = self.slab.borrow();
        slab.slots.len() - slab.free.len()
    }
}

impl SourceState {
    /// Sets readiness bits and wakes the tasks waiting for them.
    fn set_ready(&self, bits: u8) {
        self.ready.set(self.ready.get() | bits);
        if bits & READ != 0 {
            if let Some(waker) = self.reader.borrow_mut().take() {
                waker.wake();
            }
        }
        if bits & WRITE != 0 {
            if let Some(waker) = self.writer.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// Returns `true` if the last event or operation left `bit` ready.
    pub(crate) fn is_ready(&self, bit: u8) -> bool {
        self.ready.get() & bit != 0
    }

    /// Clears `bit`: the socket said it has nothing (more) for that direction.
    pub(crate) fn clear(&self, bit: u8) {
        self.ready.set(self.ready.get() & !bit);
    }

    /// Ready when `bit` is set; otherwise remembers the task to wake when an event sets it.
    pub(crate) fn poll_ready(&self, bit: u8, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_ready(bit) {
            return Poll::Ready(());
        }
        let mut slot = if bit == READ {
            self.reader.borrow_mut()
        } else {
            self.writer.borrow_mut()
        };
        match slot.as_ref() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Marks a reactor as driven while it lives.
pub(crate) struct DrivenGuard(Rc<Reactor>);

impl Drop for DrivenGuard {
    fn drop(&mut self) {
        self.0.driven.set(self.0.driven.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    /// Counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_event_sets_readiness_once_and_wakes_the_reader() {
        let reactor = Reactor::current();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let (key, state) = reactor.register(a.as_fd()).unwrap();
        // Registration is optimistic; the first wait reports the socket writable only.
        state.clear(READ);
        reactor.react(Some(Duration::ZERO)).unwrap();
        assert!(!state.is_ready(READ));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(state.poll_ready(READ, &mut cx).is_pending());
        b.write_all(b"x").unwrap();
        assert_eq!(reactor.react(Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(state.is_ready(READ));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Edge-triggered: no new data, no new event.
        assert_eq!(reactor.react(Some(Duration::ZERO)).unwrap(), 0);
        reactor.deregister(key, Some(a.as_fd()));
        assert_eq!(reactor.sources(), 0);
    }

    #[test]
    fn a_stale_key_is_ignored_after_its_slot_is_reused() {
        let reactor = Reactor::current();
        let (a, _b) = UnixStream::pair().unwrap();
        let (old, _) = reactor.register(a.as_fd()).unwrap();
        reactor.deregister(old, Some(a.as_fd()));
        let (c, _d) = UnixStream::pair().unwrap();
        let (new, state) = reactor.register(c.as_fd()).unwrap();
        assert_eq!(old as u32, new as u32, "the slot is reused");
        state.clear(READ | WRITE);
        reactor.dispatch(old, epoll::EventFlags::IN);
        assert!(!state.is_ready(READ));
        reactor.dispatch(new, epoll::EventFlags::IN);
        assert!(state.is_ready(READ));
        reactor.deregister(new, None);
    }
}
