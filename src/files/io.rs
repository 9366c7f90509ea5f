//! File I/O off the loop: a bounded I/O class of its own, and streaming of large files with
//! bounded memory.
//!
//! Opening, `stat`, `canonicalize` and reads block, so they run as jobs of the `files` class: a
//! pool class like the CPU ones (bounded workers and queue, shedding, deadlines), but with its
//! own workers, so downloads never wait behind CPU work and CPU work never waits behind disks.
//! A large file is streamed: one job per 64 KiB chunk, handed to the response's bounded body
//! channel by a small pump task. The pump waits for the client, not a worker, so a thousand
//! slow downloads hold a thousand small futures and at most two chunks each, and no thread.
//! The pumps run on one thread of their own (`steadyloop-files`), off the loop.

use std::fs::File;
use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_executor::Executor;
use async_io::Timer;

use crate::config::ClassConfig;
use crate::error::{Error, Result};
use crate::pool::{submit, ClassHandle};
use crate::response::{BodySender, Response};

/// The name of the file I/O pool class.
pub(crate) const IO_CLASS: &str = "files";

/// Jobs of the `files` class that run at once: enough to overlap a few disk waits.
pub(crate) const IO_WORKERS: usize = 4;

/// Jobs of the `files` class that may wait; more are shed with 503.
pub(crate) const IO_QUEUE: usize = 256;

/// Bytes read per job when streaming.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Chunks a streamed download may hold in its channel (plus one being read).
const IN_FLIGHT: usize = 2;

/// How long a stream keeps retrying a chunk read that the `files` class shed.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// Returns the process-wide `files` class (created on first use).
pub(crate) fn io_class() -> ClassHandle {
    static FILES: OnceLock<ClassHandle> = OnceLock::new();
    FILES
        .get_or_init(|| {
            // Never lowered in priority: these threads wait on disks, they do not compute.
            ClassHandle::new(IO_CLASS, ClassConfig::new(IO_WORKERS, IO_QUEUE), false)
        })
        .clone()
}

/// Runs blocking file work `f` on the `files` class.
///
/// # Errors
///
/// [`Error::Overloaded`] or [`Error::QueueTimeout`] when the class is saturated (a 503), and
/// [`Error::HandlerPanicked`] if `f` panicked.
pub(crate) async fn run<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    submit(io_class(), move |_token| f()).await
}

/// Reads up to `len` bytes of `file` at `offset` (short only at the end of the file).
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let n = read_at_once(file, &mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

/// One positional read: no shared cursor, so chunk jobs need no lock.
#[cfg(unix)]
fn read_at_once(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// One positional read: no shared cursor, so chunk jobs need no lock.
#[cfg(windows)]
fn read_at_once(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Returns a `200` response whose body streams `len` bytes of `file` from `start`.
///
/// Memory per download is bounded by `IN_FLIGHT + 1` chunks whatever the client's speed; a
/// client that leaves closes the channel and the pump stops at its next send.
pub(crate) fn stream(file: Arc<File>, start: u64, len: u64) -> Response {
    let (body, response) = Response::channel(IN_FLIGHT);
    spawn_pump(pump(file, start, len, body));
    response.with_stream_len(len)
}

/// Feeds `body` chunk by chunk; each read is a `files` job.
async fn pump(file: Arc<File>, start: u64, len: u64, body: BodySender) {
    let end = start + len;
    let mut offset = start;
    while offset < end {
        if body.is_closed() {
            return;
        }
        let want = CHUNK.min((end - offset) as usize);
        let chunk = match read_chunk(&file, offset, want).await {
            Ok(chunk) if !chunk.is_empty() => chunk,
            Ok(_) => {
                log::warn!("file shrank while being served; response cut short");
                return;
            }
            Err(err) => {
                log::warn!("reading a served file failed: {err}; response cut short");
                return;
            }
        };
        offset += chunk.len() as u64;
        if body.send(chunk).await.is_err() {
            return; // the client went away
        }
    }
}

/// Reads one chunk on the `files` class, retrying for a while when the class sheds the job:
/// a download already under way is worth finishing.
async fn read_chunk(file: &Arc<File>, offset: u64, want: usize) -> io::Result<Vec<u8>> {
    let give_up = Instant::now() + RETRY_FOR;
    loop {
        let file = file.clone();
        match run(move || read_at(&file, offset, want)).await {
            Ok(read) => return read,
            Err(Error::Overloaded { .. } | Error::QueueTimeout { .. })
                if Instant::now() < give_up =>
            {
                Timer::after(Duration::from_millis(20)).await;
            }
            Err(err) => return Err(io::Error::other(err.to_string())),
        }
    }
}

/// Runs `future` on the `steadyloop-files` thread, started on first use.
fn spawn_pump(future: impl Future<Output = ()> + Send + 'static) {
    static PUMPS: OnceLock<Option<&'static Executor<'static>>> = OnceLock::new();
    let executor = PUMPS.get_or_init(|| {
        let executor: &'static Executor<'static> = Box::leak(Box::new(Executor::new()));
        let started = std::thread::Builder::new()
            .name("steadyloop-files".into())
            .spawn(move || {
                futures_lite::future::block_on(executor.run(futures_lite::future::pending::<()>()))
            });
        match started {
            Ok(_) => Some(executor),
            Err(e) => {
                log::error!("could not start the file streaming thread: {e}");
                None
            }
        }
    });
    match executor {
        Some(executor) => executor.spawn(future).detach(),
        // Without the thread the body sender is dropped at once: the response ends early.
        None => drop(future),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn positional_reads_stop_at_the_end() {
        let path = std::env::temp_dir().join(format!("steadyloop-io-{}", std::process::id()));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(b"0123456789"))
            .unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(read_at(&file, 2, 3).unwrap(), b"234");
        assert_eq!(read_at(&file, 8, 10).unwrap(), b"89");
        assert_eq!(read_at(&file, 10, 10).unwrap(), b"");
        std::fs::remove_file(path).unwrap();
    }
}
