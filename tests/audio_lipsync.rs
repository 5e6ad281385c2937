//! DSP lip-sync on espeak-ng speech (tests/fixtures/speech, made by scripts/make_speech.sh).

use bevy_edtalk::audio::lipsync::Viseme;
use bevy_edtalk::audio::{DecodeOptions, LipSync, LipSyncSettings, decode_file};
use bevy_edtalk::motion::MouthControls;

fn mouth(name: &str) -> Vec<MouthControls> {
    let path = format!(
        "{}/tests/fixtures/speech/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let audio = decode_file(path, &DecodeOptions::default()).unwrap();
    LipSync::new(LipSyncSettings::default()).process_clip(&audio.samples)
}

/// The sustained part: frames away from onset and release.
fn middle(m: &[MouthControls]) -> &[MouthControls] {
    let cut = m.len() / 5;
    &m[cut..m.len() - cut]
}

fn mean(m: &[MouthControls], f: impl Fn(&MouthControls) -> f32) -> f32 {
    m.iter().map(f).sum::<f32>() / m.len().max(1) as f32
}

fn rate(m: &[MouthControls], v: Viseme) -> f32 {
    m.iter().filter(|c| c.viseme() == v).count() as f32 / m.len().max(1) as f32
}

#[test]
fn silence_keeps_the_mouth_closed() {
    let m = mouth("silence.wav");
    assert_eq!(m.len(), 25);
    assert!(
        m.iter().all(|c| c.jaw_open < 0.02 && c.lip_round < 0.02),
        "{m:?}"
    );
}

#[test]
fn vowels_open_and_shape_the_mouth() {
    let (aa, ee, oo) = (
        mouth("vowel_aa.wav"),
        mouth("vowel_ee.wav"),
        mouth("vowel_oo.wav"),
    );
    let (aa, ee, oo) = (middle(&aa), middle(&ee), middle(&oo));
    let jaw = |m| mean(m, |c| c.jaw_open);
    let width = |m| mean(m, |c| c.lip_width);
    let round = |m| mean(m, |c| c.lip_round);
    println!(
        "aa: jaw {:.2} width {:.2} round {:.2} | ee: jaw {:.2} width {:.2} round {:.2} | oo: jaw {:.2} width {:.2} round {:.2}",
        jaw(aa),
        width(aa),
        round(aa),
        jaw(ee),
        width(ee),
        round(ee),
        jaw(oo),
        width(oo),
        round(oo)
    );
    for m in [aa, ee, oo] {
        assert!(jaw(m) > 0.1, "a sustained vowel opens the mouth");
    }
    assert!(
        jaw(aa) > jaw(ee) && jaw(aa) > jaw(oo),
        "aa is the most open"
    );
    assert!(round(oo) > round(ee) + 0.2, "oo is rounder than ee");
    assert!(width(ee) > width(oo) + 0.3, "ee is wider than oo");
    let (ra, re, ro) = (
        rate(aa, Viseme::Open),
        rate(ee, Viseme::Spread),
        rate(oo, Viseme::Round),
    );
    println!("per-frame classification: aa->Open {ra:.2}, ee->Spread {re:.2}, oo->Round {ro:.2}");
    assert!(ra >= 0.7 && re >= 0.7 && ro >= 0.7);
}

#[test]
fn bilabial_closure_presses_the_lips() {
    let m = mouth("ama.wav");
    let pressed: Vec<f32> = m.iter().map(|c| c.lips_pressed).collect();
    println!("ama lips_pressed: {pressed:.2?}");
    let (k, &peak) = pressed
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    assert!(peak > 0.5, "peak pressed {peak}");
    // The closure lies between the two vowels, with the jaw nearly shut there.
    let open = m.iter().map(|c| c.jaw_open).fold(0.0, f32::max);
    assert!(
        m[..k].iter().any(|c| c.jaw_open > 0.5 * open),
        "no vowel before the closure"
    );
    assert!(
        m[k..].iter().any(|c| c.jaw_open > 0.5 * open),
        "no vowel after the closure"
    );
    assert!(
        m[k].jaw_open < 0.4 * open,
        "jaw {} vs vowel {}",
        m[k].jaw_open,
        open
    );
    // The vowels around it are not pressed.
    assert!(pressed[m.len() / 8] < 0.3);
}

#[test]
fn sentence_moves_the_mouth() {
    // "Maybe we should move on before the moon rises.": five bilabials (m, b, m, b, m).
    let m = mouth("sentence.wav");
    let jaw: Vec<f32> = m.iter().map(|c| c.jaw_open).collect();
    let mean = jaw.iter().sum::<f32>() / jaw.len() as f32;
    let sd = (jaw.iter().map(|j| (j - mean).powi(2)).sum::<f32>() / jaw.len() as f32).sqrt();
    let closures = m
        .windows(2)
        .filter(|w| w[0].lips_pressed <= 0.5 && w[1].lips_pressed > 0.5)
        .count();
    println!(
        "sentence: {} frames, jaw mean {mean:.2} sd {sd:.2}, {closures} lip closures",
        m.len()
    );
    assert!(sd > 0.15, "the jaw barely moves");
    assert!((3..=10).contains(&closures), "{closures} closures");
}
