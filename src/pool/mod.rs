//! The CPU pool: admission control, bounded queues, deadlines and cancellation on top of
//! `blocking`.
//!
//! Each pool class has at most `workers` jobs running and at most `queue` waiting. Workers are
//! long-running `blocking::unblock` tasks that pull jobs from their class's queue, so CPU jobs
//! never share a thread with other `unblock` work while a worker lives, and a job's hand-off
//! costs a condvar signal rather than a new task.
//!
//! The folder is the only code in the crate that touches `blocking`. Its parts:
//! - this file: the entry points, [`offload`], [`offload_cancellable`], [`offload_stream`] for
//!   CPU work and `unblock_io` for the tiny_http front end's blocking I/O;
//! - `task.rs`: [`Task`], [`CancelToken`] and `submit`, a job's way from the caller to a worker
//!   and back;
//! - `class.rs`: a class's queue, limits, counters and worker loop, private to the pool; the
//!   rest of the crate holds a `ClassHandle` and reads its `ClassStats`;
//! - `priority.rs`: worker threads, their lowered priority and the stash that keeps threads
//!   whose priority cannot be restored;
//! - `scope.rs`: the request being polled on the loop, which picks a job's class;
//! - `wedge.rs`: the running jobs of a class, checked against its `job-wedge-limit`.

mod class;
mod priority;
pub(crate) mod scope;
mod task;
mod wedge;

use crate::error::Result;
use crate::response::{BodySender, Response};

pub(crate) use self::class::ClassHandle;
pub(crate) use self::task::submit;
pub use self::task::{CancelToken, Task};
// Kept at its old path so code written against `pool::panic_message` still builds.
#[allow(unused_imports)]
pub(crate) use crate::error::panic_message;

/// Runs `f` on the CPU pool and returns a [`Task`] that resolves to its result.
///
/// This is `run_in_executor` / `spawn_blocking` with limits: inside a request handler the job
/// goes to the route's pool class (see [`Router::class`](crate::Router::class)); elsewhere to a
/// process-wide default class. At most `workers` jobs of a class run at once and at most `queue`
/// wait; beyond that the task resolves at once to [`Error::Overloaded`] (the server answers 503
/// with `Retry-After`). A job that waits past the queue deadline never starts
/// ([`Error::QueueTimeout`]); dropping the task before the job starts removes it from the queue;
/// a panic in `f` becomes [`Error::HandlerPanicked`].
///
/// [`Error::Overloaded`]: crate::Error::Overloaded
/// [`Error::QueueTimeout`]: crate::Error::QueueTimeout
/// [`Error::HandlerPanicked`]: crate::Error::HandlerPanicked
///
/// # Examples
///
/// ```
/// use steadyloop::offload;
///
/// # futures_lite::future::block_on(async {
/// let sum = offload(|| (1..=1_000_000u64).sum::<u64>()).await?;
/// assert_eq!(sum, 500_000_500_000);
/// # Ok::<(), steadyloop::Error>(()) }).unwrap();
/// ```
pub fn offload<T, F>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    submit(current_class(), move |_token| f())
}

/// Runs `f` on the CPU pool like [`offload`], handing it a [`CancelToken`] to poll.
///
/// The token flips when the task is dropped (the client disconnected, the route's deadline
/// passed, or shutdown's drain deadline expired). A long job should check it now and then and
/// return early; its result is discarded anyway.
///
/// # Examples
///
/// ```
/// use steadyloop::offload_cancellable;
///
/// # futures_lite::future::block_on(async {
/// let rows = offload_cancellable(|token| {
///     let mut done = 0;
///     while done < 1000 && !token.is_cancelled() {
///         done += 1;
///     }
///     done
/// })
/// .await?;
/// assert_eq!(rows, 1000);
/// # Ok::<(), steadyloop::Error>(()) }).unwrap();
/// ```
pub fn offload_cancellable<T, F>(f: F) -> Task<T>
where
    F: FnOnce(&CancelToken) -> T + Send + 'static,
    T: Send + 'static,
{
    submit(current_class(), f)
}

/// Runs `f` on the CPU pool to produce a streamed response body, and resolves to the response
/// once the job has started.
///
/// `f` gets a [`BodySender`] for a channel of at most `capacity` chunks and a [`CancelToken`];
/// the response is `200 OK` with a chunked body fed by the job while it runs (add headers with
/// [`Response::with_header`]). A slow client slows the job down, since `send_blocking` waits while
/// the channel is full, so memory stays bounded; when the client goes away, sends fail and the
/// token flips. Admission works as for [`offload`]: if the job is shed or expires in the queue,
/// this resolves to that error (a 503) before any byte of the response is sent.
///
/// # Examples
///
/// ```
/// use steadyloop::{offload_stream, Router};
///
/// let app = Router::new().get("/count", |_req| async {
///     let response = offload_stream(8, |body, token| {
///         for i in 0..10_000 {
///             if token.is_cancelled() || body.send_blocking(format!("{i}\n")).is_err() {
///                 return; // the client went away
///             }
///         }
///     })
///     .await?;
///     Ok(response.with_header("Content-Type", "text/plain"))
/// });
/// # let _ = app;
/// ```
pub async fn offload_stream<F>(capacity: usize, f: F) -> Result<Response>
where
    F: FnOnce(BodySender, &CancelToken) + Send + 'static,
{
    let (sender, response) = Response::channel(capacity);
    let (started_tx, started_rx) = async_channel::bounded::<()>(1);
    let mut task = submit(current_class(), move |token| {
        let _ = started_tx.try_send(());
        drop(started_tx);
        // The task is detached once the job starts, so the client leaving shows up as the
        // body channel closing rather than as the task being dropped.
        let token = token.with_body(&sender);
        f(sender, &token);
    });
    // Resolve when the job starts; a job that fails before starting resolves the task first.
    let started = async {
        let _ = started_rx.recv().await;
        None
    };
    match futures_lite::future::or(async { Some((&mut task).await) }, started).await {
        Some(Err(err)) => Err(err),
        Some(Ok(())) | None => {
            task.detach();
            Ok(response)
        }
    }
}

/// Runs blocking I/O (not CPU work) on the `blocking` crate's pool, outside every pool class's
/// admission control: for the tiny_http front end, whose socket reads, writes and drops block.
///
/// It lives with the CPU pool's entry points so that `pool/` stays the only code that touches
/// `blocking`.
#[cfg(feature = "tiny_http")]
pub(crate) fn unblock_io<T, F>(f: F) -> blocking::Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    blocking::unblock(f)
}

/// Returns the class of the request being handled on this thread, or the process-wide one.
fn current_class() -> ClassHandle {
    scope::current_class().unwrap_or_else(ClassHandle::global)
}

/// Compile-time checks of which types cross to the pool.
#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Task<u32>>();
    is_send::<CancelToken>();
    is_send::<ClassHandle>();
    is_send::<crate::Request>();
    is_send::<crate::Response>();
}
