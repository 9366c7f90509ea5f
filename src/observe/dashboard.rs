//! The live dashboard: one self-contained page (`dashboard.html`, no external scripts or fonts)
//! and the event stream it reads.
//!
//! The stream sends the `/metrics` exposition itself, once a second, as one `metrics` event
//! (comment lines and per-route latency buckets left out), so the page shows exactly the
//! numbers Prometheus would scrape: loop lag, stalls by route (and task), pool classes,
//! requests by route and status class, connections, resident memory. Each viewer has one small
//! task on the loop that renders and sends; with nobody watching there is no task, no timer
//! and no rendering, so the dashboard costs nothing.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::FutureExt;

use crate::observe::probes;
use crate::response::Response;
use crate::router::Router;
use crate::rt::Sleep;
use crate::server::state::ServerState;
use crate::sse::{self, Event};

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// How often a viewer gets a fresh sample.
const INTERVAL: Duration = Duration::from_secs(1);

/// Answers the page itself.
pub(crate) fn page() -> Response {
    Response::new(200)
        .with_header("Content-Type", "text/html; charset=utf-8")
        .with_header("Cache-Control", "no-cache")
        // The page loads nothing from elsewhere; say so, so an injected script could not either.
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self'",
        )
        .with_body(PAGE)
}

/// Answers the event stream: starts this viewer's sampling task on the loop.
pub(crate) fn events(state: &Rc<ServerState>, router: &Rc<Router>) -> Response {
    let (events, response) = sse::channel(2);
    let sampler = {
        let state = state.clone();
        let router = router.clone();
        async move {
            loop {
                let text = filter(&probes::exposition(&state, router.routes()));
                let first = Event::data(text).event("metrics").retry(INTERVAL * 2);
                // Waits while the viewer reads slowly; fails once it is gone or shutdown began.
                if events.send(first).await.is_err() {
                    return;
                }
                let stopped = state.stopped();
                let stop = async {
                    stopped.await;
                    true
                };
                let tick = async {
                    Sleep::after(INTERVAL).await;
                    false
                };
                if tick.or(stop).await {
                    return;
                }
            }
        }
    };
    match state.spawn(sampler) {
        Some(task) => task.detach(),
        None => return crate::Error::status(503, "server is stopping").into_response(),
    }
    response
}

/// Drops what the page does not read: comments and per-route latency buckets (the largest
/// part of the exposition).
fn filter(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|line| {
            !line.starts_with('#') && !line.starts_with("steadyloop_request_duration_seconds")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_self_contained() {
        assert!(PAGE.len() < 20 * 1024, "{} bytes", PAGE.len());
        for external in ["http://", "https://", "<link", "src=", "@import", "url("] {
            assert!(!PAGE.contains(external), "the page refers to {external}");
        }
    }

    #[test]
    fn filter_keeps_samples_only() {
        let text = "# HELP a b\n# TYPE a counter\na 1\nsteadyloop_request_duration_seconds_bucket{le=\"1\"} 2\nb{x=\"y\"} 3";
        assert_eq!(filter(text), "a 1\nb{x=\"y\"} 3");
    }
}
