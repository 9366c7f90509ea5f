//! Writing a response on a connection once the socket did not take it at once: the rest of
//! its first write, then its body with the framing, each write under the write timeout.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use super::{Conn, Stop};
use crate::http::h1::write::OutBody;
use crate::rt::{timeout, TcpStream};

/// The part of a response the socket did not take at once.
pub(super) struct Unsent {
    /// The first write: the head, with a small body.
    pub(super) first: Vec<u8>,
    /// How much of `first` went out.
    pub(super) written: usize,
    /// The rest of the body.
    pub(super) rest: OutBody,
    /// Close the connection after this response.
    pub(super) close: bool,
}

impl Conn {
    /// Writes what [`Conn::respond_now`] could not; `Ok(true)` if the connection may carry
    /// another request.
    ///
    /// Boxed: this future (about 500 bytes, with the write's stall timer) is needed only for a
    /// response the socket did not take at once (a large body, a stream, a slow reader), and in
    /// place it made every exchange's future, which each request builds and moves, that much
    /// larger.
    pub(super) fn finish_response(
        &mut self,
        unsent: Unsent,
    ) -> Pin<Box<impl Future<Output = Result<bool, Stop>> + '_>> {
        Box::pin(async move {
            let Unsent {
                first,
                written,
                rest,
                close,
            } = unsent;
            self.write_response(&first[written..], rest)
                .await
                .map_err(|_| Stop::Quiet)?;
            Ok(!close)
        })
    }

    /// Writes a prepared response: its first write (the head, with a small body), then the
    /// rest of the body with its framing.
    async fn write_response(&mut self, first: &[u8], rest: OutBody) -> io::Result<()> {
        self.write_all(first).await?;
        match rest {
            OutBody::Empty => Ok(()),
            OutBody::Full(bytes) => self.write_all(&bytes).await,
            // Boxed: a stream's writer is large and rare, and would otherwise grow the future
            // of every response (see `exchange`).
            OutBody::Chunked(stream) => Box::pin(self.write_stream(stream, true)).await,
            OutBody::UntilClose(stream) | OutBody::Sized(stream) => {
                Box::pin(self.write_stream(stream, false)).await
            }
        }
    }
}

/// Writes all of `bytes` to `stream`; fails if no progress is made for `stall`.
pub(super) async fn write_all_to(
    stream: &TcpStream,
    mut bytes: &[u8],
    stall: Duration,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let write = pin!(stream.write(bytes));
        let n = timeout(|| Instant::now() + stall, write)
            .await
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "write stalled")))?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
