//! The core's side of a migration: run the engine on the virtual switch's table inside
//! the core thread (so no flow-mod can interleave with a step), then refresh where the
//! virtual ports live, keeping their link state (a host that moved is not a port that
//! went down: no PORT_STATUS).
use std::collections::BTreeSet;

use super::Core;
use crate::{
    migration::{Report, Strategy, migrate},
    ofswitch::ports_of,
};

impl Core {
    /// Move every host of `vswitch` to physical switch `to`, one source switch at a
    /// time.
    pub(super) fn migrate(
        &mut self,
        vswitch: &str,
        to: &str,
        strategy: Strategy,
    ) -> Result<Vec<Report>, String> {
        let i = self
            .vswitches
            .iter()
            .position(|v| v.name == vswitch)
            .ok_or_else(|| format!("unknown virtual switch {vswitch:?}"))?;
        let state = self.fabric.lab().state();
        if state.topology.switch(to).is_none() {
            return Err(format!("unknown physical switch {to:?}"));
        }
        let spec = state
            .topology
            .vswitch(vswitch)
            .cloned()
            .ok_or_else(|| format!("unknown virtual switch {vswitch:?}"))?;
        let sources: BTreeSet<String> = spec
            .ports
            .iter()
            .filter_map(|p| state.host(&p.host).map(|h| h.switch.clone()))
            .filter(|s| s != to)
            .collect();
        if sources.is_empty() {
            return Err(format!("every host of {vswitch} is already on {to}"));
        }
        let mut reports = Vec::new();
        let mut result = Ok(());
        for from in &sources {
            let table = &mut self.vswitches[i].table;
            match migrate(&mut self.fabric, table, from, to, strategy, |_| {}) {
                Ok(r) => reports.push(r),
                Err(e) => {
                    result = Err(e.to_string());
                    break;
                }
            }
        }
        // Whatever moved, the ports' places are refreshed (links keep their state, ports
        // their identity).
        let fresh = ports_of(&self.fabric, &spec);
        for p in &mut self.vswitches[i].ports {
            if let Some(n) = fresh.iter().find(|n| n.port_no == p.port_no) {
                if (&p.switch, p.ifindex) != (&n.switch, n.ifindex)
                    && let Some(last) = self
                        .fabric
                        .datapath(&p.switch)
                        .and_then(|d| d.port_stats(p.ifindex).ok())
                {
                    // The old interface is gone; its counters stay the port's.
                    p.before = super::super::state::plus(p.before, last);
                }
                p.switch.clone_from(&n.switch);
                p.ifindex = n.ifindex;
                p.ifname.clone_from(&n.ifname);
                // The port keeps the hardware address the controller knows.
            }
        }
        result.map(|()| reports)
    }
}
