"""A learning switch for os-ken (OpenFlow 1.3), used to drive LIME end to end.

Run it with os-ken's manager, e.g.

    target/lime-venv/bin/osken-manager --ofp-tcp-listen-port 6653 \
        controller/lime_learning_switch.py

and point a virtual switch of the topology at it (controllers = ["tcp:127.0.0.1:6653"]).

What it does, per connected switch:
  * on connection, installs one table-miss entry (priority 0, match all) that sends the
    whole frame to the controller;
  * on each packet-in, learns "source MAC is behind in_port"; if the destination is
    known, installs an entry (priority 10, match in_port + eth_dst -> output) and sends
    the packet there, else floods it (packet-out FLOOD);
  * every LIME_STATS_INTERVAL seconds (default 0.5) asks every switch for its flow
    statistics and, if LIME_STATS_FILE is set, writes the latest reply there as one
    JSON document: {"seq": n, "dpid": d, "flows": [...]}, replaced atomically.
"""

import json
import os

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib import hub
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3

LEARNED_PRIORITY = 10


def _flat_match(match):
    """An OFPMatch as a flat {field: value} dict."""
    out = {}
    doc = match.to_jsondict().get("OFPMatch", {})
    for tlv in doc.get("oxm_fields", []):
        f = tlv.get("OXMTlv", {})
        value = f.get("value")
        if f.get("mask") is not None:
            value = "%s/%s" % (value, f["mask"])
        out[f.get("field")] = value
    return out


class LimeLearningSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.macs = {}  # dpid -> {mac: port}
        self.datapaths = {}
        self.seq = 0
        self.stats_file = os.environ.get("LIME_STATS_FILE")
        self.interval = float(os.environ.get("LIME_STATS_INTERVAL", "0.5"))
        self.poller = hub.spawn(self._poll_stats)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[dp.id] = dp
        elif dp.id in self.datapaths:
            del self.datapaths[dp.id]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.logger.info("switch %016x connected", dp.id)
        to_controller = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self._add_flow(dp, 0, parser.OFPMatch(), to_controller)

    def _add_flow(self, dp, priority, match, actions):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(
            parser.OFPFlowMod(
                datapath=dp, priority=priority, match=match, instructions=inst
            )
        )

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        table = self.macs.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_dst=eth.dst)
            self._add_flow(dp, LEARNED_PRIORITY, match, actions)
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(
            parser.OFPPacketOut(
                datapath=dp,
                buffer_id=msg.buffer_id,
                in_port=in_port,
                actions=actions,
                data=data,
            )
        )

    def _poll_stats(self):
        while True:
            for dp in list(self.datapaths.values()):
                dp.send_msg(dp.ofproto_parser.OFPFlowStatsRequest(dp))
            hub.sleep(self.interval)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev):
        flows = [
            {
                "table_id": s.table_id,
                "priority": s.priority,
                "cookie": s.cookie,
                "match": _flat_match(s.match),
                "packet_count": s.packet_count,
                "byte_count": s.byte_count,
            }
            for s in ev.msg.body
        ]
        self.seq += 1
        if not self.stats_file:
            return
        doc = {"seq": self.seq, "dpid": ev.msg.datapath.id, "flows": flows}
        tmp = self.stats_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.stats_file)
