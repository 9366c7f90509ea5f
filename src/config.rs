//! Server settings: plain data, their defaults, and parsing from `key=value` text (flags, env).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Queue length of a pool class unless configured: with 20 ms jobs on 2 workers, a full queue is
/// about 640 ms of waiting, well under the queue deadline.
pub const DEFAULT_QUEUE: usize = 64;

/// Every server setting, with its default.
///
/// Build one with `Config::default()` and adjust fields, or use the matching
/// [`ServerBuilder`](crate::ServerBuilder) setters. [`Config::set`] applies a setting given as text,
/// which the demo binary uses for its flags and `STEADYLOOP_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub addr: String,
    /// The default pool class: CPU jobs that run at once, jobs that may wait, and how long.
    pub pool: ClassConfig,
    /// Run pool workers at a lower OS scheduling priority (nice 10) than the loop. Default `true`.
    pub low_priority_workers: bool,
    /// Largest request head (request line and headers). Default 16 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in a request. Default 100.
    pub max_headers: usize,
    /// Largest request body, unless a route sets its own. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most bytes of request bodies held at once, across all connections; a request whose body
    /// would go past it gets 503. Default 64 MiB.
    pub max_body_memory: usize,
    /// Time allowed for a whole request head, from its first byte. Default 10 s.
    pub header_timeout: Duration,
    /// Longest pause while reading a request body. Default 10 s.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection is kept open. Default 5 s.
    pub keep_alive_timeout: Duration,
    /// Longest a response write may make no progress (client not reading). Default 10 s.
    pub write_timeout: Duration,
    /// Most open connections; more are refused at once. Default 1,024.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for in-flight requests. Default 10 s.
    pub drain_timeout: Duration,
    /// A single poll on the loop longer than this is reported as a stall. Default 100 ms.
    pub stall_threshold: Duration,
    /// Readiness fails while the loop's recent lag is above this. Default 250 ms.
    pub ready_max_lag: Duration,
    /// Readiness fails while a pool class's queue is at least this full (0–1). Default 0.8.
    pub ready_queue_ratio: f64,
    /// Log one line per request (target `steadyloop::access`, level info). Default `false`.
    pub access_log: bool,
    /// Measure loop lag and detect stalls (a watchdog thread). Default `true`.
    pub loop_monitor: bool,
    /// The HTTP front end that serves requests. Default [`Frontend::Native`].
    pub frontend: Frontend,
}

/// The HTTP front end that reads requests and writes responses; both serve the same router.
///
/// Set it with [`ServerBuilder::frontend`](crate::ServerBuilder::frontend), `--frontend` or
/// `STEADYLOOP_FRONTEND`; the text forms are `native` and `tiny_http`.
///
/// # Examples
///
/// ```
/// use steadyloop::Frontend;
///
/// assert_eq!("tiny_http".parse::<Frontend>().unwrap(), Frontend::TinyHttp);
/// assert_eq!(Frontend::default().to_string(), "native");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Frontend {
    /// HTTP/1.1 on the event loop itself, with limits and timeouts on every read and write.
    #[default]
    Native,
    /// `tiny_http` 0.12 on its own threads (one per connection), bridged into the loop; needs
    /// the `tiny_http` cargo feature. For trusted networks: see the README for what it cannot
    /// protect against.
    TinyHttp,
}

impl Frontend {
    /// Returns the setting's text form: `native` or `tiny_http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Frontend::Native => "native",
            Frontend::TinyHttp => "tiny_http",
        }
    }

    /// Returns `true` if this front end is compiled into the crate.
    pub fn is_available(self) -> bool {
        match self {
            Frontend::Native => true,
            Frontend::TinyHttp => cfg!(feature = "tiny_http"),
        }
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frontend {
    type Err = Error;

    /// Parses `native` or `tiny_http` (also `tiny-http`), ignoring case.
    fn from_str(value: &str) -> Result<Frontend> {
        match value.trim().to_ascii_lowercase().as_str() {
            "native" => Ok(Frontend::Native),
            "tiny_http" | "tiny-http" => Ok(Frontend::TinyHttp),
            _ => Err(Error::Config(format!(
                "frontend: expected native or tiny_http, got {value:?}"
            ))),
        }
    }
}

/// Limits of one pool class: how many jobs run at once and how many may wait.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClassConfig {
    /// Jobs of this class that run at once. Default: the number of cores.
    pub workers: usize,
    /// Jobs that may wait for a worker; more are shed with 503. Default [`DEFAULT_QUEUE`] (64).
    pub queue: usize,
    /// How long a job may wait for a worker before it is dropped with 503. Default 5 s.
    pub queue_timeout: Duration,
}

impl ClassConfig {
    /// Creates a class with `workers` concurrent jobs and room for `queue` waiting ones.
    ///
    /// # Examples
    ///
    /// ```
    /// let reports = steadyloop::ClassConfig::new(1, 8);
    /// assert_eq!((reports.workers, reports.queue), (1, 8));
    /// ```
    pub fn new(workers: usize, queue: usize) -> ClassConfig {
        ClassConfig {
            workers,
            queue,
            ..ClassConfig::default()
        }
    }

    /// Sets how long a job may wait for a worker. Defaults to 5 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> ClassConfig {
        self.queue_timeout = timeout;
        self
    }

    /// Checks the limits; `name` is used in the message.
    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::Config(format!(
                "pool class `{name}`: workers must be at least 1"
            )));
        }
        if self.queue_timeout.is_zero() {
            return Err(Error::Config(format!(
                "pool class `{name}`: queue timeout must be above 0"
            )));
        }
        Ok(())
    }
}

impl Default for ClassConfig {
    fn default() -> ClassConfig {
        ClassConfig {
            workers: cores(),
            queue: DEFAULT_QUEUE,
            queue_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: "127.0.0.1:8080".to_string(),
            pool: ClassConfig::default(),
            low_priority_workers: true,
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            max_body_memory: 64 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
            stall_threshold: Duration::from_millis(100),
            ready_max_lag: Duration::from_millis(250),
            ready_queue_ratio: 0.8,
            access_log: false,
            loop_monitor: true,
            frontend: Frontend::Native,
        }
    }
}

/// The settings [`Config::set`] understands, with a one-line description each (for `--help`).
pub const SETTINGS: &[(&str, &str)] = &[
    ("addr", "address to listen on [127.0.0.1:8080]"),
    ("workers", "CPU jobs run at once [number of cores]"),
    ("queue", "CPU jobs that may wait; more get 503 [64]"),
    ("queue-timeout", "longest a CPU job may wait to start [5s]"),
    (
        "low-priority-workers",
        "run CPU jobs at nice 10 (true/false) [true]",
    ),
    ("max-head-bytes", "largest request head [16384]"),
    ("max-headers", "most header fields [100]"),
    ("max-body-bytes", "largest request body [1048576]"),
    (
        "max-body-memory",
        "request bodies held at once, all connections [67108864]",
    ),
    ("header-timeout", "time for a whole request head [10s]"),
    ("body-timeout", "longest pause in a request body [10s]"),
    (
        "keep-alive-timeout",
        "idle keep-alive connection lifetime [5s]",
    ),
    ("write-timeout", "longest stalled response write [10s]"),
    ("max-connections", "most open connections [1024]"),
    ("drain-timeout", "graceful shutdown deadline [10s]"),
    (
        "stall-threshold",
        "loop poll length reported as a stall [100ms]",
    ),
    (
        "ready-max-lag",
        "readiness fails while loop lag is above this [250ms]",
    ),
    (
        "ready-queue-ratio",
        "readiness fails while a pool queue is this full, 0-1 [0.8]",
    ),
    (
        "access-log",
        "log one line per request (true/false) [false]",
    ),
    (
        "loop-monitor",
        "measure loop lag and report stalls (true/false) [true]",
    ),
    ("frontend", "HTTP front end: native or tiny_http [native]"),
];

impl Config {
    /// Applies one setting given as text, as in `--workers 4` or `STEADYLOOP_WORKERS=4`.
    ///
    /// `key` is a name from [`SETTINGS`]; durations accept `ms`, `s` or `m` suffixes (a bare
    /// number is seconds); sizes are bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = steadyloop::Config::default();
    /// config.set("workers", "3").unwrap();
    /// config.set("keep-alive-timeout", "500ms").unwrap();
    /// assert_eq!(config.pool.workers, 3);
    /// assert!(config.set("workers", "many").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] for an unknown key or a value that does not parse.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        match key {
            "addr" => self.addr = value.to_string(),
            "workers" => self.pool.workers = parse_count(key, value)?,
            "queue" => self.pool.queue = parse_count(key, value)?,
            "queue-timeout" => self.pool.queue_timeout = parse_duration(key, value)?,
            "low-priority-workers" => self.low_priority_workers = parse_bool(key, value)?,
            "max-head-bytes" => self.max_head_bytes = parse_count(key, value)?,
            "max-headers" => self.max_headers = parse_count(key, value)?,
            "max-body-bytes" => self.max_body_bytes = parse_count(key, value)?,
            "max-body-memory" => self.max_body_memory = parse_count(key, value)?,
            "header-timeout" => self.header_timeout = parse_duration(key, value)?,
            "body-timeout" => self.body_timeout = parse_duration(key, value)?,
            "keep-alive-timeout" => self.keep_alive_timeout = parse_duration(key, value)?,
            "write-timeout" => self.write_timeout = parse_duration(key, value)?,
            "max-connections" => self.max_connections = parse_count(key, value)?,
            "drain-timeout" => self.drain_timeout = parse_duration(key, value)?,
            "stall-threshold" => self.stall_threshold = parse_duration(key, value)?,
            "ready-max-lag" => self.ready_max_lag = parse_duration(key, value)?,
            "ready-queue-ratio" => self.ready_queue_ratio = parse_ratio(key, value)?,
            "access-log" => self.access_log = parse_bool(key, value)?,
            "loop-monitor" => self.loop_monitor = parse_bool(key, value)?,
            "frontend" => self.frontend = value.parse()?,
            _ => return Err(Error::Config(format!("unknown setting `{key}`"))),
        }
        Ok(())
    }

    /// Checks that the settings make sense together.
    pub(crate) fn validate(&self) -> Result<()> {
        self.pool.validate("default")?;
        if !self.frontend.is_available() {
            return Err(Error::Config(format!(
                "frontend {} is not compiled in; rebuild with `--features {}`",
                self.frontend, self.frontend
            )));
        }
        let positive = [
            ("max-head-bytes", self.max_head_bytes),
            ("max-headers", self.max_headers),
            ("max-connections", self.max_connections),
            ("max-body-memory", self.max_body_memory),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if !(0.0..=1.0).contains(&self.ready_queue_ratio) {
            return Err(Error::Config(
                "ready-queue-ratio must be from 0 to 1".into(),
            ));
        }
        if self.max_head_bytes < 64 {
            return Err(Error::Config("max-head-bytes must be at least 64".into()));
        }
        let timeouts = [
            ("header-timeout", self.header_timeout),
            ("body-timeout", self.body_timeout),
            ("keep-alive-timeout", self.keep_alive_timeout),
            ("write-timeout", self.write_timeout),
            ("stall-threshold", self.stall_threshold),
        ];
        for (name, value) in timeouts {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be above 0")));
            }
        }
        Ok(())
    }
}

/// Returns the number of cores available to this process (at least 1).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses a non-negative count.
fn parse_count(key: &str, value: &str) -> Result<usize> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| Error::Config(format!("{key}: expected a whole number, got {value:?}")))
}

/// Parses a ratio between 0 and 1.
fn parse_ratio(key: &str, value: &str) -> Result<f64> {
    match value.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(Error::Config(format!(
            "{key}: expected a number from 0 to 1, got {value:?}"
        ))),
    }
}

/// Parses `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{key}: expected true or false, got {value:?}"
        ))),
    }
}

/// Parses a duration: `250ms`, `10s`, `2m`, or a bare number of seconds.
pub(crate) fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let bad = || {
        Error::Config(format!(
            "{key}: expected a duration like 500ms, 10s or 2m, got {value:?}"
        ))
    };
    let (number, scale_ms) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60_000)
    } else {
        (value, 1000)
    };
    let number: u64 = number.trim().parse().map_err(|_| bad())?;
    number
        .checked_mul(scale_ms)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            parse_duration("t", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("t", "10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("t", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("t", "7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("t", "-1s").is_err());
        assert!(parse_duration("t", "1h").is_err());
        assert!(parse_duration("t", "99999999999999999999").is_err());
    }

    #[test]
    fn every_setting_is_listed() {
        // Keep in step with `Config::set`: a key it accepts but SETTINGS omits has no flag.
        let keys = [
            "addr",
            "workers",
            "queue",
            "queue-timeout",
            "low-priority-workers",
            "max-head-bytes",
            "max-headers",
            "max-body-bytes",
            "max-body-memory",
            "header-timeout",
            "body-timeout",
            "keep-alive-timeout",
            "write-timeout",
            "max-connections",
            "drain-timeout",
            "stall-threshold",
            "ready-max-lag",
            "ready-queue-ratio",
            "access-log",
            "loop-monitor",
            "frontend",
        ];
        let listed: Vec<&str> = SETTINGS.iter().map(|(k, _)| *k).collect();
        assert_eq!(listed, keys);
    }

    #[test]
    fn every_listed_setting_is_accepted() {
        for (key, _) in SETTINGS {
            let value = match *key {
                "addr" => "127.0.0.1:0",
                "low-priority-workers" | "access-log" | "loop-monitor" => "false",
                "ready-queue-ratio" => "0.5",
                "frontend" => "tiny_http",
                k if k.ends_with("timeout") || k == "stall-threshold" || k == "ready-max-lag" => {
                    "3s"
                }
                _ => "77",
            };
            Config::default().set(key, value).unwrap();
        }
        assert!(Config::default().set("nope", "1").is_err());
    }

    #[test]
    fn frontend_parses_and_is_checked_at_validation() {
        let mut config = Config::default();
        config.set("frontend", "tiny_http").unwrap();
        assert_eq!(config.frontend, Frontend::TinyHttp);
        config.set("frontend", "Tiny-HTTP").unwrap();
        assert_eq!(config.frontend, Frontend::TinyHttp);
        assert!(config.set("frontend", "hyper").is_err());
        let compiled_in = cfg!(feature = "tiny_http");
        assert_eq!(config.validate().is_ok(), compiled_in);
        if let Err(err) = config.validate() {
            assert!(err.to_string().contains("--features tiny_http"), "{err}");
        }
        config.set("frontend", "native").unwrap();
        assert!(config.validate().is_ok());
    }

    #[test]
    fn validate_rejects_zero_workers() {
        let mut config = Config::default();
        config.pool.workers = 0;
        assert!(config.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }
}
