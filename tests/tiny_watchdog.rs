//! tiny_http's accept thread ends for good on any accept error; the tiny_http front end must
//! notice, report it and refuse new connections instead of silently serving nothing.
//!
//! A test binary of its own: it lowers this process's file-descriptor limit.

#![cfg(all(feature = "tiny_http", target_os = "linux"))]

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use common::{connect, read_one_response};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use steadyloop::{Frontend, Router};

#[test]
fn a_dead_accept_thread_is_reported_and_new_connections_are_refused() {
    let server = common::start_with(common::builder_on(Frontend::TinyHttp), || {
        Router::new().get("/hello", |_req| async { "hello" })
    });
    let addr = server.local_addr();
    // A connection opened before the accept thread dies stays served.
    let mut kept = connect(addr);
    kept.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_one_response(&mut kept, false).text(), "hello");
    assert!(server.is_frontend_healthy());

    // Use up every descriptor but one; the next connection takes it, so tiny_http's accept
    // thread fails: either accept() itself (EMFILE, which tiny_http reports once through
    // `recv`) or its `try_clone().unwrap()` right after (a panic nothing reports).
    let saved = getrlimit(Resource::Nofile);
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + 16),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let mut files = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        files.push(file);
    }
    files.pop();
    let orphan = TcpStream::connect(addr).unwrap();
    wait_for_close(orphan);
    drop(files);
    setrlimit(Resource::Nofile, saved).unwrap();

    // Once the death is reported the listening socket is closed: a connection waiting in its
    // backlog is reset, a new one refused. Either way the report has been made.
    match TcpStream::connect(addr) {
        Ok(waiter) => wait_for_close(waiter),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
    }
    assert!(!server.is_frontend_healthy());

    // New clients are refused at once rather than left waiting; the open connection still
    // gets answers.
    let refused = TcpStream::connect(addr).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    kept.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_one_response(&mut kept, false).text(), "hello");
}

/// Waits until the server closes or resets `stream` (failing after the client timeout).
fn wait_for_close(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(common::CLIENT_TIMEOUT))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}
