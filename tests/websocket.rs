//! WebSocket over a real socket (feature `websocket`): the handshake (101 and the accept key,
//! 400/426 for bad ones), echo with `!Send` state on the loop, message limits (1009), pings,
//! idle timeout, close 1001 at shutdown, the connection counted against `max-connections`,
//! and 501 on the tiny_http front end.

#![cfg(feature = "websocket")]

mod common;

use std::cell::Cell;
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{builder, raw_responses, start_with};
use steadyloop::websocket::{Limits, Message, WebSocket};
use steadyloop::{Config, Request, Router, ServerHandle};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message as M;

/// An echo endpoint that numbers the messages with `!Send` state, and one with short timers.
fn app() -> Router {
    let count = Rc::new(Cell::new(0u32));
    Router::new()
        .websocket("/echo", move |mut ws: WebSocket, req: Request| {
            let count = count.clone();
            async move {
                let who = req.query_str("name").unwrap_or("anon").to_string();
                while let Some(message) = ws.recv().await {
                    count.set(count.get() + 1);
                    let reply = match message {
                        Message::Text(text) => {
                            Message::Text(format!("{who} #{}: {text}", count.get()))
                        }
                        binary => binary,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            }
        })
        .websocket_with(
            "/quiet",
            Limits::default()
                .ping_after(Duration::from_millis(200))
                .idle_timeout(Duration::from_millis(600))
                .max_message(1024),
            |mut ws: WebSocket, _req| async move { while ws.recv().await.is_some() {} },
        )
}

fn serve(config: Config) -> ServerHandle {
    start_with(builder().config(config).addr("127.0.0.1:0"), app)
}

type Client = tungstenite::WebSocket<TcpStream>;

fn client(server: &ServerHandle, path: &str) -> Client {
    let stream = common::connect(server.local_addr());
    let url = format!("ws://{}{path}", server.local_addr());
    let (ws, response) = tungstenite::client(url.as_str(), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

#[test]
fn echo_with_state_on_the_loop() {
    let server = serve(Config::default());
    let mut ws = client(&server, "/echo?name=ada");
    ws.send(M::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), M::text("ada #1: hello"));
    ws.send(M::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(ws.read().unwrap(), M::binary(vec![1, 2, 3]));
    let mut other = client(&server, "/echo");
    other.send(M::text("hi")).unwrap();
    assert_eq!(other.read().unwrap(), M::text("anon #3: hi"));
    ws.close(None).unwrap();
    // The server answers the close and ends the session.
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

#[test]
fn the_accept_key_and_bad_handshakes() {
    let server = serve(Config::default());
    let addr = server.local_addr();
    let upgrade = |extra: &str| {
        raw_responses(
            addr,
            &format!(
                "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}Connection: close\r\n\r\n"
            ),
        )
    };
    let missing_key = upgrade("Sec-WebSocket-Version: 13\r\n");
    assert_eq!(missing_key[0].status, 400);
    let wrong_version =
        upgrade("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    assert_eq!(wrong_version[0].status, 426);
    assert_eq!(wrong_version[0].header("sec-websocket-version"), Some("13"));
    let plain = raw_responses(
        addr,
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(plain[0].status, 426);
    assert_eq!(plain[0].header("upgrade"), Some("websocket"));
    // A good one, by hand: the RFC 6455 example key.
    let mut stream = common::connect(addr);
    use std::io::{Read, Write};
    stream
        .write_all(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
}

#[test]
fn oversized_messages_close_with_1009() {
    let server = serve(Config::default());
    let mut ws = client(&server, "/quiet");
    ws.send(M::text("x".repeat(2048))).unwrap();
    match ws.read() {
        Ok(M::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}

#[test]
fn quiet_sessions_are_pinged_then_closed_when_idle() {
    let server = serve(Config::default());
    let mut ws = client(&server, "/quiet");
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A ping arrives after 200 ms of quiet. This client answers pings automatically while it
    // reads, which keeps the session alive...
    match ws.read() {
        Ok(M::Ping(_)) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    ws.flush().unwrap();
    // ...but stop answering: read the raw socket from here on, so no pong goes back, and the
    // idle timeout closes the session with 1001 (an unmasked close frame: 0x88, its length,
    // then the code 0x03e9).
    let stream = ws.get_mut();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let start = Instant::now();
    while !seen
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xe9])
    {
        use std::io::Read;
        let n = stream
            .read(&mut buf)
            .expect("a close frame before the read timeout");
        assert!(n > 0, "closed without a close frame: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn shutdown_closes_sessions_with_1001_without_waiting_for_the_drain() {
    let mut config = Config::default();
    config.drain_timeout = Duration::from_secs(20);
    let server = serve(config);
    let mut ws = client(&server, "/echo");
    ws.send(M::text("x")).unwrap();
    ws.read().unwrap();
    let reader = std::thread::spawn(move || loop {
        match ws.read() {
            Ok(M::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => return None,
        }
    });
    common::shut_down_promptly(server);
    assert_eq!(reader.join().unwrap(), Some(CloseCode::Away));
}

#[test]
fn sessions_count_against_max_connections() {
    let mut config = Config::default();
    config.max_connections = 1;
    let server = serve(config);
    let _ws = client(&server, "/echo");
    // The session holds the only slot: the next connection is refused.
    let responses = raw_responses(server.local_addr(), "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        responses.is_empty() || responses[0].status == 503,
        "{responses:?}"
    );
}

#[cfg(feature = "tiny_http")]
#[test]
fn tiny_http_answers_upgrades_with_501() {
    let server = start_with(builder().frontend(steadyloop::Frontend::TinyHttp), app);
    let responses = raw_responses(
        server.local_addr(),
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(responses[0].status, 501);
}
