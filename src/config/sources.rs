//! Settings from outside the program: `STEADYLOOP_*` environment variables and `--flag value`
//! command-line arguments.
//!
//! Both go through the settings table, so every setting has a variable and a flag, and a bad
//! value is reported with the variable or flag it came from.

use std::ffi::OsString;

use super::{Config, Setting};
use crate::error::{Error, Result};

/// What every setting's environment variable starts with.
pub(crate) const ENV_PREFIX: &str = "STEADYLOOP_";

impl Config {
    /// Returns the defaults with the process's `STEADYLOOP_*` environment variables applied.
    ///
    /// Variables that name no setting are ignored; use [`Config::apply_env`] to learn them.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadyloop::Config::from_env()?;
    /// # let _ = config;
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Config::apply_vars`].
    pub fn from_env() -> Result<Config> {
        let mut config = Config::default();
        config.apply_env()?;
        Ok(config)
    }

    /// Applies the process's `STEADYLOOP_*` environment variables, as [`Config::apply_vars`]
    /// does for the pairs it is given.
    ///
    /// Variables whose name is not UTF-8 cannot be settings and are skipped.
    ///
    /// # Errors
    ///
    /// As [`Config::apply_vars`], and for a `STEADYLOOP_*` variable whose value is not UTF-8.
    pub fn apply_env(&mut self) -> Result<Vec<String>> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Ok(name) = name.into_string() else {
                continue;
            };
            if !name.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = value.into_string().map_err(|value: OsString| {
                Error::Config(format!("{name}: expected UTF-8 text, got {value:?}"))
            })?;
            vars.push((name, value));
        }
        self.apply_vars(vars)
    }

    /// Applies settings from environment-style `(name, value)` pairs: `STEADYLOOP_` and the
    /// setting's name in upper snake case (see [`Setting::env_var`]), as in
    /// `STEADYLOOP_KEEP_ALIVE_TIMEOUT=2s`. Pairs without the prefix are ignored.
    ///
    /// Returns the names of `STEADYLOOP_*` variables that name no setting, in the order given,
    /// so the caller can warn about a misspelt one (or read its own, like the demo's
    /// `STEADYLOOP_LOG`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut config = steadyloop::Config::default();
    /// let unknown = config.apply_vars([
    ///     ("STEADYLOOP_WORKERS", "3"),
    ///     ("STEADYLOOP_KEEP_ALIVE_TIMEOUT", "2s"),
    ///     ("STEADYLOOP_LOG", "debug"),
    ///     ("HOME", "/root"),
    /// ])?;
    /// assert_eq!(config.pool.workers, 3);
    /// assert_eq!(config.keep_alive_timeout, Duration::from_secs(2));
    /// assert_eq!(unknown, ["STEADYLOOP_LOG"]);
    ///
    /// let err = config.apply_vars([("STEADYLOOP_WORKERS", "many")]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid configuration: STEADYLOOP_WORKERS: expected a whole number, got \"many\""
    /// );
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a value that does not parse; the message starts with the
    /// variable's name. Settings applied before the bad one stay applied.
    pub fn apply_vars<I, K, V>(&mut self, vars: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut unknown = Vec::new();
        for (name, value) in vars {
            let name = name.as_ref();
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = rest.to_ascii_lowercase().replace('_', "-");
            match Setting::named(&key) {
                Some(setting) => self.apply_text(name, setting.name, value.as_ref())?,
                None => unknown.push(name.to_string()),
            }
        }
        Ok(unknown)
    }

    /// Applies settings given as command-line flags, `--NAME VALUE` or `--NAME=VALUE` with a
    /// name from [`SETTINGS`](crate::SETTINGS), and returns every other argument in order.
    ///
    /// What is returned is left to the caller: positional arguments, its own flags (`--help`),
    /// or flags that name no setting (a flag it does not know is returned on its own, and
    /// what follows it is read as the next argument). A lone `--` ends the settings: it and
    /// everything after it are returned as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = steadyloop::Config::default();
    /// let rest = config.apply_args(["--workers", "3", "--queue=9", "--help", "report.csv"])?;
    /// assert_eq!((config.pool.workers, config.pool.queue), (3, 9));
    /// assert_eq!(rest, ["--help", "report.csv"]);
    ///
    /// let err = config.apply_args(["--max-body-bytes", "lots"]).unwrap_err();
    /// assert!(err.to_string().contains("--max-body-bytes: expected a size in bytes"));
    /// # Ok::<(), steadyloop::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a setting's flag without a value or with one that does not
    /// parse; the message starts with the flag.
    pub fn apply_args<I, S>(&mut self, args: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut rest = Vec::new();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            if arg == "--" {
                rest.push(arg);
                rest.extend(args);
                break;
            }
            let Some((setting, inline)) = setting_flag(&arg) else {
                rest.push(arg);
                continue;
            };
            let flag = setting.flag();
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .ok_or_else(|| Error::Config(format!("{flag} needs a value")))?,
            };
            self.apply_text(&flag, setting.name, &value)?;
        }
        Ok(rest)
    }
}

/// Reads `arg` as a setting's flag: the setting, and the value if given as `--NAME=VALUE`.
fn setting_flag(arg: &str) -> Option<(&'static Setting, Option<String>)> {
    let flag = arg.strip_prefix("--")?;
    let (name, inline) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (flag, None),
    };
    Some((Setting::named(name)?, inline))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn variables_set_their_settings_and_others_are_returned() {
        let mut config = Config::default();
        let unknown = config
            .apply_vars([
                ("STEADYLOOP_MAX_HEAD_BYTES", "32KiB"),
                ("STEADYLOOP_ACCESS_LOG", "on"),
                ("STEADYLOOP_QUEUE_TIMEOUT", "250ms"),
                ("STEADYLOOP_WORKRES", "2"),
                ("PATH", "/bin"),
            ])
            .unwrap();
        assert_eq!(config.max_head_bytes, 32 * 1024);
        assert!(config.access_log);
        assert_eq!(config.pool.queue_timeout, Duration::from_millis(250));
        assert_eq!(unknown, ["STEADYLOOP_WORKRES"]);
    }

    #[test]
    fn a_bad_variable_is_named_in_the_error() {
        let err = Config::default()
            .apply_vars([("STEADYLOOP_READY_QUEUE_RATIO", "2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("STEADYLOOP_READY_QUEUE_RATIO: expected a number from 0 to 1"));
    }

    #[test]
    fn flags_take_a_value_inline_or_next() {
        let mut config = Config::default();
        let rest = config
            .apply_args([
                "x",
                "--addr=0.0.0.0:1",
                "--verbose",
                "--drain-timeout",
                "2m",
            ])
            .unwrap();
        assert_eq!(config.addr, "0.0.0.0:1");
        assert_eq!(config.drain_timeout, Duration::from_secs(120));
        assert_eq!(rest, ["x", "--verbose"]);
    }

    #[test]
    fn a_double_dash_ends_the_settings() {
        let mut config = Config::default();
        let rest = config
            .apply_args(["--queue", "3", "--", "--queue", "4"])
            .unwrap();
        assert_eq!(config.pool.queue, 3);
        assert_eq!(rest, ["--", "--queue", "4"]);
    }

    #[test]
    fn bad_flags_are_named_in_the_error() {
        let err = Config::default().apply_args(["--workers"]).unwrap_err();
        assert!(err.to_string().contains("--workers needs a value"), "{err}");
        let err = Config::default()
            .apply_args(["--loop-monitor=maybe"])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("--loop-monitor: expected true or false, got \"maybe\""),
            "{err}"
        );
    }
}
