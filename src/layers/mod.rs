//! The layers steadyloop ships: [`RequestId`], [`Cors`] and (with the `compress` feature)
//! [`Compression`]. Each is an ordinary [`Layer`](crate::Layer); add them with
//! [`Router::layer`](crate::Router::layer).

#[cfg(feature = "compress")]
mod compress;
mod cors;
mod request_id;

#[cfg(feature = "compress")]
pub use compress::Compression;
pub use cors::Cors;
pub use request_id::RequestId;

use crate::response::Response;

/// Adds `token` to the response's `Vary` header unless it is listed already (or `Vary: *`).
pub(crate) fn add_vary(response: Response, token: &'static str) -> Response {
    let merged = match response.header("vary") {
        // The common case, a response without `Vary`, sends the constant as it is.
        None => return response.with_static_header("Vary", token),
        Some(existing) => {
            let listed = existing
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.eq_ignore_ascii_case(token));
            if listed {
                return response;
            }
            format!("{existing}, {token}")
        }
    };
    response.with_header("Vary", merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_tokens_are_merged_once() {
        let response = add_vary(Response::text("x"), "Origin");
        let response = add_vary(response, "Accept-Encoding");
        let response = add_vary(response, "origin");
        assert_eq!(response.header("vary"), Some("Origin, Accept-Encoding"));
        let star = add_vary(Response::text("x").with_header("Vary", "*"), "Origin");
        assert_eq!(star.header("vary"), Some("*"));
    }
}
