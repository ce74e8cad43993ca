//! The real `lime` binary, for tests of the user's view: `lime run` as a child process
//! ([`Daemon`]), the client subcommands ([`lime`]), and a [`Cleanup`] guard that removes
//! the lab, its pins, its journal and its control socket whatever happens.
//!
//! The binary is `target/<profile>/lime`, found next to the running test's own
//! directory (`cargo build` — and so `cargo xtask test` — builds it; `LIME_BIN`
//! overrides), since `CARGO_BIN_EXE_lime` only exists for tests of the package that
//! has the binary.
use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use lime_userspace::migration::journal;
use serde_json::Value;

/// The `lime` binary under test.
///
/// # Panics
/// It is not built.
#[must_use]
pub fn lime_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LIME_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<test>-<hash> → target/<profile>/lime
    let exe = std::env::current_exe().expect("the test's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("lime");
    assert!(
        bin.exists(),
        "the `lime` binary is not built: run `cargo build -p lime-userspace --bin lime` \
         (looked for {})",
        bin.display()
    );
    bin
}

/// Run `lime args…` to completion.
///
/// # Panics
/// The binary cannot be started.
#[must_use]
pub fn lime(args: &[&str]) -> Output {
    Command::new(lime_bin())
        .args(args)
        .output()
        .expect("running lime")
}

/// A command's status and output, for assertion messages.
#[must_use]
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `lime status --lab <lab> --json`, parsed.
///
/// # Panics
/// The command fails or prints no JSON.
#[must_use]
pub fn status(lab: &str) -> Value {
    let o = lime(&["status", "--lab", lab, "--json"]);
    assert!(o.status.success(), "lime status: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

/// Removes a lab, its pins, its journal, its saved state and its control socket when
/// created and when dropped (also when a test panics), plus a scratch directory for
/// the test's files.
pub struct Cleanup {
    /// The lab.
    pub lab: String,
    /// Scratch directory (topology files, daemon logs).
    pub dir: PathBuf,
    /// The daemon's bpffs pin root.
    pub pin_root: PathBuf,
}

impl Cleanup {
    /// Wipe what a previous run of lab `lab` may have left, and make the scratch dir.
    ///
    /// # Panics
    /// The scratch directory cannot be made.
    #[must_use]
    pub fn new(lab: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lime-{lab}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let c = Self {
            lab: lab.to_owned(),
            dir,
            pin_root: crate::fabric_pin_root(),
        };
        c.wipe();
        c
    }

    /// Write `text` into the scratch directory as `name`; its path.
    ///
    /// # Panics
    /// The file cannot be written.
    #[must_use]
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("writing a test file");
        p
    }

    /// Remove the lab and everything it left behind.
    pub fn wipe(&self) {
        let lab = self.lab.as_str();
        let _ = lime_lab::Lab::down_by_name(lab);
        let _ = std::fs::remove_dir_all(self.pin_root.join(lab));
        let _ = std::fs::remove_file(journal::path_for(lab));
        let _ = std::fs::remove_dir(lime_lab::LabState::default_dir(lab));
        let _ = std::fs::remove_file(lime_userspace::ofswitch::control::socket_path(lab));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.wipe();
        let _ = std::fs::remove_dir(&self.pin_root);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `lime run` child process (killed when dropped, if still running).
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Start `lime run` on `topo` (optionally with the journal's fault injection set
    /// to `fault`; `n` numbers its log file) and wait until its control socket answers
    /// and any migration it resumes is over.
    ///
    /// # Panics
    /// It cannot be started, exits early, or is not ready within a minute.
    #[must_use]
    pub fn start(c: &Cleanup, topo: &Path, fault: Option<&str>, n: u32) -> Self {
        let log = c.dir.join(format!("daemon-{n}.log"));
        let out = std::fs::File::create(&log).expect("log");
        let mut cmd = Command::new(lime_bin());
        cmd.args(["run", "--echo-interval", "1", "--topology"])
            .arg(topo)
            .arg("--pin-root")
            .arg(&c.pin_root)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .env_remove(journal::FAULT_ENV);
        if let Some(f) = fault {
            cmd.env(journal::FAULT_ENV, f);
        }
        let child = cmd.spawn().expect("spawning lime run");
        let mut d = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = d.child.try_wait().expect("wait") {
                panic!("lime run exited early ({st}):\n{}", d.log());
            }
            let o = lime(&["status", "--lab", &c.lab, "--json"]);
            if o.status.success() {
                let v: Value = serde_json::from_slice(&o.stdout).expect("status JSON");
                if v.get("migration").is_none_or(Value::is_null) {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "lime run not ready:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What it printed so far.
    #[must_use]
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait up to `timeout` for it to exit.
    ///
    /// # Panics
    /// Waiting fails.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, and wait for the clean teardown.
    ///
    /// # Panics
    /// It does not stop within 30 s.
    #[must_use]
    pub fn stop(mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill has no memory preconditions; pid is our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let st = self.wait(Duration::from_secs(30));
        st.unwrap_or_else(|| panic!("lime run did not stop:\n{}", self.log()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
