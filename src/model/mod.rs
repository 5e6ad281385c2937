//! EDTalk in candle: layers, grid_sample, QR, encoder, decoder, generators, Audio2Lip and
//! checkpoint loading. Plain Rust, no Bevy types.

pub mod checkpoint;
pub mod grid_sample;
pub mod qr;
