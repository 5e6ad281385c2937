//! Speed of the neural renderer: the full-size EDTalk generator (channel table
//! {4:512, 8:512, 16:512, 32:512, 64:256, 128:128, 256:64}, style 512, 256 px) with seeded
//! random weights, so it runs without the official checkpoints.
//!
//! Figures, in milliseconds per video frame, batch 1 unless named:
//! * `demo_loop`: what the official demo does per frame: encode the source and the pose
//!   frame, run the expression blocks (EEM), decode;
//! * `decoder_with_eem`: identity cached, EEM recomputed, decode;
//! * `steady_state`: identity, EEM and pose cached, decode only (a talking character);
//! * `steady_state_thread`: the same on a spawned thread, like the plugin's inference thread;
//! * `batch4_per_frame`: steady state for four characters in one call, per frame;
//! * `peak_rss_mb`: the process's peak resident memory (VmHWM) after all of these, the
//!   four-character batch included (`bench --only memory` has the one-character figure).
//!
//! Each timed figure also has `cpu_ms_per_frame`, the process's CPU time (all threads) per
//! frame: on a shared machine it moves less with others' load than the wall time.
//!
//! With `--precision bf16` the decoder runs its convolutions in bf16 (every figure says
//! which `precision` ran), and `precision_error` compares one steady-state frame with the
//! f32 one: the largest and mean absolute difference in 8-bit levels (images in [-1, 1]
//! map to 0..255) and the PSNR.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde_json::json;

use super::{BenchOptions, emit};
use crate::model::{Generator, ModelError};

/// Channels per feature-map side of the official checkpoints.
pub const OFFICIAL_CHANNELS: [(usize, usize); 7] = [
    (4, 512),
    (8, 512),
    (16, 512),
    (32, 512),
    (64, 256),
    (128, 128),
    (256, 64),
];

/// Latent width of the official checkpoints.
pub const STYLE_DIM: usize = 512;

/// Errors of the neural benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Building or running the generator failed.
    #[error("neural benchmark: {0}")]
    Model(Box<ModelError>),
    /// A tensor operation outside the model failed.
    #[error("neural benchmark: tensor operation: {0}")]
    Candle(Box<candle_core::Error>),
    /// The thread pool could not be set up as asked.
    #[error("neural benchmark: {0}")]
    Threads(String),
}

impl From<ModelError> for BenchError {
    fn from(e: ModelError) -> Self {
        Self::Model(Box::new(e))
    }
}

impl From<candle_core::Error> for BenchError {
    fn from(e: candle_core::Error) -> Self {
        Self::Candle(Box::new(e))
    }
}

/// Names and shapes of a generator state dict (`gen` of EDTalk.pt, or of
/// EDTalk_lip_pose.pt when `with_expression` is false) for a channel table `channels`
/// (side → width, from 4 px up to the image size), a latent width and bank sizes
/// (mouth 20, pose 6, expression 10 in the official files). In checkpoint order.
pub fn generator_layout(
    channels: &[(usize, usize)],
    style: usize,
    with_expression: bool,
) -> Vec<(String, Vec<usize>)> {
    let ch = |side: usize| {
        channels
            .iter()
            .find(|(s, _)| *s == side)
            .map_or(0, |(_, c)| *c)
    };
    let size = channels.iter().map(|(s, _)| *s).max().unwrap_or(4);
    let octaves = size.trailing_zeros() as usize - 2; // blocks between 4 px and `size`
    let mut l: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |name: String, shape: &[usize]| l.push((name, shape.to_vec()));

    // Encoder: 1x1 stem, one downsampling residual block per octave, 4x4 conv to the latent.
    let e = "enc.net_app.convs";
    add(format!("{e}.0.0.weight"), &[ch(size), 3, 1, 1]);
    add(format!("{e}.0.1.bias"), &[1, ch(size), 1, 1]);
    for i in 1..=octaves {
        let (cin, cout) = (ch(size >> (i - 1)), ch(size >> i));
        add(format!("{e}.{i}.conv1.0.weight"), &[cin, cin, 3, 3]);
        add(format!("{e}.{i}.conv1.1.bias"), &[1, cin, 1, 1]);
        add(format!("{e}.{i}.conv2.0.kernel"), &[4, 4]);
        add(format!("{e}.{i}.conv2.1.weight"), &[cout, cin, 3, 3]);
        add(format!("{e}.{i}.conv2.2.bias"), &[1, cout, 1, 1]);
        add(format!("{e}.{i}.skip.0.kernel"), &[4, 4]);
        add(format!("{e}.{i}.skip.1.weight"), &[cout, cin, 1, 1]);
    }
    add(format!("{e}.{}.weight", octaves + 1), &[style, ch(4), 4, 4]);

    // Decoder.
    let c4 = ch(4);
    add("dec.input.input".into(), &[1, c4, 4, 4]);
    let styled = |name: &str, cout: usize, cin: usize, up: bool| {
        let mut v = vec![(format!("{name}.conv.weight"), vec![1, cout, cin, 3, 3])];
        if up {
            v.push((format!("{name}.conv.blur.kernel"), vec![4, 4]));
        }
        v.push((format!("{name}.conv.modulation.weight"), vec![cin, style]));
        v.push((format!("{name}.conv.modulation.bias"), vec![cin]));
        v.push((format!("{name}.noise.weight"), vec![1]));
        v.push((format!("{name}.activate.bias"), vec![1, cout, 1, 1]));
        v
    };
    for (n, s) in styled("dec.conv1", c4, c4, false) {
        add(n, &s);
    }
    add("dec.to_rgb1.bias".into(), &[1, 3, 1, 1]);
    add("dec.to_rgb1.conv.0.weight".into(), &[3, c4, 1, 1]);
    add("dec.to_rgb1.conv.1.bias".into(), &[1, 3, 1, 1]);
    for i in 0..octaves {
        let side = 8 << i;
        let (cin, cout) = (ch(side / 2), ch(side));
        for (n, s) in styled(&format!("dec.convs.{}", 2 * i), cout, cin, true) {
            add(n, &s);
        }
        for (n, s) in styled(&format!("dec.convs.{}", 2 * i + 1), cout, cout, false) {
            add(n, &s);
        }
    }
    for i in 0..octaves {
        let c = ch(8 << i);
        add(format!("dec.to_rgbs.{i}.bias"), &[1, 3, 1, 1]);
        add(format!("dec.to_rgbs.{i}.upsample.kernel"), &[4, 4]);
        add(format!("dec.to_rgbs.{i}.conv.0.weight"), &[3, c, 1, 1]);
        add(format!("dec.to_rgbs.{i}.conv.1.bias"), &[1, 3, 1, 1]);
    }
    for i in 0..octaves {
        let c = ch(8 << i);
        add(format!("dec.to_flows.{i}.bias"), &[1, 3, 1, 1]);
        add(format!("dec.to_flows.{i}.upsample.kernel"), &[4, 4]);
        add(format!("dec.to_flows.{i}.conv.weight"), &[1, 3, c, 1, 1]);
        add(
            format!("dec.to_flows.{i}.conv.modulation.weight"),
            &[c, style],
        );
        add(format!("dec.to_flows.{i}.conv.modulation.bias"), &[c]);
    }
    if with_expression {
        // EEM: two 3x3 convs, each after an ADAIN whose MLP maps the latent through 128.
        for i in 0..octaves {
            let c = ch(8 << i);
            let b = format!("dec.fineadainresblock.{i}");
            add(format!("{b}.conv1.weight"), &[c, c, 3, 3]);
            add(format!("{b}.conv1.bias"), &[c]);
            add(format!("{b}.conv2.weight"), &[c, c, 3, 3]);
            add(format!("{b}.conv2.bias"), &[c]);
            for norm in ["norm1", "norm2"] {
                add(format!("{b}.{norm}.mlp_shared.0.weight"), &[128, style]);
                add(format!("{b}.{norm}.mlp_shared.0.bias"), &[128]);
                add(format!("{b}.{norm}.mlp_gamma.weight"), &[c, 128]);
                add(format!("{b}.{norm}.mlp_gamma.bias"), &[c]);
                add(format!("{b}.{norm}.mlp_beta.weight"), &[c, 128]);
                add(format!("{b}.{norm}.mlp_beta.bias"), &[c]);
            }
        }
    }

    // Motion banks and the coefficient heads.
    let (lip, pose, exp) = (20, 6, 10);
    add("direction_lipnonlip.weight".into(), &[style, lip + pose]);
    if with_expression {
        add("direction_exp.weight".into(), &[style, exp]);
    }
    for i in 0..4 {
        add(format!("fc.{i}.weight"), &[style, style]);
        add(format!("fc.{i}.bias"), &[style]);
    }
    let mut heads = vec![("lip_fc", lip), ("pose_fc", pose)];
    if with_expression {
        heads.push(("exp_fc", exp));
    }
    for (head, out) in heads {
        for i in 0..2 {
            add(format!("{head}.{i}.weight"), &[style, style]);
            add(format!("{head}.{i}.bias"), &[style]);
        }
        add(format!("{head}.2.weight"), &[out, style]);
        add(format!("{head}.2.bias"), &[out]);
    }
    l
}

/// A deterministic stream of standard normal numbers (splitmix64 + Box–Muller), so that
/// benchmark weights are the same on every run and machine.
#[derive(Clone, Debug)]
pub struct NormalStream {
    state: u64,
    spare: Option<f32>,
}

impl NormalStream {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// The next N(0, 1) sample.
    pub fn next_normal(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        self.spare = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }
}

/// A full state dict for `layout` with values shaped like the official initialisation:
/// N(0, 1) for the equalised layers (which scale by 1/√fan_in at run time), N(0, 1/fan_in)
/// for the EEM's plain convs and linears, ones for modulation biases, zeros for other
/// biases and the noise strengths, and the [1, 3, 3, 1] blur kernels (×4 when upsampling).
pub fn random_state_dict(
    layout: &[(String, Vec<usize>)],
    seed: u64,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut rng = NormalStream::new(seed);
    let mut out = HashMap::with_capacity(layout.len());
    for (name, shape) in layout {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with(".kernel") {
            let k = [1.0f32, 3.0, 3.0, 1.0];
            let gain = if name.starts_with("dec.") { 4.0 } else { 1.0 };
            (0..16).map(|i| k[i / 4] * k[i % 4] / 64.0 * gain).collect()
        } else if name.ends_with("modulation.bias") {
            vec![1.0; count]
        } else if name.ends_with("bias") || name.ends_with("noise.weight") {
            vec![0.0; count]
        } else {
            let scale = if name.starts_with("dec.fineadainresblock") {
                let fan_in: usize = shape[1..].iter().product();
                1.0 / (fan_in as f32).sqrt()
            } else {
                1.0
            };
            (0..count).map(|_| rng.next_normal() * scale).collect()
        };
        out.insert(
            name.clone(),
            Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?,
        );
    }
    Ok(out)
}

/// Sets the inference threads: builds rayon's global pool (which candle's CPU kernels and
/// gemm run on) with `threads` workers. Fails if the pool already exists with another size.
/// candle's matmul also reads `RAYON_NUM_THREADS` for its split; set that variable to the
/// same number before the program starts other threads (the bench binary does).
pub fn set_threads(threads: usize) -> Result<(), BenchError> {
    let threads = threads.max(1);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    let have = rayon::current_num_threads();
    if have != threads {
        return Err(BenchError::Threads(format!(
            "asked for {threads} threads but the thread pool already runs {have}"
        )));
    }
    Ok(())
}

/// Peak resident memory of this process in MiB (`VmHWM` of /proc/self/status); `None`
/// where that file does not exist.
pub fn peak_rss_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

/// A `kB` field of /proc/self/status in MiB.
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resident memory of this process now in MiB (`VmRSS`); `None` where
/// /proc/self/status does not exist.
pub fn rss_mb() -> Option<f64> {
    status_mb("VmRSS:")
}

/// `n` random images `(n, 3, size, size)` in [-1, 1].
pub(crate) fn random_images(
    rng: &mut NormalStream,
    n: usize,
    size: usize,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    // Smooth-ish values in [-1, 1]; content does not change the work done.
    let v: Vec<f32> = (0..n * 3 * size * size)
        .map(|_| (rng.next_normal() * 0.5).clamp(-1.0, 1.0))
        .collect();
    Tensor::from_vec(v, (n, 3, size, size), dev)
}

/// `(n, d)` random coefficients.
pub(crate) fn coeffs(
    rng: &mut NormalStream,
    n: usize,
    d: usize,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..n * d).map(|_| rng.next_normal() * 0.3).collect();
    Tensor::from_vec(v, (n, d), dev)
}

/// Minor page faults of this process so far (Linux), to show how much of a figure is the
/// kernel handing out fresh pages for large tensors.
pub fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; minflt is the 10th field overall.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}

/// CPU time of this process so far (all threads, user + system) in milliseconds (Linux).
/// On a shared machine wall time swings with other processes' load; CPU time counts only
/// while this process runs, so it compares builds better there.
pub fn cpu_time_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // utime and stime (fields 14 and 15) count USER_HZ ticks, 100 per second on Linux.
    Some((utime + stime) * 10.0)
}

/// Per-call cost of a timed loop.
struct PerCall {
    ms: f64,
    /// Minor page faults per call, where the OS reports them.
    faults: Option<f64>,
    /// CPU milliseconds per call (all threads), where the OS reports them.
    cpu_ms: Option<f64>,
}

/// Times `f` over `frames` calls after one warm-up call.
fn time_per_call(
    frames: usize,
    mut f: impl FnMut(usize) -> Result<(), BenchError>,
) -> Result<PerCall, BenchError> {
    f(0)?;
    let faults0 = minor_faults();
    let cpu0 = cpu_time_ms();
    let start = Instant::now();
    for i in 0..frames {
        f(i + 1)?;
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / frames as f64;
    let faults = faults0
        .zip(minor_faults())
        .map(|(a, b)| (b - a) as f64 / frames as f64);
    let cpu_ms = cpu0
        .zip(cpu_time_ms())
        .map(|(a, b)| (b - a) / frames as f64);
    Ok(PerCall { ms, faults, cpu_ms })
}

fn sync(t: &Tensor) -> Result<(), BenchError> {
    // Reading one value forces asynchronous devices to finish the frame.
    t.flatten_all()?
        .narrow(0, 0, 1)?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    Ok(())
}

/// Runs every figure on the first CUDA device if candle was built with it, else the CPU,
/// in f32, and prints each as a JSON line.
pub fn run(opts: &BenchOptions) -> Result<Vec<serde_json::Value>, BenchError> {
    let device = Device::cuda_if_available(0)?;
    run_on(opts, &device, DType::F32)
}

/// [`run`] on a given device and compute dtype.
pub fn run_on(
    opts: &BenchOptions,
    device: &Device,
    dtype: DType,
) -> Result<Vec<serde_json::Value>, BenchError> {
    if device.is_cpu() {
        set_threads(opts.threads)?;
    }
    let retained = opts.retain_freed_memory && crate::heap::retain_freed_memory();
    let precision = opts.precision.effective();
    if precision != opts.precision {
        eprintln!(
            "bench: precision {} is not available on this machine; running {}",
            opts.precision.name(),
            precision.name()
        );
    }
    let dev_name = if device.is_cpu() {
        "cpu".to_string()
    } else {
        format!("{device:?}")
    };
    let base = |bench: &str| {
        json!({
            "bench": bench,
            "threads": opts.threads,
            "device": dev_name,
            "dtype": format!("{dtype:?}").to_lowercase(),
            "precision": precision.name(),
            "malloc": if retained { "retain_freed_memory" } else { "default" },
        })
    };
    let with_ms = |bench: &str, per_frame: f64, call: &PerCall, extra: serde_json::Value| {
        let mut v = base(bench);
        v["ms_per_frame"] = json!((per_frame * 10.0).round() / 10.0);
        if let Some(f) = call.faults {
            v["page_faults_per_call"] = json!(f.round());
        }
        if let Some(c) = call.cpu_ms {
            // Per frame as the wall figure is (a batch call's CPU time shared out).
            v["cpu_ms_per_frame"] = json!((c * per_frame / call.ms).round());
        }
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        v
    };

    let frames = |full: usize| if opts.quick { 1 } else { full };
    let mut figures = Vec::new();

    // The machine's f32 GEMM rate through candle at a decoder-like shape (a 512-channel
    // 3x3 conv at 32 px), to read the other figures against: the steady-state decoder is
    // about 29.5 GFLOP per frame.
    let a = Tensor::ones((512, 4608), dtype, device)?;
    let b = Tensor::ones((4608, 1024), dtype, device)?;
    let ms = time_per_call(frames(3), |_| sync(&a.matmul(&b)?))?.ms;
    let mut v = base("gemm_gflops");
    v["gflops"] = json!((2.0 * 512.0 * 4608.0 * 1024.0 / (ms * 1e6) * 10.0).round() / 10.0);
    figures.push(emit(v));

    let layout = generator_layout(&OFFICIAL_CHANNELS, STYLE_DIM, true);
    let gen_weights = random_state_dict(&layout, 0x00ED_7A1C)?;
    // Given away, so that each raw tensor is freed once its layer is built.
    let mut generator = Generator::from_state_dict(gen_weights, device, dtype)?;
    generator.set_precision(precision);
    let size = generator.size();

    let mut rng = NormalStream::new(7);
    let (lip_dim, pose_dim, exp_dim) = (
        generator.lip_dim(),
        generator.pose_dim(),
        generator.exp_dim(),
    );
    let sources = random_images(&mut rng, 4, size, device)?.to_dtype(dtype)?;
    let pose_frames = random_images(&mut rng, 2, size, device)?.to_dtype(dtype)?;
    let source = sources.narrow(0, 0, 1)?;
    let lips = coeffs(&mut rng, 16, lip_dim, device)?;
    let alpha_exp = coeffs(&mut rng, 1, exp_dim, device)?;
    let lip_at = |i: usize| lips.narrow(0, i % 16, 1);

    // The official demo loop: everything recomputed every frame.
    if !opts.steady_state_only {
        let call = time_per_call(frames(3), |i| {
            let pose_img = pose_frames.narrow(0, i % 2, 1)?;
            let img = generator.edtalk_a_use_exp_weight(
                &source,
                &lip_at(i)?,
                Some(&pose_img),
                &alpha_exp,
            )?;
            sync(&img)
        })?;
        figures.push(emit(with_ms(
            "demo_loop",
            call.ms,
            &call,
            json!({"pytorch_reference_ms": 1443}),
        )));
    }

    let identity = generator.encode_identity(&source)?;
    let pose = generator.coefficients(&pose_frames.narrow(0, 0, 1)?)?.pose;

    if !opts.steady_state_only {
        let call = time_per_call(frames(3), |i| {
            let expr = generator.expression(&identity, Some(&alpha_exp))?;
            let img = generator.decode(&identity, &expr, &lip_at(i)?, &pose)?;
            sync(&img)
        })?;
        figures.push(emit(with_ms(
            "decoder_with_eem",
            call.ms,
            &call,
            json!({"pytorch_reference_ms": 499}),
        )));
    }

    let expr = generator.expression(&identity, Some(&alpha_exp))?;
    let steady_frames = if opts.steady_state_only { 12 } else { 5 };
    let call = time_per_call(frames(steady_frames), |i| {
        let img = generator.decode(&identity, &expr, &lip_at(i)?, &pose)?;
        sync(&img)
    })?;
    figures.push(emit(with_ms("steady_state", call.ms, &call, json!({}))));

    if precision != crate::model::Precision::F32 {
        let mut reference = generator.clone();
        reference.set_precision(crate::model::Precision::F32);
        let lip = lip_at(0)?;
        let got = generator.decode(&identity, &expr, &lip, &pose)?;
        let want = reference.decode(&identity, &expr, &lip, &pose)?;
        let mut v = base("precision_error");
        if let Some(obj) = v.as_object_mut() {
            obj.extend(image_error(&got, &want)?);
        }
        figures.push(emit(v));
    }
    if opts.steady_state_only {
        return Ok(figures);
    }

    // The same from a thread of its own, as the plugin's inference thread runs it: glibc
    // gives such a thread its own arena, which keeps less of the freed memory.
    let call = std::thread::scope(|s| {
        s.spawn(|| {
            time_per_call(frames(5), |i| {
                let img = generator.decode(&identity, &expr, &lip_at(i)?, &pose)?;
                sync(&img)
            })
        })
        .join()
        .unwrap_or_else(|_| Err(BenchError::Threads("the decode thread panicked".into())))
    })?;
    figures.push(emit(with_ms(
        "steady_state_thread",
        call.ms,
        &call,
        json!({}),
    )));

    // Four characters, each with its own identity and expression, one decode call.
    let mut ids = Vec::with_capacity(4);
    for k in 0..4 {
        let id = generator.encode_identity(&sources.narrow(0, k, 1)?)?;
        let e = generator.expression(&id, Some(&alpha_exp))?;
        ids.push((id, e));
    }
    let items: Vec<_> = ids.iter().map(|(i, e)| (i, e)).collect();
    let pose4 = pose.broadcast_as((4, pose_dim))?.contiguous()?;
    let call = time_per_call(frames(3), |i| {
        let lip4 = Tensor::cat(
            &[lip_at(i)?, lip_at(i + 1)?, lip_at(i + 2)?, lip_at(i + 3)?],
            0,
        )?;
        let img = generator.decode_many(&items, &lip4, &pose4)?;
        sync(&img)
    })?;
    figures.push(emit(with_ms(
        "batch4_per_frame",
        call.ms / 4.0,
        &call,
        json!({"ms_per_call": (call.ms * 10.0).round() / 10.0}),
    )));

    if let Some(mb) = peak_rss_mb() {
        let mut v = base("peak_rss_mb");
        v["mb"] = json!(mb.round());
        figures.push(emit(v));
    }
    Ok(figures)
}

/// How far image `got` is from `want` (both in [-1, 1]): `max_levels` and `mean_levels`,
/// the absolute difference in 8-bit levels (x 127.5), and `psnr_db` over the [-1, 1] range.
pub fn image_error(
    got: &Tensor,
    want: &Tensor,
) -> Result<serde_json::Map<String, serde_json::Value>, BenchError> {
    let d = (got.to_dtype(DType::F32)? - want.to_dtype(DType::F32)?)?;
    let d = d.flatten_all()?.to_vec1::<f32>()?;
    let n = d.len().max(1) as f64;
    let max = d.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let mean = d.iter().map(|v| v.abs() as f64).sum::<f64>() / n;
    let mse = d.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n;
    let psnr = 10.0 * (4.0 / mse.max(1e-20)).log10();
    let mut m = serde_json::Map::new();
    m.insert(
        "max_levels".into(),
        json!((max * 127.5 * 100.0).round() / 100.0),
    );
    m.insert(
        "mean_levels".into(),
        json!((mean * 127.5 * 1000.0).round() / 1000.0),
    );
    m.insert("psnr_db".into(), json!((psnr * 10.0).round() / 10.0));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_stream_is_deterministic_and_standard() {
        let mut a = NormalStream::new(42);
        let mut b = NormalStream::new(42);
        let xs: Vec<f32> = (0..20000).map(|_| a.next_normal()).collect();
        let ys: Vec<f32> = (0..20000).map(|_| b.next_normal()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / xs.len() as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn layout_parameter_counts_match_the_official_files() {
        // Parameter counts from the README (the blur kernels are buffers, not parameters).
        for (with_exp, params) in [(true, 64_228_397usize), (false, 46_173_091)] {
            let l = generator_layout(&OFFICIAL_CHANNELS, STYLE_DIM, with_exp);
            let n: usize = l
                .iter()
                .filter(|(name, _)| !name.ends_with(".kernel"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            assert_eq!(n, params);
        }
    }
}
