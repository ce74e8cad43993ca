//! Counters kept by the datapath. All are per-CPU maps, summed by userspace, so they are
//! exact without atomics on the fast path.

use crate::abi_type;

/// Per-rule counters as the datapath keeps them, by rule id (one per CPU).
///
/// No time of the last hit: reading the clock on every packet was a measurable part of
/// a flow-cache hit. The driver derives it from these counters instead (see
/// [`RuleStats::last_hit_ns`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RuleCounters {
    /// Packets that matched.
    pub packets: u64,
    /// Bytes of those packets (the frame as received, without tunnel headers).
    pub bytes: u64,
}
abi_type!(RuleCounters, size = 16, align = 8);

impl RuleCounters {
    /// The rule's counts over every CPU: the per-CPU values summed.
    #[must_use]
    pub fn sum(per_cpu: &[Self]) -> Self {
        per_cpu.iter().fold(Self::default(), |a, c| Self {
            packets: a.packets + c.packets,
            bytes: a.bytes + c.bytes,
        })
    }
}

/// A rule's counters as the driver reports them: [`RuleCounters`] summed over CPUs,
/// and when the rule was last seen to match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RuleStats {
    /// Packets that matched.
    pub packets: u64,
    /// Bytes of those packets (the frame as received, without tunnel headers).
    pub bytes: u64,
    /// CLOCK_MONOTONIC time (ns) at which the driver, reading the counters, first saw
    /// `packets` at its current value; 0 if it never saw a packet. The datapath keeps
    /// no time: a hit is noticed by the next read (the OpenFlow agent reads every rule
    /// with an idle timeout each sweep, 100 ms), so this is at most one read interval
    /// after the real last hit, never before it.
    pub last_hit_ns: u64,
}
abi_type!(RuleStats, size = 24, align = 8);

impl RuleStats {
    /// Two counts of one rule merged (its copies on two physical switches, or a
    /// retired copy's final counters and the live ones): packets and bytes add up, the
    /// last hit is the later one.
    #[must_use]
    pub const fn merge(self, other: Self) -> Self {
        Self {
            packets: self.packets + other.packets,
            bytes: self.bytes + other.bytes,
            last_hit_ns: if self.last_hit_ns > other.last_hit_ns {
                self.last_hit_ns
            } else {
                other.last_hit_ns
            },
        }
    }
}

/// Per-port counters, by ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames received and dropped (any reason).
    pub rx_dropped: u64,
    /// Frames that could not be sent.
    pub tx_errors: u64,
}
abi_type!(PortStats, size = 48, align = 8);

/// Why the datapath dropped (or gave up on) a frame: the index into the drop-counter
/// map. Never renumbered; append only.
pub mod drop_reason {
    /// Frame shorter than an Ethernet header.
    pub const RUNT: u32 = 1;
    /// A header is cut short (VLAN, ARP, IPv4, IPv6, L4).
    pub const TRUNCATED: u32 = 2;
    /// IPv4 header length below 20 bytes or beyond the frame.
    pub const BAD_IHL: u32 = 3;
    /// More than one VLAN tag (QinQ is not supported).
    pub const VLAN_STACKED: u32 = 4;
    /// More IPv6 extension headers than the datapath walks.
    pub const IPV6_EXT_LIMIT: u32 = 5;
    /// No rule matched and the table has no table-miss rule.
    pub const TABLE_MISS: u32 = 6;
    /// The matching rule's actions send the frame nowhere.
    pub const NO_OUTPUT: u32 = 7;
    /// Output to a virtual port that does not exist here.
    pub const BAD_OUTPUT: u32 = 8;
    /// Malformed or unknown tunnel header.
    pub const BAD_TUNNEL: u32 = 9;
    /// Tunnelled frame went around too many physical switches.
    pub const TUNNEL_LOOP: u32 = 10;
    /// A helper (adjust_head, redirect) failed.
    pub const HELPER_FAILED: u32 = 11;
    /// Goto-table went backwards or past the last table.
    pub const BAD_GOTO: u32 = 12;
    /// The virtual switch is not active on this physical switch.
    pub const NO_VSWITCH: u32 = 13;
    /// Output to the ingress port without IN_PORT (OpenFlow forbids it).
    pub const HAIRPIN: u32 = 14;
    /// Frame needs the skb path (several outputs) but none is attached.
    pub const NEEDS_SKB_PATH: u32 = 15;
    /// Unsupported action code in a rule program.
    pub const BAD_ACTION: u32 = 16;
    /// Number of reasons (size of the drop map).
    pub const COUNT: u32 = 32;

    /// Human-readable name of a reason.
    #[must_use]
    pub fn name(reason: u32) -> &'static str {
        match reason {
            RUNT => "runt",
            TRUNCATED => "truncated",
            BAD_IHL => "bad_ihl",
            VLAN_STACKED => "vlan_stacked",
            IPV6_EXT_LIMIT => "ipv6_ext_limit",
            TABLE_MISS => "table_miss",
            NO_OUTPUT => "no_output",
            BAD_OUTPUT => "bad_output",
            BAD_TUNNEL => "bad_tunnel",
            TUNNEL_LOOP => "tunnel_loop",
            HELPER_FAILED => "helper_failed",
            BAD_GOTO => "bad_goto",
            NO_VSWITCH => "no_vswitch",
            HAIRPIN => "hairpin",
            NEEDS_SKB_PATH => "needs_skb_path",
            BAD_ACTION => "bad_action",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_counters_sum_and_copies_merge() {
        let cpus = [
            RuleCounters {
                packets: 2,
                bytes: 120,
            },
            RuleCounters::default(),
            RuleCounters {
                packets: 5,
                bytes: 300,
            },
        ];
        assert_eq!(
            RuleCounters::sum(&cpus),
            RuleCounters {
                packets: 7,
                bytes: 420
            }
        );
        assert_eq!(RuleCounters::sum(&[]), RuleCounters::default());
        let a = RuleStats {
            packets: 3,
            bytes: 180,
            last_hit_ns: 50,
        };
        let b = RuleStats {
            packets: 4,
            bytes: 240,
            last_hit_ns: 20,
        };
        let m = RuleStats {
            packets: 7,
            bytes: 420,
            last_hit_ns: 50,
        };
        assert_eq!(a.merge(b), m);
        assert_eq!(b.merge(a), m, "merging is symmetric");
        assert_eq!(a.merge(RuleStats::default()), a);
    }
}
