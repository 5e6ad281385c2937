//! The crate's own f32 CPU kernels: direct and Winograd convolutions, the fused warp.

pub mod direct_conv;
pub(crate) mod send_ptr;
pub(crate) mod simd;
pub mod warp;
pub mod winograd;
