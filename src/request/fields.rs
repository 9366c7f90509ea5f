//! A request's header fields: every name and value in one buffer, found by spans.
//!
//! The native front end hands over the head's bytes as it read them (the connection's read
//! buffer itself when it held just the head), so a request's fields cost no allocation of
//! their own: the spans of up to [`INLINE`] fields are kept in place. Kept as one
//! `(String, Vec<u8>)` pair per field, wrk's one `Host` header cost three allocations per
//! request and a browser's ten headers twenty-one (about 150 instructions each, malloc and
//! free).

use std::fmt;
use std::ops::Range;

use crate::response::eq_ignore_case;

/// Fields whose spans are kept without an allocation (wrk sends 1 header, curl 3); more spill
/// to a `Vec`.
const INLINE: usize = 8;

/// Where one field's name and value are in the buffer: 16 bytes, where two ranges of `usize`
/// would take 32 (the buffer is refused, or a push panics, past 4 GiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    /// Offset of the name.
    name_start: u32,
    /// Length of the name.
    name_len: u32,
    /// Offset of the value.
    value_start: u32,
    /// Length of the value.
    value_len: u32,
}

impl Span {
    /// Makes the span of a field from the ranges of its name and value.
    ///
    /// # Panics
    ///
    /// If an offset passes `u32::MAX` (callers keep the buffer under it).
    fn new(name: Range<usize>, value: Range<usize>) -> Span {
        let at = |n: usize| u32::try_from(n).expect("header bytes stay under 4 GiB");
        Span {
            name_start: at(name.start),
            name_len: at(name.len()),
            value_start: at(value.start),
            value_len: at(value.len()),
        }
    }

    /// Returns where the name is.
    fn name(self) -> Range<usize> {
        let start = self.name_start as usize;
        start..start + self.name_len as usize
    }

    /// Returns where the value is.
    fn value(self) -> Range<usize> {
        let start = self.value_start as usize;
        start..start + self.value_len as usize
    }
}

/// The spans of a request's fields, in order: in place for up to [`INLINE`] fields.
#[derive(Debug, Clone)]
pub(crate) enum Spans {
    /// The first `len` entries are the fields.
    Inline {
        /// How many entries are used.
        len: usize,
        /// The entries.
        spans: [Span; INLINE],
    },
    /// More fields than fit in place.
    Heap(Vec<Span>),
}

impl Default for Spans {
    fn default() -> Spans {
        Spans::Inline {
            len: 0,
            spans: [Span::default(); INLINE],
        }
    }
}

impl Spans {
    /// Adds the field whose name and value are at these ranges of the buffer.
    ///
    /// # Panics
    ///
    /// If an offset passes `u32::MAX`.
    pub(crate) fn push(&mut self, name: Range<usize>, value: Range<usize>) {
        let span = Span::new(name, value);
        match self {
            Spans::Inline { len, spans } if *len < INLINE => {
                spans[*len] = span;
                *len += 1;
            }
            Spans::Inline { len, spans } => {
                let mut heap = Vec::with_capacity(INLINE * 2);
                heap.extend_from_slice(&spans[..*len]);
                heap.push(span);
                *self = Spans::Heap(heap);
            }
            Spans::Heap(heap) => heap.push(span),
        }
    }

    /// Returns the spans in order.
    fn as_slice(&self) -> &[Span] {
        match self {
            Spans::Inline { len, spans } => &spans[..*len],
            Spans::Heap(heap) => heap,
        }
    }

    /// Keeps only the spans `keep` accepts, in order.
    fn retain(&mut self, mut keep: impl FnMut(Span) -> bool) {
        match self {
            Spans::Inline { len, spans } => {
                let mut kept = 0;
                for i in 0..*len {
                    if keep(spans[i]) {
                        spans[kept] = spans[i];
                        kept += 1;
                    }
                }
                *len = kept;
            }
            Spans::Heap(heap) => heap.retain(|span| keep(*span)),
        }
    }
}

/// Header fields in the order received: names as sent (compared without regard to case),
/// values as sent.
#[derive(Clone, Default)]
pub(crate) struct HeaderFields {
    /// The bytes the spans point into: a request head as read, then any fields added later.
    /// Holds only valid UTF-8 where a name is.
    bytes: Vec<u8>,
    /// Where each field is in `bytes`.
    spans: Spans,
}

impl HeaderFields {
    /// Takes the fields whose spans point into `bytes` (a parsed head; every name span is
    /// valid UTF-8, which the parser checked).
    #[cfg(test)]
    pub(crate) fn from_head(bytes: Vec<u8>, spans: Spans) -> HeaderFields {
        HeaderFields { bytes, spans }
    }

    /// Makes `bytes`, a head still to be parsed, the buffer of fields that have none yet.
    pub(crate) fn set_head(&mut self, bytes: Vec<u8>) {
        debug_assert!(self.spans.as_slice().is_empty());
        self.bytes = bytes;
    }

    /// Returns the bytes and the spans apart, so a parser can add the spans of the fields it
    /// finds in the bytes while it reads them.
    pub(crate) fn head_mut(&mut self) -> (&[u8], &mut Spans) {
        (&self.bytes, &mut self.spans)
    }

    /// Returns the text at `range` of the bytes: the request target, which the parser checked
    /// is ASCII (the bytes only grow, so the range stays where it was put).
    ///
    /// # Panics
    ///
    /// If `range` is not text of the bytes (a bug: the parser made it).
    pub(crate) fn text(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(&self.bytes[range]).expect("the request target is ASCII")
    }

    /// Returns the bytes at `range` (the request target).
    ///
    /// # Panics
    ///
    /// If `range` is outside the bytes (a bug: the parser made it).
    pub(crate) fn bytes_at(&self, range: Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    /// Adds a field after the others.
    ///
    /// # Panics
    ///
    /// If the fields' bytes pass 4 GiB.
    pub(crate) fn push(&mut self, name: &str, value: &[u8]) {
        let name_start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let value_start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.spans
            .push(name_start..value_start, value_start..self.bytes.len());
    }

    /// Removes every field named `name` (case-insensitive); `true` if there was one.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let before = self.len();
        let bytes = &self.bytes;
        self.spans
            .retain(|span| !eq_ignore_case(&bytes[span.name()], name.as_bytes()));
        self.len() != before
    }

    /// Returns how many fields there are.
    pub(crate) fn len(&self) -> usize {
        self.spans.as_slice().len()
    }

    /// Returns the value of the first field named `name` (case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.spans
            .as_slice()
            .iter()
            .find(|span| eq_ignore_case(&self.bytes[span.name()], name.as_bytes()))
            .map(|span| &self.bytes[span.value()])
    }

    /// Returns the fields in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.as_slice().iter().map(|span| {
            let name = std::str::from_utf8(&self.bytes[span.name()])
                .expect("header names are stored from text");
            (name, &self.bytes[span.value()])
        })
    }
}

impl From<Vec<(String, Vec<u8>)>> for HeaderFields {
    fn from(fields: Vec<(String, Vec<u8>)>) -> HeaderFields {
        let size = fields.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut out = HeaderFields {
            bytes: Vec::with_capacity(size),
            spans: Spans::default(),
        };
        for (name, value) in &fields {
            out.push(name, value);
        }
        out
    }
}

/// Equal when they hold the same fields in the same order, however they are laid out.
impl PartialEq for HeaderFields {
    fn eq(&self, other: &HeaderFields) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderFields {}

impl fmt::Debug for HeaderFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_past_the_inline_spans() {
        let mut fields = HeaderFields::default();
        for i in 0..INLINE + 3 {
            fields.push(&format!("X-{i}"), i.to_string().as_bytes());
        }
        assert_eq!(fields.len(), INLINE + 3);
        let names: Vec<String> = fields.iter().map(|(n, _)| n.to_string()).collect();
        let expected: Vec<String> = (0..INLINE + 3).map(|i| format!("X-{i}")).collect();
        assert_eq!(names, expected);
        assert_eq!(fields.get("x-10"), Some(&b"10"[..]));
        assert!(fields.remove("X-3"));
        assert_eq!(fields.len(), INLINE + 2);
        assert_eq!(fields.get("x-3"), None);
    }

    #[test]
    fn removing_keeps_the_rest_in_order() {
        let mut fields = HeaderFields::from(vec![
            ("A".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
            ("a".to_string(), b"3".to_vec()),
            ("C".to_string(), b"".to_vec()),
        ]);
        assert!(fields.remove("a"));
        assert!(!fields.remove("a"));
        let left: Vec<(&str, &[u8])> = fields.iter().collect();
        assert_eq!(left, vec![("b", &b"2"[..]), ("C", &b""[..])]);
    }

    #[test]
    fn spans_point_into_a_head_as_read() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let mut spans = Spans::default();
        spans.push(16..20, 22..23);
        let fields = HeaderFields::from_head(head, spans);
        assert_eq!(fields.get("HOST"), Some(&b"x"[..]));
        assert_eq!(
            fields,
            HeaderFields::from(vec![("Host".to_string(), b"x".to_vec())])
        );
    }
}
