//! The reference tenant controller: os-ken (from PyPI, in the venv `cargo xtask setup`
//! makes) running the repository's learning switch (`controller/
//! lime_learning_switch.py`), started as a child process that listens for LIME on
//! loopback. Used by the demo and by the end-to-end tests; the process is ours, and is
//! killed and reaped when the [`OsKen`] is dropped.
//!
//! Where things are found: the venv in `$LIME_VENV`, else `target/lime-venv` of the
//! source tree this binary was built from, else `lime-venv` beside the running binary's
//! directory (`target/release/lime` → `target/lime-venv`); the application in
//! `$LIME_CONTROLLER_APP`, else the source tree's `controller/`.
use std::{
    ffi::OsString,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Why the controller could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OsKenError {
    /// `osken-manager` is not where the venv should be.
    #[error("{0} is missing: run `cargo xtask setup` (it makes the controller's venv)")]
    Missing(PathBuf),
    /// The process could not be spawned, or its log not created.
    #[error("starting {what}: {source}")]
    Spawn {
        /// What was being started or created.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// It started but never listened.
    #[error("os-ken did not listen on 127.0.0.1:{port} within {secs} s; its log ({log}):\n{tail}")]
    NotListening {
        /// Port it should listen on.
        port: u16,
        /// Seconds waited.
        secs: u64,
        /// Log file.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// It exited before listening.
    #[error("os-ken exited ({status}) before listening; its log ({log}):\n{tail}")]
    Exited {
        /// Exit status.
        status: std::process::ExitStatus,
        /// Log file.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
}

/// The source tree this crate was built from.
fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// The controller venv (see the module docs for the search order).
#[must_use]
pub fn venv_dir() -> PathBuf {
    if let Some(v) = std::env::var_os("LIME_VENV") {
        return PathBuf::from(v);
    }
    let built = source_tree().join("target/lime-venv");
    if built.exists() {
        return built;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("lime-venv")))
        .unwrap_or(built)
}

/// The learning-switch application (see the module docs).
#[must_use]
pub fn learning_switch_app() -> PathBuf {
    std::env::var_os("LIME_CONTROLLER_APP").map_or_else(
        || source_tree().join("controller/lime_learning_switch.py"),
        PathBuf::from,
    )
}

/// How to start the controller.
#[derive(Debug, Clone)]
pub struct OsKenOptions {
    /// TCP port to listen on (loopback).
    pub port: u16,
    /// The os-ken application to run.
    pub app: PathBuf,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Extra environment (e.g. the learning switch's `LIME_STATS_FILE`,
    /// `LIME_STATS_INTERVAL`).
    pub env: Vec<(OsString, OsString)>,
    /// How long to wait for it to listen.
    pub timeout: Duration,
}

impl OsKenOptions {
    /// The learning switch on `port`, logging to `log`, no extra environment, 30 s to
    /// come up.
    #[must_use]
    pub fn learning_switch(port: u16, log: &Path) -> Self {
        Self {
            port,
            app: learning_switch_app(),
            log: log.to_owned(),
            env: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Add an environment variable.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running os-ken controller (killed and reaped on drop).
#[derive(Debug)]
pub struct OsKen {
    child: Child,
    log: PathBuf,
    port: u16,
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl OsKen {
    /// Start `osken-manager` with `opts` and wait until it listens.
    ///
    /// # Errors
    /// [`OsKenError`]: no venv, spawn failure, exit or silence before listening.
    pub fn start(opts: &OsKenOptions) -> Result<Self, OsKenError> {
        let manager = venv_dir().join("bin/osken-manager");
        if !manager.exists() {
            return Err(OsKenError::Missing(manager));
        }
        let spawn_err = |what: String| move |source| OsKenError::Spawn { what, source };
        let out = std::fs::File::create(&opts.log)
            .map_err(spawn_err(format!("log {}", opts.log.display())))?;
        let err = out
            .try_clone()
            .map_err(spawn_err(format!("log {}", opts.log.display())))?;
        let child = Command::new(&manager)
            .args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
            .arg(opts.port.to_string())
            .arg(&opts.app)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .map_err(spawn_err(manager.display().to_string()))?;
        let mut k = Self {
            child,
            log: opts.log.clone(),
            port: opts.port,
        };
        let deadline = Instant::now() + opts.timeout;
        while TcpStream::connect(("127.0.0.1", opts.port)).is_err() {
            if let Ok(Some(status)) = k.child.try_wait() {
                return Err(OsKenError::Exited {
                    status,
                    log: k.log.clone(),
                    tail: tail(&k.log, 20),
                });
            }
            if Instant::now() >= deadline {
                return Err(OsKenError::NotListening {
                    port: opts.port,
                    secs: opts.timeout.as_secs(),
                    log: k.log.clone(),
                    tail: tail(&k.log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(k)
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OsKen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
