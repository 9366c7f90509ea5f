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

use std::any::Any;
use std::rc::Rc;

use crate::request::Request;
use crate::response::{HeaderName, HeaderText, Response};
use crate::router::ResponseFuture;

/// One of the layers above as the chain runs it: in place, its work on the request and on the
/// response plain calls, where [`Layer::call`](crate::Layer::call) would box a future per
/// request (an allocation, a free and the copy of the request into it).
#[derive(Clone)]
pub(crate) enum Builtin {
    /// A [`RequestId`].
    RequestId(Rc<RequestId>),
    /// A [`Compression`].
    #[cfg(feature = "compress")]
    Compression(Rc<Compression>),
}

impl Builtin {
    /// Returns `layer` as a built-in layer, if it is one.
    pub(crate) fn of(layer: Rc<dyn Any>) -> Option<Builtin> {
        let layer = match layer.downcast::<RequestId>() {
            Ok(layer) => return Some(Builtin::RequestId(layer)),
            Err(other) => other,
        };
        #[cfg(feature = "compress")]
        if let Ok(layer) = layer.downcast::<Compression>() {
            return Some(Builtin::Compression(layer));
        }
        let _ = layer;
        None
    }

    /// Does the layer's work on `req` before the rest of the chain runs; returns what is left
    /// for the response.
    pub(crate) fn before(&self, req: &mut Request) -> After {
        match self {
            Builtin::RequestId(layer) => After::RequestId(layer.clone(), layer.tag(req)),
            #[cfg(feature = "compress")]
            Builtin::Compression(layer) => After::Compression(layer.clone(), layer.wants_gzip(req)),
        }
    }
}

/// A built-in layer's work left for the response, with what it kept from the request.
pub(crate) enum After {
    /// [`RequestId`] sends the id it gave the request.
    RequestId(Rc<RequestId>, HeaderText),
    /// [`Compression`] may compress; the flag says whether the client accepts gzip.
    #[cfg(feature = "compress")]
    Compression(Rc<Compression>, bool),
}

impl After {
    /// Does the layer's work on `response` in place; returns the work still to do with it as
    /// a future (compressing its body), if any.
    pub(crate) fn finish(self, response: &mut Response) -> Option<Later> {
        match self {
            After::RequestId(layer, id) => {
                layer.label(response, id);
                None
            }
            #[cfg(feature = "compress")]
            After::Compression(layer, wants_gzip) => layer.finish(wants_gzip, response),
        }
    }
}

/// A built-in layer's work that takes a future: compressing a body (the rare case, boxed and
/// kept out of the chain's future). Without the `compress` feature there is none.
pub(crate) enum Later {
    /// [`Compression`] compresses the body.
    #[cfg(feature = "compress")]
    Compress(Rc<Compression>),
}

impl Later {
    /// Starts the work on `response`.
    // Without the `compress` feature there is no `Later` to start.
    #[cfg_attr(not(feature = "compress"), allow(unused_variables))]
    pub(crate) fn start(self, response: Response) -> ResponseFuture {
        match self {
            #[cfg(feature = "compress")]
            Later::Compress(layer) => Box::pin(async move { layer.compress(response).await }),
        }
    }
}

/// Adds `token` to the response's `Vary` header unless it is listed already (or `Vary: *`).
pub(crate) fn add_vary(mut response: Response, token: &'static str) -> Response {
    add_vary_in(&mut response, token);
    response
}

/// Adds `token` to the `Vary` header of `response` in place, as [`add_vary`] does.
pub(crate) fn add_vary_in(response: &mut Response, token: &'static str) {
    let merged = match response.header("vary") {
        // The common case, a response without `Vary`, sends the constant as it is.
        None => HeaderText::Static(token),
        Some(existing) => {
            let listed = existing
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.eq_ignore_ascii_case(token));
            if listed {
                return;
            }
            // A valid field value and a token joined by a comma: valid.
            HeaderText::Owned(format!("{existing}, {token}"))
        }
    };
    response.set_header(HeaderName::Borrowed("Vary"), merged);
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
