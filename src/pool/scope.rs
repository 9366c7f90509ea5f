//! The request scope: which request the loop is polling right now. While a handler future is
//! polled, a thread-local points at its scope, so `offload` finds the route's pool class and
//! reports the job's queue wait back to the request (for the access log); a wedged job's report
//! names the route.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::class::ClassHandle;
use crate::observe::monitor::Monitor;

thread_local! {
    /// The scope of the handler being polled on this thread, if any.
    static CURRENT: RefCell<Option<Rc<RequestScope>>> = const { RefCell::new(None) };
}

/// What the loop knows about one request while its handler runs.
#[derive(Debug)]
pub(crate) struct RequestScope {
    /// The route's pool class.
    pub(crate) class: ClassHandle,
    /// The route's label (`GET /report`), for reports about its pool jobs.
    pub(crate) route: Arc<str>,
    /// Time the request's pool jobs spent waiting for a worker.
    pub(crate) queue_wait: Cell<Duration>,
}

impl RequestScope {
    /// Creates the scope of a request to route `route` in `class`.
    pub(crate) fn new(class: ClassHandle, route: Arc<str>) -> Rc<RequestScope> {
        Rc::new(RequestScope {
            class,
            route,
            queue_wait: Cell::new(Duration::ZERO),
        })
    }
}

/// Returns the pool class of the handler being polled on this thread.
pub(crate) fn current_class() -> Option<ClassHandle> {
    CURRENT.with(|current| current.borrow().as_ref().map(|scope| scope.class.clone()))
}

/// Returns the label of the route whose handler is being polled on this thread.
pub(crate) fn current_route() -> Option<Arc<str>> {
    CURRENT.with(|current| current.borrow().as_ref().map(|scope| scope.route.clone()))
}

/// Adds a finished job's queue wait to the request being polled, if any.
pub(crate) fn add_queue_wait(waited: Duration) {
    CURRENT.with(|current| {
        if let Some(scope) = current.borrow().as_ref() {
            scope.queue_wait.set(scope.queue_wait.get() + waited);
        }
    });
}

/// A handler future that runs inside its request's scope.
pub(crate) struct Scoped<'a, F> {
    /// Installed while `inner` is polled.
    scope: Rc<RequestScope>,
    /// Told which route is being polled, for the stall detector.
    monitor: &'a Monitor,
    /// The route being served.
    route_id: usize,
    /// The handler future.
    inner: Pin<Box<F>>,
}

impl<'a, F: Future> Scoped<'a, F> {
    /// Wraps `inner`, the handler of route `route_id`.
    pub(crate) fn new(
        scope: Rc<RequestScope>,
        monitor: &'a Monitor,
        route_id: usize,
        inner: F,
    ) -> Self {
        Scoped {
            scope,
            monitor,
            route_id,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Scoped<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.monitor.enter_route(self.route_id);
        let previous = CURRENT.with(|current| current.replace(Some(self.scope.clone())));
        // Restore the previous scope even if the handler panics, so a caught panic cannot leave
        // a stale scope behind for unrelated code.
        struct Restore(Option<Rc<RequestScope>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|current| *current.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        self.inner.as_mut().poll(cx)
    }
}
