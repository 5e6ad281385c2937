//! Headless plugin tests: MinimalPlugins, asset + image plugins, kira's mock backend and
//! manual time (40 ms a frame, one face frame per game frame).

mod common;

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_edtalk::motion::{
    Emotion, HeadPose, IdleSettings, MotionFrame, MotionTrack, MouthControls, PoseKey, PoseSource,
    PoseTrack,
};
use bevy_edtalk::plugin::*;
use common::*;

/// 0.4 s silence, 0.8 s of a voiced vowel-like sound, 0.4 s silence, at 16 kHz.
fn test_line() -> VoiceLine {
    let rate = 16000;
    let samples: Vec<f32> = (0..(rate as f32 * 1.6) as usize)
        .map(|i| {
            let t = i as f32 / rate as f32;
            if (0.4..1.2).contains(&t) {
                voiced(t)
            } else {
                0.0
            }
        })
        .collect();
    VoiceLine::from_mono(samples, rate)
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
    assert!(state.label().starts_with("happy"));
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
                .label()
                .to_string();
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

/// Mean absolute difference in a band across the cheeks (below the eyes, above the lips):
/// the head's turn moves the face outline there; the mouth and blinks do not.
fn cheek_diff(a: &[u8], b: &[u8]) -> f32 {
    let n = 256usize;
    let mut sum = 0u64;
    let mut count = 0u64;
    for y in 128..160 {
        for x in 20..236 {
            for c in 0..3 {
                let i = (y * n + x) * 4 + c;
                sum += (a[i] as i32 - b[i] as i32).unsigned_abs() as u64;
                count += 1;
            }
        }
    }
    sum as f32 / count as f32
}

/// Plays `speak` on `face` and returns (playback position, cheek diff, mouth diff) against
/// `rest` for every game frame while the line plays, and whether it finished.
fn play(app: &mut App, face: Entity, speak: Speak, rest: &[u8]) -> (Vec<(f64, f32, f32)>, bool) {
    app.world_mut().write_message(speak);
    let mut trace = Vec::new();
    let mut finished = false;
    for _ in 0..70 {
        step(app);
        finished |= app
            .world_mut()
            .resource_mut::<Messages<SpeechFinished>>()
            .drain()
            .any(|m| m.entity == face && m.completed);
        if let Some(p) = playback_position(app, face) {
            let px = face_pixels(app, face);
            trace.push((p, cheek_diff(&px, rest), mouth_diff(&px, rest)));
        }
        if finished {
            break;
        }
    }
    (trace, finished)
}

#[test]
fn a_line_with_its_own_pose_turns_the_head_and_a_line_without_does_not() {
    let dir = tempfile_dir("pose");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 10);
    let rest = face_pixels(&app, face);
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());

    // No pose: the head holds still (idle motion is off in this app).
    let (plain, done) = play(&mut app, face, Speak::new(face, line.clone()), &rest);
    assert!(done && plain.len() >= 30, "{plain:?}");
    let plain_cheeks = plain.iter().map(|t| t.1).fold(0.0, f32::max);
    assert!(plain_cheeks < 0.5, "head moved without a pose: {plain:?}");
    assert!(plain.iter().any(|t| t.2 > 2.0), "mouth never moved");
    settle(&mut app, 5);

    // A one-key pose track (held, ping-pong) turning the head.
    let turned = PoseSource::Track(PoseTrack {
        frames: vec![PoseKey {
            head: HeadPose {
                yaw: 0.3,
                ..Default::default()
            },
            coeffs: None,
        }],
    });
    let (posed, done) = play(
        &mut app,
        face,
        Speak::new(face, line).with_pose(turned),
        &rest,
    );
    assert!(done, "{posed:?}");
    // Past the first frames (the line's first face frames may still be in flight).
    let turned_frames = posed
        .iter()
        .filter(|t| (0.2..1.4).contains(&t.0))
        .collect::<Vec<_>>();
    assert!(turned_frames.len() >= 20, "{posed:?}");
    assert!(
        turned_frames.iter().all(|t| t.1 > 1.5),
        "head did not turn with the line's pose: {posed:?} vs {plain_cheeks}"
    );
    assert!(posed.iter().any(|t| t.2 > 2.0), "mouth never moved");
    // After the line the head is back to the portrait's own pose.
    settle(&mut app, 5);
    assert!(cheek_diff(&face_pixels(&app, face), &rest) < 0.5);
    assert!(errors(&mut app).is_empty());
}

/// Steps until `entity` has a [`FacePortrait`] (the character file was applied).
fn wait_for_character(app: &mut App, entity: Entity) {
    for _ in 0..100 {
        step(app);
        if app.world().get::<FacePortrait>(entity).is_some() {
            return;
        }
    }
    panic!("character never applied; errors {:?}", errors(app));
}

#[test]
fn character_files_parse_with_and_without_idle_settings() {
    let dir = tempfile_dir("idle-parse");
    write_character(&dir, "plain", "");
    write_character(
        &dir,
        "idler",
        // Every optional field, as in the README's example.
        "    crop: Some((0, 0, 256, 256)),\n    backend: Some(Procedural),\n    \
         idle: Some((seed: 7, sway: 0.1, blink_interval: 5.0)),\n",
    );
    let mut app = app(&dir);
    let server = app.world().resource::<AssetServer>().clone();
    let plain_handle = server.load::<CharacterAsset>("plain.character.ron");
    let idler_handle = server.load::<CharacterAsset>("idler.character.ron");
    let plain = app.world_mut().spawn(Character(plain_handle.clone())).id();
    let idler = app.world_mut().spawn(Character(idler_handle.clone())).id();
    wait_for_character(&mut app, plain);
    wait_for_character(&mut app, idler);
    let assets = app.world().resource::<Assets<CharacterAsset>>();
    assert_eq!(assets.get(&plain_handle).unwrap().idle, None);
    let expected = IdleSettings {
        seed: 7,
        sway: 0.1,
        blink_interval: 5.0,
        // Left out of the file: the default.
        nod: IdleSettings::default().nod,
    };
    assert_eq!(
        assets.get(&idler_handle).unwrap().idle,
        Some(expected.clone())
    );
    assert!(app.world().get::<IdleMotion>(plain).is_none());
    assert_eq!(
        app.world().get::<IdleMotion>(idler),
        Some(&IdleMotion(expected))
    );
    assert!(errors(&mut app).is_empty());
}

/// The largest cheek-band change of `face` over `frames` game frames.
fn max_motion(app: &mut App, face: Entity, frames: usize) -> f32 {
    let first = face_pixels(app, face);
    let mut most = 0.0f32;
    for _ in 0..frames {
        step(app);
        most = most.max(cheek_diff(&face_pixels(app, face), &first));
    }
    most
}

#[test]
fn a_characters_idle_settings_drive_its_idle_motion() {
    let dir = tempfile_dir("idle-use");
    write_character(&dir, "still", "    idle: Some((sway: 0.0)),\n");
    write_character(&dir, "swaying", "    idle: Some((sway: 0.3)),\n");
    let mut app = app_with_idle(&dir, true);
    let server = app.world().resource::<AssetServer>().clone();
    let still = app
        .world_mut()
        .spawn((
            Character(server.load("still.character.ron")),
            Sprite::default(),
        ))
        .id();
    let swaying = app
        .world_mut()
        .spawn((
            Character(server.load("swaying.character.ron")),
            Sprite::default(),
        ))
        .id();
    wait_for_character(&mut app, still);
    wait_for_character(&mut app, swaying);
    settle(&mut app, 10);
    let mut moved_still = 0.0f32;
    let mut moved_swaying = 0.0f32;
    // Both measured over the same 3 s.
    let first_still = face_pixels(&app, still);
    let first_swaying = face_pixels(&app, swaying);
    for _ in 0..75 {
        step(&mut app);
        moved_still = moved_still.max(cheek_diff(&face_pixels(&app, still), &first_still));
        moved_swaying = moved_swaying.max(cheek_diff(&face_pixels(&app, swaying), &first_swaying));
    }
    assert!(moved_still < 0.5, "sway 0 moved the head: {moved_still}");
    assert!(
        moved_swaying > 2.0,
        "sway 0.3 barely moved: {moved_swaying}"
    );
    // Without the setting, the plugin's default idle (a smaller sway) applies.
    let plain = spawn_face(&mut app);
    settle(&mut app, 10);
    let moved_default = max_motion(&mut app, plain, 75);
    assert!(
        moved_default > moved_still && moved_default < moved_swaying,
        "default idle {moved_default}, still {moved_still}, swaying {moved_swaying}"
    );
    assert!(errors(&mut app).is_empty());
}

#[test]
fn an_edited_character_file_is_applied_to_its_faces() {
    let dir = tempfile_dir("reload");
    write_character(&dir, "ada", "");
    let mut app = app(&dir);
    let server = app.world().resource::<AssetServer>().clone();
    let handle = server.load::<CharacterAsset>("ada.character.ron");
    let face = app
        .world_mut()
        .spawn((Character(handle.clone()), Sprite::default()))
        .id();
    wait_for_character(&mut app, face);
    settle(&mut app, 10);
    let before = face_pixels(&app, face);
    assert!(app.world().get::<IdleMotion>(face).is_none());
    assert_eq!(
        app.world().get::<EmotionState>(face).unwrap().label(),
        "own"
    );

    // Edit the loaded asset, as a hot reload does (Assets::get_mut sends Modified).
    let red = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(solid_image([200, 30, 30, 255]));
    let idle = IdleSettings {
        seed: 3,
        sway: 0.05,
        ..Default::default()
    };
    {
        let mut assets = app.world_mut().resource_mut::<Assets<CharacterAsset>>();
        let mut asset = assets.get_mut(&handle).unwrap();
        asset.portrait = red.clone();
        asset.idle = Some(idle.clone());
        asset.default_emotion = Some(DefaultEmotion {
            emotion: "happy".into(),
            intensity: 1.0,
        });
    }
    settle(&mut app, 10);
    let world = app.world();
    assert_eq!(world.get::<FacePortrait>(face).unwrap().image, red);
    assert_eq!(world.get::<IdleMotion>(face), Some(&IdleMotion(idle)));
    let label = world.get::<EmotionState>(face).unwrap().label();
    assert!(label.starts_with("happy"), "{label}");
    // The texture shows the new portrait.
    let after = face_pixels(&app, face);
    assert_ne!(after, before);
    let centre = (128 * 256 + 128) * 4;
    assert_eq!(&after[centre..centre + 3], &[200, 30, 30], "centre pixel");

    // Removing the idle settings again returns the face to the default idle.
    {
        let mut assets = app.world_mut().resource_mut::<Assets<CharacterAsset>>();
        assets.get_mut(&handle).unwrap().idle = None;
    }
    settle(&mut app, 3);
    assert!(app.world().get::<IdleMotion>(face).is_none());
    assert!(errors(&mut app).is_empty());
}

fn solid_image(rgba: [u8; 4]) -> Image {
    Image::new_fill(
        Extent3d {
            width: 64,
            height: 64,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &rgba,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

#[test]
fn a_baked_track_drives_the_mouth_and_rests_it_past_its_end() {
    let dir = tempfile_dir("track");
    // 0.4 s of a wide-open mouth: the line's leading silence, where the audio would keep
    // the mouth shut. The voiced part after it is past the track's end.
    let open = MotionFrame {
        mouth: MouthControls {
            jaw_open: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    MotionTrack::new(vec![open; 10])
        .save(dir.join("open.track.ron"))
        .unwrap();
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 10);
    let rest = face_pixels(&app, face);
    let track = app
        .world()
        .resource::<AssetServer>()
        .load::<MotionTrackAsset>("open.track.ron");
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    let (trace, done) = play(
        &mut app,
        face,
        Speak::new(face, line).with_track(track),
        &rest,
    );
    assert!(done, "{trace:?}; errors {:?}", errors(&mut app));
    let silent_open = trace
        .iter()
        .filter(|t| (0.12..0.36).contains(&t.0))
        .collect::<Vec<_>>();
    let voiced = trace
        .iter()
        .filter(|t| (0.52..1.08).contains(&t.0))
        .collect::<Vec<_>>();
    assert!(silent_open.len() >= 4 && voiced.len() >= 10, "{trace:?}");
    assert!(
        silent_open.iter().all(|t| t.2 > 2.0),
        "baked open mouth not shown during the silence: {trace:?}"
    );
    assert!(
        voiced.iter().all(|t| t.2 < 2.0),
        "mouth moved past the track's end (audio analysed?): {trace:?}"
    );
    assert!(errors(&mut app).is_empty());
}

#[test]
fn a_broken_track_is_reported_and_the_line_plays_from_its_audio() {
    let dir = tempfile_dir("bad-track");
    std::fs::write(
        dir.join("bad.track.ron"),
        "(fps: 25.0, frames: [(mouth: 3)])",
    )
    .unwrap();
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 10);
    let rest = face_pixels(&app, face);
    let track = app
        .world()
        .resource::<AssetServer>()
        .load::<MotionTrackAsset>("bad.track.ron");
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_track(track));
    let mut errs = Vec::new();
    let mut moved = false;
    for _ in 0..50 {
        step(&mut app);
        errs.extend(errors(&mut app));
        moved |= mouth_diff(&face_pixels(&app, face), &rest) > 2.0;
    }
    assert!(
        errs.iter().any(|e| e.message.contains("bad.track.ron")),
        "{errs:?}"
    );
    assert!(moved, "the line did not play from its audio");
}

/// Plays the test line with a renderer that takes 70 ms a frame (under 25 fps): returns
/// (frames dropped or late while the line played, seconds it waited for render-ahead).
fn play_with_slow_renderer(render_ahead: bool) -> (u64, Option<f32>) {
    let dir = tempfile_dir(&format!("render-ahead-{render_ahead}"));
    let settings = EdTalkSettings {
        render_ahead,
        max_render_ahead_wait: 5.0,
        ..test_settings(true)
    };
    let mut app = app_with_settings(&dir, settings);
    let face = spawn_face(&mut app);
    settle(&mut app, 5);
    set_min_frame_time(app.world_mut(), std::time::Duration::from_millis(70));
    // Idle motion keeps the worker rendering, so it has measured its speed.
    for _ in 0..15 {
        realtime_step(&mut app);
    }
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut()
        .write_message(Speak::new(face, line).with_tag("slow"));
    let mut waited = None;
    let mut at_start = None;
    for _ in 0..200 {
        realtime_step(&mut app);
        let world = app.world_mut();
        if let Some(r) = world.resource_mut::<Messages<SpeechReady>>().drain().last() {
            waited = Some(r.waited);
        }
        let diag = world.resource::<EdTalkDiagnostics>().clone();
        let missed = diag.frames_dropped + diag.frames_late;
        if world
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .any(|m| m.tag == "slow")
        {
            at_start = Some(missed);
        }
        if world
            .resource_mut::<Messages<SpeechFinished>>()
            .drain()
            .any(|m| m.tag == "slow")
        {
            let started = at_start.expect("SpeechStarted before SpeechFinished");
            assert!(errors(&mut app).is_empty());
            return (missed - started, waited);
        }
    }
    panic!("the line never finished: {:?}", errors(&mut app));
}

#[test]
fn render_ahead_a_slow_renderer_drops_no_frames_of_the_played_line() {
    let (missed, waited) = play_with_slow_renderer(true);
    let waited = waited.expect("SpeechReady");
    eprintln!("render-ahead: waited {waited:.2} s, {missed} frames missed");
    // 40 frames at 70 ms with playback at 40 ms a frame: about 20 frames ahead.
    assert!((0.5..3.0).contains(&waited), "waited {waited} s");
    assert_eq!(missed, 0, "frames dropped or late while the line played");
    // The same line without render-ahead starts at once and misses frames: the check
    // above can fail.
    let (missed, waited) = play_with_slow_renderer(false);
    assert_eq!(waited, None);
    eprintln!("without render-ahead: {missed} frames missed");
    assert!(
        missed >= 5,
        "without render-ahead only {missed} frames were missed"
    );
}

#[test]
fn idle_faces_on_a_slow_renderer_are_paced_not_dropped() {
    let dir = tempfile_dir("idle-paced");
    let mut app = app_with_idle(&dir, true);
    let faces: Vec<Entity> = (0..3).map(|_| spawn_face(&mut app)).collect();
    settle(&mut app, 5);
    // 120 ms a frame for three idle faces that each want 25 frames a second.
    set_min_frame_time(app.world_mut(), std::time::Duration::from_millis(120));
    // Requests made before the worker measured its new speed go stale: let them pass.
    for _ in 0..60 {
        realtime_step(&mut app);
    }
    let diag = |app: &App| app.world().resource::<EdTalkDiagnostics>().clone();
    let before = diag(&app);
    let mut changes = vec![0usize; faces.len()];
    let mut last: Vec<Vec<u8>> = faces.iter().map(|&f| face_pixels(&app, f)).collect();
    for _ in 0..100 {
        realtime_step(&mut app);
        for (i, &f) in faces.iter().enumerate() {
            let now = face_pixels(&app, f);
            if now != last[i] {
                changes[i] += 1;
                last[i] = now;
            }
        }
    }
    let after = diag(&app);
    let (dropped, rendered) = (
        after.frames_dropped - before.frames_dropped,
        after.frames_rendered - before.frames_rendered,
    );
    eprintln!("paced idle: {rendered} rendered, {dropped} dropped, changes {changes:?}");
    assert_eq!(dropped, 0, "idle frames rendered and never shown");
    // 4 s at 120 ms a frame is ~33 frames for the three faces: the worker stays busy and
    // every face keeps moving.
    assert!(rendered >= 20, "{rendered} frames rendered");
    assert!(changes.iter().all(|&c| c >= 5), "face updates {changes:?}");
    assert!(errors(&mut app).is_empty());
}

/// A clip of `n` frames of `size` pixels, frame `i` a solid colour with red = 5 i.
fn striped_clip(n: usize, size: u32, seconds: f64) -> bevy_edtalk::clip::FaceClip {
    let frames: Vec<bevy_edtalk::render::FaceFrame> = (0..n)
        .map(|i| bevy_edtalk::render::FaceFrame {
            width: size,
            height: size,
            rgba: [(5 * i % 256) as u8, 90, 200, 255].repeat((size * size) as usize),
        })
        .collect();
    bevy_edtalk::clip::FaceClip::from_frames(&frames, 25.0, seconds, None).unwrap()
}

#[test]
fn face_clip_plays_its_frames_in_sync_with_the_audio_without_inference() {
    let dir = tempfile_dir("face-clip");
    let mut app = app(&dir);
    let face = spawn_face(&mut app);
    settle(&mut app, 10);
    let clip = app
        .world_mut()
        .resource_mut::<Assets<FaceClipAsset>>()
        .add(FaceClipAsset(striped_clip(40, 256, 1.6)));
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(test_line());
    app.world_mut()
        .write_message(Speak::new(face, line.clone()).with_clip(clip));
    let rendered_before = app.world().resource::<EdTalkDiagnostics>().frames_rendered;
    let (mut checked, mut wrong) = (0, Vec::new());
    let mut rendered_while_playing = rendered_before;
    for _ in 0..60 {
        step(&mut app);
        let Some(p) = playback_position(&app, face) else {
            continue;
        };
        rendered_while_playing = app.world().resource::<EdTalkDiagnostics>().frames_rendered;
        let expected = ((p * 25.0 + 1e-9).floor() as usize).min(39);
        let red = face_pixels(&app, face)[0] as usize;
        checked += 1;
        if red != 5 * expected % 256 {
            wrong.push((p, red, expected));
        }
    }
    assert!(checked >= 35, "checked {checked} frames");
    assert!(
        wrong.is_empty(),
        "frames not the clip's for the position: {wrong:?}"
    );
    let rendered = rendered_while_playing - rendered_before;
    assert_eq!(
        rendered, 0,
        "the worker rendered {rendered} frames for a baked line"
    );
    assert!(errors(&mut app).is_empty());

    // A clip of the wrong size is reported and the line is rendered instead.
    let small = app
        .world_mut()
        .resource_mut::<Assets<FaceClipAsset>>()
        .add(FaceClipAsset(striped_clip(40, 64, 1.6)));
    app.world_mut()
        .write_message(Speak::new(face, line).with_clip(small));
    let mut reported = Vec::new();
    for _ in 0..15 {
        step(&mut app);
        reported.extend(errors(&mut app));
    }
    assert!(
        reported.iter().any(|e| e.message.contains("64x64")),
        "{reported:?}"
    );
    assert!(
        playback_position(&app, face).is_some(),
        "the line still plays"
    );
}
