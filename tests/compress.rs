//! The gzip layer (the `compress` feature): what it compresses and what it leaves alone, the
//! `Vary` header, streamed bodies chunk by chunk, and large bodies compressed on the pool.
#![cfg(feature = "compress")]

mod common;

use std::io::Read;

use steadyloop::{Compression, Request, Response, Router, TestClient, TestResponse};

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

/// Text of `n` bytes that compresses well but not trivially.
fn text(n: usize) -> String {
    let mut out = String::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.push_str(&format!("reading {i} value {}\n", i * 7 % 113));
        i += 1;
    }
    out.truncate(n);
    out
}

fn app() -> Router {
    Router::new()
        .layer(Compression::new())
        .metrics("/metrics")
        .get("/text/:n", |req: Request| async move {
            let n: usize = req.param("n").unwrap_or("0").parse().unwrap_or(0);
            Response::text(text(n))
        })
        .get("/png", |_req| async {
            Response::bytes(vec![7u8; 10_000]).with_header("Content-Type", "image/png")
        })
        .get("/encoded", |_req| async {
            Response::text(text(10_000)).with_header("Content-Encoding", "br")
        })
        .get("/stream", |_req| async {
            let (tx, response) = Response::channel(2);
            steadyloop::spawn("producer", async move {
                for i in 0..50 {
                    // Chunks on both sides of the pool threshold.
                    let size = if i % 10 == 0 { 20_000 } else { 300 };
                    if tx.send(text(size)).await.is_err() {
                        return;
                    }
                }
            });
            response.with_header("Content-Type", "text/csv")
        })
}

fn get(client: &TestClient, path: &str, accept: Option<&str>) -> TestResponse {
    let mut req = Request::builder().uri(path);
    if let Some(accept) = accept {
        req = req.header("Accept-Encoding", accept);
    }
    client.send(req)
}

fn completed_jobs(client: &TestClient) -> u64 {
    let metrics = client.get("/metrics").text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("steadyloop_pool_jobs_completed_total{class=\"default\"}"))
        .unwrap_or_else(|| panic!("no completed-jobs counter in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
}

#[test]
fn large_bodies_are_gzipped_on_the_pool_and_decompress_to_the_input() {
    let client = TestClient::new(app());
    let before = completed_jobs(&client);
    let response = get(&client, "/text/100000", Some("gzip, deflate, br"));
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    assert!(response.body().len() < 50_000, "{}", response.body().len());
    assert_eq!(gunzip(response.body()), text(100_000).into_bytes());
    assert_eq!(
        completed_jobs(&client),
        before + 1,
        "compressed on the pool"
    );
    // A body under the pool threshold is compressed on the loop: no job.
    let small = get(&client, "/text/2000", Some("gzip"));
    assert_eq!(small.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(small.body()), text(2000).into_bytes());
    assert_eq!(completed_jobs(&client), before + 1);
}

#[test]
fn accept_encoding_decides_and_vary_is_always_set() {
    let client = TestClient::new(app());
    for accept in [
        None,
        Some("gzip;q=0"),
        Some("identity"),
        Some("br"),
        Some("*;q=0"),
    ] {
        let response = get(&client, "/text/5000", accept);
        assert_eq!(response.header("content-encoding"), None, "{accept:?}");
        assert_eq!(
            response.header("vary"),
            Some("Accept-Encoding"),
            "{accept:?}"
        );
        assert_eq!(response.text(), text(5000), "{accept:?}");
    }
    let starred = get(&client, "/text/5000", Some("*"));
    assert_eq!(starred.header("content-encoding"), Some("gzip"));
}

#[test]
fn small_encoded_and_incompressible_bodies_are_left_alone() {
    let client = TestClient::new(app());
    let small = get(&client, "/text/100", Some("gzip"));
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.text(), text(100));
    let png = get(&client, "/png", Some("gzip"));
    assert_eq!(png.header("content-encoding"), None);
    assert_eq!(png.header("vary"), None);
    assert_eq!(png.body().len(), 10_000);
    let encoded = get(&client, "/encoded", Some("gzip"));
    assert_eq!(encoded.header("content-encoding"), Some("br"));
    assert_eq!(encoded.text(), text(10_000));
    let head = client.send(
        Request::builder()
            .method("HEAD")
            .uri("/text/5000")
            .header("Accept-Encoding", "gzip"),
    );
    assert_eq!(head.header("content-encoding"), None);
}

fn expected_stream() -> Vec<u8> {
    (0..50)
        .map(|i| text(if i % 10 == 0 { 20_000 } else { 300 }))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn streamed_bodies_are_compressed_chunk_by_chunk() {
    let client = TestClient::new(app());
    let response = get(&client, "/stream", Some("gzip"));
    assert!(response.is_streamed());
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(response.body()), expected_stream());
}

#[test]
fn a_streamed_gzip_body_survives_the_wire() {
    let server = common::start(app);
    let responses = common::raw_responses(
        server.local_addr(),
        "GET /stream HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    let response = &responses[0];
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&response.body), expected_stream());
}
