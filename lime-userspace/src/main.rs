//! `lime`: the command-line interface.
fn main() {
    println!("lime: CLI under construction");
}
