//! The route index: which routes can match a path, computed once per router so that resolving
//! a request does not try every pattern in turn.
//!
//! Matching a path against a pattern depends on the path alone, so for each path that is the
//! text of an all-literal pattern (`/healthz`, `/report/stream`) the set of matching routes, and
//! their parameters, are known before the first request: resolving such a path is one binary
//! search and a choice among (usually) one route. Any other path without `%` cannot match an
//! all-literal pattern (its segments would have to equal the pattern's, byte for byte), so only
//! the patterns with parameters or a `*rest` tail are tried; a path with `%` tries them all, as
//! an escaped segment may decode to a literal.
//!
//! Measured with `scripts/instructions.sh` on the demo (11 routes, `GET /healthz`): replacing
//! the scan of every pattern (each splitting the path) with this index took 21,253 instructions
//! per request to 18,949.

use std::cmp::Ordering;

use crate::router::Route;

/// Decoded route parameters, as a request carries them.
pub(crate) type Params = Vec<(String, String)>;

/// A route that matches one indexed path, with the parameters it captures there.
#[derive(Debug)]
pub(crate) struct Match {
    /// The route id.
    pub(crate) id: usize,
    /// The parameters the route captures for this path (empty for literal routes).
    pub(crate) params: Params,
}

/// The precomputed candidates for resolving paths; built from a route table, in its order.
#[derive(Debug, Default)]
pub(crate) struct RouteIndex {
    /// Each all-literal pattern's text with every route matching it, in registration order;
    /// sorted by length, then bytes, for [`RouteIndex::exact`].
    exact: Vec<(Box<str>, Box<[Match]>)>,
    /// The ids of the routes whose pattern is not all-literal, in registration order.
    dynamic: Box<[usize]>,
}

impl RouteIndex {
    /// Builds the index of `routes`.
    pub(crate) fn new(routes: &[Route]) -> RouteIndex {
        let mut exact: Vec<(Box<str>, Box<[Match]>)> = Vec::new();
        for route in routes.iter().filter(|r| r.pattern.is_literal()) {
            let path = route.pattern.as_str();
            if exact.iter().any(|(known, _)| &**known == path) {
                continue;
            }
            let matches = routes
                .iter()
                .enumerate()
                .filter_map(|(id, r)| r.pattern.matches(path).map(|params| Match { id, params }))
                .collect();
            exact.push((path.into(), matches));
        }
        exact.sort_by(|(a, _), (b, _)| by_length_then_bytes(a.as_bytes(), b.as_bytes()));
        let dynamic = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.pattern.is_literal())
            .map(|(id, _)| id)
            .collect();
        RouteIndex { exact, dynamic }
    }

    /// Returns every route matching `path` when `path` is an all-literal pattern's text (bytes:
    /// a target kept in the head's bytes is text only after a UTF-8 check).
    pub(crate) fn exact(&self, path: &[u8]) -> Option<&[Match]> {
        self.exact
            .binary_search_by(|(known, _)| by_length_then_bytes(known.as_bytes(), path))
            .ok()
            .map(|i| &*self.exact[i].1)
    }

    /// Returns the ids of the routes that may match a path [`RouteIndex::exact`] does not
    /// know: the non-literal ones, or all of them when the path has an escape.
    pub(crate) fn candidates<'a>(
        &'a self,
        routes: &'a [Route],
        path: &str,
    ) -> impl Iterator<Item = usize> + 'a {
        let all = path.contains('%');
        let (every, dynamic) = if all {
            (0..routes.len(), &[][..])
        } else {
            (0..0, &*self.dynamic)
        };
        every.chain(dynamic.iter().copied())
    }
}

/// Orders strings by length first, so most comparisons stop before reading any byte.
fn by_length_then_bytes(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
