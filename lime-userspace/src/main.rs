fn main() {
    let obj = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lime"));
    let mut ebpf = aya::Ebpf::load(obj).expect("load");
    let p: &mut aya::programs::Xdp = ebpf.program_mut("lime_pass").unwrap().try_into().unwrap();
    p.load().expect("verifier");
    println!("loaded ok, {} bytes", obj.len());
}
