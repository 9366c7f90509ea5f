//! Server-sent events: the `text/event-stream` response type, its events, and a broadcast helper
//! for one producer and many clients.
//!
//! A stream is a streamed response body ([`Response::channel`]) whose chunks are encoded events.
//! What the server adds for SSE bodies:
//! - **Keep-alives.** When the producer has sent nothing for the keep-alive interval (default
//!   5 s), the connection writes a comment line (`:\n\n`) itself. A quiet producer therefore
//!   never trips the write timeout, while a client that stops reading still does: the write
//!   timeout measures a write that cannot make progress, and a keep-alive that cannot be
//!   written is such a write. So "the producer has nothing to say" keeps the stream, and "the
//!   client stopped reading" closes it after `write-timeout`.
//! - **Shutdown.** When a graceful shutdown starts, every open event stream ends at once
//!   (cleanly, with the final chunk), so open streams never hold the drain until its deadline.
//!   Browsers' `EventSource` reconnects after the `retry` delay, to another instance or to this
//!   one once restarted, and sends `Last-Event-ID` ([`last_event_id`]).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::request::Request;
use crate::response::{BodyClosed, BodySender, Response};

/// How long a stream may be quiet before the server writes a keep-alive comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The keep-alive comment: ignored by every `EventSource`, enough to show the path is alive.
pub(crate) const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// One server-sent event: optional `event` name, `id` and `retry`, and its data.
///
/// Data with line breaks is sent as several `data:` lines, which the client joins with `\n`
/// again (`\r\n` and lone `\r` count as line breaks too, as in the SSE grammar). Line breaks in
/// the name or id would end the field early, so they are replaced with spaces.
///
/// # Examples
///
/// ```
/// use steadyloop::sse::Event;
///
/// let event = Event::data("line one\nline two").event("reading").id("42");
/// assert_eq!(
///     event.to_bytes(),
///     b"event: reading\nid: 42\ndata: line one\ndata: line two\n\n".to_vec()
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (the listener name in the browser); `None` for `message`.
    event: Option<String>,
    /// The `id:` field.
    id: Option<String>,
    /// The `retry:` field, in milliseconds.
    retry: Option<u64>,
    /// The data; `None` for an event with no `data:` line (for example, only `retry`).
    data: Option<String>,
    /// A comment, sent as `: text` lines.
    comment: Option<String>,
}

impl Event {
    /// Creates an event carrying `data`.
    pub fn data(data: impl Into<String>) -> Event {
        Event {
            data: Some(data.into()),
            ..Event::default()
        }
    }

    /// Creates a comment, which clients ignore (useful as a marker in logs or for testing).
    pub fn comment(text: impl Into<String>) -> Event {
        Event {
            comment: Some(text.into()),
            ..Event::default()
        }
    }

    /// Sets the event name, which selects the browser's `addEventListener` callback.
    pub fn event(mut self, name: impl Into<String>) -> Event {
        self.event = Some(name.into());
        self
    }

    /// Sets the event id, which the client sends back as `Last-Event-ID` when it reconnects.
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.id = Some(id.into());
        self
    }

    /// Sets how long the client waits before reconnecting after the stream ends.
    pub fn retry(mut self, delay: Duration) -> Event {
        self.retry = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Encodes the event in the `text/event-stream` format, ending with the blank line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        if let Some(comment) = &self.comment {
            for line in lines(comment) {
                out.push_str(": ");
                out.push_str(line);
                out.push('\n');
            }
        }
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&value.replace(['\r', '\n'], " "));
            out.push('\n');
        };
        if let Some(event) = &self.event {
            field("event", event);
        }
        if let Some(id) = &self.id {
            // The client ignores an id containing NUL; refuse to send one rather than surprise.
            field("id", &id.replace('\0', ""));
        }
        if let Some(retry) = self.retry {
            field("retry", &retry.to_string());
        }
        if let Some(data) = &self.data {
            for line in lines(data) {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        out.into_bytes()
    }
}

/// Splits text on `\r\n`, `\n` and `\r`, keeping empty lines (an empty text is one empty line).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// Creates an event-stream response and the sender that feeds it.
///
/// The channel holds at most `capacity` events (at least 1): a producer that runs ahead of a
/// slow client waits in [`EventSender::send`], so memory stays bounded. The stream ends when
/// every sender is dropped, when the client goes away (sends then fail), or when a graceful
/// shutdown starts. The response has `Content-Type: text/event-stream` and
/// `Cache-Control: no-cache`; the server writes keep-alives while the producer is quiet.
///
/// # Examples
///
/// ```
/// use steadyloop::sse::{self, Event};
///
/// fn countdown() -> steadyloop::Response {
///     let (events, response) = sse::channel(4);
///     std::thread::spawn(move || {
///         for i in (0..3).rev() {
///             if events.send_blocking(Event::data(i.to_string())).is_err() {
///                 break; // the client went away
///             }
///         }
///     });
///     response
/// }
/// # let _ = countdown();
/// ```
pub fn channel(capacity: usize) -> (EventSender, Response) {
    let (body, response) = Response::channel(capacity);
    (EventSender { body }, event_stream(response))
}

/// Marks a streamed response as an event stream and adds its headers.
fn event_stream(response: Response) -> Response {
    response
        .into_event_stream()
        .with_header("Content-Type", "text/event-stream")
        .with_header("Cache-Control", "no-cache")
        // Proxies such as nginx buffer responses unless told otherwise.
        .with_header("X-Accel-Buffering", "no")
}

/// Returns the `Last-Event-ID` a reconnecting client sent: the id of the last event it saw.
pub fn last_event_id(req: &Request) -> Option<&str> {
    req.header("last-event-id")
}

/// The sending half of an event stream, made by [`channel`].
///
/// It is `Send` and cheap to clone: feed it from a task on the loop, from an offloaded job or
/// from a thread of your own.
#[derive(Clone)]
pub struct EventSender {
    /// The response body channel.
    body: BodySender,
}

impl EventSender {
    /// Sends an event, waiting while the client's buffer is full.
    ///
    /// # Errors
    ///
    /// Returns [`BodyClosed`] once the stream has ended (client gone, or shutdown).
    pub async fn send(&self, event: Event) -> Result<(), BodyClosed> {
        self.body.send(event.to_bytes()).await
    }

    /// Sends an event, blocking this thread while the buffer is full. Never call it on the
    /// loop.
    ///
    /// # Errors
    ///
    /// Returns [`BodyClosed`] once the stream has ended.
    pub fn send_blocking(&self, event: Event) -> Result<(), BodyClosed> {
        self.body.send_blocking(event.to_bytes())
    }

    /// Returns `true` once the stream has ended and events would be discarded.
    pub fn is_closed(&self) -> bool {
        self.body.is_closed()
    }
}

impl fmt::Debug for EventSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// One producer, many event-stream clients: each [`Broadcast::send`] goes to every subscriber.
///
/// Each client has a buffer of its own of `capacity` events. Sending never waits: an event is
/// encoded once and offered to every client's buffer; a client whose buffer is full (it reads
/// slower than the producer sends) is **dropped** — its stream ends, and its `EventSource`
/// reconnects after the `retry` delay with `Last-Event-ID`, so it notices the gap instead of
/// silently missing events. So one slow client never slows the others, and memory stays at
/// most `clients × capacity` events. `Broadcast` is `Send + Sync` and cheap to clone.
///
/// # Examples
///
/// ```
/// use steadyloop::sse::{Broadcast, Event};
/// use steadyloop::Router;
///
/// let readings = Broadcast::new(16);
/// let feed = readings.clone();
/// let app = Router::new().get("/live", move |_req| {
///     let response = feed.subscribe();
///     async move { response }
/// });
/// // Elsewhere, the producer:
/// readings.send(&Event::data("21.5").event("temperature"));
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct Broadcast {
    /// The subscribers and the per-client capacity.
    inner: Arc<Mutex<Subscribers>>,
}

/// The state behind a [`Broadcast`].
struct Subscribers {
    /// Each client's body channel.
    clients: Vec<BodySender>,
    /// Events each client may have buffered.
    capacity: usize,
    /// Clients dropped for being too slow, since creation.
    dropped: u64,
    /// Set by [`Broadcast::close`]: no new subscribers.
    closed: bool,
}

impl Broadcast {
    /// Creates a broadcast whose clients each buffer at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Broadcast {
        Broadcast {
            inner: Arc::new(Mutex::new(Subscribers {
                clients: Vec::new(),
                capacity: capacity.max(1),
                dropped: 0,
                closed: false,
            })),
        }
    }

    /// Returns an event-stream response that receives every event sent from now on.
    pub fn subscribe(&self) -> Response {
        let mut inner = self.lock();
        let (body, response) = Response::channel(inner.capacity);
        if !inner.closed {
            inner.clients.push(body);
        }
        event_stream(response)
    }

    /// Sends `event` to every client without waiting; returns how many clients got it.
    ///
    /// Clients that are gone are removed; clients whose buffer is full are dropped (their
    /// stream ends; see the type's docs).
    pub fn send(&self, event: &Event) -> usize {
        let bytes = event.to_bytes();
        let mut inner = self.lock();
        let mut full = 0;
        inner
            .clients
            .retain(|client| match client.try_send(bytes.clone()) {
                Ok(()) => true,
                Err(async_channel::TrySendError::Full(_)) => {
                    full += 1;
                    false
                }
                Err(async_channel::TrySendError::Closed(_)) => false,
            });
        inner.dropped += full;
        if full > 0 {
            log::debug!("broadcast dropped {full} slow client(s)");
        }
        inner.clients.len()
    }

    /// Returns the number of clients subscribed.
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Returns how many clients were dropped for reading too slowly.
    pub fn dropped_count(&self) -> u64 {
        self.lock().dropped
    }

    /// Ends every client's stream and refuses new subscribers (they get a stream that ends at
    /// once).
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.clients.clear();
    }

    /// Locks the state; a poisoned lock still holds a consistent list.
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Broadcast")
            .field("clients", &inner.clients.len())
            .field("capacity", &inner.capacity)
            .field("dropped", &inner.dropped)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_on_every_line_break() {
        let bytes = Event::data("a\r\nb\rc\nd").to_bytes();
        assert_eq!(bytes, b"data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(Event::data("").to_bytes(), b"data: \n\n");
        assert_eq!(Event::data("x\n").to_bytes(), b"data: x\ndata: \n\n");
    }

    #[test]
    fn fields_cannot_smuggle_lines() {
        let bytes = Event::data("d")
            .event("a\nevent: b")
            .id("1\r2")
            .retry(Duration::from_millis(1500))
            .to_bytes();
        assert_eq!(
            bytes,
            b"event: a event: b\nid: 1 2\nretry: 1500\ndata: d\n\n".to_vec()
        );
        assert_eq!(Event::comment("hi\nthere").to_bytes(), b": hi\n: there\n\n");
    }
}
