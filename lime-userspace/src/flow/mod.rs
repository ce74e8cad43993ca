//! The rule model shared by the driver, the reference classifier and the OpenFlow layer:
//! what a rule matches ([`Match`]), what it does ([`Instructions`]), and the typed errors
//! for rules the datapath cannot take.
//!
//! # Layout
//! - [`matching`]: matches, prerequisites, compilation to (value, mask) flow keys, and
//!   the OpenFlow relations between matches (covers, overlaps).
//! - [`actions`]: actions and instructions, compilation to rule programs.
pub mod actions;
pub mod matching;

pub use actions::{Action, Instructions, NO_BUFFER};
pub use matching::{Masked, Match};
use serde::{Deserialize, Serialize};

/// A rule as a controller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Table id.
    pub table: u8,
    /// Priority; higher wins.
    pub priority: u16,
    /// What it matches.
    pub matches: Match,
    /// What it does.
    pub instructions: Instructions,
    /// Opaque controller cookie.
    pub cookie: u64,
    /// Idle timeout in seconds (0: none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0: none).
    pub hard_timeout: u16,
    /// OpenFlow flow-mod flags (SEND_FLOW_REM etc.), kept for the OpenFlow layer.
    pub flags: u16,
}

impl Rule {
    /// A rule in `table` with `priority`, no cookie, no timeouts.
    #[must_use]
    pub fn new(table: u8, priority: u16, matches: Match, instructions: Instructions) -> Self {
        Self {
            table,
            priority,
            matches,
            instructions,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
        }
    }

    /// Validate match and instructions together.
    pub fn validate(&self) -> Result<(), FlowError> {
        if usize::from(self.table) >= lime_common::limits::MAX_TABLES {
            return Err(FlowError::BadTable { table: self.table });
        }
        self.matches.validate()?;
        self.instructions.validate(self.table, &self.matches)
    }
}

/// Why a rule cannot be installed. Each maps to an OpenFlow error in the OpenFlow layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// A field's prerequisite is missing (OFPBMC_BAD_PREREQ).
    #[error("match field {field} needs a matching {needs}")]
    BadPrerequisite {
        /// The field.
        field: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// Value bits set outside the mask (OFPBMC_BAD_WILDCARDS).
    #[error("match field {field} has value bits outside its mask")]
    BadWildcards {
        /// The field.
        field: &'static str,
    },
    /// Out-of-range value (OFPBMC_BAD_VALUE).
    #[error("match field {field} has an invalid value")]
    BadValue {
        /// The field.
        field: &'static str,
    },
    /// Table id out of range (OFPFMFC_BAD_TABLE_ID).
    #[error(
        "table {table} does not exist (tables are 0..{})",
        lime_common::limits::MAX_TABLES
    )]
    BadTable {
        /// The table.
        table: u8,
    },
    /// goto-table backwards or past the last table (OFPBIC_BAD_TABLE_ID).
    #[error("goto-table from {from} to {to} is not allowed")]
    BadGotoTable {
        /// Rule's table.
        from: u8,
        /// Target.
        to: u8,
    },
    /// Output to an unsupported or invalid port (OFPBAC_BAD_OUT_PORT).
    #[error("output to port {port:#x} is not supported")]
    BadOutPort {
        /// Port.
        port: u32,
    },
    /// Action needs a header the match does not guarantee (OFPBAC_MATCH_INCONSISTENT).
    #[error("{action} is inconsistent with the match (no VLAN tag guaranteed)")]
    MatchInconsistent {
        /// The action.
        action: &'static str,
    },
    /// Bad action argument (OFPBAC_BAD_ARGUMENT).
    #[error("{action} has an invalid argument")]
    BadArgument {
        /// The action.
        action: &'static str,
    },
    /// A combination the datapath does not support (OFPBAC_UNSUPPORTED_ORDER).
    #[error("unsupported: {what}")]
    Unsupported {
        /// What.
        what: &'static str,
    },
    /// More actions than the datapath holds (OFPBAC_TOO_MANY).
    #[error("too many actions (at most {max})")]
    TooManyActions {
        /// Limit.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use lime_common::action::port_no;

    use super::{matching::covers, matching::overlaps, *};

    fn ipv4() -> Match {
        Match {
            eth_type: Some(0x0800),
            ..Match::default()
        }
    }

    fn out(p: u32) -> Instructions {
        Instructions::apply(vec![Action::output(p)])
    }

    #[test]
    fn prerequisites_are_enforced() {
        let cases: Vec<(Match, &str)> = vec![
            (
                Match {
                    ipv4_src: Some(Masked::exact(Ipv4Addr::LOCALHOST)),
                    ..Match::default()
                },
                "ipv4_src",
            ),
            (
                Match {
                    tcp_dst: Some(80),
                    ..ipv4()
                },
                "tcp_dst",
            ),
            (
                Match {
                    udp_src: Some(53),
                    ip_proto: Some(6),
                    ..ipv4()
                },
                "udp_src",
            ),
            (
                Match {
                    icmpv6_type: Some(128),
                    ip_proto: Some(58),
                    ..ipv4()
                },
                "icmpv6_type",
            ),
            (
                Match {
                    arp_op: Some(1),
                    ..ipv4()
                },
                "arp_op",
            ),
            (
                Match {
                    vlan_pcp: Some(3),
                    ..Match::default()
                },
                "vlan_pcp",
            ),
            (
                Match {
                    ip_dscp: Some(1),
                    eth_type: Some(0x0806),
                    ..Match::default()
                },
                "ip_dscp",
            ),
        ];
        for (m, field) in cases {
            match m.validate() {
                Err(FlowError::BadPrerequisite { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected BadPrerequisite, got {other:?}"),
            }
        }
        let ok = Match {
            tcp_dst: Some(80),
            ip_proto: Some(6),
            ..ipv4()
        };
        ok.validate().expect("tcp over ipv4 is fine");
        let ok6 = Match {
            tcp_dst: Some(80),
            ip_proto: Some(6),
            eth_type: Some(0x86dd),
            ..Match::default()
        };
        ok6.validate().expect("tcp over ipv6 is fine");
    }

    #[test]
    fn value_bits_outside_the_mask_are_refused() {
        let m = Match {
            ipv4_dst: Some(Masked {
                value: Ipv4Addr::new(10, 0, 0, 1),
                mask: Ipv4Addr::new(255, 255, 255, 0),
            }),
            ..ipv4()
        };
        assert_eq!(
            m.validate(),
            Err(FlowError::BadWildcards { field: "ipv4_dst" })
        );
    }

    #[test]
    fn instructions_are_checked() {
        let r = |table, ins| Rule::new(table, 1, Match::default(), ins);
        let goto_back = Instructions {
            goto_table: Some(0),
            ..Instructions::default()
        };
        assert!(matches!(
            r(1, goto_back).validate(),
            Err(FlowError::BadGotoTable { .. })
        ));
        assert!(matches!(
            r(8, out(1)).validate(),
            Err(FlowError::BadTable { table: 8 })
        ));
        assert!(matches!(
            r(0, out(port_no::NORMAL)).validate(),
            Err(FlowError::BadOutPort { .. })
        ));
        assert!(matches!(
            r(0, out(0)).validate(),
            Err(FlowError::BadOutPort { .. })
        ));
        let untagged_set = Instructions::apply(vec![Action::SetVlanVid(5), Action::output(1)]);
        assert!(matches!(
            r(0, untagged_set).validate(),
            Err(FlowError::MatchInconsistent { .. })
        ));
        let pushed_set = Instructions::apply(vec![
            Action::PushVlan(0x8100),
            Action::SetVlanVid(5),
            Action::output(1),
        ]);
        r(0, pushed_set)
            .validate()
            .expect("push then set is consistent");
        assert!(matches!(
            r(0, Instructions::apply(vec![Action::PushVlan(0x0800)])).validate(),
            Err(FlowError::BadArgument { .. })
        ));
        let many = Instructions::apply(vec![Action::SetEthDst([2; 6]); 17]);
        assert!(matches!(
            r(0, many).validate(),
            Err(FlowError::TooManyActions { .. })
        ));
    }

    #[test]
    fn compile_marks_multi_output_programs() {
        use lime_common::action::flags;
        let single = out(1).compile(0, 0);
        assert_eq!(single.flags & flags::MULTI_OUTPUT, 0);
        assert_eq!(single.outputs, 1);
        let flood = out(port_no::FLOOD).compile(0, 0);
        assert_ne!(flood.flags & flags::MULTI_OUTPUT, 0);
        let two = Instructions::apply(vec![Action::output(1), Action::output(2)]).compile(0, 0);
        assert_ne!(two.flags & flags::MULTI_OUTPUT, 0);
    }

    #[test]
    fn covers_and_overlaps_follow_openflow() {
        let any = Match::default().compile();
        let web = Match {
            tcp_dst: Some(80),
            ip_proto: Some(6),
            ..ipv4()
        }
        .compile();
        let net = Match {
            ipv4_dst: Some(Masked {
                value: Ipv4Addr::new(10, 0, 0, 0),
                mask: Ipv4Addr::new(255, 0, 0, 0),
            }),
            ..ipv4()
        }
        .compile();
        let udp = Match {
            udp_dst: Some(80),
            ip_proto: Some(17),
            ..ipv4()
        }
        .compile();
        assert!(covers(&any, &web), "match-all covers everything");
        assert!(!covers(&web, &any));
        assert!(covers(&web, &web));
        assert!(
            overlaps(&web, &net),
            "tcp/80 and 10/8 can both match one packet"
        );
        assert!(!overlaps(&web, &udp), "tcp and udp cannot");
    }
}
