//! Rule instructions (apply-actions, write-metadata, goto-table) and their compilation
//! to the datapath's [`RuleProgram`].
use lime_common::{
    action::{self as abi, NO_GOTO, RuleProgram, code, flags, port_no},
    flow::VID_PRESENT,
    limits::{MAX_ACTIONS, MAX_TABLES},
};
use serde::{Deserialize, Serialize};

use super::{FlowError, matching::Match};

/// OpenFlow's "send the whole frame" packet-in length (`OFPCML_NO_BUFFER`).
pub const NO_BUFFER: u16 = 0xffff;

/// One action of an apply-actions list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Output to a virtual port or a reserved port (IN_PORT, FLOOD, ALL, CONTROLLER).
    Output {
        /// Port number.
        port: u32,
        /// Bytes to send to the controller (CONTROLLER only).
        max_len: u16,
    },
    /// Set-field ETH_DST.
    SetEthDst([u8; 6]),
    /// Set-field ETH_SRC.
    SetEthSrc([u8; 6]),
    /// Set-field VLAN_VID (the 12-bit id; OFPVID_PRESENT is implied).
    SetVlanVid(u16),
    /// Push a VLAN tag with this TPID (0x8100 or 0x88a8).
    PushVlan(u16),
    /// Pop the outer VLAN tag.
    PopVlan,
}

impl Action {
    /// Output to a port (max_len only matters for CONTROLLER).
    #[must_use]
    pub fn output(port: u32) -> Self {
        Self::Output {
            port,
            max_len: NO_BUFFER,
        }
    }

    /// Whether this is an output action.
    #[must_use]
    pub fn is_output(&self) -> bool {
        matches!(self, Self::Output { .. })
    }
}

/// A rule's instructions, in OpenFlow 1.3's execution order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instructions {
    /// apply-actions, run in order.
    pub apply: Vec<Action>,
    /// write-metadata (value, mask).
    pub write_metadata: Option<(u64, u64)>,
    /// goto-table.
    pub goto_table: Option<u8>,
}

impl Instructions {
    /// apply-actions only.
    #[must_use]
    pub fn apply(actions: Vec<Action>) -> Self {
        Self {
            apply: actions,
            ..Self::default()
        }
    }

    /// Whether an output of this rule sends to `port` (the out_port filter of flow-mod
    /// delete and of stats requests, spec 7.3.4.2).
    #[must_use]
    pub fn outputs_to(&self, port: u32) -> bool {
        self.apply
            .iter()
            .any(|a| matches!(a, Action::Output { port: p, .. } if *p == port))
    }

    /// Check the instructions against the rule's table and match (OpenFlow 1.3 errors
    /// BAD_TABLE_ID for goto, BAD_OUT_PORT, MATCH_INCONSISTENT, BAD_ARGUMENT).
    pub fn validate(&self, table: u8, m: &Match) -> Result<(), FlowError> {
        if self.apply.len() > MAX_ACTIONS {
            return Err(FlowError::TooManyActions { max: MAX_ACTIONS });
        }
        if let Some(g) = self.goto_table
            && (g <= table || usize::from(g) >= MAX_TABLES)
        {
            return Err(FlowError::BadGotoTable { from: table, to: g });
        }
        // Rules that send several copies run on the skb path, where every copy carries
        // the frame as it is at the first output: refuse changes after an output there,
        // and VLAN push/pop altogether (see lime-ebpf/src/skb.rs).
        let outputs = self.apply.iter().filter(|a| a.is_output()).count();
        let floods = self.apply.iter().any(|a| {
            matches!(a, Action::Output { port, .. } if *port == port_no::FLOOD || *port == port_no::ALL)
        });
        if outputs > 1 || floods {
            let mut seen_output = false;
            for a in &self.apply {
                match a {
                    Action::Output { .. } => seen_output = true,
                    Action::PushVlan(_) | Action::PopVlan => {
                        return Err(FlowError::Unsupported {
                            what: "push/pop VLAN in a rule with several outputs",
                        });
                    }
                    _ if seen_output => {
                        return Err(FlowError::Unsupported {
                            what: "a header change after an output in a rule with several outputs",
                        });
                    }
                    _ => {}
                }
            }
        }
        // Whether the frame has a VLAN tag at this point: known from the match, then
        // tracked through push/pop (set-field VLAN_VID needs one: spec 7.2.3.6/A.2.5).
        let mut tagged = m
            .vlan_vid
            .is_some_and(|v| v.mask & VID_PRESENT != 0 && v.value & VID_PRESENT != 0);
        for a in &self.apply {
            match *a {
                Action::Output { port, .. } => match port {
                    port_no::TABLE | port_no::NORMAL | port_no::LOCAL | port_no::ANY | 0 => {
                        return Err(FlowError::BadOutPort { port });
                    }
                    p if p > port_no::MAX
                        && !matches!(
                            p,
                            port_no::IN_PORT | port_no::FLOOD | port_no::ALL | port_no::CONTROLLER
                        ) =>
                    {
                        return Err(FlowError::BadOutPort { port });
                    }
                    _ => {}
                },
                Action::SetVlanVid(vid) => {
                    if !tagged {
                        return Err(FlowError::MatchInconsistent {
                            action: "set_vlan_vid",
                        });
                    }
                    if vid > 0x0fff {
                        return Err(FlowError::BadArgument {
                            action: "set_vlan_vid",
                        });
                    }
                }
                Action::PushVlan(tpid) => {
                    if tpid != 0x8100 && tpid != 0x88a8 {
                        return Err(FlowError::BadArgument {
                            action: "push_vlan",
                        });
                    }
                    tagged = true;
                }
                Action::PopVlan => {
                    if !tagged {
                        return Err(FlowError::MatchInconsistent { action: "pop_vlan" });
                    }
                    tagged = false;
                }
                Action::SetEthDst(_) | Action::SetEthSrc(_) => {}
            }
        }
        Ok(())
    }

    /// Compile to the datapath program. Call [`Instructions::validate`] first.
    #[must_use]
    pub fn compile(&self, table: u8, cookie: u64) -> RuleProgram {
        let mut p = RuleProgram {
            cookie,
            table,
            goto_table: self.goto_table.unwrap_or(NO_GOTO),
            ..RuleProgram::default()
        };
        let mut seen_output = false;
        let mut multi = false;
        for (slot, a) in p.actions.iter_mut().zip(&self.apply) {
            *slot = match *a {
                Action::Output { port, max_len } => {
                    if seen_output || port == port_no::FLOOD || port == port_no::ALL {
                        multi = true;
                    }
                    seen_output = true;
                    p.outputs += 1;
                    abi::Action {
                        code: code::OUTPUT,
                        arg16: max_len,
                        arg32: port,
                        data: [0; 8],
                    }
                }
                Action::SetEthDst(mac) => mac_action(code::SET_ETH_DST, mac),
                Action::SetEthSrc(mac) => mac_action(code::SET_ETH_SRC, mac),
                Action::SetVlanVid(vid) => small(code::SET_VLAN_VID, vid),
                Action::PushVlan(tpid) => small(code::PUSH_VLAN, tpid),
                Action::PopVlan => small(code::POP_VLAN, 0),
            };
        }
        p.len = u8::try_from(self.apply.len().min(MAX_ACTIONS)).unwrap_or(u8::MAX);
        if multi {
            p.flags |= flags::MULTI_OUTPUT;
        }
        if let Some((value, mask)) = self.write_metadata {
            p.flags |= flags::WRITE_METADATA;
            p.metadata = value & mask;
            p.metadata_mask = mask;
        }
        p
    }
}

fn mac_action(c: u16, mac: [u8; 6]) -> abi::Action {
    let mut data = [0; 8];
    data[..6].copy_from_slice(&mac);
    abi::Action {
        code: c,
        arg16: 0,
        arg32: 0,
        data,
    }
}

fn small(c: u16, arg16: u16) -> abi::Action {
    abi::Action {
        code: c,
        arg16,
        arg32: 0,
        data: [0; 8],
    }
}
