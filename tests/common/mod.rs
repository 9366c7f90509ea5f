//! Helpers shared by the integration tests: a real server on 127.0.0.1:0, a `ureq` client with
//! a global timeout, and raw-socket helpers that send crafted bytes and parse what comes back.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use steadyloop::{offload, Frontend, Router, ServerBuilder, ServerHandle};

/// How long any client operation may take before the test fails instead of hanging.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A builder for a test server on an ephemeral port.
pub fn builder() -> ServerBuilder {
    steadyloop::Server::builder().addr("127.0.0.1:0")
}

/// Every front end compiled in: native, and tiny_http with the `tiny_http` feature.
pub fn frontends() -> Vec<Frontend> {
    [Frontend::Native, Frontend::TinyHttp]
        .into_iter()
        .filter(|frontend| frontend.is_available())
        .collect()
}

/// A builder for a test server on an ephemeral port, served by `frontend`.
pub fn builder_on(frontend: Frontend) -> ServerBuilder {
    builder().frontend(frontend)
}

/// Starts a server on `frontend` with default settings; it stops when the handle drops.
pub fn start_on(
    frontend: Frontend,
    make_router: impl FnOnce() -> Router + Send + 'static,
) -> ServerHandle {
    start_with(builder_on(frontend), make_router)
}

/// Runs each listed test body, a `fn NAME(frontend: Frontend)`, once per front end: it defines
/// the tests `native::NAME` and, with the `tiny_http` feature, `tiny::NAME`. Use it once per
/// test file, listing every such body.
#[macro_export]
macro_rules! frontend_tests {
    ($($name:ident),* $(,)?) => {
        /// The tests on the native front end.
        mod native {
            $(
                #[test]
                fn $name() {
                    super::$name(steadyloop::Frontend::Native)
                }
            )*
        }

        /// The same tests on the tiny_http front end.
        #[cfg(feature = "tiny_http")]
        mod tiny {
            $(
                #[test]
                fn $name() {
                    super::$name(steadyloop::Frontend::TinyHttp)
                }
            )*
        }
    };
}

/// Shuts `server` down gracefully and asserts it took under 5 s, far below the drain deadline:
/// nothing left open (an event stream, a WebSocket session, a task) may hold the drain.
pub fn shut_down_promptly(server: ServerHandle) {
    let start = Instant::now();
    server.shutdown().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        start.elapsed()
    );
}

/// Starts a server with default settings; it stops when the handle drops.
pub fn start(make_router: impl FnOnce() -> Router + Send + 'static) -> ServerHandle {
    start_with(builder(), make_router)
}

/// Starts a server from `builder`; it stops when the handle drops.
pub fn start_with(
    builder: ServerBuilder,
    make_router: impl FnOnce() -> Router + Send + 'static,
) -> ServerHandle {
    builder.spawn(make_router).expect("server starts")
}

/// A `ureq` agent that fails instead of hanging.
pub fn client() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(CLIENT_TIMEOUT).build()
}

/// `http://addr/path`.
pub fn url(server: &ServerHandle, path: &str) -> String {
    format!("http://{}{path}", server.local_addr())
}

/// GETs `path` and returns (status, body), whatever the status.
pub fn get(server: &ServerHandle, path: &str) -> (u16, String) {
    match client().get(&url(server, path)).call() {
        Ok(response) => (response.status(), response.into_string().expect("body")),
        Err(ureq::Error::Status(code, response)) => (code, response.into_string().expect("body")),
        Err(err) => panic!("GET {path} failed: {err}"),
    }
}

/// GETs `path` on another thread and returns the body through the handle (panics unless 200),
/// for requests a test holds on a barrier while it checks something else.
pub fn get_in_background(server: &ServerHandle, path: &str) -> std::thread::JoinHandle<String> {
    let url = url(server, path);
    std::thread::spawn(move || {
        client()
            .get(&url)
            .call()
            .expect("a 200 answer")
            .into_string()
            .expect("a text body")
    })
}

/// Starts the demo binary on a free port with `args` and environment `envs`, and reads its
/// "listening" line; returns the process and its address. Its stderr is piped when `stderr` is
/// set (for tests that read the log), else discarded. The caller kills the process.
pub fn spawn_demo(
    args: &[&str],
    envs: &[(&str, &str)],
    stderr: bool,
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(if stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("demo binary starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the demo's first line");
    let addr = line
        .trim()
        .strip_prefix("steadyloop demo listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .expect("a socket address");
    (child, addr)
}

/// A raw connection with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// Sends `bytes` on a new connection and reads until the server closes it.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(bytes).expect("write");
    read_until_close(&mut stream)
}

/// Reads until EOF (or a reset, which also ends the conversation).
pub fn read_until_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The status code.
    pub status: u16,
    /// Header fields, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Raw {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses every response in `bytes` (a conversation read until close). `head_only` lists, per
/// response, whether it answers a HEAD request (no body whatever the headers say).
pub fn parse_responses(mut bytes: &[u8]) -> Vec<Raw> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (raw, used) = parse_one(bytes, false).unwrap_or_else(|| {
            panic!(
                "unparseable response bytes: {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
        out.push(raw);
        bytes = &bytes[used..];
    }
    out
}

/// Parses one response at the start of `bytes`; returns it and the bytes it used.
pub fn parse_one(bytes: &[u8], head_only: bool) -> Option<(Raw, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header colon");
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some((raw, end));
    }
    if raw.header("transfer-encoding") == Some("chunked") {
        let mut pos = end;
        loop {
            let line_end = pos + bytes[pos..].windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&bytes[pos..line_end]).ok()?, 16).ok()?;
            pos = line_end + 2;
            if size == 0 {
                return Some((raw, pos + 2));
            }
            raw.body.extend_from_slice(bytes.get(pos..pos + size)?);
            pos += size + 2;
        }
    }
    match raw.header("content-length") {
        Some(len) => {
            let len: usize = len.parse().ok()?;
            raw.body = bytes.get(end..end + len)?.to_vec();
            Some((raw, end + len))
        }
        None => {
            raw.body = bytes[end..].to_vec();
            Some((raw, bytes.len()))
        }
    }
}

/// Reads exactly one response (with a length or chunked, or an interim one) from `stream`,
/// for a connection that stays open; bytes after it are discarded.
pub fn read_one_response(stream: &mut TcpStream, head_only: bool) -> Raw {
    read_response(stream, &mut Vec::new(), head_only)
}

/// Sends `request` on a new connection and returns the responses it got before the close.
pub fn raw_responses(addr: SocketAddr, request: &str) -> Vec<Raw> {
    parse_responses(&exchange(addr, request.as_bytes()))
}

/// Counts calls to a route; `Send` and cheap to clone, so it can move into `make_router`.
#[derive(Debug, Clone, Default)]
pub struct Calls(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Calls {
    /// Records one call.
    pub fn hit(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The calls so far.
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Adds `GET` and `POST` routes on `path` answering `path` that count their calls in `calls`.
pub fn counted(router: Router, path: &str, calls: &Calls) -> Router {
    let (get, post) = (calls.clone(), calls.clone());
    let (get_path, post_path) = (path.to_string(), path.to_string());
    router
        .get(path, move |_req| {
            get.hit();
            let body = get_path.clone();
            async move { body }
        })
        .post(path, move |_req| {
            post.hit();
            let body = post_path.clone();
            async move { body }
        })
}

/// The status line of a response (the bytes before the first CRLF), lossily decoded.
pub fn status_line(bytes: &[u8]) -> String {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads exactly one response (a body delimited by Content-Length or chunked) from a connection
/// that stays open, keeping what follows it in `pending`. `head_only` as in [`parse_one`].
pub fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> Raw {
    loop {
        if let Some((raw, used)) = parse_one_framed(pending, head_only) {
            pending.drain(..used);
            return raw;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).expect("read a response");
        assert!(
            n > 0,
            "connection closed before a whole response: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// Like [`parse_one`], but `None` for a response delimited by the close (it is never complete
/// on an open connection).
pub fn parse_one_framed(bytes: &[u8], head_only: bool) -> Option<(Raw, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let delimited = head_only
        || head.contains("\r\ncontent-length:")
        || head.contains("\r\ntransfer-encoding: chunked")
        || head.starts_with("http/1.1 204")
        || head.starts_with("http/1.1 304");
    if !delimited {
        return None;
    }
    parse_one(bytes, head_only)
}

/// Returns `true` if the peer has closed `stream` (EOF or reset) within `CLIENT_TIMEOUT`,
/// discarding anything it still sends.
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A route whose jobs announce they started, then wait on `gate`.
pub fn held_route(router: Router, started: mpsc::Sender<()>, gate: Arc<Barrier>) -> Router {
    held_route_with(router, steadyloop::RouteOptions::new(), started, gate)
}

/// [`held_route`] with route settings (a pool class of its own, ...).
pub fn held_route_with(
    router: Router,
    options: steadyloop::RouteOptions,
    started: mpsc::Sender<()>,
    gate: Arc<Barrier>,
) -> Router {
    let started = Mutex::new(started);
    let started = Arc::new(started);
    router.get_with("/held", options, move |_req| {
        let started = started.lock().unwrap().clone();
        let gate = gate.clone();
        async move {
            offload(move || {
                started.send(()).unwrap();
                gate.wait();
                "done"
            })
            .await
        }
    })
}
