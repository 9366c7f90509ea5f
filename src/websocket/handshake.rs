//! The opening handshake of RFC 6455 §4.2 on the server side: checking the client's upgrade
//! request, and the `101 Switching Protocols` answer with `Sec-WebSocket-Accept`.

use crate::request::Request;
use crate::response::Response;

/// The GUID the accept key is derived with (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Returns `true` if `req` asks to switch to WebSocket (`Upgrade: websocket`), whether or not
/// the rest of the handshake is valid.
pub(crate) fn is_upgrade(req: &Request) -> bool {
    has_token(req.header("upgrade"), "websocket")
}

/// Checks a WebSocket upgrade request; returns the `Sec-WebSocket-Accept` value, or the error
/// response to send instead.
///
/// - not `GET`, HTTP/1.0, no `Connection: upgrade` or no `Upgrade: websocket` → 400;
/// - a version other than 13 → 426 with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4);
/// - a missing key, or one that is not 16 bytes in base64 → 400.
pub(crate) fn accept(req: &Request) -> Result<String, Response> {
    let bad = |why: &str| {
        Response::text(format!("bad websocket handshake: {why}\n"))
            .with_status(400)
            .with_header("Sec-WebSocket-Version", "13")
    };
    if req.method() != "GET" {
        return Err(bad("the method must be GET"));
    }
    if req.is_http10() {
        return Err(bad("HTTP/1.1 is required"));
    }
    if !has_token(req.header("upgrade"), "websocket") {
        return Err(bad("Upgrade: websocket is missing"));
    }
    if !has_token(req.header("connection"), "upgrade") {
        return Err(bad("Connection: upgrade is missing"));
    }
    match req.header("sec-websocket-version").map(str::trim) {
        Some("13") => {}
        _ => {
            return Err(Response::text("unsupported websocket version; use 13\n")
                .with_status(426)
                .with_header("Sec-WebSocket-Version", "13")
                .with_header("Upgrade", "websocket"))
        }
    }
    let key = req
        .header("sec-websocket-key")
        .map(str::trim)
        .ok_or_else(|| bad("Sec-WebSocket-Key is missing"))?;
    if decoded_len(key) != Some(16) {
        return Err(bad("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    Ok(accept_key(key))
}

/// The bytes of the `101 Switching Protocols` response for `accept`.
pub(crate) fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// Derives `Sec-WebSocket-Accept` from the client's key: base64(SHA-1(key + GUID)).
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64(&sha.digest().bytes())
}

/// Returns `true` if the comma-separated header `value` lists `token` (case-insensitive).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The standard base64 alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `bytes` in padded standard base64.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Returns how many bytes padded base64 `text` decodes to, or `None` if it is not base64.
fn decoded_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    let body = &bytes[..bytes.len() - padding];
    if padding > 2 || !body.iter().all(|b| ALPHABET.contains(b)) {
        return None;
    }
    Some(bytes.len() / 4 * 3 - padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        Request::new("GET", "/ws", false, headers, None)
    }

    const GOOD: [(&str, &str); 4] = [
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn the_rfc_example_key() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept(&request(&GOOD)).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn bad_handshakes_get_400_or_426() {
        let without = |name: &str| -> Vec<(&str, &str)> {
            GOOD.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        let status = |headers: &[(&str, &str)]| accept(&request(headers)).unwrap_err().status();
        assert_eq!(status(&without("Sec-WebSocket-Key")), 400);
        assert_eq!(status(&without("Connection")), 400);
        assert_eq!(status(&without("Sec-WebSocket-Version")), 426);
        let mut old = without("Sec-WebSocket-Version");
        old.push(("Sec-WebSocket-Version", "8"));
        let response = accept(&request(&old)).unwrap_err();
        assert_eq!(response.status(), 426);
        assert_eq!(response.header("sec-websocket-version"), Some("13"));
        let mut short = without("Sec-WebSocket-Key");
        short.push(("Sec-WebSocket-Key", "c2hvcnQ="));
        assert_eq!(status(&short), 400);
        let mut junk = without("Sec-WebSocket-Key");
        junk.push(("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!=="));
        assert_eq!(status(&junk), 400);
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(decoded_len("Zm9vYmFy"), Some(6));
        assert_eq!(decoded_len("Zg=="), Some(1));
        assert_eq!(decoded_len("Zg="), None);
    }
}
