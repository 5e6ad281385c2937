//! The crate's own CPU kernels, and the one place that decides when they run.
//!
//! candle's generic tensor ops run the model on every device and dtype; on the CPU in f32
//! the layers run these kernels instead: convolutions as per-tap GEMMs on a padded input
//! (`direct_conv`) or as Winograd F(2x2, 3x3) (`winograd`), with the demodulation, bias,
//! residual and activation fused into the write-out (`epilogue`); the separable FIR of
//! `upfirdn2d` (`fir`); `grid_sample` (`grid_sample`, f32 and f64) and `ToFlow`'s fused
//! warp and blend (`warp`). Audio2Lip, many small images at once, has its own layout and
//! kernels: channels last with the batch folded into the GEMM rows, strides computed as
//! such (`batched_conv`) and Winograd for its stride-1 blocks (`batched_winograd`). Their
//! hot loops run in code compiled for the widest vector extension the CPU has (`simd`).
//!
//! # Kernel or tensor ops
//!
//! [`enabled_for`] is the rule: an f32 tensor on the CPU (any layout; the kernels make
//! their inputs contiguous). The layers never test it themselves; they call
//!
//! * [`tap_weight`] when they load a convolution: it returns the weight in the kernels'
//!   layout ([`TapWeight`]) when the kernels take it, and a layer holding a `TapWeight`
//!   then always runs [`conv2d`] / [`conv_transpose3x3_s2`] (a model's weights and its
//!   activations share device and dtype);
//! * the `*_or` entry points at run time ([`bias_act_or`], [`warp_blend_or`], and inside
//!   the crate `fir_or` and `grid_sample_or`): the kernel when the rule allows, else the
//!   layer's own tensor-op path, passed in as a closure.
//!
//! Both paths compute the same values in the same order where the parity tests need it
//! (see each kernel).

mod amx;
mod batched_conv;
mod batched_winograd;
mod data;
mod direct_conv;
mod epilogue;
mod fir;
mod gemm;
mod grid_sample;
mod precision;
mod scratch;
mod send_ptr;
mod simd;
mod warp;
mod winograd;

use candle_core::{DType, Tensor};

pub(crate) use batched_conv::{Frame, Out, RowConv, RowEpilogue};
pub(crate) use batched_winograd::RowWinograd;
pub use direct_conv::{TapWeight, WINOGRAD_MIN_CHANNELS, conv_transpose3x3_s2, conv2d};
pub use epilogue::{Act, Epilogue, bias_act};
pub(crate) use fir::fir;
pub(crate) use grid_sample::grid_sample;
pub use precision::{Precision, with_precision};
pub use warp::warp_blend;

use crate::model::error::ModelResult;

/// Whether the kernels run on `t`: an f32 tensor on the CPU. Every choice between them and
/// candle's tensor ops goes through here (`grid_sample`'s kernel also takes f64, see
/// `grid_sample_or`).
pub fn enabled_for(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// A convolution weight `(O, C, k, k)` in the kernels' layout when they run on it
/// ([`enabled_for`]), or `None`: the layer keeps it for candle's tensor ops. `same`: the
/// conv always runs with stride 1 and padding `k / 2`, so that a wide 3x3 weight is kept in
/// Winograd form only ([`TapWeight::same`]); otherwise per tap ([`TapWeight::new`]).
pub fn tap_weight(w: &Tensor, same: bool) -> ModelResult<Option<TapWeight>> {
    if !enabled_for(w) {
        return Ok(None);
    }
    let taps = if same {
        TapWeight::same(w)?
    } else {
        TapWeight::new(w)?
    };
    Ok(Some(taps))
}

/// `act(x + bias[c])` on an NCHW tensor: [`bias_act`] when the kernels run on `x`, else
/// `generic()`.
pub fn bias_act_or(
    x: &Tensor,
    bias: &Tensor,
    act: Act,
    generic: impl FnOnce() -> ModelResult<Tensor>,
) -> ModelResult<Tensor> {
    if enabled_for(x) {
        bias_act(x, bias, act)
    } else {
        generic()
    }
}

/// The separable FIR filter of `upfirdn2d`: [`fir`] when the kernels run on `x`, else
/// `generic()`.
pub(crate) fn fir_or(
    x: &Tensor,
    taps: &[f64],
    pads: (usize, usize),
    up: usize,
    generic: impl FnOnce() -> ModelResult<Tensor>,
) -> ModelResult<Tensor> {
    if enabled_for(x) {
        fir(x, taps, pads, up)
    } else {
        generic()
    }
}

/// `ToFlow`'s warp and blend, `(warped, blended)`: [`warp_blend`] when the kernels run on
/// `feat`, `x` and `flow`, else `generic()`. `lin` holds the identity grid's x values (one
/// per column) and y values (one per row).
pub fn warp_blend_or(
    feat: &Tensor,
    x: &Tensor,
    flow: &Tensor,
    (lin_x, lin_y): (&[f32], &[f32]),
    generic: impl FnOnce() -> ModelResult<(Tensor, Tensor)>,
) -> ModelResult<(Tensor, Tensor)> {
    if enabled_for(feat) && enabled_for(x) && enabled_for(flow) {
        Ok(warp_blend(feat, x, flow, lin_x, lin_y)?)
    } else {
        generic()
    }
}

/// `grid_sample` of `input` at `grid` (shapes already checked): [`grid_sample()`] when
/// `input` is on the CPU in f32 or f64 (the one kernel written for both), else
/// `generic()`.
pub(crate) fn grid_sample_or(
    input: &Tensor,
    grid: &Tensor,
    generic: impl FnOnce() -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    if input.device().is_cpu() && matches!(input.dtype(), DType::F32 | DType::F64) {
        grid_sample(input, grid)
    } else {
        generic()
    }
}
