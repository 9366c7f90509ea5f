//! The request scope: which request the loop is polling right now. While a handler future is
//! polled, a thread-local holds its scope, so `offload` finds the route's pool class and
//! reports the job's queue wait back to the request (for the access log); a wedged job's report
//! names the route.
//!
//! A scope costs no allocation and nothing to drop: each server's table of route classes and
//! labels is built once and listed per thread, and a request's scope (its table's place in that
//! list, its route id and its queue wait so far) is plain data copied into the thread-local for
//! each poll and back out after it. An `Rc` of the scope and a box of the handler future cost
//! two allocations per request (about 260 instructions); a scope holding the table's `Rc`,
//! moved in and out per poll, still cost about 95 instructions of drop glue and swaps.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use super::class::ClassHandle;
use crate::observe::monitor::Monitor;

thread_local! {
    /// The scope of the handler being polled on this thread, if any.
    static CURRENT: Cell<Option<RequestScope>> = const { Cell::new(None) };
    /// The route tables of the servers on this thread, by place (a place whose server is gone
    /// is reused).
    static TABLES: RefCell<Vec<Weak<[RouteScope]>>> = const { RefCell::new(Vec::new()) };
}

/// What the loop knows about a route for its requests' pool jobs.
#[derive(Debug)]
pub(crate) struct RouteScope {
    /// The route's pool class.
    pub(crate) class: ClassHandle,
    /// The route's label (`GET /report`), for reports about its pool jobs.
    pub(crate) label: Arc<str>,
}

/// The scope of each route of a server, by route id; built once on the loop, shared by every
/// request. Reads as a slice.
#[derive(Debug)]
pub(crate) struct RouteScopes {
    /// The routes' scopes.
    table: Rc<[RouteScope]>,
    /// Where the table is listed in this thread's `TABLES`.
    place: usize,
}

impl RouteScopes {
    /// Lists `routes` (by route id) for the requests polled on this thread.
    pub(crate) fn new(routes: Vec<RouteScope>) -> RouteScopes {
        let table: Rc<[RouteScope]> = Rc::from(routes);
        let listed = Rc::downgrade(&table);
        let place = TABLES.with(|tables| {
            let mut tables = tables.borrow_mut();
            match tables.iter().position(|table| table.strong_count() == 0) {
                Some(place) => {
                    tables[place] = listed;
                    place
                }
                None => {
                    tables.push(listed);
                    tables.len() - 1
                }
            }
        });
        RouteScopes { table, place }
    }
}

impl Deref for RouteScopes {
    type Target = [RouteScope];

    fn deref(&self) -> &[RouteScope] {
        &self.table
    }
}

/// What the loop knows about one request while its handler runs: plain data, so installing
/// it is a copy.
#[derive(Debug, Clone, Copy)]
struct RequestScope {
    /// Where the request's route table is listed in `TABLES`.
    place: usize,
    /// The request's route, an index into that table.
    route_id: usize,
    /// Time the request's pool jobs spent waiting for a worker.
    queue_wait: Duration,
}

/// Returns what `pick` takes from the route of the request being polled on this thread.
fn current_route_scope<T>(pick: impl FnOnce(&RouteScope) -> T) -> Option<T> {
    let scope = CURRENT.with(Cell::get)?;
    let table = TABLES.with(|tables| tables.borrow().get(scope.place)?.upgrade())?;
    table.get(scope.route_id).map(pick)
}

/// Returns the pool class of the handler being polled on this thread.
pub(crate) fn current_class() -> Option<ClassHandle> {
    current_route_scope(|route| route.class.clone())
}

/// Returns the label of the route whose handler is being polled on this thread.
pub(crate) fn current_route() -> Option<Arc<str>> {
    current_route_scope(|route| route.label.clone())
}

/// Adds a finished job's queue wait to the request being polled, if any.
pub(crate) fn add_queue_wait(waited: Duration) {
    CURRENT.with(|current| {
        if let Some(mut scope) = current.get() {
            scope.queue_wait += waited;
            current.set(Some(scope));
        }
    });
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
    let mut scope = RequestScope {
        place: routes.place,
        route_id,
        queue_wait: Duration::ZERO,
    };
    let output = poll_fn(|cx| {
        monitor.enter_route(route_id);
        let _installed = Installed::new(&mut scope);
        inner.as_mut().poll(cx)
    })
    .await;
    (output, scope.queue_wait)
}

/// A request's scope installed as the current one for one poll; dropping it (after the poll,
/// or while a panic unwinds) copies the scope back and restores the previous one, so a caught
/// panic cannot leave a stale scope behind for unrelated code.
struct Installed<'a> {
    /// Where the request keeps its scope between polls.
    home: &'a mut RequestScope,
    /// The scope that was current before (a scope polled inside another).
    previous: Option<RequestScope>,
}

impl<'a> Installed<'a> {
    /// Makes the scope in `home` the current one.
    fn new(home: &'a mut RequestScope) -> Installed<'a> {
        let previous = CURRENT.with(|current| current.replace(Some(*home)));
        Installed { home, previous }
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        if let Some(scope) = CURRENT.with(|current| current.replace(self.previous)) {
            *self.home = scope;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[test]
    fn queue_wait_reaches_the_polled_request_only() {
        let routes = RouteScopes::new(vec![RouteScope {
            class: ClassHandle::global(),
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

    #[test]
    fn a_gone_server_leaves_its_place_to_the_next() {
        let route = || RouteScope {
            class: ClassHandle::global(),
            label: Arc::from("GET /b"),
        };
        let first = RouteScopes::new(vec![route()]);
        let place = first.place;
        drop(first);
        let second = RouteScopes::new(vec![route()]);
        assert_eq!(second.place, place);
    }
}
