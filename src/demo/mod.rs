//! The demo service's routes: a light health check and a CPU-heavy report, offloaded (the fix)
//! and inline on the loop (the bug, kept on purpose so its stall can be seen and measured).

pub mod logger;
pub mod report;

use steadyloop::{
    offload_cancellable, offload_stream, Compression, Error, Json, Request, RequestId, Result,
    RouteOptions, Router,
};

use report::{generate_report, parse_csv, stream_rows, synthetic_rows, Report, Row};

/// Rows in a report unless `?rows=` says otherwise (about 20 ms of CPU work).
pub const DEFAULT_ROWS: usize = 20_000;

/// Most rows a report may ask for.
pub const MAX_ROWS: usize = 1_000_000;

/// Rows per chunk of `GET /report/stream`.
const STREAM_BATCH_ROWS: usize = 512;

/// Chunks of `GET /report/stream` that may wait for a slow client before the job pauses.
const STREAM_CHUNKS: usize = 4;

/// Largest upload (CSV or JSON) for `POST /report`.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;

/// The index page.
const INDEX: &str = "steadyloop demo service

GET  /                    this index
GET  /healthz             liveness: 200 ok while the process serves requests
GET  /readyz              readiness: 200, or 503 with the reason while saturated or stopping
GET  /metrics             Prometheus metrics (requests, latency, loop lag, stalls, pool)
GET  /dashboard           the same numbers live in a browser (loop lag, stalls, pool, req/s)
GET  /report?rows=N       CPU-heavy JSON report over N synthetic rows (offloaded to the pool)
POST /report              the same report over the rows in the body (offloaded): `id,value` CSV,
                          or with `Content-Type: application/json` an array of
                          {\"id\": N, \"value\": X} objects (parsed on the pool when large)
GET  /report/stream?rows=N  the rows with their running checksum as CSV, streamed while they
                          are computed (offloaded; a slow reader slows the job, memory stays bounded)
GET  /report/inline?rows=N  the same report computed ON the event loop: the anti-pattern,
                          kept on purpose to show the stall it causes (do not do this)
";

/// Builds the demo application. With `layers` (the default) every response carries an
/// `X-Request-Id` and is gzipped for clients that accept it; without them the routes answer bare,
/// which is the work the axum anchor does (`STEADYLOOP_DEMO_LAYERS=off`, for scripts/hotpath.sh).
pub fn app(layers: bool) -> Router {
    let router = if layers {
        Router::new()
            .layer(RequestId::new())
            .layer(Compression::new())
    } else {
        Router::new()
    };
    router
        .get("/", |_req| async { INDEX })
        .liveness("/healthz")
        .readiness("/readyz")
        .metrics("/metrics")
        .dashboard("/dashboard")
        .get("/report", |req: Request| async move {
            let rows = rows_param(&req)?;
            let report = offload_cancellable(move |token| {
                generate_report(&synthetic_rows(rows), Some(token))
            })
            .await?;
            report.map(Json).ok_or(Error::Cancelled)
        })
        .post_with(
            "/report",
            RouteOptions::new().body_limit(MAX_UPLOAD_BYTES),
            |req: Request| async move { Ok::<_, Error>(Json(report_of_upload(req).await?)) },
        )
        .get("/report/stream", |req: Request| async move {
            let rows = rows_param(&req)?;
            let response = offload_stream(STREAM_CHUNKS, move |body, token| {
                stream_rows(rows, STREAM_BATCH_ROWS, token, |chunk| {
                    body.send_blocking(chunk).is_ok()
                });
            })
            .await?;
            Ok(response.with_header("Content-Type", "text/csv; charset=utf-8"))
        })
        .get("/report/inline", |req: Request| async move {
            let rows = rows_param(&req)?;
            // The anti-pattern: CPU work on the event loop stalls every other request.
            let report = generate_report(&synthetic_rows(rows), None).ok_or(Error::Cancelled)?;
            Ok::<_, Error>(Json(report))
        })
}

/// Computes the report of an uploaded body: JSON rows (`Content-Type: application/json`, parsed
/// on the pool when large) or, for any other type, `id,value` CSV lines.
async fn report_of_upload(req: Request) -> Result<Report> {
    let is_json = req.header("content-type").is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    if is_json {
        let rows: Vec<Row> = req.json().await?;
        return offload_cancellable(move |token| generate_report(&rows, Some(token)))
            .await?
            .ok_or(Error::Cancelled);
    }
    let body = req.into_body();
    offload_cancellable(move |token| {
        let text = std::str::from_utf8(&body)
            .map_err(|e| Error::bad_request(format!("body is not UTF-8: {e}")))?;
        let rows = parse_csv(text).map_err(Error::bad_request)?;
        generate_report(&rows, Some(token)).ok_or(Error::Cancelled)
    })
    .await?
}

/// Reads `?rows=N`, defaulting to [`DEFAULT_ROWS`] and capped at [`MAX_ROWS`].
fn rows_param(req: &Request) -> Result<usize> {
    let rows = req.query("rows")?.unwrap_or(DEFAULT_ROWS);
    if rows > MAX_ROWS {
        return Err(Error::bad_request(format!(
            "rows must be at most {MAX_ROWS}"
        )));
    }
    Ok(rows)
}
