//! Header-name comparison: equal ignoring ASCII case, eight bytes at a time.
//!
//! Every header lookup, replacement and removal compares names. `<[u8]>::eq_ignore_ascii_case`
//! lowercases byte by byte (about 14 instructions a byte, with no early exit inside 16-byte
//! blocks): `content-type` against `Content-Type` cost 168 instructions, and a `GET /healthz`
//! through the demo's layers made a handful of such comparisons.

/// One in every byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;

/// Returns `true` if `a` and `b` are equal ignoring ASCII case (as
/// `<[u8]>::eq_ignore_ascii_case`; other bytes must match exactly).
///
/// The lengths are compared in place; only names of equal length take the call.
#[inline]
pub(crate) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && eq_same_len(a, b)
}

/// [`eq_ignore_case`] for `a` and `b` of the same length.
fn eq_same_len(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n == 0 {
        return true;
    }
    // Names of one length mostly differ in their first letter: setting bit 5 folds a capital
    // to its small letter (and some other bytes together), so a difference left is a real one.
    if (a[0] | 0x20) != (b[0] | 0x20) {
        return false;
    }
    if n < 4 {
        return a.eq_ignore_ascii_case(b);
    }
    if n < 8 {
        // Two overlapping four-byte reads cover the name.
        let word = |x: &[u8]| u64::from(u32_at(x, 0)) << 32 | u64::from(u32_at(x, n - 4));
        return same_word(word(a), word(b));
    }
    // Whole words, then the last eight bytes (overlapping the word before): whole reads,
    // where a zero-padded tail cost a copy call. Names up to 16 bytes take two.
    let mut at = 0;
    while at + 8 < n {
        if !same_word(u64_at(a, at), u64_at(b, at)) {
            return false;
        }
        at += 8;
    }
    same_word(u64_at(a, n - 8), u64_at(b, n - 8))
}

/// Returns `true` if words `x` and `y` hold the same bytes ignoring ASCII case.
#[inline]
fn same_word(x: u64, y: u64) -> bool {
    x == y || lowercase(x) == lowercase(y)
}

/// Reads the eight bytes at `at` as a little-endian word.
#[inline]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// Reads the four bytes at `at` as a little-endian word.
#[inline]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

/// Lowercases the ASCII capitals among the eight bytes of `x`, leaving every other byte as
/// it is (`u8::to_ascii_lowercase` on each byte).
#[inline]
fn lowercase(x: u64) -> u64 {
    // With the top bit of each byte cleared, adding a constant below 0x81 cannot carry into
    // the next byte; the sum's top bit then says whether the byte reached the bound.
    let low7 = x & (0x7f * ONES);
    let from_a = low7 + u64::from(0x80 - b'A') * ONES;
    let past_z = low7 + u64::from(0x80 - b'Z' - 1) * ONES;
    // Capitals: at least `A`, not past `Z`, and ASCII to begin with.
    let capital = from_a & !past_z & !x & (0x80 * ONES);
    x | (capital >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_library_on_every_byte_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for len in [1, 5, 11] {
                    let mut x = vec![b'x'; len];
                    let mut y = vec![b'X'; len];
                    x[len / 2] = a;
                    y[len / 2] = b;
                    assert_eq!(
                        eq_ignore_case(&x, &y),
                        x.eq_ignore_ascii_case(&y),
                        "{a} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn compares_whole_names_of_any_length() {
        assert!(eq_ignore_case(b"Content-Type", b"content-type"));
        assert!(eq_ignore_case(b"X-REQUEST-ID", b"x-request-id"));
        assert!(eq_ignore_case(b"", b""));
        assert!(!eq_ignore_case(b"Content-Type", b"content-typf"));
        assert!(!eq_ignore_case(b"Content-Length", b"content-type"));
        assert!(!eq_ignore_case(b"Accept-Encodinga", b"accept-encodingb"));
        assert!(!eq_ignore_case(b"aXcdefghijklmnopq", b"abcdefghijklmnopq"));
        assert!(!eq_ignore_case(b"Vary", b"Varz"));
        assert!(!eq_ignore_case(b"Etag", b"Etah"));
        assert!(eq_ignore_case(b"ETag", b"etag"));
        assert!(!eq_ignore_case(b"a^b", b"a~b"));
        assert!(!eq_ignore_case(b"^b", b"~b"));
        assert!(!eq_ignore_case(b"@", b"`"));
        assert!(eq_ignore_case("Ü-Ä".as_bytes(), "Ü-Ä".as_bytes()));
        assert!(!eq_ignore_case("ü".as_bytes(), "Ü".as_bytes()));
    }
}
