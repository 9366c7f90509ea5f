//! Property tests of the framing layer: any valid request split into any reads parses to the
//! same thing as the whole, and arbitrary bytes never panic, loop or grow a buffer past its limit.

use proptest::collection::vec;
use proptest::prelude::*;

use super::chunked::ChunkedDecoder;
use super::parse::{BodyKind, Head, HeadReader, Reject};

/// Head limit used throughout.
const MAX_HEAD: usize = 4096;

/// Header-count limit used throughout.
const MAX_HEADERS: usize = 32;

/// Body limit used throughout.
const MAX_BODY: usize = 64 * 1024;

/// A request as the generator describes it, before serialising.
#[derive(Debug, Clone)]
struct Spec {
    /// The method token.
    method: String,
    /// The origin-form target.
    target: String,
    /// HTTP/1.0 instead of 1.1.
    http10: bool,
    /// Extra header fields (never framing fields).
    headers: Vec<(String, String)>,
    /// The body and whether it is sent chunked (as these chunk sizes) or with Content-Length.
    body: Vec<u8>,
    /// Chunk sizes for a chunked body; `None` for Content-Length.
    chunks: Option<Vec<usize>>,
    /// Blank lines before the request line.
    leading_blank_lines: usize,
}

impl Spec {
    /// The request as bytes on the wire.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"\r\n".repeat(self.leading_blank_lines);
        let version = if self.http10 { "1.0" } else { "1.1" };
        out.extend_from_slice(
            format!("{} {} HTTP/{version}\r\n", self.method, self.target).as_bytes(),
        );
        if !self.http10 {
            out.extend_from_slice(b"Host: example.com\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        match &self.chunks {
            Some(sizes) if !self.http10 => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &self.body[..];
                for &size in sizes {
                    let size = size.min(rest.len());
                    if size == 0 {
                        continue;
                    }
                    out.extend_from_slice(format!("{size:x};ext=1\r\n").as_bytes());
                    out.extend_from_slice(&rest[..size]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[size..];
                }
                if !rest.is_empty() {
                    out.extend_from_slice(format!("{:X}\r\n", rest.len()).as_bytes());
                    out.extend_from_slice(rest);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
            }
            _ => {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes(),
                );
                out.extend_from_slice(&self.body);
            }
        }
        out
    }

    /// Whether the body goes chunked.
    fn is_chunked(&self) -> bool {
        self.chunks.is_some() && !self.http10
    }
}

/// Valid requests: token methods, origin-form targets, harmless headers, either body framing.
fn spec() -> impl Strategy<Value = Spec> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        "[A-Z]{1,10}",
        "[a-z!#$%&'*+.^_`|~-]{1,8}",
    ];
    let target = (
        "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}){1,4}",
        proptest::option::of("[a-zA-Z0-9=&/?%+-]{0,20}"),
    )
        .prop_map(|(path, query)| match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        });
    let header = ("X-[A-Za-z0-9-]{1,12}", "[ -~]{0,40}")
        .prop_map(|(name, value)| (name, value.trim().to_string()));
    (
        method,
        target,
        any::<bool>(),
        vec(header, 0..8),
        vec(any::<u8>(), 0..600),
        proptest::option::of(vec(1usize..300, 1..6)),
        0usize..3,
    )
        .prop_map(
            |(method, target, http10, headers, body, chunks, leading_blank_lines)| Spec {
                method,
                target,
                http10,
                headers,
                body,
                chunks,
                leading_blank_lines,
            },
        )
}

/// Splits `len` bytes into reads at the given cut points (each taken modulo `len + 1`).
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

/// What reading one request from a stream of reads gave: the head, the body, and the bytes left
/// over after it.
type Outcome = Result<(Head, Vec<u8>, Vec<u8>), Reject>;

/// Reads one request the way a connection does, feeding `reads` one at a time.
fn read_request(reads: &[Vec<u8>]) -> Outcome {
    let mut reads = reads.iter();
    let mut buf = Vec::new();
    let mut reader = HeadReader::default();
    let head = loop {
        if let Some(head) = reader.advance(&mut buf, MAX_HEAD, MAX_HEADERS)? {
            break head;
        }
        assert!(buf.len() < MAX_HEAD, "head buffer past its limit");
        match reads.next() {
            Some(read) => buf.extend_from_slice(read),
            None => panic!("input ended inside the head"),
        }
    };
    let mut body = Vec::new();
    match head.body {
        BodyKind::Empty => {}
        BodyKind::Length(n) => {
            let n = usize::try_from(n).expect("small body");
            while buf.len() < n {
                buf.extend_from_slice(reads.next().expect("input ended inside the body"));
            }
            body = buf.drain(..n).collect();
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new(MAX_HEAD, MAX_HEADERS);
            loop {
                let progress = decoder.decode(&buf, &mut body, MAX_BODY)?;
                buf.drain(..progress.consumed);
                if progress.done {
                    break;
                }
                assert!(
                    buf.is_empty(),
                    "decoder left input unconsumed without finishing"
                );
                buf.extend_from_slice(reads.next().expect("input ended inside the body"));
            }
        }
    }
    for read in reads {
        buf.extend_from_slice(read);
    }
    Ok((head, body, buf))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any split of a valid request (with a pipelined one after it) reads the same as one read,
    /// and what is read is what was sent.
    #[test]
    fn any_split_parses_the_same(spec in spec(), cuts in vec(any::<usize>(), 0..12)) {
        let mut wire = spec.to_bytes();
        let next = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        wire.extend_from_slice(next);
        let whole = read_request(&[wire.clone()]).expect("a valid request parses");
        let split = read_request(&pieces(&wire, &cuts)).expect("a valid request parses");
        prop_assert_eq!(&split, &whole);
        let (head, body, rest) = whole;
        prop_assert_eq!(head.method(), spec.method.as_str());
        prop_assert_eq!(head.target(), spec.target.as_str());
        prop_assert_eq!(head.request.is_http10(), spec.http10);
        prop_assert_eq!(&body, &spec.body);
        prop_assert_eq!(&rest[..], &next[..]);
        prop_assert_eq!(head.body == BodyKind::Chunked, spec.is_chunked() );
        for (name, value) in &spec.headers {
            prop_assert!(head.request.headers().any(|(n, v)| n == name && v == value.as_bytes()));
        }
    }

    /// Arbitrary bytes, in arbitrary reads, never panic the head reader, and its buffer stays
    /// under the limit while it waits for more.
    #[test]
    fn random_bytes_never_panic_the_head_reader(
        bytes in vec(any::<u8>(), 0..6000),
        cuts in vec(any::<usize>(), 0..16),
    ) {
        let mut reader = HeadReader::default();
        let mut buf = Vec::new();
        for read in pieces(&bytes, &cuts) {
            buf.extend_from_slice(&read);
            match reader.advance(&mut buf, MAX_HEAD, MAX_HEADERS) {
                Ok(None) => prop_assert!(buf.len() < MAX_HEAD),
                Ok(Some(_)) | Err(_) => break,
            }
        }
    }

    /// Request-like bytes with random damage never panic either (random bytes alone rarely get
    /// past the request line).
    #[test]
    fn damaged_requests_never_panic_the_head_reader(
        spec in spec(),
        damage in vec((any::<usize>(), any::<u8>()), 1..6),
        cuts in vec(any::<usize>(), 0..8),
    ) {
        let mut wire = spec.to_bytes();
        for (at, byte) in damage {
            let at = at % wire.len();
            wire[at] = byte;
        }
        let mut reader = HeadReader::default();
        let mut buf = Vec::new();
        for read in pieces(&wire, &cuts) {
            buf.extend_from_slice(&read);
            if !matches!(reader.advance(&mut buf, MAX_HEAD, MAX_HEADERS), Ok(None)) {
                break;
            }
        }
    }

    /// Arbitrary bytes never panic the chunked decoder, which always consumes its whole input
    /// unless it finished or failed, and never outputs more than the limit.
    #[test]
    fn random_bytes_never_panic_the_chunked_decoder(
        bytes in vec(any::<u8>(), 0..4000),
        cuts in vec(any::<usize>(), 0..16),
        limit in 0usize..2000,
    ) {
        let mut decoder = ChunkedDecoder::new(256, 4);
        let mut out = Vec::new();
        for read in pieces(&bytes, &cuts) {
            match decoder.decode(&read, &mut out, limit) {
                Ok(progress) if progress.done => {
                    prop_assert!(progress.consumed <= read.len());
                    break;
                }
                Ok(progress) => prop_assert_eq!(progress.consumed, read.len()),
                Err(_) => break,
            }
            prop_assert!(out.len() <= limit);
        }
    }

    /// Chunk-shaped input with small hex sizes (which random bytes rarely produce) decodes the
    /// same whatever the split.
    #[test]
    fn chunked_bodies_decode_the_same_in_any_split(
        chunks in vec(vec(any::<u8>(), 1..200), 0..6),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for chunk in &chunks {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\nREST");
        let mut decoder = ChunkedDecoder::new(256, 4);
        let mut out = Vec::new();
        let mut consumed_total = 0;
        for read in pieces(&wire, &cuts) {
            let progress = decoder.decode(&read, &mut out, MAX_BODY).expect("valid chunked body");
            consumed_total += progress.consumed;
            if progress.done {
                break;
            }
        }
        prop_assert_eq!(out, chunks.concat());
        prop_assert_eq!(consumed_total, wire.len() - 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzzing entry point holds its invariants on random and request-shaped bytes alike
    /// (the same check `cargo fuzz` runs, on every test run).
    #[test]
    fn fuzz_entry_point_holds_on_random_and_damaged_input(
        step in any::<u8>(),
        specs in vec(spec(), 1..4),
        damage in vec((any::<usize>(), any::<u8>()), 0..4),
        noise in vec(any::<u8>(), 0..300),
    ) {
        let mut data = vec![step];
        for spec in &specs {
            data.extend_from_slice(&spec.to_bytes());
        }
        let undamaged = super::fuzz::read_requests(&data);
        let keep_alive = specs.iter().take_while(|s| !s.http10).count();
        prop_assert_eq!(undamaged, specs.len().min(keep_alive + 1));
        for (at, byte) in damage {
            let at = 1 + at % (data.len() - 1);
            data[at] = byte;
        }
        super::fuzz::read_requests(&data);
        let mut random = vec![step];
        random.extend_from_slice(&noise);
        super::fuzz::read_requests(&random);
    }
}
