//! Turning a request path into a file path that cannot leave the served root.
//!
//! Two steps, both needed. [`relative_path`] works on the text alone: it percent-decodes each
//! segment and refuses any that could climb or hide a separator (`..`, `.`, `%2e%2e`, `%2f`,
//! `%5c`, NUL, control bytes, dotfiles, malformed escapes). [`confine`] then asks the file system:
//! it canonicalises the joined path (resolving every symlink) and refuses the result unless it
//! is still under the canonical root, so a symlink that points outside is refused too. Every
//! refusal looks the same to the client as a missing file (404), so probing cannot tell
//! "refused" from "absent".

use std::path::{Path, PathBuf};

/// Decodes and checks the part of a request path below the mount point (still
/// percent-encoded, without the query); returns the relative file path and whether the request
/// path ended with `/`, or `None` if any segment is refused.
///
/// Empty segments (`a//b`) are skipped. A dotfile segment (`.env`, `.git`) is refused: edge
/// devices often ship a whole directory, and hidden files in it are rarely meant for clients.
pub(crate) fn relative_path(raw: &str) -> Option<(PathBuf, bool)> {
    // A backslash is a separator on Windows and never a sane URL character here.
    if raw.bytes().any(|b| b == b'\\' || b == 0) {
        return None;
    }
    let mut path = PathBuf::new();
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        let decoded = decode_segment(segment)?;
        if !is_safe_segment(&decoded) {
            return None;
        }
        path.push(decoded);
    }
    Some((path, raw.ends_with('/')))
}

/// Percent-decodes one segment strictly: a malformed escape or invalid UTF-8 is refused.
fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Returns `true` if a decoded segment names a plain entry of its directory.
fn is_safe_segment(segment: &str) -> bool {
    if segment.is_empty() || segment.starts_with('.') {
        // Covers `.`, `..` and dotfiles.
        return false;
    }
    if segment
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return false;
    }
    // On Windows a colon makes a drive or stream prefix (`C:`, `file:stream`).
    !(cfg!(windows) && segment.contains(':'))
}

/// Resolves `relative` under the canonical `root` on the file system; returns the canonical
/// path if it exists and is still under `root` (symlinks inside the root that stay inside are
/// followed), else `None`. Blocking: run it on the I/O class, never on the loop.
pub(crate) fn confine(root: &Path, relative: &Path) -> Option<PathBuf> {
    let joined = root.join(relative);
    let canonical = joined.canonicalize().ok()?;
    canonical.starts_with(root).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        assert_eq!(
            relative_path("css/site.css"),
            Some((PathBuf::from("css/site.css"), false))
        );
        assert_eq!(relative_path("docs/"), Some((PathBuf::from("docs"), true)));
        assert_eq!(relative_path(""), Some((PathBuf::new(), false)));
        assert_eq!(
            relative_path("a%20b.txt"),
            Some((PathBuf::from("a b.txt"), false))
        );
        assert_eq!(relative_path("a//b"), Some((PathBuf::from("a/b"), false)));
    }

    #[test]
    fn climbing_and_hidden_separators_are_refused() {
        for raw in [
            "..",
            "../secret",
            "a/../../secret",
            "%2e%2e/secret",
            "%2E%2E/secret",
            ".%2e/secret",
            "a%2f..%2f..%2fsecret",
            "a%2F%2E%2E",
            "..%5csecret",
            "a\\..\\secret",
            "%00",
            "a%00.txt",
            "./a",
            ".env",
            "a/.git/config",
            "%",
            "%zz",
            "%e2%82",
            "a%0d%0ab",
        ] {
            assert_eq!(relative_path(raw), None, "{raw:?} should be refused");
        }
    }

    #[test]
    fn double_encoding_stays_a_literal_name() {
        // `%252e` decodes once, to the three characters `%2e`: a plain (absent) file name.
        assert_eq!(
            relative_path("%252e%252e/x"),
            Some((PathBuf::from("%2e%2e/x"), false))
        );
    }
}
