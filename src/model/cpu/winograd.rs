//! Winograd F(2x2, 3x3) for the stride-1, padding-1 3x3 convolutions: the decoder's
//! StyledConvs, the expression blocks (EEM) and the encoder's first conv of each block.
//!
//! Each 2x2 output tile is `A^T [ (G g G^T) ⊙ (B^T d B) ] A` (Lavin & Gray 2016) for the
//! 4x4 input patch `d` around it, so one tile costs 16 multiplies per (in, out) channel pair
//! instead of 36: the layer becomes 16 GEMMs `U_t (O x C) @ V_t (C x tiles)` over 2.25x
//! fewer FLOPs. The transforms use only ±1 and 0.5, so f32 rounding stays close to the
//! direct convolution's.
//!
//! The input is packed once (zero-padded, scaled per channel by the style), each padded
//! row stored as its even columns then its odd columns so the input transform reads
//! contiguous runs. Work is cut into (output channels) x (tiles) blocks on rayon; a block
//! transforms its tiles' input, runs the 16 GEMMs, and applies the output transform and
//! the epilogue (demodulation, bias, residual, activation) as it writes.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::epilogue::EpiData;
use super::gemm::gemm_rows;
use super::scratch::with_scratch;
use super::send_ptr::SendPtr;
use super::simd;
use crate::model::error::{ModelError, ModelResult};

/// Transform points per tile (4x4).
const POINTS: usize = 16;
/// `G` of F(2, 3): 3 kernel taps to 4 transform points.
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
/// Tiles the transforms handle at once (one AVX-512 vector).
const LANES: usize = 16;
/// Target size in floats of a block's transformed input (`16 x C x tiles`).
const BLOCK_FLOATS: usize = 1 << 20;
/// Most tiles per block.
const MAX_BLOCK_TILES: usize = 256;
/// Output-channel rows per GEMM at most.
const ROWS: usize = 128;

/// `U = G g G^T` for every `(out, in)` pair of a 3x3 weight `(O, C, 3, 3)`: `(16, O, C)`.
pub fn transform_weight(w: &Tensor) -> ModelResult<Tensor> {
    let (o, c, kh, kw) = w.dims4()?;
    if (kh, kw) != (3, 3) {
        return Err(ModelError::Layout(format!(
            "Winograd F(2x2, 3x3) needs a 3x3 kernel, found {kh}x{kw}"
        )));
    }
    let g = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let oc = o * c;
    let mut u = vec![0f32; POINTS * oc];
    for (i, k) in g.chunks_exact(9).enumerate() {
        // (G g): 4x3, then (G g) G^T: 4x4.
        let mut gg = [[0f32; 3]; 4];
        for (a, row) in gg.iter_mut().enumerate() {
            for (s, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|r| G[a][r] * k[r * 3 + s]).sum();
            }
        }
        for (a, row) in gg.iter().enumerate() {
            for (b, gb) in G.iter().enumerate() {
                u[(a * 4 + b) * oc + i] = (0..3).map(|s| row[s] * gb[s]).sum();
            }
        }
    }
    Ok(Tensor::from_vec(u, (POINTS, o, c), w.device())?)
}

/// The 3x3 taps `(9, O, C)` of a weight from its transform `u` `(16, O, C)`
/// ([`transform_weight`]): `g = L U L^T` with `L` the exact left inverse of `G`
/// (`g0 = u0`, `g1 = u1 - u2`, `g2 = u3` along each axis), so nothing is lost beyond the
/// transform's own f32 rounding.
pub(super) fn taps_from_transform(u: &[f32], o: usize, c: usize) -> Vec<f32> {
    let oc = o * c;
    let mut g = vec![0f32; 9 * oc];
    // Row `a` of L as (index, sign) pairs.
    const L: [&[(usize, f32)]; 3] = [&[(0, 1.0)], &[(1, 1.0), (2, -1.0)], &[(3, 1.0)]];
    for i in 0..oc {
        for (a, la) in L.iter().enumerate() {
            for (b, lb) in L.iter().enumerate() {
                let mut v = 0f32;
                for &(p, sp) in la.iter() {
                    for &(q, sq) in lb.iter() {
                        v += sp * sq * u[(p * 4 + q) * oc + i];
                    }
                }
                g[(a * 3 + b) * oc + i] = v;
            }
        }
    }
    g
}

/// Shapes of one layer.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    /// Tiles per column / row of a sample.
    th: usize,
    tw: usize,
}

impl Dims {
    /// Padded rows per sample (one zero row above, at least one below).
    fn hp(&self) -> usize {
        2 * self.th + 2
    }
    /// Even (and odd) columns per padded row.
    fn half(&self) -> usize {
        self.tw + 1
    }
    /// Floats per packed sample plane.
    fn plane(&self) -> usize {
        self.hp() * 2 * self.half()
    }
}

/// `x` `(B, C, H, W)` scaled by `scale[b, c]`, zero-padded (x at row 1, column 1) and
/// packed as `(C, B, hp, [even columns | odd columns])`.
fn pack(x: &[f32], d: &Dims, scale: Option<&[f32]>) -> Vec<f32> {
    let (half, plane) = (d.half(), d.plane());
    let ld = d.b * plane;
    let mut p = vec![0f32; d.c * ld];
    p.par_chunks_mut(ld).enumerate().for_each(|(ci, dst)| {
        simd::dispatch(
            #[inline(always)]
            || {
                for bi in 0..d.b {
                    let s = scale.map_or(1.0, |s| s[bi * d.c + ci]);
                    let src = &x[(bi * d.c + ci) * d.h * d.w..][..d.h * d.w];
                    for (i, row) in src.chunks_exact(d.w).enumerate() {
                        let r = &mut dst[bi * plane + (i + 1) * 2 * half..][..2 * half];
                        let (even, odd) = r.split_at_mut(half);
                        // Input column j sits at padded column j + 1: even j -> odd half, index
                        // j / 2; odd j -> even half, index (j + 1) / 2.
                        for (v, &xv) in odd.iter_mut().zip(row.iter().step_by(2)) {
                            *v = xv * s;
                        }
                        for (v, &xv) in even[1..].iter_mut().zip(row.iter().skip(1).step_by(2)) {
                            *v = xv * s;
                        }
                    }
                }
            },
        )
    });
    p
}

/// A run of tiles along one tile row: block columns `q..q + len` are tiles
/// `(b, ti, tj..tj + len)`.
#[derive(Clone, Copy, Debug)]
struct Run {
    q: usize,
    len: usize,
    b: usize,
    ti: usize,
    tj: usize,
}

/// The runs covering tiles `n0..n0 + cols` (tiles numbered `(b, ti, tj)` row-major).
fn runs(d: &Dims, n0: usize, cols: usize) -> Vec<Run> {
    let per = d.th * d.tw;
    let mut out = Vec::new();
    let mut n = n0;
    while n < n0 + cols {
        let (b, r) = (n / per, n % per);
        let (ti, tj) = (r / d.tw, r % d.tw);
        let len = (d.tw - tj).min(n0 + cols - n);
        out.push(Run {
            q: n - n0,
            len,
            b,
            ti,
            tj,
        });
        n += len;
    }
    out
}

/// `V = B^T d B` for channel `ci` of a run's tiles, written to `v[t][ci][run.q..]` of a
/// block `(16, C, cols)`.
#[inline(always)]
fn input_transform(p: &[f32], d: &Dims, ci: usize, run: &Run, v: &mut [f32], cols: usize) {
    let half = d.half();
    let ld = d.b * d.plane();
    let rows: [&[f32]; 4] =
        std::array::from_fn(|r| &p[ci * ld + run.b * d.plane() + (2 * run.ti + r) * 2 * half..]);
    let mut j0 = 0;
    while j0 < run.len {
        let n = LANES.min(run.len - j0);
        let at = run.tj + j0;
        // Even / odd columns of the 4 patch rows at tiles j and j + 1 (a tail block reads
        // zero-padded copies).
        let t = if n == LANES {
            let lanes =
                |off: usize| -> [Lanes; 4] { std::array::from_fn(|r| load(&rows[r][off..])) };
            input_points(
                &lanes(at),
                &lanes(at + 1),
                &lanes(half + at),
                &lanes(half + at + 1),
            )
        } else {
            let mut pad = [[0f32; 2 * LANES]; 8];
            for r in 0..4 {
                pad[r][..=n].copy_from_slice(&rows[r][at..=at + n]);
                pad[4 + r][..=n].copy_from_slice(&rows[r][half + at..=half + at + n]);
            }
            let lanes = |k: usize, off: usize| -> [Lanes; 4] {
                std::array::from_fn(|r| load(&pad[k + r][off..]))
            };
            input_points(&lanes(0, 0), &lanes(0, 1), &lanes(4, 0), &lanes(4, 1))
        };
        for (pt, vals) in t.iter().enumerate() {
            let off = (pt * d.c + ci) * cols + run.q + j0;
            if n == LANES {
                store(&mut v[off..off + LANES], vals);
            } else {
                v[off..off + n].copy_from_slice(&vals[..n]);
            }
        }
        j0 += n;
    }
}

/// LANES values, one per tile.
type Lanes = [f32; LANES];

/// `src[..LANES]` as an array (constant-size loads, not a `memcpy` call).
#[inline(always)]
fn load(src: &[f32]) -> Lanes {
    let src = &src[..LANES];
    std::array::from_fn(|j| src[j])
}

/// `dst[..LANES] = vals`.
#[inline(always)]
fn store(dst: &mut [f32], vals: &Lanes) {
    for (d, &v) in dst[..LANES].iter_mut().zip(vals) {
        *d = v;
    }
}

#[inline(always)]
fn add(a: &Lanes, b: &Lanes) -> Lanes {
    std::array::from_fn(|j| a[j] + b[j])
}

#[inline(always)]
fn sub(a: &Lanes, b: &Lanes) -> Lanes {
    std::array::from_fn(|j| a[j] - b[j])
}

/// The 16 transform points of LANES tiles from the even / odd columns of their 4 patch
/// rows: `e0`, `o0` at the tile's own column pair, `e1`, `o1` at the next tile's.
#[inline(always)]
fn input_points(
    e0: &[Lanes; 4],
    e1: &[Lanes; 4],
    o0: &[Lanes; 4],
    o1: &[Lanes; 4],
) -> [Lanes; POINTS] {
    // B^T d: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
    let rows = |m: &[Lanes; 4]| -> [Lanes; 4] {
        [
            sub(&m[0], &m[2]),
            add(&m[1], &m[2]),
            sub(&m[2], &m[1]),
            sub(&m[1], &m[3]),
        ]
    };
    let (ue0, ue1, uo0, uo1) = (rows(e0), rows(e1), rows(o0), rows(o1));
    // (B^T d) B: tile j's columns are (e0[j], o0[j], e1[j], o1[j]).
    std::array::from_fn(|pt| {
        let a = pt / 4;
        match pt % 4 {
            0 => sub(&ue0[a], &ue1[a]),
            1 => add(&uo0[a], &ue1[a]),
            2 => sub(&ue1[a], &uo0[a]),
            _ => sub(&uo0[a], &uo1[a]),
        }
    })
}

/// `Y = A^T M A` of LANES tiles: output rows 0 and 1, each `2 * LANES` values with the
/// tiles' two columns interleaved.
#[inline(always)]
fn output_points(mut mm: [Lanes; POINTS]) -> [[f32; 2 * LANES]; 2] {
    // A^T M: rows (m0 + m1 + m2, m1 - m2 - m3), then the same on columns.
    for b in 0..4 {
        let (m0, m1, m2, m3) = (mm[b], mm[4 + b], mm[8 + b], mm[12 + b]);
        mm[b] = add(&add(&m0, &m1), &m2);
        mm[4 + b] = sub(&sub(&m1, &m2), &m3);
    }
    let mut y = [[0f32; 2 * LANES]; 2];
    for (i, yi) in y.iter_mut().enumerate() {
        let tr = &mm[i * 4..i * 4 + 4];
        for j in 0..LANES {
            yi[2 * j] = tr[0][j] + tr[1][j] + tr[2][j];
            yi[2 * j + 1] = tr[1][j] - tr[2][j] - tr[3][j];
        }
    }
    y
}

/// `Y = A^T M A` for output channel `o` (row `r` of the block's accumulators `m`
/// `(16, rows, cols)`) over a run's tiles, then the epilogue, written into `out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_transform(
    m: &[f32],
    (rows, cols): (usize, usize),
    r: usize,
    o: usize,
    run: &Run,
    d: &Dims,
    epi: &EpiData,
    out: SendPtr<f32>,
) {
    let scale = epi.scale(run.b, o);
    let bias = epi.bias(o);
    let plane_base = (run.b * d.o + o) * d.h * d.w;
    let mut j0 = 0;
    while j0 < run.len {
        let n = LANES.min(run.len - j0);
        let mm: [Lanes; POINTS] = std::array::from_fn(|pt| {
            let off = (pt * rows + r) * cols + run.q + j0;
            if n == LANES {
                load(&m[off..])
            } else {
                let mut l = [0f32; LANES];
                l[..n].copy_from_slice(&m[off..off + n]);
                l
            }
        });
        let y = output_points(mm);
        let x0 = 2 * (run.tj + j0);
        let width = (2 * n).min(d.w - x0);
        for (i, yi) in y.iter().enumerate() {
            let yy = 2 * run.ti + i;
            if yy >= d.h {
                break;
            }
            let base = plane_base + yy * d.w + x0;
            // SAFETY: `out` is the `(B, O, H, W)` output, which outlives `conv3x3`'s parallel
            // loop; `base..base + width` lies in its plane (b, o), row `yy < H`, columns
            // `x0..x0 + width <= W`, and these tiles of channel `o` are this block's alone, so
            // no other block writes (or reads) them while the slice lives.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(base), width) };
            epi.write(dst, &yi[..width], scale, bias, base);
        }
        j0 += n;
    }
}

/// `conv2d(x * scale, w, stride 1, padding 1)` with the epilogue, for `x` `(B, C, H, W)`
/// and the transformed weight `u` `(16, O, C)` from [`transform_weight`]. Writes the
/// `(B, O, H, W)` result into `out`.
pub(super) fn conv3x3(
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    scale: Option<&[f32]>,
    u: &[f32],
    o: usize,
    epi: &EpiData,
    out: &mut [f32],
) {
    let d = Dims {
        b,
        c,
        o,
        h,
        w,
        th: h.div_ceil(2),
        tw: w.div_ceil(2),
    };
    let ntiles = b * d.th * d.tw;
    if ntiles == 0 || o == 0 {
        return;
    }
    debug_assert_eq!(u.len(), POINTS * o * c);
    debug_assert_eq!(out.len(), b * o * h * w);
    let p = pack(x, &d, scale);
    let ptr = SendPtr(out.as_mut_ptr());

    let threads = rayon::current_num_threads().max(1);
    let cols = (BLOCK_FLOATS / (POINTS * c.max(1)))
        .clamp(LANES, MAX_BLOCK_TILES)
        .min(ntiles);
    let n_col = ntiles.div_ceil(cols);
    // Split the output channels into groups when there are too few tile blocks to share
    // out; each group transforms its tiles' input again (cheap next to the GEMMs).
    let mut groups = 1;
    while n_col * groups < 2 * threads && o.div_ceil(groups * 2) >= 32 {
        groups *= 2;
    }
    let per_group = o.div_ceil(groups);
    (0..n_col * groups).into_par_iter().for_each(|task| {
        let (g, tc) = (task / n_col, task % n_col);
        let n0 = tc * cols;
        let cols = cols.min(ntiles - n0);
        let (g0, g1) = (g * per_group, ((g + 1) * per_group).min(o));
        if g0 >= g1 {
            return;
        }
        let runs = runs(&d, n0, cols);
        let max_rows = ROWS.min(g1 - g0);
        // Every element of V is written by the input transform and every element of M by
        // the GEMMs (not accumulating) before it is read, so stale scratch is fine.
        with_scratch(POINTS * (c + max_rows) * cols, |scratch| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let (v, m) = scratch.split_at_mut(POINTS * c * cols);
                    for ci in 0..c {
                        for run in &runs {
                            input_transform(&p, &d, ci, run, v, cols);
                        }
                    }
                    let mut o0 = g0;
                    while o0 < g1 {
                        let rows = max_rows.min(g1 - o0);
                        for pt in 0..POINTS {
                            // SAFETY: lhs is rows `o0..o0 + rows` of `U_pt` (`(O, C)` inside `u`, which
                            // holds 16 of them), rhs `V_pt` `(C, cols)` inside `v` (`16 * C * cols`
                            // floats), dst the `(rows, cols)` block `pt` of `m` (`16 * rows * cols`
                            // floats at least); `v` and `m` are the two halves of the scratch
                            // (`split_at_mut`) and `u` is the weight, so dst overlaps neither input.
                            unsafe {
                                gemm_rows(
                                    (rows, cols, c),
                                    (m.as_mut_ptr().add(pt * rows * cols), cols, false),
                                    (u.as_ptr().add((pt * o + o0) * c), c),
                                    (v.as_ptr().add(pt * c * cols), cols),
                                );
                            }
                        }
                        for r in 0..rows {
                            for run in &runs {
                                output_transform(m, (rows, cols), r, o0 + r, run, &d, epi, ptr);
                            }
                        }
                        o0 += rows;
                    }
                },
            )
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_transform_of_a_delta_kernel() {
        // A kernel with only its centre tap: G g G^T = outer(G[:, 1], G[:, 1]).
        let mut k = vec![0f32; 9];
        k[4] = 1.0;
        let w = Tensor::from_vec(k, (1, 1, 3, 3), &candle_core::Device::Cpu).unwrap();
        let u = transform_weight(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let col = [0.0, 0.5, -0.5, 0.0];
        for a in 0..4 {
            for b in 0..4 {
                assert_eq!(u[a * 4 + b], col[a] * col[b]);
            }
        }
    }

    #[test]
    fn taps_come_back_from_the_transform() {
        let g: Vec<f32> = (0..2 * 3 * 9)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let w = Tensor::from_vec(g.clone(), (2, 3, 3, 3), &candle_core::Device::Cpu).unwrap();
        let u = transform_weight(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let taps = taps_from_transform(&u, 2, 3);
        // taps[(tap, o, c)] against g[(o, c, tap)].
        for oc in 0..6 {
            for t in 0..9 {
                let (want, got) = (g[oc * 9 + t], taps[t * 6 + oc]);
                assert!(
                    (want - got).abs() < 1e-6,
                    "tap {t} of {oc}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn runs_split_at_tile_rows_and_samples() {
        let d = Dims {
            b: 2,
            c: 1,
            o: 1,
            h: 5,
            w: 7,
            th: 3,
            tw: 4,
        };
        let r = runs(&d, 2, 16);
        let spans: Vec<_> = r.iter().map(|r| (r.q, r.len, r.b, r.ti, r.tj)).collect();
        assert_eq!(
            spans,
            vec![
                (0, 2, 0, 0, 2),
                (2, 4, 0, 1, 0),
                (6, 4, 0, 2, 0),
                (10, 4, 1, 0, 0),
                (14, 2, 1, 1, 0)
            ]
        );
    }
}
