//! Audio2Lip (official `networks/audio_encoder.py`): the Wav2Lip audio encoder, thirteen
//! Conv2d + BatchNorm (eval) + ReLU blocks, some residual, some with non-square strides,
//! turning one 80x16 mel window into a 512-vector, then `mapping`, a linear map to the 20
//! EDTalk mouth coefficients.
//!
//! BatchNorm is folded into the convolution at load: `w' = w * g / sqrt(var + eps)`,
//! `b' = (b - mean) * g / sqrt(var + eps) + beta`, so a block is one convolution.
//! On the CPU (f32) a block is one fused kernel call ([`cpu`]: conv, bias,
//! residual, ReLU, any stride pair). Elsewhere candle's conv2d runs it; it takes one stride
//! for both axes, so a (3, 1) or (3, 2) stride runs at the strides' common divisor (1) and
//! keeps every 3rd row / 2nd column.

use crate::audio::{MEL_BANDS, MEL_WINDOW};
use crate::model::cpu::{self, Act, Epilogue, TapWeight};
use crate::motion::LIP_DIM;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
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

/// One `audio_encoder.{i}` block with BatchNorm folded in.
struct ConvBlock {
    weight: Tensor,
    /// The weight per tap for the CPU kernel (f32 CPU only).
    taps: Option<TapWeight>,
    bias: Tensor,
    stride: (usize, usize),
    padding: usize,
    residual: bool,
}

impl ConvBlock {
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
            Ok((weight, bias))
        };
        let (weight, bias) = fold(&w, &b).map_err(|source| Audio2LipError::Tensor {
            name: format!("{prefix}.1 (BatchNorm fold)"),
            source,
        })?;
        let same = stride == (1, 1) && padding == 1;
        let taps = cpu::tap_weight(&weight, same).map_err(|e| Audio2LipError::Tensor {
            name: format!("{prefix}.0.weight"),
            source: candle_core::Error::Msg(e.to_string()),
        })?;
        Ok(Self {
            weight,
            taps,
            bias: bias
                .reshape((1, cout, 1, 1))
                .map_err(Audio2LipError::Forward)?,
            stride,
            padding,
            residual,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(taps) = &self.taps {
            let epi = Epilogue {
                bias: Some(&self.bias),
                residual: self.residual.then_some(x),
                act: Act::Relu,
                ..Default::default()
            };
            return cpu::conv2d(x, taps, self.stride, self.padding, None, &epi)
                .map_err(|e| candle_core::Error::Msg(e.to_string()));
        }
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

/// The Audio2Lip network, ready to run.
pub struct Audio2Lip {
    blocks: Vec<ConvBlock>,
    mapping: candle_nn::Linear,
    device: Device,
}

impl Audio2Lip {
    /// Builds the network from a VarBuilder over the official state dict names
    /// (`audio_encoder.{i}.conv_block.{0,1}.*`, `mapping.{weight,bias}`).
    pub fn new(vb: VarBuilder) -> Result<Self, Audio2LipError> {
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
        Ok(Self {
            blocks,
            mapping: candle_nn::Linear::new(w, Some(b)),
            device: vb.device().clone(),
        })
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
        let mut x = windows.to_dtype(DType::F32)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let n = x.dim(0)?;
        let x = x.reshape((n, 512))?;
        Ok(self.mapping.forward(&x)?)
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
            let x = Tensor::from_slice(chunk, (n, 1, MEL_BANDS, MEL_WINDOW), &self.device)?;
            let y = self.forward(&x)?;
            let rows: Vec<Vec<f32>> = y.to_vec2()?;
            for r in rows {
                let mut a = [0.0f32; LIP_DIM];
                a.copy_from_slice(&r[..LIP_DIM]);
                out.push(a);
            }
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
