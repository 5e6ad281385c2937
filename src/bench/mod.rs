//! Benchmark workloads behind `edtalk bench`. Each area's `run` prints one JSON line per
//! figure on stdout, e.g. `{"bench":"steady_state","ms_per_frame":312.5}`.

pub mod align;
pub mod layers;
pub mod memory;
pub mod neural;
#[cfg(feature = "plugin")]
pub mod plugin;
pub mod procedural;

/// Settings shared by every benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Inference threads (candle's CPU thread pool).
    pub threads: usize,
    /// Fewer iterations, for smoke tests.
    pub quick: bool,
    /// Whether the neural figures run with [`crate::heap::retain_freed_memory`] (as the
    /// plugin and the CLI do by default) or with the allocator's defaults.
    pub retain_freed_memory: bool,
    /// Checkpoint directory for the figures that load the real checkpoints
    /// (`plugin_startup`).
    pub ckpt_dir: std::path::PathBuf,
    /// The arithmetic of the decoder's convolutions in the neural and layer figures
    /// (`--precision`); f32 by default.
    pub precision: crate::model::Precision,
    /// The neural group prints only `steady_state` (and `precision_error`), over more
    /// frames: `edtalk bench --only steady_state`, for comparing builds and precisions.
    pub steady_state_only: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            quick: false,
            retain_freed_memory: true,
            ckpt_dir: "ckpts".into(),
            precision: crate::model::Precision::F32,
            steady_state_only: false,
        }
    }
}

/// Prints one figure as a JSON line and returns it.
pub fn emit(figure: serde_json::Value) -> serde_json::Value {
    println!("{figure}");
    figure
}
pub mod audio;
