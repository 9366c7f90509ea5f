//! Route patterns: `/items/:id`, `/files/*rest`, and how specific each one is.

use crate::request::decode_component;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches this exact (decoded) segment.
    Literal(String),
    /// Matches any one non-empty segment and captures it under this name.
    Param(String),
    /// Matches the rest of the path (possibly empty) and captures it under this name.
    Rest(String),
}

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The pattern as written, used in logs and metrics labels.
    text: String,
    /// Its segments, in order.
    segments: Vec<Segment>,
    /// Its [`Pattern::specificity`] key, computed once.
    rank: Box<[u8]>,
}

impl Pattern {
    /// Parses `text`, such as `/items/:id` or `/static/*path`.
    ///
    /// # Errors
    ///
    /// Returns a message if the pattern does not start with `/`, has an empty parameter name, a
    /// repeated parameter name, or a `*rest` segment that is not the last one.
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        if !text.starts_with('/') {
            return Err(format!("route pattern {text:?} must start with '/'"));
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = text[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = if let Some(name) = part.strip_prefix(':') {
                Segment::Param(name.to_string())
            } else if let Some(name) = part.strip_prefix('*') {
                if i + 1 != parts.len() {
                    return Err(format!("in {text:?}, '*{name}' must be the last segment"));
                }
                Segment::Rest(name.to_string())
            } else {
                Segment::Literal(part.to_string())
            };
            if let Segment::Param(name) | Segment::Rest(name) = &segment {
                if name.is_empty() {
                    return Err(format!("in {text:?}, a parameter has no name"));
                }
                let seen = segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) | Segment::Rest(n) if n == name));
                if seen {
                    return Err(format!("in {text:?}, parameter {name:?} appears twice"));
                }
            }
            segments.push(segment);
        }
        let rank = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 3,
                Segment::Param(_) => 2,
                Segment::Rest(_) => 1,
            })
            .collect();
        Ok(Pattern {
            text: text.to_string(),
            segments,
            rank,
        })
    }

    /// Returns the pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches `path` (percent-encoded, without the query) and returns the captured parameters,
    /// decoded.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Rest(name) => {
                    // The remainder of the path, from this segment on.
                    let consumed: usize = self.segments[..i].len();
                    let remainder = rest.splitn(consumed + 1, '/').nth(consumed).unwrap_or("");
                    params.push((name.clone(), decode_component(remainder, false)));
                    return Some(params);
                }
                Segment::Literal(literal) => {
                    let part = parts.next()?;
                    // Only an escaped segment can decode to something else: the rest are
                    // compared as they are, without building a decoded copy per route tried.
                    if part != literal
                        && (!part.contains('%') || decode_component(part, false) != *literal)
                    {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let part = parts.next()?;
                    if part.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), decode_component(part, false)));
                }
            }
        }
        parts.next().is_none().then_some(params)
    }

    /// Returns a key that orders patterns by specificity: literals beat parameters, which beat
    /// a `*rest` tail; among equals, longer patterns win.
    pub(crate) fn specificity(&self) -> &[u8] {
        &self.rank
    }

    /// Returns `true` if every segment is literal (the pattern matches one path, and the
    /// escaped spellings of it).
    pub(crate) fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        Pattern::parse(pattern).unwrap().matches(path)
    }

    #[test]
    fn literal_and_param_segments() {
        assert_eq!(params("/", "/"), Some(vec![]));
        assert_eq!(params("/healthz", "/healthz"), Some(vec![]));
        assert_eq!(params("/healthz", "/healthz/"), None);
        assert_eq!(params("/healthz", "/health"), None);
        assert_eq!(
            params("/items/:id", "/items/a%20b"),
            Some(vec![("id".into(), "a b".into())])
        );
        assert_eq!(params("/items/:id", "/items/"), None);
        assert_eq!(params("/items/:id", "/items/1/2"), None);
        assert_eq!(params("/items/:id", "items/1"), None);
    }

    #[test]
    fn rest_captures_the_tail() {
        assert_eq!(
            params("/files/*path", "/files/a/b%2Fc"),
            Some(vec![("path".into(), "a/b/c".into())])
        );
        assert_eq!(
            params("/files/*path", "/files/"),
            Some(vec![("path".into(), "".into())])
        );
        assert_eq!(params("/files/*path", "/file"), None);
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(Pattern::parse("items").is_err());
        assert!(Pattern::parse("/a/:").is_err());
        assert!(Pattern::parse("/a/*rest/b").is_err());
        assert!(Pattern::parse("/a/:x/:x").is_err());
    }

    #[test]
    fn literals_are_more_specific_than_params() {
        let literal = Pattern::parse("/items/new").unwrap();
        let param = Pattern::parse("/items/:id").unwrap();
        assert!(literal.specificity() > param.specificity());
    }
}
