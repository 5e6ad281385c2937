//! Direct f32 CPU convolutions (shifted-tap GEMMs), the hot path of the decoder and the
//! encoder, and [`TapWeight`], the weight layout of every CPU convolution
//! (stride-1 3x3 convs with a Winograd weight go to `winograd` from [`conv2d`]).
//!
//! A convolution is a sum over kernel taps of `W_tap (O x C) @ X_tap (C x N)`. For stride 1
//! the input is packed once, zero-padded (and scaled per channel: the style of a modulated
//! conv) as `(C, B, Hp, Wp)`; every tap is then the *same* matrix read from an offset
//! (`ky * Wp + kx`), so there is no im2col copy. The output is computed on the padded grid
//! and the few columns that fall into the padding are dropped when it is written out.
//! Strided convolutions gather each tap's columns into a small per-tile buffer instead.
//! The transposed 3x3 stride-2 conv of the upsampling layers splits into its four output
//! phases, each a sum of shifted taps (no multiplications by inserted zeros).
//!
//! The work is cut into tiles of (output channels) x (columns) run on rayon; a tile's
//! accumulator stays in cache across the taps, and the epilogue (output scale, i.e. the
//! demodulation, then bias, residual and activation) is applied as the tile is written, so
//! the whole layer touches the big activations twice (pack, write-out).

use std::sync::OnceLock;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::data::{cpu_f32, small_vec};
use super::epilogue::{EpiData, Epilogue};
use super::gemm::{BF16_MIN_ROWS, gemm_rows_in};
use super::precision::{self, Precision};
use super::scratch::with_scratch;
use super::send_ptr::SendPtr;
use super::simd;
use super::winograd;
use crate::model::error::{ModelError, ModelResult};

/// Input channels from which a stride-1 3x3 conv runs as Winograd F(2x2, 3x3). Its 16
/// GEMMs have depth C and its transforms cost a fixed amount per channel and tile, so it
/// pays off on the wide layers: measured at the decoder's shapes on AVX-512 (one thread,
/// `edtalk bench --only layers`), 512 channels at 32 px 30 ms vs 54 direct, 256 at 64 px
/// 35 vs 50. 128 at 128 px was about even at first; with today's kernels it is 46-89 ms
/// vs 76-112 direct (three runs, two threads, 2-vCPU VM), so it runs as Winograd too;
/// 64 at 256 px is within noise (108-113 vs 113-115) and stays direct.
pub const WINOGRAD_MIN_CHANNELS: usize = 128;

/// A convolution weight in the layout of these kernels: per kernel tap, `(k*k, O, C)`, or
/// for a stride-1 "same" 3x3 conv the Winograd transform `(16, O, C)` (see the `winograd`
/// module).
#[derive(Clone, Debug)]
pub struct TapWeight {
    taps: Option<Tensor>,
    wino: Option<Tensor>,
    /// The weight (taps or Winograd form) rounded to bf16 for [`Precision::Bf16`], made
    /// on first use (`amx::round_matrices` layout: rows of `C` rounded up to 32).
    rounded: OnceLock<Vec<u16>>,
    k: usize,
    out_ch: usize,
    in_ch: usize,
}

impl TapWeight {
    /// From a weight `(O, C, k, k)`. For the transposed conv pass the official weight read
    /// as `(out, in, k, k)`: tap `(ky, kx)` of either is `w[:, :, ky, kx]`.
    pub fn new(w: &Tensor) -> ModelResult<Self> {
        let (o, c, kh, kw) = w.dims4()?;
        if kh != kw {
            return Err(ModelError::Layout(format!(
                "convolution kernel must be square, found {kh}x{kw}"
            )));
        }
        let taps = w
            .to_dtype(DType::F32)?
            .permute((2, 3, 0, 1))?
            .reshape((kh * kw, o, c))?
            .contiguous()?;
        Ok(Self {
            taps: Some(taps),
            wino: None,
            rounded: OnceLock::new(),
            k: kh,
            out_ch: o,
            in_ch: c,
        })
    }

    /// For a conv that always runs with stride 1 and padding 1: a 3x3 weight `(O, C, 3, 3)`
    /// with at least [`WINOGRAD_MIN_CHANNELS`] input channels is kept only in its Winograd
    /// form; anything else as taps.
    pub fn same(w: &Tensor) -> ModelResult<Self> {
        let (_, c, kh, kw) = w.dims4()?;
        if (kh, kw) != (3, 3) || c < WINOGRAD_MIN_CHANNELS {
            return Self::new(w);
        }
        Self::winograd(w)
    }

    /// A 3x3 weight `(O, C, 3, 3)` in Winograd form only, whatever its width.
    pub fn winograd(w: &Tensor) -> ModelResult<Self> {
        let (o, c, _, _) = w.dims4()?;
        Ok(Self {
            taps: None,
            wino: Some(winograd::transform_weight(w)?),
            rounded: OnceLock::new(),
            k: 3,
            out_ch: o,
            in_ch: c,
        })
    }

    /// The per-tap weight, or an error for a Winograd-only weight used another way.
    fn taps(&self) -> ModelResult<&Tensor> {
        self.taps.as_ref().ok_or_else(|| {
            ModelError::Layout(
                "this 3x3 convolution weight was prepared for stride 1 and padding 1 only".into(),
            )
        })
    }

    /// The weight's taps `(k*k, O, C)` rounded to bf16, with their row stride, when
    /// `precision` is bf16; made once and kept (a quarter of the f32 taps' memory, only in
    /// bf16). A Winograd-only 3x3 weight gets its taps back exactly from `U = G g G^T`
    /// (`winograd::taps_from_transform`): in bf16 the direct conv is both faster (no
    /// transforms; the GEMMs are cheap) and closer to f32 (the transforms would add to the
    /// rounding of their inputs).
    fn rounded(&self, precision: Precision) -> ModelResult<Option<(&[u16], usize)>> {
        if precision != Precision::Bf16 {
            return Ok(None);
        }
        let stride = self.in_ch.next_multiple_of(32);
        if let Some(r) = self.rounded.get() {
            return Ok(Some((r, stride)));
        }
        let taps = match (&self.taps, &self.wino) {
            (Some(t), _) => t.flatten_all()?.to_vec1::<f32>()?,
            (None, Some(u)) => winograd::taps_from_transform(
                &u.flatten_all()?.to_vec1::<f32>()?,
                self.out_ch,
                self.in_ch,
            ),
            (None, None) => return Ok(None),
        };
        let r = self
            .rounded
            .get_or_init(|| super::amx::round_matrices(&taps, self.in_ch));
        Ok(Some((r, stride)))
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_ch
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_ch
    }

    /// Kernel side.
    pub fn kernel(&self) -> usize {
        self.k
    }
}

/// `x` `(B, C, H, W)` packed as `(C, B, hp, wp)` with `x` at `(top, left)`, zeros around,
/// scaled by `scale[b, c]`, each channel row followed by `slack` zeros so that shifted taps
/// stay in bounds. Returns the buffer and its row stride.
#[allow(clippy::too_many_arguments)]
fn pack(
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    scale: Option<&[f32]>,
    (top, left): (usize, usize),
    (hp, wp): (usize, usize),
    slack: usize,
) -> (Vec<f32>, usize) {
    let plane = hp * wp;
    let ld = b * plane + slack;
    let mut p = vec![0f32; c * ld];
    p.par_chunks_mut(ld).enumerate().for_each(|(ci, row)| {
        simd::dispatch(
            #[inline(always)]
            || {
                for bi in 0..b {
                    let s = scale.map_or(1.0, |s| s[bi * c + ci]);
                    let src = &x[(bi * c + ci) * h * w..][..h * w];
                    for i in 0..h {
                        let dst = &mut row[bi * plane + (i + top) * wp + left..][..w];
                        for (d, &v) in dst.iter_mut().zip(&src[i * w..(i + 1) * w]) {
                            *d = v * s;
                        }
                    }
                }
            },
        )
    });
    (p, ld)
}

/// Where the columns of a tile land: column `n` is `(b, i, j)` on a `gh x gw` grid per
/// sample; it is kept when `i < vh && j < vw` and written to
/// `out[(b*O + o) * plane + base + i*pitch + j*step]`.
#[derive(Clone, Copy, Debug)]
struct Grid {
    gh: usize,
    gw: usize,
    vh: usize,
    vw: usize,
    plane: usize,
    base: usize,
    pitch: usize,
    step: usize,
}

/// A run of kept columns inside a tile.
#[derive(Clone, Copy, Debug)]
struct Seg {
    /// First column, relative to the tile.
    q: usize,
    len: usize,
    b: usize,
    /// Offset of the first element inside an output plane.
    off: usize,
}

impl Grid {
    /// Last kept column + 1 for `b` samples (the columns a conv has to compute).
    fn columns(&self, b: usize) -> usize {
        if self.vh == 0 || self.vw == 0 {
            return 0;
        }
        (b - 1) * self.gh * self.gw + (self.vh - 1) * self.gw + self.vw
    }

    fn segments(&self, n0: usize, cols: usize) -> Vec<Seg> {
        let mut segs = Vec::new();
        let plane = self.gh * self.gw;
        let end = n0 + cols;
        let mut n = n0;
        while n < end {
            let (b, r) = (n / plane, n % plane);
            let (i, j) = (r / self.gw, r % self.gw);
            let row_end = n - j + self.gw;
            if i < self.vh && j < self.vw {
                let len = (self.vw - j).min(end - n);
                segs.push(Seg {
                    q: n - n0,
                    len,
                    b,
                    off: self.base + i * self.pitch + j * self.step,
                });
            }
            n = row_end.min(end).max(n + 1);
        }
        segs
    }
}

/// Writes one finished tile: `acc` is `(rows, cols)` for output channels `o0..o0+rows`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn write_tile(
    out: SendPtr<f32>,
    grid: &Grid,
    epi: &EpiData,
    o0: usize,
    rows: usize,
    n0: usize,
    cols: usize,
    acc: &[f32],
) {
    let segs = grid.segments(n0, cols);
    let o_ch = epi.out_channels();
    for r in 0..rows {
        let o = o0 + r;
        let bias = epi.bias(o);
        let a = &acc[r * cols..(r + 1) * cols];
        for s in &segs {
            let scale = epi.scale(s.b, o);
            let base = (s.b * o_ch + o) * grid.plane + s.off;
            let src = &a[s.q..s.q + s.len];
            if grid.step == 1 {
                // SAFETY: `out` is the output buffer (B * O * plane floats), which outlives
                // `run_tiles`. The grid maps this segment's kept columns to
                // `base..base + len` inside plane (b, o) of it, and the columns and output
                // channels of a tile are its own, so no other tile writes (or reads) these
                // elements while this slice lives.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(base), s.len) };
                epi.write(dst, src, scale, bias, base);
            } else {
                for (t, &v) in src.iter().enumerate() {
                    let idx = base + t * grid.step;
                    // SAFETY: as for the slice above: element `idx` of a kept column lies in
                    // plane (b, o) of the live output buffer and belongs to this tile alone.
                    unsafe { *out.get().add(idx) = epi.value(v, scale, bias, idx) };
                }
            }
        }
    }
}

/// Columns per tile: the accumulator and one tap's input block stay in L2.
const TILE_COLS: usize = 1024;
/// Output-channel rows per tile at most.
const TILE_ROWS: usize = 128;

/// Where a tap's `(C, cols)` input block comes from.
enum Source<'a> {
    /// The packed input; tap `t` starts at column offset `offsets[t]`. `pairs`: the same
    /// rounded to bf16 (`amx::round_pairs`, with its stride) when the GEMMs run in bf16.
    Shifted {
        p: &'a [f32],
        ld: usize,
        pairs: Option<(&'a [u32], usize)>,
    },
    /// A strided conv: each tap's columns are gathered from the packed input.
    Gather {
        p: &'a [f32],
        ld: usize,
        /// Packed (padded) sample size.
        hp: usize,
        wp: usize,
        /// Output size and strides.
        ho: usize,
        wo: usize,
        stride: (usize, usize),
        k: usize,
    },
}

/// Runs `sum_t W[taps[t].0] @ X(taps[t].1)` over `ncols` columns, tile by tile, and hands
/// each finished tile to `write_tile`.
#[allow(clippy::too_many_arguments)]
fn run_tiles(
    w: &[f32],
    (o_ch, c): (usize, usize),
    taps: &[(usize, usize)],
    src: &Source,
    ncols: usize,
    out: SendPtr<f32>,
    grid: &Grid,
    epi: &EpiData,
    (precision, rounded): (Precision, Option<(&[u16], usize)>),
) {
    if ncols == 0 || taps.is_empty() {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let cols = TILE_COLS.min(ncols);
    let n_col = ncols.div_ceil(cols);
    // Split the output channels too when there are too few column tiles to share out.
    let mut rows = o_ch.min(TILE_ROWS);
    while n_col * o_ch.div_ceil(rows) < 2 * threads && rows >= 64 {
        rows /= 2;
    }
    let n_row = o_ch.div_ceil(rows);
    (0..n_row * n_col).into_par_iter().for_each(|tile| {
        let (tr, tc) = (tile / n_col, tile % n_col);
        let o0 = tr * rows;
        let rows = rows.min(o_ch - o0);
        let n0 = tc * cols;
        let cols = cols.min(ncols - n0);
        let gather_len = match src {
            Source::Gather { .. } => c * cols,
            Source::Shifted { .. } => 0,
        };
        // The first tap's GEMM overwrites the accumulator and the gather
        // fills its buffer before each GEMM reads it, so stale scratch needs no zeroing.
        with_scratch(rows * cols + gather_len, |scratch| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let (acc, gathered) = scratch.split_at_mut(rows * cols);
                    let mut col_off: Vec<usize> = Vec::new();
                    for (ti, &(tap, offset)) in taps.iter().enumerate() {
                        #[cfg(target_arch = "x86_64")]
                        if let (
                            Source::Shifted {
                                pairs: Some((pv, pld)),
                                ..
                            },
                            Some((r, rs)),
                        ) = (src, rounded)
                        {
                            // SAFETY: the rounded weight holds rows `o0..o0 + rows` of tap
                            // `tap` (and 32 readable rows past its end, `round_matrices`);
                            // the pairs hold the packed input with `PAD_COLS` readable
                            // columns past each row, so columns `offset + n0 ..` up to the
                            // block's 32-rounded width stay inside (`offset + n0 + cols <=
                            // ld`, as for `p`); `acc` as below. Pairs exist only where the
                            // bf16 GEMM is available.
                            unsafe {
                                super::gemm::gemm_rows_rounded(
                                    (rows, cols, c),
                                    (acc.as_mut_ptr(), cols, ti > 0),
                                    (r.as_ptr().add((tap * o_ch + o0) * rs), rs),
                                    (pv.as_ptr().add(offset + n0), *pld),
                                );
                            }
                            continue;
                        }
                        let (rhs, rhs_rs) = match src {
                            Source::Shifted { p, ld, .. } => {
                                debug_assert!((c - 1) * ld + offset + n0 + cols <= p.len());
                                // SAFETY: `n0 < ncols <= B * hp * wp` and `offset <= slack`,
                                // so `offset + n0 < ld <= p.len()`: the pointer stays in `p`.
                                (unsafe { p.as_ptr().add(offset + n0) }, *ld)
                            }
                            Source::Gather {
                                p,
                                ld,
                                hp,
                                wp,
                                ho,
                                wo,
                                stride,
                                k,
                            } => {
                                if col_off.is_empty() {
                                    // Where each column's (0, 0) tap sits in a packed channel row.
                                    col_off.extend((n0..n0 + cols).map(|n| {
                                        let (b, r) = (n / (ho * wo), n % (ho * wo));
                                        let (i, j) = (r / wo, r % wo);
                                        b * hp * wp + i * stride.0 * wp + j * stride.1
                                    }));
                                }
                                let tap_off = (tap / k) * wp + tap % k;
                                for ci in 0..c {
                                    let row = &p[ci * ld + tap_off..];
                                    let dst = &mut gathered[ci * cols..(ci + 1) * cols];
                                    for (d, &off) in dst.iter_mut().zip(&col_off) {
                                        *d = row[off];
                                    }
                                }
                                (gathered.as_ptr(), cols)
                            }
                        };
                        // SAFETY: lhs is the `(rows, C)` block of tap `tap`, rows `o0..o0 + rows`,
                        // inside `w` (`(taps, O, C)`); rhs a `(C, cols)` block with row stride
                        // `rhs_rs`, inside `p` (`pack`'s slack covers the last row's shift, see the
                        // debug_assert) or `gathered` (`C * cols` floats); dst `acc`, `rows * cols`
                        // floats of this thread's scratch, which overlaps neither `w`, `p` nor
                        // `gathered` (the other half of the scratch).
                        unsafe {
                            gemm_rows_in(
                                precision,
                                (rows, cols, c),
                                (acc.as_mut_ptr(), cols, ti > 0),
                                (w.as_ptr().add((tap * o_ch + o0) * c), c),
                                rounded.map(|(r, rs)| (r.as_ptr().add((tap * o_ch + o0) * rs), rs)),
                                (rhs, rhs_rs),
                            );
                        }
                    }
                    write_tile(out, grid, epi, o0, rows, n0, cols, acc);
                },
            )
        });
    });
}

/// `conv2d(x, w, stride, padding=pad)` on `x` `(B, C, H, W)`, its input channels scaled by
/// `in_scale` `(B, C)` first, with the epilogue fused. Returns `(B, O, Ho, Wo)`.
pub fn conv2d(
    x: &Tensor,
    w: &TapWeight,
    stride: (usize, usize),
    pad: usize,
    in_scale: Option<&Tensor>,
    epi: &Epilogue,
) -> ModelResult<Tensor> {
    let x = x.contiguous()?;
    let (b, c, h, wd) = x.dims4()?;
    let (k, o) = (w.k, w.out_ch);
    let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
    if c != w.in_ch || hp < k || wp < k || stride.0 == 0 || stride.1 == 0 {
        return Err(ModelError::InputShape {
            what: "convolution input".into(),
            expected: format!("[B, {}, >={k}, >={k}] (with padding {pad})", w.in_ch),
            found: x.dims().to_vec(),
        });
    }
    let (ho, wo) = ((hp - k) / stride.0 + 1, (wp - k) / stride.1 + 1);
    let precision = precision::current();
    // The 3-channel heads stay f32 (see `gemm::BF16_MIN_ROWS`).
    let rounded = if o >= BF16_MIN_ROWS {
        w.rounded(precision)?
    } else {
        None
    };
    let scale = small_vec(in_scale, b * c, "input scale")?;
    let residual = epi.residual.map(|r| r.contiguous()).transpose()?;
    let res_guard = residual.as_ref().map(|r| r.storage_and_layout());
    let res = match &res_guard {
        Some((s, l)) => Some(cpu_f32(s, l, "residual")?),
        None => None,
    };
    let out_len = b * o * ho * wo;
    let epi = EpiData::new(epi, res, (b, o), out_len)?;
    let (xs, xl) = x.storage_and_layout();
    let xd = cpu_f32(&xs, xl, "convolution input")?;
    let mut out = vec![0f32; out_len];
    // In bf16 a stride-1 conv runs direct from the rounded taps (see `TapWeight::rounded`).
    if let Some(u) = &w.wino
        && stride == (1, 1)
        && pad == 1
        && rounded.is_none()
    {
        let ug = u.storage_and_layout();
        let ud = cpu_f32(&ug.0, ug.1, "convolution weight")?;
        winograd::conv3x3(xd, (b, c, h, wd), scale.as_deref(), ud, o, &epi, &mut out);
        drop((xs, ug));
        return Ok(Tensor::from_vec(out, (b, o, ho, wo), x.device())?);
    }
    // The f32 taps; a Winograd-only weight has none, and runs here only in bf16 at stride 1,
    // where every GEMM reads the rounded taps and input (`Source::Shifted` with pairs).
    let wg = match (&w.taps, rounded) {
        (Some(t), _) => Some(t.storage_and_layout()),
        (None, Some(_)) if stride == (1, 1) => None,
        (None, _) => {
            w.taps()?;
            None
        }
    };
    let wd_: &[f32] = match &wg {
        Some((ws, wl)) => cpu_f32(ws, wl, "convolution weight")?,
        None => &[],
    };
    let ptr = SendPtr(out.as_mut_ptr());
    let all_taps = 0..k * k;
    if stride == (1, 1) {
        let slack = (k - 1) * wp + (k - 1);
        let (p, ld) = pack(
            xd,
            (b, c, h, wd),
            scale.as_deref(),
            (pad, pad),
            (hp, wp),
            slack,
        );
        let taps: Vec<(usize, usize)> = all_taps.map(|t| (t, (t / k) * wp + t % k)).collect();
        let grid = Grid {
            gh: hp,
            gw: wp,
            vh: ho,
            vw: wo,
            plane: ho * wo,
            base: 0,
            pitch: wo,
            step: 1,
        };
        let pairs = rounded.map(|_| super::amx::round_pairs(&p, ld, c, ld));
        let src = Source::Shifted {
            p: &p,
            ld,
            pairs: pairs.as_ref().map(|(v, s)| (v.as_slice(), *s)),
        };
        run_tiles(
            wd_,
            (o, c),
            &taps,
            &src,
            grid.columns(b),
            ptr,
            &grid,
            &epi,
            (precision, rounded),
        );
    } else {
        let (p, ld) = pack(xd, (b, c, h, wd), scale.as_deref(), (pad, pad), (hp, wp), 0);
        let taps: Vec<(usize, usize)> = all_taps.map(|t| (t, 0)).collect();
        let grid = Grid {
            gh: ho,
            gw: wo,
            vh: ho,
            vw: wo,
            plane: ho * wo,
            base: 0,
            pitch: wo,
            step: 1,
        };
        let src = Source::Gather {
            p: &p,
            ld,
            hp,
            wp,
            ho,
            wo,
            stride,
            k,
        };
        run_tiles(
            wd_,
            (o, c),
            &taps,
            &src,
            b * ho * wo,
            ptr,
            &grid,
            &epi,
            (precision, rounded),
        );
    }
    drop((xs, wg));
    Ok(Tensor::from_vec(out, (b, o, ho, wo), x.device())?)
}

/// `conv_transpose2d(x, w, stride=2, padding=0)` for a 3x3 kernel, with `x`'s channels
/// scaled by `in_scale` `(B, C)` and the result by `out_scale` `(B, O)`. Returns
/// `(B, O, 2H+2, 2W+2)`: the true `2H+1` rows/columns and a trailing zero row and column
/// (the blur that always follows pads there anyway).
pub fn conv_transpose3x3_s2(
    x: &Tensor,
    w: &TapWeight,
    in_scale: Option<&Tensor>,
    out_scale: Option<&Tensor>,
) -> ModelResult<Tensor> {
    let x = x.contiguous()?;
    let (b, c, h, wd) = x.dims4()?;
    let o = w.out_ch;
    if c != w.in_ch || w.k != 3 {
        return Err(ModelError::InputShape {
            what: "transposed convolution input".into(),
            expected: format!("[B, {}, H, W] with a 3x3 kernel", w.in_ch),
            found: x.dims().to_vec(),
        });
    }
    let scale = small_vec(in_scale, b * c, "input scale")?;
    let precision = precision::current();
    // The 3-channel heads stay f32 (see `gemm::BF16_MIN_ROWS`).
    let rounded = if o >= BF16_MIN_ROWS {
        w.rounded(precision)?
    } else {
        None
    };
    let (oh, ow) = (2 * h + 2, 2 * wd + 2);
    let epi = EpiData::new(
        &Epilogue {
            out_scale,
            ..Default::default()
        },
        None,
        (b, o),
        b * o * oh * ow,
    )?;
    let (xs, xl) = x.storage_and_layout();
    let xd = cpu_f32(&xs, xl, "transposed convolution input")?;
    let wg = w.taps()?.storage_and_layout();
    let wd_ = cpu_f32(&wg.0, wg.1, "transposed convolution weight")?;

    // One zero row/column on every side: output phase cell (m, n) reads x[m - dy, n - dx]
    // for dy, dx in {0, 1}, i.e. packed column offset (1 - dy) * wp + (1 - dx).
    let (hp, wp) = (h + 2, wd + 2);
    let (p, ld) = pack(
        xd,
        (b, c, h, wd),
        scale.as_deref(),
        (1, 1),
        (hp, wp),
        wp + 1,
    );
    let pairs = rounded.map(|_| super::amx::round_pairs(&p, ld, c, ld));
    let src = Source::Shifted {
        p: &p,
        ld,
        pairs: pairs.as_ref().map(|(v, s)| (v.as_slice(), *s)),
    };
    let mut out = vec![0f32; b * o * oh * ow];
    let ptr = SendPtr(out.as_mut_ptr());
    // Output row 2m + a gets kernel row ky from input row m - dy: (ky, dy) per phase.
    let phase_taps = |a: usize| -> &'static [(usize, usize)] {
        if a == 0 { &[(0, 0), (2, 1)] } else { &[(1, 0)] }
    };
    for a in 0..2 {
        for cph in 0..2 {
            let mut taps = Vec::with_capacity(4);
            for &(ky, dy) in phase_taps(a) {
                for &(kx, dx) in phase_taps(cph) {
                    taps.push((ky * 3 + kx, (1 - dy) * wp + (1 - dx)));
                }
            }
            let grid = Grid {
                gh: hp,
                gw: wp,
                vh: h + 1 - a,
                vw: wd + 1 - cph,
                plane: oh * ow,
                base: a * ow + cph,
                pitch: 2 * ow,
                step: 2,
            };
            run_tiles(
                wd_,
                (o, c),
                &taps,
                &src,
                grid.columns(b),
                ptr,
                &grid,
                &epi,
                (precision, rounded),
            );
        }
    }
    drop((xs, wg));
    Ok(Tensor::from_vec(out, (b, o, oh, ow), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::epilogue::Act;
    use crate::model::layers::im2col;
    use crate::model::test_util::{max_abs_diff, seeded_uniform as rand};
    use candle_core::Device;

    #[test]
    fn conv2d_matches_candle_for_strides_padding_and_epilogue() {
        for &(b, c, o, h, w, k, stride, pad) in &[
            (2, 5, 7, 9, 11, 3, (1, 1), 1),
            (1, 3, 4, 8, 8, 1, (1, 1), 0),
            (2, 4, 6, 10, 7, 3, (2, 2), 0),
            (3, 2, 5, 16, 9, 3, (3, 1), 1),
            (1, 3, 3, 12, 12, 3, (3, 2), 1),
            (1, 70, 130, 6, 6, 3, (1, 1), 1),
        ] {
            let x = rand(&[b, c, h, w], 1);
            let wt = rand(&[o, c, k, k], 2);
            let s_in = rand(&[b, c], 3);
            let s_out = rand(&[b, o], 4);
            let bias = rand(&[o], 5);
            let xs = modulate(&x, &s_in);
            let want = if stride.0 == stride.1 {
                xs.conv2d(&wt, pad, stride.0, 1, 1).unwrap()
            } else {
                // Stride 1, then keep every stride-th row/column.
                let full = xs.conv2d(&wt, pad, 1, 1, 1).unwrap();
                let (_, _, fh, fw) = full.dims4().unwrap();
                let rows: Vec<u32> = (0..fh as u32).step_by(stride.0).collect();
                let cols: Vec<u32> = (0..fw as u32).step_by(stride.1).collect();
                full.index_select(&Tensor::new(rows.as_slice(), &Device::Cpu).unwrap(), 2)
                    .unwrap()
                    .index_select(&Tensor::new(cols.as_slice(), &Device::Cpu).unwrap(), 3)
                    .unwrap()
            };
            let want = demodulate_bias(&want, &s_out, &bias);
            let residual = rand(want.dims(), 6);
            let want = (want + &residual).unwrap();
            let want = want.maximum(&(&want * 0.2).unwrap()).unwrap();
            let want = (want * std::f64::consts::SQRT_2).unwrap();
            let got = conv2d(
                &x,
                &TapWeight::new(&wt).unwrap(),
                stride,
                pad,
                Some(&s_in),
                &Epilogue {
                    out_scale: Some(&s_out),
                    bias: Some(&bias),
                    residual: Some(&residual),
                    act: Act::ScaledLrelu,
                },
            )
            .unwrap();
            assert_eq!(got.dims(), want.dims());
            let d = max_abs_diff(&got, &want);
            assert!(
                d < 1e-4,
                "{:?}: max diff {d}",
                (b, c, o, h, w, k, stride, pad)
            );
        }
    }

    /// `x` `(B, C, H, W)` scaled per (batch, input channel) by `s_in` `(B, C)`.
    fn modulate(x: &Tensor, s_in: &Tensor) -> Tensor {
        let (b, c) = s_in.dims2().unwrap();
        x.broadcast_mul(&s_in.reshape((b, c, 1, 1)).unwrap())
            .unwrap()
    }

    /// `y * s_out + bias`, per (batch, output channel) and per output channel.
    fn demodulate_bias(y: &Tensor, s_out: &Tensor, bias: &Tensor) -> Tensor {
        let (b, o) = s_out.dims2().unwrap();
        y.broadcast_mul(&s_out.reshape((b, o, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap())
            .unwrap()
    }

    #[test]
    fn winograd_matches_candle_for_odd_sizes_batches_and_epilogue() {
        for &(b, c, o, h, w) in &[
            (1, 1, 1, 1, 1),
            (2, 5, 7, 9, 11),
            (1, 3, 4, 4, 4),
            (3, 17, 33, 7, 6),
            (1, 70, 140, 12, 35),
            (1, 300, 20, 5, 5),
        ] {
            let x = rand(&[b, c, h, w], 21);
            let wt = rand(&[o, c, 3, 3], 22);
            let s_in = rand(&[b, c], 23);
            let s_out = rand(&[b, o], 24);
            let bias = rand(&[o], 25);
            let conv = modulate(&x, &s_in).conv2d(&wt, 1, 1, 1, 1).unwrap();
            let want = demodulate_bias(&conv, &s_out, &bias);
            let residual = rand(want.dims(), 26);
            let want = (want + &residual).unwrap().relu().unwrap();
            let same = TapWeight::winograd(&wt).unwrap();
            let got = conv2d(
                &x,
                &same,
                (1, 1),
                1,
                Some(&s_in),
                &Epilogue {
                    out_scale: Some(&s_out),
                    bias: Some(&bias),
                    residual: Some(&residual),
                    act: Act::Relu,
                },
            )
            .unwrap();
            assert_eq!(got.dims(), want.dims());
            // Relative to the output's scale: the transforms add a few roundings per tap.
            let scale = want.abs().unwrap().max_all().unwrap();
            let scale = scale.to_scalar::<f32>().unwrap().max(1.0);
            let d = max_abs_diff(&got, &want);
            assert!(d < 2e-5 * scale, "{:?}: max diff {d}", (b, c, o, h, w));
            // A Winograd-only weight refuses other strides with an error.
            assert!(conv2d(&x, &same, (2, 2), 1, None, &Epilogue::default()).is_err());
        }
    }

    #[test]
    fn transposed_conv_matches_the_tensor_path() {
        for &(b, c, o, h, w) in &[(1, 3, 4, 4, 4), (2, 6, 5, 7, 5), (1, 40, 140, 3, 3)] {
            let x = rand(&[b, c, h, w], 7);
            let wt = rand(&[o, c, 3, 3], 8);
            let s_in = rand(&[b, c], 9);
            let s_out = rand(&[b, o], 10);
            let xs = x
                .broadcast_mul(&s_in.reshape((b, c, 1, 1)).unwrap())
                .unwrap();
            let want = im2col::conv_transpose3x3_s2(&xs, &im2col::transpose_weight(&wt).unwrap())
                .unwrap()
                .broadcast_mul(&s_out.reshape((b, o, 1, 1)).unwrap())
                .unwrap();
            let got =
                conv_transpose3x3_s2(&x, &TapWeight::new(&wt).unwrap(), Some(&s_in), Some(&s_out))
                    .unwrap();
            assert_eq!(got.dims(), want.dims());
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-4, "{:?}: max diff {d}", (b, c, o, h, w));
        }
    }

    #[test]
    fn bf16_convs_stay_within_bf16_rounding_of_f32() {
        use crate::model::cpu::{Precision, with_precision};
        if Precision::Bf16.effective() != Precision::Bf16 {
            eprintln!("no bf16 GEMM on this machine: skipped");
            return;
        }
        let (b, c, o, h, w) = (1, 160, 96, 13, 11);
        let x = rand(&[b, c, h, w], 31);
        let wt = rand(&[o, c, 3, 3], 32);
        let s_in = rand(&[b, c], 33);
        let epi = Epilogue::default();
        let run = |p: Precision, f: &dyn Fn() -> Tensor| with_precision(p, f);
        type Case<'a> = (&'static str, Box<dyn Fn() -> Tensor + 'a>);
        let cases: [Case; 4] = [
            (
                "direct",
                Box::new(|| {
                    conv2d(
                        &x,
                        &TapWeight::new(&wt).unwrap(),
                        (1, 1),
                        1,
                        Some(&s_in),
                        &epi,
                    )
                    .unwrap()
                }),
            ),
            (
                "winograd",
                Box::new(|| {
                    let tw = TapWeight::winograd(&wt).unwrap();
                    conv2d(&x, &tw, (1, 1), 1, Some(&s_in), &epi).unwrap()
                }),
            ),
            (
                "strided",
                Box::new(|| {
                    conv2d(
                        &x,
                        &TapWeight::new(&wt).unwrap(),
                        (2, 2),
                        1,
                        Some(&s_in),
                        &epi,
                    )
                    .unwrap()
                }),
            ),
            (
                "transposed",
                Box::new(|| {
                    let wt_t = rand(&[o, c, 3, 3], 34);
                    conv_transpose3x3_s2(&x, &TapWeight::new(&wt_t).unwrap(), Some(&s_in), None)
                        .unwrap()
                }),
            ),
        ];
        for (name, f) in &cases {
            let want = run(Precision::F32, f.as_ref());
            let got = run(Precision::Bf16, f.as_ref());
            let scale = want
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let d = max_abs_diff(&got, &want);
            // Each product carries two bf16 roundings (2^-9 relative each); over 1440
            // products of random signs the sum's error is far below 1 % of the largest
            // output. f32 itself stays within 1e-6 of that scale.
            assert!(d < 1e-2 * scale, "{name}: max diff {d} at scale {scale}");
            assert!(d > 1e-6 * scale, "{name}: bf16 ran as f32 (diff {d})");
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let w = TapWeight::new(&rand(&[4, 3, 3, 3], 1)).unwrap();
        let x = rand(&[1, 5, 8, 8], 2);
        assert!(conv2d(&x, &w, (1, 1), 1, None, &Epilogue::default()).is_err());
        let x = rand(&[1, 3, 1, 1], 2);
        assert!(conv2d(&x, &w, (1, 1), 0, None, &Epilogue::default()).is_err());
        let x = rand(&[1, 3, 8, 8], 2);
        let bad_scale = rand(&[1, 4], 3);
        assert!(conv2d(&x, &w, (1, 1), 1, Some(&bad_scale), &Epilogue::default()).is_err());
    }
}
