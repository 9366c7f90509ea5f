//! Layers over real sockets: they see every response the router produces (404, 405,
//! `OPTIONS *`, 504, 503, probes, blocking routes), but not the front end's own rejections;
//! errors carry headers, and a header can be sent twice.

mod common;

#[allow(dead_code)]
#[path = "../examples/bearer_auth.rs"]
mod bearer_auth;

use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use common::{builder_on, raw_responses, start_with, Raw};
use steadyloop::{
    offload, time, ClassConfig, Error, Frontend, Request, RequestId, Response, RouteOptions,
    Router, TestClient,
};

frontend_tests!(
    every_routed_response_passes_through_layers,
    front_end_rejections_skip_layers,
    errors_carry_headers_and_headers_can_repeat,
);

/// Sends `request` on a fresh connection and returns the one response.
fn one(addr: std::net::SocketAddr, request: &str) -> Raw {
    let mut responses = raw_responses(addr, request);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.remove(0)
}

/// `METHOD path` with `Connection: close`.
fn request(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

fn every_routed_response_passes_through_layers(frontend: Frontend) {
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let hold = gate.clone();
    let started_tx = Mutex::new(started_tx);
    let builder = builder_on(frontend).class("single", ClassConfig::new(1, 0));
    let server = start_with(builder, move || {
        let started = Arc::new(started_tx);
        Router::new()
            .layer(RequestId::new())
            .liveness("/healthz")
            .readiness("/readyz")
            .metrics("/metrics")
            .get("/ok", |_req| async { "ok" })
            .blocking_get("/blocking", |_req| "from the pool")
            .get_with(
                "/slow",
                RouteOptions::new().timeout(Duration::from_millis(50)),
                |_req| async {
                    time::sleep(Duration::from_secs(10)).await;
                    "late"
                },
            )
            .get_with("/held", RouteOptions::new().class("single"), move |_req| {
                let started = started.lock().unwrap().clone();
                let gate = hold.clone();
                async move {
                    offload(move || {
                        started.send(()).unwrap();
                        gate.wait();
                        "held"
                    })
                    .await
                }
            })
            .get_with("/shed", RouteOptions::new().class("single"), |_req| async {
                offload(|| "ran").await
            })
    });
    let addr = server.local_addr();
    let held = std::thread::spawn(move || one(addr, &request("GET", "/held")));
    started_rx.recv().unwrap();
    let cases = [
        ("GET", "/ok", 200),
        ("GET", "/blocking", 200),
        ("GET", "/nope", 404),
        ("POST", "/ok", 405),
        ("OPTIONS", "*", 204),
        ("GET", "/slow", 504),
        ("GET", "/shed", 503),
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
    ];
    for (method, path, status) in cases {
        let response = one(addr, &request(method, path));
        assert_eq!(response.status, status, "{method} {path}");
        let id = response.header("x-request-id");
        assert_eq!(id.map(str::len), Some(16), "{method} {path}: {response:?}");
    }
    gate.wait();
    assert_eq!(held.join().unwrap().text(), "held");
    // A sane incoming id is kept, one that is not is replaced.
    let kept = one(
        addr,
        "GET /ok HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-42\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(kept.header("x-request-id"), Some("trace-42"));
    let replaced = one(
        addr,
        "GET /ok HTTP/1.1\r\nHost: x\r\nX-Request-Id: a b\r\nConnection: close\r\n\r\n",
    );
    assert_ne!(replaced.header("x-request-id"), Some("a b"));
}

fn front_end_rejections_skip_layers(frontend: Frontend) {
    let server = start_with(builder_on(frontend).max_body_bytes(4), || {
        Router::new()
            .layer(RequestId::new())
            .post("/in", |_req| async { "in" })
    });
    let too_large = one(
        server.local_addr(),
        "POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    );
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.header("x-request-id"), None);
    let ok = one(
        server.local_addr(),
        "POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(ok.status, 200);
    assert!(ok.header("x-request-id").is_some());
}

fn errors_carry_headers_and_headers_can_repeat(frontend: Frontend) {
    let server = start_with(builder_on(frontend), || {
        Router::new()
            .get("/login", |_req| async {
                Response::text("welcome\n")
                    .append_header("Set-Cookie", "session=1; HttpOnly")
                    .append_header("Set-Cookie", "theme=dark")
            })
            .get("/private", |req: Request| async move {
                if req.header("authorization").is_none() {
                    Err(Error::unauthorized("Bearer realm=\"api\""))?;
                }
                Ok::<_, Error>("secret\n")
            })
            .get("/broken", |_req| async {
                Err::<&str, _>(Error::status(500, "database password rejected"))
            })
    });
    let login = one(server.local_addr(), &request("GET", "/login"));
    let cookies: Vec<&str> = login
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["session=1; HttpOnly", "theme=dark"]);
    let private = one(server.local_addr(), &request("GET", "/private"));
    assert_eq!(private.status, 401);
    assert_eq!(
        private.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
    let broken = one(server.local_addr(), &request("GET", "/broken"));
    assert_eq!(broken.status, 500);
    assert_eq!(broken.text(), "internal server error\n");
}

#[test]
fn bearer_auth_example_guards_only_its_prefix() {
    let client = TestClient::new(bearer_auth::app("s3cret"));
    let put = |auth: Option<&str>| {
        let mut req = Request::builder()
            .method("PUT")
            .uri("/api/config")
            .body("interval=30");
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        client.send(req)
    };
    let denied = put(None);
    assert_eq!(denied.status(), 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"config\"")
    );
    // Outer layers still wrap the inner layer's early answer.
    assert!(denied.header("x-request-id").is_some());
    assert_eq!(denied.header("access-control-allow-origin"), None);
    assert_eq!(put(Some("Bearer wrong")).status(), 401);
    let allowed = put(Some("Bearer s3cret"));
    assert_eq!(allowed.text(), "saved 11 bytes\n");
    assert_eq!(client.get("/api/status").status(), 200);
    let cross_origin = client.send(
        Request::builder()
            .uri("/api/status")
            .header("Origin", "https://dashboard.example"),
    );
    assert_eq!(
        cross_origin.header("access-control-allow-origin"),
        Some("*")
    );
}

#[cfg(feature = "json")]
#[test]
fn readme_example_runs_through_the_test_client() {
    // The intent from the issue, as written there (with a bearer check on one route).
    #[derive(serde::Deserialize)]
    struct DeviceConfig {
        #[allow(dead_code)]
        interval_s: u32,
    }
    let app = Router::new()
        .layer(RequestId::new())
        .layer(steadyloop::Cors::permissive())
        .get("/api/readings", |_req| async {
            steadyloop::Json(vec![21.5, 22.0])
        })
        .post("/api/config", |req: Request| async move {
            let _cfg: DeviceConfig = req.json().await?;
            Ok::<_, Error>(Response::new(204))
        })
        .layer_on("/api/config", bearer_auth::bearer_auth("t"));
    let client = TestClient::new(app);
    assert_eq!(client.get("/api/readings").text(), "[21.5,22.0]");
    let post = |body: &str, auth: &str| {
        client.send(
            Request::builder()
                .method("POST")
                .uri("/api/config")
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .body(body),
        )
    };
    assert_eq!(post(r#"{"interval_s": 5}"#, "Bearer t").status(), 204);
    assert_eq!(post(r#"{"interval_s": 5}"#, "Bearer x").status(), 401);
    let bad = post(r#"{"interval_s": -5}"#, "Bearer t");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().contains("interval_s"), "{}", bad.text());
}
