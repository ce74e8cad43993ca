fn main() {
    let obj = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lime"));
    let mut ebpf = aya::Ebpf::load(obj).expect("load");
    for name in ["lime_xdp", "lime_table", "lime_pass", "lime_floor"] {
        let p: &mut aya::programs::Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
        match p.load() {
            Ok(()) => println!("{name}: loaded"),
            Err(e) => { println!("{name}: {e:?}"); }
        }
    }
}
