//! Convolutions as one GEMM per image over an im2col matrix built from strided views.
//!
//! candle 0.11's CPU `conv2d` and especially `conv_transpose2d` are far slower than a
//! plain GEMM for these shapes, so every convolution of the model goes through here. Only
//! tensor ops are used (pad, narrow, stack, matmul), so it runs on every candle device.

use candle_core::Tensor;

use crate::model::error::ModelResult;

/// Flattens a conv weight `(O, C, k, k)` to the `(O, C*k*k)` matrix [`conv2d`] takes.
pub fn flatten_weight(w: &Tensor) -> ModelResult<Tensor> {
    let (o, c, kh, kw) = w.dims4()?;
    Ok(w.reshape((o, c * kh * kw))?.contiguous()?)
}

/// Rearranges a conv weight `(O, C, 3, 3)` (the official transposed-conv weight read as
/// `(out, in)`) into the `(O*9, C)` matrix [`conv_transpose3x3_s2`] takes.
pub fn transpose_weight(w: &Tensor) -> ModelResult<Tensor> {
    let (o, c, kh, kw) = w.dims4()?;
    Ok(w.permute((0, 2, 3, 1))?
        .reshape((o * kh * kw, c))?
        .contiguous()?)
}

/// Every `step`-th row/column (`step` 1 or 2) of `len` outputs from offset `off` of `dim`.
fn strided(x: &Tensor, dim: usize, off: usize, len: usize, step: usize) -> ModelResult<Tensor> {
    if step == 1 {
        return Ok(x.narrow(dim, off, len)?);
    }
    let avail = x.dim(dim)? - off;
    // Take step*len (padding if the tail is short), split into (len, step), keep phase 0.
    let mut v = x.narrow(dim, off, avail.min(step * len))?;
    if avail < step * len {
        v = v.pad_with_zeros(dim, 0, step * len - avail)?;
    }
    let mut shape = v.dims().to_vec();
    shape[dim] = len;
    shape.insert(dim + 1, step);
    Ok(v.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)?)
}

/// `conv2d(x, w, padding=pad, stride)` for a square kernel `k`, with `w2d` the
/// `(O, C*k*k)` weight. `x` is `(B, C, H, W)`.
pub fn conv2d(
    x: &Tensor,
    w2d: &Tensor,
    k: usize,
    stride: usize,
    pad: usize,
) -> ModelResult<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let o = w2d.dim(0)?;
    let ho = (h + 2 * pad - k) / stride + 1;
    let wo = (w + 2 * pad - k) / stride + 1;
    let cols = if k == 1 && stride == 1 && pad == 0 {
        x.reshape((b, c, h * w))?
    } else {
        let xp = if pad > 0 {
            x.pad_with_zeros(2, pad, pad)?.pad_with_zeros(3, pad, pad)?
        } else {
            x.clone()
        };
        let mut taps = Vec::with_capacity(k * k);
        for ky in 0..k {
            let rows = strided(&xp, 2, ky, ho, stride)?;
            for kx in 0..k {
                taps.push(strided(&rows, 3, kx, wo, stride)?);
            }
        }
        Tensor::stack(&taps, 2)?.reshape((b, c * k * k, ho * wo))?
    };
    let mut outs = Vec::with_capacity(b);
    for i in 0..b {
        outs.push(w2d.matmul(&cols.get(i)?)?);
    }
    Ok(Tensor::stack(&outs, 0)?.reshape((b, o, ho, wo))?)
}

/// `conv_transpose2d(x, w, stride=2, padding=0)` for a 3x3 kernel, `wt` from
/// [`transpose_weight`]. Returns `(B, O, 2H+2, 2W+2)`: the true `(2H+1)` output followed by
/// one zero row and column, which the blur that always follows pads anyway.
pub fn conv_transpose3x3_s2(x: &Tensor, wt: &Tensor) -> ModelResult<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let o = wt.dim(0)? / 9;
    let mut outs = Vec::with_capacity(b);
    for i in 0..b {
        // cols[o, ky, kx, iy, ix] = sum_c W[o, c, ky, kx] x[c, iy, ix]
        outs.push(wt.matmul(&x.get(i)?.reshape((c, h * w))?)?);
    }
    let cols = Tensor::stack(&outs, 0)?.reshape((b, o, 3, 3, h, w))?;
    let tap = |ky: usize, kx: usize| -> ModelResult<Tensor> {
        Ok(cols
            .narrow(2, ky, 1)?
            .narrow(3, kx, 1)?
            .reshape((b, o, h, w))?)
    };
    // Output row 2m gets ky=0 from input row m and ky=2 from row m-1; row 2m+1 gets ky=1
    // from row m. Columns likewise. Each phase is (H+1) x (W+1), zero where no tap lands.
    let even = |t0: Tensor, t2: Tensor, dim: usize| -> ModelResult<Tensor> {
        Ok((t0.pad_with_zeros(dim, 0, 1)? + t2.pad_with_zeros(dim, 1, 0)?)?)
    };
    let odd = |t1: Tensor, dim: usize| -> ModelResult<Tensor> { Ok(t1.pad_with_zeros(dim, 0, 1)?) };
    // Columns first, per kernel row.
    let row_phase = |ky: usize| -> ModelResult<(Tensor, Tensor)> {
        let ev = even(tap(ky, 0)?, tap(ky, 2)?, 3)?;
        let od = odd(tap(ky, 1)?, 3)?;
        Ok((ev, od))
    };
    let (r0e, r0o) = row_phase(0)?;
    let (r1e, r1o) = row_phase(1)?;
    let (r2e, r2o) = row_phase(2)?;
    let ee = even(r0e, r2e, 2)?;
    let eo = even(r0o, r2o, 2)?;
    let oe = odd(r1e, 2)?;
    let oo = odd(r1o, 2)?;
    // Interleave: (B, O, H+1, 2, W+1, 2) -> (B, O, 2H+2, 2W+2).
    let even_rows = Tensor::stack(&[&ee, &eo], 4)?;
    let odd_rows = Tensor::stack(&[&oe, &oo], 4)?;
    let all = Tensor::stack(&[&even_rows, &odd_rows], 3)?;
    Ok(all.reshape((b, o, 2 * h + 2, 2 * w + 2))?)
}
