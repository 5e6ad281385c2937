//! Bad data in files and messages never takes the game down; one emotion engine for the
//! plugin and the offline renderer; entity events. Headless, like plugin_headless.rs.

mod common;

use std::sync::{Arc, Mutex};

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_edtalk::motion::{CustomEmotion, EXP_DIM, EmotionLibrary, EmotionMix, EmotionScript};
use bevy_edtalk::prelude::*;
use common::{
    app, app_with_settings, errors, step, tempfile_dir as tempdir, test_settings, write_character,
};

fn grey_image() -> Image {
    Image::new_fill(
        Extent3d {
            width: 64,
            height: 64,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[150, 120, 100, 255],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

fn spawn_face(app: &mut App) -> Entity {
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(grey_image());
    app.world_mut()
        .spawn((FacePortrait::new(handle), Sprite::default()))
        .id()
}

/// 1.2 s of a voiced tone at 16 kHz.
fn tone_line() -> VoiceLine {
    let samples: Vec<f32> = (0..19_200)
        .map(|i| 0.3 * (std::f32::consts::TAU * 160.0 * i as f32 / 16_000.0).sin())
        .collect();
    VoiceLine::from_mono(samples, 16_000)
}

#[test]
fn a_non_finite_default_emotion_is_a_load_error_with_its_position() {
    let dir = tempdir("inf");
    write_character(
        &dir,
        "poisoned",
        "    default_emotion: Some((emotion: \"happy\", intensity: inf)),\n",
    );
    write_character(
        &dir,
        "nan",
        "    default_emotion: Some((emotion: \"sad\", intensity: NaN)),\n",
    );
    let mut app = app(&dir);
    let server = app.world().resource::<AssetServer>().clone();
    for name in ["poisoned", "nan"] {
        app.world_mut().spawn((
            Character(server.load(format!("{name}.character.ron"))),
            Sprite::default(),
        ));
    }
    let good = spawn_face(&mut app);
    let mut all = Vec::new();
    for _ in 0..40 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    for name in ["poisoned", "nan"] {
        let e = all
            .iter()
            .find(|e| e.message.contains(&format!("{name}.character.ron:4:")))
            .unwrap_or_else(|| panic!("no positioned error for {name}: {all:?}"));
        assert_eq!(e.kind, EdTalkErrorKind::Character);
        assert!(e.message.contains("finite"), "{}", e.message);
    }
    // The game goes on: the good face has its texture.
    let image = app.world().get::<TalkingFace>(good).unwrap().image.clone();
    assert!(
        app.world()
            .resource::<Assets<Image>>()
            .get(&image)
            .is_some()
    );
}

#[test]
fn non_finite_intensities_in_messages_and_components_are_reported_not_panics() {
    let dir = tempdir("nan-msg");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    for _ in 0..5 {
        step(&mut app);
    }
    let before = app
        .world()
        .get::<EmotionState>(face)
        .unwrap()
        .label()
        .to_string();
    app.world_mut()
        .write_message(SetEmotion::with_intensity(face, Emotion::Happy, f32::NAN));
    app.world_mut()
        .write_message(SetEmotion::named(face, "no-such-emotion", 1.0));
    app.world_mut().write_message(SetEmotion::mix(
        face,
        EmotionMix {
            weights: vec![("sad".into(), f32::INFINITY)],
            intensity: 1.0,
        },
    ));
    let other = spawn_face(&mut app);
    app.world_mut()
        .entity_mut(other)
        .insert(EmotionState::emotion(Emotion::Angry, f32::INFINITY));
    let mut all = Vec::new();
    for _ in 0..5 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    let emotion_errors: Vec<&EdTalkError> = all
        .iter()
        .filter(|e| e.kind == EdTalkErrorKind::Emotion)
        .collect();
    assert_eq!(emotion_errors.len(), 4, "{all:?}");
    assert!(emotion_errors.iter().any(|e| e.entity == Some(other)));
    assert!(
        emotion_errors
            .iter()
            .any(|e| e.message.contains("no-such-emotion")),
        "{all:?}"
    );
    // The faces keep their expressions and still take good requests.
    assert_eq!(
        app.world().get::<EmotionState>(face).unwrap().label(),
        before
    );
    app.world_mut()
        .write_message(SetEmotion::new(face, Emotion::Sad).over(0.0));
    step(&mut app);
    assert!(
        app.world()
            .get::<EmotionState>(face)
            .unwrap()
            .label()
            .starts_with("sad")
    );
    assert!(errors(&mut app).is_empty());
}

/// Plays `script` on a face through the plugin and returns, per face frame of the line,
/// the expression weights the plugin's emotion state gives.
fn plugin_expressions(
    app: &mut App,
    face: Entity,
    script: Handle<bevy_edtalk::plugin::EmotionScriptAsset>,
    frames: usize,
) -> Vec<(usize, [f32; EXP_DIM])> {
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(tone_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_script(script));
    let mut base_key = None;
    let mut out = Vec::new();
    for _ in 0..frames + 40 {
        step(app);
        let world = app.world_mut();
        if world
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .any(|m| m.entity == face)
        {
            // The face clock follows the line: key = first key + floor(position * fps).
            let f = world.get::<TalkingFace>(face).unwrap();
            let pos = f.line_position.unwrap_or(0.0) as f64;
            base_key = Some((f.clock * 25.0).round() as i64 - (pos * 25.0 + 1e-6).floor() as i64);
        }
        let Some(base) = base_key else {
            continue;
        };
        let face_ref = world.get::<TalkingFace>(face).unwrap();
        if face_ref.line_position.is_none() {
            continue;
        }
        let key = (face_ref.clock * 25.0).round() as i64;
        let state = world.get::<EmotionState>(face).unwrap();
        let (exp, _) = state.sample(key as f64 / 25.0);
        if let (Ok(i), Some(exp)) = (usize::try_from(key - base), exp)
            && i < frames
        {
            out.push((i, exp));
        }
    }
    out
}

#[test]
fn a_script_eases_the_same_in_the_plugin_as_in_edtalk_render() {
    let dir = tempdir("ease");
    // Every easing, with transitions long enough to be sampled mid-way.
    let text = r#"(keys: [
        (time: 0.0, emotion: "neutral", blend: 0.0),
        (time: 0.1, emotion: "happy", intensity: 0.9, blend: 0.3, easing: EaseIn),
        (time: 0.45, mix: [("sad", 0.6), ("fear", 0.4)], blend: 0.25, easing: EaseInOut),
        (time: 0.75, emotion: "surprised", blend: 0.3, easing: Linear),
    ])"#;
    std::fs::write(dir.join("line.emotion.ron"), text).unwrap();
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    app.world_mut()
        .entity_mut(face)
        .insert(EmotionState::emotion(Emotion::Neutral, 1.0));
    for _ in 0..5 {
        step(&mut app);
    }
    let script = app
        .world()
        .resource::<AssetServer>()
        .load("line.emotion.ron");
    let got = plugin_expressions(&mut app, face, script, 28);
    // `edtalk render --script` samples the script with the motion module's player.
    let offline = EmotionScript::parse(text, "line.emotion.ron")
        .unwrap()
        .sample_frames(&EmotionLibrary::new(), 25.0, 28)
        .unwrap();
    assert!(got.len() >= 20, "only {} frames compared", got.len());
    let mut mid_transition = 0;
    for (i, exp) in &got {
        let want = offline[*i].exp;
        let diff = exp
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "frame {i}: plugin {exp:?} vs render {want:?}");
        let settled = offline
            .get(i.saturating_sub(1))
            .is_some_and(|p| p.exp == want);
        if !settled {
            mid_transition += 1;
        }
    }
    assert!(
        mid_transition >= 8,
        "only {mid_transition} frames mid-transition"
    );
}

#[test]
fn a_script_naming_a_custom_emotion_plays_when_the_game_defines_it() {
    let dir = tempdir("custom");
    std::fs::write(
        dir.join("smug.emotion.ron"),
        r#"(keys: [(time: 0.0, emotion: "smug", blend: 0.0)])"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("typo.emotion.ron"),
        r#"(keys: [(time: 0.0, emotion: "smgu", blend: 0.0)])"#,
    )
    .unwrap();
    let mut app = app(&dir);
    let smug = [0.3; EXP_DIM];
    app.world_mut()
        .resource_mut::<Emotions>()
        .0
        .insert(CustomEmotion {
            name: "smug".into(),
            exp: smug,
            look: None,
        });
    let face = spawn_face(&mut app);
    for _ in 0..5 {
        step(&mut app);
    }
    let server = app.world().resource::<AssetServer>().clone();
    let got = plugin_expressions(&mut app, face, server.load("smug.emotion.ron"), 10);
    assert!(!got.is_empty(), "errors: {:?}", errors(&mut app));
    for (_, exp) in &got {
        assert_eq!(exp, &smug);
    }
    assert!(errors(&mut app).is_empty());
    // A name the library lacks is reported when the line starts; the line still plays.
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(tone_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_script(server.load("typo.emotion.ron")));
    let mut all = Vec::new();
    let mut started = false;
    for _ in 0..20 {
        step(&mut app);
        all.extend(errors(&mut app));
        started |= app
            .world_mut()
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .count()
            > 0;
    }
    assert!(started);
    let e = all
        .iter()
        .find(|e| e.kind == EdTalkErrorKind::Script)
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        e.message.contains("smgu") && e.message.contains("typo.emotion.ron"),
        "{e:?}"
    );
}

#[test]
fn speech_events_are_triggered_on_the_speaking_face() {
    let dir = tempdir("events");
    let mut app = app(&dir);
    let a = spawn_face(&mut app);
    let b = spawn_face(&mut app);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    app.world_mut()
        .entity_mut(a)
        .observe(move |ev: On<SpeechStarted>| {
            log.lock().unwrap().push(format!("started {}", ev.tag));
        });
    let log = seen.clone();
    app.world_mut()
        .entity_mut(a)
        .observe(move |ev: On<SpeechFinished>| {
            log.lock()
                .unwrap()
                .push(format!("finished {} {}", ev.tag, ev.completed));
        });
    for _ in 0..5 {
        step(&mut app);
    }
    for (face, tag) in [(a, "mine"), (b, "other")] {
        let line = app
            .world_mut()
            .resource_mut::<Assets<VoiceLine>>()
            .add(tone_line());
        app.world_mut()
            .write_message(Speak::new(face, line).with_tag(tag));
    }
    for _ in 0..50 {
        step(&mut app);
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["started mine".to_string(), "finished mine true".to_string()]
    );
}

#[test]
fn despawning_a_face_mid_line_and_a_bad_crop_are_harmless() {
    let dir = tempdir("despawn");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(grey_image());
    let cropped = app
        .world_mut()
        .spawn((
            FacePortrait {
                crop: Some([60, 60, u32::MAX, 10]),
                ..FacePortrait::new(handle)
            },
            Sprite::default(),
        ))
        .id();
    let mut all = Vec::new();
    for _ in 0..5 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(tone_line());
    app.world_mut().write_message(Speak::new(face, line));
    for _ in 0..8 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    app.world_mut().entity_mut(face).despawn();
    for _ in 0..10 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    let crop_error = all
        .iter()
        .find(|e| e.entity == Some(cropped))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(crop_error.kind, EdTalkErrorKind::Portrait);
    assert!(crop_error.message.contains("crop"), "{crop_error:?}");
}

fn load_png(path: &std::path::Path) -> Image {
    let img = image::open(path).unwrap().into_rgba8();
    let (w, h) = img.dimensions();
    Image::new(
        Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        img.into_raw(),
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

fn texture_size(app: &App, face: Entity) -> Option<(u32, u32)> {
    let handle = app.world().get::<TalkingFace>(face)?.image.clone();
    let images = app.world().resource::<Assets<Image>>();
    images.get(&handle).map(|i| (i.width(), i.height()))
}

#[test]
fn a_photo_is_aligned_off_the_main_thread_and_pasted_back() {
    let dir = tempdir("align");
    let mut app = app(&dir);
    let photo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/faces/takeo.png"
    );
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(load_png(std::path::Path::new(photo)));
    let face = app
        .world_mut()
        .spawn((
            FacePortrait::auto(handle.clone()).with_paste_back(),
            Sprite::default(),
        ))
        .id();
    let crop_only = app
        .world_mut()
        .spawn((FacePortrait::auto(handle), Sprite::default()))
        .id();
    let blank = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(grey_image());
    let no_face = app
        .world_mut()
        .spawn((FacePortrait::auto(blank), Sprite::default()))
        .id();
    let mut all = Vec::new();
    let mut shown = 0;
    for _ in 0..150 {
        step(&mut app);
        all.extend(errors(&mut app));
        shown = app.world().resource::<EdTalkDiagnostics>().frames_shown;
        if shown > 6 && texture_size(&app, face) == Some((150, 225)) {
            break;
        }
    }
    assert_eq!(texture_size(&app, face), Some((150, 225)), "{all:?}");
    assert_eq!(texture_size(&app, crop_only), Some((256, 256)));
    assert!(shown > 0, "no frame shown; errors {all:?}");
    let e = all
        .iter()
        .find(|e| e.entity == Some(no_face))
        .unwrap_or_else(|| panic!("no error for the blank portrait: {all:?}"));
    assert_eq!(e.kind, EdTalkErrorKind::Portrait);
    assert!(e.message.contains("no face was found"), "{e:?}");
    assert!(all.iter().all(|e| e.entity == Some(no_face)), "{all:?}");
}

#[test]
fn character_files_take_auto_crop_anchors_and_paste_back() {
    let dir = tempdir("char-align");
    write_character(&dir, "auto", "    crop: Auto,\n    paste_back: true,\n");
    write_character(
        &dir,
        "anchored",
        "    anchors: Some((left_eye: (98, 110), right_eye: (158, 110), mouth: (128, 180))),\n",
    );
    write_character(&dir, "typo", "    crop: Autoo,\n");
    let mut app = app(&dir);
    let server = app.world().resource::<AssetServer>().clone();
    let spawn = |app: &mut App, name: &str| {
        app.world_mut()
            .spawn((
                Character(server.load(format!("{name}.character.ron"))),
                Sprite::default(),
            ))
            .id()
    };
    let auto = spawn(&mut app, "auto");
    let anchored = spawn(&mut app, "anchored");
    spawn(&mut app, "typo");
    let mut all = Vec::new();
    for _ in 0..60 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    let p = app.world().get::<FacePortrait>(auto).expect("auto applied");
    assert_eq!((p.align.clone(), p.paste_back), (PortraitAlign::Auto, true));
    let p = app
        .world()
        .get::<FacePortrait>(anchored)
        .expect("anchored applied");
    assert_eq!(
        p.align,
        PortraitAlign::Anchors {
            left_eye: Vec2::new(98.0, 110.0),
            right_eye: Vec2::new(158.0, 110.0),
            mouth: Vec2::new(128.0, 180.0),
        }
    );
    let typo = all
        .iter()
        .find(|e| e.message.contains("typo.character.ron:4:"))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(typo.message.contains("Auto"), "{typo:?}");
}

/// A checkpoint directory with the small parity-fixture networks (narrow EDTalk, full-size
/// Audio2Lip) under the names the plugin looks for.
fn tiny_checkpoints(name: &str, corrupt_generator: bool) -> std::path::PathBuf {
    let dir = tempdir(name);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/edtalk");
    let generator = dir.join("EDTalk.safetensors");
    if corrupt_generator {
        std::fs::write(&generator, b"not a checkpoint").unwrap();
    } else {
        std::fs::copy(
            format!("{fixtures}/edtalk_tiny_weights.safetensors"),
            &generator,
        )
        .unwrap();
    }
    std::fs::copy(
        format!("{fixtures}/audio2lip_weights.safetensors"),
        dir.join("Audio2Lip.safetensors"),
    )
    .unwrap();
    dir
}

#[test]
fn startup_runs_procedural_at_once_and_moves_faces_to_the_neural_renderer() {
    let dir = tempdir("startup");
    let settings = EdTalkSettings {
        backend: BackendChoice::Auto,
        ckpt_dir: tiny_checkpoints("startup-ckpts", false),
        // On a loaded machine even the tiny networks can be slower than real time: the line
        // then renders ahead on the neural renderer rather than falling back.
        max_render_ahead_wait: 60.0,
        ..test_settings(false)
    };
    let mut app = app_with_settings(&dir, settings);
    let face = spawn_face(&mut app);
    step(&mut app);
    // The first frames run on the procedural renderer: nothing waited for the checkpoints.
    assert_eq!(
        app.world().resource::<EdTalkDiagnostics>().backend,
        Some(Backend::Procedural)
    );
    let mut ready = None;
    let mut all = Vec::new();
    for i in 0..500 {
        step(&mut app);
        all.extend(errors(&mut app));
        if let Some(m) = app
            .world_mut()
            .resource_mut::<Messages<RendererReady>>()
            .drain()
            .last()
        {
            ready = Some((i, m.backend));
            break;
        }
    }
    let (at, backend) = ready.unwrap_or_else(|| panic!("no RendererReady; errors {all:?}"));
    assert_eq!(backend, Backend::Neural);
    assert_eq!(
        app.world().resource::<EdTalkDiagnostics>().backend,
        Some(Backend::Neural)
    );
    // The face registers again and the neural renderer draws it.
    let rendered_before = app.world().resource::<EdTalkDiagnostics>().frames_rendered;
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(tone_line());
    app.world_mut().write_message(Speak::new(face, line));
    for _ in 0..40 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    let diag = app.world().resource::<EdTalkDiagnostics>();
    assert!(all.is_empty(), "switched at step {at}; errors {all:?}");
    assert!(
        diag.frames_rendered > rendered_before,
        "no neural frames: {diag:?}"
    );
}

#[test]
fn a_corrupt_checkpoint_is_reported_after_startup_and_faces_stay_procedural() {
    let dir = tempdir("startup-bad");
    let settings = EdTalkSettings {
        backend: BackendChoice::Neural,
        ckpt_dir: tiny_checkpoints("startup-bad-ckpts", true),
        ..test_settings(false)
    };
    let mut app = app_with_settings(&dir, settings);
    spawn_face(&mut app);
    let mut all = Vec::new();
    for _ in 0..200 {
        step(&mut app);
        all.extend(errors(&mut app));
        if all.iter().any(|e| e.kind == EdTalkErrorKind::Checkpoint) {
            break;
        }
    }
    let e = all
        .iter()
        .find(|e| e.kind == EdTalkErrorKind::Checkpoint)
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(e.message.contains("EDTalk.safetensors"), "{e:?}");
    assert!(e.message.contains("procedural"), "{e:?}");
    assert_eq!(
        app.world().resource::<EdTalkDiagnostics>().backend,
        Some(Backend::Procedural)
    );
    let shown = app.world().resource::<EdTalkDiagnostics>().frames_shown;
    for _ in 0..5 {
        step(&mut app);
    }
    assert!(app.world().resource::<EdTalkDiagnostics>().frames_shown >= shown);
}

/// Plays a voice-line file through the plugin; returns the SpeechStarted message.
fn started_by_file(file: &str) -> SpeechStarted {
    let dir = tempdir(&format!("quality-{file}"));
    let src = format!(
        "{}/tests/fixtures/speech/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(src, dir.join(file)).unwrap();
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    let line: Handle<VoiceLine> = app.world().resource::<AssetServer>().load(file.to_string());
    app.world_mut()
        .write_message(Speak::new(face, line.clone()));
    for _ in 0..100 {
        step(&mut app);
        let started = app
            .world_mut()
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .next();
        if let Some(m) = started {
            // Lip-sync still analyses the 16 kHz mono copy.
            let asset = app
                .world()
                .resource::<Assets<VoiceLine>>()
                .get(&line)
                .unwrap();
            assert_eq!(asset.sample_rate, 16_000);
            return m;
        }
    }
    panic!("{file} never started: {:?}", errors(&mut app));
}

#[test]
fn source_quality_a_44k_stereo_line_is_played_at_its_own_rate_and_channels() {
    let m = started_by_file("vowel_aa_44k_stereo.ogg");
    assert_eq!((m.sample_rate, m.channels), (44_100, 2));
    assert!((m.duration - 0.884).abs() < 0.01, "{}", m.duration);
}

#[test]
fn source_quality_mono_files_and_in_memory_lines_play_as_they_are() {
    let m = started_by_file("vowel_aa_22k.flac");
    assert_eq!((m.sample_rate, m.channels), (22_050, 1));
    let m = started_by_file("vowel_aa.wav");
    assert_eq!((m.sample_rate, m.channels), (16_000, 1));
}

/// Mean absolute difference over the whole picture (RGB).
fn picture_diff(a: &[u8], b: &[u8]) -> f32 {
    let sum: u64 = a
        .chunks_exact(4)
        .zip(b.chunks_exact(4))
        .flat_map(|(p, q)| (0..3).map(move |c| (p[c] as i32 - q[c] as i32).unsigned_abs() as u64))
        .sum();
    sum as f32 / (a.len() / 4 * 3).max(1) as f32
}

#[test]
fn render_ahead_past_the_wait_bound_renders_the_line_procedurally() {
    let dir = tempdir("ahead-fallback");
    let settings = EdTalkSettings {
        backend: BackendChoice::Auto,
        ckpt_dir: tiny_checkpoints("ahead-fallback-ckpts", false),
        render_ahead: true,
        max_render_ahead_wait: 0.3,
        ..test_settings(true)
    };
    let mut app = app_with_settings(&dir, settings);
    let face = common::spawn_face(&mut app);
    let mut all = Vec::new();
    let mut neural = false;
    for _ in 0..500 {
        step(&mut app);
        all.extend(errors(&mut app));
        if app
            .world_mut()
            .resource_mut::<Messages<RendererReady>>()
            .drain()
            .any(|m| m.backend == Backend::Neural)
        {
            neural = true;
            break;
        }
    }
    assert!(neural, "no neural renderer: {all:?}");
    // A neural renderer far slower than real time (150 ms a frame): the 1.2 s line would
    // need seconds of render-ahead, above the 0.3 s the game accepts.
    bevy_edtalk::plugin::set_min_frame_time(app.world_mut(), std::time::Duration::from_millis(150));
    for _ in 0..40 {
        common::realtime_step(&mut app);
    }
    all.extend(errors(&mut app));
    assert!(all.is_empty(), "{all:?}");
    let portrait = common::portrait_image().data.unwrap();
    // The tiny test networks draw nothing like the portrait; the procedural renderer
    // warps the portrait itself. That tells the two renderers' frames apart.
    let neural_diff = picture_diff(&common::face_pixels(&app, face), &portrait);
    assert!(
        neural_diff > 12.0,
        "neural frame vs portrait: {neural_diff}"
    );

    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(tone_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_tag("long"));
    let late = |app: &App| app.world().resource::<EdTalkDiagnostics>().frames_late;
    let (mut late_at_start, mut playing, mut finished) = (None, Vec::new(), false);
    for _ in 0..120 {
        common::realtime_step(&mut app);
        all.extend(errors(&mut app));
        let world = app.world_mut();
        // It waits only for the procedural renderer's first frame.
        if let Some(r) = world.resource_mut::<Messages<SpeechReady>>().drain().last() {
            assert!(r.waited < 0.5, "the line waited {} s", r.waited);
        }
        if world
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .any(|m| m.tag == "long")
        {
            late_at_start = Some(late(&app));
        }
        if late_at_start.is_some() && !finished {
            playing.push(common::face_pixels(&app, face));
        }
        if app
            .world_mut()
            .resource_mut::<Messages<SpeechFinished>>()
            .drain()
            .any(|m| m.tag == "long")
        {
            finished = true;
            let missed = late(&app) - late_at_start.expect("SpeechStarted first");
            assert_eq!(missed, 0, "late frames while the line played");
            break;
        }
    }
    assert!(finished, "the line never finished: {all:?}");
    let report = all
        .iter()
        .find(|e| e.kind == EdTalkErrorKind::Worker && e.message.contains("max_render_ahead_wait"))
        .unwrap_or_else(|| panic!("no report: {all:?}"));
    assert!(report.message.contains("procedural renderer"), "{report:?}");
    // The played line's frames are the procedural renderer's (after the frames already on
    // their way), and its mouth moves.
    assert!(playing.len() >= 25, "{} frames", playing.len());
    let procedural = playing[5..]
        .iter()
        .filter(|p| picture_diff(p, &portrait) < 6.0)
        .count();
    assert!(
        procedural >= playing.len() - 6,
        "{procedural} of {} frames procedural",
        playing.len()
    );
    let moving = playing
        .iter()
        .filter(|p| common::mouth_diff(p, &portrait) > 2.0)
        .count();
    assert!(moving >= 10, "the mouth moved in {moving} frames");
    // After the line the neural renderer draws the face again.
    let mut back = false;
    for _ in 0..60 {
        common::realtime_step(&mut app);
        if picture_diff(&common::face_pixels(&app, face), &portrait) > 12.0 {
            back = true;
            break;
        }
    }
    assert!(back, "the face did not return to the neural renderer");
}
