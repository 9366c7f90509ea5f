//! The demo's CPU-heavy report: aggregates, percentiles and a checksum over `(id, value)` rows.
//!
//! Deterministic: the same rows always give the same JSON, whether they were generated
//! (`GET /report?rows=N`) or uploaded as CSV (`POST /report`). The checksum mixes every row many
//! times on purpose: it stands for the kind of synchronous work (hashing, compression, image
//! processing) that freezes an event loop when called inline.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use steadyloop::CancelToken;

/// Mixing rounds per row; sets the CPU cost (about 1 µs per row on a 2020s x86 core).
const ROUNDS: u32 = 384;

/// Rows are checked against the cancel token this often.
const CANCEL_CHECK_EVERY: usize = 1024;

/// One input row; a JSON upload is an array of these (`{"id": 7, "value": 12.5}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// The row's id.
    pub id: u64,
    /// Its value.
    pub value: f64,
}

/// Returns row `i` of the synthetic data set: a deterministic pseudo-random integer value.
pub fn synthetic_row(i: u64) -> Row {
    Row {
        id: i,
        value: (mix(i ^ 0x5eed) % 1_000_000) as f64,
    }
}

/// Generates `rows` synthetic rows.
pub fn synthetic_rows(rows: usize) -> Vec<Row> {
    (0..rows as u64).map(synthetic_row).collect()
}

/// Formats `row` as a CSV line, exactly as `parse_csv` reads it back.
#[allow(dead_code)] // Used by the integration tests (which include this file) to build uploads.
pub fn csv_line(row: &Row) -> String {
    format!("{},{}\n", row.id, row.value)
}

/// Parses `id,value` lines (an optional header line first, blank lines ignored).
///
/// # Errors
///
/// A message naming the first bad line (1-based) and what is wrong with it.
pub fn parse_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((id, value)) = line.split_once(',') else {
            return Err(format!("line {number}: expected `id,value`, got {line:?}"));
        };
        let (id, value) = (id.trim(), value.trim());
        let parsed = (id.parse::<u64>(), value.parse::<f64>());
        match parsed {
            (Ok(id), Ok(value)) if value.is_finite() => rows.push(Row { id, value }),
            _ if index == 0 && rows.is_empty() && id.parse::<f64>().is_err() => continue, // header
            (Err(_), _) => {
                return Err(format!(
                    "line {number}: id {id:?} is not a non-negative integer"
                ))
            }
            _ => {
                return Err(format!(
                    "line {number}: value {value:?} is not a finite number"
                ))
            }
        }
    }
    Ok(rows)
}

/// The report over a set of rows, served as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Number of rows.
    pub rows: usize,
    /// Sum of the values.
    pub sum: f64,
    /// Mean value (3 decimals).
    pub mean: f64,
    /// Population standard deviation (3 decimals).
    pub stddev: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The rows' digest, 16 hex digits.
    pub checksum: String,
}

/// Computes the report for `rows`; `None` if `token` was cancelled midway.
pub fn generate_report(rows: &[Row], token: Option<&CancelToken>) -> Option<Report> {
    let mut checksum: u64 = 0xcbf2_9ce4_8422_2325;
    let mut sum = 0.0;
    let mut sum_sq = 0.0;
    for (i, row) in rows.iter().enumerate() {
        if i % CANCEL_CHECK_EVERY == 0 && token.is_some_and(CancelToken::is_cancelled) {
            return None;
        }
        checksum = row_digest(checksum, row);
        sum += row.value;
        sum_sq += row.value * row.value;
    }
    let mut values: Vec<f64> = rows.iter().map(|r| r.value).collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mean = if n == 0 { 0.0 } else { sum / n as f64 };
    let variance = if n == 0 {
        0.0
    } else {
        (sum_sq / n as f64 - mean * mean).max(0.0)
    };
    Some(Report {
        rows: n,
        sum,
        mean: round3(mean),
        stddev: round3(variance.sqrt()),
        min: values.first().copied().unwrap_or(0.0),
        max: values.last().copied().unwrap_or(0.0),
        p50: percentile(&values, 50.0),
        p90: percentile(&values, 90.0),
        p99: percentile(&values, 99.0),
        checksum: format!("{checksum:016x}"),
    })
}

/// Computes the synthetic rows' running checksums and hands them out as CSV while computing.
///
/// Emits `id,value,checksum` lines (a header first) in batches of `batch_rows` rows; `emit`
/// returns `false` to stop (the client went away). Stops early when `token` is cancelled.
pub fn stream_rows(
    rows: usize,
    batch_rows: usize,
    token: &CancelToken,
    mut emit: impl FnMut(Vec<u8>) -> bool,
) {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    let mut batch = String::from("id,value,checksum\n");
    for i in 0..rows as u64 {
        let row = synthetic_row(i);
        state = row_digest(state, &row);
        let _ = writeln!(batch, "{},{},{state:016x}", row.id, row.value);
        let batch_full = (i as usize + 1) % batch_rows.max(1) == 0;
        if batch_full && (token.is_cancelled() || !emit(std::mem::take(&mut batch).into_bytes())) {
            return;
        }
    }
    if !batch.is_empty() {
        emit(batch.into_bytes());
    }
}

/// Folds one row into the checksum, burning `ROUNDS` rounds of mixing.
pub fn row_digest(mut state: u64, row: &Row) -> u64 {
    let mut x = row.id ^ row.value.to_bits().rotate_left(17);
    for _ in 0..ROUNDS {
        x = mix(x ^ state);
        state = state.rotate_left(5) ^ x;
    }
    state
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Rounds to three decimals, so the JSON is stable and short.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The splitmix64 finaliser (the axum anchor's request ids use it too).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_gives_the_same_report() {
        let rows = synthetic_rows(500);
        let csv: String = std::iter::once("id,value\n".to_string())
            .chain(rows.iter().map(csv_line))
            .collect();
        assert_eq!(parse_csv(&csv).unwrap(), rows);
        assert_eq!(
            generate_report(&rows, None),
            generate_report(&parse_csv(&csv).unwrap(), None)
        );
    }

    #[test]
    fn bad_csv_names_the_line() {
        assert_eq!(
            parse_csv("id,value\n1,2\nx,3\n").unwrap_err(),
            "line 3: id \"x\" is not a non-negative integer"
        );
        assert!(parse_csv("1,2\n2,abc\n")
            .unwrap_err()
            .starts_with("line 2:"));
        assert!(parse_csv("1;2\n").unwrap_err().starts_with("line 1:"));
        assert!(parse_csv("1,inf\n").unwrap_err().starts_with("line 1:"));
    }

    #[test]
    fn report_fields() {
        let rows = [Row { id: 1, value: 1.0 }, Row { id: 2, value: 3.0 }];
        let report = generate_report(&rows, None).unwrap();
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.starts_with(
                "{\"rows\":2,\"sum\":4.0,\"mean\":2.0,\"stddev\":1.0,\"min\":1.0,\"max\":3.0,"
            ),
            "{json}"
        );
        let empty = generate_report(&[], None).unwrap();
        assert_eq!(empty.rows, 0);
    }

    #[test]
    fn streamed_checksum_matches_the_report() {
        let mut text = String::new();
        stream_rows(1000, 64, &CancelToken::default(), |chunk| {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            true
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1001);
        let last = lines[1000].rsplit(',').next().unwrap();
        let report = generate_report(&synthetic_rows(1000), None).unwrap();
        assert_eq!(report.checksum, last);
    }

    #[test]
    fn cancelled_token_stops_the_report() {
        let token = CancelToken::default();
        assert!(generate_report(&synthetic_rows(10), Some(&token)).is_some());
        token.cancel();
        assert!(generate_report(&synthetic_rows(10), Some(&token)).is_none());
        let mut chunks = 0;
        stream_rows(10_000, 10, &token, |_| {
            chunks += 1;
            true
        });
        assert_eq!(chunks, 0);
    }
}
