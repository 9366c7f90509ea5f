//! The `Date` header value (IMF-fixdate, RFC 9110 §5.6.7), formatted at most once a second.

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Room for `Date: ` + an IMF-fixdate + CRLF (6 + 29 + 2 bytes until the year 10000).
const LINE_MAX: usize = 48;

/// A `Date: ...\r\n` line in a fixed array: no allocation, and one copy per response.
struct Line {
    /// The bytes; the first `len` are the line.
    bytes: [u8; LINE_MAX],
    /// The line's length.
    len: usize,
}

impl Line {
    /// Returns the whole line.
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

thread_local! {
    /// The line of the current second and the monotonic instant its second ends.
    static CACHE: RefCell<(Option<Instant>, Line)> = const {
        RefCell::new((None, Line { bytes: [0; LINE_MAX], len: 0 }))
    };
}

/// Runs `f` with the `Date: ...\r\n` line for the current second.
///
/// The cache is kept by the monotonic clock: a comparison with the instant the cached second
/// ends, rather than a read of the wall clock and its conversion to seconds since 1970 (about
/// 80 instructions per response). The wall clock is read once a second, so a step of it (NTP)
/// shows within a second.
pub(crate) fn with_line<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = Instant::now();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        match cache.0 {
            Some(ends) if now < ends => {}
            _ => *cache = refill(now),
        }
        f(cache.1.as_bytes())
    })
}

/// Formats the line of the wall clock's current second, which `now` (monotonic, read just
/// before) falls in, and the instant that second ends.
fn refill(now: Instant) -> (Option<Instant>, Line) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // The wall clock was read after `now`, so the end comes out a little early, never late:
    // at worst the next response formats the same second again.
    let left = Duration::from_secs(1) - Duration::from_nanos(u64::from(wall.subsec_nanos()));
    let text = format!("Date: {}\r\n", format_imf(wall.as_secs()));
    let mut line = Line {
        bytes: [0; LINE_MAX],
        len: text.len().min(LINE_MAX),
    };
    line.bytes[..line.len].copy_from_slice(&text.as_bytes()[..line.len]);
    (now.checked_add(left), line)
}

/// Appends the current date, as `Sun, 06 Nov 1994 08:49:37 GMT`, to `out`.
pub(crate) fn append_now(out: &mut Vec<u8>) {
    with_line(|line| out.extend_from_slice(&line[6..line.len() - 2]));
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub(crate) fn format_imf(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_imf(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_imf(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format_imf(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(format_imf(1_795_564_800), "Wed, 25 Nov 2026 00:00:00 GMT");
    }

    #[test]
    fn the_cached_line_holds_the_current_date() {
        let mut line = Vec::new();
        with_line(|bytes| line.extend_from_slice(bytes));
        let mut value = Vec::new();
        append_now(&mut value);
        let text = String::from_utf8(line).unwrap();
        assert!(
            text.starts_with("Date: ") && text.ends_with(" GMT\r\n"),
            "{text}"
        );
        assert_eq!(text.len(), 37);
        // The value is the line's middle, unless the second turned in between.
        let now = String::from_utf8(value).unwrap();
        assert_eq!(now.len(), 29);
        assert!(text.contains(&now[..20]), "{text} / {now}");
    }
}
