//! Per-video-frame mel windows: for 25 fps frame `i`, the 16 mel rows starting at
//! `int(80 * (i - 2) / 25)`, indices clamped to the spectrogram (the official `get_mel`).

use super::SAMPLES_PER_FRAME;
use super::mel::{MEL_BANDS, Mel};

/// Mel rows per window (0.2 s of audio).
pub const MEL_WINDOW: usize = 16;

/// Number of 25 fps frames for a 16 kHz clip: `floor(samples / 640)`.
pub fn num_video_frames(samples: usize) -> usize {
    samples / SAMPLES_PER_FRAME
}

/// First mel row of frame `i`'s window, computed in f64 exactly as Python's
/// `int(80. * ((i - 2) / 25.))` (truncation toward zero).
pub fn window_start(i: usize) -> isize {
    (80.0 * ((i as f64 - 2.0) / 25.0)).trunc() as isize
}

/// The windows of `frames` video frames, laid out `frames x 1 x 80 x 16` (band-major inside
/// a window, like the transposed slices the model takes). Empty when `mel` is empty.
pub fn frame_windows(mel: &Mel, frames: usize) -> Vec<f32> {
    if mel.frames == 0 {
        return Vec::new();
    }
    let last = mel.frames as isize - 1;
    let mut out = vec![0.0f32; frames * MEL_BANDS * MEL_WINDOW];
    for i in 0..frames {
        let start = window_start(i);
        let window = &mut out[i * MEL_BANDS * MEL_WINDOW..(i + 1) * MEL_BANDS * MEL_WINDOW];
        for k in 0..MEL_WINDOW {
            let row = mel.row((start + k as isize).clamp(0, last) as usize);
            for (band, &v) in row.iter().enumerate() {
                window[band * MEL_WINDOW + k] = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_follow_python_int() {
        // int(80*(-2/25)) = int(-6.4) = -6 ; int(80*(-1/25)) = -3 ; int(80*(15/25)) = 48
        assert_eq!(window_start(0), -6);
        assert_eq!(window_start(1), -3);
        assert_eq!(window_start(2), 0);
        assert_eq!(window_start(17), 48);
    }
}
