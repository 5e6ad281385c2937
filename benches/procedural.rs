//! `cargo bench --no-default-features --bench procedural`: frames per second of the
//! procedural renderer at 256 px on one thread.
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let opts = bevy_edtalk::bench::BenchOptions {
        threads: 1,
        quick,
        ..Default::default()
    };
    bevy_edtalk::bench::procedural::run(&opts);
}
