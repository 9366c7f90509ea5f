//! WebSocket sessions (feature `websocket`): RFC 6455 on the native front end, with
//! tungstenite doing the framing and steadyloop the handshake, limits and timeouts.
//!
//! A session runs on the loop, in the connection's own task, so its handler may hold `!Send`
//! state. It stays counted as an open connection (against `max-connections`) until it ends.
//! Limits hold by default: messages and frames of at most 64 KiB (larger ones close the
//! session with 1009), a send waits until its frame is written (so a client that does not read
//! makes `send` wait, up to the write timeout, instead of growing a queue), a ping after
//! 20 s without traffic and a close after 60 s without any, and a close with 1001 when the
//! server shuts down.
//!
//! The tiny_http front end cannot hand a socket over, so a WebSocket route there answers
//! `501 Not Implemented`.

pub(crate) mod handshake;

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::rt::{Signal, Sleep, TcpStream};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// A WebSocket message as handlers see it (pings, pongs and closes are handled for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// The limits and timers of WebSocket sessions.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadyloop::websocket::Limits;
///
/// let limits = Limits::default()
///     .max_message(16 * 1024)
///     .idle_timeout(Duration::from_secs(30));
/// assert_eq!(limits.message_limit(), 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted, in bytes.
    max_message: usize,
    /// Largest frame accepted, in bytes.
    max_frame: usize,
    /// Quiet time after which the server pings.
    ping_after: Duration,
    /// Quiet time after which the session is closed.
    idle_timeout: Duration,
    /// How long a send may make no progress before the session is dropped.
    write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: 64 * 1024,
            max_frame: 64 * 1024,
            ping_after: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Sets the largest message accepted; larger ones close the session with 1009. Defaults
    /// to 64 KiB.
    pub fn max_message(mut self, bytes: usize) -> Limits {
        self.max_message = bytes;
        self
    }

    /// Sets the largest frame accepted. Defaults to 64 KiB.
    pub fn max_frame(mut self, bytes: usize) -> Limits {
        self.max_frame = bytes;
        self
    }

    /// Sets how long the session may be quiet before the server sends a ping. Defaults to
    /// 20 s.
    pub fn ping_after(mut self, quiet: Duration) -> Limits {
        self.ping_after = quiet;
        self
    }

    /// Sets how long the session may go without receiving anything (a pong counts) before it
    /// is closed with 1001. Defaults to 60 s.
    pub fn idle_timeout(mut self, quiet: Duration) -> Limits {
        self.idle_timeout = quiet;
        self
    }

    /// Sets how long a send may make no progress (the client does not read) before the session
    /// is dropped. Defaults to 10 s.
    pub fn write_timeout(mut self, stall: Duration) -> Limits {
        self.write_timeout = stall;
        self
    }

    /// Returns the largest message accepted, in bytes.
    pub fn message_limit(&self) -> usize {
        self.max_message
    }

    /// The tungstenite configuration for these limits.
    fn config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(4096)
            // Every frame goes out at once; `send` then waits for the socket.
            .write_buffer_size(0)
            .max_write_buffer_size(self.max_message.max(self.max_frame) + 1024)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_frame))
    }
}

/// The error of a send on a session that has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("websocket session closed")
    }
}

impl std::error::Error for Closed {}

/// The loop's socket as tungstenite's `Read + Write`; `WouldBlock` means "wait".
struct Socket(TcpStream);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A WebSocket session with one client, on the loop.
///
/// Receive with [`recv`](WebSocket::recv) and send with [`send`](WebSocket::send); to wait for
/// either a message or something of your own, race `recv` against it (for example with
/// `futures_lite::future::or`): `recv` may be dropped mid-way without losing data.
pub struct WebSocket {
    /// The protocol state over the socket.
    ws: tungstenite::WebSocket<Socket>,
    /// The limits.
    limits: Limits,
    /// When something last arrived from the client.
    last_heard: Instant,
    /// A ping is out and unanswered.
    pinged: bool,
    /// Fires when the server stops accepting (graceful shutdown).
    stopping: Signal,
    /// Set once the session has ended.
    done: bool,
}

impl WebSocket {
    /// Wraps an upgraded connection; `read_ahead` holds bytes already read after the request
    /// head (the start of the first frames).
    pub(crate) fn new(
        stream: TcpStream,
        read_ahead: Vec<u8>,
        limits: Limits,
        stopping: Signal,
    ) -> WebSocket {
        let ws = tungstenite::WebSocket::from_partially_read(
            Socket(stream),
            read_ahead,
            Role::Server,
            Some(limits.config()),
        );
        WebSocket {
            ws,
            limits,
            last_heard: Instant::now(),
            pinged: false,
            stopping,
            done: false,
        }
    }

    /// Waits for the next message; `None` once the session has ended (the client closed it,
    /// went silent past the idle timeout, broke the protocol or a limit, or the server is
    /// shutting down, which closes with 1001).
    pub async fn recv(&mut self) -> Option<Message> {
        use tungstenite::{Error as E, Message as M};
        while !self.done {
            match self.ws.read() {
                Ok(M::Text(text)) => {
                    self.heard();
                    return Some(Message::Text(text.as_str().to_string()));
                }
                Ok(M::Binary(bytes)) => {
                    self.heard();
                    return Some(Message::Binary(bytes.to_vec()));
                }
                Ok(M::Ping(_) | M::Pong(_) | M::Frame(_)) => {
                    // tungstenite queued the pong; it goes out with the next read or write.
                    self.heard();
                }
                Ok(M::Close(_)) => {
                    // The reply is queued; write it before leaving.
                    self.finish().await;
                }
                Err(E::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => self.wait().await,
                Err(E::Capacity(_)) => self.close_with(CloseCode::Size, "message too big").await,
                Err(E::Utf8(_)) => self.close_with(CloseCode::Invalid, "invalid utf-8").await,
                Err(E::Protocol(_)) => self.close_with(CloseCode::Protocol, "protocol error").await,
                Err(_) => self.done = true,
            }
        }
        None
    }

    /// Sends a message, waiting until it is written to the socket.
    ///
    /// # Errors
    ///
    /// Returns [`Closed`] if the session has ended, or ends it because the client did not
    /// read for the write timeout.
    pub async fn send(&mut self, message: Message) -> Result<(), Closed> {
        if self.done || self.stopping.is_fired() {
            return Err(Closed);
        }
        let message = match message {
            Message::Text(text) => tungstenite::Message::text(text),
            Message::Binary(bytes) => tungstenite::Message::binary(bytes),
        };
        match self.ws.write(message) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.done = true;
                return Err(Closed);
            }
        }
        if self.flush().await {
            Ok(())
        } else {
            self.done = true;
            Err(Closed)
        }
    }

    /// Closes the session with 1000 (normal closure) and waits briefly for the client's reply.
    pub async fn close(mut self) {
        self.close_with(CloseCode::Normal, "").await;
    }

    /// Records that the client is alive.
    fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.pinged = false;
    }

    /// Waits until the socket is readable, a ping or idle deadline passes, or shutdown starts;
    /// acts on the deadline or the shutdown.
    async fn wait(&mut self) {
        let quiet_until_ping = self.last_heard + self.limits.ping_after;
        let idle_until = self.last_heard + self.limits.idle_timeout;
        let next = if self.pinged {
            idle_until
        } else {
            quiet_until_ping.min(idle_until)
        };
        enum Woke {
            Readable,
            Deadline,
            Stopping,
        }
        let readable = async {
            let _ = self.ws.get_ref().0.readable().await;
            Woke::Readable
        };
        let deadline = async {
            Sleep::until(next).await;
            Woke::Deadline
        };
        let stopping = async {
            self.stopping.wait().await;
            Woke::Stopping
        };
        match readable.or(deadline).or(stopping).await {
            Woke::Readable => {}
            Woke::Stopping => {
                self.close_with(CloseCode::Away, "server shutting down")
                    .await
            }
            Woke::Deadline if Instant::now() >= idle_until => {
                self.close_with(CloseCode::Away, "idle timeout").await
            }
            Woke::Deadline => {
                self.pinged = true;
                let _ = self.ws.write(tungstenite::Message::Ping(Vec::new().into()));
                if !self.flush().await {
                    self.done = true;
                }
            }
        }
    }

    /// Writes everything buffered; `false` if the socket failed or made no progress for the
    /// write timeout.
    async fn flush(&mut self) -> bool {
        loop {
            match self.ws.flush() {
                Ok(()) => return true,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    let writable = async { self.ws.get_ref().0.writable().await.is_ok() };
                    let stalled = async {
                        Sleep::after(self.limits.write_timeout).await;
                        false
                    };
                    if !writable.or(stalled).await {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Sends a close frame with `code` and ends the session after the client's reply (or a
    /// short wait).
    async fn close_with(&mut self, code: CloseCode, reason: &'static str) {
        if self.done {
            return;
        }
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        match self.ws.close(Some(frame)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.done = true;
                return;
            }
        }
        self.finish().await;
    }

    /// After a close frame went out or came in: flushes, then reads until the close handshake
    /// completes or a second passes, and marks the session done.
    async fn finish(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(1);
        let _ = self.flush().await;
        loop {
            match self.ws.read() {
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    let readable = async { self.ws.get_ref().0.readable().await.is_ok() };
                    let timeout = async {
                        Sleep::until(give_up).await;
                        false
                    };
                    if !readable.or(timeout).await {
                        break;
                    }
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        self.done = true;
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("limits", &self.limits)
            .field("done", &self.done)
            .finish()
    }
}
