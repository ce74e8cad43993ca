//! Batched map writes (`Kernel::apply` groups consecutive writes to one map into one
//! `BPF_MAP_*_BATCH` call): the maps end up exactly as the same writes one by one leave
//! them; deleting keys that are not there is no error and does not stop the deletes
//! after them; a write the kernel refuses names the element. Batched counter reads
//! (`BPF_MAP_LOOKUP_BATCH`) read what one read per rule reads.
use std::net::Ipv4Addr;

use lime_common::{
    action::RuleProgram,
    flow::{Bucket, FlowKey, MaskListKey, RuleKey},
};
use lime_tests::{TestDatapath, VSW, kernel_lock, require_root, run};
use lime_userspace::{
    datapath::store::MapOp,
    flow::{Action, Instructions, Masked, Match, Rule},
    traffic::frame::{UdpFlow, udp_frame},
};

fn key(mask_id: u32, byte: u8) -> RuleKey {
    let mut key = FlowKey::default();
    key.eth_dst[5] = byte;
    RuleKey {
        mask_id,
        _pad: 0,
        key,
    }
}

/// A bucket naming rules `first..first + 4` (programs are read back through buckets).
fn bucket(first: u32) -> Bucket {
    let mut b = Bucket::default();
    for (i, e) in b.entries.iter_mut().enumerate() {
        e.rule_id = first + u32::try_from(i).unwrap_or(0);
    }
    b
}

/// A program told apart by its cookie.
fn program(cookie: u64) -> RuleProgram {
    let mut p = blank();
    p.cookie = cookie;
    p
}

fn blank() -> RuleProgram {
    // SAFETY: RuleProgram is plain data (lime-common's `abi_type!`): all zeros is a
    // valid, empty program.
    unsafe { std::mem::zeroed() }
}

fn buckets(t: &TestDatapath) -> Vec<(RuleKey, Bucket)> {
    let mut v = t.dp.kernel().read_rule_maps().expect("read maps").buckets;
    v.retain(|(k, _)| k.mask_id >= 900);
    v.sort_by_key(|(k, _)| (k.mask_id, k.key.eth_dst[5]));
    v
}

#[test]
fn batched_writes_equal_single_writes() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::new("mbatch");
    let k = t.dp.kernel_mut();

    // 5 000 programs (more than one batch) and 1 250 buckets naming them, read back.
    let programs: Vec<MapOp> = (0..5000u32)
        .map(|i| MapOp::Program(i + 1, program(u64::from(i) * 3)))
        .collect();
    k.apply(&programs).expect("programs");
    let puts: Vec<MapOp> = (0..1250u32)
        .map(|j| {
            let byte = u8::try_from(j % 200).unwrap_or(0);
            MapOp::Bucket(key(900 + j / 200, byte), Some(bucket(4 * j + 1)))
        })
        .collect();
    k.apply(&puts).expect("buckets");
    let back = k.read_rule_maps().expect("read");
    assert_eq!(back.programs.len(), 5000);
    for i in [0u32, 1, 4095, 4096, 4999] {
        assert_eq!(
            back.programs.get(&(i + 1)).map(|p| p.cookie),
            Some(u64::from(i) * 3),
            "program {}",
            i + 1
        );
    }
    assert_eq!(buckets(&t).len(), 1250);

    // One key written twice in one batch: the later write wins, as one by one.
    let k = t.dp.kernel_mut();
    k.apply(&[
        MapOp::Bucket(key(900, 1), Some(bucket(7001))),
        MapOp::Bucket(key(900, 1), Some(bucket(7002))),
    ])
    .expect("twice");
    let b = buckets(&t);
    assert_eq!(
        b.iter()
            .find(|(k, _)| *k == key(900, 1))
            .map(|(_, b)| b.entries[0].rule_id),
        Some(7002)
    );

    // Deletes with missing keys first, in the middle and last: the rest still go.
    let k = t.dp.kernel_mut();
    let mut dels = vec![MapOp::Bucket(key(950, 0), None)];
    for i in 0..100u8 {
        dels.push(MapOp::Bucket(key(900, i), None));
        dels.push(MapOp::Bucket(key(951, i), None));
    }
    dels.push(MapOp::Bucket(key(952, 0), None));
    k.apply(&dels).expect("deletes with missing keys");
    let b = buckets(&t);
    assert_eq!(b.len(), 1150, "1 250 written, 100 deleted");
    assert!(
        b.iter()
            .all(|(k, _)| !(k.mask_id == 900 && k.key.eth_dst[5] < 100))
    );
    // Subtable list deletes of keys never written: no error.
    let none = MaskListKey {
        vswitch: 9,
        table: 0,
        _pad: 0,
        version: 1,
    };
    let k = t.dp.kernel_mut();
    k.apply(&[
        MapOp::MaskList(none, None),
        MapOp::MaskList(MaskListKey { version: 2, ..none }, None),
    ])
    .expect("list deletes");

    // A write the kernel refuses (a program id beyond the array) fails, naming the
    // element; the writes before it in the batch are done.
    let bad = [
        MapOp::Program(4001, program(44)),
        MapOp::Program(u32::MAX, program(45)),
    ];
    let err = k.apply(&bad).expect_err("out of range").to_string();
    assert!(err.contains("element 1 of a batch of 2"), "{err}");
    let back = k.read_rule_maps().expect("read");
    assert_eq!(back.programs.get(&4001).map(|p| p.cookie), Some(44));
}

/// An IPv4 UDP frame of `len` bytes to 10.0.0.`dst`.
fn udp_to(dst: u8, len: usize) -> Vec<u8> {
    let flow = UdpFlow {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src: Ipv4Addr::new(10, 0, 0, 1).into(),
        dst: Ipv4Addr::new(10, 0, 0, dst).into(),
        sport: 1000,
        dport: 2000,
        dscp: 0,
    };
    udp_frame(&flow, len).expect("frame")
}

#[test]
fn batched_counter_reads_equal_single_reads() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::new("mbread");
    // 200 rules (ids in one range), rule i hit i % 7 times with frames of 60 + i bytes.
    let rules: Vec<Rule> = (0..200u8)
        .map(|i| {
            Rule::new(
                0,
                10,
                Match {
                    eth_type: Some(0x0800),
                    ipv4_dst: Some(Masked::exact(Ipv4Addr::new(10, 0, 0, i))),
                    ..Match::default()
                },
                Instructions::apply(vec![Action::output(3)]),
            )
        })
        .collect();
    let ids = t.dp.install(VSW, &rules).expect("install");
    for i in 0..200u8 {
        for _ in 0..i % 7 {
            run(&t.dp, &udp_to(i, 60 + usize::from(i)));
        }
    }
    let expected = |i: usize| {
        let hits = (i % 7) as u64;
        (hits, hits * (60 + i as u64))
    };
    let one_by_one: Vec<_> = ids
        .iter()
        .map(|id| t.dp.rule_stats(*id).expect("stats"))
        .collect();
    for (i, st) in one_by_one.iter().enumerate() {
        assert_eq!((st.packets, st.bytes), expected(i), "rule {i}, single read");
    }
    // Every id (one range read), in a shuffled order with a repeat, and a sparse
    // few (one read each): the same counters in the order asked.
    let mut order: Vec<usize> = (0..200).rev().collect();
    order.swap(3, 150);
    order.push(17);
    let sparse = vec![0usize, 199];
    for pick in [order, sparse] {
        let asked: Vec<u32> = pick.iter().map(|&i| ids[i]).collect();
        let got = t.dp.rule_stats_many(&asked).expect("batched read");
        assert_eq!(got.len(), asked.len());
        for (&i, st) in pick.iter().zip(&got) {
            assert_eq!(
                (st.packets, st.bytes),
                expected(i),
                "rule {i}, batched read"
            );
            assert_eq!(
                st.last_hit_ns == 0,
                expected(i).0 == 0,
                "rule {i}: last hit"
            );
        }
    }
    assert!(t.dp.rule_stats_many(&[]).expect("nothing").is_empty());
}
