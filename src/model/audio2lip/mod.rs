//! Audio2Lip (official `networks/audio_encoder.py`): the Wav2Lip audio encoder, thirteen
//! Conv2d + BatchNorm (eval) + ReLU blocks, some residual, some with non-square strides,
//! turning one 80x16 mel window into a 512-vector, then `mapping`, a linear map to the 20
//! EDTalk mouth coefficients.
//!
//! BatchNorm is folded into the convolution at load: `w' = w * g / sqrt(var + eps)`,
//! `b' = (b - mean) * g / sqrt(var + eps) + beta`, so a block is one convolution.
//! On the CPU (f32) the whole network, mapping included, runs as batched convolutions
//! ([`cpu_net`]: the batch folded into the GEMM rows, every stride computed as such, bias,
//! residual and ReLU fused into the write-out). Elsewhere candle's conv2d runs each block;
//! it takes one stride for both axes, so a (3, 1) or (3, 2) stride runs at the strides'
//! common divisor (1) and keeps every 3rd row / 2nd column.

mod cpu_net;

use crate::audio::{MEL_BANDS, MEL_WINDOW};
use crate::model::cpu::{self, Act};
use crate::motion::LIP_DIM;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use cpu_net::{CpuNet, LayerSpec};
use std::collections::HashMap;

const BN_EPS: f64 = 1e-5;

/// Errors while building or running Audio2Lip.
#[derive(Debug, thiserror::Error)]
pub enum Audio2LipError {
    /// A tensor is missing or has the wrong shape.
    #[error("Audio2Lip weights: tensor '{name}': {source}")]
    Tensor {
        /// Checkpoint name of the tensor.
        name: String,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The input windows have the wrong shape.
    #[error(
        "Audio2Lip input: expected {expected} values ({frames} windows of 1x80x16), found {found}"
    )]
    Input {
        /// Windows requested.
        frames: usize,
        /// Values expected.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A candle operation failed while running the network.
    #[error("Audio2Lip forward: {0}")]
    Forward(#[from] candle_core::Error),
    /// The CPU kernels refused a shape (a bug: the network's shapes are fixed).
    #[error("Audio2Lip CPU kernels: {0}")]
    Kernel(#[from] crate::model::error::ModelError),
}

/// (cin, cout, kernel, stride (rows, cols), padding, residual) of one block.
type BlockSpec = (usize, usize, usize, (usize, usize), usize, bool);

/// The thirteen blocks of `audio_encoder`.
const BLOCKS: [BlockSpec; 13] = [
    (1, 32, 3, (1, 1), 1, false),
    (32, 32, 3, (1, 1), 1, true),
    (32, 32, 3, (1, 1), 1, true),
    (32, 64, 3, (3, 1), 1, false),
    (64, 64, 3, (1, 1), 1, true),
    (64, 64, 3, (1, 1), 1, true),
    (64, 128, 3, (3, 3), 1, false),
    (128, 128, 3, (1, 1), 1, true),
    (128, 128, 3, (1, 1), 1, true),
    (128, 256, 3, (3, 2), 1, false),
    (256, 256, 3, (1, 1), 1, true),
    (256, 512, 3, (1, 1), 0, false),
    (512, 512, 1, (1, 1), 0, false),
];

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// One `audio_encoder.{i}` block with BatchNorm folded in, for candle's tensor ops.
struct ConvBlock {
    weight: Tensor,
    /// `(1, O, 1, 1)`.
    bias: Tensor,
    stride: (usize, usize),
    padding: usize,
    residual: bool,
}

impl ConvBlock {
    /// Reads block `index` and folds its BatchNorm into the convolution.
    fn load(vb: &VarBuilder, index: usize, spec: BlockSpec) -> Result<Self, Audio2LipError> {
        let (cin, cout, k, stride, padding, residual) = spec;
        let prefix = format!("audio_encoder.{index}.conv_block");
        let get = |suffix: &str, shape: &[usize]| {
            let name = format!("{prefix}.{suffix}");
            vb.get(shape, &name)
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(|source| Audio2LipError::Tensor { name, source })
        };
        let w = get("0.weight", &[cout, cin, k, k])?;
        let b = get("0.bias", &[cout])?;
        let gamma = get("1.weight", &[cout])?;
        let beta = get("1.bias", &[cout])?;
        let mean = get("1.running_mean", &[cout])?;
        let var = get("1.running_var", &[cout])?;
        let fold = |w: &Tensor, b: &Tensor| -> candle_core::Result<(Tensor, Tensor)> {
            let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
            let weight = w.broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?;
            let bias = ((b - mean)? * &scale)?.add(&beta)?;
            Ok((weight, bias.reshape((1, cout, 1, 1))?))
        };
        let (weight, bias) = fold(&w, &b).map_err(|source| Audio2LipError::Tensor {
            name: format!("{prefix}.1 (BatchNorm fold)"),
            source,
        })?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
            residual,
        })
    }

    /// The block as a layer of the CPU network.
    fn spec(&self) -> candle_core::Result<LayerSpec> {
        let (o, c, k, _) = self.weight.dims4()?;
        Ok(LayerSpec {
            weight: self.weight.flatten_all()?.to_vec1()?,
            bias: self.bias.flatten_all()?.to_vec1()?,
            shape: (o, c, k),
            stride: self.stride,
            pad: self.padding,
            residual: self.residual,
            act: Act::Relu,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (sr, sc) = self.stride;
        // Convolve at the common divisor of the two strides, then keep every k-th row/column.
        let common = gcd(sr, sc);
        let mut y = x.conv2d(&self.weight, self.padding, common, 1, 1)?;
        for (axis, step) in [(2, sr / common), (3, sc / common)] {
            if step > 1 {
                let len = y.dim(axis)?;
                let keep: Vec<u32> = (0..len as u32).step_by(step).collect();
                let idx = Tensor::new(keep.as_slice(), y.device())?;
                y = y.index_select(&idx, axis)?;
            }
        }
        y = y.broadcast_add(&self.bias)?;
        if self.residual {
            y = (y + x)?;
        }
        y.relu()
    }
}

/// How the network runs.
enum Net {
    /// f32 on the CPU: the crate's batched kernels, mapping included.
    Cpu(CpuNet),
    /// Elsewhere: candle's tensor ops, block by block, then the mapping.
    Tensors {
        blocks: Vec<ConvBlock>,
        mapping: candle_nn::Linear,
    },
}

/// The Audio2Lip network, ready to run.
pub struct Audio2Lip {
    net: Net,
    device: Device,
}

impl Audio2Lip {
    /// Builds the network from a VarBuilder over the official state dict names
    /// (`audio_encoder.{i}.conv_block.{0,1}.*`, `mapping.{weight,bias}`).
    pub fn new(vb: VarBuilder) -> Result<Self, Audio2LipError> {
        Self::build(vb, true)
    }

    /// [`Audio2Lip::new`]; `kernels`: whether f32 on the CPU runs the crate's kernels (the
    /// tests compare them with the tensor-op path that other devices run).
    fn build(vb: VarBuilder, kernels: bool) -> Result<Self, Audio2LipError> {
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &spec)| ConvBlock::load(&vb, i, spec))
            .collect::<Result<Vec<_>, _>>()?;
        let get = |name: &str, shape: &[usize]| {
            vb.get(shape, name)
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(|source| Audio2LipError::Tensor {
                    name: name.to_string(),
                    source,
                })
        };
        let w = get("mapping.weight", &[LIP_DIM, 512])?;
        let b = get("mapping.bias", &[LIP_DIM])?;
        let net = if kernels && cpu::enabled_for(&w) {
            Net::Cpu(Self::cpu_net(&blocks, &w, &b)?)
        } else {
            Net::Tensors {
                blocks,
                mapping: candle_nn::Linear::new(w, Some(b)),
            }
        };
        Ok(Self {
            net,
            device: vb.device().clone(),
        })
    }

    /// The blocks and the mapping (a 1x1 convolution on the 1x1 output) as the CPU
    /// network.
    fn cpu_net(blocks: &[ConvBlock], w: &Tensor, b: &Tensor) -> Result<CpuNet, Audio2LipError> {
        let mut specs = blocks
            .iter()
            .map(ConvBlock::spec)
            .collect::<candle_core::Result<Vec<_>>>()?;
        specs.push(LayerSpec {
            weight: w.flatten_all()?.to_vec1()?,
            bias: b.to_vec1()?,
            shape: (LIP_DIM, 512, 1),
            stride: (1, 1),
            pad: 0,
            residual: false,
            act: Act::None,
        });
        Ok(CpuNet::new(specs, (MEL_BANDS, MEL_WINDOW))?)
    }

    /// Builds the network from a state dict (e.g. the 'audio2lip' entry of Audio2Lip.pt, or
    /// a safetensors file); f16/bf16 tensors are upcast to f32.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, Audio2LipError> {
        let tensors = tensors
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        Self::new(VarBuilder::from_tensors(tensors, DType::F32, device))
    }

    /// Random weights of the full-size shapes (for benchmarks and smoke tests).
    pub fn random(seed: u64, device: &Device) -> Result<Self, Audio2LipError> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let mut map = HashMap::new();
        let mut put = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| offset + scale * next()).collect();
            Tensor::from_vec(data, shape, device).map(|t| map.insert(name, t))
        };
        for (i, &(cin, cout, k, ..)) in BLOCKS.iter().enumerate() {
            let p = format!("audio_encoder.{i}.conv_block");
            let fan_in = (cin * k * k) as f32;
            put(
                format!("{p}.0.weight"),
                vec![cout, cin, k, k],
                1.0 / fan_in.sqrt(),
                0.0,
            )?;
            put(format!("{p}.0.bias"), vec![cout], 0.05, 0.0)?;
            put(format!("{p}.1.weight"), vec![cout], 0.1, 1.0)?;
            put(format!("{p}.1.bias"), vec![cout], 0.05, 0.0)?;
            put(format!("{p}.1.running_mean"), vec![cout], 0.05, 0.0)?;
            put(format!("{p}.1.running_var"), vec![cout], 0.1, 1.0)?;
        }
        put(
            "mapping.weight".into(),
            vec![LIP_DIM, 512],
            1.0 / 512f32.sqrt(),
            0.0,
        )?;
        put("mapping.bias".into(), vec![LIP_DIM], 0.0, 0.0)?;
        Self::from_tensors(map, device)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs a batch of windows `(N, 1, 80, 16)` to mouth coefficients `(N, 20)`.
    pub fn forward(&self, windows: &Tensor) -> Result<Tensor, Audio2LipError> {
        match &self.net {
            Net::Cpu(net) => {
                let n = windows.dim(0)?;
                let x: Vec<f32> = windows.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                let y = net.run(&x, n)?;
                Ok(Tensor::from_vec(y, (n, LIP_DIM), &self.device)?)
            }
            Net::Tensors { blocks, mapping } => {
                let mut x = windows.to_dtype(DType::F32)?;
                for block in blocks {
                    x = block.forward(&x)?;
                }
                let n = x.dim(0)?;
                Ok(mapping.forward(&x.reshape((n, 512))?)?)
            }
        }
    }

    /// Like [`Audio2Lip::forward`], timing each stage (on the calling thread): returns
    /// `(name, seconds)` for the thirteen blocks and the mapping (for `edtalk bench`).
    pub fn forward_profiled(
        &self,
        windows: &Tensor,
    ) -> Result<(Tensor, Vec<(String, f64)>), Audio2LipError> {
        let name = |i: usize| {
            if i < BLOCKS.len() {
                format!("block{i}")
            } else {
                "mapping".to_string()
            }
        };
        let n = windows.dim(0)?;
        match &self.net {
            Net::Cpu(net) => {
                let x: Vec<f32> = windows.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                let (y, times) = net.run_profiled(&x, n)?;
                let times = times.into_iter().enumerate().map(|(i, t)| (name(i), t));
                Ok((
                    Tensor::from_vec(y, (n, LIP_DIM), &self.device)?,
                    times.collect(),
                ))
            }
            Net::Tensors { blocks, mapping } => {
                let mut times = Vec::new();
                let mut x = windows.to_dtype(DType::F32)?;
                for (i, block) in blocks.iter().enumerate() {
                    let start = std::time::Instant::now();
                    x = block.forward(&x)?;
                    times.push((name(i), start.elapsed().as_secs_f64()));
                }
                let start = std::time::Instant::now();
                let y = mapping.forward(&x.reshape((n, 512))?)?;
                times.push((name(BLOCKS.len()), start.elapsed().as_secs_f64()));
                Ok((y, times))
            }
        }
    }

    /// Mouth coefficients for `frames` windows laid out as [`crate::audio::frame_windows`]
    /// returns them, run in batches of at most `batch` windows to bound memory.
    pub fn lip_coeffs(
        &self,
        windows: &[f32],
        frames: usize,
        batch: usize,
    ) -> Result<Vec<[f32; LIP_DIM]>, Audio2LipError> {
        let per = MEL_BANDS * MEL_WINDOW;
        if windows.len() != frames * per {
            return Err(Audio2LipError::Input {
                frames,
                expected: frames * per,
                found: windows.len(),
            });
        }
        let mut out = Vec::with_capacity(frames);
        for chunk in windows.chunks(batch.max(1) * per) {
            let n = chunk.len() / per;
            let y = match &self.net {
                // The CPU network reads the windows as they are: no tensor in between.
                Net::Cpu(net) => net.run(chunk, n)?,
                Net::Tensors { .. } => {
                    let x = Tensor::from_slice(chunk, (n, 1, MEL_BANDS, MEL_WINDOW), &self.device)?;
                    self.forward(&x)?.flatten_all()?.to_vec1()?
                }
            };
            out.extend(y.chunks_exact(LIP_DIM).map(|r| {
                let mut a = [0.0f32; LIP_DIM];
                a.copy_from_slice(r);
                a
            }));
        }
        Ok(out)
    }
}

/// The official demo's smoothing kernel: a 3-tap Gaussian with sigma 1, normalised
/// (`[0.27406862, 0.45186276, 0.27406862]`).
pub fn gaussian_kernel3() -> [f32; 3] {
    let side = (-0.5f64).exp();
    let sum = 1.0 + 2.0 * side;
    [(side / sum) as f32, (1.0 / sum) as f32, (side / sum) as f32]
}

/// Smooths coefficient frames over time with [`gaussian_kernel3`] and zero padding at both
/// ends, as the official demo's `conv_feat` does for a whole clip.
pub fn smooth_clip<const N: usize>(frames: &[[f32; N]]) -> Vec<[f32; N]> {
    let k = gaussian_kernel3();
    let zero = [0.0f32; N];
    (0..frames.len())
        .map(|t| {
            let prev = if t > 0 { &frames[t - 1] } else { &zero };
            let next = frames.get(t + 1).unwrap_or(&zero);
            let mut out = [0.0f32; N];
            for c in 0..N {
                out[c] = k[0] * prev[c] + k[1] * frames[t][c] + k[2] * next[c];
            }
            out
        })
        .collect()
}

/// Streaming form of [`smooth_clip`] with one frame of lookahead: push frame `t`, get
/// smoothed frame `t - 1`; `finish` yields the last one. The output sequence equals
/// `smooth_clip` over everything pushed.
#[derive(Clone, Debug)]
pub struct StreamSmoother<const N: usize> {
    prev: Option<[f32; N]>,
    current: Option<[f32; N]>,
}

impl<const N: usize> Default for StreamSmoother<N> {
    fn default() -> Self {
        Self {
            prev: None,
            current: None,
        }
    }
}

impl<const N: usize> StreamSmoother<N> {
    /// Frames of lookahead this smoother needs.
    pub const LOOKAHEAD: usize = 1;

    /// Pushes the next raw frame; returns the smoothed previous frame once there is one.
    pub fn push(&mut self, frame: [f32; N]) -> Option<[f32; N]> {
        let out = self.current.map(|c| Self::mix(self.prev, c, Some(frame)));
        self.prev = self.current;
        self.current = Some(frame);
        out
    }

    /// Ends the stream: the last frame, smoothed against zero padding.
    pub fn finish(&mut self) -> Option<[f32; N]> {
        let out = self.current.map(|c| Self::mix(self.prev, c, None));
        self.prev = None;
        self.current = None;
        out
    }

    fn mix(prev: Option<[f32; N]>, cur: [f32; N], next: Option<[f32; N]>) -> [f32; N] {
        let k = gaussian_kernel3();
        let zero = [0.0f32; N];
        let (p, n) = (prev.unwrap_or(zero), next.unwrap_or(zero));
        std::array::from_fn(|c| k[0] * p[c] + k[1] * cur[c] + k[2] * n[c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU network against the block-by-block tensor ops (what other devices run), on
    /// random full-size weights and inputs.
    #[test]
    fn cpu_kernels_match_the_tensor_ops() {
        let device = Device::Cpu;
        let kernels = Audio2Lip::random(7, &device).unwrap();
        let Net::Cpu(_) = &kernels.net else {
            panic!("f32 on the CPU runs the kernels");
        };
        // The same weights through the tensor-op path.
        let mut map = HashMap::new();
        let mut s = 3u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for (i, &(cin, cout, k, ..)) in BLOCKS.iter().enumerate() {
            let p = format!("audio_encoder.{i}.conv_block");
            let scale = 1.0 / ((cin * k * k) as f32).sqrt();
            let mut put = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|_| offset + scale * next()).collect();
                map.insert(name, Tensor::from_vec(v, shape, &device).unwrap());
            };
            put(format!("{p}.0.weight"), vec![cout, cin, k, k], scale, 0.0);
            put(format!("{p}.0.bias"), vec![cout], 0.05, 0.0);
            put(format!("{p}.1.weight"), vec![cout], 0.1, 1.0);
            put(format!("{p}.1.bias"), vec![cout], 0.05, 0.0);
            put(format!("{p}.1.running_mean"), vec![cout], 0.05, 0.0);
            put(format!("{p}.1.running_var"), vec![cout], 0.1, 1.0);
        }
        let w: Vec<f32> = (0..LIP_DIM * 512).map(|_| next() / 22.6).collect();
        let b: Vec<f32> = (0..LIP_DIM).map(|_| next() * 0.1).collect();
        map.insert(
            "mapping.weight".into(),
            Tensor::from_vec(w, (LIP_DIM, 512), &device).unwrap(),
        );
        map.insert(
            "mapping.bias".into(),
            Tensor::from_vec(b, LIP_DIM, &device).unwrap(),
        );
        let vb = || VarBuilder::from_tensors(map.clone(), DType::F32, &device);
        let fast = Audio2Lip::build(vb(), true).unwrap();
        let slow = Audio2Lip::build(vb(), false).unwrap();
        let Net::Tensors { .. } = &slow.net else {
            panic!("the tensor-op path was asked for");
        };
        // Mel-like values in [-4, 4], a batch of one early sub-chunk and a partial one.
        let n = 21;
        let x: Vec<f32> = (0..n * MEL_BANDS * MEL_WINDOW)
            .map(|_| 4.0 * next())
            .collect();
        let xt = Tensor::from_vec(x.clone(), (n, 1, MEL_BANDS, MEL_WINDOW), &device).unwrap();
        let want: Vec<f32> = slow
            .forward(&xt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got = fast
            .forward(&xt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.01, "degenerate outputs: {scale}");
        assert!(d <= 1e-4 * scale, "max diff {d} of {scale}");
        // lip_coeffs in batches of 3 and forward agree (up to the GEMM's rounding, whose
        // blocking follows the batch), and the profiled run gives the same values.
        let lips = fast.lip_coeffs(&x, n, 2).unwrap().concat();
        let d = lips
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d <= 1e-5 * scale, "batches of 2: max diff {d} of {scale}");
        let (prof, times) = fast.forward_profiled(&xt).unwrap();
        assert_eq!(prof.flatten_all().unwrap().to_vec1::<f32>().unwrap(), got);
        assert_eq!(times.len(), BLOCKS.len() + 1);
    }
}
