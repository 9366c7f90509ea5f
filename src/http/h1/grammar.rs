//! The HTTP grammar the codec and the response builder share (RFC 9110 §5.5–5.6, RFC 9112):
//! tokens, field values, quoted strings, list items, Host bytes and reason phrases.
//!
//! Byte classes only: no state, no allocation. The request parser, the chunked decoder, the
//! router (method names) and [`Response::with_header`](crate::Response::with_header) all check
//! against these, so a byte that is valid in one place is valid in all of them.

/// Returns `true` if `name` is a non-empty HTTP token (RFC 9110 §5.6.2).
pub(crate) fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_token_byte(b))
}

/// Returns `true` for a byte allowed in a token (a method or a field name).
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Which bytes [`is_token_byte`] allows, one entry per byte value: a table lookup per byte
/// instead of a search through the punctuation list (header names are checked byte by byte).
static TOKEN: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// Which bytes [`is_host_byte`] allows.
static HOST: [bool; 256] = alphanumeric_and(b"-._~!$&'()*+,;=:[]%");

/// Builds a byte table that allows ASCII letters, digits and `punctuation`.
const fn alphanumeric_and(punctuation: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
}

/// Returns `true` if `value` is a safe field value: visible ASCII, spaces, tabs and obs-text only.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| FIELD_VALUE[usize::from(b)])
}

/// Which bytes [`is_field_value`] allows: HTAB, SP, visible ASCII and obs-text (a table lookup
/// per byte instead of three comparisons; every header a handler sets is checked with it).
static FIELD_VALUE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == 0x09 || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    table
};

/// Writes [`reason`] and [`status_line`] from one table of statuses.
macro_rules! statuses {
    ($($code:literal => $reason:literal;)*) => {
        /// Returns the standard reason phrase for `status`.
        pub(crate) fn reason(status: u16) -> &'static str {
            match status {
                $($code => $reason,)*
                _ => "",
            }
        }

        /// Returns the whole status line of `status` (`HTTP/1.1 200 OK\r\n`) when it has a
        /// standard reason phrase: one copy per response instead of five pieces.
        pub(crate) fn status_line(status: u16) -> Option<&'static str> {
            match status {
                $($code => Some(concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n")),)*
                _ => None,
            }
        }
    };
}

statuses! {
    100 => "Continue";
    200 => "OK";
    201 => "Created";
    202 => "Accepted";
    204 => "No Content";
    206 => "Partial Content";
    301 => "Moved Permanently";
    302 => "Found";
    303 => "See Other";
    304 => "Not Modified";
    307 => "Temporary Redirect";
    308 => "Permanent Redirect";
    400 => "Bad Request";
    401 => "Unauthorized";
    403 => "Forbidden";
    404 => "Not Found";
    405 => "Method Not Allowed";
    406 => "Not Acceptable";
    408 => "Request Timeout";
    409 => "Conflict";
    410 => "Gone";
    411 => "Length Required";
    412 => "Precondition Failed";
    413 => "Content Too Large";
    414 => "URI Too Long";
    415 => "Unsupported Media Type";
    417 => "Expectation Failed";
    422 => "Unprocessable Content";
    429 => "Too Many Requests";
    431 => "Request Header Fields Too Large";
    500 => "Internal Server Error";
    501 => "Not Implemented";
    502 => "Bad Gateway";
    503 => "Service Unavailable";
    504 => "Gateway Timeout";
    505 => "HTTP Version Not Supported";
}

/// Splits a comma-separated field value into trimmed items (empty items kept, as empty).
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

/// Splits a list of weighted items such as `Accept-Encoding` (RFC 9110 §12.4.2, §12.5.3) into
/// each item's name, trimmed and as sent, and its weight: its `q` parameter (the last one if
/// repeated), 1 without one, 0 if it cannot be read, clamped to 0..=1. Empty items are skipped.
/// Bytes only: no lowercase copies (compare names with `eq_ignore_ascii_case`).
pub(crate) fn weighted_items(value: &[u8]) -> impl Iterator<Item = (&[u8], f32)> {
    list_items(value)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let mut parts = item.split(|&b| b == b';');
            let name = trim_ows(parts.next().unwrap_or_default());
            let mut q = 1.0f32;
            for param in parts {
                let (key, value) = match param.iter().position(|&b| b == b'=') {
                    Some(at) => (&param[..at], &param[at + 1..]),
                    None => (param, &param[param.len()..]),
                };
                if trim_ows(key).eq_ignore_ascii_case(b"q") {
                    q = std::str::from_utf8(trim_ows(value))
                        .ok()
                        .and_then(|v| v.parse::<f32>().ok())
                        .unwrap_or(0.0)
                        .clamp(0.0, 1.0);
                }
            }
            (name, q)
        })
}

/// Trims optional whitespace (SP, HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Returns `true` for bytes allowed in a Host value (reg-name, IPv4, IP-literal, port).
pub(crate) fn is_host_byte(b: u8) -> bool {
    HOST[usize::from(b)]
}

/// Returns `true` for optional whitespace (`OWS` and `BWS`: SP or HTAB).
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Returns `true` for a byte allowed unescaped inside a quoted string (`qdtext`): HTAB, SP,
/// visible ASCII except `"` and `\`, and obs-text.
pub(crate) fn is_qdtext(b: u8) -> bool {
    b == b'\t'
        || b == b' '
        || b == 0x21
        || (0x23..=0x5b).contains(&b)
        || (0x5d..=0x7e).contains(&b)
        || b >= 0x80
}

/// Returns `true` for a byte that may follow `\` in a quoted string (`quoted-pair`): HTAB,
/// SP, visible ASCII and obs-text.
pub(crate) fn is_quoted_pair_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_items_give_names_as_sent_and_their_q() {
        let items: Vec<(&[u8], f32)> =
            weighted_items(b" GZIP;q=0.5 , ,br; Q = 1,*;q=x, identity ;level=1;q=7").collect();
        assert_eq!(
            items,
            [
                (&b"GZIP"[..], 0.5),
                (&b"br"[..], 1.0),
                (&b"*"[..], 0.0),
                (&b"identity"[..], 1.0),
            ]
        );
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"GET") && is_token(b"X-Custom_1") && is_token(b"!#$%&'*+-.^_`|~"));
        assert!(!is_token(b"") && !is_token(b"a b") && !is_token(b"a:") && !is_token(b"\"q\""));
        assert!(!is_token_byte(b'(') && !is_token_byte(0x80) && !is_token_byte(b'='));
    }

    #[test]
    fn the_byte_tables_match_the_grammar() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_token_byte(b), expected, "byte {b:#04x}");
            let host = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b);
            assert_eq!(is_host_byte(b), host, "byte {b:#04x}");
            let value = b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
            assert_eq!(is_field_value(&[b]), value, "byte {b:#04x}");
        }
    }

    #[test]
    fn field_values() {
        assert!(is_field_value(b"v\tw \xc3\xbc"));
        assert!(!is_field_value(b"a\r\nb") && !is_field_value(b"a\0b") && !is_field_value(b"\x7f"));
    }

    #[test]
    fn quoted_string_bytes() {
        assert!(is_qdtext(b'a') && is_qdtext(b' ') && is_qdtext(b'\t') && is_qdtext(0x80));
        assert!(!is_qdtext(b'"') && !is_qdtext(b'\\') && !is_qdtext(b'\r') && !is_qdtext(0x7f));
        assert!(is_quoted_pair_byte(b'"') && is_quoted_pair_byte(b'\\'));
        assert!(
            !is_quoted_pair_byte(b'\r') && !is_quoted_pair_byte(b'\n') && !is_quoted_pair_byte(0)
        );
    }

    #[test]
    fn list_items_are_trimmed_and_empty_items_kept() {
        let items: Vec<&[u8]> = list_items(b" gzip ,\tchunked,,").collect();
        assert_eq!(items, [&b"gzip"[..], b"chunked", b"", b""]);
        assert_eq!(trim_ows(b" \t x \t"), b"x");
    }

    #[test]
    fn host_bytes_and_reasons() {
        assert!(b"[::1]:8080".iter().all(|&b| is_host_byte(b)));
        assert!(!is_host_byte(b'/') && !is_host_byte(b' ') && !is_host_byte(b'@'));
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(299), "");
        assert_eq!(status_line(404), Some("HTTP/1.1 404 Not Found\r\n"));
        assert_eq!(status_line(299), None);
    }
}
