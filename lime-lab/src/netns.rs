//! Kernel plumbing: named network namespaces, interfaces inside them, commands and
//! closures run inside them. Everything that touches the kernel goes through here
//! (mostly by running iproute2's `ip`, whose JSON output is parsed with serde), so the
//! rest of the crate is plain logic.
//!
//! Named namespaces are the ones `ip netns add` creates: a bind mount of the namespace
//! at `/run/netns/<name>` keeps it alive and lets any process enter it (ip-netns(8)).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

use crate::addr::MacAddr;
use crate::error::LabError;

/// Where iproute2 keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The bind-mount file of namespace `name`.
#[must_use]
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

pub(crate) fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run `cmd` to completion; fail with its command line and stderr unless it succeeds.
///
/// # Errors
/// [`LabError::Spawn`] if it cannot start, [`LabError::Command`] if it exits non-zero.
pub fn run_checked(cmd: &mut Command) -> Result<Output, LabError> {
    let command = command_line(cmd);
    let output = cmd.output().map_err(|source| LabError::Spawn {
        command: command.clone(),
        source,
    })?;
    succeeded(command, output)
}

/// `output` of `command` if it exited successfully, else [`LabError::Command`] with its
/// stderr.
fn succeeded(command: String, output: Output) -> Result<Output, LabError> {
    if !output.status.success() {
        return Err(LabError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output)
}

/// Run `ip ARGS…`, returning its stdout.
///
/// # Errors
/// As [`run_checked`].
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String, LabError> {
    let output = run_checked(Command::new("ip").args(args))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Run the `ip` commands `lines` (one per line, without the leading `ip`) in
/// namespace `netns` with one `ip -batch` process instead of one process each
/// (`-force`: a failing line does not stop the rest; the status still tells).
///
/// # Errors
/// As [`run_checked`]; also when `ip`'s standard input cannot be written.
pub fn ip_batch(netns: &str, lines: &[String]) -> Result<(), LabError> {
    use std::io::Write as _;
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-n", netns, "-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let command = command_line(&cmd);
    let spawn_err = |source| LabError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let mut input = lines.join("\n");
    input.push('\n');
    let written = child
        .stdin
        .take()
        .map_or(Ok(()), |mut stdin| stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(spawn_err)?;
    written.map_err(spawn_err)?;
    succeeded(command, output).map(drop)
}

/// A [`Command`] that runs `argv` inside namespace `netns` (`ip netns exec NETNS ARGV…`).
///
/// `ip netns exec` also mounts a fresh `/sys` for the command, so `/sys/class/net` shows
/// the namespace's interfaces.
#[must_use]
pub fn command_in<S: AsRef<OsStr>>(netns: &str, argv: &[S]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns]).args(argv);
    cmd
}

/// The named network namespaces (entries of [`NETNS_RUN_DIR`]), sorted.
///
/// # Errors
/// [`LabError::StateIo`] if the directory exists but cannot be read.
pub fn netns_list() -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LabError::StateIo {
                path: NETNS_RUN_DIR.into(),
                source,
            });
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LabError::StateIo {
            path: NETNS_RUN_DIR.into(),
            source,
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// True if the named namespace exists.
#[must_use]
pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Create a named namespace (`ip netns add`).
///
/// # Errors
/// As [`ip`]; in particular if it already exists.
pub fn netns_add(name: &str) -> Result<(), LabError> {
    ip(&["netns", "add", name]).map(drop)
}

/// Delete a named namespace (`ip netns del`). Its interfaces go with it once no process
/// is left inside it; a veth whose peer is elsewhere disappears on both sides.
///
/// # Errors
/// As [`ip`]; in particular if it does not exist.
pub fn netns_del(name: &str) -> Result<(), LabError> {
    ip(&["netns", "del", name]).map(drop)
}

/// One interface, as `ip -j link show` describes it (the fields the lab uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkInfo {
    /// Interface index, unique inside its namespace.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: String,
    /// MTU.
    pub mtu: u32,
    /// MAC address (`None` for interfaces without an Ethernet address).
    #[serde(default, deserialize_with = "lenient_mac")]
    pub address: Option<MacAddr>,
    /// Interface flags (`UP`, `LOWER_UP`, `BROADCAST`, …).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, `LOWERLAYERDOWN`).
    #[serde(default)]
    pub operstate: String,
}

/// `address` is not a MAC for every link type (tunnels show an IP address): keep only MACs.
fn lenient_mac<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<MacAddr>, D::Error> {
    let s: Option<String> = Option::deserialize(deserializer)?;
    Ok(s.and_then(|s| s.parse().ok()))
}

impl LinkInfo {
    /// True if administratively up.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

fn parse_json<'de, T: Deserialize<'de>>(command: &str, text: &'de str) -> Result<T, LabError> {
    serde_json::from_str(text).map_err(|source| LabError::Output {
        command: command.to_owned(),
        source,
    })
}

/// All interfaces of a namespace.
///
/// # Errors
/// As [`ip`], or [`LabError::Output`] if its JSON is not understood.
pub fn links(netns: &str) -> Result<Vec<LinkInfo>, LabError> {
    let out = ip(&["-n", netns, "-j", "link", "show"])?;
    parse_json(&format!("ip -n {netns} -j link show"), &out)
}

/// One interface of a namespace.
///
/// # Errors
/// [`LabError::InterfaceNotFound`] if there is none of that name, else as [`links`].
pub fn link(netns: &str, ifname: &str) -> Result<LinkInfo, LabError> {
    links(netns)?
        .into_iter()
        .find(|l| l.ifname == ifname)
        .ok_or_else(|| LabError::InterfaceNotFound {
            netns: netns.to_owned(),
            ifname: ifname.to_owned(),
        })
}

/// The ifindex of interface `ifname` in namespace `netns`.
///
/// # Errors
/// As [`link`].
pub fn ifindex(netns: &str, ifname: &str) -> Result<u32, LabError> {
    link(netns, ifname).map(|l| l.ifindex)
}

/// An address configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

#[derive(Deserialize)]
struct AddrShow {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: IpAddr,
    prefixlen: u8,
}

/// The neighbours (address, link-layer address) an interface has learned: entries
/// with a link-layer address that are not failed or incomplete.
///
/// # Errors
/// `ip neigh` fails or prints what is not JSON.
pub fn learned_neighbours(netns: &str, ifname: &str) -> Result<Vec<(String, String)>, LabError> {
    #[derive(Deserialize)]
    struct Neigh {
        dst: String,
        lladdr: Option<String>,
        #[serde(default)]
        state: Vec<String>,
    }
    let command = format!("ip -n {netns} -j neigh show dev {ifname}");
    let out = ip(&["-n", netns, "-j", "neigh", "show", "dev", ifname])?;
    let all: Vec<Neigh> = if out.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&out).map_err(|source| LabError::Output { command, source })?
    };
    Ok(all
        .into_iter()
        .filter(|n| {
            !n.state
                .iter()
                .any(|s| s == "FAILED" || s == "INCOMPLETE" || s == "NOARP")
        })
        .filter_map(|n| Some((n.dst, n.lladdr?)))
        .collect())
}

/// The IPv4 and IPv6 addresses of interface `ifname` in namespace `netns`.
///
/// # Errors
/// As [`ip`] (which fails for an unknown interface), or [`LabError::Output`].
pub fn addresses(netns: &str, ifname: &str) -> Result<Vec<IfAddr>, LabError> {
    let out = ip(&["-n", netns, "-j", "addr", "show", "dev", ifname])?;
    let shown: Vec<AddrShow> =
        parse_json(&format!("ip -n {netns} -j addr show dev {ifname}"), &out)?;
    Ok(shown
        .into_iter()
        .flat_map(|s| s.addr_info)
        .map(|a| IfAddr {
            addr: a.local,
            prefix_len: a.prefixlen,
        })
        .collect())
}

/// Enter network namespace `file` on the calling thread.
#[allow(unsafe_code, reason = "setns(2) has no safe wrapper in std or libc")]
fn setns_net(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open namespace file for the whole call; setns only reads the
    // descriptor and switches this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Run `f` on a fresh thread that has entered network namespace `netns` (opened from
/// [`NETNS_RUN_DIR`], `setns(2)` with `CLONE_NEWNET`), and return its result.
///
/// The network namespace is per thread, so the rest of the process is unaffected.
/// Sockets created and netlink requests made by `f` happen in `netns` (and sockets keep
/// their namespace after the thread ends); files under `/proc/sys/net` opened by `f`
/// are the namespace's sysctls. `/sys/class/net` still shows the namespace that mounted
/// `/sys` — use [`links`] or netlink instead.
///
/// A panic in `f` is resumed in the caller.
///
/// # Errors
/// [`LabError::Setns`] if the namespace cannot be opened or entered,
/// [`LabError::Thread`] if no thread can be started.
pub fn run_in_netns<F, T>(netns: &str, f: F) -> Result<T, LabError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let setns_err = |source| LabError::Setns {
        netns: netns.to_owned(),
        source,
    };
    if netns.is_empty() || netns.contains('/') || netns == "." || netns == ".." {
        return Err(setns_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a namespace name",
        )));
    }
    let file = File::open(netns_path(netns)).map_err(setns_err)?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("netns-{netns}"))
            .spawn_scoped(scope, move || {
                setns_net(&file)?;
                drop(file);
                Ok(f())
            })
            .map_err(|source| LabError::Thread { source })?;
        match handle.join() {
            Ok(result) => result.map_err(setns_err),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Set sysctl `key` (dotted, like `net.ipv6.conf.all.forwarding`) to `value` inside
/// namespace `netns`. Only `net.*` keys are per namespace.
///
/// # Errors
/// [`LabError::Sysctl`] if the write fails, or as [`run_in_netns`].
pub fn set_sysctl(netns: &str, key: &str, value: &str) -> Result<(), LabError> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    run_in_netns(netns, || std::fs::write(&path, value))?.map_err(|source| LabError::Sysctl {
        netns: netns.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Read sysctl `key` inside namespace `netns`, trimmed.
///
/// # Errors
/// [`LabError::Sysctl`] if the read fails, or as [`run_in_netns`].
pub fn get_sysctl(netns: &str, key: &str) -> Result<String, LabError> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    run_in_netns(netns, || std::fs::read_to_string(&path))?
        .map(|s| s.trim().to_owned())
        .map_err(|source| LabError::Sysctl {
            netns: netns.to_owned(),
            key: key.to_owned(),
            value: String::new(),
            source,
        })
}
