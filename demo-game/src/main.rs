//! Kiln's demo game. The playable village comes with the demo issue; until then
//! `cargo xtask demo` plays a scripted conversation with each shipped NPC instead.

fn main() {
    eprintln!(
        "kiln-demo: the playable village is not built yet; run `cargo xtask demo` for the NPC tour"
    );
    std::process::exit(2);
}
