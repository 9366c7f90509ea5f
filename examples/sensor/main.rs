//! An edge device's own service, start to finish: a task on the loop samples a (fake) sensor
//! every 200 ms, and the device serves its own live page, a JSON API, pushes every reading
//! over server-sent events and WebSocket, and takes a new configuration behind a bearer token.
//! Only steadyloop's public API is used; read it top to bottom.
//!
//! Run: `cargo run --example sensor`, open <http://127.0.0.1:3010/>, then try
//! `curl localhost:3010/api/readings`, `curl 'localhost:3010/api/stats?samples=5000'`,
//! `curl -N localhost:3010/api/live` and
//! `curl -i -H 'Authorization: Bearer dev-token' -H 'Content-Type: application/json'
//! -d '{"interval_ms": 50, "label": "attic"}' localhost:3010/api/config`.
//! `SENSOR_ADDR` (default `127.0.0.1:3010`) and `SENSOR_TOKEN` (default `dev-token`) change the
//! address and the token. Ctrl-C or SIGTERM stops it gracefully.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use serde::{Deserialize, Serialize};
use steadyloop::sse::{Broadcast, Event};
use steadyloop::websocket::{Message, WebSocket};
use steadyloop::{offload, time, Error, JoinHandle, Json, Layer, Next, Request, RequestId};
use steadyloop::{Response, Result, Router, Server, ServerBuilder};

#[cfg(test)]
mod tests;

/// How many readings the device remembers (and `GET /api/readings` returns).
const KEEP: usize = 100;
/// The largest burst `GET /api/stats?samples=N` accepts.
const MAX_SAMPLES: usize = 100_000;

/// One sample of the sensor, as the API and the live feeds send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Sequence number, from 1; also the SSE event id.
    pub seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The temperature.
    pub celsius: f64,
    /// The sensor's label when it was taken.
    pub label: String,
}

/// The device's settings: what `POST /api/config` takes and `GET /api/config` shows.
/// `deny_unknown_fields` turns a typo (`"interval"`) into a 400 naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Time between samples, 10 to 60,000 ms.
    pub interval_ms: u64,
    /// A name for the sensor, 1 to 64 bytes.
    pub label: String,
}

/// The whole state of the device. Everything async runs on the one loop thread, so plain
/// `Cell`/`RefCell` in an `Rc` is enough: no locks. (Never hold a borrow across an `.await`.)
pub struct Sensor {
    /// The current settings.
    settings: RefCell<Settings>,
    /// The last `KEEP` readings, oldest first.
    readings: RefCell<VecDeque<Reading>>,
    /// The next reading's sequence number.
    next_seq: Cell<u64>,
    /// Server-sent-event clients of `/api/live`; each buffers 16 events, slower ones are dropped.
    live: Broadcast,
    /// WebSocket clients of `/api/ws`, one bounded queue each.
    sockets: RefCell<Vec<async_channel::Sender<String>>>,
    /// The sampling task, so a new interval can replace it.
    sampler: RefCell<Option<JoinHandle<()>>>,
}

impl Sensor {
    /// A sensor with the default settings and no readings yet.
    pub fn new() -> Rc<Sensor> {
        Rc::new(Sensor {
            settings: RefCell::new(Settings {
                interval_ms: 200,
                label: "sensor-1".to_string(),
            }),
            readings: RefCell::new(VecDeque::with_capacity(KEEP)),
            next_seq: Cell::new(1),
            live: Broadcast::new(16),
            sockets: RefCell::new(Vec::new()),
            sampler: RefCell::new(None),
        })
    }

    /// Takes one reading: remembers it and pushes it to every live client.
    pub fn sample(&self) -> Reading {
        let seq = self.next_seq.replace(self.next_seq.get() + 1);
        let reading = Reading {
            seq,
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            celsius: round2(21.0 + 1.5 * (seq as f64 / 25.0).sin() + noise(seq) * 0.2),
            label: self.settings.borrow().label.clone(),
        };
        let mut readings = self.readings.borrow_mut();
        if readings.len() == KEEP {
            readings.pop_front();
        }
        readings.push_back(reading.clone());
        drop(readings);
        // Push it: `Broadcast::send` never waits; a WebSocket client whose queue is full (or
        // that has gone) is dropped from the list, which ends its session.
        let json = serde_json::to_string(&reading).expect("a reading is valid JSON");
        let event = Event::data(json.as_str())
            .event("reading")
            .id(seq.to_string());
        self.live.send(&event);
        self.sockets
            .borrow_mut()
            .retain(|client| client.try_send(json.clone()).is_ok());
        reading
    }
}

/// The sampling task: one reading per interval, until the server shuts down.
async fn sample_forever(sensor: Rc<Sensor>) {
    let period = Duration::from_millis(sensor.settings.borrow().interval_ms);
    let mut every = time::interval(period);
    let sampling = async {
        loop {
            every.tick().await;
            sensor.sample();
        }
    };
    // A task should end when shutdown starts, or the server waits for it until the drain
    // deadline.
    future::or(sampling, steadyloop::shutting_down()).await;
}

/// The routes. A function of the state and the token, so the tests can run it in-process.
pub fn app(sensor: &Rc<Sensor>, token: &str) -> Router {
    // Found from the crate's directory at compile time, so any working directory works.
    let public = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sensor/public");
    let for_ws = sensor.clone();
    Router::new()
        // Every response gets an `X-Request-Id`: handler answers, 401s, 404s and 405s alike.
        .layer(RequestId::new())
        .get("/api/readings", with(sensor, readings))
        .get("/api/stats", with(sensor, stats))
        .get("/api/config", with(sensor, show_config))
        .post("/api/config", with(sensor, set_config))
        // Only the paths under /api/config need the token.
        .layer_on("/api/config", bearer_auth(token))
        .get("/api/live", with(sensor, live))
        .websocket("/api/ws", move |ws, _req| ws_feed(for_ws.clone(), ws))
        // `/` is public/index.html, `/app.js` public/app.js; anything else there is a 404.
        .static_dir("/", public)
}

/// Gives a handler written as `async fn(Rc<Sensor>, Request)` its own handle on the state.
fn with<F, Fut>(sensor: &Rc<Sensor>, handler: F) -> impl Fn(Request) -> Fut
where
    F: Fn(Rc<Sensor>, Request) -> Fut,
{
    let sensor = sensor.clone();
    move |req| handler(sensor.clone(), req)
}

/// `GET /api/readings`: the last readings, oldest first.
async fn readings(sensor: Rc<Sensor>, _req: Request) -> Json<Vec<Reading>> {
    Json(sensor.readings.borrow().iter().cloned().collect())
}

/// The query of `GET /api/stats`; a `samples` that is not a number is a 400 naming it.
#[derive(Deserialize)]
struct StatsQuery {
    /// How many values the burst has (default 1,000).
    samples: Option<usize>,
}

/// Percentiles of a burst of samples.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// How many values were read.
    pub samples: usize,
    /// The smallest value.
    pub min: f64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest value.
    pub max: f64,
}

/// `GET /api/stats?samples=N`: reads a fast burst of N values around the latest reading and
/// returns its percentiles. Sorting is CPU work, so it runs on the pool with `offload`: the
/// loop keeps serving (and sampling) meanwhile.
async fn stats(sensor: Rc<Sensor>, req: Request) -> Result<Json<Stats>> {
    let query: StatsQuery = req.query_as()?;
    let n = query.samples.unwrap_or(1_000);
    if !(1..=MAX_SAMPLES).contains(&n) {
        return Err(Error::bad_request(format!(
            "samples must be between 1 and {MAX_SAMPLES}"
        )));
    }
    // Copy what the job needs: the pool's threads cannot touch the `Rc`.
    let around = sensor.readings.borrow().back().map_or(21.0, |r| r.celsius);
    let stats = offload(move || {
        let mut burst: Vec<f64> = (0..n as u64).map(|i| around + noise(i) * 0.5).collect();
        burst.sort_by(f64::total_cmp);
        let rank = |p: f64| round2(burst[((p * n as f64).ceil() as usize).clamp(1, n) - 1]);
        Stats {
            samples: n,
            min: rank(0.0),
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: rank(1.0),
        }
    });
    Ok(Json(stats.await?))
}

/// `GET /api/config`: the current settings.
async fn show_config(sensor: Rc<Sensor>, _req: Request) -> Json<Settings> {
    Json(sensor.settings.borrow().clone())
}

/// `POST /api/config`: new settings; a new interval restarts the sampler at once.
async fn set_config(sensor: Rc<Sensor>, req: Request) -> Result<Response> {
    // 415 without a JSON content type; 400 naming the field for bad or missing fields.
    let settings: Settings = req.json().await?;
    if !(10..=60_000).contains(&settings.interval_ms) {
        return Err(Error::bad_request(
            "interval_ms must be between 10 and 60000",
        ));
    }
    if settings.label.is_empty() || settings.label.len() > 64 {
        return Err(Error::bad_request("label must be 1 to 64 bytes long"));
    }
    *sensor.settings.borrow_mut() = settings;
    // Start the new sampler first, then stop the old one: no await between spawning and
    // storing, so two requests at once still leave exactly one sampler.
    let new = steadyloop::spawn("sampler", sample_forever(sensor.clone()));
    if let Some(old) = sensor.sampler.replace(Some(new)) {
        old.cancel().await;
    }
    Ok(Response::new(204))
}

/// `GET /api/live`: every new reading as a server-sent event (`event: reading`, `id: <seq>`).
async fn live(sensor: Rc<Sensor>, _req: Request) -> Response {
    sensor.live.subscribe()
}

/// A layer that lets a request through only with `Authorization: Bearer <token>`; others get
/// 401 with `WWW-Authenticate: Bearer ...`, as RFC 6750 asks.
fn bearer_auth(token: &str) -> impl Layer {
    let expected: Rc<str> = format!("Bearer {token}").into();
    move |req: Request, next: Next| {
        let expected = expected.clone();
        async move {
            if req.header("authorization") != Some(&*expected) {
                return Error::unauthorized("Bearer realm=\"sensor\"").into_response();
            }
            next.run(req).await
        }
    }
}

/// `GET /api/ws`: every new reading as a text message. The session runs on the loop; messages
/// from the client are read (so pings and closes are answered) and ignored.
async fn ws_feed(sensor: Rc<Sensor>, mut ws: WebSocket) {
    let (client, readings) = async_channel::bounded(16);
    sensor.sockets.borrow_mut().push(client);
    drop(sensor);
    enum Step {
        Send(String),
        Ignore,
        End,
    }
    loop {
        // Wait for whichever comes first; `recv` may be dropped half-way without losing data.
        let reading = async { readings.recv().await.map_or(Step::End, Step::Send) };
        let heard = async { ws.recv().await.map_or(Step::End, |_| Step::Ignore) };
        let json = match future::or(reading, heard).await {
            Step::Send(json) => json,
            Step::Ignore => continue,
            // The client left, was too slow, or the server is shutting down (close 1001).
            Step::End => break,
        };
        if ws.send(Message::Text(json)).await.is_err() {
            break;
        }
    }
}

/// A deterministic stand-in for sensor noise: a number in -0.5..0.5 from `i`.
fn noise(i: u64) -> f64 {
    let mixed = (i ^ 0x5DEECE66D).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// Rounds to two decimals, as a thermometer would show.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Builds the server from `builder` and starts the sampler on its loop. Apart from `main` so
/// the tests can serve the same thing on a free port.
pub fn server(builder: ServerBuilder, token: &str) -> Result<Server> {
    let sensor = Sensor::new();
    let server = builder.build(app(&sensor, token))?;
    // A task spawned before `run` starts with the loop; it may hold the `Rc`.
    let sampler = server.spawn("sampler", sample_forever(sensor.clone()));
    sensor.sampler.replace(Some(sampler));
    Ok(server)
}

fn main() -> Result<()> {
    let addr = std::env::var("SENSOR_ADDR").unwrap_or_else(|_| "127.0.0.1:3010".to_string());
    let token = std::env::var("SENSOR_TOKEN").unwrap_or_else(|_| "dev-token".to_string());
    // SIGTERM or Ctrl-C: a graceful stop (live streams end at once, WebSocket sessions close
    // with 1001, in-flight requests finish), then `run` returns and the process exits 0.
    let builder = Server::builder().addr(addr).handle_signals(true);
    let server = server(builder, &token)?;
    println!("sensor listening on http://{}", server.local_addr());
    server.run()
}
