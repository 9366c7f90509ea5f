//! Typed bodies and queries (the `json` feature): 415 and 400 answers that name the field, forms
//! and queries with the same error shape, and large bodies parsed on the pool, proven with the
//! stall counter.
#![cfg(feature = "json")]

mod common;

use serde::{Deserialize, Serialize};
use steadyloop::{Error, Json, Request, RouteOptions, Router, TestClient};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Reading {
    id: u64,
    value: f64,
}

#[derive(Debug, Deserialize)]
struct Batch {
    readings: Vec<Reading>,
}

/// An application with a JSON, a form and a query route.
fn app() -> Router {
    Router::new()
        .post("/batch", |req: Request| async move {
            let batch: Batch = req.json().await?;
            Ok::<_, Error>(Json(batch.readings.len()))
        })
        .post("/form", |req: Request| async move {
            let reading: Reading = req.form().await?;
            Ok::<_, Error>(Json(reading))
        })
        .get("/query", |req: Request| async move {
            let reading: Reading = req.query_as()?;
            Ok::<_, Error>(Json(reading))
        })
}

fn post_json(client: &TestClient, path: &str, body: &str) -> steadyloop::TestResponse {
    client.send(
        Request::builder()
            .method("POST")
            .uri(path)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(body),
    )
}

#[test]
fn json_bodies_parse_and_errors_name_the_field_and_position() {
    let client = TestClient::new(app());
    let ok = post_json(
        &client,
        "/batch",
        r#"{"readings": [{"id": 1, "value": 2.5}]}"#,
    );
    assert_eq!((ok.status(), ok.text()), (200, "1".to_string()));
    assert_eq!(ok.header("content-type"), Some("application/json"));

    let mistyped = post_json(
        &client,
        "/batch",
        "{\"readings\": [\n  {\"id\": 1, \"value\": 2.5},\n  {\"id\": 2, \"value\": \"warm\"}\n]}",
    );
    assert_eq!(mistyped.status(), 400);
    let message = mistyped.text();
    assert!(message.contains("readings[1].value"), "{message}");
    assert!(message.contains("line 3"), "{message}");

    let missing = post_json(&client, "/batch", r#"{"readings": [{"id": 1}]}"#);
    assert_eq!(missing.status(), 400);
    assert!(
        missing.text().contains("missing field `value`"),
        "{}",
        missing.text()
    );

    let malformed = post_json(&client, "/batch", r#"{"readings": [}"#);
    assert_eq!(malformed.status(), 400);
    assert!(malformed.text().contains("column"), "{}", malformed.text());

    let empty = post_json(&client, "/batch", "");
    assert_eq!(empty.status(), 400);

    let untyped = client.post("/batch", r#"{"readings": []}"#);
    assert_eq!(untyped.status(), 415);
    assert!(untyped.text().contains("application/json"));
    let wrong_type = client.send(
        Request::builder()
            .method("POST")
            .uri("/batch")
            .header("Content-Type", "text/plain")
            .body("{}"),
    );
    assert_eq!(wrong_type.status(), 415);
}

#[test]
fn forms_and_queries_share_the_error_shape() {
    let client = TestClient::new(app());
    let form = client.send(
        Request::builder()
            .method("POST")
            .uri("/form")
            .form(&[("id", "3"), ("value", "1.5")]),
    );
    assert_eq!(
        form.json::<Reading>().unwrap(),
        Reading { id: 3, value: 1.5 }
    );
    let bad_form = client.send(
        Request::builder()
            .method("POST")
            .uri("/form")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("id=3&value=warm"),
    );
    assert_eq!(bad_form.status(), 400);
    assert!(bad_form.text().contains("value"), "{}", bad_form.text());
    assert_eq!(client.post("/form", "id=3&value=1").status(), 415);

    let query = client.get("/query?id=4&value=0.25");
    assert_eq!(
        query.json::<Reading>().unwrap(),
        Reading { id: 4, value: 0.25 }
    );
    let bad_query = client.get("/query?id=four&value=1");
    assert_eq!(bad_query.status(), 400);
    assert!(bad_query.text().contains("id"), "{}", bad_query.text());
    let missing = client.get("/query?id=4");
    assert_eq!(missing.status(), 400);
    assert!(missing.text().contains("value"), "{}", missing.text());
}

/// Reads `steadyloop_loop_stalls_total` for `route` from a metrics exposition.
fn stalls(metrics: &str, route: &str) -> u64 {
    let prefix = format!("steadyloop_loop_stalls_total{{route=\"{route}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse::<f64>().expect("a number") as u64)
        .unwrap_or_else(|| panic!("no stall counter for {route} in:\n{metrics}"))
}

#[test]
fn an_8_mib_json_body_is_parsed_on_the_pool_without_a_stall() {
    let limit = RouteOptions::new().body_limit(16 << 20);
    let server = common::start_with(common::builder().max_body_memory(64 << 20), move || {
        Router::new()
            .metrics("/metrics")
            .post_with("/pooled", limit.clone(), |req: Request| async move {
                let rows: Vec<Reading> = req.json().await?;
                Ok::<_, Error>(format!("{}\n", rows.len()))
            })
            // The control: the same parse on the loop, which the stall counter must catch.
            .post_with("/inline", limit, |req: Request| async move {
                let rows: Vec<Reading> = serde_json::from_slice(req.body())
                    .map_err(|e| Error::bad_request(e.to_string()))?;
                Ok::<_, Error>(format!("{}\n", rows.len()))
            })
    });
    let mut body = String::from("[");
    let mut rows = 0;
    while body.len() < 8 << 20 {
        if rows > 0 {
            body.push(',');
        }
        body.push_str(&format!("{{\"id\":{rows},\"value\":{}.25}}", rows % 1000));
        rows += 1;
    }
    body.push(']');
    let client = common::client();
    let post = |path: &str| {
        client
            .post(&common::url(&server, path))
            .set("Content-Type", "application/json")
            .send_string(&body)
            .expect("a 200")
            .into_string()
            .unwrap()
    };
    assert_eq!(post("/pooled"), format!("{rows}\n"));
    let (_, metrics) = common::get(&server, "/metrics");
    assert_eq!(stalls(&metrics, "POST /pooled"), 0, "{metrics}");
    assert!(
        metrics.contains("steadyloop_pool_jobs_completed_total{class=\"default\"} 1"),
        "{metrics}"
    );

    // The control shows the counter would have seen it: in a debug build the same parse on
    // the loop takes far longer than the 100 ms stall threshold (a release build may not).
    if cfg!(debug_assertions) {
        assert_eq!(post("/inline"), format!("{rows}\n"));
        let (_, metrics) = common::get(&server, "/metrics");
        assert_eq!(stalls(&metrics, "POST /inline"), 1, "{metrics}");
    }
}
