//! Audio2Motion: whole clips, streams, emotion scripts, pose sources and the baker.

use bevy_edtalk::audio::{AudioStream, DecodeOptions, decode_file, resample_to_16k};
use bevy_edtalk::model::audio2lip::Audio2Lip;
use bevy_edtalk::motion::{
    Audio2Motion, Emotion, EmotionInput, EmotionMix, EmotionScript, IdleSettings, MotionConfig,
    MotionFrame, MotionStream, MotionTrack, PoseKey, PoseSource, PoseTrack,
};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = format!(
        "{}/tests/fixtures/edtalk/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn sentence() -> Vec<f32> {
    let path = format!(
        "{}/tests/fixtures/speech/sentence.wav",
        env!("CARGO_MANIFEST_DIR")
    );
    decode_file(path, &DecodeOptions::default())
        .unwrap()
        .samples
}

fn reference_model() -> Arc<Audio2Lip> {
    Arc::new(
        Audio2Lip::from_tensors(fixture("audio2lip_weights.safetensors"), &Device::Cpu).unwrap(),
    )
}

#[test]
fn lip_coeffs_match_the_official_pipeline() {
    let io = fixture("audio2lip_io.safetensors");
    let wav: Vec<f32> = io["input.wav16k"].to_vec1().unwrap();
    let frames = Audio2Motion::new(MotionConfig::default(), Some(reference_model()))
        .generate(&wav)
        .unwrap();
    let expected: Vec<Vec<f32>> = io["lip_smooth"].to_vec2().unwrap();
    assert_eq!(frames.len(), expected.len());
    let scale = expected
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (f, e) in frames.iter().zip(&expected) {
        let lip = f.lip_coeffs.expect("model output");
        for (a, b) in lip.iter().zip(e) {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    println!("Audio2Motion lip_coeffs vs lip_smooth: max error / max |lip| = {worst}");
    assert!(worst < 2e-3, "{worst}");
}

#[test]
fn streaming_equals_whole_clip_with_bounded_lookahead() {
    let audio = sentence();
    let model = Arc::new(Audio2Lip::random(3, &Device::Cpu).unwrap());
    let config = MotionConfig {
        pose: PoseSource::Idle(IdleSettings::default()),
        emotion: EmotionInput::Mix(EmotionMix::single("happy", 0.7)),
        ..Default::default()
    };
    let whole = Audio2Motion::new(config.clone(), Some(model.clone()))
        .generate(&audio)
        .unwrap();
    assert_eq!(whole.len(), audio.len() / 640);

    let mut stream = MotionStream::new(config, Some(model)).unwrap();
    let mut streamed: Vec<MotionFrame> = Vec::new();
    let mut pushed = 0usize;
    for (k, chunk) in audio.chunks(337).enumerate() {
        stream.push(chunk);
        pushed += chunk.len();
        streamed.extend(stream.pull().unwrap());
        // Every frame whose lookahead is satisfied has come out.
        let due = (0..whole.len())
            .filter(|&i| 640 * (i + 1) + MotionStream::LOOKAHEAD_SAMPLES <= pushed)
            .count();
        assert!(
            streamed.len() >= due,
            "chunk {k}: {} frames out, {due} due",
            streamed.len()
        );
    }
    stream.finish();
    streamed.extend(stream.pull().unwrap());
    assert_eq!(streamed.len(), whole.len());
    for (i, (a, b)) in streamed.iter().zip(&whole).enumerate() {
        let (la, lb) = (a.lip_coeffs.unwrap(), b.lip_coeffs.unwrap());
        let d = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-4, "frame {i}: lip differs by {d}");
        assert_eq!(a.mouth, b.mouth, "frame {i}");
        assert_eq!(a.head, b.head, "frame {i}");
        assert_eq!(a.exp_coeffs, b.exp_coeffs);
    }
}

#[test]
fn dsp_only_motion_has_no_lip_coeffs_and_tracks_ping_pong() {
    let audio = sentence();
    let track = PoseTrack {
        frames: (0..10)
            .map(|k| PoseKey {
                head: Default::default(),
                coeffs: Some([k as f32, 0.0, 0.0, 0.0, 0.0, 0.0]),
            })
            .collect(),
    };
    let config = MotionConfig {
        pose: PoseSource::Track(track),
        ..Default::default()
    };
    let frames = Audio2Motion::new(config, None).generate(&audio).unwrap();
    assert!(
        frames
            .iter()
            .all(|f| f.lip_coeffs.is_none() && f.exp_coeffs.is_none())
    );
    let firsts: Vec<f32> = frames
        .iter()
        .take(22)
        .map(|f| f.pose_coeffs.unwrap()[0])
        .collect();
    assert_eq!(&firsts[8..13], &[8.0, 9.0, 9.0, 8.0, 7.0]);
    assert_eq!(firsts[20], 0.0);
    assert!(frames.iter().any(|f| f.mouth.jaw_open > 0.2));
}

#[test]
fn emotion_script_drives_expression() {
    let script = EmotionScript::parse(
        r#"(keys: [(time: 0.0, emotion: "neutral", blend: 0.0), (time: 1.0, emotion: "angry", blend: 0.2)])"#,
        "line.ron",
    )
    .unwrap();
    let config = MotionConfig {
        emotion: EmotionInput::Script(script),
        ..Default::default()
    };
    let frames = Audio2Motion::new(config, None)
        .generate(&sentence())
        .unwrap();
    assert_eq!(frames[10].exp_coeffs, Some(Emotion::Neutral.exp_weights()));
    assert_eq!(frames[40].exp_coeffs, Some(Emotion::Angry.exp_weights()));
    assert!(frames[40].expression.brow_furrow > 0.9);

    let bad =
        EmotionScript::parse(r#"(keys: [(time: 0.5, emotion: "hangry")])"#, "bad.ron").unwrap();
    let config = MotionConfig {
        emotion: EmotionInput::Script(bad),
        ..Default::default()
    };
    let err = Audio2Motion::new(config, None)
        .generate(&sentence())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hangry") && err.contains("surprised"), "{err}");
}

#[test]
fn baked_tracks_round_trip() {
    let config = MotionConfig {
        pose: PoseSource::Idle(IdleSettings::default()),
        emotion: EmotionInput::Mix(EmotionMix::single("sad", 0.5)),
        ..Default::default()
    };
    let model = Arc::new(Audio2Lip::random(5, &Device::Cpu).unwrap());
    let track = Audio2Motion::new(config, Some(model))
        .bake(&sentence())
        .unwrap();
    let path = std::env::temp_dir().join(format!("edtalk_track_{}.ron", std::process::id()));
    track.save(&path).unwrap();
    let back = MotionTrack::load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(back, track);
    assert!(
        MotionTrack::from_ron("(fps: 25.0, frames: [(mouth: (jaw_open: NaN))])", "nan.ron")
            .is_err()
    );
    let err = MotionTrack::from_ron("(fps: 25.0,\n frames: [(mouth: (jaw_open 1.0))])", "x.ron")
        .unwrap_err();
    assert!(err.to_string().contains("x.ron:2:"), "{err}");
}

#[test]
fn audio_stream_matches_whole_clip_resampling() {
    let rate = 44_100u32;
    let mono: Vec<f32> = (0..rate as usize)
        .map(|i| (i as f32 * 300.0 * std::f32::consts::TAU / rate as f32).sin() * 0.3)
        .collect();
    let stereo: Vec<f32> = mono.iter().flat_map(|&v| [v, v]).collect();
    let whole = resample_to_16k(&mono, rate).unwrap();
    let mut s = AudioStream::new(rate, 2).unwrap();
    let mut out = Vec::new();
    for chunk in stereo.chunks(2 * 777) {
        s.push(chunk).unwrap();
        out.extend(s.take());
    }
    s.finish().unwrap();
    out.extend(s.take());
    assert!(
        (out.len() as i64 - whole.len() as i64).abs() <= 2,
        "{} vs {}",
        out.len(),
        whole.len()
    );
    let worst = out
        .iter()
        .zip(&whole)
        .skip(200)
        .take(whole.len() - 400)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 0.02, "{worst}");
    assert!(AudioStream::new(0, 2).is_err() && AudioStream::new(16_000, 0).is_err());
}

#[test]
fn empty_and_tiny_inputs_give_no_frames() {
    let a = Audio2Motion::new(
        MotionConfig::default(),
        Some(Arc::new(Audio2Lip::random(1, &Device::Cpu).unwrap())),
    );
    assert!(a.generate(&[]).unwrap().is_empty());
    assert!(a.generate(&[0.1; 639]).unwrap().is_empty());
    assert_eq!(a.generate(&[f32::NAN; 1280]).unwrap().len(), 2);
}
