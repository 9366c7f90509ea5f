//! TCP sockets on the loop's reactor: a listener and a stream, each registered once.
//!
//! Operations try the system call first when the last event left the socket ready, and wait
//! only after `EAGAIN`. A read that returns fewer bytes than asked for, or a write that takes
//! fewer than offered, also clears the readiness bit: the socket buffer is then known to be
//! empty (or full), so the next operation waits for the kernel's next edge instead of spending
//! a system call to learn `EAGAIN`. On a keep-alive connection this saves one `recvfrom` per
//! request: after the response is written, the next read waits instead of failing once.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, Read as _, Write as _};
use std::mem::MaybeUninit;
use std::net::{self, SocketAddr};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use rustix::net::{recv, RecvFlags};

use super::reactor::{Reactor, SourceState, READ, WRITE};

/// Most bytes [`TcpStream::read_append`] reads through the stack into an unallocated buffer.
pub(crate) const STACK_READ: usize = 4096;

/// A socket registered with this thread's reactor.
struct Source<T: AsFd> {
    /// The socket, in non-blocking mode.
    io: T,
    /// The event key.
    key: u64,
    /// Readiness shared with the reactor.
    state: Rc<SourceState>,
    /// The reactor the socket is registered with.
    reactor: Rc<Reactor>,
}

impl<T: AsFd> Source<T> {
    /// Registers `io` (already non-blocking) with this thread's reactor.
    fn new(io: T) -> io::Result<Source<T>> {
        let reactor = Reactor::current();
        let (key, state) = reactor.register(io.as_fd())?;
        Ok(Source {
            io,
            key,
            state,
            reactor,
        })
    }

    /// Waits until `bit` is ready.
    fn ready(&self, bit: u8) -> impl Future<Output = io::Result<()>> + '_ {
        poll_fn(move |cx| self.state.poll_ready(bit, cx).map(Ok))
    }

    /// Runs `op` once `bit` is ready, clearing the bit and waiting again on `EAGAIN`.
    fn poll_io<R>(
        &self,
        bit: u8,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            ready!(self.state.poll_ready(bit, cx));
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.state.clear(bit),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Runs `op` now if `bit` may be ready; `WouldBlock` clears the bit.
    fn try_io<R>(&self, bit: u8, op: impl FnOnce(&T) -> io::Result<R>) -> io::Result<R> {
        if !self.state.is_ready(bit) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let result = op(&self.io);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.state.clear(bit);
        }
        result
    }

    /// Clears `bit` after a transfer of `done` bytes out of `asked`: a short one shows the
    /// socket buffer drained (reads) or full (writes).
    fn note_transfer(&self, bit: u8, done: usize, asked: usize) {
        if done > 0 && done < asked {
            self.state.clear(bit);
        }
    }
}

impl<T: AsFd> Drop for Source<T> {
    fn drop(&mut self) {
        // Closing the descriptor right after removes it from the epoll set, so no
        // `epoll_ctl(DEL)` is spent (a stale event, if the kernel queued one, is ignored).
        self.reactor.deregister(self.key, None);
    }
}

/// A listening socket on the loop.
pub(crate) struct TcpListener {
    /// The registered socket.
    source: Source<net::TcpListener>,
}

impl TcpListener {
    /// Puts `listener` in non-blocking mode and registers it with this thread's reactor.
    pub(crate) fn new(listener: net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            source: Source::new(listener)?,
        })
    }

    /// Returns the socket.
    pub(crate) fn get_ref(&self) -> &net::TcpListener {
        &self.source.io
    }

    /// Waits until a connection may be pending.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.source.ready(READ).await
    }

    /// Accepts one pending connection without waiting; `WouldBlock` when there is none (the
    /// next [`TcpListener::readable`] then waits for the kernel).
    pub(crate) fn try_accept(&self) -> io::Result<(net::TcpStream, SocketAddr)> {
        self.source.try_io(READ, |listener| listener.accept())
    }

    /// Accepts one connection, waiting for it.
    #[cfg(test)]
    pub(crate) async fn accept(&self) -> io::Result<(net::TcpStream, SocketAddr)> {
        poll_fn(|cx| self.source.poll_io(READ, cx, |listener| listener.accept())).await
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpListener").field(&self.source.io).finish()
    }
}

/// A connected socket on the loop.
pub(crate) struct TcpStream {
    /// The registered socket.
    source: Source<net::TcpStream>,
}

impl TcpStream {
    /// Puts `stream` in non-blocking mode and registers it with this thread's reactor.
    pub(crate) fn new(stream: net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            source: Source::new(stream)?,
        })
    }

    /// Connects to `addr` (tests and examples; waits for the handshake on the reactor).
    #[cfg(test)]
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        // A blocking connect on loopback completes at once; good enough for tests.
        TcpStream::new(net::TcpStream::connect(addr)?)
    }

    /// Returns the socket.
    pub(crate) fn get_ref(&self) -> &net::TcpStream {
        &self.source.io
    }

    /// Waits until a read may find data (or the end of the stream).
    #[cfg(feature = "websocket")]
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.source.ready(READ).await
    }

    /// Reads into `buf`, waiting until some bytes (or the end of the stream) arrive.
    #[cfg(test)]
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Polls a read into `buf`.
    #[cfg(test)]
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let asked = buf.len();
        let n = ready!(self
            .source
            .poll_io(READ, cx, |mut stream| stream.read(&mut buf[..])))?;
        self.source.note_transfer(READ, n, asked);
        Poll::Ready(Ok(n))
    }

    /// Appends up to `max` bytes to `buf`, waiting until some arrive.
    ///
    /// Cancel-safe, and a wait holds no memory: `buf` changes only inside the system call that
    /// fills it. A buffer with no allocation is read through the stack (at most
    /// [`STACK_READ`] bytes), so a read that finds nothing leaves it unallocated.
    pub(crate) async fn read_append(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut asked = max;
            let n = ready!(self.source.poll_io(READ, cx, |mut stream| {
                if buf.capacity() == 0 {
                    // Left uninitialised: zeroing 4 KiB before every request's first read
                    // cost more than the rest of the read path.
                    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
                    asked = max.min(STACK_READ);
                    let ((read, _), _) = recv(stream, &mut stack[..asked], RecvFlags::empty())?;
                    // An exact allocation, without `extend_from_slice`'s growth path (about
                    // 100 instructions per request).
                    *buf = read.to_vec();
                    return Ok(read.len());
                }
                let old = buf.len();
                buf.resize(old + max, 0);
                let result = stream.read(&mut buf[old..]);
                buf.truncate(old + *result.as_ref().unwrap_or(&0));
                result
            }))?;
            self.source.note_transfer(READ, n, asked);
            Poll::Ready(Ok(n))
        })
        .await
    }

    /// Reads into `buf` now if the socket may have data, else `WouldBlock` (which also clears
    /// the readiness, so [`TcpStream::readable`] waits for new data): for protocol code that
    /// keeps its own buffers (WebSocket sessions).
    #[cfg(feature = "websocket")]
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.try_io(READ, |mut stream| stream.read(buf))
    }

    /// Writes some of `bytes` now if the socket may take them, else `WouldBlock`.
    #[cfg(feature = "websocket")]
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.source.try_io(WRITE, |mut stream| stream.write(bytes))
    }

    /// Waits until a write may make progress.
    #[cfg(feature = "websocket")]
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.source.ready(WRITE).await
    }

    /// Writes some of `bytes` now if the socket may take them, else `WouldBlock`; a short
    /// write clears the readiness, as [`TcpStream::write`] does.
    pub(crate) fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        let n = self
            .source
            .try_io(WRITE, |mut stream| stream.write(bytes))?;
        self.source.note_transfer(WRITE, n, bytes.len());
        Ok(n)
    }

    /// Writes some of `bytes`, waiting until the socket takes any.
    pub(crate) async fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            let n = ready!(self
                .source
                .poll_io(WRITE, cx, |mut stream| stream.write(bytes)))?;
            self.source.note_transfer(WRITE, n, bytes.len());
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpStream").field(&self.source.io).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::block_on;

    #[test]
    fn a_connection_is_accepted_and_echoes_both_ways() {
        block_on(async {
            let listener =
                TcpListener::new(net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let server = TcpStream::new(server).unwrap();
            assert_eq!(client.write(b"ping").await.unwrap(), 4);
            let mut buf = Vec::new();
            assert_eq!(server.read_append(&mut buf, 4096).await.unwrap(), 4);
            assert_eq!(buf, b"ping");
            // The short read cleared readiness: no data, so a try finds nothing at once.
            assert!(!server.source.state.is_ready(READ));
            server.write(b"pong").await.unwrap();
            let mut back = [0; 16];
            assert_eq!(client.read(&mut back).await.unwrap(), 4);
            assert_eq!(&back[..4], b"pong");
            drop(client);
            assert_eq!(server.read_append(&mut buf, 4096).await.unwrap(), 0);
        });
    }

    #[test]
    fn try_accept_without_a_pending_connection_would_block_and_clears_readiness() {
        block_on(async {
            let listener =
                TcpListener::new(net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
            let err = listener.try_accept().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            assert!(!listener.source.state.is_ready(READ));
            let addr = listener.get_ref().local_addr().unwrap();
            let _client = net::TcpStream::connect(addr).unwrap();
            listener.readable().await.unwrap();
            listener.try_accept().unwrap();
        });
    }

    #[test]
    fn a_write_that_fills_the_socket_waits_for_the_reader() {
        block_on(async {
            let listener =
                TcpListener::new(net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let server = TcpStream::new(listener.accept().await.unwrap().0).unwrap();
            let chunk = vec![7u8; 1 << 20];
            let total = 8 << 20;
            let send = async {
                let mut sent = 0;
                while sent < total {
                    let left = (total - sent).min(chunk.len());
                    sent += server.write(&chunk[..left]).await.unwrap();
                }
                sent
            };
            let receive = async {
                let mut buf = vec![0; 1 << 16];
                let mut got = 0;
                while got < total {
                    got += client.read(&mut buf).await.unwrap();
                }
                got
            };
            let (sent, got) = futures_lite::future::zip(send, receive).await;
            assert_eq!(sent, got);
        });
    }
}
