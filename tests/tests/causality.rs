//! Tagged consistent updates across copies: a ping-pong between hosts on different
//! physical switches (each packet classified where it enters, by a different copy of
//! the virtual switch) while the rules change every few milliseconds. Every rule set
//! marks the frames it forwards with its own number (set-field eth_src), so each host
//! sees which version processed each packet. Causality: a reply is caused by its
//! request, the next request by the reply; none may be processed by an older version
//! than the packet that caused it — even though the copies publish one after the other.
use std::{
    collections::HashMap,
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lime_tests::{
    Capture, fabric_pin_root, kernel_lock, l2_rules, require_root, two_switch_topology, udp_match,
};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Rule},
};

const REQ_PORT: u16 = 7600;
const REP_PORT: u16 = 7601;
const UPDATES: u16 = 250;

/// The two marked rules of rule set `k`: requests (to h3, port 3) and replies (to h1,
/// port 1), each with eth_src 02:ee:00:00:k.
fn marked(k: u16) -> Vec<Rule> {
    let [hi, lo] = k.to_be_bytes();
    let mark = [0x02, 0xee, 0, 0, hi, lo];
    [(REQ_PORT, 3), (REP_PORT, 1)]
        .into_iter()
        .map(|(port, out)| {
            Rule::new(
                0,
                100,
                udp_match(Some(port)),
                Instructions::apply(vec![Action::SetEthSrc(mark), Action::output(out)]),
            )
        })
        .collect()
}

/// (sequence number → mark) of the UDP datagrams to `port` among captured frames.
fn marks(frames: &[Vec<u8>], port: u16) -> HashMap<u64, u16> {
    let mut out = HashMap::new();
    for f in frames {
        // Ethernet (14) + IPv4 without options (20) + UDP (8) + an 8-byte sequence.
        if f.len() < 50 || f[12..14] != [0x08, 0x00] || f[23] != 17 || f[14] != 0x45 {
            continue;
        }
        if u16::from_be_bytes([f[36], f[37]]) != port || f[6..10] != [0x02, 0xee, 0, 0] {
            continue;
        }
        let seq = u64::from_be_bytes(f[42..50].try_into().expect("8 bytes"));
        out.insert(seq, u16::from_be_bytes([f[10], f[11]]));
    }
    out
}

#[test]
fn nothing_causally_after_a_new_version_sees_an_old_one() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = Fabric::up(&two_switch_topology("tcausal"), &fabric_pin_root()).expect("fabric");
    let l2 = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &l2).expect("l2");
    let mut current = f.install("vs1", &marked(1)).expect("set 1");
    let st = f.lab().state().clone();
    let (h1, h3) = (st.host("h1").expect("h1"), st.host("h3").expect("h3"));
    let (h1_ip, h3_ip) = (h1.ip.addr, h3.ip.addr);
    let cap_h1 = Capture::start(
        &h1.netns,
        &h1.ifname,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let cap_h3 = Capture::start(
        &h3.netns,
        &h3.ifname,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // h3 echoes every request straight back.
    let echo = {
        let ns = h3.netns.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            lime_lab::netns::run_in_netns(&ns, move || {
                let s = UdpSocket::bind((h3_ip, REQ_PORT)).expect("bind");
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
            })
            .expect("echo");
        })
    };
    // h1 sends the next request as soon as the reply to the last one arrives.
    let pinger = {
        let ns = h1.netns.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            lime_lab::netns::run_in_netns(&ns, move || {
                let s = UdpSocket::bind((h1_ip, REP_PORT)).expect("bind");
                s.set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("timeout");
                let mut seq: u64 = 0;
                let mut answered = 0u64;
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    s.send_to(&seq.to_be_bytes(), (h3_ip, REQ_PORT))
                        .expect("send");
                    if let Ok(n) = s.recv(&mut buf)
                        && n == 8
                    {
                        answered += 1;
                    }
                    seq += 1;
                }
                answered
            })
            .expect("pinger")
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    for k in 2..=UPDATES {
        let (added, _) = f.update("vs1", &current, &marked(k)).expect("update");
        current = added;
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let answered = pinger.join().expect("pinger");
    echo.join().expect("echo");
    let (at_h3, at_h1) = (cap_h3.finish(), cap_h1.finish());
    let req = marks(&at_h3, REQ_PORT);
    let rep = marks(&at_h1, REP_PORT);
    assert!(answered > 500, "the ping-pong ran ({answered} exchanges)");
    let mut checked = 0;
    let mut violations = Vec::new();
    let mut seqs: Vec<u64> = req.keys().copied().collect();
    seqs.sort_unstable();
    for n in seqs {
        let (Some(&q), Some(&r)) = (req.get(&n), rep.get(&n)) else {
            continue;
        };
        checked += 1;
        if r < q {
            violations.push(format!("reply {n} by version {r} after its request by {q}"));
        }
        if let Some(&next) = req.get(&(n + 1))
            && next < r
        {
            violations.push(format!(
                "request {} by version {next} after the reply {n} by {r}",
                n + 1
            ));
        }
    }
    let versions: std::collections::BTreeSet<u16> = req.values().copied().collect();
    eprintln!(
        "{answered} exchanges, {checked} checked, {} versions seen, {} violations",
        versions.len(),
        violations.len()
    );
    assert!(
        versions.len() > 50,
        "the updates overlapped the ping-pong ({} versions seen)",
        versions.len()
    );
    assert!(
        violations.is_empty(),
        "{} causality violations, e.g. {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
}
