//! Static files over a real socket: content types, index files, validators and 304s, ranges,
//! precompressed siblings, streaming of large files, and a fuzz-style walk of traversal paths
//! against a root that has a secret file next to it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{parse_one, raw_responses, start, Raw};
use steadyloop::{Request, Router, StaticFiles};

/// What the secret file next to the root holds; no response may ever contain it.
const SECRET: &str = "TOP-SECRET-7f3a";

/// A scratch directory: `root/` is served, `secret.txt` lies next to it.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Scratch {
    fn root(&self) -> PathBuf {
        self.0.join("root")
    }
}

/// Lays out the test tree.
fn scratch() -> Scratch {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "steadyloop-static-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let write = |path: &Path, bytes: &[u8]| std::fs::write(path, bytes).unwrap();
    write(&base.join("secret.txt"), SECRET.as_bytes());
    write(&root.join("index.html"), b"<h1>home</h1>");
    write(&root.join("app.js"), b"console.log('plain')");
    write(&root.join("app.js.gz"), b"GZIP-BYTES");
    write(&root.join("app.js.br"), b"BROTLI-BYTES");
    write(&root.join("style.css"), b"body{}");
    write(&root.join("data.bin"), b"0123456789");
    write(&root.join(".env"), format!("KEY={SECRET}").as_bytes());
    write(&root.join("sub/index.html"), b"<h1>sub</h1>");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write(&root.join("big.bin"), &big);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out-link")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("out-dir")).unwrap();
        std::os::unix::fs::symlink(root.join("style.css"), root.join("in-link")).unwrap();
    }
    Scratch(base)
}

/// A server with the scratch root under `/static` and one file at `/one`.
fn serve(scratch: &Scratch) -> steadyloop::ServerHandle {
    let root = scratch.root();
    start(move || {
        let one = StaticFiles::file(root.join("style.css")).cache_control("max-age=60");
        Router::new()
            .static_dir("/static", &root)
            .static_file("/style", root.join("style.css"))
            .get("/one", move |req: Request| one.serve(&req))
    })
}

/// Sends one request with extra header lines and returns the response.
fn ask(server: &steadyloop::ServerHandle, method: &str, target: &str, headers: &str) -> Raw {
    let request =
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    let bytes = common::exchange(server.local_addr(), request.as_bytes());
    parse_one(&bytes, method == "HEAD")
        .unwrap_or_else(|| {
            panic!(
                "no response to {target}: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
        .0
}

fn get(server: &steadyloop::ServerHandle, target: &str) -> Raw {
    ask(server, "GET", target, "")
}

#[test]
fn files_have_types_and_directories_their_index() {
    let scratch = scratch();
    let server = serve(&scratch);
    let css = get(&server, "/static/style.css");
    assert_eq!((css.status, css.text().as_str()), (200, "body{}"));
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("accept-ranges"), Some("bytes"));
    assert_eq!(css.header("cache-control"), Some("no-cache"));
    let home = get(&server, "/static/");
    assert_eq!((home.status, home.text().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let sub = get(&server, "/static/sub/");
    assert_eq!(sub.text(), "<h1>sub</h1>");
    let redirect = get(&server, "/static/sub?x=1");
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/static/sub/?x=1"));
    assert_eq!(get(&server, "/static/empty/").status, 404);
    assert_eq!(get(&server, "/static/missing.txt").status, 404);
    assert_eq!(
        get(&server, "/static/data.bin").header("content-type"),
        Some("application/octet-stream")
    );
    let one = get(&server, "/one");
    assert_eq!((one.status, one.text().as_str()), (200, "body{}"));
    assert_eq!(one.header("cache-control"), Some("max-age=60"));
    assert_eq!(get(&server, "/style").text(), "body{}");
    let bare = get(&server, "/static");
    assert_eq!(
        (bare.status, bare.header("location")),
        (308, Some("/static/"))
    );
    #[cfg(unix)]
    assert_eq!(get(&server, "/static/in-link").text(), "body{}");
}

#[test]
fn head_sends_the_headers_of_get() {
    let scratch = scratch();
    let server = serve(&scratch);
    let head = ask(&server, "HEAD", "/static/style.css", "");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("6"));
    assert!(head.header("etag").is_some());
    // A streamed (large) file has its length too, also for HEAD.
    let big = ask(&server, "HEAD", "/static/big.bin", "");
    assert_eq!(big.header("content-length"), Some("300000"));
    assert_eq!(big.header("transfer-encoding"), None);
    let post = ask(
        &server,
        "POST",
        "/static/style.css",
        "Content-Length: 0\r\n",
    );
    assert_eq!(post.status, 405);
}

#[test]
fn validators_give_304() {
    let scratch = scratch();
    let server = serve(&scratch);
    let first = get(&server, "/static/style.css");
    let etag = first.header("etag").expect("an ETag").to_string();
    let modified = first
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let again = ask(
        &server,
        "GET",
        "/static/style.css",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert!(again.body.is_empty());
    let weak = ask(
        &server,
        "GET",
        "/static/style.css",
        &format!("If-None-Match: \"x\", W/{etag}\r\n"),
    );
    assert_eq!(weak.status, 304);
    let other = ask(
        &server,
        "GET",
        "/static/style.css",
        "If-None-Match: \"other\"\r\n",
    );
    assert_eq!(other.status, 200);
    let since = ask(
        &server,
        "GET",
        "/static/style.css",
        &format!("If-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(since.status, 304);
    let old = ask(
        &server,
        "GET",
        "/static/style.css",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
    );
    assert_eq!(old.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let both = ask(
        &server,
        "GET",
        "/static/style.css",
        &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(both.status, 200);
}

#[test]
fn ranges_give_206_and_416() {
    let scratch = scratch();
    let server = serve(&scratch);
    let part = ask(&server, "GET", "/static/data.bin", "Range: bytes=2-4\r\n");
    assert_eq!((part.status, part.text().as_str()), (206, "234"));
    assert_eq!(part.header("content-range"), Some("bytes 2-4/10"));
    let tail = ask(&server, "GET", "/static/data.bin", "Range: bytes=-3\r\n");
    assert_eq!((tail.status, tail.text().as_str()), (206, "789"));
    let open = ask(&server, "GET", "/static/data.bin", "Range: bytes=7-\r\n");
    assert_eq!((open.status, open.text().as_str()), (206, "789"));
    let beyond = ask(&server, "GET", "/static/data.bin", "Range: bytes=10-\r\n");
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */10"));
    let several = ask(
        &server,
        "GET",
        "/static/data.bin",
        "Range: bytes=0-1,4-5\r\n",
    );
    assert_eq!(
        (several.status, several.text().as_str()),
        (200, "0123456789")
    );
    let etag = get(&server, "/static/data.bin")
        .header("etag")
        .unwrap()
        .to_string();
    let fresh = ask(
        &server,
        "GET",
        "/static/data.bin",
        &format!("Range: bytes=0-0\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((fresh.status, fresh.text().as_str()), (206, "0"));
    let stale = ask(
        &server,
        "GET",
        "/static/data.bin",
        "Range: bytes=0-0\r\nIf-Range: \"old\"\r\n",
    );
    assert_eq!((stale.status, stale.text().as_str()), (200, "0123456789"));
    // A range of a streamed (large) file.
    let big = ask(
        &server,
        "GET",
        "/static/big.bin",
        "Range: bytes=100000-100009\r\n",
    );
    assert_eq!(big.status, 206);
    let expected: Vec<u8> = (100_000..100_010u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(big.body, expected);
}

#[test]
fn precompressed_siblings_follow_accept_encoding() {
    let scratch = scratch();
    let server = serve(&scratch);
    let br = ask(
        &server,
        "GET",
        "/static/app.js",
        "Accept-Encoding: gzip, br\r\n",
    );
    assert_eq!(br.text(), "BROTLI-BYTES");
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(
        br.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    let gz = ask(
        &server,
        "GET",
        "/static/app.js",
        "Accept-Encoding: gzip, br;q=0\r\n",
    );
    assert_eq!(gz.text(), "GZIP-BYTES");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let plain = get(&server, "/static/app.js");
    assert_eq!(plain.text(), "console.log('plain')");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_ne!(plain.header("etag"), br.header("etag"));
    let ranged = ask(
        &server,
        "GET",
        "/static/app.js",
        "Accept-Encoding: br\r\nRange: bytes=0-6\r\n",
    );
    assert_eq!((ranged.status, ranged.text().as_str()), (206, "console"));
}

#[test]
fn large_files_stream_intact() {
    let scratch = scratch();
    let server = serve(&scratch);
    let big = get(&server, "/static/big.bin");
    assert_eq!(big.status, 200);
    assert_eq!(big.header("content-length"), Some("300000"));
    let expected: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(big.body.len(), expected.len());
    assert!(big.body == expected);
}

/// Every way of naming the secret file (or anything outside the root) that we could think of,
/// combined: each gets the very 404 an absent file gets, and no answer contains the secret.
#[test]
fn traversal_walk_never_leaves_the_root() {
    let scratch = scratch();
    let server = serve(&scratch);
    let absent = get(&server, "/static/no-such-file");
    assert_eq!(absent.status, 404);

    let ups = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%2e.",
        "..%00",
        "%2e%2e%00",
        "...",
        ". .",
        "%252e%252e",
        "..\\",
        "%2e%2e%5c",
        "..%5c..",
        "..;",
        "%c0%ae%c0%ae",
        "%uff0e%uff0e",
    ];
    let seps = ["/", "%2f", "%2F", "%5c", "\\", "//", "/./", "/%2e/", "%00/"];
    let targets = ["secret.txt", "root/../secret.txt", "", "etc/passwd"];
    let mut paths = Vec::new();
    for up in ups {
        for sep in seps {
            for target in targets {
                for depth in 1..=3 {
                    let climb = format!("{up}{sep}").repeat(depth);
                    paths.push(format!("/static/{climb}{target}"));
                    paths.push(format!("/static/sub/{climb}{target}"));
                }
            }
        }
    }
    // Absolute paths, encoded roots, NUL, dotfiles and symlinks out of the root.
    for extra in [
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/%2F..%2Fsecret.txt",
        "/static/.env",
        "/static/%2eenv",
        "/static/sub/..%2f.env",
        "/static/style.css%00.html",
        "/static/out-link",
        "/static/out-dir/secret.txt",
        "/static/C:%5csecret.txt",
        "/static/%",
        "/static/%zz",
    ] {
        paths.push(extra.to_string());
    }
    assert!(paths.len() > 1500, "{}", paths.len());

    let mut refused = 0;
    for path in &paths {
        // The client sends the target as is; a target the HTTP parser refuses (a backslash or
        // NUL is fine for it, but not every byte) gets a 400, which reveals nothing either.
        let responses = raw_responses(
            server.local_addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        let response = responses
            .first()
            .unwrap_or_else(|| panic!("no answer for {path}"));
        assert!(
            !response.text().contains(SECRET),
            "{path} leaked the secret"
        );
        match response.status {
            404 => {
                assert_eq!(response.body, absent.body, "{path}: a different 404");
                refused += 1;
            }
            400 => refused += 1,
            other => panic!("{path}: status {other}"),
        }
    }
    assert_eq!(refused, paths.len());
}

/// The tiny_http front end sends streamed files with their length too.
#[cfg(feature = "tiny_http")]
#[test]
fn large_files_stream_on_tiny_http() {
    let scratch = scratch();
    let root = scratch.root();
    let server = common::start_on(steadyloop::Frontend::TinyHttp, move || {
        Router::new().static_dir("/static", &root)
    });
    let big = get(&server, "/static/big.bin");
    assert_eq!(big.status, 200);
    assert_eq!(big.header("content-length"), Some("300000"));
    let expected: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert!(big.body == expected);
    let part = ask(&server, "GET", "/static/big.bin", "Range: bytes=-5\r\n");
    assert_eq!((part.status, part.body.len()), (206, 5));
}
