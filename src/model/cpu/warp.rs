//! EDTalk's `ToFlow` warp and blend fused into one pass over each feature map (f32, CPU).
//!
//! Per output pixel the four bilinear taps are computed once, then applied to every
//! channel. The per-channel loop is a gather (four corners at data-dependent offsets), which
//! LLVM does not vectorise on its own, so it is written with AVX-512 and AVX2 masked gathers,
//! picked at run time, and a plain loop for other CPUs. All three do the same arithmetic
//! in the same order (no FMA), so they agree bit for bit.

use candle_core::{CpuStorage, Result, Tensor, bail};

use super::grid_sample::{BLOCK, Taps, for_blocks};
use super::send_ptr::SendPtr;
use super::simd::{Isa, isa};

/// The taps of one block of output pixels, structure-of-arrays so that vector lanes load
/// them directly. Weights of corners outside the map are 0 and those corners are masked
/// off, so they add exactly 0 (and non-finite values there cannot leak in).
struct BlockTaps {
    len: usize,
    /// Flat offset of the nw corner (0 when no corner is inside).
    nw: [i32; BLOCK],
    /// Bilinear weights of the nw, ne, sw, se corners.
    weight: [[f32; BLOCK]; 4],
    /// Bit k set: corner k is inside.
    inside: [u8; BLOCK],
    /// `sigmoid` of the mask logit.
    mask: [f32; BLOCK],
}

impl BlockTaps {
    /// Taps of pixels `p0..p0 + len` of one image from its flow planes `f` `(3, H, W)`.
    fn new(
        f: &[f32],
        (h, w): (usize, usize),
        p0: usize,
        len: usize,
        lin: (&[f32], &[f32]),
    ) -> Self {
        let plane = h * w;
        let mut t = BlockTaps {
            len,
            nw: [0; BLOCK],
            weight: [[0.0; BLOCK]; 4],
            inside: [0; BLOCK],
            mask: [0.0; BLOCK],
        };
        for i in 0..len {
            let p = p0 + i;
            let gx = f[p].tanh() + lin.0[p % w];
            let gy = f[plane + p].tanh() + lin.1[p / w];
            let taps = Taps::<f32>::new(gx, gy, w, h);
            // In range: the caller checked that a plane's offsets fit in i32.
            t.nw[i] = taps.nw as i32;
            for k in 0..4 {
                if taps.inside & (1 << k) != 0 {
                    t.weight[k][i] = taps.weight[k];
                }
            }
            t.inside[i] = taps.inside;
            t.mask[i] = (f32::exp(-f[2 * plane + p]) + 1.0).recip();
        }
        t
    }
}

/// Where one channel's block is read and written.
struct Channel<'a> {
    /// The source plane.
    src: &'a [f32],
    /// Its row length.
    w: usize,
    /// The decoder stream at the block's pixels.
    xs: &'a [f32],
    /// Output pointers at the block's first pixel (`len` writable values each).
    warped: *mut f32,
    blended: *mut f32,
}

/// Pixels `from..t.len`, one at a time.
///
/// # Safety
/// `ch.warped` and `ch.blended` must be valid for `t.len` writes, `ch.xs` hold `t.len`
/// values, and every inside corner of `t` lie in `ch.src`.
unsafe fn warp_scalar(t: &BlockTaps, ch: &Channel, from: usize) {
    let w = ch.w as isize;
    let corner = [0, 1, w, w + 1];
    for i in from..t.len {
        let mut acc = 0f32;
        for (k, c) in corner.iter().enumerate() {
            if t.inside[i] & (1 << k) != 0 {
                acc += ch.src[(t.nw[i] as isize + c) as usize] * t.weight[k][i];
            }
        }
        let m = t.mask[i];
        let v = acc * m;
        // SAFETY: `i < t.len`, and the caller guarantees that both output pointers are
        // valid for `t.len` writes.
        unsafe {
            ch.warped.add(i).write(v);
            ch.blended.add(i).write(v + ch.xs[i] * (1.0 - m));
        }
    }
}

/// 16 pixels at a time with masked gathers.
///
/// # Safety
/// As [`warp_scalar`]; the CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn warp_avx512(t: &BlockTaps, ch: &Channel) {
    use std::arch::x86_64::*;
    let w = ch.w as i32;
    let offsets = [0, 1, w, w + 1];
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i + 16 <= t.len {
        // SAFETY: the CPU has AVX-512F (the caller's contract). `i + 16 <= t.len <= BLOCK`
        // bounds every load from `t`'s arrays and `ch.xs` and every store through the
        // output pointers (valid for `t.len` writes, the caller's contract); the gathers
        // read only lanes whose corner is inside, and inside corners lie in `ch.src`.
        unsafe {
            let nw = _mm512_loadu_si512(t.nw.as_ptr().add(i).cast());
            let bits = _mm512_cvtepu8_epi32(_mm_loadu_si128(t.inside.as_ptr().add(i).cast()));
            let mut acc = _mm512_setzero_ps();
            for (k, off) in offsets.iter().enumerate() {
                let lanes = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(1 << k));
                let idx = _mm512_add_epi32(nw, _mm512_set1_epi32(*off));
                let v =
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, idx, ch.src.as_ptr());
                let wk = _mm512_loadu_ps(t.weight[k].as_ptr().add(i));
                acc = _mm512_add_ps(acc, _mm512_mul_ps(v, wk));
            }
            let m = _mm512_loadu_ps(t.mask.as_ptr().add(i));
            let v = _mm512_mul_ps(acc, m);
            let keep = _mm512_mul_ps(
                _mm512_loadu_ps(ch.xs.as_ptr().add(i)),
                _mm512_sub_ps(one, m),
            );
            _mm512_storeu_ps(ch.warped.add(i), v);
            _mm512_storeu_ps(ch.blended.add(i), _mm512_add_ps(v, keep));
        }
        i += 16;
    }
    // SAFETY: this function's contract includes `warp_scalar`'s, and `i <= t.len`.
    unsafe { warp_scalar(t, ch, i) }
}

/// 8 pixels at a time with masked gathers.
///
/// # Safety
/// As [`warp_scalar`]; the CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn warp_avx2(t: &BlockTaps, ch: &Channel) {
    use std::arch::x86_64::*;
    let w = ch.w as i32;
    let offsets = [0, 1, w, w + 1];
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i + 8 <= t.len {
        // SAFETY: the CPU has AVX2 (the caller's contract). `i + 8 <= t.len <= BLOCK`
        // bounds every load from `t`'s arrays and `ch.xs` and every store through the
        // output pointers (valid for `t.len` writes, the caller's contract); the gathers
        // read only lanes whose corner is inside, and inside corners lie in `ch.src`.
        unsafe {
            let nw = _mm256_loadu_si256(t.nw.as_ptr().add(i).cast());
            let bits = _mm256_cvtepu8_epi32(_mm_loadl_epi64(t.inside.as_ptr().add(i).cast()));
            let mut acc = _mm256_setzero_ps();
            for (k, off) in offsets.iter().enumerate() {
                let bit = _mm256_set1_epi32(1 << k);
                let lanes =
                    _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(bits, bit), bit));
                let idx = _mm256_add_epi32(nw, _mm256_set1_epi32(*off));
                let v =
                    _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), ch.src.as_ptr(), idx, lanes);
                let wk = _mm256_loadu_ps(t.weight[k].as_ptr().add(i));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(v, wk));
            }
            let m = _mm256_loadu_ps(t.mask.as_ptr().add(i));
            let v = _mm256_mul_ps(acc, m);
            let keep = _mm256_mul_ps(
                _mm256_loadu_ps(ch.xs.as_ptr().add(i)),
                _mm256_sub_ps(one, m),
            );
            _mm256_storeu_ps(ch.warped.add(i), v);
            _mm256_storeu_ps(ch.blended.add(i), _mm256_add_ps(v, keep));
        }
        i += 8;
    }
    // SAFETY: this function's contract includes `warp_scalar`'s, and `i <= t.len`.
    unsafe { warp_scalar(t, ch, i) }
}

/// One channel's block with the widest kernel `isa` allows.
///
/// # Safety
/// As [`warp_scalar`]; `isa` must be supported by the CPU.
unsafe fn warp_channel(isa: Isa, t: &BlockTaps, ch: &Channel) {
    // SAFETY: the caller guarantees `warp_scalar`'s contract, which every kernel shares,
    // and that the CPU supports `isa`, all the AVX kernels need on top.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => warp_avx512(t, ch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => warp_avx2(t, ch),
            _ => warp_scalar(t, ch, 0),
        }
    }
}

/// EDTalk's `ToFlow` warp and blend in one pass (f32, CPU). `flow` `(B, 3, H, W)` holds the
/// x/y offsets (before `tanh`) and the mask logit; the sampling grid is the identity grid
/// (`lin_x` per column, `lin_y` per row, as `ToFlow` builds it) plus `tanh(offset)`. Returns
/// `warped = grid_sample(feat) * sigmoid(mask)` and `blended = warped + x * (1 - mask)`,
/// with the same arithmetic as the tensor-op sequence, without its intermediate tensors.
pub fn warp_blend(
    feat: &Tensor,
    x: &Tensor,
    flow: &Tensor,
    lin_x: &[f32],
    lin_y: &[f32],
) -> Result<(Tensor, Tensor)> {
    warp_blend_with(isa(), feat, x, flow, (lin_x, lin_y))
}

/// [`warp_blend`] with a given kernel (tests compare them).
fn warp_blend_with(
    isa: Isa,
    feat: &Tensor,
    x: &Tensor,
    flow: &Tensor,
    lin: (&[f32], &[f32]),
) -> Result<(Tensor, Tensor)> {
    let (n, c, h, w) = feat.dims4()?;
    if x.dims() != feat.dims()
        || flow.dims() != [n, 3, h, w]
        || lin.0.len() != w
        || lin.1.len() != h
    {
        bail!(
            "warp_blend: feature {:?}, stream {:?} and flow {:?} do not match",
            feat.dims(),
            x.dims(),
            flow.dims()
        )
    }
    let plane = h * w;
    // The kernels index a plane with i32 offsets (up to nw + W + 1).
    if plane + w + 1 > i32::MAX as usize {
        bail!("warp_blend: {h}x{w} feature maps are too large")
    }
    let (feat, x, flow) = (feat.contiguous()?, x.contiguous()?, flow.contiguous()?);
    let guards = [&feat, &x, &flow].map(|t| t.storage_and_layout());
    let mut slices = Vec::with_capacity(3);
    for (s, l) in &guards {
        match (&**s, l.contiguous_offsets()) {
            (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => slices.push(&v[a..b]),
            _ => bail!("warp_blend: operands must be contiguous f32 CPU tensors"),
        }
    }
    let (fd, xd, gd) = (slices[0], slices[1], slices[2]);
    let total = n * c * plane;
    // Every value is written below, so the outputs are not zeroed first.
    let mut warped: Vec<f32> = Vec::with_capacity(total);
    let mut blended: Vec<f32> = Vec::with_capacity(total);
    if plane > 0 {
        let (wp, bp) = (SendPtr(warped.as_mut_ptr()), SendPtr(blended.as_mut_ptr()));
        for_blocks(n, plane, |batch, p0, len| {
            let f = &gd[batch * 3 * plane..(batch + 1) * 3 * plane];
            let taps = BlockTaps::new(f, (h, w), p0, len, lin);
            for ch in 0..c {
                let index = batch * c + ch;
                let at = index * plane + p0;
                // SAFETY: `at + len <= total`, the capacity of both outputs, so both
                // pointers stay inside their allocations.
                let (warped, blended) = unsafe { (wp.get().add(at), bp.get().add(at)) };
                let channel = Channel {
                    src: &fd[index * plane..(index + 1) * plane],
                    w,
                    xs: &xd[at..at + len],
                    warped,
                    blended,
                };
                // SAFETY: both output pointers are valid for `len` writes (see above), and
                // this block alone writes pixels p0..p0+len of plane `index` of each output
                // (blocks split the pixels, this loop the channels); `xs` holds `len`
                // values; `Taps::new` marks a corner inside only when it lies in the
                // `h x w` plane `src`; `isa` is the CPU's own (`isa()`) or one a test
                // checked it has.
                unsafe { warp_channel(isa, &taps, &channel) };
            }
        });
    }
    // SAFETY: `total` is within both capacities, and every value below it was written:
    // `for_blocks` covers pixels 0..plane of every batch and each block writes all `c`
    // channels of both outputs (nothing when `plane` is 0, and then `total` is 0).
    unsafe {
        warped.set_len(total);
        blended.set_len(total);
    }
    drop(guards);
    let dev = feat.device();
    Ok((
        Tensor::from_vec(warped, (n, c, h, w), dev)?,
        Tensor::from_vec(blended, (n, c, h, w), dev)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(shape: (usize, usize, usize, usize), scale: f64) -> Tensor {
        (Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap() * scale).unwrap()
    }

    #[test]
    fn every_kernel_gives_the_same_bits() {
        // 37 columns: rows and blocks end at odd lanes; large offsets put corners outside.
        let (b, c, h, w) = (2, 3, 29, 37);
        let mut feat = random((b, c, h, w), 1.0);
        let x = random((b, c, h, w), 1.0);
        let flow = random((b, 3, h, w), 2.0);
        // An infinite value must not leak through a corner that is outside or weightless.
        let mut v = feat.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[w * 3 + 5] = f32::INFINITY;
        feat = Tensor::from_vec(v, (b, c, h, w), &Device::Cpu).unwrap();
        let lin = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32)
                .collect()
        };
        let (lx, ly) = (lin(w), lin(h));
        let bits = |t: &Tensor| -> Vec<u32> {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|f| f.to_bits()).collect()
        };
        let run = |isa| warp_blend_with(isa, &feat, &x, &flow, (&lx, &ly)).unwrap();
        let (sw, sb) = run(Isa::Base);
        let mut kernels = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                kernels.push(Isa::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") {
                kernels.push(Isa::Avx2);
            }
        }
        for k in kernels {
            let (kw, kb) = run(k);
            assert!(bits(&kw) == bits(&sw), "{k:?} warped differs");
            assert!(bits(&kb) == bits(&sb), "{k:?} blended differs");
        }
        // The scalar kernel against the unfused tensor ops is styled.rs's test.
    }
}
