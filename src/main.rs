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
    let layers = match std::env::var("STEADYLOOP_DEMO_LAYERS").as_deref() {
        Err(_) | Ok("on") => true,
        Ok("off") => false,
        Ok(_) => {
            eprintln!("steadyloop: STEADYLOOP_DEMO_LAYERS must be on or off");
            return ExitCode::from(2);
        }
    };
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
        .build(demo::app(layers))
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
    let unknown = config.apply_vars(vars).map_err(|e| e.to_string())?;
    for name in unknown
        .iter()
        .filter(|name| !OWN_VARS.contains(&name.as_str()))
    {
        log::warn!("{name} names no setting and is ignored (see --help)");
    }
    let rest = config.apply_args(args).map_err(|e| e.to_string())?;
    if let Some(arg) = rest.first() {
        match arg.as_str() {
            "-h" | "--help" => print!("{}", help()),
            "-V" | "--version" => println!("steadyloop {}", env!("CARGO_PKG_VERSION")),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
        return Ok(None);
    }
    Ok(Some(config))
}

/// `STEADYLOOP_*` variables the demo reads itself (not settings).
const OWN_VARS: &[&str] = &["STEADYLOOP_LOG", "STEADYLOOP_DEMO_LAYERS"];

/// The `--help` text, listing every setting of [`SETTINGS`].
fn help() -> String {
    let mut text = String::from(
        "steadyloop demo service\n\nUsage: steadyloop [--SETTING VALUE]...\n\n\
         Every setting can also be given as STEADYLOOP_<SETTING> (upper case, '-' as '_');\n\
         flags win over the environment. STEADYLOOP_LOG (or RUST_LOG) sets the log level\n\
         (off, error, warn, info, debug, trace) [info]. STEADYLOOP_DEMO_LAYERS=off serves the\n\
         routes without the request-id and gzip layers [on]. Durations take ms, s or m; sizes\n\
         are bytes, or KiB, MiB, GiB.\n\nSettings [default]:\n",
    );
    for setting in SETTINGS {
        text.push_str(&format!(
            "  --{:<22} {} [{}]\n",
            setting.name, setting.meaning, setting.default
        ));
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
    fn help_lists_every_setting_with_its_default() {
        let text = help();
        for setting in SETTINGS {
            let line = format!(
                "--{:<22} {} [{}]",
                setting.name, setting.meaning, setting.default
            );
            assert!(text.contains(&line), "--help misses {line:?}");
        }
    }

    #[test]
    fn bad_input_is_reported() {
        assert!(configure(args(&["--workers"]), vars(&[])).is_err());
        assert!(configure(args(&["--nope", "1"]), vars(&[])).is_err());
        assert!(configure(args(&["stray"]), vars(&[])).is_err());
        assert!(configure(args(&[]), vars(&[("STEADYLOOP_QUEUE", "lots")])).is_err());
        assert!(configure(args(&["--keep-alive-timeout", "2s"]), vars(&[])).is_ok());
        let err = configure(args(&[]), vars(&[("STEADYLOOP_WORKERS", "many")])).unwrap_err();
        assert!(
            err.contains("STEADYLOOP_WORKERS: expected a whole number"),
            "{err}"
        );
        let err = configure(args(&["--queue=lots"]), vars(&[])).unwrap_err();
        assert!(err.contains("--queue: expected a whole number"), "{err}");
    }
}
