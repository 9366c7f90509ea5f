//! The loop's runtime off Linux: the same API as the epoll layer, on async-io.
//!
//! Portable (kqueue on macOS and the BSDs) at async-io's costs: one-shot registrations re-armed
//! on each wait, timers in async-io's reactor. Behaviour is the same; only the system calls per
//! request differ.

use std::fmt;
use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::net::{self, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};

pub(crate) use async_io::block_on;

/// Nothing to create ahead of time: async-io's reactor is global.
pub(crate) fn prepare() {}

/// Runs `future`; async-io's reactor needs no driver of ours.
pub(crate) async fn with_reactor<T>(future: impl Future<Output = T>) -> T {
    future.await
}

/// A listening socket on the loop.
pub(crate) struct TcpListener(Async<net::TcpListener>);

impl TcpListener {
    /// Registers `listener` with async-io.
    pub(crate) fn new(listener: net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener(Async::new(listener)?))
    }

    /// Waits until a connection may be pending.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// Returns the socket.
    pub(crate) fn get_ref(&self) -> &net::TcpListener {
        self.0.get_ref()
    }

    /// Accepts one pending connection without waiting.
    pub(crate) fn try_accept(&self) -> io::Result<(net::TcpStream, SocketAddr)> {
        self.0.get_ref().accept()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpListener")
            .field(self.0.get_ref())
            .finish()
    }
}

/// A connected socket on the loop.
pub(crate) struct TcpStream(Async<net::TcpStream>);

impl TcpStream {
    /// Registers `stream` with async-io.
    pub(crate) fn new(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream(Async::new(stream)?))
    }

    /// Returns the socket.
    pub(crate) fn get_ref(&self) -> &net::TcpStream {
        self.0.get_ref()
    }

    /// Waits until a read may find data.
    #[cfg(feature = "websocket")]
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// Appends up to `max` bytes to `buf`, waiting until some arrive; cancel-safe.
    pub(crate) async fn read_append(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        self.0
            .read_with(|mut s| {
                if buf.capacity() == 0 {
                    // Through the stack, so a read that finds nothing allocates nothing.
                    let mut stack = [0u8; 4096];
                    let n = s.read(&mut stack[..max.min(4096)])?;
                    buf.extend_from_slice(&stack[..n]);
                    return Ok(n);
                }
                let old = buf.len();
                buf.resize(old + max, 0);
                let result = s.read(&mut buf[old..]);
                buf.truncate(old + *result.as_ref().unwrap_or(&0));
                result
            })
            .await
    }

    /// Reads into `buf` now, or `WouldBlock` (WebSocket sessions keep their own buffers).
    #[cfg(feature = "websocket")]
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut self.0.get_ref()).read(buf)
    }

    /// Writes some of `bytes` now, or `WouldBlock`.
    #[cfg(feature = "websocket")]
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        (&mut self.0.get_ref()).write(bytes)
    }

    /// Waits until a write may make progress.
    #[cfg(feature = "websocket")]
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }

    /// Writes some of `bytes` now, or `WouldBlock`.
    pub(crate) fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        (&mut self.0.get_ref()).write(bytes)
    }

    /// Writes some of `bytes`, waiting until the socket takes any.
    pub(crate) async fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write_with(|mut s| s.write(bytes)).await
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpStream").field(self.0.get_ref()).finish()
    }
}

/// A future that completes at a deadline.
#[derive(Debug)]
pub(crate) struct Sleep(Timer);

impl Sleep {
    /// Returns a sleep that completes at `deadline`.
    pub(crate) fn until(deadline: Instant) -> Sleep {
        Sleep(Timer::at(deadline))
    }

    /// Returns a sleep that completes after `duration`.
    pub(crate) fn after(duration: Duration) -> Sleep {
        Sleep(Timer::after(duration))
    }

    /// Returns a sleep that never completes.
    pub(crate) fn never() -> Sleep {
        Sleep(Timer::never())
    }

    /// Moves the deadline, for a sleep that serves wait after wait.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.0.set_at(deadline);
    }

    /// Never `true` here: async-io's timer must be polled after each [`Sleep::reset`].
    pub(crate) fn queued_past(&self, _now: Instant) -> bool {
        false
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
