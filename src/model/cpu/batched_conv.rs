//! Convolutions of many small images at once, for Audio2Lip: every strided or square
//! convolution becomes a few GEMMs whose rows are (output row, sample, output column) and
//! whose depth is a whole row of kernel taps, with the stride applied by the GEMM's row
//! stride (nothing computed at stride 1 and thrown away).
//!
//! # Layout
//!
//! An activation of `n` samples of `h x w` pixels and `c` channels is stored channels last
//! with the batch between the image rows and columns, zero-padded ([`Frame`]):
//!
//! ```text
//! data[((r * n + b) * wp + q) * c + ch]    r < h + 2 pad (padded row), b < n, q < wp
//! ```
//!
//! (`r` standing for the row's slot when the rows are stored in phases).
//!
//! Then the `k` taps of one kernel row, for all input channels, are `k * c` consecutive
//! floats: the GEMM depth is `k * c` (96..768 here) instead of `c`, and a kernel row
//! `ky` is one GEMM `X_ky (rows x k c) @ W_ky (k c x o)`. Output column `j` of sample `b`
//! reads from padded column `j * sc`, i.e. from float `(b * wp + j * sc) * c` of a padded
//! row: with `wp` a multiple of the column stride `sc`, the consecutive GEMM rows
//! `b * wp / sc + j` are `sc * c` floats apart, a plain row stride. For a row stride of 1 the image
//! rows fold in as well, so the whole layer is `k` GEMMs. For a row stride `sr` above 1
//! the reader's input is stored with its rows in `sr` phases (`Frame::phases`: rows
//! `ky, ky + sr, ky + 2 sr, ..` side by side), so that they fold in the same way. The few
//! rows that fall in the padding between samples (`j >= wo`) are computed and skipped on
//! write-out.
//!
//! Where those padding rows would be a fifth or more of the work (images 3 and 6 pixels
//! wide), or where a kernel row is only a few floats deep (the 1-channel first layer),
//! each output pixel's `k` kernel-row runs are gathered into one row of a GEMM of depth
//! `k * k * c` instead.
//!
//! The product lands in a per-thread tile that stays in cache; the epilogue (bias,
//! residual, activation) is applied as the tile is written into the next layer's padded
//! buffer, so each activation is written once and read once per kernel row.

use super::epilogue::Act;
use super::gemm::gemm_rows;
use super::scratch::with_scratch;
use super::simd;
use crate::model::error::{ModelError, ModelResult};

/// The geometry of one activation in the batched layout (see the module docs): `h x w`
/// pixels of `c` channels at `(pad, pad)` inside `h + 2 pad` rows of `wp` columns, zeros
/// around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Image rows.
    pub h: usize,
    /// Image columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Zero rows above and columns left of the image (at least as many below and right).
    pub pad: usize,
    /// Columns per padded row: at least `w + 2 pad`, rounded up to a multiple of the
    /// column stride of the convolution that reads it.
    pub wp: usize,
    /// The padded rows are stored phase by phase: row `r` in slot `(r % phases) *
    /// ceil(hp / phases) + r / phases`. With `phases` the row stride of the convolution
    /// that reads the frame, the rows it reads for one kernel row are consecutive slots,
    /// so that every output row folds into one GEMM as at stride 1. 1: plain order.
    pub phases: usize,
}

impl Frame {
    /// A frame for `h x w x c` with `pad`, its row rounded up to a multiple of `step`.
    pub fn new(h: usize, w: usize, c: usize, pad: usize, step: usize) -> Self {
        let step = step.max(1);
        Self {
            h,
            w,
            c,
            pad,
            wp: (w + 2 * pad).div_ceil(step) * step,
            phases: 1,
        }
    }

    /// The same frame with its rows stored in `phases` phases.
    pub fn with_phases(self, phases: usize) -> Self {
        Self {
            phases: phases.max(1),
            ..self
        }
    }

    /// Row slots per phase.
    fn per_phase(&self) -> usize {
        self.hp().div_ceil(self.phases)
    }

    /// The slot of padded row `r`.
    #[inline(always)]
    pub fn slot(&self, r: usize) -> usize {
        (r % self.phases) * self.per_phase() + r / self.phases
    }

    /// Padded rows.
    pub fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }

    /// Floats for `n` samples.
    pub fn len(&self, n: usize) -> usize {
        self.phases * self.per_phase() * n * self.wp * self.c
    }

    /// Offset of padded pixel `(r, q)` of sample `b` among `n`.
    #[inline(always)]
    pub fn at(&self, n: usize, r: usize, b: usize, q: usize) -> usize {
        ((self.slot(r) * n + b) * self.wp + q) * self.c
    }

    /// Writes `n` samples of NCHW data `(n, c, h, w)` into `dst` (`len(n)` floats),
    /// padding included.
    pub fn pack_nchw(&self, src: &[f32], n: usize, dst: &mut [f32]) {
        let (h, w, c) = (self.h, self.w, self.c);
        debug_assert_eq!(src.len(), n * c * h * w);
        self.clear_pads(dst, n, 0..n);
        for b in 0..n {
            for ch in 0..c {
                let plane = &src[(b * c + ch) * h * w..][..h * w];
                for (i, row) in plane.chunks_exact(w).enumerate() {
                    let base = self.at(n, i + self.pad, b, self.pad) + ch;
                    for (j, &v) in row.iter().enumerate() {
                        dst[base + j * c] = v;
                    }
                }
            }
        }
    }

    /// Zeroes everything of samples `range` of `dst` (`len(n)` floats) but their image
    /// pixels: the pad rows (and the slots no row uses), and in the image rows the pad
    /// columns. The kernels write only the pixels, so a reused buffer needs just this.
    pub fn clear_pads(&self, dst: &mut [f32], n: usize, range: std::ops::Range<usize>) {
        let per = self.per_phase();
        let sample = self.wp * self.c;
        let (left, right) = (self.pad * self.c, (self.pad + self.w) * self.c);
        for (slot, row) in dst.chunks_exact_mut(n * sample).enumerate() {
            let r = (slot % per) * self.phases + slot / per;
            let mine = &mut row[range.start * sample..range.end * sample];
            if r < self.pad || r >= self.pad + self.h {
                mine.fill(0.0);
            } else {
                for px in mine.chunks_exact_mut(sample) {
                    px[..left].fill(0.0);
                    px[right..].fill(0.0);
                }
            }
        }
    }
}

/// What the write-out does to each output value: `act(acc + bias[o] (+ input[o]))`, the
/// input being the same pixel of the convolution's own input (a residual block).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RowEpilogue {
    /// Adds the input pixel (stride 1, as many output as input channels).
    pub residual: bool,
    /// The activation.
    pub act: Act,
}

/// Where a kernel writes its `n` samples: into `data`, in `frame`'s layout for `samples`
/// samples, as samples `first..first + n` (a chunk of a larger batch, or all of it).
pub(crate) struct Out<'a> {
    /// The output buffer, `frame.len(samples)` floats.
    pub data: &'a mut [f32],
    /// Its layout.
    pub frame: &'a Frame,
    /// Samples the buffer holds.
    pub samples: usize,
    /// The first sample this call writes.
    pub first: usize,
}

impl<'a> Out<'a> {
    /// The whole of `data`, `n` samples in `frame`'s layout.
    pub fn all(data: &'a mut [f32], frame: &'a Frame, n: usize) -> Self {
        Self {
            data,
            frame,
            samples: n,
            first: 0,
        }
    }

    /// Whether `n` samples of `(h, w, c)` from `first` on fit, with a consistent buffer.
    pub(super) fn fits(&self, (h, w, c): (usize, usize, usize), n: usize) -> bool {
        let f = self.frame;
        (f.h, f.w, f.c) == (h, w, c)
            && f.wp >= f.w + 2 * f.pad
            && self.data.len() == f.len(self.samples)
            && self.first + n <= self.samples
    }
}

/// A convolution `(o, c, k, k)` with a bias, in the batched layout's weight order.
#[derive(Clone, Debug)]
pub(crate) struct RowConv {
    k: usize,
    c: usize,
    o: usize,
    /// (rows, columns).
    stride: (usize, usize),
    pad: usize,
    /// `(k, k * c, o)`: for kernel row `ky`, a `(k c) x o` row-major matrix with row
    /// `kx * c + ci`.
    w: Vec<f32>,
    bias: Vec<f32>,
}

/// Depth of a kernel row (`k c`) below which the rows are gathered into GEMMs of the
/// whole kernel's depth: the 1-channel first layer's kernel row is 3 floats deep.
const MIN_GEMM_DEPTH: usize = 16;
/// Floats of a gathered tile's rows (1 MiB, in L2): a few hundred rows at the late
/// layers' depths (1152, 2304), enough to amortise reading the weight once per tile.
const GATHER_FLOATS: usize = 256 * 1024;
/// Floats of a tile's accumulator (`rows x o`): 192 KiB, which stays in L2 with the
/// GEMM's packed operands.
const TILE_FLOATS: usize = 48 * 1024;

impl RowConv {
    /// From a weight `(o, c, k, k)` (row-major floats) and `o` biases.
    pub fn new(
        weight: &[f32],
        bias: &[f32],
        (o, c, k): (usize, usize, usize),
        stride: (usize, usize),
        pad: usize,
    ) -> ModelResult<Self> {
        if weight.len() != o * c * k * k || bias.len() != o || stride.0 == 0 || stride.1 == 0 {
            return Err(ModelError::Layout(format!(
                "batched conv: weight of {} floats for ({o}, {c}, {k}, {k}), {} biases, \
                 stride {stride:?}",
                weight.len(),
                bias.len()
            )));
        }
        let kc = k * c;
        let mut w = vec![0f32; k * kc * o];
        for oo in 0..o {
            for ci in 0..c {
                for ky in 0..k {
                    for kx in 0..k {
                        w[(ky * kc + kx * c + ci) * o + oo] =
                            weight[((oo * c + ci) * k + ky) * k + kx];
                    }
                }
            }
        }
        Ok(Self {
            k,
            c,
            o,
            stride,
            pad,
            w,
            bias: bias.to_vec(),
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.o
    }

    /// Zero padding on every side.
    pub fn pad(&self) -> usize {
        self.pad
    }

    /// Output size for an `h x w` input.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let (hp, wp) = (h + 2 * self.pad, w + 2 * self.pad);
        if hp < self.k || wp < self.k {
            return (0, 0);
        }
        (
            (hp - self.k) / self.stride.0 + 1,
            (wp - self.k) / self.stride.1 + 1,
        )
    }

    /// What the padded row of this conv's input must be a multiple of: the column stride,
    /// or 1 when there is a single output column (then one GEMM row per sample reads the
    /// whole padded row, whatever its length).
    pub fn input_step(&self, h: usize, w: usize) -> usize {
        if self.out_size(h, w).1 == 1 {
            1
        } else {
            self.stride.1
        }
    }

    /// How many phases the rows of this conv's input (`frame`, phases aside) should be
    /// stored in: the row stride when the conv reads strided rows in place over more than
    /// one output row (then they fold into one GEMM per kernel row), else 1.
    pub fn input_phases(&self, frame: &Frame) -> usize {
        let (ho, wo) = self.out_size(frame.h, frame.w);
        let step = if wo == 1 { frame.wp } else { self.stride.1 };
        let rows = self.method(frame.wp / step.max(1), wo) == Method::Rows;
        if rows && ho > 1 { self.stride.0 } else { 1 }
    }

    /// Runs the conv on `n` samples of `input` (in `fin`'s layout) into `out` (whose frame
    /// must have this conv's output size and channels; its pads are zeroed here), with the
    /// epilogue.
    pub fn run(
        &self,
        input: &[f32],
        fin: &Frame,
        n: usize,
        out: Out,
        epi: RowEpilogue,
    ) -> ModelResult<()> {
        self.run_as(input, fin, n, out, epi, None)
    }

    /// How a call with `g` GEMM rows per sample and image row and `wo` output columns
    /// computes its products: gathered rows when the kernel row is too shallow for a GEMM
    /// or a fifth or more of the strided rows would fall in the padding (3- and
    /// 6-pixel-wide images), else strided rows read in place.
    fn method(&self, g: usize, wo: usize) -> Method {
        if self.k * self.c < MIN_GEMM_DEPTH || (g - wo) * 5 >= g {
            Method::Gather
        } else {
            Method::Rows
        }
    }

    /// [`RowConv::run`] by `method` (`None`: as suits the shape).
    fn run_as(
        &self,
        input: &[f32],
        fin: &Frame,
        n: usize,
        out: Out,
        epi: RowEpilogue,
        method: Option<Method>,
    ) -> ModelResult<()> {
        let (ho, wo) = self.out_size(fin.h, fin.w);
        let step = if wo == 1 { fin.wp } else { self.stride.1 };
        let shape_ok = fin.c == self.c
            && fin.pad == self.pad
            && fin.wp >= fin.w + 2 * fin.pad
            && fin.wp.is_multiple_of(step)
            && input.len() == fin.len(n)
            && out.fits((ho, wo, self.o), n)
            && ho > 0
            && (!epi.residual
                || (self.stride == (1, 1) && self.c == self.o && (fin.h, fin.w) == (ho, wo)));
        if !shape_ok {
            return Err(ModelError::Layout(format!(
                "batched conv ({}, {}, {k}, {k}) stride {:?} pad {}: input {fin:?}, output \
                 {:?}, {n} samples into {} from {}, {} / {} floats, residual {}",
                self.o,
                self.c,
                self.stride,
                self.pad,
                out.frame,
                out.samples,
                out.first,
                input.len(),
                out.data.len(),
                epi.residual,
                k = self.k,
            )));
        }
        let Out {
            data: out,
            frame: fout,
            samples,
            first,
        } = out;
        fout.clear_pads(out, samples, first..first + n);
        let place = Place {
            frame: fout,
            samples,
            first,
        };
        if n == 0 {
            return Ok(());
        }
        // GEMM rows per sample in one image row, and the float stride between rows.
        let g = fin.wp / step;
        let ctx = Ctx {
            conv: self,
            input,
            fin,
            place,
            n,
            g,
            ho,
            wo,
            row_stride: step * self.c,
            epi,
        };
        let kc = self.k * self.c;
        // Gather when the kernel row is too shallow for a GEMM, or when a fifth or more of
        // the strided rows would fall in the padding (3- and 6-pixel-wide images).
        if method.unwrap_or(self.method(g, wo)) == Method::Gather {
            // Gathered rows: one per output pixel, `k` runs of `k c` floats each.
            let rows = ho * n * wo;
            let tile = (TILE_FLOATS / self.o)
                .min(GATHER_FLOATS / (self.k * kc))
                .max(16)
                .min(rows);
            let mut m0 = 0;
            while m0 < rows {
                let mt = tile.min(rows - m0);
                ctx.gather_tile(m0, mt, out);
                m0 += mt;
            }
            return Ok(());
        }
        // When the input rows that one kernel row reads for successive output rows are
        // successive slots (a row stride of 1, or rows stored in as many phases as the
        // stride, or one output row), every output row folds into one GEMM over `ho * n *
        // g` rows; otherwise one GEMM per output row over `n * g` rows.
        let sr = self.stride.0;
        let (groups, rows_per_group) = if fin.phases == sr || ho == 1 {
            (1, ho * n * g)
        } else {
            (ho, n * g)
        };
        // Drop the trailing rows that fall in the padding: the last row read stays inside
        // the input.
        let rows = rows_per_group - (g - wo);
        let tile = (TILE_FLOATS / self.o).max(16).min(rows);
        let plane = n * fin.wp * self.c;
        for group in 0..groups {
            // Input float of GEMM row 0 for each kernel row in this group (the group is
            // output row `group`, or all of them from 0).
            let bases: Vec<usize> = (0..self.k)
                .map(|ky| fin.slot(group * sr + ky) * plane)
                .collect();
            let mut m0 = 0;
            while m0 < rows {
                let mt = tile.min(rows - m0);
                ctx.row_tile(&bases, group, m0, mt, out);
                m0 += mt;
            }
        }
        Ok(())
    }
}

/// How a convolution computes its products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// GEMMs over strided rows read in place, one per kernel row.
    Rows,
    /// GEMMs over rows gathered per output pixel, of the whole kernel's depth.
    Gather,
}

/// An [`Out`] without its buffer (which the tiles take as `&mut`).
#[derive(Clone, Copy)]
pub(super) struct Place<'a> {
    pub frame: &'a Frame,
    pub samples: usize,
    pub first: usize,
}

impl Place<'_> {
    /// Offset of pixel `(i, j)` of the call's sample `b`.
    #[inline(always)]
    pub fn pixel(&self, i: usize, b: usize, j: usize) -> usize {
        let f = self.frame;
        f.at(self.samples, i + f.pad, self.first + b, j + f.pad)
    }
}

/// One call's operands and geometry, shared by its tiles.
struct Ctx<'a> {
    conv: &'a RowConv,
    input: &'a [f32],
    fin: &'a Frame,
    place: Place<'a>,
    n: usize,
    /// GEMM rows per sample in one image row (strided rows).
    g: usize,
    /// Output size.
    ho: usize,
    wo: usize,
    /// Floats between consecutive strided GEMM rows.
    row_stride: usize,
    epi: RowEpilogue,
}

/// (output row, sample, column) of GEMM row `m`, for rows laid out as `m = (i * n + b) *
/// g + j`, and the step to the next row.
#[derive(Clone, Copy)]
struct Pos {
    i: usize,
    b: usize,
    j: usize,
}

impl Pos {
    #[inline(always)]
    fn of(m: usize, n: usize, g: usize) -> Self {
        Self {
            i: m / (n * g),
            b: (m / g) % n,
            j: m % g,
        }
    }

    #[inline(always)]
    fn advance(&mut self, n: usize, g: usize) {
        self.j += 1;
        if self.j == g {
            self.j = 0;
            self.b += 1;
            if self.b == n {
                self.b = 0;
                self.i += 1;
            }
        }
    }
}

impl Ctx<'_> {
    /// Strided GEMM rows `m0..m0 + mt` of `group` (one output row, or all of them when
    /// `group` is the only one), read in place: `k` GEMMs into this thread's scratch, then
    /// the write-out.
    fn row_tile(&self, bases: &[usize], group: usize, m0: usize, mt: usize, out: &mut [f32]) {
        let conv = self.conv;
        let (k, c, o) = (conv.k, conv.c, conv.o);
        let kc = k * c;
        with_scratch(mt * o, |acc| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for (ky, &base) in bases.iter().enumerate().take(k) {
                        let lhs = base + m0 * self.row_stride;
                        // The last element a GEMM row reads, for the bounds argument below.
                        let last = lhs + (mt - 1) * self.row_stride + kc;
                        assert!(last <= self.input.len());
                        // SAFETY: dst is `acc`, `mt x o` floats of this thread's scratch
                        // with row stride o; lhs is `mt` rows of `kc` floats, `row_stride`
                        // apart, starting at `lhs`, all inside `input` (asserted just
                        // above); rhs is kernel row ky of `w`, `kc x o` floats at `ky * kc
                        // * o`, inside `w` (`k * kc * o` floats). The scratch is not
                        // `input` nor `w`, so dst overlaps neither.
                        unsafe {
                            gemm_rows(
                                (mt, o, kc),
                                (acc.as_mut_ptr(), o, ky > 0),
                                (self.input.as_ptr().add(lhs), self.row_stride),
                                (conv.w.as_ptr().add(ky * kc * o), o),
                            );
                        }
                    }
                    let mut pos = Pos::of(m0, self.n, self.g);
                    // A per-output-row group numbers its rows from its own output row.
                    pos.i += group;
                    self.write_out(pos, self.g, acc, out);
                },
            )
        });
    }

    /// Output pixels `m0..m0 + mt` (`m = (i * n + b) * wo + j`), each gathered as one
    /// GEMM row of the `k` kernel rows' `k c` floats: one GEMM of depth `k * k * c`, then
    /// the write-out. For the convolutions whose strided rows would be mostly padding (the
    /// small late images) and for a shallow first layer.
    fn gather_tile(&self, m0: usize, mt: usize, out: &mut [f32]) {
        let conv = self.conv;
        let (k, c, o) = (conv.k, conv.c, conv.o);
        let (kc, depth) = (k * c, k * k * c);
        let (n, fin) = (self.n, self.fin);
        with_scratch(mt * (o + depth), |scratch| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let (acc, cols) = scratch.split_at_mut(mt * o);
                    let mut pos = Pos::of(m0, n, self.wo);
                    for row in cols.chunks_exact_mut(depth) {
                        for (ky, part) in row.chunks_exact_mut(kc).enumerate() {
                            let r = pos.i * conv.stride.0 + ky;
                            let src = fin.at(n, r, pos.b, pos.j * conv.stride.1);
                            // An element loop, not `copy_from_slice`: a run of 3 floats (the
                            // first layer) is not worth a `memcpy` call.
                            for (d, &x) in part.iter_mut().zip(&self.input[src..src + kc]) {
                                *d = x;
                            }
                        }
                        pos.advance(n, self.wo);
                    }
                    // SAFETY: dst is `acc`, `mt x o` floats with row stride o; lhs is
                    // `cols`, `mt x depth` floats with row stride depth; rhs is all of `w`,
                    // `depth x o` floats. `acc` and `cols` are disjoint halves of this
                    // thread's scratch, which is not `w`.
                    unsafe {
                        gemm_rows(
                            (mt, o, depth),
                            (acc.as_mut_ptr(), o, false),
                            (cols.as_ptr(), depth),
                            (conv.w.as_ptr(), o),
                        );
                    }
                    self.write_out(Pos::of(m0, n, self.wo), self.wo, acc, out);
                },
            )
        });
    }

    /// Writes the rows of `acc` (the first at `pos`, `g` rows per sample and image row)
    /// to their output pixels with the epilogue, skipping the rows that fall in the
    /// padding (`j >= wo`).
    #[inline(always)]
    fn write_out(&self, mut pos: Pos, g: usize, acc: &[f32], out: &mut [f32]) {
        let (n, o) = (self.n, self.conv.o);
        let fin = self.fin;
        let bias = &self.conv.bias;
        for a in acc.chunks_exact(o) {
            if pos.j < self.wo {
                debug_assert!(pos.i < self.ho);
                let d = self.place.pixel(pos.i, pos.b, pos.j);
                let dst = &mut out[d..d + o];
                if self.epi.residual {
                    let r = fin.at(n, pos.i + fin.pad, pos.b, pos.j + fin.pad);
                    let res = &self.input[r..r + o];
                    for (((d, &v), &bv), &rv) in dst.iter_mut().zip(a).zip(bias).zip(res) {
                        *d = self.epi.act.apply(v + bv + rv);
                    }
                } else {
                    write_act(dst, a, bias, self.epi.act);
                }
            }
            pos.advance(n, g);
        }
    }
}

/// `dst = act(src + bias)`, one loop per activation so that each vectorises.
#[inline(always)]
fn write_act(dst: &mut [f32], src: &[f32], bias: &[f32], act: Act) {
    let it = dst.iter_mut().zip(src).zip(bias);
    match act {
        Act::None => it.for_each(|((d, &v), &b)| *d = v + b),
        Act::Relu => it.for_each(|((d, &v), &b)| *d = (v + b).max(0.0)),
        Act::ScaledLrelu => it.for_each(|((d, &v), &b)| *d = Act::ScaledLrelu.apply(v + b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed LCG in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The textbook convolution on NCHW data, in f64: `(n, o, ho, wo)`.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        (n, c, h, w): (usize, usize, usize, usize),
        wt: &[f32],
        bias: &[f32],
        (o, k): (usize, usize),
        (sr, sc): (usize, usize),
        pad: usize,
        residual: bool,
    ) -> (Vec<f32>, usize, usize) {
        let ho = (h + 2 * pad - k) / sr + 1;
        let wo = (w + 2 * pad - k) / sc + 1;
        let mut y = vec![0f32; n * o * ho * wo];
        for b in 0..n {
            for oo in 0..o {
                for i in 0..ho {
                    for j in 0..wo {
                        let mut s = bias[oo] as f64;
                        for ci in 0..c {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (r, q) = (i * sr + ky, j * sc + kx);
                                    if r < pad || q < pad || r - pad >= h || q - pad >= w {
                                        continue;
                                    }
                                    let xv = x[((b * c + ci) * h + r - pad) * w + q - pad];
                                    let wv = wt[((oo * c + ci) * k + ky) * k + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        if residual {
                            s += x[((b * c + oo) * h + i) * w + j] as f64;
                        }
                        y[((b * o + oo) * ho + i) * wo + j] = s.max(0.0) as f32;
                    }
                }
            }
        }
        (y, ho, wo)
    }

    /// The `(n, c, h, w)` pixels of a batched-layout buffer.
    fn unpack(data: &[f32], f: &Frame, n: usize) -> Vec<f32> {
        let mut y = vec![0f32; n * f.c * f.h * f.w];
        for b in 0..n {
            for ch in 0..f.c {
                for i in 0..f.h {
                    for j in 0..f.w {
                        y[((b * f.c + ch) * f.h + i) * f.w + j] =
                            data[f.at(n, i + f.pad, b, j + f.pad) + ch];
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_textbook_conv_for_strides_padding_and_residual() {
        // (n, c, o, h, w, k, stride, pad, residual, output pad)
        for &(n, c, o, h, w, k, stride, pad, residual, opad) in &[
            (3, 5, 7, 9, 11, 3, (1, 1), 1, false, 1),
            (2, 6, 6, 7, 5, 3, (1, 1), 1, true, 0),
            (2, 3, 4, 10, 9, 3, (1, 2), 1, false, 1),
            (3, 4, 5, 11, 7, 3, (2, 1), 1, false, 0),
            (2, 6, 9, 13, 14, 3, (3, 3), 1, false, 2),
            (4, 8, 12, 9, 6, 3, (3, 2), 1, false, 0),
            (2, 5, 3, 8, 8, 3, (2, 2), 0, false, 1),
            (3, 7, 11, 3, 3, 3, (1, 1), 0, false, 0),
            (2, 9, 13, 1, 1, 1, (1, 1), 0, false, 0),
            (5, 20, 20, 4, 3, 3, (1, 1), 1, true, 1),
            (3, 1, 8, 10, 6, 3, (1, 1), 1, false, 1),
            (2, 1, 5, 12, 7, 3, (3, 1), 1, false, 0),
        ] {
            let case = (n, c, o, h, w, k, stride, pad, residual);
            let x = values(n * c * h * w, 1);
            let wt = values(o * c * k * k, 2);
            let bias = values(o, 3);
            let conv = RowConv::new(&wt, &bias, (o, c, k), stride, pad).unwrap();
            let fin = Frame::new(h, w, c, pad, conv.input_step(h, w));
            let mut xin = vec![f32::NAN; fin.len(n)];
            fin.pack_nchw(&x, n, &mut xin);
            let (ho, wo) = conv.out_size(h, w);
            let fout = Frame::new(ho, wo, o, opad, 1);
            let (want, wh, ww) = naive(&x, (n, c, h, w), &wt, &bias, (o, k), stride, pad, residual);
            assert_eq!((wh, ww), (ho, wo), "{case:?}");
            let epi = RowEpilogue {
                residual,
                act: Act::Relu,
            };
            // Each case both ways (strided rows read in place, and gathered rows), also
            // written as samples 1.. of a buffer of n + 2 samples, and with the input rows
            // stored in as many phases as the row stride.
            let phased = fin.with_phases(stride.0);
            let mut xph = vec![f32::NAN; phased.len(n)];
            phased.pack_nchw(&x, n, &mut xph);
            assert!(
                xph.iter().all(|v| v.is_finite()),
                "{case:?}: phased frame not filled"
            );
            let runs = [
                (None, 0, false),
                (Some(Method::Rows), 0, false),
                (Some(Method::Gather), 0, false),
                (None, 1, false),
                (Some(Method::Rows), 0, true),
                (Some(Method::Gather), 1, true),
            ];
            for (gather, first, phases) in runs {
                let (fin, xin) = if phases {
                    (&phased, &xph)
                } else {
                    (&fin, &xin)
                };
                let samples = if first == 0 { n } else { n + 2 };
                // Stale values everywhere: the conv must write every pixel and zero every
                // pad.
                let mut y = vec![f32::NAN; fout.len(samples)];
                let out = Out {
                    data: &mut y,
                    frame: &fout,
                    samples,
                    first,
                };
                conv.run_as(xin, fin, n, out, epi, gather).unwrap();
                let got = unpack(&y, &fout, samples);
                let got = &got[first * o * ho * wo..(first + n) * o * ho * wo];
                let d = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    d < 1e-4,
                    "{case:?} {gather:?} {first} {phases}: max diff {d}"
                );
                if first == 0 {
                    // Every value written, and the pads zero.
                    assert!(
                        y.iter().all(|v| v.is_finite()),
                        "{case:?} {gather:?}: unwritten"
                    );
                    let pixels: f32 = got.iter().map(|v| v.abs()).sum();
                    let all: f32 = y.iter().map(|v| v.abs()).sum();
                    assert!(
                        (pixels - all).abs() <= 1e-3 * all.max(1.0),
                        "{case:?} {gather:?}: pads not zero"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_geometry_is_an_error() {
        let conv = RowConv::new(&values(4 * 3 * 9, 1), &[0.0; 4], (4, 3, 3), (1, 2), 1).unwrap();
        let fin = Frame::new(6, 6, 3, 1, 2);
        let x = vec![0f32; fin.len(2)];
        let (ho, wo) = conv.out_size(6, 6);
        let fout = Frame::new(ho, wo, 4, 0, 1);
        let mut y = vec![0f32; fout.len(2)];
        assert!(
            conv.run(
                &x,
                &fin,
                2,
                Out::all(&mut y, &fout, 2),
                RowEpilogue::default()
            )
            .is_ok()
        );
        // A row that is not a multiple of the column stride.
        let odd = Frame { wp: 9, ..fin };
        let x9 = vec![0f32; odd.len(2)];
        assert!(
            conv.run(
                &x9,
                &odd,
                2,
                Out::all(&mut y, &fout, 2),
                RowEpilogue::default()
            )
            .is_err()
        );
        // A residual on a strided conv, and a wrong sample count.
        let res = RowEpilogue {
            residual: true,
            act: Act::Relu,
        };
        assert!(
            conv.run(&x, &fin, 2, Out::all(&mut y, &fout, 2), res)
                .is_err()
        );
        assert!(
            conv.run(
                &x,
                &fin,
                3,
                Out::all(&mut y, &fout, 2),
                RowEpilogue::default()
            )
            .is_err()
        );
        assert!(RowConv::new(&[0.0; 5], &[0.0; 4], (4, 3, 3), (1, 1), 1).is_err());
    }
}
