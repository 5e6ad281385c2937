//! Audio2Lip in f32 on the CPU: the thirteen blocks and the mapping as batched
//! convolutions ([`RowConv`]) in the channels-last layout where the batch is folded into
//! the GEMM rows and strided convolutions are computed at their stride.
//!
//! A batch is cut into chunks that run on rayon, each through the whole network on one
//! thread, in that thread's two reused activation buffers (ping-pong). A chunk's
//! activations stay in that thread's caches from one layer to the next, no layer
//! synchronises the threads, and a reused buffer costs no page faults; only its pads are
//! cleared ([`Frame::clear_pads`]).

use std::cell::RefCell;
use std::time::Instant;

use rayon::prelude::*;

use crate::model::cpu::{Act, Frame, RowConv, RowEpilogue};
use crate::model::error::{ModelError, ModelResult};

/// Samples per chunk at most: large enough that the small late layers (3x3 and 1x1
/// images) still make GEMMs of a few hundred rows and amortise their weights, small
/// enough that the two activation buffers of a chunk stay a few MiB.
const MAX_CHUNK: usize = 32;

thread_local! {
    /// Each thread's two activation buffers, kept between calls.
    static BUFFERS: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// One layer: the convolution and what its write-out adds.
struct Layer {
    conv: RowConv,
    epi: RowEpilogue,
}

/// The network, ready to run on batches of `(n, 1, h, w)` windows.
pub(super) struct CpuNet {
    layers: Vec<Layer>,
    /// The input frame of each layer, then the output's (`1 x 1 x outputs`).
    frames: Vec<Frame>,
}

/// One layer as loaded: weight `(o, c, k, k)` and bias as floats, shape, stride, padding,
/// residual, activation.
pub(super) struct LayerSpec {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// `(o, c, k)`.
    pub shape: (usize, usize, usize),
    pub stride: (usize, usize),
    pub pad: usize,
    pub residual: bool,
    pub act: Act,
}

impl CpuNet {
    /// Plans the layers for inputs of `h x w` pixels of one channel; the last layer must
    /// leave a 1x1 image.
    pub fn new(specs: Vec<LayerSpec>, (h, w): (usize, usize)) -> ModelResult<Self> {
        let layers = specs
            .into_iter()
            .map(|s| {
                Ok(Layer {
                    conv: RowConv::new(&s.weight, &s.bias, s.shape, s.stride, s.pad)?,
                    epi: RowEpilogue {
                        residual: s.residual,
                        act: s.act,
                    },
                })
            })
            .collect::<ModelResult<Vec<_>>>()?;
        let Some(first) = layers.first() else {
            return Err(ModelError::Layout("Audio2Lip: no layers".into()));
        };
        let mut frames = vec![Frame::new(
            h,
            w,
            1,
            first.conv.pad(),
            first.conv.input_step(h, w),
        )];
        for (i, layer) in layers.iter().enumerate() {
            let f = frames[i];
            let (ho, wo) = layer.conv.out_size(f.h, f.w);
            // The next layer's padding and row step, or none after the last.
            let (pad, step) = layers.get(i + 1).map_or((0, 1), |next| {
                (next.conv.pad(), next.conv.input_step(ho, wo))
            });
            frames.push(Frame::new(ho, wo, layer.conv.out_channels(), pad, step));
        }
        let out = frames[frames.len() - 1];
        if (out.h, out.w) != (1, 1) {
            return Err(ModelError::Layout(format!(
                "Audio2Lip: the layers leave {}x{} pixels, not 1x1",
                out.h, out.w
            )));
        }
        Ok(Self { layers, frames })
    }

    /// Values per input window.
    fn input_len(&self) -> usize {
        let f = self.frames[0];
        f.h * f.w
    }

    /// Values per output row.
    pub fn outputs(&self) -> usize {
        self.frames[self.frames.len() - 1].c
    }

    /// Samples per chunk for `n` windows: an equal share per thread, at most
    /// [`MAX_CHUNK`].
    fn chunk(n: usize) -> usize {
        let max = std::env::var("EDTALK_A2L_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_CHUNK);
        n.div_ceil(rayon::current_num_threads().max(1))
            .clamp(1, max)
    }

    /// Runs `n` windows (`n x h x w` floats) to `n x outputs` floats, chunks in parallel.
    pub fn run(&self, windows: &[f32], n: usize) -> ModelResult<Vec<f32>> {
        self.check(windows, n)?;
        let (per_in, per_out) = (self.input_len(), self.outputs());
        let mut out = vec![0f32; n * per_out];
        if n == 0 {
            return Ok(out);
        }
        let chunk = Self::chunk(n);
        out.par_chunks_mut(chunk * per_out)
            .zip(windows.par_chunks(chunk * per_in))
            .try_for_each(|(dst, src)| {
                self.run_chunk(src, src.len() / per_in, dst, &mut |_, _| {})
            })?;
        Ok(out)
    }

    /// As [`CpuNet::run`], on the calling thread, with the seconds spent in each layer
    /// summed over the chunks.
    pub fn run_profiled(&self, windows: &[f32], n: usize) -> ModelResult<(Vec<f32>, Vec<f64>)> {
        self.check(windows, n)?;
        let (per_in, per_out) = (self.input_len(), self.outputs());
        let mut out = vec![0f32; n * per_out];
        let mut times = vec![0f64; self.layers.len()];
        if n > 0 {
            let chunk = Self::chunk(n);
            for (dst, src) in out
                .chunks_mut(chunk * per_out)
                .zip(windows.chunks(chunk * per_in))
            {
                self.run_chunk(src, src.len() / per_in, dst, &mut |l, s| times[l] += s)?;
            }
        }
        Ok((out, times))
    }

    fn check(&self, windows: &[f32], n: usize) -> ModelResult<()> {
        if windows.len() != n * self.input_len() {
            return Err(ModelError::InputShape {
                what: "Audio2Lip windows".into(),
                expected: format!("{n} x {} values", self.input_len()),
                found: vec![windows.len()],
            });
        }
        Ok(())
    }

    /// One chunk of `n` windows through every layer on this thread; `timed(layer,
    /// seconds)` hears how long each layer took.
    fn run_chunk(
        &self,
        windows: &[f32],
        n: usize,
        out: &mut [f32],
        timed: &mut dyn FnMut(usize, f64),
    ) -> ModelResult<()> {
        BUFFERS.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let need = self.frames.iter().map(|f| f.len(n)).max().unwrap_or(0);
            for b in bufs.iter_mut() {
                if b.len() < need {
                    b.resize(need, 0.0);
                }
            }
            let [a, b] = &mut *bufs;
            let (mut src, mut dst) = (a, b);
            self.frames[0].pack_nchw(windows, n, &mut src[..self.frames[0].len(n)]);
            for (l, layer) in self.layers.iter().enumerate() {
                let (fin, fout) = (&self.frames[l], &self.frames[l + 1]);
                let start = Instant::now();
                layer.conv.run(
                    &src[..fin.len(n)],
                    fin,
                    n,
                    &mut dst[..fout.len(n)],
                    fout,
                    layer.epi,
                )?;
                timed(l, start.elapsed().as_secs_f64());
                std::mem::swap(&mut src, &mut dst);
            }
            // The last frame is 1x1 without padding: `n` rows of `outputs` values.
            out.copy_from_slice(&src[..out.len()]);
            Ok(())
        })
    }
}
