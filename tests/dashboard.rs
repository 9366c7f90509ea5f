//! The live dashboard in a real browser: headless Chromium loads the demo's `/dashboard`, a
//! request to `/report/inline` stalls the loop, and the page must name that route as the last
//! offender within seconds. The page is read through Chromium's DevTools protocol.
//!
//! Needs Debian's `chromium` package (CI installs it). Without a browser the test says so and
//! passes, except under CI (`CI` set), where a missing browser fails it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, spawn_demo};

/// Kills a child process when dropped, so a failing test leaves no browser or demo behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Returns the browser to use, if one is installed.
fn browser() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// A DevTools session with one page.
struct Page {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Evaluates `expression` in the page and returns its value as text.
    fn eval(&mut self, expression: &str) -> String {
        self.next_id += 1;
        let id = self.next_id;
        let call = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        self.ws
            .send(tungstenite::Message::text(call.to_string()))
            .expect("send to DevTools");
        loop {
            let message = self.ws.read().expect("read from DevTools");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let reply: serde_json::Value = serde_json::from_str(text).expect("DevTools JSON");
            if reply["id"] == id {
                let value = &reply["result"]["result"]["value"];
                return value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
            }
        }
    }

    /// Evaluates `expression` until `done` accepts its value, or panics after `limit`.
    fn wait_for(
        &mut self,
        expression: &str,
        limit: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.eval(expression);
            if done(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{expression} is still {value:?}");
            // Polling the browser: there is no event to wait on from here.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Starts headless Chromium on `url` and connects to its page over DevTools.
fn open_in_browser(browser: &str, url: &str, profile: &std::path::Path) -> (Reaped, Page) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the browser starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let child = Reaped(child);
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
    let mut lines = BufReader::new(stderr).lines();
    let port: u16 = loop {
        let line = lines.next().expect("browser output").expect("a line");
        if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().expect("a port");
        }
    };
    // Keep draining its output so the browser never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let list_url = format!("http://127.0.0.1:{port}/json/list");
    let deadline = Instant::now() + Duration::from_secs(20);
    let target = loop {
        let text = client()
            .get(&list_url)
            .call()
            .expect("DevTools target list")
            .into_string()
            .expect("a body");
        let list: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let page = list.as_array().and_then(|targets| {
            targets
                .iter()
                .find(|t| {
                    t["type"] == "page"
                        && t["url"].as_str().is_some_and(|u| u.contains("/dashboard"))
                })
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
        });
        if let Some(page) = page {
            break page;
        }
        assert!(Instant::now() < deadline, "no dashboard page in {list}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (ws, _) = tungstenite::connect(target.as_str()).expect("DevTools connection");
    (child, Page { ws, next_id: 0 })
}

#[test]
fn the_dashboard_shows_a_stall_by_route_in_a_real_browser() {
    let Some(browser) = browser() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium for the dashboard test"
        );
        eprintln!("skipped: no chromium installed (apt-get install chromium)");
        return;
    };
    let (demo, addr) = spawn_demo(
        &["--stall-threshold", "50ms"],
        &[("STEADYLOOP_LOG", "error")],
        false,
    );
    let _demo = Reaped(demo);
    let profile = std::env::temp_dir().join(format!("steadyloop-chromium-{}", std::process::id()));
    let (_browser, mut page) =
        open_in_browser(browser, &format!("http://{addr}/dashboard"), &profile);

    // The page is live once its first sample arrived, and lists the pool classes.
    page.wait_for(
        "document.getElementById('state').textContent",
        Duration::from_secs(20),
        |s| s == "live",
    );
    page.wait_for(
        "document.getElementById('pools').textContent",
        Duration::from_secs(5),
        |s| s.contains("default") && s.contains("files"),
    );
    assert_eq!(
        page.eval("document.getElementById('last-stall').textContent"),
        "none"
    );

    // About a second of CPU on the loop in a debug build: a stall, on purpose.
    let url = format!("http://{addr}/report/inline?rows=200000");
    let inline = std::thread::spawn(move || client().get(&url).call().map_or(0, |r| r.status()));
    let offender = page.wait_for(
        "document.getElementById('last-stall').textContent",
        Duration::from_secs(10),
        |s| s != "none",
    );
    assert_eq!(offender, "GET /report/inline");
    let table = page.eval("document.getElementById('stalls').textContent");
    assert!(table.contains("GET /report/inline"), "{table}");
    assert_eq!(inline.join().unwrap(), 200);
    // Requests per second by route show up too.
    page.wait_for(
        "document.getElementById('routes').textContent",
        Duration::from_secs(5),
        |s| s.contains("GET /report/inline"),
    );
    let _ = std::fs::remove_dir_all(&profile);
}
