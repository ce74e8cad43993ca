//! Property tests: the eBPF datapath agrees with the reference classifier (a linear scan,
//! `lime_userspace::reference`) on random rule sets over several tables — overlapping
//! wildcards, shared masks, priorities, goto-table, metadata, VLAN push/pop — and random
//! frames (some malformed), in the published version and while another rule set is
//! staged, then after that one is published. Every frame runs on one CPU twice (the
//! second time answered by the flow cache) and then on every other CPU (whose per-CPU
//! cache has not seen it). Per-rule counters must agree too.
use lime_common::stats::drop_reason;
use lime_tests::{
    Emitted, IN_PORT, TestDatapath, VSW, allowed_cpus, decode, kernel_lock, on_cpu, require_root,
};
use lime_userspace::{
    flow::Rule,
    reference::{Outcome, Reference, Verdict},
    testgen::{RuleSetConfig, Scenario, frame_near, scenario},
};
use proptest::{prelude::*, test_runner::TestRunner};

/// Run one frame through the datapath with virtual in_port `in_port`.
fn run_frame(t: &mut TestDatapath, in_port: u32, frame: &[u8]) -> (Emitted, Vec<(u32, u64)>) {
    t.dp.kernel_mut()
        .set_port(
            1,
            lime_common::port::PortInfo {
                kind: lime_common::port::kind::HOST,
                flags: 0,
                vswitch: VSW,
                vport: in_port,
            },
        )
        .expect("port map");
    let before = t.dp.kernel().drops().expect("drops");
    let r =
        t.dp.kernel()
            .test_run(lime_common::names::PROG_XDP, frame, 1)
            .expect("test_run");
    let after = t.dp.kernel().drops().expect("drops");
    let delta = after
        .iter()
        .map(|(r, n)| {
            (
                *r,
                n - before.iter().find(|(b, _)| b == r).map_or(0, |(_, m)| *m),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    (decode(r.verdict, &r.frame), delta)
}

/// Whether what the datapath did is what the oracle says.
fn agrees(v: &Verdict, got: &Emitted, drops: &[(u32, u64)]) -> bool {
    match (&v.outcome, got) {
        (
            Outcome::Output { port, frame },
            Emitted::Remote {
                port: p, frame: f, ..
            },
        ) => port == p && frame == f,
        (Outcome::Controller { .. }, Emitted::Drop) => drops.is_empty(),
        // Several copies: XDP hands the frame to the skb path on the same port.
        (Outcome::Drop(r), Emitted::Pass) => *r == drop_reason::NEEDS_SKB_PATH,
        (Outcome::Drop(r), Emitted::Drop) => drops == [(*r, 1)],
        _ => false,
    }
}

/// Install `rules` as one version; return their datapath ids in order.
fn install(t: &mut TestDatapath, rules: &[Rule]) -> Vec<u32> {
    t.dp.install(VSW, rules).expect("install")
}

fn check_frames(
    t: &mut TestDatapath,
    reference: &Reference,
    frames: &[(u32, Vec<u8>)],
    what: &str,
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for (in_port, frame) in frames {
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL), so
        // runts are covered by the fixtures' parser tests instead.
        if frame.len() < 14 {
            continue;
        }
        let options = reference.run_all(*in_port, frame);
        // Twice on one CPU: the second run is answered by the flow cache, which must not
        // change anything; then once on each other CPU, whose cache is per-CPU (a
        // per-CPU LRU hash once answered there with another CPU's zeroed value).
        let cpus = allowed_cpus();
        let mut runs = vec![(cpus[0], "first run".to_owned())];
        runs.push((cpus[0], "second run (flow cache)".to_owned()));
        runs.extend(cpus[1..].iter().map(|c| (*c, format!("run on CPU {c}"))));
        for (cpu, run) in runs {
            let (got, drops) = on_cpu(cpu, || run_frame(t, *in_port, frame));
            let hit = options.iter().find(|v| agrees(v, &got, &drops));
            assert!(
                hit.is_some(),
                "{what}, {run}: datapath and reference disagree\n in_port {in_port}\n frame {frame:02x?}\n datapath {got:?} drops {drops:?}\n reference {:?}",
                options
                    .iter()
                    .map(|v| (&v.outcome, &v.chain))
                    .collect::<Vec<_>>()
            );
            verdicts.push(hit.cloned().expect("checked"));
        }
    }
    verdicts
}

/// Datapath ids of the rules of table `t`, in the order the reference indexes them.
fn ids_by_ref(rules: &[Rule], ids: &[u32]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); lime_common::limits::MAX_TABLES];
    for (r, id) in rules.iter().zip(ids) {
        out[usize::from(r.table)].push(*id);
    }
    out
}

fn check_counters(t: &TestDatapath, rules: &[Rule], ids: &[u32], verdicts: &[Verdict]) {
    let by_ref = ids_by_ref(rules, ids);
    let mut expected = std::collections::HashMap::<u32, u64>::new();
    for v in verdicts {
        for r in v.counted_rules() {
            *expected
                .entry(by_ref[usize::from(r.table)][r.index])
                .or_default() += 1;
        }
    }
    for id in ids {
        let got = t.dp.rule_stats(*id).expect("stats").packets;
        assert_eq!(
            got,
            expected.get(id).copied().unwrap_or(0),
            "packet counter of datapath rule {id}"
        );
    }
}

#[test]
fn datapath_agrees_with_reference_current_and_staged() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let t = TestDatapath::new("props");
    let cfg = RuleSetConfig {
        tables: 3,
        max_rules: 24,
        max_masks: 6,
    };
    let cases = std::env::var("LIME_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let strategy = (scenario(cfg, 40), scenario(cfg, 1)).prop_flat_map(|(a, b)| {
        let frames_b = frame_near(b.rules.clone());
        (Just(a), Just(b), proptest::collection::vec(frames_b, 1..30))
    });
    // The runner takes an `Fn`: the datapath and what is installed live in cells.
    let state = std::cell::RefCell::new((t, Vec::<u32>::new()));
    runner
        .run(
            &strategy,
            |(a, b, frames_b): (Scenario, Scenario, Vec<(u32, Vec<u8>)>)| {
                let mut guard = state.borrow_mut();
                let (t, installed) = &mut *guard;
                // Start from empty tables (whatever an earlier, failed case left: it may
                // have stopped with changes staged).
                installed.clear();
                t.dp.abort(VSW);
                let version = t.dp.version(VSW).expect("version");
                let visible: Vec<u32> =
                    t.dp.store()
                        .visible(VSW, version)
                        .map(|(id, _)| id)
                        .collect();
                for id in visible {
                    t.dp.stage_remove(id).expect("remove");
                }
                t.dp.commit(VSW).expect("clear");
                t.dp.reclaim(VSW).expect("reclaim");

                let ids_a = install(t, &a.rules);
                let ref_a = Reference::new(&a.rules);
                let ref_b = Reference::new(&b.rules);
                let mut frames = a.frames.clone();
                frames.extend(frames_b.iter().cloned());
                let verdicts = check_frames(t, &ref_a, &frames, "published version");
                check_counters(t, &a.rules, &ids_a, &verdicts);

                // Stage B over A: nothing changes until it is published.
                for id in &ids_a {
                    t.dp.stage_remove(*id).expect("stage remove");
                }
                let mut ids_b = Vec::new();
                for r in &b.rules {
                    ids_b.push(t.dp.stage_add(VSW, r).expect("stage add"));
                }
                check_frames(t, &ref_a, &frames, "while B is staged");
                t.dp.commit(VSW).expect("publish B");
                let verdicts_b = check_frames(t, &ref_b, &frames, "after publishing B");
                check_counters(t, &b.rules, &ids_b, &verdicts_b);
                t.dp.reclaim(VSW).expect("reclaim A");
                *installed = ids_b;
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The flow cache looks common IPv4 frames up by their raw header bytes (not the parsed
/// key; IPv6 frames by the parsed key): a frame one byte (or the in_port) away from one
/// the cache has just answered must still get the reference's decision — a different one when it differs
/// in a field the rules match, the same one when it differs in bytes no rule reads
/// (TTL, checksum, length, identification, hop limit, flow label). Rules match every
/// field of the base frames exactly, so almost every byte a parser reads changes the
/// decision.
#[test]
fn cache_tells_apart_frames_one_byte_apart() {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use lime_userspace::{
        flow::{Action, Instructions, Match, matching::Masked},
        packet::Packet,
    };
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::new("rawkey");
    let (smac, dmac) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let (sip, dip) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (sip6, dip6): (Ipv6Addr, Ipv6Addr) = (
        "2001:db8::1".parse().expect("v6"),
        "2001:db8:0:7::2".parse().expect("v6"),
    );
    let bases = [
        Packet::udp4(smac, dmac, sip, dip, 4000, 5000),
        Packet::tcp4(smac, dmac, sip, dip, 4001, 80),
        Packet::icmp4_echo(smac, dmac, sip, dip),
        Packet::udp6(smac, dmac, sip6, dip6, 4002, 5001),
        Packet::tcp6(smac, dmac, sip6, dip6, 4003, 443),
        Packet::icmp6(smac, dmac, sip6, dip6, 128, 0),
    ];
    let exact = |p: &Packet| {
        let bytes = p.to_bytes();
        let v6 = bytes[12..14] == [0x86, 0xdd];
        let (proto, l4, dscp) = if v6 {
            (bytes[20], 54, ((bytes[14] << 4) | (bytes[15] >> 4)) >> 2)
        } else {
            (bytes[23], 34, bytes[15] >> 2)
        };
        let l4 = [bytes[l4], bytes[l4 + 1], bytes[l4 + 2], bytes[l4 + 3]];
        let (sport, dport) = (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        );
        let mut m = Match {
            in_port: Some(IN_PORT),
            eth_dst: Some(Masked::exact(dmac)),
            eth_src: Some(Masked::exact(smac)),
            eth_type: Some(if v6 { 0x86dd } else { 0x0800 }),
            ip_dscp: Some(dscp),
            ip_proto: Some(proto),
            ..Match::default()
        };
        if v6 {
            m.ipv6_src = Some(Masked::exact(sip6));
            m.ipv6_dst = Some(Masked::exact(dip6));
        } else {
            m.ipv4_src = Some(Masked::exact(sip));
            m.ipv4_dst = Some(Masked::exact(dip));
        }
        match (proto, v6) {
            (6, _) => (m.tcp_src, m.tcp_dst) = (Some(sport), Some(dport)),
            (17, _) => (m.udp_src, m.udp_dst) = (Some(sport), Some(dport)),
            (_, false) => (m.icmpv4_type, m.icmpv4_code) = (Some(l4[0]), Some(l4[1])),
            (_, true) => (m.icmpv6_type, m.icmpv6_code) = (Some(l4[0]), Some(l4[1])),
        }
        m
    };
    let mut rules: Vec<Rule> = bases
        .iter()
        .zip(3u32..)
        .map(|(p, out)| {
            Rule::new(
                0,
                100,
                exact(p),
                Instructions::apply(vec![Action::output(out)]),
            )
        })
        .collect();
    rules.push(Rule::new(
        0,
        0,
        Match::default(),
        Instructions::apply(vec![Action::output(9)]),
    ));
    let _ids = install(&mut t, &rules);
    let reference = Reference::new(&rules);
    let cpu = allowed_cpus()[0];
    let check = |t: &mut TestDatapath, in_port: u32, frame: &[u8], what: &str| {
        let options = reference.run_all(in_port, frame);
        let (got, drops) = on_cpu(cpu, || run_frame(t, in_port, frame));
        assert!(
            options.iter().any(|v| agrees(v, &got, &drops)),
            "{what}: datapath and reference disagree\n frame {frame:02x?}\n datapath {got:?} drops {drops:?}\n reference {:?}",
            options.iter().map(|v| &v.outcome).collect::<Vec<_>>()
        );
        got
    };
    let mut changed = 0;
    for base in &bases {
        let frame = base.to_bytes();
        let base_got = check(&mut t, IN_PORT, &frame, "base frame");
        let other_port = check(&mut t, IN_PORT + 1, &frame, "base frame, other in_port");
        assert_ne!(base_got, other_port, "the in_port rule should decide");
        for i in 0..frame.len().min(64) {
            for flip in [0x01u8, 0x04, 0x10, 0x80, 0xff] {
                let mut variant = frame.clone();
                variant[i] ^= flip;
                // The base frame fills (or hits) its slot, then the variant runs twice on
                // the same CPU: filled, then answered by the cache.
                check(&mut t, IN_PORT, &frame, "base frame again");
                let what = format!("byte {i} ^ {flip:#04x}");
                let first = check(&mut t, IN_PORT, &variant, &what);
                check(&mut t, IN_PORT, &variant, &format!("{what}, cached"));
                if first != base_got {
                    changed += 1;
                }
            }
        }
    }
    // The rules must make most flips matter, or this test shows nothing.
    assert!(
        changed > 300,
        "only {changed} one-byte changes changed the decision"
    );
}
