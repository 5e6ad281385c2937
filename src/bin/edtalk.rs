//! `edtalk`: offline rendering, baking, checkpoint inspection and benchmarks.
fn main() {
    eprintln!("edtalk: no commands yet");
}
