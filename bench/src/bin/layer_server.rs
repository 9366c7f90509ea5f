//! A light-route server for measuring what a layer costs: `GET /healthz` answered on the loop,
//! with or without the `RequestId` layer, in one build (`scripts/layer_overhead.sh` runs both
//! side by side).
//!
//! Run: `cargo build --release -p steadyloop-bench && target/release/layer_server --addr
//! 127.0.0.1:18193 --request-id on`.

use std::process::ExitCode;

use steadyloop::{RequestId, Router, Server};

/// The `--help` text.
const USAGE: &str = "layer_server: GET /healthz with or without the request-id layer

Usage: layer_server [--addr HOST:PORT] [--request-id on|off]
  --addr        where to listen [127.0.0.1:18193]
  --request-id  whether the RequestId layer wraps every request [on]";

fn main() -> ExitCode {
    let mut addr = "127.0.0.1:18193".to_string();
    let mut request_id = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value.as_deref()) {
            ("--addr", Some(value)) => addr = value.to_string(),
            ("--request-id", Some("on")) => request_id = true,
            ("--request-id", Some("off")) => request_id = false,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let mut app = Router::new();
    if request_id {
        app = app.layer(RequestId::new());
    }
    let app = app.get("/healthz", |_req| async { "ok" });
    let server = match Server::builder().addr(addr).handle_signals(true).build(app) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("layer_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layer_server: {e}");
            ExitCode::FAILURE
        }
    }
}
