//! Criterion benchmarks of the OpenFlow codec's hot paths: decoding and encoding a
//! FLOW_MOD (what a controller sends most) and a PACKET_IN (what the switch sends most).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::{hint::black_box, net::Ipv4Addr};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lime_openflow::{
    Action, FlowMod, Instruction, MacAddr, Masked, Match, Message, OxmField, PacketIn,
};

fn exact<T>(value: T) -> Masked<T> {
    Masked { value, mask: None }
}

/// A typical L3 flow: IPv4/UDP to a /24 and a port, two actions.
fn flow_mod() -> Message {
    Message::FlowMod(FlowMod {
        cookie: 0x1234,
        priority: 100,
        r#match: Match::new(vec![
            OxmField::EthType(exact(0x0800)),
            OxmField::IpProto(exact(17)),
            OxmField::Ipv4Dst(Masked {
                value: Ipv4Addr::new(10, 1, 2, 0),
                mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            }),
            OxmField::UdpDst(exact(4789)),
        ]),
        instructions: vec![Instruction::ApplyActions(vec![
            Action::Output {
                port: 2,
                max_len: 0,
            },
            Action::Output {
                port: 3,
                max_len: 0,
            },
        ])],
        ..FlowMod::default()
    })
}

fn packet_in() -> Message {
    Message::PacketIn(PacketIn {
        buffer_id: u32::MAX,
        total_len: 128,
        reason: 0,
        table_id: 0,
        cookie: 7,
        r#match: Match::new(vec![
            OxmField::InPort(exact(1)),
            OxmField::EthDst(exact::<MacAddr>([2, 0, 0, 0, 0, 2])),
        ]),
        data: Bytes::from(vec![0xab; 128]),
    })
}

fn encoded(m: &Message) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(1, &mut b).expect("encodes");
    b.freeze()
}

fn codec(c: &mut Criterion) {
    for (name, msg) in [("flow_mod", flow_mod()), ("packet_in", packet_in())] {
        let bytes = encoded(&msg);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("decode", |b| {
            b.iter(|| Message::decode(black_box(&bytes)).expect("decodes"));
        });
        g.bench_function("encode", |b| {
            let mut buf = BytesMut::with_capacity(256);
            b.iter(|| {
                buf.clear();
                black_box(&msg).encode(1, &mut buf).expect("encodes");
            });
        });
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
