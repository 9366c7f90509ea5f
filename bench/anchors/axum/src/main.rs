//! The comparison anchor for steadyloop's benchmarks: the demo service's routes on axum + tokio,
//! written the way the axum docs suggest (CPU work through `spawn_blocking`).
//!
//! Build: `cargo build --release --manifest-path bench/anchors/axum/Cargo.toml`
//! Run:   `bench/anchors/axum/target/release/axum-anchor --addr 127.0.0.1:8081`
//!
//! `--layers` adds the demo's two layers as tower-http provides them: an `X-Request-Id` on every
//! response (16 hex digits, as steadyloop's `RequestId` makes them) and gzip for clients that ask.
//!
//! Routes (the same as the demo's): `GET /healthz`, `GET /report?rows=N` (offloaded with
//! `spawn_blocking`), `GET /report/inline?rows=N` (computed on a runtime worker: the anti-pattern).
//! `axum-anchor offload-bench [--ops N] [--repeats R]` times `spawn_blocking(|| 1).await`, the
//! counterpart of steadyloop's offload round trip.

// The report code is shared with the demo; it names `steadyloop::CancelToken`, so this crate
// calls itself `steadyloop` and provides a token that is never cancelled.
extern crate self as steadyloop;

#[path = "../../../../src/demo/report.rs"]
#[allow(dead_code)]
mod report;

use std::io::Write;
use std::time::Instant;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

/// Stands in for `steadyloop::CancelToken`: axum gives a blocking job no way to learn that its
/// result is no longer wanted.
#[derive(Debug, Default)]
pub struct CancelToken;

impl CancelToken {
    /// Always `false`.
    pub fn is_cancelled(&self) -> bool {
        false
    }
}

/// Rows in a report unless `?rows=` says otherwise (the demo's default).
const DEFAULT_ROWS: usize = 20_000;

/// Most rows a report may ask for (the demo's cap).
const MAX_ROWS: usize = 1_000_000;

/// The `?rows=` query.
#[derive(Deserialize)]
struct Rows {
    /// Number of synthetic rows.
    rows: Option<usize>,
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("offload-bench") {
        return offload_bench(&args[1..]);
    }
    let addr = flag(&args, "--addr").unwrap_or_else(|| "127.0.0.1:8081".to_string());
    // `--current-thread`: tokio's single-thread runtime (the hot-path anchor for a one-thread
    // loop); `--workers N`: the multi-thread runtime with N workers (default: one per core).
    let runtime = if args.iter().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = flag(&args, "--workers").and_then(|n| n.parse().ok()) {
            builder.worker_threads(n);
        }
        builder.enable_all().build()?
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("axum-anchor listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let layers = args.iter().any(|a| a == "--layers");
        // TCP_NODELAY on each connection, as steadyloop sets it: without it Nagle holds the
        // second of two small responses written back to back (pipelined requests) until the
        // client's delayed ACK, 40 ms later. One response per request is not affected.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app(layers)).await
    })
}

/// The routes, with the demo's layers when `layers`.
fn app(layers: bool) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/report", get(report_offloaded))
        .route("/report/inline", get(report_inline));
    if !layers {
        return router;
    }
    // Listed innermost first: the id is set on the way in, before compression sees the request,
    // and copied to the response on the way out.
    router
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            HexId,
        ))
}

/// Request ids as steadyloop's `RequestId` makes them: a process-wide counter mixed by
/// splitmix64's finaliser (the demo report's `mix`), as 16 hex digits (tower-http clones the maker per connection, so the
/// counter lives outside it).
#[derive(Clone, Default)]
struct HexId;

/// The counter behind [`HexId`].
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl tower_http::request_id::MakeRequestId for HexId {
    fn make_request_id<B>(
        &mut self,
        _request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let n = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let z = report::mix(n);
        let value = axum::http::HeaderValue::from_str(&format!("{z:016x}")).ok()?;
        Some(tower_http::request_id::RequestId::new(value))
    }
}

/// `GET /report`: the report on tokio's blocking pool.
async fn report_offloaded(Query(q): Query<Rows>) -> Result<String, (StatusCode, String)> {
    let rows = rows(q)?;
    tokio::task::spawn_blocking(move || {
        report_json(report::generate_report(&report::synthetic_rows(rows), None))
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /report/inline`: the report on the runtime worker that runs the handler.
async fn report_inline(Query(q): Query<Rows>) -> Result<String, (StatusCode, String)> {
    let rows = rows(q)?;
    Ok(report_json(report::generate_report(
        &report::synthetic_rows(rows),
        None,
    )))
}

/// Serialises a report with serde_json, as the demo's `Json` response does.
fn report_json(report: Option<report::Report>) -> String {
    report
        .and_then(|report| serde_json::to_string(&report).ok())
        .unwrap_or_default()
}

/// Applies the default and the cap to `?rows=`.
fn rows(q: Rows) -> Result<usize, (StatusCode, String)> {
    match q.rows.unwrap_or(DEFAULT_ROWS) {
        n if n > MAX_ROWS => Err((StatusCode::BAD_REQUEST, "too many rows".into())),
        n => Ok(n),
    }
}

/// Prints the median ns per `spawn_blocking(|| 1).await`, awaited one after another from a
/// runtime task, over `--repeats` batches of `--ops`.
fn offload_bench(args: &[String]) -> std::io::Result<()> {
    let ops: u32 = flag(args, "--ops").map_or(20_000, |v| v.parse().expect("--ops N"));
    let repeats: usize = flag(args, "--repeats").map_or(5, |v| v.parse().expect("--repeats N"));
    // `--current-thread`: tokio's single-thread runtime (the hot-path anchor for a one-thread
    // loop); `--workers N`: the multi-thread runtime with N workers (default: one per core).
    let runtime = if args.iter().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = flag(&args, "--workers").and_then(|n| n.parse().ok()) {
            builder.worker_threads(n);
        }
        builder.enable_all().build()?
    };
    let mut per_op: Vec<f64> = runtime.block_on(async move {
        tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..repeats {
                let start = Instant::now();
                for _ in 0..ops {
                    let one = tokio::task::spawn_blocking(|| 1u32).await.expect("job");
                    std::hint::black_box(one);
                }
                out.push(start.elapsed().as_nanos() as f64 / f64::from(ops));
            }
            out
        })
        .await
        .expect("bench task")
    });
    per_op.sort_by(f64::total_cmp);
    println!(
        "offload round trip: median {:.0} ns/op (min {:.0}, max {:.0}) over {repeats} x {ops}",
        per_op[per_op.len() / 2],
        per_op[0],
        per_op[per_op.len() - 1]
    );
    Ok(())
}

/// The value after `name` in `args`.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
