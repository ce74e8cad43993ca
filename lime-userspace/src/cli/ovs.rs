//! Open vSwitch for the line-rate comparison: the bench starts its own ovsdb-server and
//! ovs-vswitchd (userspace datapath, `datapath_type=netdev`) with a private run
//! directory, inside a lab's switch namespace, and stops them again (Debian's packaged
//! services are never used: they do not start here without the kernel module).
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lime_userspace::flow::{Action, Masked, Rule};

/// A running ovsdb-server + ovs-vswitchd pair; stopped (and its run directory removed)
/// on drop.
pub struct Ovs {
    dir: PathBuf,
    db: Option<Child>,
    vswitchd: Option<Child>,
}

/// A MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Ovs {
    /// Start both daemons, ovs-vswitchd inside namespace `netns`.
    pub fn start(netns: &str, dir: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut this = Self {
            dir: dir.to_owned(),
            db: None,
            vswitchd: None,
        };
        let d = |f: &str| dir.join(f).display().to_string();
        let schema = "/usr/share/openvswitch/vswitch.ovsschema";
        let st = Command::new("ovsdb-tool")
            .args(["create", &d("conf.db"), schema])
            .status()
            .context("running ovsdb-tool (is openvswitch-switch installed? cargo xtask setup)")?;
        if !st.success() {
            bail!("ovsdb-tool create failed");
        }
        this.db = Some(
            this.env(&mut Command::new("ovsdb-server"))
                .arg(d("conf.db"))
                .arg(format!("--remote=punix:{}", d("db.sock")))
                .arg(format!("--unixctl={}", d("ovsdb-server.ctl")))
                .arg(format!("--log-file={}", d("ovsdb-server.log")))
                .arg("-vconsole:off")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting ovsdb-server")?,
        );
        this.wait_for(&d("db.sock"))?;
        this.vsctl(&["--no-wait", "init"])?;
        this.vswitchd = Some(
            this.env(&mut lime_lab::netns::command_in(netns, &["ovs-vswitchd"]))
                .arg(format!("unix:{}", d("db.sock")))
                .arg(format!("--unixctl={}", d("vswitchd.ctl")))
                .arg(format!("--log-file={}", d("vswitchd.log")))
                .arg("-vconsole:off")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting ovs-vswitchd")?,
        );
        this.wait_for(&d("vswitchd.ctl"))?;
        Ok(this)
    }

    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
    }

    fn wait_for(&mut self, path: &str) -> anyhow::Result<()> {
        let t = Instant::now();
        while !Path::new(path).exists() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!(
                    "Open vSwitch did not create {path} (see {})",
                    self.dir.display()
                );
            }
            for c in [&mut self.db, &mut self.vswitchd].into_iter().flatten() {
                if let Ok(Some(st)) = c.try_wait() {
                    bail!(
                        "an Open vSwitch daemon exited ({st}); logs in {}",
                        self.dir.display()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn run(&self, mut cmd: Command, what: &str) -> anyhow::Result<String> {
        let out = self
            .env(&mut cmd)
            .output()
            .with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ovs-vsctl` against this database.
    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = Command::new("ovs-vsctl");
        c.arg(format!("--db=unix:{}", self.dir.join("db.sock").display()))
            .args(args);
        self.run(c, &format!("ovs-vsctl {}", args.join(" ")))
    }

    /// `ovs-ofctl -O OpenFlow13` against bridge `br` of this ovs-vswitchd.
    pub fn ofctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = Command::new("ovs-ofctl");
        c.arg("-O").arg("OpenFlow13").args(args);
        self.run(c, &format!("ovs-ofctl {}", args.join(" ")))
    }

    /// Create bridge `br` (userspace datapath) with `ports` as `(ifname, ofport)`, of
    /// interface type `kind` (`afxdp` or `system`); waits until every port is up in the
    /// datapath.
    pub fn bridge(&self, br: &str, ports: &[(&str, u32)], kind: &str) -> anyhow::Result<()> {
        self.vsctl(&[
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            "datapath_type=netdev",
            "fail_mode=secure",
        ])?;
        for (ifname, ofport) in ports {
            self.vsctl(&[
                "add-port",
                br,
                ifname,
                "--",
                "set",
                "interface",
                ifname,
                &format!("type={kind}"),
                &format!("ofport_request={ofport}"),
            ])?;
        }
        let t = Instant::now();
        loop {
            let mut ok = true;
            let mut why = String::new();
            for (ifname, _) in ports {
                let e = self.vsctl(&["get", "interface", ifname, "error", "ofport"])?;
                let mut lines = e.lines();
                let err = lines.next().unwrap_or("").trim().to_owned();
                let ofport = lines.next().unwrap_or("").trim().to_owned();
                if !err.is_empty() && err != "[]" {
                    bail!("Open vSwitch port {ifname} ({kind}): {err}");
                }
                if ofport.is_empty() || ofport == "[]" || ofport.starts_with('-') {
                    ok = false;
                    why = format!("{ifname} has no ofport yet ({ofport})");
                }
            }
            if ok {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("Open vSwitch ports did not come up: {why}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replace bridge `br`'s flows with `flows` (ovs-ofctl syntax, one per line).
    pub fn replace_flows(&self, br: &str, flows: &[String]) -> anyhow::Result<()> {
        let file = self.dir.join("flows.txt");
        std::fs::write(&file, flows.join("\n") + "\n").context("writing the flow file")?;
        self.ofctl(&["replace-flows", br, &file.display().to_string()])?;
        Ok(())
    }

    /// Stop ovs-vswitchd (removing its datapath and any XDP programs it attached) and
    /// ovsdb-server.
    fn stop(&mut self) {
        let d = |f: &str| self.dir.join(f).display().to_string();
        if let Some(mut c) = self.vswitchd.take() {
            let mut exit = Command::new("ovs-appctl");
            exit.args(["-t", &d("vswitchd.ctl"), "exit", "--cleanup"]);
            let _ = self
                .env(&mut exit)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            wait_or_kill(&mut c);
        }
        if let Some(mut c) = self.db.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait up to 5 s for a child we started, then kill it (by its handle).
fn wait_or_kill(c: &mut Child) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Ovs {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn masked_mac(m: &Masked<[u8; 6]>) -> String {
    if m.mask == [0xff; 6] {
        mac(m.value)
    } else {
        format!("{}/{}", mac(m.value), mac(m.mask))
    }
}

fn masked_v4(m: &Masked<std::net::Ipv4Addr>) -> String {
    format!("{}/{}", m.value, m.mask)
}

/// A LIME rule as an `ovs-ofctl` flow (OpenFlow 1.3), with virtual ports mapped to OVS
/// ofports by `ofport`. Only the match fields and actions the benchmarks use are
/// translated; anything else is refused rather than approximated.
pub fn ovs_flow(rule: &Rule, ofport: impl Fn(u32) -> Option<u32>) -> anyhow::Result<String> {
    let m = &rule.matches;
    let mut f = vec![
        format!("table={}", rule.table),
        format!("priority={}", rule.priority),
    ];
    let unsupported = m.in_port.is_some()
        || m.metadata.is_some()
        || m.eth_src.is_some()
        || m.vlan_vid.is_some()
        || m.vlan_pcp.is_some()
        || m.ipv6_src.is_some()
        || m.ipv6_dst.is_some()
        || m.tcp_src.is_some()
        || m.tcp_dst.is_some()
        || m.icmpv4_type.is_some()
        || m.icmpv4_code.is_some()
        || m.icmpv6_type.is_some()
        || m.icmpv6_code.is_some()
        || m.arp_op.is_some()
        || m.arp_spa.is_some()
        || m.arp_tpa.is_some();
    if unsupported {
        bail!("rule {m:?}: a match field the OVS translation does not handle");
    }
    if let Some(e) = m.eth_type {
        f.push(format!("dl_type=0x{e:04x}"));
    }
    if let Some(d) = &m.eth_dst {
        f.push(format!("dl_dst={}", masked_mac(d)));
    }
    if let Some(p) = m.ip_proto {
        f.push(format!("nw_proto={p}"));
    }
    if let Some(d) = m.ip_dscp {
        f.push(format!("ip_dscp={d}"));
    }
    if let Some(a) = &m.ipv4_src {
        f.push(format!("nw_src={}", masked_v4(a)));
    }
    if let Some(a) = &m.ipv4_dst {
        f.push(format!("nw_dst={}", masked_v4(a)));
    }
    if let Some(p) = m.udp_src {
        f.push(format!("udp_src={p}"));
    }
    if let Some(p) = m.udp_dst {
        f.push(format!("udp_dst={p}"));
    }
    let i = &rule.instructions;
    if i.write_metadata.is_some() || i.goto_table.is_some() {
        bail!("rule {m:?}: instructions the OVS translation does not handle");
    }
    let mut actions = Vec::new();
    for a in &i.apply {
        match a {
            Action::Output { port, .. } => {
                let p = ofport(*port)
                    .with_context(|| format!("virtual port {port} has no OVS port"))?;
                actions.push(format!("output:{p}"));
            }
            other => bail!("action {other:?}: not translated for OVS"),
        }
    }
    if actions.is_empty() {
        actions.push("drop".into());
    }
    Ok(format!("{},actions={}", f.join(","), actions.join(",")))
}

#[cfg(test)]
mod tests {
    use lime_userspace::{flow::Instructions, testgen::rules_over_masks};

    use super::*;

    #[test]
    fn bench_rules_translate() {
        let rules = rules_over_masks(64, 8, 1);
        for r in &rules {
            let f = ovs_flow(r, |p| Some(p + 10)).expect("translates");
            assert!(f.contains("dl_type=0x0800"), "{f}");
            assert!(f.ends_with("actions=output:12"), "{f}");
        }
        let odd = Rule::new(
            0,
            1,
            lime_userspace::flow::Match {
                tcp_dst: Some(80),
                ..Default::default()
            },
            Instructions::apply(vec![Action::output(1)]),
        );
        assert!(ovs_flow(&odd, Some).is_err());
    }
}
