//! First light: one rule, one frame.
use lime_tests::{Emitted, TestDatapath, VSW, kernel_lock, require_root, run};
use lime_userspace::flow::{Action, Instructions, Match, Rule};

#[test]
fn one_rule_forwards() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::new("smoke");
    let rule = Rule::new(
        0,
        10,
        Match {
            eth_type: Some(0x0800),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(3)]),
    );
    let ids = t.dp.install(VSW, &[rule]).expect("install");
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&46u16.to_be_bytes());
    frame[23] = 17;
    let out = run(&t.dp, &frame);
    match out {
        Emitted::Remote {
            port, frame: inner, ..
        } => {
            assert_eq!(port, 3);
            assert_eq!(inner, frame);
        }
        other => panic!(
            "expected remote output, got {other:?}; drops {:?}",
            t.dp.kernel().drops()
        ),
    }
    let st = t.dp.rule_stats(ids[0]).expect("stats");
    assert_eq!((st.packets, st.bytes), (1, 60));
}
