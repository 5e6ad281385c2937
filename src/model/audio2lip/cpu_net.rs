//! Audio2Lip in f32 on the CPU: the thirteen blocks and the mapping as batched
//! convolutions in the channels-last layout where the batch is folded into the GEMM rows
//! ([`RowConv`]: strided convolutions computed at their stride; [`RowWinograd`]: the
//! stride-1 3x3 blocks on images of at least 4x4 pixels).
//!
//! # Schedule
//!
//! A batch is cut into chunks, one or more per thread, that run on rayon, each through the
//! whole network on one thread in that thread's reused buffers: no layer synchronises the
//! threads, and a reused buffer costs no page faults (only its pads are cleared). Inside a
//! chunk the network runs in two stages:
//!
//! * the early layers, whose activations are large (80x16 and 27x16 pixels, 32 and 64
//!   channels: up to 190 KB a window), run on sub-chunks of [`EARLY_CHUNK`] windows, so
//!   that their buffers stay a few MiB, and the last of them writes its sub-chunk's rows
//!   into the chunk's buffer for the next stage;
//! * the late layers, whose activations are small (9x6 pixels and less, at most 45 KB a
//!   window), run on the whole chunk at once: their GEMMs get rows enough (a 1x1 image is
//!   one row a window) to amortise the weights, which are the largest there (4.7 MB for
//!   block 11).

use std::cell::RefCell;
use std::time::Instant;

use rayon::prelude::*;

use crate::model::cpu::{Act, Frame, Out, RowConv, RowEpilogue, RowWinograd};
use crate::model::error::{ModelError, ModelResult};

/// Windows per chunk at most (the late stage's batch): with 2 threads, a batch of 100
/// is two chunks of 50.
const MAX_CHUNK: usize = 128;
/// Windows per sub-chunk of the early stage.
const EARLY_CHUNK: usize = 16;
/// Floats per window from which an activation counts as large (64 KiB): the layers from
/// the first one whose input and every later activation are smaller run as the late stage.
const LARGE_FLOATS: usize = 16 * 1024;

thread_local! {
    /// Each thread's activation buffers, kept between calls: two for the ping-pong, one
    /// for the input of the late stage.
    static BUFFERS: RefCell<[Vec<f32>; 3]> =
        const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// A layer's kernel.
enum Kernel {
    Direct(RowConv),
    Winograd(RowWinograd),
}

/// One layer: its kernel and what its write-out adds.
struct Layer {
    kernel: Kernel,
    epi: RowEpilogue,
}

impl Layer {
    /// Runs the layer on `n` samples of `input` (in `fin`'s layout) into `out`.
    fn run(&self, input: &[f32], fin: &Frame, n: usize, out: Out) -> ModelResult<()> {
        match &self.kernel {
            Kernel::Direct(k) => k.run(input, fin, n, out, self.epi),
            Kernel::Winograd(k) => k.run(input, fin, n, out, self.epi),
        }
    }
}

/// The network, ready to run on batches of `(n, 1, h, w)` windows.
pub(super) struct CpuNet {
    layers: Vec<Layer>,
    /// The input frame of each layer, then the output's (`1 x 1 x outputs`).
    frames: Vec<Frame>,
    /// The first layer of the late stage (`layers.len()` when there is none).
    split: usize,
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

/// Whether a layer runs as Winograd F(2x2, 3x3): a stride-1, padding-1 3x3 conv of at
/// least 16 channels on an image of at least 4x4 pixels. Measured at Audio2Lip's shapes
/// (one thread, `edtalk bench --only audio2lip`, ms per 100 windows, direct / Winograd):
/// 32 channels at 80x16 19.9 / 17.5, 64 at 27x16 21.2 / 14.5, 128 at 9x6 10.9 / 7.2, but
/// 256 at 3x3 8.0 / 9.5 (a 3x3 image is 2x2 tiles, 16 points for 9 pixels).
fn winograd_pays(
    (_, c, k): (usize, usize, usize),
    stride: (usize, usize),
    pad: usize,
    (h, w): (usize, usize),
) -> bool {
    k == 3 && stride == (1, 1) && pad == 1 && c >= 16 && h >= 4 && w >= 4
}

impl CpuNet {
    /// Plans the layers for inputs of `h x w` pixels of one channel; the last layer must
    /// leave a 1x1 image.
    pub fn new(specs: Vec<LayerSpec>, (h, w): (usize, usize)) -> ModelResult<Self> {
        let convs = specs
            .iter()
            .map(|s| RowConv::new(&s.weight, &s.bias, s.shape, s.stride, s.pad))
            .collect::<ModelResult<Vec<_>>>()?;
        let Some(first) = convs.first() else {
            return Err(ModelError::Layout("Audio2Lip: no layers".into()));
        };
        // Each layer's input frame: its size, and the padding, row step and row phases of
        // the layer that reads it.
        let f0 = Frame::new(h, w, 1, first.pad(), first.input_step(h, w));
        let mut frames = vec![f0.with_phases(first.input_phases(&f0))];
        for (i, conv) in convs.iter().enumerate() {
            let f = frames[i];
            let (ho, wo) = conv.out_size(f.h, f.w);
            let (pad, step) = convs
                .get(i + 1)
                .map_or((0, 1), |next| (next.pad(), next.input_step(ho, wo)));
            let next = Frame::new(ho, wo, conv.out_channels(), pad, step);
            let phases = convs.get(i + 1).map_or(1, |c| c.input_phases(&next));
            frames.push(next.with_phases(phases));
        }
        let out = frames[frames.len() - 1];
        if (out.h, out.w) != (1, 1) {
            return Err(ModelError::Layout(format!(
                "Audio2Lip: the layers leave {}x{} pixels, not 1x1",
                out.h, out.w
            )));
        }
        let layers = specs
            .into_iter()
            .zip(convs)
            .zip(&frames)
            .map(|((s, conv), f)| {
                let kernel = if winograd_pays(s.shape, s.stride, s.pad, (f.h, f.w)) {
                    let (o, c, _) = s.shape;
                    Kernel::Winograd(RowWinograd::new(&s.weight, &s.bias, (o, c))?)
                } else {
                    Kernel::Direct(conv)
                };
                Ok(Layer {
                    kernel,
                    epi: RowEpilogue {
                        residual: s.residual,
                        act: s.act,
                    },
                })
            })
            .collect::<ModelResult<Vec<_>>>()?;
        // The late stage: from the first layer whose input and every later frame are small.
        let split = (0..layers.len())
            .rev()
            .take_while(|&l| frames[l..].iter().all(|f| f.len(1) < LARGE_FLOATS))
            .last()
            .unwrap_or(layers.len())
            .max(1);
        Ok(Self {
            layers,
            frames,
            split,
        })
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

    /// Windows per chunk for `n` windows: an equal share per thread, at most
    /// [`MAX_CHUNK`].
    fn chunk(n: usize) -> usize {
        n.div_ceil(rayon::current_num_threads().max(1))
            .clamp(1, MAX_CHUNK)
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

    /// One chunk of `n` windows through every layer on this thread (see the module docs);
    /// `timed(layer, seconds)` hears how long each layer took.
    fn run_chunk(
        &self,
        windows: &[f32],
        n: usize,
        out: &mut [f32],
        timed: &mut dyn FnMut(usize, f64),
    ) -> ModelResult<()> {
        let (frames, split) = (&self.frames, self.split);
        let sub = EARLY_CHUNK.min(n);
        BUFFERS.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (pair, rest) = bufs.split_at_mut(2);
            // The ping-pong pair holds any early frame of a sub-chunk and any late one of
            // the chunk; the third buffer the late stage's input for the chunk.
            let early = frames[..split].iter().map(|f| f.len(sub));
            let need = early
                .chain(frames[split + 1..].iter().map(|f| f.len(n)))
                .max()
                .unwrap_or(0);
            for buf in pair.iter_mut() {
                if buf.len() < need {
                    buf.resize(need, 0.0);
                }
            }
            let fl = &frames[split];
            if rest[0].len() < fl.len(n) {
                rest[0].resize(fl.len(n), 0.0);
            }
            let late = &mut rest[0][..fl.len(n)];
            let per_in = self.input_len();
            for (k, part) in windows.chunks(sub * per_in).enumerate() {
                let m = part.len() / per_in;
                frames[0].pack_nchw(part, m, &mut pair[0][..frames[0].len(m)]);
                for l in 0..split {
                    let (fin, fout) = (&frames[l], &frames[l + 1]);
                    // Layer l reads pair[l % 2] and writes the other one, or for the last
                    // early layer rows k * sub.. of the late stage's input.
                    let (src, dst) = read_write(pair, l % 2);
                    let out = if l + 1 == split {
                        Out {
                            data: &mut *late,
                            frame: fl,
                            samples: n,
                            first: k * sub,
                        }
                    } else {
                        Out::all(&mut dst[..fout.len(m)], fout, m)
                    };
                    let start = Instant::now();
                    self.layers[l].run(&src[..fin.len(m)], fin, m, out)?;
                    timed(l, start.elapsed().as_secs_f64());
                }
            }
            // The late stage on the whole chunk: layer split reads `late` and writes
            // pair[0], then each layer reads what the one before wrote.
            for l in split..self.layers.len() {
                let (fin, fout) = (&frames[l], &frames[l + 1]);
                let (src, dst) = if l == split {
                    (&*late, &mut pair[0][..])
                } else {
                    read_write(pair, (l - split + 1) % 2)
                };
                let start = Instant::now();
                let dst = &mut dst[..fout.len(n)];
                self.layers[l].run(&src[..fin.len(n)], fin, n, Out::all(dst, fout, n))?;
                timed(l, start.elapsed().as_secs_f64());
            }
            let last = if split == self.layers.len() {
                &*late
            } else {
                &pair[(self.layers.len() - split + 1) % 2][..]
            };
            // The last frame is 1x1 without padding: `n` rows of `outputs` values.
            out.copy_from_slice(&last[..out.len()]);
            Ok(())
        })
    }
}

/// `(pair[r], pair[1 - r])`: the buffer a layer reads and the one it writes.
fn read_write(pair: &mut [Vec<f32>], r: usize) -> (&[f32], &mut [f32]) {
    let (x, y) = pair.split_at_mut(1);
    if r == 0 {
        (&x[0], &mut y[0])
    } else {
        (&y[0], &mut x[0])
    }
}
