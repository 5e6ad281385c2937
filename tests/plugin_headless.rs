//! Headless plugin tests: MinimalPlugins, asset + image plugins, kira's mock backend and
//! manual time (40 ms a frame, one face frame per game frame).

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::time::TimeUpdateStrategy;
use bevy_edtalk::motion::Emotion;
use bevy_edtalk::plugin::*;

const DT: f64 = 0.04;

fn app(assets_dir: &std::path::Path) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: assets_dir.display().to_string(),
            ..Default::default()
        },
        ImagePlugin::default(),
        EdTalkPlugin {
            settings: EdTalkSettings {
                backend: BackendChoice::Procedural,
                inference_threads: 1,
                prebuffer: 0.08,
                idle_motion: false,
                audio: AudioOutput::Mock {
                    sample_rate: 1000,
                    buffer: 10,
                },
                ..Default::default()
            },
        },
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
        DT,
    )))
    // bevy_render registers the PNG loader; a headless app does it itself.
    .register_asset_loader(ImageLoader::new(CompressedImageFormats::empty()));
    app.finish();
    app.cleanup();
    app
}

/// One game frame: audio advances with the clock, and the worker gets a moment to answer
/// (it is asynchronous by design; real games simply see the frame one update later).
fn step(app: &mut App) {
    app.world_mut()
        .non_send_mut::<EdTalkAudio>()
        .advance_mock(DT);
    app.update();
    std::thread::sleep(Duration::from_millis(15));
}

/// A face-like test portrait: skin oval, dark eyes, a lip line.
fn portrait_image() -> Image {
    let n = 256u32;
    let mut data = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (x as f32 / n as f32 - 0.5, y as f32 / n as f32 - 0.55);
            let face = (fx / 0.33).powi(2) + (fy / 0.42).powi(2) < 1.0;
            let eye = ((fx.abs() - 0.12).powi(2) + (fy + 0.13).powi(2)).sqrt() < 0.03;
            let lips = fx.abs() < 0.1 && (fy - 0.17).abs() < 0.015;
            let px = if eye {
                [40, 30, 30, 255]
            } else if lips {
                [170, 80, 80, 255]
            } else if face {
                [225, 180, 150, 255]
            } else {
                [60, 90, 140, 255]
            };
            data.extend_from_slice(&px);
        }
    }
    Image::new(
        Extent3d {
            width: n,
            height: n,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

/// 0.4 s silence, 0.8 s of a voiced vowel-like sound, 0.4 s silence, at 16 kHz.
fn test_line() -> VoiceLine {
    let rate = 16000;
    let samples: Vec<f32> = (0..(rate as f32 * 1.6) as usize)
        .map(|i| {
            let t = i as f32 / rate as f32;
            if (0.4..1.2).contains(&t) {
                let f0 = 140.0;
                (0.35 * (std::f32::consts::TAU * f0 * t).sin()
                    + 0.25 * (std::f32::consts::TAU * 700.0 * t).sin()
                    + 0.15 * (std::f32::consts::TAU * 1200.0 * t).sin())
                    * 0.8
            } else {
                0.0
            }
        })
        .collect();
    VoiceLine {
        samples: samples.into(),
        sample_rate: rate,
    }
}

fn spawn_face(app: &mut App) -> Entity {
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(portrait_image());
    app.world_mut()
        .spawn((FacePortrait::new(handle), Sprite::default()))
        .id()
}

fn face_pixels(app: &App, e: Entity) -> Vec<u8> {
    let face = app.world().get::<TalkingFace>(e).unwrap();
    let images = app.world().resource::<Assets<Image>>();
    images
        .get(&face.image)
        .and_then(|i| i.data.clone())
        .unwrap_or_default()
}

/// Mean absolute difference in the lower-middle (mouth) region.
fn mouth_diff(a: &[u8], b: &[u8]) -> f32 {
    let n = 256usize;
    let mut sum = 0u64;
    let mut count = 0u64;
    for y in 165..215 {
        for x in 90..166 {
            for c in 0..3 {
                let i = (y * n + x) * 4 + c;
                sum += (a[i] as i32 - b[i] as i32).unsigned_abs() as u64;
                count += 1;
            }
        }
    }
    sum as f32 / count as f32
}

fn errors(app: &mut App) -> Vec<EdTalkError> {
    app.world_mut()
        .resource_mut::<Messages<EdTalkError>>()
        .drain()
        .collect()
}

fn settle(app: &mut App, frames: usize) {
    for _ in 0..frames {
        step(app);
    }
}

#[test]
fn speaking_moves_the_mouth_in_step_with_playback_and_stops_with_it() {
    let dir = tempfile_dir("speak");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 10);
    let rest = face_pixels(&app, face);
    assert_eq!(rest.len(), 256 * 256 * 4, "face texture exists");
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_tag("hello"));
    let mut started = false;
    let mut finished = false;
    let mut open_during_voice = 0;
    let mut open_during_silence = 0;
    let mut voiced_frames = 0;
    let mut trace = Vec::new();
    for _ in 0..80 {
        step(&mut app);
        let world = app.world_mut();
        started |= world
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .any(|m| m.entity == face && m.tag == "hello");
        finished |= world
            .resource_mut::<Messages<SpeechFinished>>()
            .drain()
            .any(|m| m.entity == face && m.completed);
        let d = mouth_diff(&face_pixels(&app, face), &rest);
        let pos = playback_position(&app, face);
        trace.push((pos, d));
        if let Some(p) = pos {
            // Away from the edges of the voiced part: 3 face frames at the onset, and the
            // lip-sync's release (about 0.15 s) at the end.
            if (0.52..1.08).contains(&p) {
                voiced_frames += 1;
                if d > 2.0 {
                    open_during_voice += 1;
                }
            } else if !(0.28..1.45).contains(&p) && d > 2.0 {
                open_during_silence += 1;
            }
        }
    }
    assert!(started, "SpeechStarted");
    assert!(finished, "SpeechFinished after the line played out");
    assert!(voiced_frames >= 10, "saw {voiced_frames} voiced frames");
    assert!(
        open_during_voice * 10 >= voiced_frames * 8,
        "mouth open in {open_during_voice}/{voiced_frames} voiced frames: {trace:?}"
    );
    assert_eq!(
        open_during_silence, 0,
        "mouth moved during silence: {trace:?}"
    );
    // After the line, the mouth is back at rest.
    settle(&mut app, 5);
    assert!(mouth_diff(&face_pixels(&app, face), &rest) < 2.0);
    assert!(errors(&mut app).is_empty());
}

/// Seconds into the current line, from the audio playback position.
fn playback_position(app: &App, face: Entity) -> Option<f64> {
    app.world()
        .get::<TalkingFace>(face)
        .and_then(|f| f.line_position.map(f64::from))
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edtalk-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn set_emotion_moves_the_expression_over_the_transition() {
    let dir = tempfile_dir("emotion");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 8);
    app.world_mut()
        .write_message(SetEmotion::new(face, Emotion::Happy).over(0.4));
    let mut progress = Vec::new();
    for _ in 0..14 {
        step(&mut app);
        let state = app.world().get::<EmotionState>(face).unwrap();
        let t = debug_face_time(&app, face);
        progress.push(state.progress(t));
    }
    assert!(progress.windows(2).all(|w| w[1] >= w[0]), "{progress:?}");
    assert!(progress.iter().any(|&p| p > 0.1 && p < 0.9), "{progress:?}");
    assert_eq!(*progress.last().unwrap(), 1.0);
    let state = app.world().get::<EmotionState>(face).unwrap();
    assert!(state.target().label.starts_with("happy"));
    let (exp, look) = state.sample(debug_face_time(&app, face));
    assert_eq!(exp, Some(Emotion::Happy.exp_weights()));
    assert!(look.smile > 0.5);
}

fn debug_face_time(app: &App, face: Entity) -> f64 {
    app.world().get::<TalkingFace>(face).unwrap().clock
}

#[test]
fn a_scripted_line_follows_its_timeline() {
    let dir = tempfile_dir("script");
    std::fs::write(
        dir.join("line.emotion.ron"),
        r#"(keys: [
            (time: 0.0, emotion: "happy", intensity: 1.0, blend: 0.1),
            (time: 0.8, emotion: "sad", intensity: 0.7, blend: 0.1),
        ])"#,
    )
    .unwrap();
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 8);
    let script = app
        .world()
        .resource::<AssetServer>()
        .load("line.emotion.ron");
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_script(script));
    let mut labels = Vec::new();
    for _ in 0..50 {
        step(&mut app);
        if let Some(p) = playback_position(&app, face) {
            let label = app
                .world()
                .get::<EmotionState>(face)
                .unwrap()
                .target()
                .label
                .clone();
            labels.push((p, label));
        }
    }
    assert!(!labels.is_empty(), "line never started");
    for (p, label) in &labels {
        if *p > 0.1 && *p < 0.75 {
            assert!(
                label.starts_with("happy"),
                "at {p}: {label}; errors {:?}",
                errors(&mut app)
            );
        }
        if *p > 0.85 {
            assert!(label.starts_with("sad"), "at {p}: {label}");
        }
    }
    assert!(labels.iter().any(|(p, _)| *p > 0.85));
}

#[test]
fn two_characters_talk_at_once() {
    let dir = tempfile_dir("two");
    let mut app = app(&dir);
    let a = spawn_face(&mut app);
    let b = spawn_face(&mut app);
    settle(&mut app, 10);
    let rest_a = face_pixels(&app, a);
    let rest_b = face_pixels(&app, b);
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut().write_message(Speak::new(a, line.clone()));
    app.world_mut().write_message(Speak::new(b, line));
    let (mut moved_a, mut moved_b, mut both) = (false, false, false);
    let mut started: Vec<Entity> = Vec::new();
    for _ in 0..40 {
        step(&mut app);
        // Messages live for two updates: read them every frame.
        started.extend(
            app.world_mut()
                .resource_mut::<Messages<SpeechStarted>>()
                .drain()
                .map(|m| m.entity),
        );
        let da = mouth_diff(&face_pixels(&app, a), &rest_a) > 2.0;
        let db = mouth_diff(&face_pixels(&app, b), &rest_b) > 2.0;
        moved_a |= da;
        moved_b |= db;
        both |= da && db;
    }
    assert!(moved_a && moved_b && both);
    assert!(started.contains(&a) && started.contains(&b));
}

#[test]
fn bad_ron_and_a_missing_portrait_are_reported_and_the_app_keeps_running() {
    let dir = tempfile_dir("bad");
    std::fs::write(
        dir.join("broken.character.ron"),
        "(\n    name: \"Broken\",\n    portrait: 42,\n)\n",
    )
    .unwrap();
    let mut app = app(&dir);
    let server = app.world().resource::<AssetServer>().clone();
    app.world_mut()
        .spawn(Character(server.load("broken.character.ron")));
    let ghost = app
        .world_mut()
        .spawn((
            FacePortrait::new(server.load("no_such_portrait.png")),
            Sprite::default(),
        ))
        .id();
    let good = spawn_face(&mut app);
    let mut all = Vec::new();
    for _ in 0..30 {
        step(&mut app);
        all.extend(errors(&mut app));
    }
    let _ = ghost;
    let text: Vec<String> = all.iter().map(|e| e.message.clone()).collect();
    assert!(
        text.iter().any(|m| m.contains("broken.character.ron:3:14")),
        "{text:?}"
    );
    assert!(
        all.iter()
            .any(|e| e.message.contains("no_such_portrait.png")),
        "{text:?}"
    );

    // The good face still renders.
    assert_eq!(face_pixels(&app, good).len(), 256 * 256 * 4);
}

#[test]
fn a_worker_panic_is_reported_and_faces_keep_animating() {
    let dir = tempfile_dir("panic");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 8);
    bevy_edtalk::plugin::inject_worker_panic(app.world_mut());
    let mut errs = Vec::new();
    for _ in 0..5 {
        step(&mut app);
        errs.extend(errors(&mut app));
    }
    assert!(
        errs.iter().any(|e| e.message.contains("restarted")),
        "{errs:?}"
    );
    assert_eq!(
        app.world().resource::<EdTalkDiagnostics>().worker_restarts,
        1
    );
    // Still talking after the restart.
    let rest = face_pixels(&app, face);
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut().write_message(Speak::new(face, line));
    let mut moved = false;
    for _ in 0..30 {
        step(&mut app);
        moved |= mouth_diff(&face_pixels(&app, face), &rest) > 2.0;
    }
    assert!(moved);
}
