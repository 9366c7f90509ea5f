//! A one-shot signal on the loop: many tasks wait for it, one call fires it.
//!
//! The loop's tasks wait for a graceful shutdown while idle, once per keep-alive request. An
//! async-channel would do (closing it wakes every receiver), but each wait then clones a
//! receiver (atomics) and allocates an event listener under a mutex. Everything here stays on
//! one thread: a wait is an `Rc` clone and, only if it has to wait, a slot in a vector.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A signal that fires once; clones share it.
#[derive(Clone, Default)]
pub(crate) struct Signal {
    /// The state shared by the clones and their waits.
    inner: Rc<Inner>,
}

/// What a [`Signal`]'s clones share.
#[derive(Default)]
struct Inner {
    /// Set once fired.
    fired: Cell<bool>,
    /// Waiting tasks by slot; `None` marks a free slot.
    waiters: RefCell<Vec<Option<Waker>>>,
    /// Free slots of `waiters`.
    free: RefCell<Vec<usize>>,
}

impl Signal {
    /// Fires the signal, waking every wait; later waits complete at once.
    pub(crate) fn fire(&self) {
        self.inner.fired.set(true);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        self.inner.free.borrow_mut().clear();
        for waker in waiters.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Returns `true` once fired.
    pub(crate) fn is_fired(&self) -> bool {
        self.inner.fired.get()
    }

    /// Returns a future that completes once the signal fires; it borrows nothing.
    pub(crate) fn wait(&self) -> Wait {
        Wait {
            inner: self.inner.clone(),
            slot: None,
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("fired", &self.is_fired())
            .finish()
    }
}

/// Completes when its [`Signal`] fires.
pub(crate) struct Wait {
    /// The signal.
    inner: Rc<Inner>,
    /// This wait's slot among the waiters, once registered.
    slot: Option<usize>,
}

impl Wait {
    /// Returns `true` once the wait holds a slot among the waiters: the signal wakes the waker
    /// of its last poll (a task that polled it before need not poll it again to be woken).
    pub(crate) fn is_registered(&self) -> bool {
        self.slot.is_some()
    }
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.inner.fired.get() {
            this.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = this.inner.waiters.borrow_mut();
        match this.slot {
            Some(slot) => match &mut waiters[slot] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                entry => *entry = Some(cx.waker().clone()),
            },
            None => {
                let slot = match this.inner.free.borrow_mut().pop() {
                    Some(slot) => {
                        waiters[slot] = Some(cx.waker().clone());
                        slot
                    }
                    None => {
                        waiters.push(Some(cx.waker().clone()));
                        waiters.len() - 1
                    }
                };
                this.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            if !self.inner.fired.get() {
                self.inner.waiters.borrow_mut()[slot] = None;
                self.inner.free.borrow_mut().push(slot);
            }
        }
    }
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").field("slot", &self.slot).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn firing_wakes_every_wait_and_later_waits_complete_at_once() {
        let signal = Signal::default();
        let mut a = signal.wait();
        let mut b = signal.wait();
        assert!(block_on(poll_once(&mut a)).is_none());
        assert!(block_on(poll_once(&mut b)).is_none());
        // A dropped wait frees its slot for the next one.
        drop(b);
        let mut c = signal.wait();
        assert!(block_on(poll_once(&mut c)).is_none());
        assert_eq!(signal.inner.waiters.borrow().len(), 2);
        signal.fire();
        assert!(signal.is_fired());
        assert!(block_on(poll_once(&mut a)).is_some());
        assert!(block_on(poll_once(&mut c)).is_some());
        block_on(signal.wait());
    }
}
