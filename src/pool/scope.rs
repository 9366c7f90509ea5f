//! The request scope: which request the loop is polling right now. While a handler future is
//! polled, a thread-local holds its scope, so `offload` finds the route's pool class and
//! reports the job's queue wait back to the request (for the access log); a wedged job's report
//! names the route.
//!
//! A scope costs no allocation: the routes' classes and labels are a table built once per
//! server, and a request's scope (the table, its route id and its queue wait so far) moves into
//! the thread-local for each poll and back out after it. An `Rc` of the scope and a box of the
//! handler future cost two allocations per request (about 260 instructions).

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::class::ClassHandle;
use crate::observe::monitor::Monitor;

thread_local! {
    /// The scope of the handler being polled on this thread, if any (a `Cell`: installing a
    /// scope per poll is a swap, without a borrow flag to check).
    static CURRENT: Cell<Option<RequestScope>> = const { Cell::new(None) };
}

/// What the loop knows about a route for its requests' pool jobs.
#[derive(Debug)]
pub(crate) struct RouteScope {
    /// The route's pool class.
    pub(crate) class: ClassHandle,
    /// The route's label (`GET /report`), for reports about its pool jobs.
    pub(crate) label: Arc<str>,
}

/// The scope of each route of a server, by route id; built once, shared by every request.
pub(crate) type RouteScopes = Rc<[RouteScope]>;

/// What the loop knows about one request while its handler runs.
#[derive(Debug)]
struct RequestScope {
    /// The routes' scopes.
    routes: RouteScopes,
    /// The request's route, an index into `routes`.
    route_id: usize,
    /// Time the request's pool jobs spent waiting for a worker.
    queue_wait: Duration,
}

impl RequestScope {
    /// Returns the scope of the request's route.
    fn route(&self) -> &RouteScope {
        &self.routes[self.route_id]
    }
}

/// Runs `f` on the scope of the request being polled on this thread, if any.
fn with_current<T>(f: impl FnOnce(&mut RequestScope) -> T) -> Option<T> {
    CURRENT.with(|current| {
        let mut scope = current.take()?;
        let out = f(&mut scope);
        current.set(Some(scope));
        Some(out)
    })
}

/// Returns the pool class of the handler being polled on this thread.
pub(crate) fn current_class() -> Option<ClassHandle> {
    with_current(|scope| scope.route().class.clone())
}

/// Returns the label of the route whose handler is being polled on this thread.
pub(crate) fn current_route() -> Option<Arc<str>> {
    with_current(|scope| scope.route().label.clone())
}

/// Adds a finished job's queue wait to the request being polled, if any.
pub(crate) fn add_queue_wait(waited: Duration) {
    with_current(|scope| scope.queue_wait += waited);
}

/// Runs `inner`, the handler of route `route_id` of `routes`, inside its request's scope;
/// resolves to its output and the time its pool jobs waited for a worker.
///
/// The monitor is told which route is being polled, for the stall detector. `inner` is pinned
/// where the caller keeps it: taken by value, it was stored twice in this future (as the
/// argument and pinned) and copied between the two.
pub(crate) async fn scoped<F: Future>(
    routes: &RouteScopes,
    monitor: &Monitor,
    route_id: usize,
    mut inner: Pin<&mut F>,
) -> (F::Output, Duration) {
    let mut scope = Some(RequestScope {
        routes: routes.clone(),
        route_id,
        queue_wait: Duration::ZERO,
    });
    let output = poll_fn(|cx| {
        monitor.enter_route(route_id);
        let _installed = Installed::new(&mut scope);
        inner.as_mut().poll(cx)
    })
    .await;
    let queue_wait = scope.map_or(Duration::ZERO, |scope| scope.queue_wait);
    (output, queue_wait)
}

/// A request's scope installed as the current one for one poll; dropping it (after the poll,
/// or while a panic unwinds) moves the scope back and restores the previous one, so a caught
/// panic cannot leave a stale scope behind for unrelated code.
struct Installed<'a> {
    /// Where the request keeps its scope between polls.
    home: &'a mut Option<RequestScope>,
    /// The scope that was current before (a scope polled inside another).
    previous: Option<RequestScope>,
}

impl<'a> Installed<'a> {
    /// Moves the scope in `home` into the thread-local.
    fn new(home: &'a mut Option<RequestScope>) -> Installed<'a> {
        let previous = CURRENT.with(|current| current.replace(home.take()));
        Installed { home, previous }
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        *self.home = CURRENT.with(|current| current.replace(previous));
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[test]
    fn queue_wait_reaches_the_polled_request_only() {
        let class = ClassHandle::global();
        let routes: RouteScopes = Rc::from(vec![RouteScope {
            class,
            label: Arc::from("GET /a"),
        }]);
        let monitor = Monitor::start(vec!["GET /a".into()], Duration::from_secs(1), false, None);
        let outer = pin!(async {
            add_queue_wait(Duration::from_millis(2));
            assert_eq!(current_route().as_deref(), Some("GET /a"));
            let inner = pin!(async {
                add_queue_wait(Duration::from_millis(5));
            });
            let (_, inner) = scoped(&routes, &monitor, 0, inner).await;
            assert_eq!(inner, Duration::from_millis(5));
            add_queue_wait(Duration::from_millis(1));
        });
        let ((), waited) = futures_lite::future::block_on(scoped(&routes, &monitor, 0, outer));
        assert_eq!(waited, Duration::from_millis(3));
        assert!(current_route().is_none());
    }
}
