//! Timers for code on the loop: [`sleep`], [`interval`] and [`timeout`].
//!
//! These are steadyloop's own types, so the reactor underneath can change without changing
//! them (on Linux they sit in the loop's own timer heap, `src/rt`; off the loop, and on other
//! platforms, on `async-io`'s timers). An armed timer wakes the loop once when it is
//! due; nothing here polls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Waits until `duration` has passed.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// # futures_lite::future::block_on(async {
/// let start = Instant::now();
/// steadyloop::time::sleep(Duration::from_millis(5)).await;
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// # });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        timer: crate::rt::Sleep::after(duration),
    }
}

/// Waits until `deadline`; at once if it has passed.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        timer: crate::rt::Sleep::until(deadline),
    }
}

/// The future returned by [`sleep`] and [`sleep_until`]; resolves to the instant it fired.
pub struct Sleep {
    /// The loop's timer (or async-io's, off the loop).
    timer: crate::rt::Sleep,
}

impl Sleep {
    /// Moves the deadline to `deadline`, so one `Sleep` can be reused.
    pub fn reset(&mut self, deadline: Instant) {
        self.timer = crate::rt::Sleep::until(deadline);
    }
}

impl Future for Sleep {
    type Output = Instant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        Pin::new(&mut self.timer).poll(cx).map(|()| Instant::now())
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").finish_non_exhaustive()
    }
}

/// Returns a ticker that fires every `period`, the first time after one period.
///
/// When the loop was busy and a tick comes late, the next one is due a full period after the
/// late one (ticks are delayed, never bunched up): a sensor sampled every second is never
/// sampled twice in a row to catch up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # futures_lite::future::block_on(async {
/// let mut every = steadyloop::time::interval(Duration::from_millis(2));
/// for _ in 0..3 {
///     every.tick().await;
/// }
/// # });
/// ```
///
/// # Panics
///
/// Panics if `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "interval period must be positive");
    let next = Instant::now() + period;
    Interval {
        period,
        next,
        sleep: sleep_until(next),
    }
}

/// A periodic timer made by [`interval`].
pub struct Interval {
    /// Time between ticks.
    period: Duration,
    /// When the next tick is due.
    next: Instant,
    /// Armed for `next`.
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was due.
    pub async fn tick(&mut self) -> Instant {
        (&mut self.sleep).await;
        let due = self.next;
        let now = Instant::now();
        self.next = if due + self.period > now {
            due + self.period
        } else {
            now + self.period
        };
        self.sleep.reset(self.next);
        due
    }

    /// Returns the time between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// Runs `future` for at most `duration`: its output, or [`Elapsed`] if the time ran out first
/// (the future is then dropped).
///
/// `Elapsed` converts into [`Error::Timeout`], so in a handler `timeout(d, work).await?` answers
/// 504 when the work is too slow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadyloop::time::{sleep, timeout};
///
/// # futures_lite::future::block_on(async {
/// let quick = timeout(Duration::from_secs(1), async { 7 }).await;
/// assert_eq!(quick, Ok(7));
/// let slow = timeout(Duration::from_millis(1), sleep(Duration::from_secs(5))).await;
/// assert!(slow.is_err());
/// # });
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let expired = async {
        sleep(duration).await;
        Err(Elapsed(duration))
    };
    futures_lite::future::or(async { Ok(future.await) }, expired).await
}

/// The error of a [`timeout`] whose time ran out; holds the time allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(Duration);

impl Elapsed {
    /// Returns the time that was allowed.
    pub fn allowed(&self) -> Duration {
        self.0
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.0)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for Error {
    fn from(_: Elapsed) -> Error {
        Error::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn interval_delays_late_ticks_instead_of_bunching() {
        block_on(async {
            let period = Duration::from_millis(5);
            let mut ticker = interval(period);
            ticker.tick().await;
            // Be late by several periods; the next tick still waits about one period.
            std::thread::sleep(period * 4);
            ticker.tick().await;
            let late = Instant::now();
            ticker.tick().await;
            assert!(late.elapsed() >= period - Duration::from_millis(1));
        });
    }

    #[test]
    fn timeout_elapsed_is_a_504() {
        let err: Error = Elapsed(Duration::from_secs(1)).into();
        assert_eq!(err.status_code(), 504);
    }
}
