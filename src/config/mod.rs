//! Server settings: the table that declares each setting once, and the types it fills in.
//!
//! The table below (the `settings!` invocation) is the only place a setting is written: its
//! name, field, type, default, unit, one-line meaning and check. `config/table.rs` turns it
//! into [`Config`], [`ClassConfig`], [`SETTINGS`], [`Config::set`] and the
//! [`ServerBuilder`](crate::ServerBuilder) setters; `config/sources.rs` reads settings from
//! `STEADYLOOP_*` environment variables and `--flag value` arguments; `config/value.rs` parses
//! each unit's text form.

#[macro_use]
mod table;
mod sources;
mod value;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use value::{above_zero, at_least, compiled_in, within_0_and_1};

/// Queue length of a pool class unless configured: with 20 ms jobs on 2 workers, a full queue is
/// about 640 ms of waiting, well under the queue deadline.
pub const DEFAULT_QUEUE: usize = 64;

settings! {
    /// Every server setting, with its default.
    ///
    /// Build one with `Config::default()` (or [`Config::from_env`]) and adjust fields, or use the
    /// matching [`ServerBuilder`](crate::ServerBuilder) setters. [`Config::set`] applies a
    /// setting given as text; [`Config::apply_vars`] and [`Config::apply_args`] read
    /// `STEADYLOOP_*` variables and `--flag value` arguments. [`SETTINGS`] lists them all.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut config = steadyloop::Config::default();
    /// config.pool.workers = 2;
    /// config.keep_alive_timeout = Duration::from_secs(2);
    /// let app = steadyloop::Router::new().get("/", |_req| async { "hi" });
    /// let server = steadyloop::Server::builder().config(config).addr("127.0.0.1:0").build(app)?;
    /// # drop(server);
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    pub struct Config;

    /// Limits of one pool class: how many jobs run at once and how many may wait.
    ///
    /// The default class is [`Config::pool`]; others are declared with
    /// [`ServerBuilder::class`](crate::ServerBuilder::class).
    pub struct ClassConfig;

    /// The address to listen on; port 0 picks a free port. `systemd` takes the first socket
    /// systemd passed (socket activation, `LISTEN_FDS`), `systemd:NAME` the one whose
    /// `FileDescriptorName=` is `NAME`; that needs the `systemd` cargo feature (on by default).
    "addr" => addr: String [address] = "127.0.0.1:8080",
        "address to listen on", setter impl Into<String>;

    /// How many jobs of the pool class run at once (for the default class: CPU jobs of routes
    /// that name no class).
    "workers" => pool.workers: usize [count] = "number of cores" (cores()),
        "CPU jobs that run at once (default pool class)", check at_least(1);

    /// How many jobs of the pool class may wait for a worker; more are shed with 503 at once.
    "queue" => pool.queue: usize [count] = "64" (DEFAULT_QUEUE),
        "CPU jobs that may wait for a worker; more get 503 at once";

    /// How long a job of the pool class may wait for a worker; one that has not started by
    /// then is dropped with 503.
    "queue-timeout" => pool.queue_timeout: Duration [duration] = "5s",
        "longest a CPU job may wait to start; 503 after", check above_zero;

    /// How long a job of the pool class may run before it is reported as wedged: logged once
    /// (route, class, how long), counted in `/metrics`, and shown by readiness (503) while
    /// every worker of the class holds one. The job keeps its worker until it returns.
    "job-wedge-limit" => pool.job_wedge_limit: Duration [duration] = "60s",
        "a CPU job running longer is reported as wedged", check above_zero;

    /// Whether pool workers run at a lower OS scheduling priority (nice 10) than the loop, so
    /// the loop wins the CPU when both want it (Linux only).
    "low-priority-workers" => low_priority_workers: bool [switch] = "true",
        "run pool workers at nice 10 so the loop wins the CPU (Linux)";

    /// The largest request head (request line and headers); larger heads get 431 (414 if the
    /// request line alone is too long). It also bounds a chunked body's trailers and how far
    /// the server reads ahead into pipelined requests.
    "max-head-bytes" => max_head_bytes: usize [bytes] = "16KiB",
        "largest request head (request line + headers); 431 beyond", check at_least(64);

    /// The most header fields a request may have (431 beyond); also the most trailer fields.
    "max-headers" => max_headers: usize [count] = "100",
        "most header fields in a request; 431 beyond", check at_least(1);

    /// The largest request body (413 beyond) for routes without their own limit, decided from
    /// `Content-Length` before reading any of it, or as chunk sizes arrive.
    "max-body-bytes" => max_body_bytes: usize [bytes] = "1MiB",
        "largest request body, unless a route sets its own; 413 beyond";

    /// The most bytes of request bodies held at once, across all connections. A request whose
    /// body would go past it is answered 503 (with `Retry-After`) and its connection closed,
    /// so many slow uploads cannot exhaust memory together. It should be at least the largest
    /// body limit.
    "max-body-memory" => max_body_memory: usize [bytes] = "64MiB",
        "request bodies held at once across all connections; 503 beyond", check at_least(1);

    /// The time allowed for a whole request head, from its first byte (one deadline, not per
    /// line); 408 after. A new connection must also send its first byte within it.
    "header-timeout" => header_timeout: Duration [duration] = "10s",
        "time for a whole request head; 408 after", check above_zero;

    /// The longest pause while reading a request body (per read, so a slow but steady upload
    /// finishes); 408 after.
    "body-timeout" => body_timeout: Duration [duration] = "10s",
        "longest pause inside a request body; 408 after", check above_zero;

    /// How long an idle keep-alive connection stays open between requests; it is closed
    /// silently after.
    "keep-alive-timeout" => keep_alive_timeout: Duration [duration] = "5s",
        "how long a connection may sit idle between requests", check above_zero;

    /// How long a response write (or a streamed body's next chunk) may make no progress before
    /// the connection is closed.
    "write-timeout" => write_timeout: Duration [duration] = "10s",
        "longest a response write may make no progress", check above_zero;

    /// The most open connections; more are answered 503 and closed at once. With the
    /// `tiny_http` front end it caps requests in flight rather than connections.
    "max-connections" => max_connections: usize [count] = "1024",
        "most open connections; more get 503 and are closed at once", check at_least(1);

    /// How long a graceful shutdown waits for in-flight requests before closing their
    /// connections.
    "drain-timeout" => drain_timeout: Duration [duration] = "10s",
        "how long a graceful shutdown waits for in-flight requests";

    /// How long a graceful shutdown keeps accepting and serving before it stops accepting:
    /// readiness answers 503 at once and every response carries `Connection: close`, so a load
    /// balancer stops sending here before the port closes. Above 0, idle keep-alive
    /// connections are not closed early (each closes after its next request or at the
    /// keep-alive timeout), so a proxy never sends on a connection being closed, provided its
    /// upstream idle timeout is below `keep-alive-timeout`. 0 suits a bare process.
    "drain-delay" => drain_delay: Duration [duration] = "0s",
        "after SIGTERM, keep serving with Connection: close this long";

    /// With a systemd watchdog (`WATCHDOG_USEC`), how long every worker of a pool class may be
    /// wedged (stuck in a job past `job-wedge-limit`) before the watchdog stops being pinged,
    /// so the supervisor restarts the process.
    "watchdog-wedge-timeout" => watchdog_wedge_timeout: Duration [duration] = "60s",
        "systemd watchdog stops once a pool class is wedged this long";

    /// How long one poll on the loop may run before it is reported as a stall.
    "stall-threshold" => stall_threshold: Duration [duration] = "100ms",
        "a single poll on the loop longer than this is a stall", check above_zero;

    /// The loop lag above which the readiness endpoint answers 503.
    "ready-max-lag" => ready_max_lag: Duration [duration] = "250ms",
        "readiness answers 503 while recent loop lag is above this";

    /// How full (0–1) a pool class's queue may get before the readiness endpoint answers 503.
    "ready-queue-ratio" => ready_queue_ratio: f64 [ratio] = "0.8",
        "readiness answers 503 while a pool queue is this full (0-1)", check within_0_and_1;

    /// Whether one line per request is logged (target `steadyloop::access`, level info):
    /// method, path, status, body bytes, handler time and pool queue wait.
    "access-log" => access_log: bool [switch] = "false",
        "log one line per request";

    /// Whether the loop measures its lag and a watchdog thread reports stalls as they happen.
    /// Turning it off saves two clock reads per task poll and one thread.
    "loop-monitor" => loop_monitor: bool [switch] = "true",
        "measure loop lag and run the stall watchdog thread";

    /// The HTTP front end. [`Frontend::TinyHttp`] needs the `tiny_http` cargo feature
    /// (building the server fails with [`Error::Config`] without it).
    "frontend" => frontend: Frontend [frontend] = "native",
        "HTTP front end: native or tiny_http", check compiled_in;
}

/// One row of the settings table, as [`SETTINGS`] lists it (for `--help` and documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Setting {
    /// The setting's name, in kebab case: the key of [`Config::set`] and the flag without `--`.
    pub name: &'static str,
    /// The default, in the text form the setting accepts (`5s`, `16KiB`), or a description
    /// where it depends on the machine (`number of cores`).
    pub default: &'static str,
    /// What the value is: its unit or form (`a duration (…)`, `in bytes (…)`).
    pub unit: &'static str,
    /// One line saying what the setting controls.
    pub meaning: &'static str,
}

impl Setting {
    /// Returns the setting called `name`, if there is one.
    pub fn named(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|setting| setting.name == name)
    }

    /// Returns the environment variable that sets it: `STEADYLOOP_` and the name in upper
    /// snake case (`STEADYLOOP_KEEP_ALIVE_TIMEOUT`).
    pub fn env_var(&self) -> String {
        format!(
            "{}{}",
            sources::ENV_PREFIX,
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Returns its flag: `--` and the name (`--keep-alive-timeout`).
    pub fn flag(&self) -> String {
        format!("--{}", self.name)
    }
}

impl Config {
    /// Applies one setting given as text, as in `--workers 4` or `STEADYLOOP_WORKERS=4`.
    ///
    /// `key` is a name from [`SETTINGS`]; durations accept `ms`, `s` or `m` suffixes (a bare
    /// number is seconds); sizes are bytes, optionally with `KiB`, `MiB` or `GiB`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = steadyloop::Config::default();
    /// config.set("workers", "3").unwrap();
    /// config.set("keep-alive-timeout", "500ms").unwrap();
    /// config.set("max-body-bytes", "2MiB").unwrap();
    /// assert_eq!(config.pool.workers, 3);
    /// assert_eq!(config.max_body_bytes, 2 * 1024 * 1024);
    /// assert!(config.set("workers", "many").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] for an unknown key or a value that does not parse; the message
    /// starts with the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.apply_text(key, key, value)
    }

    /// Checks that the settings make sense: each setting's check from the table, and the
    /// default pool class.
    pub(crate) fn validate(&self) -> Result<()> {
        self.pool.validate("default")?;
        self.check_each()
    }
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

    /// Sets how long a job may run before it is reported as wedged. Defaults to 60 s.
    pub fn job_wedge_limit(mut self, limit: Duration) -> ClassConfig {
        self.job_wedge_limit = limit;
        self
    }
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
    fn from_str(text: &str) -> Result<Frontend> {
        value::frontend::parse(text)
            .map_err(|message| Error::Config(format!("frontend: {message}")))
    }
}

/// Returns the number of cores available to this process (at least 1).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_listed() {
        // The README, `--help` and the flags all follow this list: a change here is visible.
        let keys = [
            "addr",
            "workers",
            "queue",
            "queue-timeout",
            "job-wedge-limit",
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
            "drain-delay",
            "watchdog-wedge-timeout",
            "stall-threshold",
            "ready-max-lag",
            "ready-queue-ratio",
            "access-log",
            "loop-monitor",
            "frontend",
        ];
        let listed: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        assert_eq!(listed, keys);
    }

    #[test]
    fn every_default_text_gives_the_default() {
        // Rows with a default expression must still describe it truly: parsing the text gives
        // the value `Default` uses (except where it depends on the machine).
        for setting in SETTINGS {
            let mut config = Config::default();
            match config.set(setting.name, setting.default) {
                Ok(()) => assert_eq!(config, Config::default(), "{}", setting.name),
                Err(err) => assert_eq!(setting.name, "workers", "{err}"),
            }
        }
        assert_eq!(Config::default().pool.workers, cores());
        assert_eq!(Config::default().max_head_bytes, 16 * 1024);
        assert_eq!(Config::default().keep_alive_timeout, Duration::from_secs(5));
        assert_eq!(ClassConfig::default().queue, DEFAULT_QUEUE);
    }

    #[test]
    fn every_listed_setting_is_accepted() {
        for setting in SETTINGS {
            let value = match setting.name {
                "addr" => "127.0.0.1:0",
                "low-priority-workers" | "access-log" | "loop-monitor" => "false",
                "ready-queue-ratio" => "0.5",
                "frontend" => "tiny_http",
                _ if setting.unit.starts_with("a duration") => "3s",
                _ => "77",
            };
            Config::default().set(setting.name, value).unwrap();
        }
        assert!(Config::default().set("nope", "1").is_err());
    }

    #[test]
    fn names_and_environment_variables_follow_the_fields() {
        let config = Config::default();
        let debug = format!("{config:?}");
        for setting in SETTINGS {
            let field = setting.name.replace('-', "_");
            assert!(debug.contains(&format!("{field}: ")), "no field {field}");
            assert!(setting.env_var().starts_with("STEADYLOOP_"));
            assert!(!setting.meaning.is_empty() && !setting.unit.is_empty());
        }
        let head = Setting::named("max-head-bytes").unwrap();
        assert_eq!(head.env_var(), "STEADYLOOP_MAX_HEAD_BYTES");
        assert_eq!(head.flag(), "--max-head-bytes");
        assert!(Setting::named("max_head_bytes").is_none());
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

    #[test]
    fn validate_names_the_setting_and_the_class() {
        let mut config = Config {
            max_head_bytes: 10,
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max-head-bytes must be at least 64"), "{err}");
        config.max_head_bytes = 64;
        config.ready_queue_ratio = 2.0;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("ready-queue-ratio must be from 0 to 1"),
            "{err}"
        );
        let class = ClassConfig::new(1, 1).queue_timeout(Duration::ZERO);
        let err = class.validate("reports").unwrap_err().to_string();
        assert!(
            err.contains("pool class `reports`: queue-timeout must be above 0"),
            "{err}"
        );
    }
}
