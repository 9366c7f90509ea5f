//! What the server tells its supervisor and load balancer: the systemd watchdog ping, sent from
//! the loop only while the service is healthy, and the graceful drain (readiness first, then a
//! drain delay that keeps serving with `Connection: close`, then stop accepting and finish
//! in-flight requests), with its progress shown in the notify status.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::notify::Notifier;
use crate::rt::Sleep;
use crate::server::shutdown::ShutdownRequests;
use crate::server::state::ServerState;

/// How often a drain's progress is shown in the notify status.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Pings the systemd watchdog every half `interval` while the service is healthy.
///
/// It runs on the loop, so a loop frozen by a blocking handler stops pinging by itself. It also
/// withholds the ping once a pool class has been wedged (every worker stuck past its
/// `job-wedge-limit`) for `watchdog-wedge-timeout`: then the supervisor restarts the process.
/// This is the one timer that wakes an idle loop, and only when a watchdog is configured.
pub(super) async fn watchdog(state: Rc<ServerState>, notifier: Arc<Notifier>, interval: Duration) {
    let mut withheld = false;
    loop {
        Sleep::after(interval / 2).await;
        match unhealthy(&state) {
            None => {
                notifier.ping();
                if withheld {
                    withheld = false;
                    log::info!("healthy again: pinging the systemd watchdog");
                    notifier.restore_status();
                }
            }
            Some(reason) => {
                if !withheld {
                    withheld = true;
                    log::error!("not pinging the systemd watchdog: {reason}");
                    notifier.status(&format!("unhealthy: {reason}"));
                }
            }
        }
    }
}

/// Returns why the service should not ping its watchdog, if it should not.
///
/// A stalled loop needs no check here: it cannot run this at all, and the loop monitor
/// triggers the watchdog when a stall outlasts the interval. Once the loop runs again it is
/// healthy, so pings resume at once.
fn unhealthy(state: &ServerState) -> Option<String> {
    let limit = state.config().watchdog_wedge_timeout;
    state.classes().iter().find_map(|class| {
        let wedged = class.wedge().fully_for.filter(|wedged| *wedged >= limit)?;
        Some(format!(
            "pool class `{}` has been wedged for {:.0} s",
            class.name(),
            wedged.as_secs_f64()
        ))
    })
}

/// The first phase of a graceful stop: readiness fails at once and every response closes its
/// connection; for `drain-delay` the server keeps accepting, so a load balancer that has not
/// noticed yet loses nothing. Returns `false` if an immediate stop was asked for meanwhile.
pub(super) async fn announce(state: &ServerState, requests: &ShutdownRequests) -> bool {
    state.begin_draining();
    if let Some(notifier) = state.notifier() {
        let open = state.connections();
        notifier.stopping(&format!("draining {open} connection(s)"));
    }
    let delay = state.config().drain_delay;
    if delay.is_zero() {
        return true;
    }
    log::info!(
        "draining: readiness fails; still serving for {delay:?}, every response with \
         Connection: close"
    );
    let waited = async {
        Sleep::after(delay).await;
        true
    };
    let now = async {
        requests.now().await;
        false
    };
    waited.or(now).await
}

/// Shows the drain's progress in the notify status once a second, asking the supervisor for
/// more stop time whenever a connection closed since the last look, so a long drain that makes
/// progress is not killed at `TimeoutStopSec`. Never resolves.
pub(super) async fn report_progress(state: &ServerState, deadline: Instant) {
    let Some(notifier) = state.notifier().cloned() else {
        return futures_lite::future::pending().await;
    };
    let mut last = state.connections();
    loop {
        Sleep::after(PROGRESS_EVERY).await;
        let open = state.connections();
        let status = format!("draining {open} connection(s)");
        if open < last {
            let left = deadline.saturating_duration_since(Instant::now());
            notifier.extend_timeout(left + PROGRESS_EVERY * 2, &status);
        } else {
            notifier.status(&status);
        }
        last = open;
    }
}
