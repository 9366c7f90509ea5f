//! The server under test as a child process, so its memory and threads are its own; and the
//! `serve` mode the tools re-execute themselves in to run steadyloop's demo app.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use steadyloop::{Config, Router, Server};

use super::flags::Flags;
use super::procfs::ProcStatus;

/// Where the axum anchor's binary is when built with
/// `cargo build --release --manifest-path bench/anchors/axum/Cargo.toml`.
pub const AXUM_ANCHOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/bench/anchors/axum/target/release/axum-anchor"
);

/// How to start one server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in the results.
    pub name: String,
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments (`--addr 127.0.0.1:0` is added).
    pub args: Vec<String>,
}

impl Target {
    /// steadyloop's demo app: this very binary re-executed in `serve` mode with `settings`
    /// (`--key value` pairs from steadyloop's `SETTINGS`).
    pub fn steadyloop(name: &str, settings: &[String]) -> io::Result<Target> {
        let mut args = vec!["serve".to_string()];
        args.extend(settings.iter().cloned());
        Ok(Target {
            name: name.to_string(),
            program: std::env::current_exe()?,
            args,
        })
    }

    /// The axum anchor from `path`, or from [`AXUM_ANCHOR`].
    ///
    /// # Errors
    ///
    /// If the binary is missing, with the command that builds it.
    pub fn axum(name: &str, path: Option<String>) -> Result<Target, String> {
        let program = PathBuf::from(path.unwrap_or_else(|| AXUM_ANCHOR.to_string()));
        if !program.exists() {
            return Err(format!(
                "{} not found; build it with \
                 `cargo build --release --manifest-path bench/anchors/axum/Cargo.toml`",
                program.display()
            ));
        }
        Ok(Target {
            name: name.to_string(),
            program,
            args: Vec::new(),
        })
    }

    /// Any server binary that takes `--addr` and prints `http://ADDR` on its first stdout line.
    pub fn binary(name: &str, path: &str) -> Target {
        Target {
            name: name.to_string(),
            program: PathBuf::from(path),
            args: Vec::new(),
        }
    }
}

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// The child.
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
    /// From spawning the process to reading its "listening on" line.
    pub startup: Duration,
}

impl ServerProcess {
    /// Starts `target` on a free port and waits until it says where it listens.
    ///
    /// # Errors
    ///
    /// If the process cannot start or does not print an address.
    pub fn start(target: &Target) -> io::Result<ServerProcess> {
        let start = Instant::now();
        let mut child = Command::new(&target.program)
            .args(&target.args)
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", target.program.display())))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let startup = start.elapsed();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "{} printed {line:?}, not its address",
                target.name
            )));
        };
        // Keep draining stdout so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || io::copy(&mut stdout, &mut io::sink()));
        Ok(ServerProcess {
            child,
            addr,
            startup,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's memory and thread count now.
    pub fn status(&self) -> io::Result<ProcStatus> {
        ProcStatus::read(self.pid())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `serve` mode: runs `app` with settings from `args` (`--key value` or `--key=value`, keys
/// from steadyloop's `SETTINGS`), printing `listening on http://ADDR` once bound.
///
/// # Errors
///
/// For a bad setting, a failed bind, or a server error.
pub fn serve(args: &[String], app: Router) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    let flags = Flags::parse(args)?.ok_or("serve: --help is not a setting")?;
    for (key, value) in flags.into_pairs() {
        config.set(&key, &value)?;
    }
    let server = Server::builder().config(config).build(app)?;
    println!("listening on http://{}", server.local_addr());
    io::stdout().flush()?;
    Ok(server.run()?)
}
