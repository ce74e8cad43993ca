/*
 * LIME's datapath in P4-16, for the v1model architecture.
 *
 * The same pipeline as the eBPF datapath (lime-ebpf), for P4 switches. It is kept in
 * step with lime-common by lime-common/tests/p4_in_step.rs: the tunnel, packet-out and
 * packet-in headers, the flow-key struct, the @name/@id of every table, action and direct
 * counter, and every LIME_* constant below are checked against lime-common (src/p4.rs).
 * Change one side and the other in the same commit.
 *
 * Pipeline (ingress):
 *   1. Port map (lime_port_map, the eBPF PORTS map): host port, underlay port, or the
 *      CPU port (the eBPF injection port: packet-outs carry a tunnel header).
 *   2. Host port: read the virtual switch's current version once (lime_vswitch, the
 *      eBPF VSWITCHES map); walk the flow tables lime_flow_0..7 from table 0, following
 *      goto-table; every lookup uses that one version; each rule's header changes are
 *      made on the frame and the flow key at once, so later tables match the changed
 *      packet. Then deliver to the one output (a virtual port, a multicast group for
 *      FLOOD/ALL or several outputs, or the controller through the CPU port).
 *   3. Underlay port: the ingress physical switch already classified: deliver to the
 *      virtual port named in the tunnel header, keeping the header's version tag.
 *   4. CPU port (packet-out): the header names the virtual switch, in_port and either a
 *      virtual port or OFPP_TABLE (classify with the current version).
 * Egress: per copy, decapsulate for a local virtual port or (re)encapsulate for a remote
 * one (lime_egress_vport, the eBPF VPORTS map); copies to the CPU port get the packet-in
 * header.
 *
 * Written to the P4-16 language specification and v1model.p4; no target extensions.
 * Not compiled on the machines it is written on (no P4 compiler in their registries):
 * check it with `p4test p4/lime.p4` and `p4c-bm2-ss --p4runtime-files lime.p4info.txt
 * p4/lime.p4` (see p4/README.md).
 */

#include <core.p4>
#include <v1model.p4>

/* The CPU port of the target (simple_switch_grpc --cpu-port). */
#ifndef LIME_CPU_PORT
#define LIME_CPU_PORT 255
#endif
const bit<9> CPU_PORT = LIME_CPU_PORT;

/* ---- Numbers shared with lime-common (checked against lime_common::p4::CONSTANTS) ---- */

const bit<16> LIME_ETHERTYPE = 0x88b5;
const bit<8>  LIME_TUNNEL_MAGIC = 0x4c;
const bit<8>  LIME_TUNNEL_MAX_HOPS = 4;
const bit<8>  LIME_TUNNEL_F_PACKET_OUT = 1;
const bit<32> LIME_TUNNEL_LEN = 20;
const bit<32> LIME_PACKET_IN_LEN = 40;
const bit<32> LIME_MAX_PACKET_IN_BYTES = 2048;
const bit<8>  LIME_REASON_ACTION = 1;
const bit<16> LIME_VID_PRESENT = 0x1000;
const bit<8>  LIME_NO_GOTO = 0xff;
const bit<8>  LIME_MAX_TABLES = 8;

/* Port kinds (lime_common::port::kind). */
const bit<8> LIME_PORT_NONE = 0;
const bit<8> LIME_PORT_HOST = 1;
const bit<8> LIME_PORT_UNDERLAY = 2;
const bit<8> LIME_PORT_INJECT = 3;

/* OpenFlow 1.3 reserved ports (lime_common::action::port_no). */
const bit<32> LIME_OFPP_MAX = 0xffffff00;
const bit<32> LIME_OFPP_IN_PORT = 0xfffffff8;
const bit<32> LIME_OFPP_TABLE = 0xfffffff9;
const bit<32> LIME_OFPP_FLOOD = 0xfffffffb;
const bit<32> LIME_OFPP_ALL = 0xfffffffc;
const bit<32> LIME_OFPP_CONTROLLER = 0xfffffffd;
/* As a rule's out_port: the rule has no output. */
const bit<32> LIME_OFPP_ANY = 0xffffffff;

/* Bits of lime_rule's ops, run lowest first (lime_common::p4::op). */
const bit<8> LIME_OP_POP_VLAN = 1;
const bit<8> LIME_OP_PUSH_VLAN = 2;
const bit<8> LIME_OP_SET_VLAN_VID = 4;
const bit<8> LIME_OP_SET_ETH_DST = 8;
const bit<8> LIME_OP_SET_ETH_SRC = 16;
const bit<8> LIME_OP_WRITE_METADATA = 32;

/* Drop reasons (lime_common::stats::drop_reason), the keys of lime_drop. */
const bit<8> LIME_DROP_RUNT = 1;
const bit<8> LIME_DROP_TRUNCATED = 2;
const bit<8> LIME_DROP_BAD_IHL = 3;
const bit<8> LIME_DROP_VLAN_STACKED = 4;
const bit<8> LIME_DROP_IPV6_EXT_LIMIT = 5;
const bit<8> LIME_DROP_TABLE_MISS = 6;
const bit<8> LIME_DROP_NO_OUTPUT = 7;
const bit<8> LIME_DROP_BAD_OUTPUT = 8;
const bit<8> LIME_DROP_BAD_TUNNEL = 9;
const bit<8> LIME_DROP_TUNNEL_LOOP = 10;
const bit<8> LIME_DROP_HELPER_FAILED = 11;
const bit<8> LIME_DROP_BAD_GOTO = 12;
const bit<8> LIME_DROP_NO_VSWITCH = 13;
const bit<8> LIME_DROP_HAIRPIN = 14;
const bit<8> LIME_DROP_NEEDS_SKB_PATH = 15;
const bit<8> LIME_DROP_BAD_ACTION = 16;

/* Ethertypes and IP protocols the parser knows. */
const bit<16> ETH_P_IP = 0x0800;
const bit<16> ETH_P_IPV6 = 0x86dd;
const bit<16> ETH_P_ARP = 0x0806;
const bit<16> ETH_P_8021Q = 0x8100;
const bit<16> ETH_P_8021AD = 0x88a8;
const bit<8>  IPPROTO_ICMP = 1;
const bit<8>  IPPROTO_TCP = 6;
const bit<8>  IPPROTO_UDP = 17;
const bit<8>  IPPROTO_ICMPV6 = 58;
/* IPv6 extension headers lime-ebpf walks (RFC 8200 4.3-4.6, RFC 4302). */
const bit<8>  IPV6_HOPOPTS = 0;
const bit<8>  IPV6_ROUTING = 43;
const bit<8>  IPV6_FRAGMENT = 44;
const bit<8>  IPV6_AH = 51;
const bit<8>  IPV6_DSTOPTS = 60;

/* Parser errors beyond core.p4's, each mapped to its drop reason in ingress. */
error {
    VlanStacked,
    BadIhl,
    Ipv6ExtLimit,
    BadTunnel
}

/* ---- Headers ---- */

header ethernet_t {
    bit<48> dst;
    bit<48> src;
    bit<16> ether_type;
}

header vlan_t {
    bit<3>  pcp;
    bit<1>  dei;
    bit<12> vid;
    bit<16> ether_type;
}

/* Ethernet/IPv4 ARP (28 bytes). */
header arp_t {
    bit<16> htype;
    bit<16> ptype;
    bit<8>  hlen;
    bit<8>  plen;
    bit<16> oper;
    bit<48> sha;
    bit<32> spa;
    bit<48> tha;
    bit<32> tpa;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<6>  dscp;
    bit<2>  ecn;
    bit<16> total_len;
    bit<16> identification;
    bit<3>  flags;
    bit<13> frag_offset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> checksum;
    bit<32> src;
    bit<32> dst;
}

/* IPv4 options: (ihl - 5) * 4 bytes. */
header ipv4_options_t {
    varbit<320> options;
}

header ipv6_t {
    bit<4>   version;
    bit<8>   traffic_class;
    bit<20>  flow_label;
    bit<16>  payload_len;
    bit<8>   next_hdr;
    bit<8>   hop_limit;
    bit<128> src;
    bit<128> dst;
}

/* The first 8 bytes of any IPv6 extension header lime-ebpf walks. For the fragment
 * header (8 bytes in all) rest[47:35] is the fragment offset. */
header ipv6_ext_t {
    bit<8>  next_hdr;
    bit<8>  len;
    bit<48> rest;
}

/* The rest of a hop-by-hop, routing, destination-options (len * 8 bytes) or
 * authentication (len * 4 bytes) header. */
header ipv6_ext_more_t {
    varbit<16320> data;
}

/* The first four bytes of TCP and UDP: all a rule matches, and all lime-ebpf needs to be
 * present. The rest of the transport header stays payload (LIME changes no L3/L4 field,
 * so no checksum needs updating). */
header l4_ports_t {
    bit<16> src_port;
    bit<16> dst_port;
}

/* ICMPv4 / ICMPv6 type and code. */
header icmp_t {
    bit<8> icmp_type;
    bit<8> icmp_code;
}

/* LIME's tunnel header (lime_common::wire::TunnelHeader), after an outer Ethernet header
 * with type LIME_ETHERTYPE. */
header lime_tunnel_t {
    bit<8>  magic;
    bit<8>  flags;
    bit<8>  hops;
    bit<8>  reserved;
    bit<16> vswitch;
    bit<16> reserved2;
    bit<32> in_port;
    bit<32> out_port;
    bit<32> version;
}

/* P4Runtime PacketOut metadata: the tunnel header an injection port reads
 * (flags has LIME_TUNNEL_F_PACKET_OUT; out_port is a virtual port or OFPP_TABLE). */
@controller_header("packet_out")
header lime_packet_out_t {
    bit<8>  magic;
    bit<8>  flags;
    bit<8>  hops;
    bit<8>  reserved;
    bit<16> vswitch;
    bit<16> reserved2;
    bit<32> in_port;
    bit<32> out_port;
    bit<32> version;
}

/* P4Runtime PacketIn metadata: lime_common::wire::PacketInMeta, field for field. */
@controller_header("packet_in")
header lime_packet_in_t {
    bit<64> cookie;
    bit<64> metadata;
    bit<16> vswitch;
    bit<8>  table_id;
    bit<8>  reason;
    bit<32> in_port;
    bit<32> rule_id;
    bit<32> frame_len;
    bit<32> captured;
    bit<32> version;
}

struct headers_t {
    lime_packet_in_t  packet_in;
    lime_packet_out_t packet_out;
    ethernet_t        outer_ethernet;
    lime_tunnel_t     tunnel;
    ethernet_t        ethernet;
    /* vlan0 is the outermost tag. Frames arrive with at most one; rules push up to two. */
    vlan_t            vlan0;
    vlan_t            vlan1;
    vlan_t            vlan2;
    arp_t             arp;
    ipv4_t            ipv4;
    ipv4_options_t    ipv4_options;
    ipv6_t            ipv6;
    ipv6_ext_t        ipv6_ext0;
    ipv6_ext_more_t   ipv6_ext_more0;
    ipv6_ext_t        ipv6_ext1;
    ipv6_ext_more_t   ipv6_ext_more1;
    ipv6_ext_t        ipv6_ext2;
    ipv6_ext_more_t   ipv6_ext_more2;
    ipv6_ext_t        ipv6_ext3;
    ipv6_ext_more_t   ipv6_ext_more3;
    l4_ports_t        tcp;
    l4_ports_t        udp;
    icmp_t            icmp;
    icmp_t            icmpv6;
}

/* ---- Metadata ---- */

/* Every packet field a rule can match (lime_common::flow::FlowKey, without padding), with
 * the same meanings: vlan_vid is LIME_VID_PRESENT | VID when tagged, 0 when not; for ARP
 * nw_src/nw_dst hold SPA/TPA and tp_src the opcode; for ICMP tp_src/tp_dst hold
 * type/code; IPv4 addresses fill the first four bytes of nw_src/nw_dst. */
struct lime_flow_key_t {
    bit<32>  in_port;
    bit<16>  vlan_vid;
    bit<16>  eth_type;
    bit<48>  eth_dst;
    bit<48>  eth_src;
    bit<3>   vlan_pcp;
    bit<6>   ip_dscp;
    bit<8>   ip_proto;
    bit<128> nw_src;
    bit<128> nw_dst;
    bit<16>  tp_src;
    bit<16>  tp_dst;
    bit<64>  metadata;
}

/* The matched rule of the current table (lime_rule's parameters). */
struct lime_rule_t {
    bit<1>  hit;
    bit<32> rule_id;
    bit<64> cookie;
    bit<8>  ops;
    bit<48> eth_dst;
    bit<48> eth_src;
    bit<12> vlan_vid;
    bit<16> vlan_tpid;
    bit<64> metadata;
    bit<64> metadata_mask;
    bit<8>  goto_table;
    bit<32> out_port;
    bit<16> group;
    bit<16> max_len;
}

struct metadata_t {
    lime_flow_key_t key;
    lime_rule_t     rule;
    bit<8>  port_kind;
    bit<16> vswitch;
    /* Virtual ingress port. */
    bit<32> in_port;
    /* Table version the packet is classified (or was classified) with. */
    bit<32> version;
    bit<1>  active;
    /* Classify this packet with the flow tables. */
    bit<1>  classify;
    /* Deliver to out_vport through lime_vport. */
    bit<1>  deliver;
    /* Not a LIME frame: drop without counting a reason. */
    bit<1>  discard;
    bit<8>  drop_reason;
    /* Table being looked up, the next one, and whether the walk goes on. */
    bit<8>  table_id;
    bit<8>  next_table;
    bit<1>  cont;
    bit<1>  missed;
    /* The first output of the chain. */
    bit<1>  has_output;
    bit<32> out_port;
    bit<16> out_group;
    bit<16> max_len;
    bit<1>  flood;
    bit<32> out_vport;
    /* Hop count for the tunnel header of a remote copy. */
    bit<8>  hops;
    /* The rule that output (for packet-in metadata). */
    bit<64> out_cookie;
    bit<32> out_rule_id;
    bit<8>  out_table;
    /* Frame length as changed by the rules (VLAN pushes and pops). */
    bit<32> frame_len;
}

/* ---- Parser (lime-ebpf/src/parse.rs and tunnel.rs) ---- */

parser LimeParser(packet_in packet,
                  out headers_t hdr,
                  inout metadata_t meta,
                  inout standard_metadata_t standard_metadata) {
    state start {
        transition select(standard_metadata.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_outer;
        }
    }

    /* A packet-out: only a classified one (OFPP_TABLE) needs its frame parsed. */
    state parse_packet_out {
        packet.extract(hdr.packet_out);
        verify(hdr.packet_out.magic == LIME_TUNNEL_MAGIC, error.BadTunnel);
        transition select(hdr.packet_out.out_port) {
            LIME_OFPP_TABLE: parse_ethernet;
            default: accept;
        }
    }

    state parse_outer {
        bit<112> eth = packet.lookahead<bit<112>>();
        transition select(eth[15:0]) {
            LIME_ETHERTYPE: parse_tunnel;
            default: parse_ethernet;
        }
    }

    /* A tunnelled frame: the sender classified it; the inner frame is not parsed. */
    state parse_tunnel {
        packet.extract(hdr.outer_ethernet);
        packet.extract(hdr.tunnel);
        verify(hdr.tunnel.magic == LIME_TUNNEL_MAGIC, error.BadTunnel);
        transition accept;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        meta.key.eth_dst = hdr.ethernet.dst;
        meta.key.eth_src = hdr.ethernet.src;
        meta.key.eth_type = hdr.ethernet.ether_type;
        transition select(hdr.ethernet.ether_type) {
            ETH_P_8021Q: parse_vlan;
            ETH_P_8021AD: parse_vlan;
            default: parse_l3;
        }
    }

    state parse_vlan {
        packet.extract(hdr.vlan0);
        meta.key.vlan_vid = LIME_VID_PRESENT | (bit<16>) hdr.vlan0.vid;
        meta.key.vlan_pcp = hdr.vlan0.pcp;
        meta.key.eth_type = hdr.vlan0.ether_type;
        /* One tag only, as lime-ebpf (drop_reason::VLAN_STACKED). */
        verify(hdr.vlan0.ether_type != ETH_P_8021Q && hdr.vlan0.ether_type != ETH_P_8021AD,
               error.VlanStacked);
        transition parse_l3;
    }

    state parse_l3 {
        transition select(meta.key.eth_type) {
            ETH_P_IP: parse_ipv4;
            ETH_P_IPV6: parse_ipv6;
            ETH_P_ARP: parse_arp;
            default: accept;
        }
    }

    /* Ethernet/IPv4 ARP only; other ARP flavours match on eth_type alone. */
    state parse_arp {
        transition select(packet.lookahead<bit<48>>()) {
            48w0x000108000604: parse_arp_ipv4;
            default: accept;
        }
    }

    state parse_arp_ipv4 {
        packet.extract(hdr.arp);
        meta.key.tp_src = hdr.arp.oper;
        meta.key.nw_src = hdr.arp.spa ++ 96w0;
        meta.key.nw_dst = hdr.arp.tpa ++ 96w0;
        transition accept;
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        verify(hdr.ipv4.ihl >= 5, error.BadIhl);
        meta.key.ip_dscp = hdr.ipv4.dscp;
        meta.key.ip_proto = hdr.ipv4.protocol;
        meta.key.nw_src = hdr.ipv4.src ++ 96w0;
        meta.key.nw_dst = hdr.ipv4.dst ++ 96w0;
        transition select(hdr.ipv4.ihl) {
            5: parse_ipv4_l4;
            default: parse_ipv4_options;
        }
    }

    state parse_ipv4_options {
        packet.extract(hdr.ipv4_options, (((bit<32>) hdr.ipv4.ihl) - 5) * 32);
        transition parse_ipv4_l4;
    }

    /* Later fragments carry no transport header. */
    state parse_ipv4_l4 {
        transition select(hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (0, IPPROTO_TCP): parse_tcp;
            (0, IPPROTO_UDP): parse_udp;
            (0, IPPROTO_ICMP): parse_icmp;
            default: accept;
        }
    }

    state parse_ipv6 {
        packet.extract(hdr.ipv6);
        meta.key.ip_dscp = hdr.ipv6.traffic_class[7:2];
        meta.key.nw_src = hdr.ipv6.src;
        meta.key.nw_dst = hdr.ipv6.dst;
        meta.key.ip_proto = hdr.ipv6.next_hdr;
        transition select(hdr.ipv6.next_hdr) {
            IPV6_HOPOPTS: parse_ext0_opt;
            IPV6_ROUTING: parse_ext0_opt;
            IPV6_DSTOPTS: parse_ext0_opt;
            IPV6_FRAGMENT: parse_ext0_frag;
            IPV6_AH: parse_ext0_ah;
            default: parse_ipv6_l4;
        }
    }

    /* Up to four extension headers (lime_common::limits::MAX_IPV6_EXT_HEADERS), one
     * header pair per position: hop-by-hop/routing/destination options are
     * (len + 1) * 8 bytes, authentication (len + 2) * 4, fragment 8. */
    state parse_ext0_opt {
        packet.extract(hdr.ipv6_ext0);
        packet.extract(hdr.ipv6_ext_more0, ((bit<32>) hdr.ipv6_ext0.len) * 64);
        transition parse_ext0_next;
    }
    state parse_ext0_ah {
        packet.extract(hdr.ipv6_ext0);
        packet.extract(hdr.ipv6_ext_more0, ((bit<32>) hdr.ipv6_ext0.len) * 32);
        transition parse_ext0_next;
    }
    state parse_ext0_frag {
        packet.extract(hdr.ipv6_ext0);
        meta.key.ip_proto = hdr.ipv6_ext0.next_hdr;
        /* Only the first fragment carries the transport header. */
        transition select(hdr.ipv6_ext0.rest[47:35]) {
            0: parse_ext0_next;
            default: accept;
        }
    }
    state parse_ext0_next {
        meta.key.ip_proto = hdr.ipv6_ext0.next_hdr;
        transition select(hdr.ipv6_ext0.next_hdr) {
            IPV6_HOPOPTS: parse_ext1_opt;
            IPV6_ROUTING: parse_ext1_opt;
            IPV6_DSTOPTS: parse_ext1_opt;
            IPV6_FRAGMENT: parse_ext1_frag;
            IPV6_AH: parse_ext1_ah;
            default: parse_ipv6_l4;
        }
    }

    state parse_ext1_opt {
        packet.extract(hdr.ipv6_ext1);
        packet.extract(hdr.ipv6_ext_more1, ((bit<32>) hdr.ipv6_ext1.len) * 64);
        transition parse_ext1_next;
    }
    state parse_ext1_ah {
        packet.extract(hdr.ipv6_ext1);
        packet.extract(hdr.ipv6_ext_more1, ((bit<32>) hdr.ipv6_ext1.len) * 32);
        transition parse_ext1_next;
    }
    state parse_ext1_frag {
        packet.extract(hdr.ipv6_ext1);
        meta.key.ip_proto = hdr.ipv6_ext1.next_hdr;
        transition select(hdr.ipv6_ext1.rest[47:35]) {
            0: parse_ext1_next;
            default: accept;
        }
    }
    state parse_ext1_next {
        meta.key.ip_proto = hdr.ipv6_ext1.next_hdr;
        transition select(hdr.ipv6_ext1.next_hdr) {
            IPV6_HOPOPTS: parse_ext2_opt;
            IPV6_ROUTING: parse_ext2_opt;
            IPV6_DSTOPTS: parse_ext2_opt;
            IPV6_FRAGMENT: parse_ext2_frag;
            IPV6_AH: parse_ext2_ah;
            default: parse_ipv6_l4;
        }
    }

    state parse_ext2_opt {
        packet.extract(hdr.ipv6_ext2);
        packet.extract(hdr.ipv6_ext_more2, ((bit<32>) hdr.ipv6_ext2.len) * 64);
        transition parse_ext2_next;
    }
    state parse_ext2_ah {
        packet.extract(hdr.ipv6_ext2);
        packet.extract(hdr.ipv6_ext_more2, ((bit<32>) hdr.ipv6_ext2.len) * 32);
        transition parse_ext2_next;
    }
    state parse_ext2_frag {
        packet.extract(hdr.ipv6_ext2);
        meta.key.ip_proto = hdr.ipv6_ext2.next_hdr;
        transition select(hdr.ipv6_ext2.rest[47:35]) {
            0: parse_ext2_next;
            default: accept;
        }
    }
    state parse_ext2_next {
        meta.key.ip_proto = hdr.ipv6_ext2.next_hdr;
        transition select(hdr.ipv6_ext2.next_hdr) {
            IPV6_HOPOPTS: parse_ext3_opt;
            IPV6_ROUTING: parse_ext3_opt;
            IPV6_DSTOPTS: parse_ext3_opt;
            IPV6_FRAGMENT: parse_ext3_frag;
            IPV6_AH: parse_ext3_ah;
            default: parse_ipv6_l4;
        }
    }

    state parse_ext3_opt {
        packet.extract(hdr.ipv6_ext3);
        packet.extract(hdr.ipv6_ext_more3, ((bit<32>) hdr.ipv6_ext3.len) * 64);
        transition parse_ext3_next;
    }
    state parse_ext3_ah {
        packet.extract(hdr.ipv6_ext3);
        packet.extract(hdr.ipv6_ext_more3, ((bit<32>) hdr.ipv6_ext3.len) * 32);
        transition parse_ext3_next;
    }
    state parse_ext3_frag {
        packet.extract(hdr.ipv6_ext3);
        meta.key.ip_proto = hdr.ipv6_ext3.next_hdr;
        transition select(hdr.ipv6_ext3.rest[47:35]) {
            0: parse_ext3_next;
            default: accept;
        }
    }
    /* A fifth extension header is more than lime-ebpf walks. */
    state parse_ext3_next {
        meta.key.ip_proto = hdr.ipv6_ext3.next_hdr;
        verify(hdr.ipv6_ext3.next_hdr != IPV6_HOPOPTS
               && hdr.ipv6_ext3.next_hdr != IPV6_ROUTING
               && hdr.ipv6_ext3.next_hdr != IPV6_DSTOPTS
               && hdr.ipv6_ext3.next_hdr != IPV6_FRAGMENT
               && hdr.ipv6_ext3.next_hdr != IPV6_AH,
               error.Ipv6ExtLimit);
        transition parse_ipv6_l4;
    }

    state parse_ipv6_l4 {
        transition select(meta.key.ip_proto) {
            IPPROTO_TCP: parse_tcp;
            IPPROTO_UDP: parse_udp;
            IPPROTO_ICMPV6: parse_icmpv6;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        meta.key.tp_src = hdr.tcp.src_port;
        meta.key.tp_dst = hdr.tcp.dst_port;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        meta.key.tp_src = hdr.udp.src_port;
        meta.key.tp_dst = hdr.udp.dst_port;
        transition accept;
    }

    state parse_icmp {
        packet.extract(hdr.icmp);
        meta.key.tp_src = (bit<16>) hdr.icmp.icmp_type;
        meta.key.tp_dst = (bit<16>) hdr.icmp.icmp_code;
        transition accept;
    }

    state parse_icmpv6 {
        packet.extract(hdr.icmpv6);
        meta.key.tp_src = (bit<16>) hdr.icmpv6.icmp_type;
        meta.key.tp_dst = (bit<16>) hdr.icmpv6.icmp_code;
        transition accept;
    }
}

control LimeVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

/* Counts a match and does nothing else (lime_drop, lime_port_tx). */
@name(".lime_count") @id(0x01000001)
action lime_count() { }

/* ---- One rule's effect on the packet (lime-ebpf/src/actions.rs: update_key, execute) ----
 *
 * Applied after each flow table. The header changes run in the fixed order of the op
 * bits, on the frame and on the flow key together; then the rule's output is recorded
 * (the first output of the chain wins: later tables can write metadata and goto, but a
 * rule that changes the frame or outputs again after an earlier output is dropped as
 * BAD_ACTION, as lime-ebpf's multi-copy path does); then goto-table. */
control LimeRuleEffects(inout headers_t hdr, inout metadata_t meta) {
    action lime_pop_vlan() {
        hdr.ethernet.ether_type = hdr.vlan0.ether_type;
        hdr.vlan0 = hdr.vlan1;
        hdr.vlan1 = hdr.vlan2;
        hdr.vlan2.setInvalid();
        meta.frame_len = meta.frame_len - 4;
    }

    /* The new outer tag copies the old outer tag's TCI (OpenFlow 1.3 A.2.5). */
    action lime_push_vlan_over_tag() {
        hdr.vlan2 = hdr.vlan1;
        hdr.vlan1 = hdr.vlan0;
        hdr.vlan0.ether_type = hdr.ethernet.ether_type;
        hdr.ethernet.ether_type = meta.rule.vlan_tpid;
        meta.frame_len = meta.frame_len + 4;
    }

    /* ... or is 0/0 on an untagged frame. */
    action lime_push_vlan_untagged() {
        hdr.vlan0.setValid();
        hdr.vlan0.pcp = 0;
        hdr.vlan0.dei = 0;
        hdr.vlan0.vid = 0;
        hdr.vlan0.ether_type = hdr.ethernet.ether_type;
        hdr.ethernet.ether_type = meta.rule.vlan_tpid;
        meta.frame_len = meta.frame_len + 4;
    }

    action lime_set_vlan_vid() {
        hdr.vlan0.vid = meta.rule.vlan_vid;
    }

    action lime_set_eth_dst() {
        hdr.ethernet.dst = meta.rule.eth_dst;
        meta.key.eth_dst = meta.rule.eth_dst;
    }

    action lime_set_eth_src() {
        hdr.ethernet.src = meta.rule.eth_src;
        meta.key.eth_src = meta.rule.eth_src;
    }

    action lime_write_metadata() {
        meta.key.metadata = (meta.key.metadata & ~meta.rule.metadata_mask)
                            | (meta.rule.metadata & meta.rule.metadata_mask);
    }

    action lime_record_output() {
        meta.has_output = 1;
        meta.out_port = meta.rule.out_port;
        meta.out_group = meta.rule.group;
        meta.max_len = meta.rule.max_len;
        meta.out_cookie = meta.rule.cookie;
        meta.out_rule_id = meta.rule.rule_id;
        meta.out_table = meta.table_id;
    }

    action lime_bad_action() {
        meta.drop_reason = LIME_DROP_BAD_ACTION;
        meta.cont = 0;
    }

    apply {
        bit<8> ops = meta.rule.ops;
        bool outputs = meta.rule.out_port != LIME_OFPP_ANY;
        if (meta.rule.hit == 1) {
            if (meta.has_output == 1 && ((ops & ~LIME_OP_WRITE_METADATA) != 0 || outputs)) {
                lime_bad_action();
            } else if ((ops & LIME_OP_PUSH_VLAN) != 0 && hdr.vlan2.isValid()) {
                /* No room for a fourth tag. */
                lime_bad_action();
            } else {
                if ((ops & LIME_OP_POP_VLAN) != 0 && hdr.vlan0.isValid()) {
                    lime_pop_vlan();
                }
                if ((ops & LIME_OP_PUSH_VLAN) != 0) {
                    if (hdr.vlan0.isValid()) {
                        lime_push_vlan_over_tag();
                    } else {
                        lime_push_vlan_untagged();
                    }
                }
                /* On an untagged frame a no-op, as in lime-ebpf (the control plane
                 * enforces the VLAN prerequisite). */
                if ((ops & LIME_OP_SET_VLAN_VID) != 0 && hdr.vlan0.isValid()) {
                    lime_set_vlan_vid();
                }
                if ((ops & (LIME_OP_POP_VLAN | LIME_OP_PUSH_VLAN | LIME_OP_SET_VLAN_VID)) != 0) {
                    if (hdr.vlan0.isValid()) {
                        meta.key.vlan_vid = LIME_VID_PRESENT | (bit<16>) hdr.vlan0.vid;
                        meta.key.vlan_pcp = hdr.vlan0.pcp;
                    } else {
                        meta.key.vlan_vid = 0;
                        meta.key.vlan_pcp = 0;
                    }
                }
                if ((ops & LIME_OP_SET_ETH_DST) != 0) {
                    lime_set_eth_dst();
                }
                if ((ops & LIME_OP_SET_ETH_SRC) != 0) {
                    lime_set_eth_src();
                }
                if ((ops & LIME_OP_WRITE_METADATA) != 0) {
                    lime_write_metadata();
                }
                if (outputs) {
                    lime_record_output();
                }
                if (meta.rule.goto_table == LIME_NO_GOTO) {
                    meta.cont = 0;
                } else if (meta.rule.goto_table <= meta.table_id
                           || meta.rule.goto_table >= LIME_MAX_TABLES) {
                    meta.drop_reason = LIME_DROP_BAD_GOTO;
                    meta.cont = 0;
                } else {
                    meta.next_table = meta.rule.goto_table;
                }
            }
        }
    }
}

/* ---- Ingress ---- */

control LimeIngress(inout headers_t hdr,
                    inout metadata_t meta,
                    inout standard_metadata_t standard_metadata) {

    /* -- Port map (eBPF map PORTS; its direct counter is the rx side of PORT_STATS) -- */

    @name(".lime_port_map_counter") @id(0x13000001)
    direct_counter(CounterType.packets_and_bytes) lime_port_map_counter;

    @name(".lime_port_host") @id(0x01000002)
    action lime_port_host(bit<16> vswitch, bit<32> vport) {
        meta.port_kind = LIME_PORT_HOST;
        meta.vswitch = vswitch;
        meta.in_port = vport;
    }

    @name(".lime_port_underlay") @id(0x01000003)
    action lime_port_underlay() {
        meta.port_kind = LIME_PORT_UNDERLAY;
    }

    @name(".lime_port_none") @id(0x01000004)
    action lime_port_none() {
        meta.port_kind = LIME_PORT_NONE;
    }

    @name(".lime_port_map") @id(0x02000001)
    table lime_port_map {
        key = {
            standard_metadata.ingress_port : exact @name("ingress_port");
        }
        actions = {
            lime_port_host;
            lime_port_underlay;
            @defaultonly lime_port_none;
        }
        const default_action = lime_port_none();
        counters = lime_port_map_counter;
        size = 1024;
    }

    /* -- Virtual switches (eBPF map VSWITCHES): the current version, flipped by one
     *    P4Runtime MODIFY of the virtual switch's entry -- */

    @name(".lime_vswitch_set") @id(0x01000005)
    action lime_vswitch_set(bit<32> version) {
        meta.active = 1;
        meta.version = version;
    }

    @name(".lime_vswitch_absent") @id(0x01000006)
    action lime_vswitch_absent() {
        meta.active = 0;
    }

    @name(".lime_vswitch") @id(0x02000002)
    table lime_vswitch {
        key = {
            meta.vswitch : exact @name("vswitch");
        }
        actions = {
            lime_vswitch_set;
            @defaultonly lime_vswitch_absent;
        }
        const default_action = lime_vswitch_absent();
        size = 256;
    }

    /* -- Flow tables (eBPF maps MASK_LISTS, MASKS, RULES, RULE_PROGRAMS, RULE_STATS) --
     * One P4 table per OpenFlow table. Key: the virtual switch, the version range in
     * which the rule is visible ([add_version, remove_version - 1]), and the flow key,
     * ternary; P4Runtime priority = OpenFlow priority + 1. */

    @name(".lime_rule") @id(0x01000010)
    action lime_rule(bit<32> rule_id, bit<64> cookie, bit<8> ops,
                     bit<48> eth_dst, bit<48> eth_src, bit<12> vlan_vid, bit<16> vlan_tpid,
                     bit<64> metadata, bit<64> metadata_mask, bit<8> goto_table,
                     bit<32> out_port, bit<16> group, bit<16> max_len) {
        meta.rule.hit = 1;
        meta.rule.rule_id = rule_id;
        meta.rule.cookie = cookie;
        meta.rule.ops = ops;
        meta.rule.eth_dst = eth_dst;
        meta.rule.eth_src = eth_src;
        meta.rule.vlan_vid = vlan_vid;
        meta.rule.vlan_tpid = vlan_tpid;
        meta.rule.metadata = metadata;
        meta.rule.metadata_mask = metadata_mask;
        meta.rule.goto_table = goto_table;
        meta.rule.out_port = out_port;
        meta.rule.group = group;
        meta.rule.max_len = max_len;
    }

    /* No rule matched and the table has no table-miss rule. */
    @name(".lime_table_miss") @id(0x01000011)
    action lime_table_miss() {
        meta.rule.hit = 0;
        meta.missed = 1;
        meta.cont = 0;
    }

    @name(".lime_flow_0_counter") @id(0x13000010)
    direct_counter(CounterType.packets_and_bytes) lime_flow_0_counter;
    @name(".lime_flow_0") @id(0x02000010)
    table lime_flow_0 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_0_counter;
        size = 32768;
    }

    @name(".lime_flow_1_counter") @id(0x13000011)
    direct_counter(CounterType.packets_and_bytes) lime_flow_1_counter;
    @name(".lime_flow_1") @id(0x02000011)
    table lime_flow_1 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_1_counter;
        size = 32768;
    }

    @name(".lime_flow_2_counter") @id(0x13000012)
    direct_counter(CounterType.packets_and_bytes) lime_flow_2_counter;
    @name(".lime_flow_2") @id(0x02000012)
    table lime_flow_2 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_2_counter;
        size = 32768;
    }

    @name(".lime_flow_3_counter") @id(0x13000013)
    direct_counter(CounterType.packets_and_bytes) lime_flow_3_counter;
    @name(".lime_flow_3") @id(0x02000013)
    table lime_flow_3 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_3_counter;
        size = 32768;
    }

    @name(".lime_flow_4_counter") @id(0x13000014)
    direct_counter(CounterType.packets_and_bytes) lime_flow_4_counter;
    @name(".lime_flow_4") @id(0x02000014)
    table lime_flow_4 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_4_counter;
        size = 32768;
    }

    @name(".lime_flow_5_counter") @id(0x13000015)
    direct_counter(CounterType.packets_and_bytes) lime_flow_5_counter;
    @name(".lime_flow_5") @id(0x02000015)
    table lime_flow_5 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_5_counter;
        size = 32768;
    }

    @name(".lime_flow_6_counter") @id(0x13000016)
    direct_counter(CounterType.packets_and_bytes) lime_flow_6_counter;
    @name(".lime_flow_6") @id(0x02000016)
    table lime_flow_6 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_6_counter;
        size = 32768;
    }

    @name(".lime_flow_7_counter") @id(0x13000017)
    direct_counter(CounterType.packets_and_bytes) lime_flow_7_counter;
    @name(".lime_flow_7") @id(0x02000017)
    table lime_flow_7 {
        key = {
            meta.vswitch       : exact   @name("vswitch");
            meta.version       : range   @name("version");
            meta.key.in_port   : ternary @name("in_port");
            meta.key.vlan_vid  : ternary @name("vlan_vid");
            meta.key.eth_type  : ternary @name("eth_type");
            meta.key.eth_dst   : ternary @name("eth_dst");
            meta.key.eth_src   : ternary @name("eth_src");
            meta.key.vlan_pcp  : ternary @name("vlan_pcp");
            meta.key.ip_dscp   : ternary @name("ip_dscp");
            meta.key.ip_proto  : ternary @name("ip_proto");
            meta.key.nw_src    : ternary @name("nw_src");
            meta.key.nw_dst    : ternary @name("nw_dst");
            meta.key.tp_src    : ternary @name("tp_src");
            meta.key.tp_dst    : ternary @name("tp_dst");
            meta.key.metadata  : ternary @name("metadata");
        }
        actions = {
            lime_rule;
            @defaultonly lime_table_miss;
        }
        const default_action = lime_table_miss();
        counters = lime_flow_7_counter;
        size = 32768;
    }

    LimeRuleEffects() effects_0;
    LimeRuleEffects() effects_1;
    LimeRuleEffects() effects_2;
    LimeRuleEffects() effects_3;
    LimeRuleEffects() effects_4;
    LimeRuleEffects() effects_5;
    LimeRuleEffects() effects_6;
    LimeRuleEffects() effects_7;

    /* -- Virtual ports, ingress half (eBPF map VPORTS: the interface to send on) -- */

    @name(".lime_vport_port") @id(0x01000007)
    action lime_vport_port(bit<9> port) {
        standard_metadata.egress_spec = port;
    }

    @name(".lime_vport_unknown") @id(0x01000008)
    action lime_vport_unknown() {
        meta.drop_reason = LIME_DROP_BAD_OUTPUT;
    }

    @name(".lime_vport") @id(0x02000003)
    table lime_vport {
        key = {
            meta.vswitch   : exact @name("vswitch");
            meta.out_vport : exact @name("vport");
        }
        actions = {
            lime_vport_port;
            @defaultonly lime_vport_unknown;
        }
        const default_action = lime_vport_unknown();
        size = 4096;
    }

    /* -- Drop counters by reason (eBPF map DROPS) -- */

    @name(".lime_drop_counter") @id(0x13000004)
    direct_counter(CounterType.packets) lime_drop_counter;

    @name(".lime_drop") @id(0x02000004)
    table lime_drop {
        key = {
            meta.drop_reason : exact @name("reason");
        }
        actions = {
            lime_count;
        }
        const default_action = lime_count();
        counters = lime_drop_counter;
        const entries = {
            LIME_DROP_RUNT : lime_count();
            LIME_DROP_TRUNCATED : lime_count();
            LIME_DROP_BAD_IHL : lime_count();
            LIME_DROP_VLAN_STACKED : lime_count();
            LIME_DROP_IPV6_EXT_LIMIT : lime_count();
            LIME_DROP_TABLE_MISS : lime_count();
            LIME_DROP_NO_OUTPUT : lime_count();
            LIME_DROP_BAD_OUTPUT : lime_count();
            LIME_DROP_BAD_TUNNEL : lime_count();
            LIME_DROP_TUNNEL_LOOP : lime_count();
            LIME_DROP_HELPER_FAILED : lime_count();
            LIME_DROP_BAD_GOTO : lime_count();
            LIME_DROP_NO_VSWITCH : lime_count();
            LIME_DROP_HAIRPIN : lime_count();
            LIME_DROP_NEEDS_SKB_PATH : lime_count();
            LIME_DROP_BAD_ACTION : lime_count();
        }
        size = 32;
    }

    apply {
        meta.frame_len = standard_metadata.packet_length;
        meta.hops = 1;

        /* 1. Where the packet came from. */
        if (standard_metadata.ingress_port == CPU_PORT) {
            meta.port_kind = LIME_PORT_INJECT;
        } else {
            lime_port_map.apply();
        }

        /* 2. Malformed frames are dropped with their reason, never classified. */
        if (meta.port_kind == LIME_PORT_NONE) {
            /* Not a LIME port (lime-ebpf passes such frames to the kernel stack; a
             * switch ASIC has none). */
            meta.discard = 1;
        } else if (standard_metadata.parser_error != error.NoError) {
            if (standard_metadata.parser_error == error.VlanStacked) {
                meta.drop_reason = LIME_DROP_VLAN_STACKED;
            } else if (standard_metadata.parser_error == error.BadIhl) {
                meta.drop_reason = LIME_DROP_BAD_IHL;
            } else if (standard_metadata.parser_error == error.Ipv6ExtLimit) {
                meta.drop_reason = LIME_DROP_IPV6_EXT_LIMIT;
            } else if (standard_metadata.parser_error == error.BadTunnel) {
                meta.drop_reason = LIME_DROP_BAD_TUNNEL;
            } else if (standard_metadata.packet_length < 14) {
                meta.drop_reason = LIME_DROP_RUNT;
            } else if ((hdr.outer_ethernet.isValid() && !hdr.tunnel.isValid())
                       || (meta.port_kind == LIME_PORT_INJECT && !hdr.packet_out.isValid())) {
                /* The tunnel header is cut short. */
                meta.drop_reason = LIME_DROP_BAD_TUNNEL;
            } else {
                meta.drop_reason = LIME_DROP_TRUNCATED;
            }
        } else if (meta.port_kind == LIME_PORT_HOST) {
            if (hdr.tunnel.isValid()) {
                /* LIME's ethertype is the underlay's; a host may not send it. */
                meta.drop_reason = LIME_DROP_BAD_TUNNEL;
            } else {
                meta.classify = 1;
            }
        } else if (meta.port_kind == LIME_PORT_UNDERLAY) {
            if (!hdr.tunnel.isValid()) {
                /* Not ours (lime-ebpf passes it to the kernel stack). */
                meta.discard = 1;
            } else if ((hdr.tunnel.flags & LIME_TUNNEL_F_PACKET_OUT) != 0) {
                meta.drop_reason = LIME_DROP_BAD_TUNNEL;
            } else if (hdr.tunnel.hops >= LIME_TUNNEL_MAX_HOPS) {
                meta.drop_reason = LIME_DROP_TUNNEL_LOOP;
            } else {
                /* Classified where it entered: deliver, keeping its version tag. */
                meta.vswitch = hdr.tunnel.vswitch;
                meta.in_port = hdr.tunnel.in_port;
                meta.out_vport = hdr.tunnel.out_port;
                meta.version = hdr.tunnel.version;
                meta.hops = hdr.tunnel.hops + 1;
                meta.deliver = 1;
            }
        } else {
            /* The CPU port: a packet-out. */
            meta.frame_len = standard_metadata.packet_length - LIME_TUNNEL_LEN;
            if ((hdr.packet_out.flags & LIME_TUNNEL_F_PACKET_OUT) == 0) {
                meta.drop_reason = LIME_DROP_BAD_TUNNEL;
            } else if (hdr.packet_out.hops >= LIME_TUNNEL_MAX_HOPS) {
                meta.drop_reason = LIME_DROP_TUNNEL_LOOP;
            } else {
                meta.vswitch = hdr.packet_out.vswitch;
                meta.in_port = hdr.packet_out.in_port;
                if (hdr.packet_out.out_port == LIME_OFPP_TABLE) {
                    meta.classify = 1;
                } else {
                    meta.out_vport = hdr.packet_out.out_port;
                    meta.version = hdr.packet_out.version;
                    meta.deliver = 1;
                }
            }
        }

        /* 3. Classification: one version for the whole walk. */
        if (meta.classify == 1) {
            lime_vswitch.apply();
            if (meta.active == 0) {
                meta.drop_reason = LIME_DROP_NO_VSWITCH;
            } else {
                meta.key.in_port = meta.in_port;
                meta.cont = 1;
                meta.next_table = 0;
                meta.out_port = LIME_OFPP_ANY;
            }
        }
        if (meta.cont == 1 && meta.next_table == 0) {
            meta.table_id = 0;
            lime_flow_0.apply();
            effects_0.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 1) {
            meta.table_id = 1;
            lime_flow_1.apply();
            effects_1.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 2) {
            meta.table_id = 2;
            lime_flow_2.apply();
            effects_2.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 3) {
            meta.table_id = 3;
            lime_flow_3.apply();
            effects_3.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 4) {
            meta.table_id = 4;
            lime_flow_4.apply();
            effects_4.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 5) {
            meta.table_id = 5;
            lime_flow_5.apply();
            effects_5.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 6) {
            meta.table_id = 6;
            lime_flow_6.apply();
            effects_6.apply(hdr, meta);
        }
        if (meta.cont == 1 && meta.next_table == 7) {
            meta.table_id = 7;
            lime_flow_7.apply();
            effects_7.apply(hdr, meta);
        }

        /* 4. The chain's one output (lime-ebpf/src/actions.rs: deliver). */
        if (meta.classify == 1 && meta.drop_reason == 0) {
            if (meta.has_output == 0) {
                meta.drop_reason = (meta.missed == 1) ? LIME_DROP_TABLE_MISS : LIME_DROP_NO_OUTPUT;
            } else if (meta.out_group != 0) {
                /* FLOOD/ALL, or several outputs: a multicast group whose replicas name
                 * virtual ports by their instance (egress_rid). */
                standard_metadata.mcast_grp = meta.out_group;
                if (meta.out_port == LIME_OFPP_FLOOD || meta.out_port == LIME_OFPP_ALL) {
                    meta.flood = 1;
                }
            } else if (meta.out_port == LIME_OFPP_CONTROLLER) {
                standard_metadata.egress_spec = CPU_PORT;
            } else if (meta.out_port == LIME_OFPP_IN_PORT) {
                meta.out_vport = meta.in_port;
                meta.deliver = 1;
            } else if (meta.out_port > LIME_OFPP_MAX) {
                meta.drop_reason = LIME_DROP_BAD_OUTPUT;
            } else if (meta.out_port == meta.in_port) {
                meta.drop_reason = LIME_DROP_HAIRPIN;
            } else {
                meta.out_vport = meta.out_port;
                meta.deliver = 1;
            }
        }
        if (meta.drop_reason == 0 && meta.deliver == 1) {
            lime_vport.apply();
        }

        /* 5. Drops. */
        if (meta.drop_reason != 0) {
            lime_drop.apply();
            mark_to_drop(standard_metadata);
        } else if (meta.discard == 1) {
            mark_to_drop(standard_metadata);
        }
    }
}

/* ---- Egress: one run per copy ---- */

control LimeEgress(inout headers_t hdr,
                   inout metadata_t meta,
                   inout standard_metadata_t standard_metadata) {

    /* -- Virtual ports, egress half (eBPF map VPORTS: location and outer addresses) -- */

    /* A local virtual port: strip the tunnel, if the frame has one. */
    @name(".lime_tunnel_decap") @id(0x01000020)
    action lime_tunnel_decap() {
        hdr.outer_ethernet.setInvalid();
        hdr.tunnel.setInvalid();
    }

    /* A remote virtual port: put on (or rewrite) the tunnel towards the physical switch
     * that owns it (lime-ebpf/src/tunnel.rs: encap, rewrite_outer). */
    @name(".lime_tunnel_encap") @id(0x01000021)
    action lime_tunnel_encap(bit<48> outer_src, bit<48> outer_dst) {
        hdr.outer_ethernet.setValid();
        hdr.outer_ethernet.dst = outer_dst;
        hdr.outer_ethernet.src = outer_src;
        hdr.outer_ethernet.ether_type = LIME_ETHERTYPE;
        hdr.tunnel.setValid();
        hdr.tunnel.magic = LIME_TUNNEL_MAGIC;
        hdr.tunnel.flags = 0;
        hdr.tunnel.hops = meta.hops;
        hdr.tunnel.reserved = 0;
        hdr.tunnel.vswitch = meta.vswitch;
        hdr.tunnel.reserved2 = 0;
        hdr.tunnel.in_port = meta.in_port;
        hdr.tunnel.out_port = meta.out_vport;
        hdr.tunnel.version = meta.version;
    }

    /* A replica naming a virtual port this switch does not know. */
    @name(".lime_egress_unknown") @id(0x01000022)
    action lime_egress_unknown() {
        mark_to_drop(standard_metadata);
    }

    @name(".lime_egress_vport") @id(0x02000020)
    table lime_egress_vport {
        key = {
            meta.vswitch   : exact @name("vswitch");
            meta.out_vport : exact @name("vport");
        }
        actions = {
            lime_tunnel_decap;
            lime_tunnel_encap;
            @defaultonly lime_egress_unknown;
        }
        const default_action = lime_egress_unknown();
        size = 4096;
    }

    /* -- Transmit counters per port (the tx side of eBPF map PORT_STATS) -- */

    @name(".lime_port_tx_counter") @id(0x13000021)
    direct_counter(CounterType.packets_and_bytes) lime_port_tx_counter;

    @name(".lime_port_tx") @id(0x02000021)
    table lime_port_tx {
        key = {
            standard_metadata.egress_port : exact @name("egress_port");
        }
        actions = {
            lime_count;
        }
        const default_action = lime_count();
        counters = lime_port_tx_counter;
        size = 1024;
    }

    apply {
        if (standard_metadata.egress_port == CPU_PORT) {
            /* A packet-in (lime-ebpf/src/actions.rs: packet_in). */
            bit<32> captured = meta.frame_len;
            if ((bit<32>) meta.max_len < captured) {
                captured = (bit<32>) meta.max_len;
            }
            if (captured > LIME_MAX_PACKET_IN_BYTES) {
                captured = LIME_MAX_PACKET_IN_BYTES;
            }
            hdr.packet_in.setValid();
            hdr.packet_in.cookie = meta.out_cookie;
            hdr.packet_in.metadata = meta.key.metadata;
            hdr.packet_in.vswitch = meta.vswitch;
            hdr.packet_in.table_id = meta.out_table;
            hdr.packet_in.reason = LIME_REASON_ACTION;
            hdr.packet_in.in_port = meta.in_port;
            hdr.packet_in.rule_id = meta.out_rule_id;
            hdr.packet_in.frame_len = meta.frame_len;
            hdr.packet_in.captured = captured;
            hdr.packet_in.version = meta.version;
            truncate(LIME_PACKET_IN_LEN + captured);
        } else {
            if (meta.out_group != 0) {
                meta.out_vport = (bit<32>) standard_metadata.egress_rid;
            }
            if (meta.flood == 1 && meta.out_vport == meta.in_port) {
                /* FLOOD and ALL leave out the ingress port. */
                mark_to_drop(standard_metadata);
            } else {
                if (lime_egress_vport.apply().hit) {
                    lime_port_tx.apply();
                }
            }
        }
    }
}

control LimeComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control LimeDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.outer_ethernet);
        packet.emit(hdr.tunnel);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.vlan0);
        packet.emit(hdr.vlan1);
        packet.emit(hdr.vlan2);
        packet.emit(hdr.arp);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_options);
        packet.emit(hdr.ipv6);
        packet.emit(hdr.ipv6_ext0);
        packet.emit(hdr.ipv6_ext_more0);
        packet.emit(hdr.ipv6_ext1);
        packet.emit(hdr.ipv6_ext_more1);
        packet.emit(hdr.ipv6_ext2);
        packet.emit(hdr.ipv6_ext_more2);
        packet.emit(hdr.ipv6_ext3);
        packet.emit(hdr.ipv6_ext_more3);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
        packet.emit(hdr.icmp);
        packet.emit(hdr.icmpv6);
    }
}

V1Switch(LimeParser(),
         LimeVerifyChecksum(),
         LimeIngress(),
         LimeEgress(),
         LimeComputeChecksum(),
         LimeDeparser()) main;
