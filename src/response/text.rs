//! [`HeaderText`]: the string type of response header values, and of the request id.

use std::fmt;
use std::ops::Deref;

/// The longest text [`HeaderText`] holds without allocating.
///
/// 22 bytes: with its length byte and the enum's tag the inline form is as large as a `String`
/// plus one word, so a header costs no more room than before for the usual short values (a
/// fresh request id is 16 bytes, a `Retry-After` or `Content-Length` a few).
pub(crate) const INLINE_MAX: usize = 22;

/// A header value: a constant of the server's own code, a short text held inline, or
/// an owned string.
///
/// Owned strings cost an allocation each; a `GET /healthz` through the demo's layers (four
/// headers, one of them the fresh request id) allocates none this way. The request id is one
/// too, so the id a layer gives the request and the header it sends back are two copies of 23
/// bytes instead of a `Box<str>` and a `String` (about 230 instructions per request of malloc
/// and free).
#[derive(Clone)]
pub(crate) enum HeaderText {
    /// A constant.
    Static(&'static str),
    /// Up to [`INLINE_MAX`] bytes of UTF-8, in place.
    Inline(Inline),
    /// Anything else.
    Owned(String),
}

/// Up to [`INLINE_MAX`] bytes of text held in place.
#[derive(Clone, Copy)]
pub(crate) struct Inline {
    /// How many bytes of `bytes` are used.
    len: u8,
    /// The text, then zeros.
    bytes: [u8; INLINE_MAX],
}

impl Inline {
    /// Returns the text's bytes.
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl HeaderText {
    /// Copies `text`: in place when it is short enough, else into a `String`.
    pub(crate) fn copy_of(text: &str) -> HeaderText {
        match Self::inline(text.as_bytes()) {
            Some(inline) => inline,
            None => HeaderText::Owned(text.to_string()),
        }
    }

    /// Holds `bytes` in place, if they are at most [`INLINE_MAX`] bytes of UTF-8.
    pub(crate) fn inline(bytes: &[u8]) -> Option<HeaderText> {
        // ASCII first (ids, numbers: the usual short values), checked a word at a time:
        // `from_utf8` is a call of its own, about 45 instructions for a 16-byte id.
        if bytes.len() > INLINE_MAX || !(bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()) {
            return None;
        }
        let mut inline = Inline {
            len: bytes.len() as u8,
            bytes: [0; INLINE_MAX],
        };
        inline.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(HeaderText::Inline(inline))
    }

    /// Returns the text's bytes (without the UTF-8 check that [`HeaderText::as_str`] makes
    /// of inline text: the writers of the head need bytes only).
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderText::Static(text) => text.as_bytes(),
            HeaderText::Inline(inline) => inline.as_bytes(),
            HeaderText::Owned(text) => text.as_bytes(),
        }
    }

    /// Returns the text.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            HeaderText::Static(text) => text,
            // Checked UTF-8 when it was stored (the crate forbids `unsafe`, so it is checked
            // again: a short ASCII run, a few instructions).
            HeaderText::Inline(inline) => {
                std::str::from_utf8(inline.as_bytes()).expect("inline text is UTF-8")
            }
            HeaderText::Owned(text) => text,
        }
    }
}

impl Deref for HeaderText {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for HeaderText {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&'static str> for HeaderText {
    fn from(text: &'static str) -> HeaderText {
        HeaderText::Static(text)
    }
}

impl From<String> for HeaderText {
    fn from(text: String) -> HeaderText {
        HeaderText::Owned(text)
    }
}

impl From<HeaderText> for String {
    fn from(text: HeaderText) -> String {
        match text {
            HeaderText::Owned(text) => text,
            other => other.as_str().to_string(),
        }
    }
}

impl PartialEq for HeaderText {
    fn eq(&self, other: &HeaderText) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for HeaderText {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_held_inline_and_long_text_owned() {
        let short = HeaderText::copy_of("0123456789abcdef");
        assert!(matches!(short, HeaderText::Inline(_)));
        assert_eq!(&*short, "0123456789abcdef");
        let edge = "x".repeat(INLINE_MAX);
        assert!(matches!(HeaderText::copy_of(&edge), HeaderText::Inline(_)));
        let long = "x".repeat(INLINE_MAX + 1);
        let owned = HeaderText::copy_of(&long);
        assert!(matches!(owned, HeaderText::Owned(_)));
        assert_eq!(owned.as_bytes(), long.as_bytes());
        assert_eq!(String::from(short.clone()), "0123456789abcdef");
        assert!(HeaderText::inline(&[0xff]).is_none());
        assert_eq!(HeaderText::copy_of(""), HeaderText::Static(""));
    }
}
