//! The text forms of setting values (one module per unit of the settings table) and the
//! per-setting checks the table names.
//!
//! Parsers return a message without the setting's name; the caller puts the key, flag or
//! environment variable in front of it.

use std::time::Duration;

use super::Frontend;

/// Result of a parser or check: the message names what was expected.
type Parsed<T> = Result<T, String>;

/// A listening address, kept as text (it is resolved when the server is built).
pub(crate) mod address {
    /// Takes the text as given; it must not be empty.
    pub(crate) fn parse(text: &str) -> super::Parsed<String> {
        if text.is_empty() {
            return Err("expected an address like 127.0.0.1:8080, got \"\"".into());
        }
        Ok(text.to_string())
    }
}

/// A whole number of things (jobs, headers, connections).
pub(crate) mod count {
    /// Parses a non-negative whole number; `_` may group digits.
    pub(crate) fn parse(text: &str) -> super::Parsed<usize> {
        text.replace('_', "")
            .parse()
            .map_err(|_| format!("expected a whole number, got {text:?}"))
    }
}

/// A size in bytes.
pub(crate) mod bytes {
    /// Parses bytes, optionally with a `KiB`, `MiB` or `GiB` suffix (any case): `65536`,
    /// `64KiB`, `1 MiB`.
    pub(crate) fn parse(text: &str) -> super::Parsed<usize> {
        let bad = || format!("expected a size in bytes like 65536, 64KiB or 1MiB, got {text:?}");
        let lower = text.to_ascii_lowercase();
        let (number, scale) = [("kib", 1usize << 10), ("mib", 1 << 20), ("gib", 1 << 30)]
            .iter()
            .find_map(|(suffix, scale)| Some((lower.strip_suffix(suffix)?, *scale)))
            .unwrap_or((lower.as_str(), 1));
        let number: usize = number.trim().replace('_', "").parse().map_err(|_| bad())?;
        number.checked_mul(scale).ok_or_else(bad)
    }
}

/// A duration.
pub(crate) mod duration {
    use std::time::Duration;

    /// Parses `250ms`, `10s`, `2m`, or a bare number of seconds.
    pub(crate) fn parse(text: &str) -> super::Parsed<Duration> {
        let bad = || format!("expected a duration like 500ms, 10s or 2m, got {text:?}");
        let (number, scale_ms) = if let Some(n) = text.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = text.strip_suffix('s') {
            (n, 1000)
        } else if let Some(n) = text.strip_suffix('m') {
            (n, 60_000)
        } else {
            (text, 1000)
        };
        let number: u64 = number.trim().parse().map_err(|_| bad())?;
        number
            .checked_mul(scale_ms)
            .map(Duration::from_millis)
            .ok_or_else(bad)
    }
}

/// An on/off switch.
pub(crate) mod switch {
    /// Parses `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), ignoring case.
    pub(crate) fn parse(text: &str) -> super::Parsed<bool> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false, got {text:?}")),
        }
    }
}

/// A fraction from 0 to 1.
pub(crate) mod ratio {
    /// Parses a number from 0 to 1.
    pub(crate) fn parse(text: &str) -> super::Parsed<f64> {
        match text.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => Err(format!("expected a number from 0 to 1, got {text:?}")),
        }
    }
}

/// The HTTP front end.
pub(crate) mod frontend {
    use super::Frontend;

    /// Parses `native` or `tiny_http` (also `tiny-http`), ignoring case.
    pub(crate) fn parse(text: &str) -> super::Parsed<Frontend> {
        match text.trim().to_ascii_lowercase().as_str() {
            "native" => Ok(Frontend::Native),
            "tiny_http" | "tiny-http" => Ok(Frontend::TinyHttp),
            _ => Err(format!("expected native or tiny_http, got {text:?}")),
        }
    }
}

/// A check that a count is at least `min`.
pub(crate) fn at_least(min: usize) -> impl Fn(&usize) -> Parsed<()> {
    move |value| {
        if *value < min {
            return Err(format!("must be at least {min}"));
        }
        Ok(())
    }
}

/// Checks that a duration is above zero.
pub(crate) fn above_zero(value: &Duration) -> Parsed<()> {
    if value.is_zero() {
        return Err("must be above 0".into());
    }
    Ok(())
}

/// Checks that a ratio is from 0 to 1 (a field set directly may be anything).
pub(crate) fn within_0_and_1(value: &f64) -> Parsed<()> {
    if !(0.0..=1.0).contains(value) {
        return Err("must be from 0 to 1".into());
    }
    Ok(())
}

/// Checks that the front end is compiled into the crate.
pub(crate) fn compiled_in(frontend: &Frontend) -> Parsed<()> {
    if !frontend.is_available() {
        return Err(format!(
            "{frontend} is not compiled in; rebuild with `--features {frontend}`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            duration::parse("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(duration::parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration::parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration::parse("7").unwrap(), Duration::from_secs(7));
        assert!(duration::parse("-1s").is_err());
        assert!(duration::parse("1h").is_err());
        assert!(duration::parse("99999999999999999999").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(bytes::parse("65536").unwrap(), 65536);
        assert_eq!(bytes::parse("16KiB").unwrap(), 16 * 1024);
        assert_eq!(bytes::parse("1 mib").unwrap(), 1 << 20);
        assert_eq!(bytes::parse("2GiB").unwrap(), 2 << 30);
        assert_eq!(bytes::parse("1_000").unwrap(), 1000);
        assert!(bytes::parse("1MB").is_err());
        assert!(bytes::parse("KiB").is_err());
        assert!(bytes::parse("-1").is_err());
        assert!(bytes::parse(&format!("{}GiB", usize::MAX)).is_err());
    }

    #[test]
    fn messages_say_what_was_expected() {
        assert_eq!(
            count::parse("many").unwrap_err(),
            "expected a whole number, got \"many\""
        );
        assert!(switch::parse("maybe")
            .unwrap_err()
            .contains("true or false"));
        assert!(ratio::parse("1.5").unwrap_err().contains("from 0 to 1"));
        assert!(frontend::parse("hyper")
            .unwrap_err()
            .contains("native or tiny_http"));
        assert!(address::parse("").is_err());
        assert_eq!(at_least(64)(&63).unwrap_err(), "must be at least 64");
        assert!(above_zero(&Duration::ZERO).is_err());
    }
}
