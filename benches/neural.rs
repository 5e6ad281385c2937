//! `cargo bench --no-default-features --bench neural -- [--threads N] [--quick]
//! [--malloc-defaults]`: the
//! full-size EDTalk generator with seeded random weights; one JSON line per figure.

use bevy_edtalk::bench::{BenchOptions, neural};

fn main() {
    let mut opts = BenchOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => match args.next().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n > 0 => opts.threads = n,
                _ => {
                    eprintln!("--threads needs a positive number");
                    std::process::exit(2);
                }
            },
            "--quick" => opts.quick = true,
            "--malloc-defaults" => opts.retain_freed_memory = false,
            // cargo bench passes `--bench`; ignore it and anything else it adds.
            _ => {}
        }
    }
    // candle sizes its matmul split from RAYON_NUM_THREADS; set it before any thread
    // exists so the split and the pool agree.
    // SAFETY: nothing else runs yet, so no other thread reads the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", opts.threads.to_string()) };
    if let Err(e) = neural::run(&opts) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
