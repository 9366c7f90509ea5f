//! Route settings given with the route land on that route only; the deprecated last-route
//! setters still work. Application behaviour, so through the in-process test client.

use std::time::Duration;

use steadyloop::{time, ClassConfig, Request, RouteOptions, Router, Server, TestClient};

/// Answers after 300 ms.
async fn slow() -> &'static str {
    time::sleep(Duration::from_millis(300)).await;
    "slow"
}

#[test]
fn options_apply_to_their_own_route_only() {
    let app = Router::new()
        .post_with(
            "/upload",
            RouteOptions::new()
                .body_limit(8)
                .timeout(Duration::from_millis(20)),
            |req: Request| async move {
                if req.body() == b"wait" {
                    return slow().await.to_string();
                }
                format!("{}\n", req.body().len())
            },
        )
        .post("/other", |req: Request| async move {
            if req.body() == b"wait" {
                return slow().await.to_string();
            }
            format!("{}\n", req.body().len())
        });
    let client = Server::builder()
        .max_body_bytes(4)
        .test_client(app)
        .unwrap();
    assert_eq!(client.post("/upload", "12345678").status(), 200);
    assert_eq!(client.post("/upload", "123456789").status(), 413);
    assert_eq!(client.post("/upload", "wait").status(), 504);
    // The route added after keeps the server's limit and has no deadline.
    assert_eq!(client.post("/other", "12345").status(), 413);
    assert_eq!(client.post("/other", "wait").text(), "slow");
}

#[test]
fn routes_name_their_pool_class_and_undeclared_classes_fail_the_build() {
    let app = || {
        Router::new().blocking_get_with("/report", RouteOptions::new().class("reports"), |_req| {
            "report"
        })
    };
    let err = Server::builder().test_client(app()).unwrap_err();
    assert!(err.to_string().contains("`reports`"), "{err}");
    let client = Server::builder()
        .class("reports", ClassConfig::new(1, 1))
        .test_client(app())
        .unwrap();
    assert_eq!(client.get("/report").text(), "report");
}

#[test]
#[allow(deprecated)]
fn deprecated_last_route_setters_still_work() {
    let app = Router::new()
        .post("/a", |req: Request| async move {
            format!("{}\n", req.body().len())
        })
        .body_limit(2);
    let client = TestClient::new(app);
    assert_eq!(client.post("/a", "ab").status(), 200);
    assert_eq!(client.post("/a", "abc").status(), 413);
}
