//! EDTalk in candle: layers, grid_sample, QR, encoder, decoder, generators, Audio2Lip and
//! checkpoint loading. Plain Rust, no Bevy types.

pub mod checkpoint;
pub mod cpu;
pub mod grid_sample;
pub mod qr;

pub mod encoder;
pub mod error;
pub mod generator;
pub mod layers;
pub mod synthesis;
pub mod weights;

pub use cpu::{Precision, with_precision};
pub use error::{ModelError, ModelResult};
pub use generator::{Coefficients, ExpressionFeats, Generator, Identity, Variant};

pub mod audio2lip;
pub mod ckpt_dir;

#[cfg(test)]
mod test_util;
