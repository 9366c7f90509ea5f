//! Command-line flags of the form `--name value` or `--name=value`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// Flags not yet taken by the tool; anything left over at the end is an unknown flag.
#[derive(Debug, Default)]
pub struct Flags {
    /// Flag name (without `--`) to its value.
    values: BTreeMap<String, String>,
}

impl Flags {
    /// Parses `args`; `--help` or `-h` gives `Ok(None)`.
    pub fn parse(args: &[String]) -> Result<Option<Flags>, String> {
        let mut values = BTreeMap::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => {
                    let value = args.next().ok_or(format!("--{flag} needs a value"))?;
                    (flag.to_string(), value.clone())
                }
            };
            values.insert(name, value);
        }
        Ok(Some(Flags { values }))
    }

    /// Takes flag `name` parsed as `T`, or `default` if it was not given.
    pub fn take<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.values.remove(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name}: cannot parse {text:?}")),
        }
    }

    /// Takes flag `name` as text, if given.
    pub fn take_opt(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// Takes flag `name` as a duration in (possibly fractional) seconds.
    pub fn take_secs(&mut self, name: &str, default: f64) -> Result<Duration, String> {
        let secs: f64 = self.take(name, default)?;
        Duration::try_from_secs_f64(secs).map_err(|_| format!("--{name}: {secs} is not a duration"))
    }

    /// Returns every flag not yet taken, as (name, value) pairs in name order.
    pub fn into_pairs(self) -> impl Iterator<Item = (String, String)> {
        self.values.into_iter()
    }

    /// Fails if any flag was not taken.
    pub fn finish(self) -> Result<(), String> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(name) => Err(format!("unknown flag --{name} (try --help)")),
        }
    }
}
