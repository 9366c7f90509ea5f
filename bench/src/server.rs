//! The server under test as a child process, so its memory and threads are its own: steadyloop's
//! demo binary (`target/release/steadyloop`, the service `cargo run --release` starts) or the
//! axum anchor.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::ProcStatus;

/// Where the axum anchor's binary is when built with
/// `cargo build --release --manifest-path bench/anchors/axum/Cargo.toml`.
pub const AXUM_ANCHOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/anchors/axum/target/release/axum-anchor"
);

/// The environment variable that names the demo binary, when no `--bin` flag does.
pub const DEMO_ENV: &str = "STEADYLOOP_DEMO_BIN";

/// The demo binary to run: `flag` if given, else `$STEADYLOOP_DEMO_BIN`, else `steadyloop` next
/// to this tool's own executable (both land in `target/release/` with
/// `cargo build --release --workspace`).
///
/// # Errors
///
/// If the binary is missing, with the command that builds it.
pub fn demo_binary(flag: Option<String>) -> Result<PathBuf, String> {
    let program = match flag.or_else(|| std::env::var(DEMO_ENV).ok()) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this tool's own path: {e}"))?
            .with_file_name("steadyloop"),
    };
    if !program.exists() {
        return Err(format!(
            "demo binary {} not found; build it with `cargo build --release` at the repository \
             root, or name it with --bin PATH or {DEMO_ENV}",
            program.display()
        ));
    }
    Ok(program)
}

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
    /// steadyloop's demo binary at `program`, started with `settings` (`--key value` flags, the
    /// demo's own; `steadyloop --help` lists them).
    pub fn steadyloop(name: &str, program: PathBuf, settings: &[String]) -> Target {
        Target {
            name: name.to_string(),
            program,
            args: settings.to_vec(),
        }
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
