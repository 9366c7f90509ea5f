//! The `RequestId` layer: one id per request, kept from the client or made fresh, visible to
//! handlers, sent back on the response and written in the access log.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use crate::request::Request;
use crate::response::{HeaderName, HeaderText, Response};
use crate::router::{Layer, Next, ResponseFuture};

/// The longest incoming id that is kept (a UUID is 36 bytes; a W3C trace id 32).
const MAX_INCOMING_LEN: usize = 128;

/// Gives every request an id: the incoming `X-Request-Id` when it is a sane token, else a fresh
/// one.
///
/// Handlers read the id with [`Request::request_id`] (to log it, or to pass it on to another
/// service); it is added to the response and shown in the access log as `id=...`. A sane incoming id is 1–128 bytes of letters, digits and `-_.:/+=@`;
/// anything else (too long, spaces, control bytes) is replaced, so a client cannot put
/// arbitrary text into logs. Fresh ids are 16 hex digits, unique within the process and not
/// guessable from the previous one.
///
/// # Examples
///
/// ```
/// use steadyloop::{Request, RequestId, Router, TestClient};
///
/// let app = Router::new()
///     .layer(RequestId::new())
///     .get("/", |req: Request| async move {
///         format!("your id: {}\n", req.request_id().unwrap_or("-"))
///     });
/// let client = TestClient::new(app);
/// let response = client.send(Request::builder().header("X-Request-Id", "abc-123"));
/// assert_eq!(response.header("x-request-id"), Some("abc-123"));
/// assert_eq!(response.text(), "your id: abc-123\n");
/// let fresh = client.get("/nope");
/// assert_eq!(fresh.status(), 404);
/// assert_eq!(fresh.header("x-request-id").map(str::len), Some(16));
/// ```
pub struct RequestId {
    /// The header carrying the id, both ways (borrowed for the default, so adding it to each
    /// response allocates nothing).
    header: HeaderName,
    /// Whether a sane incoming id is kept.
    trust_incoming: bool,
    /// Random per layer, so ids differ between processes and restarts.
    seed: u64,
    /// Ids made so far.
    counter: Cell<u64>,
}

impl RequestId {
    /// Creates the layer with the `X-Request-Id` header, keeping sane incoming ids.
    pub fn new() -> RequestId {
        RequestId {
            header: HeaderName::Borrowed("X-Request-Id"),
            trust_incoming: true,
            seed: RandomState::new().build_hasher().finish(),
            counter: Cell::new(0),
        }
    }

    /// Sets the header that carries the id (`X-Correlation-Id`, ...). Defaults to
    /// `X-Request-Id`.
    ///
    /// # Panics
    ///
    /// Panics if `name` is not a valid header name.
    pub fn header(mut self, name: &str) -> RequestId {
        assert!(
            crate::http::h1::grammar::is_token(name.as_bytes()),
            "invalid header name {name:?}"
        );
        self.header = HeaderName::Owned(name.to_string());
        self
    }

    /// Sets whether a sane incoming id is kept; when `false`, every request gets a fresh one
    /// (for servers facing clients that should not choose ids). Defaults to `true`.
    pub fn trust_incoming(mut self, trust: bool) -> RequestId {
        self.trust_incoming = trust;
        self
    }

    /// Makes a fresh id: 16 hex digits from a bijective mix of seed and counter, so no two
    /// ids of one layer are equal.
    fn fresh(&self) -> HeaderText {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mixed = splitmix64(self.seed.wrapping_add(n));
        HeaderText::inline(&hex_digits(mixed)).expect("16 hex digits fit inline")
    }

    /// Returns the id for `req`: its own if sane and trusted (held inline up to 22 bytes, so
    /// a UUID allocates), else a fresh one.
    fn id_for(&self, req: &Request) -> HeaderText {
        if self.trust_incoming {
            if let Some(incoming) = req.header(&self.header) {
                if is_sane_id(incoming) {
                    return HeaderText::copy_of(incoming);
                }
            }
        }
        self.fresh()
    }

    /// Gives `req` its id; returns the id, for the response.
    pub(crate) fn tag(&self, req: &mut Request) -> HeaderText {
        let id = self.id_for(req);
        req.request_id = Some(id.clone());
        id
    }

    /// Sends `id` on `response`.
    pub(crate) fn label(&self, response: &mut Response, id: HeaderText) {
        // The name was checked when the layer was built; the id is sane or our own.
        response.set_header(self.header.clone(), id);
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::new()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestId")
            .field("header", &self.header)
            .field("trust_incoming", &self.trust_incoming)
            .finish()
    }
}

impl Layer for RequestId {
    fn call(self: Rc<Self>, mut req: Request, next: Next) -> ResponseFuture {
        let id = self.tag(&mut req);
        Box::pin(async move {
            let mut response = next.run(req).await;
            self.label(&mut response, id);
            response
        })
    }
}

impl Request {
    /// Returns the id a [`RequestId`] layer gave this request, if one ran before the handler.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().map(|id| id.as_str())
    }
}

/// Returns `true` if `id` is a token worth keeping (and safe to log).
fn is_sane_id(id: &str) -> bool {
    (1..=MAX_INCOMING_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

/// Writes `n` as 16 lowercase hex digits, most significant first.
///
/// Eight digits at a time in a `u64` rather than a digit at a time through a table (about
/// 150 instructions per request less): each nibble is spread into a byte of its own, then
/// every byte becomes its digit at once (`'0'` plus the nibble, plus the gap to `'a'` where
/// the nibble is 10 or more).
fn hex_digits(n: u64) -> [u8; 16] {
    /// The eight nibbles of `half`, one per byte, the least significant in the lowest byte.
    fn spread(half: u32) -> u64 {
        let x = u64::from(half);
        let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f
    }
    /// The digit of each nibble byte of `x`.
    fn digits(x: u64) -> [u8; 8] {
        let at_least_ten = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        (x + 0x3030_3030_3030_3030 + at_least_ten * u64::from(b'a' - b'0' - 10)).to_be_bytes()
    }
    let mut hex = [0u8; 16];
    hex[..8].copy_from_slice(&digits(spread((n >> 32) as u32)));
    hex[8..].copy_from_slice(&digits(spread(n as u32)));
    hex
}

/// The splitmix64 finaliser: a bijection on `u64` that scatters consecutive inputs.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insane_ids_are_replaced() {
        assert!(is_sane_id("3f2a-11:x/y+z=@"));
        assert!(!is_sane_id(""));
        assert!(!is_sane_id("has space"));
        assert!(!is_sane_id("new\nline"));
        assert!(!is_sane_id(&"a".repeat(129)));
        let layer = RequestId::new();
        let req = Request::builder().header("X-Request-Id", "bad id").build();
        let id = layer.id_for(&req);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, layer.id_for(&req));
    }

    #[test]
    fn hex_digits_match_formatting() {
        let mut n = 0x0123_4567_89ab_cdefu64;
        for _ in 0..1000 {
            assert_eq!(&hex_digits(n), format!("{n:016x}").as_bytes());
            n = splitmix64(n);
        }
        for n in [0, u64::MAX, 0xa, 0x9 << 60, 0xfa09_09fa_a0a0_9f9f] {
            assert_eq!(&hex_digits(n), format!("{n:016x}").as_bytes());
        }
    }

    #[test]
    fn untrusted_incoming_ids_are_replaced() {
        let layer = RequestId::new().trust_incoming(false);
        let req = Request::builder().header("X-Request-Id", "abc").build();
        assert_ne!(layer.id_for(&req), "abc");
    }
}
