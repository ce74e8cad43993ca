//! Running external commands, and the few facts about the workspace and the machine that
//! several commands need.
//!
//! Every command xtask runs on the user's behalf is printed first (`$ cmd args`, with any
//! environment overrides in front) so it can be repeated by hand; its output is streamed,
//! not captured. Probes (`dpkg-query`, `--version` checks) run quietly through
//! [`Cmd::probe`].

use std::{
    ffi::{OsStr, OsString},
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Prints one line of xtask's own progress output (to stderr, like cargo's).
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("xtask: {}", format_args!($($arg)*))
    };
}
pub(crate) use say;

/// An external command: a thin wrapper around [`Command`] that remembers how to print
/// itself.
pub struct Cmd {
    inner: Command,
    /// The program as shown (`cargo` stands for `$CARGO`).
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl Cmd {
    /// A command running `program`, from the workspace root.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let mut inner = Command::new(program.as_ref());
        inner.current_dir(workspace_root());
        Self {
            inner,
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// `cargo`, the same one that runs xtask (`$CARGO`), so nested builds use the same
    /// toolchain. Shown as plain `cargo`.
    pub fn cargo() -> Self {
        let mut cmd = Self::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.program = "cargo".into();
        cmd
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.inner.arg(arg.as_ref());
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key.as_ref(), value.as_ref());
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Gives the command no stdin, so nothing can stop to ask a question (CI has none).
    pub fn no_stdin(mut self) -> Self {
        self.inner.stdin(Stdio::null());
        self
    }

    /// Prints the command, runs it with inherited stdout/stderr and fails unless it
    /// exits successfully.
    pub fn run(self) -> Result<()> {
        let shown = self.to_string();
        let status = self.status()?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        Ok(())
    }

    /// Prints the command, runs it with inherited stdout/stderr and returns its exit
    /// status, whatever it is (only failing to start it is an error).
    pub fn status(mut self) -> Result<ExitStatus> {
        say!("$ {self}");
        self.inner
            .status()
            .with_context(|| format!("could not start `{}`", self.program.to_string_lossy()))
    }

    /// Prints the command and runs it, passing each line of its stdout to `on_line`
    /// after echoing it; stderr is inherited. Returns the exit status.
    pub fn status_with_stdout_lines(mut self, mut on_line: impl FnMut(&str)) -> Result<ExitStatus> {
        say!("$ {self}");
        let mut child = self
            .inner
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`", self.program.to_string_lossy()))?;
        let stdout = child.stdout.take().context("child stdout was not piped")?;
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading the command's output")?;
            // A closed stdout (e.g. `| head`) must not stop us from reaping the child.
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            on_line(&line);
        }
        drop(out);
        child.wait().context("waiting for the command")
    }

    /// Runs the command silently (stdin and stderr discarded) and returns its stdout if
    /// it exited successfully; `None` if it failed or could not be started.
    pub fn probe(mut self) -> Option<String> {
        let output = self
            .inner
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = String::new();
        for (key, value) in &self.envs {
            let _ = write!(line, "{}={} ", key.to_string_lossy(), quote(value));
        }
        line.push_str(&quote(&self.program));
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        f.write_str(&line)
    }
}

/// Quotes `word` for display the way a shell would need it (single quotes when it holds
/// anything beyond a conservative set of characters).
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest directory has a parent")
}

/// Cargo's target directory for this workspace: `$CARGO_TARGET_DIR` (relative to the
/// workspace root, where xtask runs cargo) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Cargo's home (`$CARGO_HOME`, else `$HOME/.cargo`), where `cargo install` puts binaries.
pub fn cargo_home() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_HOME").filter(|d| !d.is_empty()) {
        return Ok(dir.into());
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Whether this process runs as root (effective uid 0), read from `/proc/self/status`.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
        == Some(0)
}

/// The effective uid from the text of `/proc/<pid>/status` (`Uid: real effective ...`).
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_number() {
        let status = "Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Name:\tcat\n"), None);
    }

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "it's",
                "a b",
                "-o",
                "Dpkg::Options::=--force-confold",
            ]);
        assert_eq!(
            cmd.to_string(),
            r"DEBIAN_FRONTEND=noninteractive apt-get install -y 'it'\''s' 'a b' -o Dpkg::Options::=--force-confold"
        );
    }

    #[test]
    fn probe_reports_success_and_failure() {
        assert_eq!(
            Cmd::new("sh").args(["-c", "echo hi"]).probe().as_deref(),
            Some("hi\n")
        );
        assert_eq!(Cmd::new("sh").args(["-c", "exit 3"]).probe(), None);
        assert_eq!(Cmd::new("/nonexistent/program").probe(), None);
    }
}
