//! The `Compression` layer (the `compress` feature): gzip for clients that accept it, with the
//! CPU work of large bodies done on the pool.

use std::fmt;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use flate2::write::GzEncoder;

use crate::http::h1::grammar::weighted_items;
use crate::layers::{add_vary_in, Later};
use crate::pool::offload;
use crate::request::Request;
use crate::response::{Body, Response, Stream};
use crate::router::{Layer, Next, ResponseFuture};
use crate::task::LoopContext;

/// Compresses response bodies with gzip when the client accepts it.
///
/// It honours `Accept-Encoding` with its q-values (`gzip;q=0`, `identity`, `*`); when the
/// client prefers `identity`, or says nothing, the body goes out as it is. It leaves alone
/// bodies under the minimum size, responses that already have a `Content-Encoding` or say
/// `Cache-Control: no-transform`, `206`/`204`/`304` answers, `HEAD` requests, and media types
/// that do not shrink (only `text/*`, JSON, XML, JavaScript, SVG, WebAssembly and similar types
/// are compressed). Responses it would compress get `Vary: Accept-Encoding` whether or not this
/// client asked for gzip, so caches keep the variants apart; responses it never compresses (the
/// ones above, and whole bodies under the minimum size, whatever the client accepts) do not
/// vary by `Accept-Encoding` and get no `Vary`.
///
/// Compression is CPU work: a body larger than the pool threshold is compressed on the CPU
/// pool, in the route's class; if that class is full, the body is sent uncompressed rather than
/// shed. Streamed bodies are compressed chunk by chunk, each chunk flushed so the client sees it
/// at once (large chunks on the pool). A result no smaller than the input is discarded and the
/// original sent.
///
/// # Examples
///
/// ```
/// use steadyloop::{Compression, Request, Response, Router, TestClient};
///
/// let app = Router::new()
///     .layer(Compression::new())
///     .get("/log", |_req| async { Response::text("a line of text\n".repeat(1000)) });
/// let response = TestClient::new(app)
///     .send(Request::builder().uri("/log").header("Accept-Encoding", "gzip, br"));
/// assert_eq!(response.header("content-encoding"), Some("gzip"));
/// assert_eq!(response.header("vary"), Some("Accept-Encoding"));
/// assert!(response.body().len() < 1000);
/// ```
#[derive(Clone)]
pub struct Compression {
    /// Bodies smaller than this are sent as they are.
    min_size: usize,
    /// Bodies (and streamed chunks) larger than this are compressed on the pool.
    pool_threshold: usize,
    /// The gzip level, 1–9.
    level: u32,
}

impl Compression {
    /// Creates the layer with its defaults.
    pub fn new() -> Compression {
        Compression {
            min_size: 1024,
            pool_threshold: 4 * 1024,
            level: 6,
        }
    }

    /// Sets the smallest body worth compressing. Defaults to 1 KiB (below that the gzip header
    /// and the client's work cost more than the bytes saved).
    pub fn min_size(mut self, bytes: usize) -> Compression {
        self.min_size = bytes;
        self
    }

    /// Sets the body size above which compressing runs on the CPU pool instead of the loop.
    /// Defaults to 4 KiB (about 40 µs of work at level 6).
    pub fn pool_threshold(mut self, bytes: usize) -> Compression {
        self.pool_threshold = bytes;
        self
    }

    /// Sets the gzip level, from 1 (fastest) to 9 (smallest). Defaults to 6.
    pub fn level(mut self, level: u32) -> Compression {
        self.level = level.clamp(1, 9);
        self
    }

    /// Returns `true` if `response` is one this layer would compress for a client that asks
    /// for gzip (and so one whose content varies by `Accept-Encoding`).
    ///
    /// The body's size first: it is the cheapest check and the one most light responses fail
    /// (a probe's `ok`), before any header is read. A whole body under the minimum size goes
    /// out as it is whatever the request says, so it gets no `Vary` either (RFC 9110 §12.5.5:
    /// `Vary` lists the request fields that might have influenced the content).
    fn may_compress(&self, response: &Response) -> bool {
        (response.is_streaming() || response.body_bytes().len() >= self.min_size)
            && is_candidate(response)
    }

    /// Returns `true` if the client sending `req` is to get gzip (if the response allows it).
    pub(crate) fn wants_gzip(&self, req: &Request) -> bool {
        req.method() != "HEAD" && accepts_gzip(req.header("accept-encoding"))
    }

    /// Does the layer's work on `response` in place: leaves it alone or adds `Vary`; returns
    /// the compressing still to do (when `wants_gzip`), if any.
    pub(crate) fn finish(
        self: &Rc<Self>,
        wants_gzip: bool,
        response: &mut Response,
    ) -> Option<Later> {
        if !self.may_compress(response) {
            return None;
        }
        add_vary_in(response, "Accept-Encoding");
        wants_gzip.then(|| Later::Compress(self.clone()))
    }

    /// Compresses `response` for a client that accepts gzip.
    pub(crate) async fn compress(&self, mut response: Response) -> Response {
        let body = match response.swap_body(Body::Full(Vec::new())) {
            // A constant worth compressing is copied into the buffer gzip reads.
            Body::Static(bytes) if bytes.len() >= self.min_size => Body::Full(bytes.to_vec()),
            body => body,
        };
        match body {
            Body::Static(bytes) => {
                response.swap_body(Body::Static(bytes));
                response
            }
            Body::Full(bytes) if bytes.len() < self.min_size => {
                response.swap_body(Body::Full(bytes));
                response
            }
            Body::Full(bytes) => {
                let level = self.level;
                let shared = Arc::new(bytes);
                let compressed = if shared.len() <= self.pool_threshold {
                    gzip(&shared, level)
                } else {
                    let input = shared.clone();
                    // A full pool class sends the body as it is rather than shedding it.
                    offload(move || gzip(&input, level)).await.ok().flatten()
                };
                match compressed {
                    Some(gz) if gz.len() < shared.len() => {
                        response.swap_body(Body::Full(gz));
                        encoded(response)
                    }
                    _ => {
                        let bytes = Arc::try_unwrap(shared).unwrap_or_else(|a| a.to_vec());
                        response.swap_body(Body::Full(bytes));
                        response
                    }
                }
            }
            Body::Stream(stream) => match LoopContext::current() {
                Some(context) => {
                    let capacity = stream.rx.capacity().unwrap_or(4).max(1);
                    let (tx, out) = async_channel::bounded(capacity);
                    let pump = pump(stream.rx, tx, self.level, self.pool_threshold);
                    let _detached = context.spawn("gzip stream", pump);
                    // The compressed length is not known in advance: chunked encoding.
                    response.swap_body(Body::Stream(Stream {
                        rx: out,
                        len: None,
                        events: stream.events,
                    }));
                    encoded(response)
                }
                None => {
                    response.swap_body(Body::Stream(stream));
                    response
                }
            },
        }
    }
}

impl Default for Compression {
    fn default() -> Compression {
        Compression::new()
    }
}

impl fmt::Debug for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compression")
            .field("min_size", &self.min_size)
            .field("pool_threshold", &self.pool_threshold)
            .field("level", &self.level)
            .finish()
    }
}

impl Layer for Compression {
    fn call(self: Rc<Self>, req: Request, next: Next) -> ResponseFuture {
        let wants_gzip = self.wants_gzip(&req);
        Box::pin(async move {
            let mut response = next.run(req).await;
            match self.finish(wants_gzip, &mut response) {
                None => response,
                Some(_) => self.compress(response).await,
            }
        })
    }
}

/// Marks `response` as gzip-encoded: `Content-Encoding`, and a weak `ETag` (the bytes differ).
fn encoded(response: Response) -> Response {
    let response = response.with_static_header("Content-Encoding", "gzip");
    match response.header("etag").map(str::to_string) {
        Some(etag) if !etag.starts_with("W/") => response.with_header("ETag", format!("W/{etag}")),
        _ => response,
    }
}

/// Returns `true` if the response is one compression may change: a compressible type, not yet
/// encoded, with a body.
fn is_candidate(response: &Response) -> bool {
    let status = response.status();
    if matches!(status, 204 | 206 | 304) || response.header("content-encoding").is_some() {
        return false;
    }
    let no_transform = response.header("cache-control").is_some_and(|v| {
        v.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
    });
    !no_transform && response.header("content-type").is_some_and(is_compressible)
}

/// Returns `true` for media types that gzip shrinks.
fn is_compressible(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .as_bytes();
    // Compared ignoring ASCII case in place: a lowercase copy cost an allocation per response.
    let is = |name: &str| media.eq_ignore_ascii_case(name.as_bytes());
    let starts = |prefix: &str| {
        media.len() >= prefix.len() && media[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    let ends = |suffix: &str| {
        media.len() >= suffix.len()
            && media[media.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    if is("text/event-stream") {
        // Compressed server-sent events stall in proxies that buffer until a block fills.
        return false;
    }
    starts("text/")
        || ends("+json")
        || ends("+xml")
        || [
            "application/json",
            "application/javascript",
            "application/xml",
            "application/x-ndjson",
            "application/wasm",
            "application/x-www-form-urlencoded",
            "image/svg+xml",
            "image/bmp",
            "font/ttf",
            "font/otf",
        ]
        .into_iter()
        .any(is)
}

/// Returns `true` if an `Accept-Encoding` value asks for gzip over the unencoded body.
///
/// gzip's weight is its own q-value (or `*`'s); identity competes only if the client names it
/// (or `*`). No header means "as it is", as browsers and proxies expect. Read as bytes
/// ([`weighted_items`]): through `str::split` and `str::trim` a browser's `gzip, deflate, br`
/// cost about 1,200 instructions, and a lowercase copy of each coding an allocation more.
fn accepts_gzip(header: Option<&str>) -> bool {
    let Some(header) = header else {
        return false;
    };
    let (mut gzip, mut star, mut identity) = (None::<f32>, None::<f32>, None::<f32>);
    for (coding, q) in weighted_items(header.as_bytes()) {
        let is = |name: &[u8]| coding.eq_ignore_ascii_case(name);
        let slot = if is(b"gzip") || is(b"x-gzip") {
            &mut gzip
        } else if coding == b"*" {
            &mut star
        } else if is(b"identity") {
            &mut identity
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
    }
    let gzip = gzip.or(star).unwrap_or(0.0);
    let identity = identity.or(star).unwrap_or(0.0);
    gzip > 0.0 && gzip >= identity
}

/// Compresses `input` whole; `None` only if the encoder fails (it writes to memory, so never
/// in practice).
fn gzip(input: &[u8], level: u32) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(input.len() / 3),
        flate2::Compression::new(level),
    );
    encoder.write_all(input).ok()?;
    encoder.finish().ok()
}

/// A streaming gzip encoder, shared with pool jobs (locked by one side at a time).
type SharedEncoder = Arc<Mutex<GzEncoder<Vec<u8>>>>;

/// Feeds `chunk` to `encoder` and returns the bytes ready to send (flushed, so the client can
/// decode everything sent so far).
fn encode_chunk(encoder: &SharedEncoder, chunk: &[u8]) -> Vec<u8> {
    let mut encoder = encoder.lock().unwrap_or_else(|e| e.into_inner());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(chunk);
    let _ = encoder.flush();
    std::mem::take(encoder.get_mut())
}

/// Compresses a streamed body chunk by chunk from `rx` into `tx`; ends when the producer ends
/// (writing the gzip trailer) or the client goes away (dropping `rx` tells the producer).
async fn pump(
    rx: async_channel::Receiver<Vec<u8>>,
    tx: async_channel::Sender<Vec<u8>>,
    level: u32,
    pool_threshold: usize,
) {
    let encoder: SharedEncoder = Arc::new(Mutex::new(GzEncoder::new(
        Vec::new(),
        flate2::Compression::new(level),
    )));
    while let Ok(chunk) = rx.recv().await {
        let out = if chunk.len() > pool_threshold {
            let shared = encoder.clone();
            let chunk = Arc::new(chunk);
            let input = chunk.clone();
            match offload(move || encode_chunk(&shared, &input)).await {
                Ok(out) => out,
                // The pool is full: this chunk is compressed on the loop instead.
                Err(_) => encode_chunk(&encoder, &chunk),
            }
        } else {
            encode_chunk(&encoder, &chunk)
        };
        if !out.is_empty() && tx.send(out).await.is_err() {
            return;
        }
    }
    let trailer = match Arc::try_unwrap(encoder) {
        Ok(encoder) => encoder
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .finish()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let _ = tx.send(trailer).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn accept_encoding_q_values_are_honoured() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(accepts_gzip(Some("GZIP; Q=1.0")));
        assert!(!accepts_gzip(None));
        assert!(!accepts_gzip(Some("")));
        assert!(!accepts_gzip(Some("br")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("*;q=0")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip;q=0.4, identity;q=0.5")));
        assert!(accepts_gzip(Some("gzip;q=0.5, identity;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=nonsense")));
        assert!(accepts_gzip(Some("deflate,\tX-GZIP ;\tq = 0.3 ")));
        assert!(!accepts_gzip(Some("gzip ; q=0.0, identity")));
        assert!(accepts_gzip(Some("identity;q=0.1,gzip;foo;q=0.2")));
        assert!(!accepts_gzip(Some(" , ;, br;q=1")));
    }

    #[test]
    fn only_compressible_unencoded_responses_are_candidates() {
        let text = || Response::text("x".repeat(2000));
        assert!(is_candidate(&text()));
        assert!(is_candidate(&Response::json("{}")));
        assert!(!is_candidate(&Response::bytes(vec![0; 2000])));
        assert!(!is_candidate(&text().with_header("Content-Encoding", "br")));
        assert!(!is_candidate(
            &text().with_header("Cache-Control", "public, no-transform")
        ));
        assert!(!is_candidate(&text().with_status(206)));
        assert!(!is_candidate(
            &text().with_header("Content-Type", "image/png")
        ));
        assert!(!is_candidate(
            &text().with_header("Content-Type", "text/event-stream")
        ));
        assert!(is_candidate(
            &text().with_header("Content-Type", "image/svg+xml")
        ));
        assert!(is_candidate(&text().with_header(
            "Content-Type",
            " Application/Problem+JSON ; charset=utf-8"
        )));
        assert!(is_candidate(
            &text().with_header("Content-Type", "TEXT/html")
        ));
        assert!(!is_candidate(
            &text().with_header("Content-Type", "Text/Event-Stream")
        ));
        assert!(!is_candidate(&text().with_header("Content-Type", "json")));
    }

    #[test]
    fn bodies_under_the_minimum_size_are_never_candidates() {
        let layer = Compression::new();
        assert!(!layer.may_compress(&Response::text("ok")));
        assert!(!layer.may_compress(&Response::static_text("ok")));
        assert!(!layer.may_compress(&Response::text("x".repeat(1023))));
        assert!(layer.may_compress(&Response::text("x".repeat(1024))));
        assert!(!layer.may_compress(&Response::bytes(vec![0; 2000])));
        let (_tx, stream) = Response::channel(1);
        assert!(layer.may_compress(&stream.with_header("Content-Type", "text/csv")));
        assert!(Compression::new()
            .min_size(0)
            .may_compress(&Response::text("")));
        // Such a response is sent as it is whatever the client accepts: no `Vary`.
        let client = crate::TestClient::new(
            crate::Router::new()
                .layer(Compression::new())
                .get("/", |_req| async { "ok" }),
        );
        for accept in ["", "gzip"] {
            let response = client.send(Request::builder().header("Accept-Encoding", accept));
            assert_eq!(response.header("vary"), None);
            assert_eq!(response.header("content-encoding"), None);
            assert_eq!(response.text(), "ok");
        }
    }

    #[test]
    fn whole_and_streamed_bodies_round_trip() {
        let input = b"steadyloop compresses on the pool\n".repeat(100);
        assert_eq!(gunzip(&gzip(&input, 6).unwrap()), input);
        let encoder: SharedEncoder = Arc::new(Mutex::new(GzEncoder::new(
            Vec::new(),
            flate2::Compression::new(6),
        )));
        let mut stream = encode_chunk(&encoder, &input[..100]);
        // Each flushed piece decodes on its own: the client sees chunk one before chunk two.
        assert!(!stream.is_empty());
        stream.extend(encode_chunk(&encoder, &input[100..]));
        let encoder = Arc::try_unwrap(encoder).unwrap().into_inner().unwrap();
        stream.extend(encoder.finish().unwrap());
        assert_eq!(gunzip(&stream), input);
    }

    #[test]
    fn strong_etags_become_weak() {
        let response = encoded(Response::text("x").with_header("ETag", "\"v1\""));
        assert_eq!(response.header("etag"), Some("W/\"v1\""));
    }
}
