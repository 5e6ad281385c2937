//! EDTalk in candle: layers, grid_sample, QR, encoder, decoder, generators, Audio2Lip and
//! checkpoint loading. Plain Rust, no Bevy types.
pub mod audio2lip;
pub mod ckpt_dir;
