//! The steadyloop demo service: `cargo run --release` serves it on 127.0.0.1:8080.
//!
//! Settings come from flags (`--workers 4`) and `STEADYLOOP_*` environment variables
//! (`STEADYLOOP_WORKERS=4`); flags win. `--help` lists them all. SIGTERM or SIGINT (Ctrl-C)
//! shuts down gracefully; a second one stops at once.

mod demo;

use std::process::ExitCode;

use steadyloop::{Config, Server, SETTINGS};

fn main() -> ExitCode {
    let level = ["STEADYLOOP_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .map_or(Some(log::LevelFilter::Info), |text| {
            demo::logger::parse_level(&text)
        });
    let Some(level) = level else {
        eprintln!("steadyloop: STEADYLOOP_LOG must be one of off, error, warn, info, debug, trace");
        return ExitCode::from(2);
    };
    let _ = demo::logger::install(level);
    let config = match configure(std::env::args().skip(1).collect(), std::env::vars()) {
        Ok(Some(config)) => config,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("steadyloop: {message}\nTry `steadyloop --help`.");
            return ExitCode::from(2);
        }
    };
    // SIGTERM or Ctrl-C: finish in-flight requests and exit 0; a second one exits at once.
    let server = match Server::builder()
        .config(config)
        .handle_signals(true)
        .build(demo::app())
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("steadyloop: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "steadyloop demo listening on http://{}",
        server.local_addr()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("steadyloop: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the configuration from environment variables, then flags; `None` after `--help`.
fn configure(
    args: Vec<String>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Option<Config>, String> {
    let mut config = Config::default();
    for (name, value) in vars {
        let Some(key) = name.strip_prefix("STEADYLOOP_") else {
            continue;
        };
        let key = key.to_ascii_lowercase().replace('_', "-");
        if SETTINGS.iter().any(|(k, _)| *k == key) {
            config
                .set(&key, &value)
                .map_err(|e| format!("{name}: {e}"))?;
        }
    }
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            print!("{}", help());
            return Ok(None);
        }
        if arg == "-V" || arg == "--version" {
            println!("steadyloop {}", env!("CARGO_PKG_VERSION"));
            return Ok(None);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (key, value) = match flag.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                (flag.to_string(), value)
            }
        };
        if !SETTINGS.iter().any(|(k, _)| *k == key) {
            return Err(format!("unknown flag --{key}"));
        }
        config.set(&key, &value).map_err(|e| e.to_string())?;
    }
    Ok(Some(config))
}

/// The `--help` text.
fn help() -> String {
    let mut text = String::from(
        "steadyloop demo service\n\nUsage: steadyloop [--SETTING VALUE]...\n\n\
         Every setting can also be given as STEADYLOOP_<SETTING> (upper case, '-' as '_');\n\
         flags win over the environment. STEADYLOOP_LOG (or RUST_LOG) sets the log level\n\
         (off, error, warn, info, debug, trace) [info].\n\nSettings [default]:\n",
    );
    for (key, description) in SETTINGS {
        text.push_str(&format!("  --{key:<22} {description}\n"));
    }
    text.push_str("\n  -h, --help                 show this help\n  -V, --version              show the version\n");
    text.push_str(
        "\nSIGTERM or SIGINT (Ctrl-C) stops accepting, finishes in-flight requests (up to\n\
         --drain-timeout) and exits 0; a second one exits at once.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_override_environment() {
        let config = configure(
            args(&["--workers", "3", "--queue=9"]),
            vars(&[
                ("STEADYLOOP_WORKERS", "7"),
                ("STEADYLOOP_ADDR", "0.0.0.0:1"),
                ("PATH", "x"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.pool.workers, 3);
        assert_eq!(config.pool.queue, 9);
        assert_eq!(config.addr, "0.0.0.0:1");
    }

    #[test]
    fn bad_input_is_reported() {
        assert!(configure(args(&["--workers"]), vars(&[])).is_err());
        assert!(configure(args(&["--nope", "1"]), vars(&[])).is_err());
        assert!(configure(args(&["stray"]), vars(&[])).is_err());
        assert!(configure(args(&[]), vars(&[("STEADYLOOP_QUEUE", "lots")])).is_err());
        assert!(configure(args(&["--keep-alive-timeout", "2s"]), vars(&[])).is_ok());
    }
}
