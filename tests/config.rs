//! Settings as users give them: the README's table, `STEADYLOOP_*` variables and flags read by
//! the library, and the demo binary configured from its environment.

mod common;

use std::process::Command;

use steadyloop::{Config, Router, Server, SETTINGS};

/// The README's configuration table: the lines between its marker comments.
fn readme_table() -> Vec<&'static str> {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- settings:start -->\n")
        .expect("README has `<!-- settings:start -->`")
        + "<!-- settings:start -->\n".len();
    let end = readme[start..]
        .find("<!-- settings:end -->")
        .expect("README has `<!-- settings:end -->` after the start marker")
        + start;
    readme[start..end].lines().collect()
}

/// Splits a table row `| a | b | c | d |` into its four cells.
fn cells(row: &str) -> Vec<&str> {
    let inner = row
        .strip_prefix("| ")
        .and_then(|row| row.strip_suffix(" |"))
        .unwrap_or_else(|| panic!("row must start with `| ` and end with ` |`: {row:?}"));
    let cells: Vec<&str> = inner.split(" | ").collect();
    assert_eq!(cells.len(), 4, "row must have 4 cells: {row:?}");
    cells
}

#[test]
fn readme_lists_exactly_the_settings_with_their_defaults() {
    let table = readme_table();
    assert_eq!(
        table.get(..2),
        Some(
            &[
                "| setting | env variable | default | meaning |",
                "| --- | --- | --- | --- |"
            ][..]
        ),
        "the table starts with its header right after the start marker"
    );
    let rows = &table[2..];
    let expected: Vec<String> = SETTINGS
        .iter()
        .map(|s| {
            format!(
                "| `{}` | `{}` | `{}` | {} |",
                s.name,
                s.env_var(),
                s.default,
                s.meaning
            )
        })
        .collect();
    let hint = format!(
        "README rows must follow SETTINGS (the meaning may go on after its first words):\n{}",
        expected.join("\n")
    );
    assert_eq!(rows.len(), SETTINGS.len(), "{hint}");
    for (row, setting) in rows.iter().zip(SETTINGS) {
        let cells = cells(row);
        assert_eq!(cells[0], format!("`{}`", setting.name), "{hint}");
        assert_eq!(cells[1], format!("`{}`", setting.env_var()), "{hint}");
        assert_eq!(cells[2], format!("`{}`", setting.default), "{hint}");
        assert!(cells[3].starts_with(setting.meaning), "{row}\n{hint}");
    }
}

#[test]
fn a_server_configured_from_variables_enforces_them() {
    let mut config = Config::default();
    let unknown = config
        .apply_vars([
            ("STEADYLOOP_ADDR", "127.0.0.1:0"),
            ("STEADYLOOP_MAX_HEADERS", "3"),
        ])
        .unwrap();
    assert!(unknown.is_empty());
    let server = Server::builder()
        .config(config)
        .spawn(|| Router::new().get("/", |_req| async { "hi" }))
        .unwrap();
    let few = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let reply = common::exchange(server.local_addr(), few);
    assert_eq!(common::status_line(&reply), "HTTP/1.1 200 OK");
    let many = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n";
    let reply = common::exchange(server.local_addr(), many);
    assert!(
        common::status_line(&reply).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    server.shutdown().unwrap();
}

#[test]
fn flags_after_variables_win() {
    let mut config = Config::default();
    config
        .apply_vars([("STEADYLOOP_QUEUE", "5"), ("STEADYLOOP_WORKERS", "2")])
        .unwrap();
    let rest = config.apply_args(["--queue", "7", "serve"]).unwrap();
    assert_eq!((config.pool.workers, config.pool.queue), (2, 7));
    assert_eq!(rest, ["serve"]);
}

#[test]
fn the_demo_takes_settings_from_its_environment() {
    let (mut child, addr) = common::spawn_demo(&[], &[("STEADYLOOP_MAX_HEAD_BYTES", "64")], false);
    let long = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100)
    );
    let reply = common::exchange(addr, long.as_bytes());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        common::status_line(&reply).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn the_demo_names_the_variable_or_flag_with_a_bad_value() {
    let out = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .env("STEADYLOOP_WORKERS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("STEADYLOOP_WORKERS: expected a whole number, got \"many\""),
        "{message}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .args(["--keep-alive-timeout=soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("--keep-alive-timeout: expected a duration"),
        "{message}"
    );
}

#[test]
fn the_demo_help_shows_each_setting_with_its_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_steadyloop"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for setting in SETTINGS {
        let line = text
            .lines()
            .find(|line| {
                line.trim_start()
                    .starts_with(&format!("{} ", setting.flag()))
            })
            .unwrap_or_else(|| panic!("--help misses {}", setting.flag()));
        assert!(line.contains(setting.meaning), "{line}");
        assert!(line.ends_with(&format!("[{}]", setting.default)), "{line}");
    }
}
