//! tts_stream: a face speaking a live voice stream, the way a game plays text-to-speech.
//!
//! A producer thread pushes the audio in small chunks, at the pace a TTS engine would,
//! into a `VoiceStream`; `SpeakStream` makes the face speak it as it arrives. The
//! producer is `espeak-ng` when it is installed (its WAV output is read from the pipe
//! chunk by chunk, 22.05 kHz), else a bundled voice line streamed in 20-120 ms chunks.
//! Copy `produce_from_espeak` / `produce_from_file` for your own engine: all that matters
//! is `stream.push(&samples, rate, channels)` and `stream.finish()`.
//!
//! `cargo run --example tts_stream` (it speaks again after each stream; space: at once). `EDTALK_TTS_TEXT` sets what
//! espeak-ng says; `EDTALK_SCREENSHOT` works as in the other examples.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_edtalk::audio::{DecodeOptions, decode_file};
use bevy_edtalk::plugin::*;

const TEXT: &str =
    "Streaming speech works too: every word arrives in pieces, and my face keeps up.";
const FALLBACK_LINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/voice/greeting.ogg");

#[derive(Resource)]
struct Scene {
    npc: Entity,
    /// When to speak next (game seconds), if at all.
    next_at: Option<f32>,
}

#[derive(Component)]
struct Status;

fn main() {
    App::new()
        .add_plugins((
            DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "bevy_edtalk: tts_stream".into(),
                    resolution: (760, 700).into(),
                    ..default()
                }),
                ..default()
            }),
            EdTalkPlugin::default(),
            common::EnvScreenshotPlugin,
        ))
        .insert_resource(ClearColor(Color::srgb(0.08, 0.09, 0.12)))
        .add_systems(Startup, setup)
        .add_systems(
            Update,
            (speak_when_due, again_when_done, restart_on_space, status),
        )
        .run();
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    commands.spawn(Camera2d);
    let npc = commands
        .spawn((
            Character(assets.load("characters/cleo.character.ron")),
            Sprite {
                custom_size: Some(Vec2::splat(512.0)),
                ..default()
            },
            Transform::from_xyz(0.0, 40.0, 0.0),
        ))
        .id();
    commands.insert_resource(Scene {
        npc,
        next_at: Some(1.0),
    });
    commands.spawn((
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(20.0),
            ..default()
        },
        TextLayout::justify(Justify::Center),
        Node {
            position_type: PositionType::Absolute,
            bottom: Val::Px(24.0),
            left: Val::Px(30.0),
            right: Val::Px(30.0),
            ..default()
        },
        Status,
    ));
}

/// Opens a stream, hands it to the face and starts the producer thread.
fn speak_when_due(
    mut scene: ResMut<Scene>,
    time: Res<Time>,
    mut speak: MessageWriter<SpeakStream>,
) {
    if scene.next_at.is_none_or(|t| time.elapsed_secs() < t) {
        return;
    }
    scene.next_at = None;
    let stream = VoiceStream::new();
    speak.write(SpeakStream::new(scene.npc, &stream).with_tag("tts"));
    std::thread::spawn(move || {
        let text = std::env::var("EDTALK_TTS_TEXT").unwrap_or_else(|_| TEXT.into());
        if let Err(e) = produce_from_espeak(&stream, &text) {
            info!("tts_stream: espeak-ng unavailable ({e}); streaming {FALLBACK_LINE}");
            if let Err(e) = produce_from_file(&stream, FALLBACK_LINE) {
                error!("tts_stream: {e}");
            }
        }
        stream.finish();
    });
}

/// espeak-ng's WAV on stdout, pushed as it is read (4 KiB at a time: ~90 ms).
fn produce_from_espeak(stream: &VoiceStream, text: &str) -> Result<(), String> {
    let mut child = Command::new("espeak-ng")
        .args(["--stdout", text])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    // The header: rate and channels; espeak writes no length (it streams).
    let mut header = [0u8; 44];
    out.read_exact(&mut header).map_err(|e| e.to_string())?;
    if &header[0..4] != b"RIFF" || &header[36..40] != b"data" {
        return Err("espeak-ng did not write a plain WAV".into());
    }
    let channels = u16::from_le_bytes([header[22], header[23]]);
    let rate = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    let mut buf = vec![0u8; 4096];
    let mut carry: Option<u8> = None;
    loop {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let mut bytes: Vec<u8> = carry.take().into_iter().collect();
        bytes.extend_from_slice(&buf[..n]);
        if bytes.len() % 2 == 1 {
            carry = bytes.pop();
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
            .collect();
        if stream.push(&samples, rate, channels).is_err() {
            break; // The face stopped listening.
        }
    }
    let _ = child.wait();
    Ok(())
}

/// A bundled line, decoded at its own rate and channels and pushed in 20-120 ms chunks
/// in real time, as a TTS engine that synthesises as it speaks would.
fn produce_from_file(stream: &VoiceStream, path: &str) -> Result<(), String> {
    let options = DecodeOptions {
        keep_source: true,
        ..Default::default()
    };
    let decoded = decode_file(path, &options).map_err(|e| e.to_string())?;
    let source = decoded.source.ok_or("the file kept no source samples")?;
    let channels = source.channels.clamp(1, 2);
    let interleaved: Vec<f32> = source
        .frames
        .iter()
        .flat_map(|f| f[..channels].to_vec())
        .collect();
    let start = Instant::now();
    let (mut at, mut k) = (0usize, 0u32);
    while at < source.frames.len() {
        let ms = 20 + (k * 37) % 100;
        k += 1;
        let n = (source.sample_rate * ms / 1000) as usize;
        let end = (at + n).min(source.frames.len());
        if stream
            .push(
                &interleaved[at * channels..end * channels],
                source.sample_rate,
                channels as u16,
            )
            .is_err()
        {
            break;
        }
        at = end;
        // Stay about 150 ms ahead of real time, like a streaming synthesiser.
        let due = Duration::from_secs_f64(at as f64 / source.sample_rate as f64);
        if let Some(wait) = due.checked_sub(start.elapsed() + Duration::from_millis(150)) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// Speaks again 1.5 s after a stream finishes.
fn again_when_done(
    mut finished: MessageReader<SpeechFinished>,
    mut scene: ResMut<Scene>,
    time: Res<Time>,
) {
    if finished
        .read()
        .any(|f| f.entity == scene.npc && f.completed)
    {
        scene.next_at = Some(time.elapsed_secs() + 1.5);
    }
}

fn restart_on_space(keys: Res<ButtonInput<KeyCode>>, mut scene: ResMut<Scene>, time: Res<Time>) {
    if keys.just_pressed(KeyCode::Space) {
        scene.next_at = Some(time.elapsed_secs());
    }
}

fn status(
    scene: Res<Scene>,
    faces: Query<&TalkingFace>,
    mut errors: MessageReader<EdTalkError>,
    mut text: Single<&mut Text, With<Status>>,
    mut last_error: Local<String>,
) {
    for e in errors.read() {
        *last_error = e.message.clone();
    }
    let line = match faces.get(scene.npc).ok().and_then(|f| f.line_position) {
        Some(p) => format!("speaking a live stream: {p:.1} s played"),
        None => "waiting for the next stream (space: now)".into(),
    };
    let msg = if last_error.is_empty() {
        line
    } else {
        format!("{line}\n{}", *last_error)
    };
    if text.0 != msg {
        text.0 = msg;
    }
}
