//! Stopping on SIGTERM and SIGINT: the first signal starts a graceful shutdown, the next one
//! stops at once.
//!
//! Turned on with [`ServerBuilder::handle_signals`](crate::ServerBuilder::handle_signals). The
//! signals arrive as an async stream on the loop (`async-signal` writes them to a pipe from its
//! handler), so no thread waits for them and no unsafe code lives here.

use std::fmt;
use std::io;

use async_signal::{Signal, Signals};
use futures_lite::StreamExt;

use crate::server::shutdown::ShutdownHandle;

/// The signals that stop the server.
const STOP_SIGNALS: [Signal; 2] = [Signal::Term, Signal::Int];

/// SIGTERM and SIGINT handlers, installed when the server is built so that a signal arriving
/// before the loop runs is kept, not lost or fatal.
pub(crate) struct SignalWatch {
    /// The registered signals; dropping them unregisters the handlers.
    signals: Signals,
}

impl SignalWatch {
    /// Installs the handlers.
    ///
    /// # Errors
    ///
    /// Whatever registering a signal handler fails with.
    pub(crate) fn install() -> io::Result<SignalWatch> {
        Ok(SignalWatch {
            signals: Signals::new(STOP_SIGNALS)?,
        })
    }

    /// Turns signals into shutdown requests on `control` until the server stops.
    ///
    /// The first signal asks for a graceful shutdown, unless one is already under way (asked
    /// for through a [`ShutdownHandle`]); then, like any later signal, it stops the server at
    /// once.
    pub(crate) async fn run(mut self, control: ShutdownHandle) {
        while let Some(received) = self.signals.next().await {
            let Ok(signal) = received else {
                continue;
            };
            let name = if signal == Signal::Term {
                "SIGTERM"
            } else {
                "SIGINT"
            };
            if control.is_shutting_down() {
                log::warn!("{name} received again: stopping now");
                control.shutdown_now();
                return;
            }
            log::info!("{name} received: shutting down gracefully (send it again to stop now)");
            control.shutdown();
        }
    }
}

impl fmt::Debug for SignalWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalWatch")
            .field("signals", &STOP_SIGNALS)
            .finish()
    }
}
