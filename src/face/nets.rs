//! MTCNN's three networks (P-, R- and O-Net) on the CPU.
//!
//! Convolutions run on the crate's fast CPU kernel (`model::cpu`, bias
//! fused); PReLU and the ceil-mode max pools are one pass each over the conv output,
//! written here because the nets are tiny and run on many small crops, where candle's
//! general element-wise ops and pools cost more than the convolutions. Dense layers are
//! candle matmuls.
//!
//! Images are fed as RGB, channel-major, without the transpose the original Caffe nets
//! needed; R- and O-Net flatten their last feature map in (x, y, channel) order before the
//! dense layers (facenet-pytorch's `permute(0, 3, 2, 1)`), which lines the weights up.

use std::collections::HashMap;

use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;

use super::FaceError;
use crate::model::cpu::{self as cpu_conv, Epilogue, TapWeight};

/// Batches of feature maps `(n, c, h, w)`, channel-major.
struct Maps {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Maps {
    fn tensor(self) -> Result<Tensor, FaceError> {
        Ok(Tensor::from_vec(
            self.data,
            (self.n, self.c, self.h, self.w),
            &Device::Cpu,
        )?)
    }
}

/// A stride-1, unpadded convolution with bias, followed by PReLU.
struct ConvPrelu {
    taps: TapWeight,
    bias: Tensor,
    slope: Vec<f32>,
}

impl ConvPrelu {
    /// The convolution with its bias, before the activation.
    fn conv(&self, x: &Tensor) -> Result<Tensor, FaceError> {
        let epi = Epilogue {
            bias: Some(&self.bias),
            ..Default::default()
        };
        cpu_conv::conv2d(x, &self.taps, (1, 1), 0, None, &epi)
            .map_err(|e| FaceError::Model(format!("convolution: {e}")))
    }

    /// Convolution, PReLU.
    fn forward(&self, x: &Tensor) -> Result<Maps, FaceError> {
        self.forward_pool(x, 1, 1)
    }

    /// Convolution, PReLU, then a `k`x`k` stride `s` max pool in PyTorch's ceil mode (a
    /// last, partial window is kept; `k = s = 1` is no pooling).
    fn forward_pool(&self, x: &Tensor, k: usize, s: usize) -> Result<Maps, FaceError> {
        let y = self.conv(x)?;
        let (n, c, h, w) = y.dims4()?;
        let (oh, ow) = (ceil_pool_len(h, k, s), ceil_pool_len(w, k, s));
        let mut out = vec![0f32; n * c * oh * ow];
        with_data(&y, |src| {
            out.par_chunks_mut(oh * ow)
                .enumerate()
                .for_each(|(plane, dst)| {
                    let a = self.slope[plane % c];
                    let src = &src[plane * h * w..(plane + 1) * h * w];
                    for oy in 0..oh {
                        let rows = oy * s..(oy * s + k).min(h);
                        for ox in 0..ow {
                            let cols = ox * s..(ox * s + k).min(w);
                            let mut m = f32::NEG_INFINITY;
                            for y in rows.clone() {
                                for &v in &src[y * w + cols.start..y * w + cols.end] {
                                    m = m.max(if v >= 0.0 { v } else { a * v });
                                }
                            }
                            dst[oy * ow + ox] = m;
                        }
                    }
                });
        })?;
        Ok(Maps {
            n,
            c,
            h: oh,
            w: ow,
            data: out,
        })
    }
}

/// Output length of a ceil-mode max pool over `len` inputs (PyTorch's rule: windows may
/// hang over the end but must start inside the input).
fn ceil_pool_len(len: usize, k: usize, s: usize) -> usize {
    let mut out = len.saturating_sub(k).div_ceil(s) + 1;
    if (out - 1) * s >= len {
        out -= 1;
    }
    out
}

/// Runs `f` on a contiguous f32 CPU tensor's values.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, FaceError> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => Err(FaceError::Model(
            "expected a contiguous f32 CPU tensor".into(),
        )),
    }
}

/// `(n, c, h, w)` flattened to `(n, w * h * c)` in (x, y, channel) order.
fn flatten_caffe(m: &Maps) -> Result<Tensor, FaceError> {
    let (c, h, w) = (m.c, m.h, m.w);
    let mut out = vec![0f32; m.data.len()];
    for (dst, src) in out
        .chunks_exact_mut(c * h * w)
        .zip(m.data.chunks_exact(c * h * w))
    {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    dst[(x * h + y) * c + ch] = src[(ch * h + y) * w + x];
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (m.n, c * h * w), &Device::Cpu)?)
}

/// A dense layer followed by PReLU.
struct DensePrelu {
    dense: Linear,
    slope: Tensor,
}

impl DensePrelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor, FaceError> {
        let y = self.dense.forward(x)?;
        Ok((y.relu()? + y.minimum(0f32)?.broadcast_mul(&self.slope)?)?)
    }
}

/// The proposal net: fully convolutional over a whole pyramid level.
pub(crate) struct PNet {
    conv1: ConvPrelu,
    conv2: ConvPrelu,
    conv3: ConvPrelu,
    conv4_1: ConvPrelu,
    conv4_2: ConvPrelu,
}

/// P-Net's output maps, each channel-major over `h x w` cells (cell `(x, y)` sees the
/// 12 px window at `2x, 2y`).
pub(crate) struct PNetOut {
    pub h: usize,
    pub w: usize,
    /// Box regression, 4 channels.
    pub reg: Vec<f32>,
    /// Not-face and face logits, 2 channels.
    pub logits: Vec<f32>,
}

impl PNet {
    /// Runs on `(1, 3, h, w)` normalised pixels.
    pub fn forward(&self, x: &Tensor) -> Result<PNetOut, FaceError> {
        let x = self.conv1.forward_pool(x, 2, 2)?.tensor()?;
        let x = self.conv2.forward(&x)?.tensor()?;
        let x = self.conv3.forward(&x)?.tensor()?;
        let logits = self.conv4_1.conv(&x)?;
        let (_, _, h, w) = logits.dims4()?;
        Ok(PNetOut {
            h,
            w,
            reg: self.conv4_2.conv(&x)?.flatten_all()?.to_vec1()?,
            logits: logits.flatten_all()?.to_vec1()?,
        })
    }
}

/// R-Net's outputs for a batch of crops, one row per crop.
pub(crate) struct RNetOut {
    /// Box regression, 4 per crop.
    pub reg: Vec<Vec<f32>>,
    /// Not-face and face logits.
    pub logits: Vec<Vec<f32>>,
}

/// The refine net, on 24 px crops.
pub(crate) struct RNet {
    conv1: ConvPrelu,
    conv2: ConvPrelu,
    conv3: ConvPrelu,
    dense4: DensePrelu,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    /// Box regression and face logits, one row per crop, for `(N, 3, 24, 24)` crops.
    pub fn forward(&self, x: &Tensor) -> Result<RNetOut, FaceError> {
        let x = self.conv1.forward_pool(x, 3, 2)?.tensor()?;
        let x = self.conv2.forward_pool(&x, 3, 2)?.tensor()?;
        let x = self.conv3.forward(&x)?;
        let x = self.dense4.forward(&flatten_caffe(&x)?)?;
        Ok(RNetOut {
            reg: self.dense5_2.forward(&x)?.to_vec2()?,
            logits: self.dense5_1.forward(&x)?.to_vec2()?,
        })
    }
}

/// O-Net's outputs for a batch of crops, one row per crop.
pub(crate) struct ONetOut {
    /// Box regression, 4 per crop.
    pub reg: Vec<Vec<f32>>,
    /// Landmarks, five x then five y, relative to the crop (0..1).
    pub points: Vec<Vec<f32>>,
    /// Not-face and face logits.
    pub logits: Vec<Vec<f32>>,
}

/// The output net, on 48 px crops.
pub(crate) struct ONet {
    conv1: ConvPrelu,
    conv2: ConvPrelu,
    conv3: ConvPrelu,
    conv4: ConvPrelu,
    dense5: DensePrelu,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    /// Runs on `(N, 3, 48, 48)` crops.
    pub fn forward(&self, x: &Tensor) -> Result<ONetOut, FaceError> {
        let x = self.conv1.forward_pool(x, 3, 2)?.tensor()?;
        let x = self.conv2.forward_pool(&x, 3, 2)?.tensor()?;
        let x = self.conv3.forward_pool(&x, 2, 2)?.tensor()?;
        let x = self.conv4.forward(&x)?;
        let x = self.dense5.forward(&flatten_caffe(&x)?)?;
        Ok(ONetOut {
            reg: self.dense6_2.forward(&x)?.to_vec2()?,
            points: self.dense6_3.forward(&x)?.to_vec2()?,
            logits: self.dense6_1.forward(&x)?.to_vec2()?,
        })
    }
}

/// The three nets from a safetensors file's bytes (facenet-pytorch's state-dict names
/// prefixed by the net: `pnet.conv1.weight`...).
pub(crate) fn load(bytes: &[u8]) -> Result<(PNet, RNet, ONet), FaceError> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| FaceError::Model(format!("not a readable safetensors file: {e}")))?;
    let w = Weights(&tensors);
    let pnet = PNet {
        conv1: w.conv("pnet.conv1", "pnet.prelu1", 10, 3, 3)?,
        conv2: w.conv("pnet.conv2", "pnet.prelu2", 16, 10, 3)?,
        conv3: w.conv("pnet.conv3", "pnet.prelu3", 32, 16, 3)?,
        conv4_1: w.conv("pnet.conv4_1", "", 2, 32, 1)?,
        conv4_2: w.conv("pnet.conv4_2", "", 4, 32, 1)?,
    };
    let rnet = RNet {
        conv1: w.conv("rnet.conv1", "rnet.prelu1", 28, 3, 3)?,
        conv2: w.conv("rnet.conv2", "rnet.prelu2", 48, 28, 3)?,
        conv3: w.conv("rnet.conv3", "rnet.prelu3", 64, 48, 2)?,
        dense4: w.dense_prelu("rnet.dense4", "rnet.prelu4", 128, 576)?,
        dense5_1: w.dense("rnet.dense5_1", 2, 128)?,
        dense5_2: w.dense("rnet.dense5_2", 4, 128)?,
    };
    let onet = ONet {
        conv1: w.conv("onet.conv1", "onet.prelu1", 32, 3, 3)?,
        conv2: w.conv("onet.conv2", "onet.prelu2", 64, 32, 3)?,
        conv3: w.conv("onet.conv3", "onet.prelu3", 64, 64, 3)?,
        conv4: w.conv("onet.conv4", "onet.prelu4", 128, 64, 2)?,
        dense5: w.dense_prelu("onet.dense5", "onet.prelu5", 256, 1152)?,
        dense6_1: w.dense("onet.dense6_1", 2, 256)?,
        dense6_2: w.dense("onet.dense6_2", 4, 256)?,
        dense6_3: w.dense("onet.dense6_3", 10, 256)?,
    };
    Ok((pnet, rnet, onet))
}

/// Named tensors of the safetensors file, checked as they are taken.
struct Weights<'a>(&'a HashMap<String, Tensor>);

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, FaceError> {
        let t = self.0.get(name).ok_or_else(|| {
            FaceError::Model(format!("missing tensor `{name}` (shape {shape:?})"))
        })?;
        if t.dims() != shape {
            return Err(FaceError::Model(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    /// A conv and its PReLU (`prelu` empty: none, i.e. slope 1).
    fn conv(
        &self,
        name: &str,
        prelu: &str,
        out: usize,
        inp: usize,
        k: usize,
    ) -> Result<ConvPrelu, FaceError> {
        let weight = self.get(&format!("{name}.weight"), &[out, inp, k, k])?;
        let slope = if prelu.is_empty() {
            vec![1.0; out]
        } else {
            self.get(&format!("{prelu}.weight"), &[out])?.to_vec1()?
        };
        Ok(ConvPrelu {
            taps: TapWeight::new(&weight)
                .map_err(|e| FaceError::Model(format!("`{name}.weight`: {e}")))?,
            bias: self.get(&format!("{name}.bias"), &[out])?,
            slope,
        })
    }

    fn dense(&self, name: &str, out: usize, inp: usize) -> Result<Linear, FaceError> {
        Ok(Linear::new(
            self.get(&format!("{name}.weight"), &[out, inp])?,
            Some(self.get(&format!("{name}.bias"), &[out])?),
        ))
    }

    fn dense_prelu(
        &self,
        name: &str,
        prelu: &str,
        out: usize,
        inp: usize,
    ) -> Result<DensePrelu, FaceError> {
        Ok(DensePrelu {
            dense: self.dense(name, out, inp)?,
            slope: self
                .get(&format!("{prelu}.weight"), &[out])?
                .reshape((1, out))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_pool_lengths_follow_pytorch() {
        assert_eq!(ceil_pool_len(5, 2, 2), 3);
        assert_eq!(ceil_pool_len(22, 3, 2), 11);
        assert_eq!(ceil_pool_len(9, 3, 2), 4);
        assert_eq!(ceil_pool_len(46, 3, 2), 23);
        assert_eq!(ceil_pool_len(10, 2, 2), 5);
        assert_eq!(ceil_pool_len(7, 1, 1), 7);
    }

    #[test]
    fn prelu_pool_keeps_the_partial_window() {
        // 1x1 conv with weight 1, bias 0, slope 0.5: the pool sees prelu(x).
        let weight = Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu).unwrap();
        let layer = ConvPrelu {
            taps: TapWeight::new(&weight).unwrap(),
            bias: Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
            slope: vec![0.5],
        };
        let x: Vec<f32> = (0..25).map(|v| v as f32 - 30.0).collect();
        let x = Tensor::from_vec(x, (1, 1, 5, 5), &Device::Cpu).unwrap();
        let y = layer.forward_pool(&x, 2, 2).unwrap();
        assert_eq!((y.h, y.w), (3, 3));
        // Cell (2, 2) is the lone last value, -6 -> -3.
        assert_eq!(y.data[8], -3.0);
        assert_eq!(y.data[0], (6.0 - 30.0) * 0.5);
    }

    #[test]
    fn caffe_flatten_puts_channels_innermost_then_rows_then_columns() {
        // (1, 2, 2, 3): value = 100 c + 10 y + x.
        let mut data = Vec::new();
        for c in 0..2 {
            for y in 0..2 {
                for x in 0..3 {
                    data.push((100 * c + 10 * y + x) as f32);
                }
            }
        }
        let m = Maps {
            n: 1,
            c: 2,
            h: 2,
            w: 3,
            data,
        };
        let v = flatten_caffe(&m).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(v[0][..6], [0.0, 100.0, 10.0, 110.0, 1.0, 101.0]);
    }
}
