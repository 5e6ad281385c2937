//! Down-mixing to mono and resampling to 16 kHz with rubato's FFT resampler.

use super::SAMPLE_RATE;
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

/// Averages interleaved frames of `channels` channels into one mono channel.
///
/// A trailing partial frame is dropped; `channels == 0` gives an empty result.
pub fn downmix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    match channels {
        0 => Vec::new(),
        1 => interleaved.to_vec(),
        n => {
            let scale = 1.0 / n as f32;
            interleaved
                .chunks_exact(n)
                .map(|frame| frame.iter().sum::<f32>() * scale)
                .collect()
        }
    }
}

/// Resamples mono audio from `rate` Hz to 16 kHz (identity when already 16 kHz).
///
/// The FFT resampler's start-up delay is trimmed, so sample `n` of the output lies at the
/// same time as sample `n * rate / 16000` of the input.
pub fn resample_to_16k(mono: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == 0 {
        return Err("sample rate is 0".into());
    }
    if rate == SAMPLE_RATE || mono.is_empty() {
        return Ok(mono.to_vec());
    }
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Input,
    )
    .map_err(|e| format!("cannot resample from {rate} Hz: {e}"))?;
    let input = [mono.to_vec()];
    let adapter = SequentialSliceOfVecs::new(&input, 1, mono.len())
        .map_err(|e| format!("resampler input: {e}"))?;
    let out = resampler
        .process_all(&adapter, mono.len(), None)
        .map_err(|e| format!("resampling from {rate} Hz failed: {e}"))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        let stereo = [1.0, 0.0, 0.5, 0.5, -1.0, 1.0];
        assert_eq!(downmix_to_mono(&stereo, 2), vec![0.5, 0.5, 0.0]);
        assert!(downmix_to_mono(&stereo, 0).is_empty());
    }

    /// A 440 Hz sine at 44.1 kHz stays a 440 Hz sine of the right length at 16 kHz.
    #[test]
    fn resampled_sine_keeps_frequency_and_length() {
        let rate = 44_100u32;
        let n = rate as usize; // one second
        let f = 440.0f64;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin() as f32)
            .collect();
        let y = resample_to_16k(&x, rate).unwrap();
        assert!((y.len() as i64 - 16_000).abs() <= 2, "len {}", y.len());
        // Compare against the ideal sine away from the edges.
        let mut max_err = 0.0f64;
        for (i, &v) in y.iter().enumerate().skip(500).take(15_000) {
            let ideal = (2.0 * std::f64::consts::PI * f * i as f64 / 16_000.0).sin();
            max_err = max_err.max((v as f64 - ideal).abs());
        }
        // A fraction of a sample of residual delay at 440 Hz shows up as a few percent.
        assert!(max_err < 0.05, "max error {max_err}");
    }
}
