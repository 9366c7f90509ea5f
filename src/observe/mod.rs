//! What the server shows about itself: the loop monitor, request and pool metrics, and the
//! built-in probes (`/healthz`, `/readyz`, `/metrics`).

pub(crate) mod dashboard;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod probes;
