//! The header logic of serving a file: validators (`ETag`, `Last-Modified`), conditional
//! requests (`If-None-Match`, `If-Modified-Since`, `If-Range`), byte ranges and the choice of a
//! precompressed sibling from `Accept-Encoding`. Pure functions of header text, tested here.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::h1::grammar::weighted_items;

/// What identifies one version of a file's representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// The strong entity tag, quotes included (`"1f4-17e2a3c5b10"`).
    pub(crate) etag: String,
    /// The modification time in whole seconds since the epoch.
    pub(crate) modified: u64,
}

impl Validators {
    /// Derives validators from a file's size and modification time; `coding` (a precompressed
    /// sibling's `gzip` or `br`) is part of the tag, since the bytes differ.
    pub(crate) fn new(len: u64, mtime: SystemTime, coding: Option<&str>) -> Validators {
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        let nanos = since.as_nanos();
        let etag = match coding {
            Some(coding) => format!("\"{len:x}-{nanos:x}-{coding}\""),
            None => format!("\"{len:x}-{nanos:x}\""),
        };
        Validators {
            etag,
            modified: since.as_secs(),
        }
    }
}

/// Returns `true` if a `GET`/`HEAD` with these headers should get `304 Not Modified`.
///
/// `If-None-Match` wins over `If-Modified-Since` when both are present (RFC 9110 §13.2.2);
/// entity tags compare weakly (a `W/` prefix is ignored) and `*` matches any.
pub(crate) fn is_not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    validators: &Validators,
) -> bool {
    if let Some(list) = if_none_match {
        return list.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == validators.etag.as_str()
        });
    }
    match if_modified_since.and_then(parse_http_date) {
        Some(since) => validators.modified <= since,
        None => false,
    }
}

/// Returns `true` if a `Range` may be honoured given `If-Range` (absent, or naming the current
/// representation: the same strong tag, or exactly its `Last-Modified` date).
pub(crate) fn if_range_holds(if_range: Option<&str>, validators: &Validators) -> bool {
    let Some(value) = if_range.map(str::trim) else {
        return true;
    };
    if value.starts_with('"') {
        return value == validators.etag;
    }
    if value.starts_with("W/") {
        // A weak tag never matches for ranges (strong comparison).
        return false;
    }
    parse_http_date(value) == Some(validators.modified)
}

/// The answer to a `Range` header for a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// Send the whole representation (no header, or one we do not honour: several ranges,
    /// another unit, or bad syntax, which RFC 9110 §14.2 lets a server ignore).
    Whole,
    /// Send bytes `start..=end` with `206 Partial Content`.
    Part {
        /// The first byte.
        start: u64,
        /// The last byte, inclusive.
        end: u64,
    },
    /// `416 Range Not Satisfiable`.
    Unsatisfiable,
}

/// Interprets a `Range` header: one `bytes=` range, as `a-b`, `a-` (open-ended) or `-n` (the
/// last `n` bytes).
pub(crate) fn byte_range(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = header.map(str::trim).and_then(|h| {
        let (unit, rest) = h.split_once('=')?;
        unit.trim().eq_ignore_ascii_case("bytes").then_some(rest)
    }) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        // Several ranges would need multipart/byteranges; the whole file is a valid answer.
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // An overlong number is clamped rather than refused: `bytes=0-99999999999999999999`.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    match (number(first), number(last)) {
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Part {
                start: len.saturating_sub(suffix),
                end: len - 1,
            }
        }
        (Some(start), None) if last.is_empty() => {
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Part {
                start,
                end: len - 1,
            }
        }
        (Some(start), Some(end)) if start <= end => {
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Part {
                start,
                end: end.min(len - 1),
            }
        }
        _ => RangeAnswer::Whole,
    }
}

/// A content coding a precompressed sibling file may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `name.br`, `Content-Encoding: br`.
    Brotli,
    /// `name.gz`, `Content-Encoding: gzip`.
    Gzip,
}

impl Coding {
    /// The codings in order of preference (smallest output first).
    pub(crate) const PREFERRED: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of the sibling.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gz",
        }
    }
}

/// Returns the codings `Accept-Encoding` allows, in our order of preference.
///
/// A coding is allowed if it is listed (or `*` is) with a q-value above 0; `x-gzip` counts as
/// `gzip`. No header means no coding: a client that says nothing gets the plain file.
pub(crate) fn accepted_codings(accept_encoding: Option<&str>) -> Vec<Coding> {
    let Some(header) = accept_encoding else {
        return Vec::new();
    };
    let mut star = None;
    let mut listed: Vec<(&[u8], bool)> = Vec::new();
    for (name, q) in weighted_items(header.as_bytes()) {
        let name: &[u8] = if name.eq_ignore_ascii_case(b"x-gzip") {
            b"gzip"
        } else {
            name
        };
        if name == b"*" {
            star = Some(q > 0.0);
        } else {
            listed.push((name, q > 0.0));
        }
    }
    Coding::PREFERRED
        .into_iter()
        .filter(|coding| {
            let token = coding.token().as_bytes();
            match listed
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(token))
            {
                Some((_, allowed)) => *allowed,
                None => star.unwrap_or(false),
            }
        })
        .collect()
}

/// Parses an HTTP date in the preferred IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`) into
/// seconds since the epoch.
///
/// The obsolete RFC 850 and asctime forms are not accepted; a conditional header carrying one
/// is ignored, which only costs a full response.
pub(crate) fn parse_http_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = text.trim();
    let rest = text.get(5..)?; // after "Sun, "
    if text.as_bytes().get(3) != Some(&b',') {
        return None;
    }
    let mut parts = rest.split(' ');
    let day: u32 = digits(parts.next()?, 2)?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let year: i64 = i64::from(digits(parts.next()?, 4)?);
    let mut clock = parts.next()?.split(':');
    let hour = digits(clock.next()?, 2)?;
    let minute = digits(clock.next()?, 2)?;
    let second = digits(clock.next()?, 2)?;
    if parts.next()? != "GMT" || parts.next().is_some() || clock.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second)).ok()
}

/// Parses exactly `width` ASCII digits.
fn digits(text: &str, width: usize) -> Option<u32> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's method; the inverse of the codec's
/// formatter).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h1::date::format_imf;

    fn validators() -> Validators {
        Validators {
            etag: "\"a-b\"".into(),
            modified: 784_111_777,
        }
    }

    #[test]
    fn dates_round_trip_with_the_codec_formatter() {
        for secs in [0, 784_111_777, 951_782_400, 1_795_564_800, 4_102_444_799] {
            assert_eq!(parse_http_date(&format_imf(secs)), Some(secs), "{secs}");
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(""), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT x"), None);
    }

    #[test]
    fn if_none_match_wins_and_compares_weakly() {
        let v = validators();
        let date = format_imf(v.modified);
        assert!(is_not_modified(Some("\"a-b\""), None, &v));
        assert!(is_not_modified(Some("\"x\", W/\"a-b\""), None, &v));
        assert!(is_not_modified(Some("*"), None, &v));
        assert!(!is_not_modified(Some("\"x\""), Some(&date), &v));
        assert!(is_not_modified(None, Some(&date), &v));
        assert!(!is_not_modified(
            None,
            Some(&format_imf(v.modified - 1)),
            &v
        ));
        assert!(!is_not_modified(None, Some("garbage"), &v));
        assert!(!is_not_modified(None, None, &v));
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let v = validators();
        assert!(if_range_holds(None, &v));
        assert!(if_range_holds(Some("\"a-b\""), &v));
        assert!(!if_range_holds(Some("W/\"a-b\""), &v));
        assert!(!if_range_holds(Some("\"old\""), &v));
        assert!(if_range_holds(Some(&format_imf(v.modified)), &v));
        assert!(!if_range_holds(Some(&format_imf(v.modified + 1)), &v));
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(byte_range(None, 10), Whole);
        assert_eq!(byte_range(Some("bytes=0-4"), 10), Part { start: 0, end: 4 });
        assert_eq!(byte_range(Some("bytes=5-"), 10), Part { start: 5, end: 9 });
        assert_eq!(byte_range(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(byte_range(Some("bytes=-30"), 10), Part { start: 0, end: 9 });
        assert_eq!(
            byte_range(Some("bytes=8-20"), 10),
            Part { start: 8, end: 9 }
        );
        assert_eq!(
            byte_range(Some("Bytes = 1-1"), 10),
            Part { start: 1, end: 1 }
        );
        assert_eq!(
            byte_range(Some("bytes=0-99999999999999999999999"), 10),
            Part { start: 0, end: 9 }
        );
        assert_eq!(byte_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=10-12"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(byte_range(Some("bytes=0-1,3-4"), 10), Whole);
        assert_eq!(byte_range(Some("items=0-1"), 10), Whole);
        assert_eq!(byte_range(Some("bytes=a-b"), 10), Whole);
        assert_eq!(byte_range(Some("bytes=+1-2"), 10), Whole);
        assert_eq!(byte_range(Some("bytes="), 10), Whole);
    }

    #[test]
    fn accept_encoding() {
        use Coding::*;
        assert_eq!(accepted_codings(None), vec![]);
        assert_eq!(accepted_codings(Some("gzip, br")), vec![Brotli, Gzip]);
        assert_eq!(accepted_codings(Some("gzip")), vec![Gzip]);
        assert_eq!(accepted_codings(Some("br;q=0, gzip;q=0.5")), vec![Gzip]);
        assert_eq!(accepted_codings(Some("*")), vec![Brotli, Gzip]);
        assert_eq!(accepted_codings(Some("*, br;q=0")), vec![Gzip]);
        assert_eq!(accepted_codings(Some("identity")), vec![]);
        assert_eq!(accepted_codings(Some("X-GZIP")), vec![Gzip]);
        assert_eq!(accepted_codings(Some("gzip;q=bogus")), vec![]);
    }
}
