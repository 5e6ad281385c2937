//! Decoding: formats, rates, channel counts, and bad input (never a panic).

use bevy_edtalk::audio::{AudioError, DecodeOptions, decode_bytes, decode_file};

fn speech(name: &str) -> String {
    format!(
        "{}/tests/fixtures/speech/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A RIFF/WAVE file: PCM 16-bit, or IEEE float 32-bit when `float`.
fn wav_bytes(rate: u32, channels: u16, float: bool, frames: &[Vec<f32>]) -> Vec<u8> {
    let bytes_per = if float { 4 } else { 2 };
    let data_len = frames.len() * channels as usize * bytes_per;
    let mut b = Vec::new();
    b.extend(b"RIFF");
    b.extend(&((36 + data_len) as u32).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(&16u32.to_le_bytes());
    b.extend(&(if float { 3u16 } else { 1u16 }).to_le_bytes());
    b.extend(&channels.to_le_bytes());
    b.extend(&rate.to_le_bytes());
    b.extend(&(rate * channels as u32 * bytes_per as u32).to_le_bytes());
    b.extend(&(channels * bytes_per as u16).to_le_bytes());
    b.extend(&(bytes_per as u16 * 8).to_le_bytes());
    b.extend(b"data");
    b.extend(&(data_len as u32).to_le_bytes());
    for f in frames {
        for &v in f {
            if float {
                b.extend(&v.to_le_bytes());
            } else {
                b.extend(&((v.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
            }
        }
    }
    b
}

fn sine(rate: u32, seconds: f32, channels: usize) -> Vec<Vec<f32>> {
    (0..(rate as f32 * seconds) as usize)
        .map(|i| {
            vec![(i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5; channels]
        })
        .collect()
}

#[test]
fn wav_ogg_flac_decode_to_the_same_16k_signal() {
    let o = DecodeOptions::default();
    let wav = decode_file(speech("vowel_aa.wav"), &o).unwrap();
    let ogg = decode_file(speech("vowel_aa_44k_stereo.ogg"), &o).unwrap();
    let flac = decode_file(speech("vowel_aa_22k.flac"), &o).unwrap();
    assert_eq!((wav.source_rate, wav.source_channels), (16_000, 1));
    assert_eq!((ogg.source_rate, ogg.source_channels), (44_100, 2));
    assert_eq!((flac.source_rate, flac.source_channels), (22_050, 1));
    for other in [&ogg, &flac] {
        assert!((other.samples.len() as i64 - wav.samples.len() as i64).abs() < 40);
        // Same waveform: correlation with the original near 1 (lossy codec, resampling).
        let n = wav.samples.len().min(other.samples.len());
        let dot: f64 = (0..n)
            .map(|i| wav.samples[i] as f64 * other.samples[i] as f64)
            .sum();
        let e1: f64 = wav.samples[..n].iter().map(|v| (*v as f64).powi(2)).sum();
        let e2: f64 = other.samples[..n].iter().map(|v| (*v as f64).powi(2)).sum();
        let corr = dot / (e1 * e2).sqrt();
        assert!(corr > 0.9, "correlation {corr}");
    }
}

#[test]
fn mp3_decodes_to_the_same_16k_signal_after_the_encoder_delay() {
    let o = DecodeOptions::default();
    let wav = decode_file(speech("vowel_aa.wav"), &o).unwrap();
    let mp3 = decode_file(speech("vowel_aa_44k_stereo.mp3"), &o).unwrap();
    assert_eq!((mp3.source_rate, mp3.source_channels), (44_100, 2));
    // An MP3 frame is 1152 samples, and LAME adds its encoder delay and padding (about one
    // frame at 44.1 kHz, i.e. ~420 samples at 16 kHz): lengths agree within two frames.
    let extra = mp3.samples.len() as i64 - wav.samples.len() as i64;
    assert!((-40..=900).contains(&extra), "length difference {extra}");
    // Same waveform at the best lag within that delay: correlation near 1.
    let n = wav.samples.len() - 900;
    let corr_at = |lag: usize| {
        let (a, b) = (&wav.samples[..n], &mp3.samples[lag..lag + n]);
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let e1: f64 = a.iter().map(|v| (*v as f64).powi(2)).sum();
        let e2: f64 = b.iter().map(|v| (*v as f64).powi(2)).sum();
        dot / (e1 * e2).sqrt()
    };
    let best = (0..=900usize.min(mp3.samples.len() - n))
        .map(corr_at)
        .fold(f64::MIN, f64::max);
    assert!(best > 0.9, "best correlation {best}");
}

#[test]
fn eight_channels_and_clipping_work() {
    let mut frames = sine(48_000, 1.0, 8);
    for f in frames.iter_mut() {
        for v in f.iter_mut() {
            *v = (*v * 4.0).clamp(-1.0, 1.0); // hard clipped
        }
    }
    let d = decode_bytes(
        wav_bytes(48_000, 8, false, &frames),
        "eight.wav",
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(d.source_channels, 8);
    assert!(
        (d.samples.len() as i64 - 16_000).abs() < 4,
        "{}",
        d.samples.len()
    );
    assert!(d.samples.iter().all(|v| v.is_finite() && v.abs() < 1.2));
}

#[test]
fn nan_and_inf_samples_are_sanitised() {
    let mut frames = sine(16_000, 0.5, 1);
    frames[10][0] = f32::NAN;
    frames[20][0] = f32::INFINITY;
    frames[30][0] = f32::NEG_INFINITY;
    let d = decode_bytes(
        wav_bytes(16_000, 1, true, &frames),
        "nan.wav",
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(d.sanitized, 3);
    assert_eq!(d.samples[10], 0.0);
    assert_eq!(d.samples[20], 1.0);
    assert!(d.samples.iter().all(|v| v.is_finite()));
}

#[test]
fn empty_missing_corrupt_and_too_long_are_clear_errors() {
    let o = DecodeOptions::default();
    let empty = decode_bytes(wav_bytes(16_000, 1, false, &[]), "empty.wav", &o).unwrap_err();
    assert!(matches!(empty, AudioError::Empty { .. }), "{empty}");
    assert!(empty.to_string().contains("empty.wav"));

    let missing = decode_file("/no/such/line.ogg", &o).unwrap_err();
    assert!(
        matches!(missing, AudioError::Io { .. })
            && missing.to_string().contains("/no/such/line.ogg")
    );

    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let corrupt = decode_bytes(garbage, "noise.mp3", &o).unwrap_err();
    assert!(
        matches!(
            corrupt,
            AudioError::Unsupported { .. } | AudioError::Corrupt { .. } | AudioError::Empty { .. }
        ),
        "{corrupt}"
    );
    assert!(corrupt.to_string().contains("noise.mp3"));

    // A truncated ogg keeps what decoded or fails cleanly.
    let ogg = std::fs::read(speech("vowel_aa_44k_stereo.ogg")).unwrap();
    for cut in [10, 100, 4000, ogg.len() / 2] {
        let _ = decode_bytes(ogg[..cut].to_vec(), "cut.ogg", &o);
    }
    // Header damage in a wav.
    let mut wav = wav_bytes(16_000, 1, false, &sine(16_000, 0.2, 1));
    wav[20] = 0x77;
    let _ = decode_bytes(wav, "damaged.wav", &o);

    // One hour at 8 kHz: rejected at the limit, without decoding it all.
    let hour = wav_bytes(8_000, 1, false, &vec![vec![0.1f32]; 8_000 * 3600]);
    let start = std::time::Instant::now();
    let long = decode_bytes(hour, "hour.wav", &o).unwrap_err();
    assert!(matches!(long, AudioError::TooLong { .. }), "{long}");
    assert!(long.to_string().contains("600"));
    println!("1-hour file rejected in {:?}", start.elapsed());
}

#[test]
fn silent_file_decodes() {
    let d = decode_file(speech("silence.wav"), &DecodeOptions::default()).unwrap();
    assert_eq!(d.samples.len(), 16_000);
    // sox dithers its digital silence by an LSB or so.
    assert!(d.samples.iter().all(|&v| v.abs() < 2e-4));
}

#[test]
fn source_quality_decode_keeps_the_files_own_samples() {
    let keep = DecodeOptions {
        keep_source: true,
        ..Default::default()
    };
    let ogg = decode_file(speech("vowel_aa_44k_stereo.ogg"), &keep).unwrap();
    let src = ogg.source.as_ref().expect("source kept");
    assert_eq!((src.sample_rate, src.channels), (44_100, 2));
    let seconds = src.frames.len() as f32 / 44_100.0;
    assert!(
        (seconds - ogg.seconds()).abs() < 0.01,
        "{seconds} vs {}",
        ogg.seconds()
    );
    // The analysis copy is the same with or without the source kept.
    let plain = decode_file(speech("vowel_aa_44k_stereo.ogg"), &DecodeOptions::default()).unwrap();
    assert!(plain.source.is_none());
    assert_eq!(plain.samples, ogg.samples);
    // Its mixdown is the mean of the kept channels, before resampling.
    let flac = decode_file(speech("vowel_aa_22k.flac"), &keep).unwrap();
    let src = flac.source.unwrap();
    assert_eq!((src.sample_rate, src.channels), (22_050, 1));
    assert!(src.frames.iter().all(|[l, r]| l == r), "mono on both sides");
}
