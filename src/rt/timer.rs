//! Timers kept in the loop: a binary heap of deadlines whose nearest one is the wait's timeout.
//!
//! Setting a sleep costs a heap push and no system call (async-io inserts each `Timer` into a
//! locked map and writes its eventfd; polling re-arms a timerfd on every wait with a timeout).
//! Many of the loop's sleeps are cancelled before they fire (a head or body deadline met in
//! time), so cancelling is lazy: the slot is freed at once and its heap entry skipped when it
//! comes up, and the heap is rebuilt when stale entries outnumber live ones, which keeps its
//! memory bounded by the live sleeps. A connection's idle deadline is one sleep moved later
//! with [`Sleep::reset`] for each keep-alive wait, which touches the heap only when the old
//! deadline comes up.
//!
//! A sleep registers only when first polled, so `timeout(deadline, op)` around an operation
//! that completes at once never touches the heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::reactor::Reactor;

/// Stale heap entries tolerated before a rebuild is considered.
const STALE_SLACK: usize = 64;

/// The heap of deadlines and the sleeps waiting on them.
#[derive(Default)]
pub(crate) struct Timers {
    /// Deadlines with their slot index and generation; the earliest on top.
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// One slot per registered sleep.
    slots: Vec<Slot>,
    /// Free slot indexes.
    free: Vec<u32>,
    /// Heap entries whose sleep was cancelled.
    stale: usize,
}

/// A registered sleep.
#[derive(Default)]
struct Slot {
    /// Bumped each time the slot is freed, so old heap entries do not match.
    generation: u32,
    /// The task to wake at the deadline.
    waker: Option<Waker>,
    /// `true` while the slot's heap entry has not been popped.
    queued: bool,
}

impl Timers {
    /// Registers a sleep until `at`, waking `waker`; returns its slot and generation.
    pub(crate) fn insert(&mut self, at: Instant, waker: &Waker) -> (u32, u32) {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 sleeps")
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.waker = Some(waker.clone());
        slot.queued = true;
        self.heap.push(Reverse((at, index, slot.generation)));
        (index, slot.generation)
    }

    /// Replaces the waker of a registered sleep if it would wake another task, and queues it
    /// again at `at` if its heap entry has fired; `true` if it was queued again.
    pub(crate) fn rearm(
        &mut self,
        index: u32,
        generation: u32,
        at: Instant,
        waker: &Waker,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return false;
        };
        if slot.generation != generation {
            return false;
        }
        match &slot.waker {
            Some(old) if old.will_wake(waker) => {}
            _ => slot.waker = Some(waker.clone()),
        }
        if slot.queued {
            return false;
        }
        slot.queued = true;
        self.heap.push(Reverse((at, index, generation)));
        true
    }

    /// Cancels a sleep; its heap entry, if still queued, is skipped later.
    pub(crate) fn remove(&mut self, index: u32, generation: u32) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        if slot.queued {
            self.stale += 1;
        }
        slot.generation = slot.generation.wrapping_add(1);
        slot.waker = None;
        slot.queued = false;
        self.free.push(index);
        if self.stale > STALE_SLACK && self.stale > self.heap.len() / 2 {
            self.compact();
        }
    }

    /// Drops every stale heap entry.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.heap
            .retain(|Reverse((_, index, generation))| is_live(slots, *index, *generation));
        self.stale = 0;
    }

    /// Takes the waker of one sleep due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Waker> {
        while let Some(Reverse((at, index, generation))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if is_live(&self.slots, index, generation) {
                let slot = &mut self.slots[index as usize];
                slot.queued = false;
                if let Some(waker) = slot.waker.take() {
                    return Some(waker);
                }
            } else {
                self.stale = self.stale.saturating_sub(1);
            }
        }
        None
    }

    /// Returns the nearest live deadline, dropping stale entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, index, generation))) = self.heap.peek().copied() {
            if is_live(&self.slots, index, generation) {
                return Some(at);
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }

    /// Returns the number of heap entries, stale ones included (tests).
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

/// Returns `true` if the heap entry `(index, generation)` belongs to a registered sleep.
fn is_live(slots: &[Slot], index: u32, generation: u32) -> bool {
    slots
        .get(index as usize)
        .is_some_and(|slot| slot.generation == generation && slot.queued)
}

/// A future that completes at a deadline.
///
/// On a thread whose loop runs on this module's reactor, the deadline goes into the loop's
/// heap; anywhere else (a test's `block_on`, a pool thread) it falls back to an
/// `async_io::Timer`, so the same code works on and off the loop.
pub(crate) struct Sleep {
    /// When the sleep completes.
    deadline: Instant,
    /// Where the deadline is registered.
    state: State,
    /// Set by [`Sleep::reset`] when the heap entry is kept: the deadline was just computed
    /// from the clock, so the next poll need not read it (see [`Sleep::reset`]).
    fresh: bool,
}

/// Where a [`Sleep`] is registered.
enum State {
    /// Not polled yet: nothing registered.
    New,
    /// In the reactor heap of the thread identified by `thread`.
    Local {
        /// The registering thread's [`Reactor::thread_id`]: a sleep stays `Send`, and one
        /// dropped on another thread leaves its slot to fire harmlessly instead of touching a
        /// heap it does not own.
        thread: u64,
        /// The heap slot.
        index: u32,
        /// The slot's generation.
        generation: u32,
        /// The deadline of the slot's heap entry (earlier than `deadline` after a
        /// [`Sleep::reset`] to a later one).
        at: Instant,
    },
    /// On async-io's reactor (no loop of ours on this thread).
    Foreign(async_io::Timer),
    /// Completed.
    Done,
    /// Never completes.
    Never,
}

impl Sleep {
    /// Returns a sleep that completes at `deadline`.
    pub(crate) fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            state: State::New,
            fresh: false,
        }
    }

    /// Returns a sleep that completes after `duration`.
    pub(crate) fn after(duration: Duration) -> Sleep {
        Sleep::until(Instant::now() + duration)
    }

    /// Returns a sleep that never completes and registers nothing.
    pub(crate) fn never() -> Sleep {
        Sleep {
            deadline: Instant::now(),
            state: State::Never,
            fresh: false,
        }
    }

    /// Moves the deadline, for a sleep that serves wait after wait (a connection's idle
    /// timer).
    ///
    /// A later deadline than the registered one costs no heap operation: the entry fires at
    /// the old deadline, and the woken sleep enters the heap again for the new one. One sleep
    /// per wait cost a heap push and, once cancelled, a pop from a heap of thousands of stale
    /// keep-alive deadlines: about 500 instructions per keep-alive request.
    ///
    /// The next poll does not read the clock either (about 40 instructions per keep-alive
    /// wait): the kept entry is due no later than `deadline`, so if `deadline` has passed the
    /// entry fires on the loop's next turn, and the sleep, woken, looks at the clock then.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        match self.state {
            State::Local { at, .. } if deadline >= at => self.fresh = true,
            _ => {
                self.deregister();
                self.state = State::New;
            }
        }
        self.deadline = deadline;
    }

    /// Returns `true` if the sleep's heap entry is due after `now`: it cannot have fired yet,
    /// so it is still queued with the waker of the sleep's last poll, and a task that polled
    /// the sleep at an earlier wait need not poll it again to be woken (a connection's idle
    /// timer, polled by its own task only).
    pub(crate) fn queued_past(&self, now: Instant) -> bool {
        matches!(self.state, State::Local { at, .. } if at > now)
    }

    /// Frees the heap slot, if any.
    fn deregister(&mut self) {
        if let State::Local {
            thread,
            index,
            generation,
            ..
        } = self.state
        {
            // `try_with`: a sleep dropped while the thread's locals are torn down has no heap
            // left to leave.
            Reactor::try_with(|reactor| {
                if reactor.thread_id() == thread {
                    reactor.timers.borrow_mut().remove(index, generation);
                }
            });
        }
        self.state = State::Done;
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &mut this.state {
            State::Done => return Poll::Ready(()),
            State::Never => return Poll::Pending,
            State::Foreign(timer) => {
                return Pin::new(timer).poll(cx).map(|_| this.state = State::Done);
            }
            _ => {}
        }
        // A new sleep is registered without looking at the clock: its deadline was almost
        // always just computed from it (a read's timeout, about 45 instructions per request
        // to learn it has not passed). One already due fires on the loop's next turn, when
        // the reactor fires due timers (the wait's timeout is then zero).
        let fresh = std::mem::take(&mut this.fresh);
        if !fresh && !matches!(this.state, State::New) && Instant::now() >= this.deadline {
            this.deregister();
            return Poll::Ready(());
        }
        match this.state {
            State::New => {
                let registered = Reactor::with(|reactor| {
                    if !reactor.is_driven() {
                        return None;
                    }
                    let (index, generation) = reactor
                        .timers
                        .borrow_mut()
                        .insert(this.deadline, cx.waker());
                    reactor.deadline_added(this.deadline);
                    Some(State::Local {
                        thread: reactor.thread_id(),
                        index,
                        generation,
                        at: this.deadline,
                    })
                });
                match registered {
                    Some(state) => this.state = state,
                    None => {
                        let mut timer = async_io::Timer::at(this.deadline);
                        let poll = Pin::new(&mut timer).poll(cx).map(|_| ());
                        this.state = State::Foreign(timer);
                        return poll;
                    }
                }
            }
            State::Local {
                thread,
                index,
                generation,
                ..
            } => Reactor::with(|reactor| {
                if reactor.thread_id() == thread {
                    let deadline = this.deadline;
                    let requeued =
                        reactor
                            .timers
                            .borrow_mut()
                            .rearm(index, generation, deadline, cx.waker());
                    if requeued {
                        reactor.deadline_added(deadline);
                        this.state = State::Local {
                            thread,
                            index,
                            generation,
                            at: deadline,
                        };
                    }
                } else {
                    // Moved to another thread: fall back to async-io from here on.
                    this.state = State::Foreign(async_io::Timer::at(this.deadline));
                    cx.waker().wake_by_ref();
                }
            }),
            State::Foreign(_) | State::Done | State::Never => unreachable!("handled above"),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    /// A waker that does nothing.
    struct Nop;

    impl Wake for Nop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn due_sleeps_come_out_in_deadline_order_and_cancelled_ones_never() {
        let waker = Waker::from(Arc::new(Nop));
        let mut timers = Timers::default();
        let now = Instant::now();
        let late = timers.insert(now + Duration::from_millis(30), &waker);
        let cancelled = timers.insert(now + Duration::from_millis(10), &waker);
        let early = timers.insert(now + Duration::from_millis(20), &waker);
        timers.remove(cancelled.0, cancelled.1);
        assert_eq!(
            timers.next_deadline(),
            Some(now + Duration::from_millis(20))
        );
        assert!(timers.pop_due(now + Duration::from_millis(19)).is_none());
        assert!(timers.pop_due(now + Duration::from_millis(25)).is_some());
        assert!(timers.pop_due(now + Duration::from_millis(25)).is_none());
        // A fired sleep is freed by its owner; removing it counts nothing stale.
        timers.remove(early.0, early.1);
        assert!(timers.pop_due(now + Duration::from_secs(1)).is_some());
        timers.remove(late.0, late.1);
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(timers.stale, 0);
    }

    #[test]
    fn cancelled_sleeps_do_not_pile_up_in_the_heap() {
        let waker = Waker::from(Arc::new(Nop));
        let mut timers = Timers::default();
        let now = Instant::now();
        let keep = timers.insert(now + Duration::from_secs(60), &waker);
        for i in 0..100_000u64 {
            let (index, generation) = timers.insert(now + Duration::from_millis(i), &waker);
            timers.remove(index, generation);
        }
        assert!(
            timers.heap_len() <= 2 * STALE_SLACK + 2,
            "{}",
            timers.heap_len()
        );
        assert!(timers.slots.len() <= 2);
        assert_eq!(timers.next_deadline(), Some(now + Duration::from_secs(60)));
        timers.remove(keep.0, keep.1);
    }

    /// Compile-time check: a sleep can live in `Send` futures (the pool's `Task`).
    #[test]
    fn a_sleep_moved_later_waits_for_the_new_deadline_with_one_heap_entry() {
        crate::rt::block_on(async {
            let reactor = Reactor::current();
            let before = reactor.timers.borrow().heap_len();
            let start = Instant::now();
            let mut sleep = Sleep::until(start + Duration::from_millis(5));
            assert!(futures_lite::future::poll_once(&mut sleep).await.is_none());
            sleep.reset(start + Duration::from_millis(30));
            assert!(futures_lite::future::poll_once(&mut sleep).await.is_none());
            assert_eq!(reactor.timers.borrow().heap_len(), before + 1);
            (&mut sleep).await;
            assert!(Instant::now() >= start + Duration::from_millis(30));
            // Moved earlier, or after it fired, it registers anew.
            sleep.reset(Instant::now() + Duration::from_millis(1));
            (&mut sleep).await;
        });
    }

    #[test]
    fn a_sleep_moved_to_a_deadline_already_passed_fires_on_the_next_turn() {
        crate::rt::block_on(async {
            let start = Instant::now();
            let mut sleep = Sleep::until(start + Duration::from_millis(2));
            assert!(futures_lite::future::poll_once(&mut sleep).await.is_none());
            std::thread::sleep(Duration::from_millis(5));
            // Kept in the heap (not earlier than its entry) and not checked against the clock
            // on this poll; the entry, due already, wakes it on the loop's next turn.
            sleep.reset(Instant::now());
            assert!(futures_lite::future::poll_once(&mut sleep).await.is_none());
            (&mut sleep).await;
            assert!(start.elapsed() < Duration::from_secs(5));
        });
    }

    fn _assert_send<T: Send>() {}
    const _: fn() = _assert_send::<Sleep>;

    #[test]
    fn off_the_loop_a_sleep_falls_back_to_async_io() {
        let start = Instant::now();
        futures_lite::future::block_on(Sleep::after(Duration::from_millis(5)));
        assert!(start.elapsed() >= Duration::from_millis(5));
    }
}
