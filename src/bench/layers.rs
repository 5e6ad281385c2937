//! Per-layer speed of the CPU convolution kernels at the full-size decoder's shapes
//! (`edtalk bench --only layers`): for each feature-map side, the stride-1 3x3 modulated
//! conv as direct shifted-tap GEMMs and as Winograd F(2x2, 3x3), and the stride-2
//! transposed conv that upsamples into that side, with its blur, and `ToFlow`'s warp and
//! blend. One JSON line per layer, e.g.
//! `{"bench":"conv3x3","side":64,"in":256,"out":256,"direct_ms":..,"winograd_ms":..}`;
//! `gflops` figures count the direct convolution's multiply-adds, so they compare (a
//! Winograd conv does 4/9 of them, so its share can pass 1).
//!
//! The run first measures the machine's GEMM peak (`gemm_peak`: one single-threaded GEMM
//! per thread at once, as the kernels run them inside their tiles, best of a few shapes) and gives each conv's
//! `peak_share`, its rate over that peak. The last line, `layers_total`, adds up the layers
//! as the decoder runs them (Winograd from 256 channels, else direct) for one frame, next
//! to the time those multiply-adds would take at the GEMM peak.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde_json::json;

use super::neural::{BenchError, NormalStream, OFFICIAL_CHANNELS, set_threads};
use super::{BenchOptions, emit};
use crate::model::cpu::{self, Act, Epilogue, TapWeight, WINOGRAD_MIN_CHANNELS};
use crate::model::layers::upfirdn::Fir;

fn random(rng: &mut NormalStream, shape: &[usize], scale: f32) -> Result<Tensor, BenchError> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.next_normal() * scale).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Best of `reps` timed calls after a warm-up, in milliseconds.
fn best_ms(
    reps: usize,
    mut f: impl FnMut() -> Result<Tensor, BenchError>,
) -> Result<f64, BenchError> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// GEMM shapes `(m, n, k)` tried for the peak: output channels x tile pixels x input
/// channels, as the kernels' tiles give them; the best counts.
const PEAK_SHAPES: [(usize, usize, usize); 3] =
    [(512, 512, 512), (256, 1024, 512), (512, 256, 2048)];

/// The GEMM peak in GFLOP/s: every thread of the pool runs its own single-threaded GEMM
/// at the same time (the kernels' pattern); best of `reps` rounds over [`PEAK_SHAPES`].
fn gemm_peak_gflops(threads: usize, reps: usize) -> f64 {
    PEAK_SHAPES
        .iter()
        .map(|&shape| gemm_gflops(threads, reps, shape))
        .fold(0.0, f64::max)
}

fn gemm_gflops(threads: usize, reps: usize, (m, n, k): (usize, usize, usize)) -> f64 {
    use rayon::prelude::*;
    let mut bufs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..threads)
        .map(|t| {
            let a = (0..m * k).map(|i| ((i + t) % 7) as f32 * 0.1).collect();
            let b = (0..k * n).map(|i| ((i + t) % 5) as f32 * 0.1).collect();
            (a, b, vec![0.0; m * n])
        })
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..=reps {
        let start = Instant::now();
        bufs.par_iter_mut().for_each(|(a, b, c)| {
            // SAFETY: a is m x k, b k x n and c m x n, row-major, distinct, alive for the
            // call.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k * threads) as f64 / best / 1e9
}

/// Times every decoder conv shape on the CPU and prints one JSON line per layer.
pub fn run(opts: &BenchOptions) -> Result<Vec<serde_json::Value>, BenchError> {
    set_threads(opts.threads)?;
    let reps = if opts.quick { 1 } else { 3 };
    // The convolutions' arithmetic (`--precision`); what runs here is printed per line.
    let precision = opts.precision.effective();
    let mut rng = NormalStream::new(11);
    // The peak is measured before and after the layers and the better one kept, so that a
    // slow start (clock ramp, another process) does not make the shares look high; the
    // lines are printed once it is known. `rates[i]`: line i's GFLOP/s, if a conv.
    let peak_before = gemm_peak_gflops(opts.threads, reps);
    let mut figures = Vec::new();
    let mut rates: Vec<Option<f64>> = Vec::new();
    // One frame as the decoder runs it: (ms, direct-count GFLOP).
    let (mut total_ms, mut total_gflop) = (0.0, 0.0);
    for pair in OFFICIAL_CHANNELS.windows(2) {
        let ((prev_side, cin), (side, c)) = (pair[0], pair[1]);
        let x = random(&mut rng, &[1, c, side, side], 1.0)?;
        let w = random(&mut rng, &[c, c, 3, 3], 1.0 / (9.0 * c as f32).sqrt())?;
        let style = random(&mut rng, &[1, c], 1.0)?;
        let demod = random(&mut rng, &[1, c], 1.0)?;
        let bias = random(&mut rng, &[c], 1.0)?;
        let epi = Epilogue {
            out_scale: Some(&demod),
            bias: Some(&bias),
            act: Act::ScaledLrelu,
            ..Default::default()
        };
        let (direct, wino) = (TapWeight::new(&w)?, TapWeight::winograd(&w)?);
        let conv = |tw: &TapWeight| {
            cpu::with_precision(precision, || {
                cpu::conv2d(&x, tw, (1, 1), 1, Some(&style), &epi)
            })
        };
        let direct_ms = best_ms(reps, || Ok(conv(&direct)?))?;
        let winograd_ms = best_ms(reps, || Ok(conv(&wino)?))?;
        let gflop = 2.0 * (c * c * 9 * side * side) as f64 / 1e9;
        // In bf16 a Winograd weight runs direct from its recovered taps (both columns
        // then time the direct conv).
        let (used, used_ms) = if precision == cpu::Precision::Bf16 {
            ("direct", winograd_ms)
        } else if c >= WINOGRAD_MIN_CHANNELS {
            ("winograd", winograd_ms)
        } else {
            ("direct", direct_ms)
        };
        total_ms += used_ms;
        total_gflop += gflop;
        rates.push(Some(gflop / used_ms * 1e3));
        figures.push(json!({
            "bench": "conv3x3",
            "threads": opts.threads,
            "precision": precision.name(),
            "side": side,
            "in": c,
            "out": c,
            "direct_ms": round1(direct_ms),
            "winograd_ms": round1(winograd_ms),
            "direct_gflops": round1(gflop / direct_ms * 1e3),
            "winograd_gflops": round1(gflop / winograd_ms * 1e3),
            "used": used,
        }));

        let xu = random(&mut rng, &[1, cin, prev_side, prev_side], 1.0)?;
        let wu = random(&mut rng, &[c, cin, 3, 3], 1.0 / (9.0 * cin as f32).sqrt())?;
        let su = random(&mut rng, &[1, cin], 1.0)?;
        let tu = TapWeight::new(&wu)?;
        let up_ms = best_ms(reps, || {
            Ok(cpu::with_precision(precision, || {
                cpu::conv_transpose3x3_s2(&xu, &tu, Some(&su), Some(&demod))
            })?)
        })?;
        let gflop = 2.0 * (c * cin * 9 * prev_side * prev_side) as f64 / 1e9;
        // The blur after it, on its (2 * prev_side + 2)-sided output.
        let up_out = cpu::conv_transpose3x3_s2(&xu, &tu, Some(&su), Some(&demod))?;
        let blur = Fir::blur(1, 0, 2.0);
        let blur_ms = best_ms(reps, || Ok(blur.forward(&up_out)?))?;
        total_ms += up_ms + blur_ms;
        total_gflop += gflop;
        rates.push(Some(gflop / up_ms * 1e3));
        figures.push(json!({
            "bench": "conv_transpose3x3_s2",
            "threads": opts.threads,
            "precision": precision.name(),
            "side": side,
            "in": cin,
            "out": c,
            "ms": round1(up_ms),
            "gflops": round1(gflop / up_ms * 1e3),
            "blur_ms": round1(blur_ms),
        }));

        // ToFlow's fused warp and blend: offsets of about one pixel.
        let feat = random(&mut rng, &[1, c, side, side], 1.0)?;
        let flow = random(&mut rng, &[1, 3, side, side], 0.01)?;
        let lin: Vec<f32> = (0..side)
            .map(|i| -1.0 + 2.0 * i as f32 / (side - 1) as f32)
            .collect();
        let ms = best_ms(
            reps,
            || Ok(cpu::warp_blend(&feat, &x, &flow, &lin, &lin)?.0),
        )?;
        total_ms += ms;
        rates.push(None);
        figures.push(json!({
            "bench": "warp_blend",
            "threads": opts.threads,
            "side": side,
            "channels": c,
            "ms": round1(ms),
        }));
    }
    let peak = peak_before.max(gemm_peak_gflops(opts.threads, reps));
    let mut out = vec![emit(json!({
        "bench": "gemm_peak",
        "threads": opts.threads,
        "gflops": round1(peak),
    }))];
    for (mut f, rate) in figures.into_iter().zip(rates) {
        if let Some(r) = rate {
            f["peak_share"] = json!(round2(r / peak));
        }
        out.push(emit(f));
    }
    out.push(emit(json!({
        "bench": "layers_total",
        "threads": opts.threads,
        "ms": round1(total_ms),
        "gflop": round1(total_gflop),
        "ms_at_gemm_peak": round1(total_gflop / peak * 1e3),
        "note": "3x3 convs, transposed convs with blur, warp and blend of one frame; \
                 not ToRGB, ToFlow's 1x1 conv, the skips' upsampling or the 4 px conv",
    })));
    Ok(out)
}
