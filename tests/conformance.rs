//! The peers' request corpus (`tests/data/http1-peer-corpus.json`, from llhttp's and Go's test
//! suites; see `tests/data/README.md`): every scored case, sent over a real socket to a real
//! server, must be answered as strict parsers answer it.
//!
//! Only the native front end is held to it. tiny_http parses heads itself before the bridge
//! checks them, and some of what it accepts or mis-frames cannot be undone by a wrapper (the
//! list is in DESIGN.md), so the corpus is not claimed for it.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use common::{connect, parse_responses, read_response, start_with, Calls, Raw};
use steadyloop::{Request, Router};

/// The corpus, as copied into the repository.
const CORPUS: &str = include_str!("data/http1-peer-corpus.json");

/// How long a connection may stay open after the server should have closed it.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// One scored case of the corpus.
struct Case {
    /// The case's id, e.g. `llhttp-088`.
    id: String,
    /// Where the case comes from (suite, file and line, or table and index).
    source: String,
    /// The case's name in its suite.
    name: String,
    /// `MUST-REJECT` or `MUST-ACCEPT`.
    class: String,
    /// The request bytes.
    bytes: Vec<u8>,
    /// For `MUST-REJECT`: how many valid requests come before the defect.
    valid_prefix: usize,
    /// For `MUST-ACCEPT`: how many requests the bytes hold.
    n_requests: usize,
    /// For `MUST-ACCEPT`: the connection must end after the last answer.
    close_after: bool,
    /// Statuses accepted besides 2xx, 404 and 405.
    accept_also: Vec<u16>,
    /// For `MUST-REJECT`: the defect is in the body, so an earlier answer of any status is fine.
    defect_in_body: bool,
}

/// Reads the scored cases (every case but `INFO`) and the canary request.
fn corpus() -> (Vec<Case>, Vec<u8>) {
    let json: serde_json::Value = serde_json::from_str(CORPUS).expect("the corpus is JSON");
    let text = |case: &serde_json::Value, key: &str| {
        case[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string"))
            .to_string()
    };
    let count = |case: &serde_json::Value, key: &str| case[key].as_u64().unwrap_or(0) as usize;
    let canary = json["canary"]
        .as_str()
        .expect("a canary")
        .as_bytes()
        .to_vec();
    let cases = json["cases"]
        .as_array()
        .expect("a list of cases")
        .iter()
        .filter(|case| case["class"] != "INFO")
        .map(|case| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text(case, "bytes_b64"))
                .expect("bytes_b64 is base64");
            Case {
                id: text(case, "id"),
                source: text(case, "source"),
                name: text(case, "name"),
                class: text(case, "class"),
                bytes,
                valid_prefix: count(case, "valid_prefix"),
                n_requests: count(case, "n_requests"),
                close_after: case["close_after"] == true,
                accept_also: case["accept_also"]
                    .as_array()
                    .expect("accept_also is a list")
                    .iter()
                    .map(|status| status.as_u64().expect("a status") as u16)
                    .collect(),
                defect_in_body: case["defect_in_body"] == true,
            }
        })
        .collect();
    (cases, canary)
}

/// The routes the corpus targets: `GET /healthz` (counting canaries) and `POST /report`.
fn routes(canaries: Calls) -> Router {
    Router::new()
        .get("/healthz", move |req: Request| {
            if req.raw_query().contains("canary=1") {
                canaries.hit();
            }
            async { "ok" }
        })
        .post("/report", |req: Request| async move {
            format!("{} bytes\n", req.body().len())
        })
}

/// Whether `status` answers a valid request of `case`.
fn is_acceptance(case: &Case, status: u16) -> bool {
    (200..300).contains(&status)
        || status == 404
        || status == 405
        || case.accept_also.contains(&status)
}

/// Reads until the server closes, or `None` if it keeps the connection open past
/// [`CLOSE_WAIT`].
fn read_to_close(stream: &mut TcpStream) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(CLOSE_WAIT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(out),
            Err(_) => return None,
        }
    }
}

/// The interim (1xx) answers left out: only final responses count.
fn finals(responses: Vec<Raw>) -> Vec<u16> {
    responses
        .into_iter()
        .map(|raw| raw.status)
        .filter(|status| *status >= 200)
        .collect()
}

/// Runs a `MUST-REJECT` case: the valid prefix answered, then at most one error answer, no
/// canary served, and the connection closed.
fn check_reject(
    addr: SocketAddr,
    case: &Case,
    canary: &[u8],
    canaries: &Calls,
) -> Result<(), String> {
    let before = canaries.count();
    let mut stream = connect(addr);
    // The server may close before reading everything; a failed write is part of that.
    let _ = stream.write_all(&[&case.bytes[..], canary].concat());
    let reply = read_to_close(&mut stream).ok_or("the connection stayed open")?;
    let statuses = finals(parse_responses(&reply));
    if canaries.count() != before {
        return Err(format!("the canary was served (answers {statuses:?})"));
    }
    let (prefix, rest) = statuses.split_at(statuses.len().min(case.valid_prefix));
    if prefix.len() < case.valid_prefix || !prefix.iter().all(|&s| is_acceptance(case, s)) {
        return Err(format!(
            "the {} valid request(s) before the defect were not all answered: {statuses:?}",
            case.valid_prefix
        ));
    }
    match rest {
        [] => Ok(()),
        [status] if *status >= 400 || case.defect_in_body => Ok(()),
        _ => Err(format!("answered after the defect: {statuses:?}")),
    }
}

/// Runs a `MUST-ACCEPT` case: each request answered as valid, then the connection closed if
/// the case says so, else still usable (the canary is served on it).
fn check_accept(addr: SocketAddr, case: &Case, canary: &[u8]) -> Result<(), String> {
    let mut stream = connect(addr);
    stream
        .write_all(&case.bytes)
        .map_err(|e| format!("write failed: {e}"))?;
    // The only HEAD cases in the corpus are single requests.
    let head_only = case.bytes.starts_with(b"HEAD ");
    let mut pending = Vec::new();
    let mut answered = Vec::new();
    while answered.len() < case.n_requests {
        let raw = read_response(&mut stream, &mut pending, head_only);
        if raw.status >= 200 {
            answered.push(raw.status);
        }
    }
    if !answered.iter().all(|&s| is_acceptance(case, s)) {
        return Err(format!("not accepted: {answered:?}"));
    }
    if case.close_after {
        return match read_to_close(&mut stream) {
            Some(rest) if rest.is_empty() => Ok(()),
            Some(rest) => Err(format!(
                "more after the last answer: {:?}",
                String::from_utf8_lossy(&rest)
            )),
            None => Err("the connection stayed open after the last answer".to_string()),
        };
    }
    stream
        .write_all(canary)
        .map_err(|e| format!("connection not kept: {e}"))?;
    let raw = read_response(&mut stream, &mut pending, false);
    if raw.status != 200 {
        return Err(format!("the request after the case got {}", raw.status));
    }
    Ok(())
}

#[test]
fn every_scored_case_of_the_peer_corpus_passes_on_the_native_front_end() {
    let (cases, canary) = corpus();
    assert!(
        cases.len() >= 180,
        "the corpus has {} scored cases",
        cases.len()
    );
    let canaries = Calls::default();
    let routes_canaries = canaries.clone();
    let server = start_with(common::builder(), move || routes(routes_canaries));
    let mut failures = Vec::new();
    let addr = server.local_addr();
    for case in &cases {
        let result = match case.class.as_str() {
            "MUST-REJECT" => check_reject(addr, case, &canary, &canaries),
            "MUST-ACCEPT" => {
                // A failed read inside the helpers panics; report it as this case's failure.
                std::panic::catch_unwind(|| check_accept(addr, case, &canary))
                    .unwrap_or_else(|_| Err("no complete answer".to_string()))
            }
            other => panic!("unknown class {other}"),
        };
        if let Err(why) = result {
            failures.push(format!(
                "{} {} ({}; {}): {why}",
                case.id, case.class, case.source, case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scored cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
