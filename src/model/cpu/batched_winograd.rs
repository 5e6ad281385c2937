//! Winograd F(2x2, 3x3) in the batched layout ([`Frame`]) for Audio2Lip's stride-1,
//! padding-1 3x3 blocks: 16 multiplies per (input, output) channel pair for each 2x2
//! output tile instead of 36, i.e. GEMMs over 2.25x fewer FLOPs (Lavin & Gray 2016:
//! `Y = A^T [(G g G^T) ⊙ (B^T d B)] A` for the 4x4 input patch `d` of a tile).
//!
//! Channels last makes both transforms plain vector code: a patch row is 4 columns x `c`
//! channels, one contiguous run, and every transform point is the same sum of patch
//! values for each channel, so the loops run over the channels. Tiles of all the samples
//! in a chunk are numbered `(tile row, sample, tile column)` and cut into blocks; a block
//! transforms its tiles into `V (16, tiles, c)`, runs the 16 GEMMs `V_p (tiles x c) @ U_p
//! (c x o)`, and transforms back while the bias, residual and ReLU are applied and the
//! pixels are written into the next layer's padded buffer.
//!
//! The transforms use only ±1 and 0.5, so the values stay within a few roundings of the
//! direct convolution's (the Audio2Lip parity tests allow 1e-4 of the output's range).

use super::batched_conv::{Frame, Out, Place, RowEpilogue};
use super::epilogue::Act;
use super::gemm::gemm_rows;
use super::scratch::with_scratch;
use super::simd;
use crate::model::error::{ModelError, ModelResult};

/// Transform points per tile.
const POINTS: usize = 16;
/// `G` of F(2, 3): 3 kernel taps to 4 transform points.
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
/// Floats of a block's transformed input and products (`16 x tiles x (c + o)`): 1 MiB, so
/// that they stay in L2 between the transforms and the GEMMs.
const BLOCK_FLOATS: usize = 256 * 1024;

/// A stride-1, padding-1 3x3 convolution `(o, c, 3, 3)` with a bias, its weight
/// transformed once.
#[derive(Clone, Debug)]
pub(crate) struct RowWinograd {
    c: usize,
    o: usize,
    /// `(16, c, o)`: `U_p = (G g G^T)_p` for every channel pair, row-major per point.
    u: Vec<f32>,
    bias: Vec<f32>,
}

impl RowWinograd {
    /// From a weight `(o, c, 3, 3)` (row-major floats) and `o` biases.
    pub fn new(weight: &[f32], bias: &[f32], (o, c): (usize, usize)) -> ModelResult<Self> {
        if weight.len() != o * c * 9 || bias.len() != o {
            return Err(ModelError::Layout(format!(
                "batched Winograd: weight of {} floats for ({o}, {c}, 3, 3), {} biases",
                weight.len(),
                bias.len()
            )));
        }
        let mut u = vec![0f32; POINTS * c * o];
        for oo in 0..o {
            for ci in 0..c {
                let g = &weight[(oo * c + ci) * 9..][..9];
                // (G g): 4x3, then (G g) G^T: 4x4.
                let mut gg = [[0f32; 3]; 4];
                for (a, row) in gg.iter_mut().enumerate() {
                    for (s, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|r| G[a][r] * g[r * 3 + s]).sum();
                    }
                }
                for (a, row) in gg.iter().enumerate() {
                    for (b, gb) in G.iter().enumerate() {
                        let v: f32 = (0..3).map(|s| row[s] * gb[s]).sum();
                        u[((a * 4 + b) * c + ci) * o + oo] = v;
                    }
                }
            }
        }
        Ok(Self {
            c,
            o,
            u,
            bias: bias.to_vec(),
        })
    }

    /// Runs the conv on `n` samples of `input` (`fin`: padding 1) into `out` (same size,
    /// `o` channels; its pads are zeroed here), with the epilogue.
    pub fn run(
        &self,
        input: &[f32],
        fin: &Frame,
        n: usize,
        out: Out,
        epi: RowEpilogue,
    ) -> ModelResult<()> {
        let ok = fin.c == self.c
            && fin.pad == 1
            && fin.phases == 1
            && fin.wp >= fin.w + 2
            && input.len() == fin.len(n)
            && out.fits((fin.h, fin.w, self.o), n)
            && (!epi.residual || self.c == self.o);
        if !ok {
            return Err(ModelError::Layout(format!(
                "batched Winograd ({}, {}): input {fin:?}, output {:?}, {n} samples into {} \
                 from {}, {} / {} floats, residual {}",
                self.o,
                self.c,
                out.frame,
                out.samples,
                out.first,
                input.len(),
                out.data.len(),
                epi.residual
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
        let (th, tw) = (fin.h.div_ceil(2), fin.w.div_ceil(2));
        let tiles = th * n * tw;
        if tiles == 0 {
            return Ok(());
        }
        let block = (BLOCK_FLOATS / (POINTS * (self.c + self.o)))
            .max(8)
            .min(tiles);
        let ctx = Ctx {
            conv: self,
            input,
            fin,
            place,
            n,
            tw,
            epi,
        };
        let mut t0 = 0;
        while t0 < tiles {
            let nt = block.min(tiles - t0);
            ctx.block(t0, nt, out);
            t0 += nt;
        }
        Ok(())
    }
}

/// One call's operands and geometry.
struct Ctx<'a> {
    conv: &'a RowWinograd,
    input: &'a [f32],
    fin: &'a Frame,
    place: Place<'a>,
    n: usize,
    /// Tiles per image row.
    tw: usize,
    epi: RowEpilogue,
}

/// Floats between two points' blocks of `nt x width` in `V` or `M`: one cache line more
/// than the block, so that the 16 blocks, which the transforms read or write together, do
/// not all fall in the same L1 cache set (a block is often a multiple of 4 KiB).
#[inline(always)]
fn point_stride(nt: usize, width: usize) -> usize {
    nt * width + 16
}

/// Tile `t = (ti * n + b) * tw + tj` as `(ti, b, tj)`.
#[inline(always)]
fn tile_pos(t: usize, n: usize, tw: usize) -> (usize, usize, usize) {
    (t / (n * tw), (t / tw) % n, t % tw)
}

impl Ctx<'_> {
    /// Tiles `t0..t0 + nt`: transform in, 16 GEMMs, transform out and write.
    fn block(&self, t0: usize, nt: usize, out: &mut [f32]) {
        let (c, o) = (self.conv.c, self.conv.o);
        // V, M, then room for a patch copy.
        let work = 16 * c;
        let (vs, ms) = (point_stride(nt, c), point_stride(nt, o));
        with_scratch(POINTS * (vs + ms) + work, |scratch| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let (v, rest) = scratch.split_at_mut(POINTS * vs);
                    let (m, work) = rest.split_at_mut(POINTS * ms);
                    for t in 0..nt {
                        self.input_tile(t0 + t, t, nt, v, work);
                    }
                    for p in 0..POINTS {
                        // SAFETY: dst is point p's `nt x o` block of `m`, lhs point p's
                        // `nt x c` block of `v`, rhs point p's `c x o` block of `u`, each
                        // row-major with the given row stride and inside its buffer (`m`
                        // and `v` hold 16 such blocks `ms` / `vs` floats apart, each at
                        // least `nt` rows long; `u` 16 of `c x o`). `m` and `v` are
                        // disjoint parts of this thread's scratch, which is not `u`.
                        unsafe {
                            gemm_rows(
                                (nt, o, c),
                                (m.as_mut_ptr().add(p * ms), o, false),
                                (v.as_ptr().add(p * vs), c),
                                (self.conv.u.as_ptr().add(p * c * o), o),
                            );
                        }
                    }
                    for t in 0..nt {
                        self.output_tile(t0 + t, t, nt, m, out);
                    }
                },
            )
        });
    }

    /// `V = B^T d B` of tile `tile` (number `t` of `nt` in the block) into `v`'s 16
    /// points; `work` holds at least 16 c floats.
    #[inline(always)]
    fn input_tile(&self, tile: usize, t: usize, nt: usize, v: &mut [f32], work: &mut [f32]) {
        let (c, n, fin) = (self.conv.c, self.n, self.fin);
        let (ti, b, tj) = tile_pos(tile, n, self.tw);
        let (r0, q0) = (2 * ti, 2 * tj);
        // A patch row is 4 columns x c channels, one run of the input; a patch that runs
        // past the padded image (an odd height or width) is copied with zeros there.
        let rows: [&[f32]; 4] = if r0 + 4 <= fin.hp() && q0 + 4 <= fin.wp {
            std::array::from_fn(|r| {
                let at = fin.at(n, r0 + r, b, q0);
                &self.input[at..at + 4 * c]
            })
        } else {
            let patch = &mut work[..16 * c];
            patch.fill(0.0);
            for (r, row) in patch.chunks_exact_mut(4 * c).enumerate() {
                if r0 + r < fin.hp() {
                    let cols = 4.min(fin.wp - q0);
                    let at = fin.at(n, r0 + r, b, q0);
                    row[..cols * c].copy_from_slice(&self.input[at..at + cols * c]);
                }
            }
            let p = &*work;
            std::array::from_fn(|r| &p[r * 4 * c..(r + 1) * 4 * c])
        };
        let vs = point_stride(nt, c);
        let at = |p: usize| p * vs + t * c;
        let mut ch = 0;
        while ch + LANES <= c {
            input_points::<Lanes>(rows, c, ch, v, at);
            ch += LANES;
        }
        for ch in ch..c {
            input_points::<f32>(rows, c, ch, v, at);
        }
    }

    /// `Y = A^T M A` of tile `tile` (number `t` of `nt`) from `m`'s 16 points, then the
    /// epilogue, into the output pixels that exist.
    #[inline(always)]
    fn output_tile(&self, tile: usize, t: usize, nt: usize, m: &[f32], out: &mut [f32]) {
        let (o, n) = (self.conv.o, self.n);
        let (fin, fout) = (self.fin, self.place.frame);
        let (ti, b, tj) = tile_pos(tile, n, self.tw);
        // Where each of the 2x2 outputs goes and which input pixel it adds (None: the
        // pixel lies past an odd height or width).
        let pixels: [Option<(usize, usize)>; 4] = std::array::from_fn(|k| {
            let (i, j) = (2 * ti + k / 2, 2 * tj + k % 2);
            (i < fout.h && j < fout.w)
                .then(|| (self.place.pixel(i, b, j), fin.at(n, i + 1, b, j + 1)))
        });
        let ctx = OutCtx {
            m,
            at: |p: usize| p * point_stride(nt, o) + t * o,
            pixels,
            bias: &self.conv.bias,
            residual: self.epi.residual.then_some(self.input),
            act: self.epi.act,
        };
        let mut ch = 0;
        while ch + LANES <= o {
            ctx.points::<Lanes>(ch, out);
            ch += LANES;
        }
        for ch in ch..o {
            ctx.points::<f32>(ch, out);
        }
    }
}

/// What the output transform of one tile reads and where it writes.
struct OutCtx<'a, F: Fn(usize) -> usize> {
    /// The block's GEMM products; point `p` of the tile starts at `at(p)`.
    m: &'a [f32],
    at: F,
    /// `(output offset, residual offset)` of each of the 2x2 outputs that exist.
    pixels: [Option<(usize, usize)>; 4],
    bias: &'a [f32],
    /// The conv's input, when the block adds it.
    residual: Option<&'a [f32]>,
    act: Act,
}

impl<F: Fn(usize) -> usize> OutCtx<'_, F> {
    /// `A^T M A` for the channels `ch..ch + T::WIDTH`, then `act(y + bias (+ input))`
    /// into the output.
    #[inline(always)]
    fn points<T: Vals>(&self, ch: usize, out: &mut [f32]) {
        let m = |p: usize| T::load(self.m, (self.at)(p) + ch);
        // A^T x = (x0 + x1 + x2, x1 - x2 - x3) down each column, then along the rows.
        let col = |s: usize| {
            let (x0, x1, x2, x3) = (m(s), m(4 + s), m(8 + s), m(12 + s));
            (x0 + x1 + x2, x1 - x2 - x3)
        };
        let ((a0, b0), (a1, b1), (a2, b2), (a3, b3)) = (col(0), col(1), col(2), col(3));
        let y = [a0 + a1 + a2, a1 - a2 - a3, b0 + b1 + b2, b1 - b2 - b3];
        let bias = T::load(self.bias, ch);
        for (yk, pixel) in y.into_iter().zip(self.pixels) {
            let Some((dst, res)) = pixel else { continue };
            let mut val = yk + bias;
            if let Some(x) = self.residual {
                val = val + T::load(x, res + ch);
            }
            val.act(self.act).store(out, dst + ch);
        }
    }
}

/// The 16 points `B^T d B` of the channels `ch..ch + T::WIDTH` of a patch (`rows`: 4
/// rows of 4 columns x c channels), point `p` stored at `v[at(p) + ch..]`.
#[inline(always)]
fn input_points<T: Vals>(
    rows: [&[f32]; 4],
    c: usize,
    ch: usize,
    v: &mut [f32],
    at: impl Fn(usize) -> usize,
) {
    let d = |r: usize, s: usize| T::load(rows[r], s * c + ch);
    // B^T x = (x0 - x2, x1 + x2, x2 - x1, x1 - x3) down each column, then along the rows.
    let col = |s: usize| {
        let (d0, d1, d2, d3) = (d(0, s), d(1, s), d(2, s), d(3, s));
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    };
    let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
    for a in 0..4 {
        let (x0, x1, x2, x3) = (c0[a], c1[a], c2[a], c3[a]);
        (x0 - x2).store(v, at(a * 4) + ch);
        (x1 + x2).store(v, at(a * 4 + 1) + ch);
        (x2 - x1).store(v, at(a * 4 + 2) + ch);
        (x1 - x3).store(v, at(a * 4 + 3) + ch);
    }
}

/// Channels the transforms handle at once (one AVX-512 vector).
const LANES: usize = 16;

/// LANES channels of one value.
#[derive(Clone, Copy)]
struct Lanes([f32; LANES]);

impl std::ops::Add for Lanes {
    type Output = Self;
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        Self(std::array::from_fn(|j| self.0[j] + rhs.0[j]))
    }
}

impl std::ops::Sub for Lanes {
    type Output = Self;
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        Self(std::array::from_fn(|j| self.0[j] - rhs.0[j]))
    }
}

/// What the transforms compute on: one channel (`f32`), or LANES of them, so that the
/// vector body and the scalar tail are the same code.
trait Vals: Copy + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> {
    /// `src[at..]`.
    fn load(src: &[f32], at: usize) -> Self;
    /// `dst[at..] = self`.
    fn store(self, dst: &mut [f32], at: usize);
    /// The activation on every lane.
    fn act(self, act: Act) -> Self;
}

impl Vals for f32 {
    #[inline(always)]
    fn load(src: &[f32], at: usize) -> Self {
        src[at]
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], at: usize) {
        dst[at] = self;
    }
    #[inline(always)]
    fn act(self, act: Act) -> Self {
        act.apply(self)
    }
}

impl Vals for Lanes {
    #[inline(always)]
    fn load(src: &[f32], at: usize) -> Self {
        let src = &src[at..at + LANES];
        Self(std::array::from_fn(|j| src[j]))
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], at: usize) {
        for (d, v) in dst[at..at + LANES].iter_mut().zip(self.0) {
            *d = v;
        }
    }
    #[inline(always)]
    fn act(self, act: Act) -> Self {
        Self(self.0.map(|v| act.apply(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::batched_conv::RowConv;
    use crate::model::cpu::epilogue::Act;

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

    /// Against the direct batched conv (itself tested against the textbook one): odd and
    /// even sizes, channel counts off the vector width, residual, rows wider than needed.
    #[test]
    fn matches_the_direct_conv() {
        // (n, c, o, h, w, residual, output pad, input row step)
        for &(n, c, o, h, w, residual, opad, step) in &[
            (3, 32, 32, 8, 6, true, 1, 1),
            (2, 5, 7, 9, 11, false, 0, 1),
            (4, 20, 20, 27, 16, true, 1, 1),
            (2, 17, 33, 3, 3, false, 0, 1),
            (1, 16, 16, 1, 1, true, 1, 1),
            (3, 48, 40, 9, 6, false, 1, 3),
            (2, 3, 3, 5, 7, true, 0, 2),
        ] {
            let case = (n, c, o, h, w, residual);
            let x = values(n * c * h * w, 1);
            let wt = values(o * c * 9, 2);
            let bias = values(o, 3);
            let fin = Frame::new(h, w, c, 1, step);
            let mut xin = vec![f32::NAN; fin.len(n)];
            fin.pack_nchw(&x, n, &mut xin);
            let fout = Frame::new(h, w, o, opad, 1);
            let epi = RowEpilogue {
                residual,
                act: Act::Relu,
            };
            let mut want = vec![0f32; fout.len(n)];
            RowConv::new(&wt, &bias, (o, c, 3), (1, 1), 1)
                .unwrap()
                .run(&xin, &fin, n, Out::all(&mut want, &fout, n), epi)
                .unwrap();
            let mut got = vec![f32::NAN; fout.len(n)];
            RowWinograd::new(&wt, &bias, (o, c))
                .unwrap()
                .run(&xin, &fin, n, Out::all(&mut got, &fout, n), epi)
                .unwrap();
            // Every value written (pads zeroed), within a few roundings of the direct conv.
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let d = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(d <= 2e-5 * scale, "{case:?}: max diff {d} of {scale}");
        }
    }

    #[test]
    fn wrong_geometry_is_an_error() {
        let conv = RowWinograd::new(&values(4 * 3 * 9, 1), &[0.0; 4], (4, 3)).unwrap();
        let fin = Frame::new(6, 6, 3, 1, 1);
        let x = vec![0f32; fin.len(2)];
        let fout = Frame::new(6, 6, 4, 0, 1);
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
        let res = RowEpilogue {
            residual: true,
            act: Act::Relu,
        };
        assert!(
            conv.run(&x, &fin, 2, Out::all(&mut y, &fout, 2), res)
                .is_err()
        );
        let unpadded = Frame::new(6, 6, 3, 0, 1);
        let x0 = vec![0f32; unpadded.len(2)];
        assert!(
            conv.run(
                &x0,
                &unpadded,
                2,
                Out::all(&mut y, &fout, 2),
                RowEpilogue::default()
            )
            .is_err()
        );
        assert!(RowWinograd::new(&[0.0; 5], &[0.0; 4], (4, 3)).is_err());
    }
}
