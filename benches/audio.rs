//! `cargo bench --bench audio`: the audio benchmarks as JSON lines. Candle's CPU work runs
//! on the number of threads in `RAYON_NUM_THREADS` (set it to 1 for the one-core figure).

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let options = bevy_edtalk::bench::BenchOptions {
        threads,
        quick,
        ..Default::default()
    };
    bevy_edtalk::bench::audio::run(&options);
}
