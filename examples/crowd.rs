//! crowd: sixteen characters from the bundled cast, talking in turn, with the plugin's
//! diagnostics (inference time, dropped and late frames) on screen.
//!
//! `cargo run --example crowd`

mod common;

use bevy::prelude::*;
use bevy_edtalk::motion::Emotion;
use bevy_edtalk::plugin::*;

const CAST: [&str; 5] = ["ada", "bram", "cleo", "dax", "edith"];
const LINES: [&str; 3] = [
    "voice/greeting.ogg",
    "voice/warning.ogg",
    "voice/farewell.ogg",
];

#[derive(Resource)]
struct Crowd {
    faces: Vec<Entity>,
    lines: Vec<Handle<VoiceLine>>,
    turn: usize,
    next_at: f32,
}

#[derive(Component)]
struct Stats;

fn main() {
    App::new()
        .add_plugins((
            DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "bevy_edtalk: crowd".into(),
                    resolution: (1000, 1000).into(),
                    ..default()
                }),
                ..default()
            }),
            EdTalkPlugin::default(),
            common::EnvScreenshotPlugin,
        ))
        .insert_resource(ClearColor(Color::srgb(0.07, 0.07, 0.09)))
        .add_systems(Startup, setup)
        .add_systems(Update, (take_turns, stats))
        .run();
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    commands.spawn(Camera2d);
    let mut faces = Vec::new();
    for i in 0..16 {
        let (col, row) = ((i % 4) as f32, (i / 4) as f32);
        let name = CAST[i % CAST.len()];
        let emotion = Emotion::ALL[i % Emotion::ALL.len()];
        let e = commands
            .spawn((
                Character(assets.load(format!("characters/{name}.character.ron"))),
                Sprite {
                    custom_size: Some(Vec2::splat(220.0)),
                    ..default()
                },
                Transform::from_xyz(-345.0 + col * 230.0, 330.0 - row * 230.0, 0.0),
            ))
            .id();
        // Each starts in its own mood (set after the character file applied its default).
        commands
            .entity(e)
            .insert(EmotionState::emotion(emotion, 0.6));
        faces.push(e);
    }
    commands.insert_resource(Crowd {
        faces,
        lines: LINES.iter().map(|l| assets.load(*l)).collect(),
        turn: 0,
        next_at: 1.0,
    });
    commands.spawn((
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(16.0),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.6)),
        Node {
            position_type: PositionType::Absolute,
            top: Val::Px(6.0),
            left: Val::Px(6.0),
            padding: UiRect::all(Val::Px(6.0)),
            ..default()
        },
        Stats,
    ));
}

/// Every 1.5 s the next character starts a line (lines overlap a little).
fn take_turns(mut crowd: ResMut<Crowd>, time: Res<Time>, mut speak: MessageWriter<Speak>) {
    if time.elapsed_secs() < crowd.next_at {
        return;
    }
    crowd.next_at = time.elapsed_secs() + 1.5;
    let face = crowd.faces[crowd.turn % crowd.faces.len()];
    let line = crowd.lines[crowd.turn % crowd.lines.len()].clone();
    speak.write(Speak::new(face, line));
    crowd.turn += 1;
}

fn stats(diag: Res<EdTalkDiagnostics>, mut text: Query<&mut Text, With<Stats>>) {
    if let Ok(mut text) = text.single_mut() {
        let backend = diag.backend.map_or("starting".into(), |b| b.to_string());
        text.0 = format!(
            "{backend} | inference {:.2} ms/face ({:.0} faces/s) | rendered {} shown {} \
             dropped {} skipped {} late {} | worker restarts {}",
            diag.inference_ms_per_frame,
            diag.inference_fps,
            diag.frames_rendered,
            diag.frames_shown,
            diag.frames_dropped,
            diag.frames_skipped,
            diag.frames_late,
            diag.worker_restarts,
        );
    }
}
