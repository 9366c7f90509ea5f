//! Writing a streamed response body (server-sent events, a channel of chunks) on a
//! connection: the producer's chunks as they arrive, under the write timeout, with the
//! keep-alive comments of an event stream.

use std::io;
use std::time::Instant;

use futures_lite::FutureExt;

use super::{watch_disconnect, write_all_to, Conn};
use crate::http::h1::write;
use crate::response::Stream;
use crate::rt::Sleep;

impl Conn {
    /// Writes a streamed body as chunks arrive; `chunked` adds the chunk framing.
    ///
    /// Waiting for the producer is bounded by the write timeout, and a client that leaves
    /// meanwhile ends the stream (the producer then sees its channel closed). An event stream
    /// instead gets a keep-alive comment whenever its producer is quiet for the keep-alive
    /// interval (a client that stops reading still fails the write timeout), and ends cleanly
    /// when a graceful shutdown starts. A stream of known length must send exactly that many
    /// bytes, or the connection closes so the client sees the body cut short.
    ///
    /// The disconnect watch and the quiet timer live for the whole stream: a stream of many
    /// small chunks (a broadcast to hundreds of clients) then costs no timer or readiness
    /// registration per chunk, only when the timer fires (once per quiet interval at most).
    pub(super) async fn write_stream(&mut self, stream: Stream, chunked: bool) -> io::Result<()> {
        /// What the writer waits for next.
        enum Next {
            Chunk(Vec<u8>),
            End,
            Quiet,
            Rearm,
        }
        let stall = self.state.config().write_timeout;
        let quiet = if stream.events {
            crate::sse::KEEP_ALIVE.min(stall)
        } else {
            stall
        };
        let cap = self.state.config().max_head_bytes;
        let socket = &self.stream;
        let mut watch = std::pin::pin!(watch_disconnect(socket, &mut self.buf, cap));
        let mut stopped = std::pin::pin!(self.state.stopped());
        let mut timer = Sleep::after(quiet);
        let mut last_sent = Instant::now();
        let mut remaining = stream.len;
        let mut frame = Vec::new();
        loop {
            let next = {
                let recv = async {
                    Ok(match stream.rx.recv().await {
                        Ok(chunk) => Next::Chunk(chunk),
                        Err(_) => Next::End,
                    })
                };
                let gone = async {
                    watch.as_mut().await;
                    Err(io::Error::from(io::ErrorKind::ConnectionAborted))
                };
                let quiet_for = async {
                    (&mut timer).await;
                    if last_sent.elapsed() < quiet {
                        Ok(Next::Rearm)
                    } else if stream.events {
                        Ok(Next::Quiet)
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "response producer stalled",
                        ))
                    }
                };
                let shutdown = async {
                    if stream.events {
                        stopped.as_mut().await;
                        Ok(Next::End)
                    } else {
                        std::future::pending().await
                    }
                };
                recv.or(gone).or(quiet_for).or(shutdown).await?
            };
            let fired = matches!(next, Next::Quiet);
            let chunk = match next {
                Next::Chunk(chunk) => chunk,
                Next::Quiet => crate::sse::KEEP_ALIVE_COMMENT.to_vec(),
                Next::Rearm => {
                    timer = Sleep::until(last_sent + quiet);
                    continue;
                }
                Next::End => {
                    if remaining.is_some_and(|left| left > 0) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "streamed body shorter than its length",
                        ));
                    }
                    if chunked {
                        write_all_to(socket, write::LAST_CHUNK, stall).await?;
                    }
                    return Ok(());
                }
            };
            if let Some(left) = &mut remaining {
                let Some(rest) = left.checked_sub(chunk.len() as u64) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "streamed body longer than its length",
                    ));
                };
                *left = rest;
            }
            write::frame_chunk(&mut frame, &chunk, chunked);
            write_all_to(socket, &frame, stall).await?;
            last_sent = Instant::now();
            if fired {
                // A fired sleep stays done: start the next quiet interval.
                timer = Sleep::after(quiet);
            }
            if remaining == Some(0) {
                return Ok(());
            }
        }
    }
}
