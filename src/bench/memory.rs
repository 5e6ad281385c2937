//! Memory of the neural renderer (`edtalk bench --only memory`), stage by stage, for the
//! full-size generator (`EDTalk.pt`/`.safetensors` from `--ckpts` when there is one, else
//! seeded random weights built in memory), run the way the plugin runs it: one
//! generator, each character's identity and expression cached, all characters decoded in
//! one batched call per frame.
//!
//! One JSON line per stage with the resident memory now (`rss_mb`, VmRSS) and the peak so
//! far (`peak_rss_mb`, VmHWM), then one summary line:
//! * `memory`: `peak_rss_mb` with one talking character (weights loaded, identity encoded,
//!   frames decoded), and `per_extra_character_mb`, the growth of that peak per character
//!   added to the same generator (its identity and expression caches, and its share of
//!   the batched decode's activations), averaged over the second and third.
//!
//! Figures are in MiB. The peak is the process's, so `edtalk bench` runs this group before
//! any other.

use candle_core::DType;
use serde_json::json;

use super::neural::{
    BenchError, NormalStream, OFFICIAL_CHANNELS, STYLE_DIM, coeffs, generator_layout, peak_rss_mb,
    random_images, random_state_dict, rss_mb, set_threads,
};
use super::{BenchOptions, emit};
use crate::model::ckpt_dir::CheckpointDir;
use crate::model::{ExpressionFeats, Generator, Identity};

/// Characters decoded together at the last stage.
const MAX_CHARACTERS: usize = 3;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Prints one stage's resident and peak memory; returns the peak.
fn stage(opts: &BenchOptions, name: &str) -> f64 {
    let peak = peak_rss_mb().unwrap_or(f64::NAN);
    emit(json!({
        "bench": "memory_stage",
        "threads": opts.threads,
        "stage": name,
        "rss_mb": round1(rss_mb().unwrap_or(f64::NAN)),
        "peak_rss_mb": round1(peak),
    }));
    peak
}

/// Runs the stages on the CPU in f32 and prints them; returns the summary figure.
pub fn run(opts: &BenchOptions) -> Result<serde_json::Value, BenchError> {
    set_threads(opts.threads)?;
    if opts.retain_freed_memory {
        crate::heap::retain_freed_memory();
    }
    let device = candle_core::Device::Cpu;
    let frames = if opts.quick { 1 } else { 4 };
    stage(opts, "start");

    let file = CheckpointDir::scan(&opts.ckpt_dir).edtalk;
    let mut generator = match &file {
        // The plugin's path: the file read into a state dict, then built.
        Some(path) => Generator::load(path, &device, DType::F32)?,
        None => {
            let layout = generator_layout(&OFFICIAL_CHANNELS, STYLE_DIM, true);
            let weights = random_state_dict(&layout, 0x00ED_7A1C)?;
            stage(opts, "state_dict");
            // The map is given away, so each raw tensor goes as its layer is built.
            Generator::from_state_dict(weights, &device, DType::F32)?
        }
    };
    // In bf16 each convolution keeps a bf16 copy of its weight, made on first use.
    generator.set_precision(opts.precision);
    stage(opts, "generator");

    let mut rng = NormalStream::new(7);
    let size = generator.size();
    let sources = random_images(&mut rng, MAX_CHARACTERS, size, &device)?;
    let alpha_exp = coeffs(&mut rng, 1, generator.exp_dim(), &device)?;
    let lips = coeffs(&mut rng, MAX_CHARACTERS, generator.lip_dim(), &device)?;
    let mut cached: Vec<(Identity, ExpressionFeats)> = Vec::new();
    let mut peaks = Vec::new();
    for n in 1..=MAX_CHARACTERS {
        let identity = generator.encode_identity(&sources.narrow(0, n - 1, 1)?)?;
        let expr = generator.expression(&identity, Some(&alpha_exp))?;
        cached.push((identity, expr));
        stage(opts, &format!("identity_{n}"));
        let items: Vec<_> = cached.iter().map(|(i, e)| (i, e)).collect();
        let pose = cached[0]
            .0
            .own
            .pose
            .broadcast_as((n, generator.pose_dim()))?;
        let lip = lips.narrow(0, 0, n)?;
        for _ in 0..frames {
            generator.decode_many(&items, &lip, &pose.contiguous()?)?;
        }
        peaks.push(stage(opts, &format!("frames_{n}")));
    }
    let per_extra = (peaks[MAX_CHARACTERS - 1] - peaks[0]) / (MAX_CHARACTERS - 1) as f64;
    Ok(emit(json!({
        "bench": "memory",
        "threads": opts.threads,
        "precision": generator.precision().name(),
        "malloc": if opts.retain_freed_memory { "retain_freed_memory" } else { "default" },
        "weights": file.map_or("random".into(), |p| p.display().to_string()),
        "peak_rss_mb": round1(peaks[0]),
        "per_extra_character_mb": round1(per_extra),
        "characters_measured": MAX_CHARACTERS,
    })))
}
