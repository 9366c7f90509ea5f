//! The demo binary as users run it: started as a process, driven over HTTP.

mod common;

#[path = "../src/demo/report.rs"]
#[allow(dead_code)]
mod report;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command};

use steadyloop::Frontend;

frontend_tests!(
    get_and_post_report_agree_for_the_same_rows,
    json_uploads_give_the_csv_report_and_json_errors,
    demo_routes_and_errors,
);

/// The demo process; killed when dropped.
struct Demo {
    child: Child,
    base: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo binary with `extra` flags on a free port.
fn demo(extra: &[&str]) -> Demo {
    demo_with(extra, &[])
}

/// Starts the demo binary on `frontend` (given as a flag) on a free port.
fn demo_on(frontend: Frontend, extra: &[&str]) -> Demo {
    demo(&[&["--frontend", frontend.as_str()], extra].concat())
}

/// Starts the demo binary with `extra` flags and environment `envs` on a free port.
fn demo_with(extra: &[&str], envs: &[(&str, &str)]) -> Demo {
    let (child, addr) = common::spawn_demo(extra, envs, false);
    Demo {
        child,
        base: format!("http://{addr}"),
    }
}

fn call(request: ureq::Request) -> (u16, String) {
    match request.call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

fn get_and_post_report_agree_for_the_same_rows(frontend: Frontend) {
    let demo = demo_on(frontend, &[]);
    let client = common::client();
    let (status, from_get) = call(client.get(&format!("{}/report?rows=300", demo.base)));
    assert_eq!(status, 200);
    let csv: String = std::iter::once("id,value\n".to_string())
        .chain(report::synthetic_rows(300).iter().map(report::csv_line))
        .collect();
    let post = client.post(&format!("{}/report", demo.base));
    let from_post = post.send_string(&csv).unwrap().into_string().unwrap();
    assert_eq!(from_get, from_post);
    assert!(from_get.starts_with("{\"rows\":300,"), "{from_get}");
    let (_, inline) = call(client.get(&format!("{}/report/inline?rows=300", demo.base)));
    assert_eq!(inline, from_get);
}

fn json_uploads_give_the_csv_report_and_json_errors(frontend: Frontend) {
    let demo = demo_on(frontend, &[]);
    let client = common::client();
    let url = format!("{}/report", demo.base);
    // Large enough (about 1 MiB) to be parsed on the pool.
    let rows = report::synthetic_rows(30_000);
    let csv: String = rows.iter().map(report::csv_line).collect();
    let json = serde_json::to_string(&rows).unwrap();
    assert!(json.len() > 64 * 1024);
    let from_csv = client.post(&url).send_string(&csv).unwrap();
    assert_eq!(from_csv.header("x-request-id").map(str::len), Some(16));
    let from_csv = from_csv.into_string().unwrap();
    let from_json = client
        .post(&url)
        .set("Content-Type", "application/json")
        .send_string(&json)
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(from_csv, from_json);
    assert!(from_json.starts_with("{\"rows\":30000,"), "{from_json}");

    let bad = client
        .post(&url)
        .set("Content-Type", "application/json")
        .send_string(r#"[{"id": 1, "value": 2}, {"id": 2, "value": "x"}]"#);
    match bad {
        Err(ureq::Error::Status(400, r)) => {
            let message = r.into_string().unwrap();
            assert!(message.contains("[1].value"), "{message}");
            assert!(message.contains("column"), "{message}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // The gzip layer is on: a large report stream comes compressed when asked for.
    let gzipped = client
        .get(&format!("{}/report/stream?rows=2000", demo.base))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("vary"), Some("Accept-Encoding"));
}

fn demo_routes_and_errors(frontend: Frontend) {
    let demo = demo_on(frontend, &["--workers", "1"]);
    let client = common::client();
    assert_eq!(
        call(client.get(&format!("{}/healthz", demo.base))),
        (200, "ok".into())
    );
    let (status, index) = call(client.get(&format!("{}/", demo.base)));
    assert_eq!(status, 200);
    assert!(index.contains("/report/inline"));
    let (status, message) = call(client.get(&format!("{}/report?rows=lots", demo.base)));
    assert_eq!(status, 400);
    assert!(message.contains("rows"), "{message}");
    assert_eq!(
        call(client.get(&format!("{}/report?rows=99999999", demo.base))).0,
        400
    );
    let bad = client
        .post(&format!("{}/report", demo.base))
        .send_string("id,value\n1,2\n3,oops\n");
    match bad {
        Err(ureq::Error::Status(400, r)) => assert!(r.into_string().unwrap().contains("line 3")),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in steadyloop::SETTINGS.iter().map(|s| s.name) {
        assert!(text.contains(&format!("--{key}")), "--help misses {key}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .args(["--workers", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn frontend_comes_from_the_environment_or_fails_clearly_when_missing() {
    let envs = [("STEADYLOOP_FRONTEND", "tiny_http")];
    if cfg!(feature = "tiny_http") {
        let demo = demo_with(&[], &envs);
        // Answers given before a body is read are written by tiny_http itself, which adds its
        // `Server` header; the native front end sends none.
        let addr = demo.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
            .unwrap();
        let raw = common::read_one_response(&mut stream, false);
        assert_eq!(raw.status, 405);
        assert_eq!(raw.header("server"), Some("tiny-http (Rust)"));
    } else {
        let out = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
            .envs(envs)
            .args(["--addr", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains("--features tiny_http"), "{message}");
    }
}

#[test]
fn the_inline_report_is_reported_as_a_stall_while_it_runs() {
    let (mut child, addr) = common::spawn_demo(
        &["--stall-threshold", "50ms"],
        &[("STEADYLOOP_LOG", "warn")],
        true,
    );
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let demo = Demo {
        child,
        base: format!("http://{addr}"),
    };
    // About a second of CPU on the loop in a debug build: the anti-pattern, on purpose.
    let url = format!("{}/report/inline?rows=200000", demo.base);
    let inline =
        std::thread::spawn(move || common::client().get(&url).call().map_or(0, |r| r.status()));
    let mut lines = stderr.lines();
    let warning = loop {
        let line = lines.next().expect("stderr ended").unwrap();
        if line.contains("stall in progress") {
            break line;
        }
    };
    assert!(warning.contains("GET /report/inline"), "{warning}");
    assert!(
        !inline.is_finished(),
        "the warning must come while the loop is still stalled"
    );
    let ended = lines.next().expect("an end line").unwrap();
    assert!(ended.contains("stall ended: GET /report/inline"), "{ended}");
    assert_eq!(inline.join().unwrap(), 200);
}

#[test]
fn demo_layers_can_be_turned_off_for_the_anchor_comparison() {
    let client = common::client();
    let shipped = demo(&[]);
    let on = client
        .get(&format!("{}/healthz", shipped.base))
        .call()
        .unwrap();
    assert_eq!(on.header("x-request-id").map(str::len), Some(16));
    let bare = demo_with(&[], &[("STEADYLOOP_DEMO_LAYERS", "off")]);
    let off = client
        .get(&format!("{}/", bare.base))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(off.header("x-request-id"), None);
    assert_eq!(off.header("content-encoding"), None);
    assert!(off
        .into_string()
        .unwrap()
        .starts_with("steadyloop demo service"));
    let out = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .env("STEADYLOOP_DEMO_LAYERS", "maybe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("on or off"));
}
