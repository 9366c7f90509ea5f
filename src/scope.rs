//! The request scope: what the loop is polling right now, visible to `offload` through a
//! thread-local while a handler future is being polled.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::offload::Class;

thread_local! {
    /// The pool class of the handler being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<Class>>> = const { RefCell::new(None) };
}

/// Returns the pool class of the handler being polled on this thread.
pub(crate) fn current_class() -> Option<Arc<Class>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// A handler future that runs inside its route's scope.
pub(crate) struct Scoped<F> {
    /// The route's pool class, installed while `inner` is polled.
    class: Arc<Class>,
    /// The handler future.
    inner: Pin<Box<F>>,
}

impl<F: Future> Scoped<F> {
    /// Wraps `inner` so that `offload` inside it uses `class`.
    pub(crate) fn new(class: Arc<Class>, inner: F) -> Scoped<F> {
        Scoped {
            class,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let previous = CURRENT.with(|current| current.replace(Some(self.class.clone())));
        // Restore the previous scope even if the handler panics, so a caught panic cannot leave
        // a stale class behind for unrelated code.
        struct Restore(Option<Option<Arc<Class>>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take().flatten();
                CURRENT.with(|current| *current.borrow_mut() = previous);
            }
        }
        let _restore = Restore(Some(previous));
        self.inner.as_mut().poll(cx)
    }
}
