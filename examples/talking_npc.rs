//! talking_npc: one character portrait on a quad, speaking a bundled voice line with
//! subtitles.
//!
//! Keys 1-8 switch emotion (angry, contempt, disgusted, fear, happy, neutral, sad,
//! surprised) with a smooth transition; space replays the line. The window title shows
//! the backend (procedural or neural) and the inference frame rate.
//!
//! `cargo run --example talking_npc`

mod common;

use bevy::prelude::*;
use bevy_edtalk::motion::Emotion;
use bevy_edtalk::plugin::*;

const LINE: &str = "voice/greeting.ogg";
const SCRIPT: &str = "voice/greeting.emotion.ron";
const SUBTITLE: &str = "Welcome, traveller. The road ahead is long, but the inn is warm.";

#[derive(Resource)]
struct Scene {
    npc: Entity,
    line: Handle<VoiceLine>,
    script: Handle<EmotionScriptAsset>,
}

#[derive(Component)]
struct Subtitle;

fn main() {
    App::new()
        .add_plugins((
            DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "bevy_edtalk: talking_npc".into(),
                    resolution: (900, 700).into(),
                    ..default()
                }),
                ..default()
            }),
            EdTalkPlugin::default(),
            common::EnvScreenshotPlugin,
        ))
        .insert_resource(ClearColor(Color::srgb(0.09, 0.08, 0.11)))
        .add_systems(Startup, setup)
        .add_systems(
            Update,
            (
                start_when_ready,
                keys.before(EdTalkSystems::Input),
                subtitles,
                title,
            ),
        )
        .run();
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    commands.spawn(Camera2d);
    // The face texture is 256 px; show it at 2x on a sprite quad with a simple frame.
    commands.spawn((
        Sprite::from_color(Color::srgb(0.55, 0.45, 0.3), Vec2::splat(532.0)),
        Transform::from_xyz(0.0, 40.0, -1.0),
    ));
    let npc = commands
        .spawn((
            Character(assets.load("characters/ada.character.ron")),
            Sprite {
                custom_size: Some(Vec2::splat(512.0)),
                ..default()
            },
            Transform::from_xyz(0.0, 40.0, 0.0),
        ))
        .id();
    commands.insert_resource(Scene {
        npc,
        line: assets.load(LINE),
        script: assets.load(SCRIPT),
    });
    commands.spawn((
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(24.0),
            ..default()
        },
        TextLayout::justify(Justify::Center),
        Node {
            position_type: PositionType::Absolute,
            bottom: Val::Px(28.0),
            left: Val::Px(40.0),
            right: Val::Px(40.0),
            ..default()
        },
        Subtitle,
    ));
    commands.spawn((
        Text::new("1-8: emotion (angry contempt disgusted fear happy neutral sad surprised)   space: replay"),
        TextFont {
            font_size: FontSize::Px(16.0),
            ..default()
        },
        TextColor(Color::srgb(0.7, 0.7, 0.75)),
        Node {
            position_type: PositionType::Absolute,
            top: Val::Px(10.0),
            left: Val::Px(12.0),
            ..default()
        },
    ));
}

/// Speaks once the face is set up (the first time) — then on space.
fn start_when_ready(
    scene: Res<Scene>,
    faces: Query<&TalkingFace>,
    mut speak: MessageWriter<Speak>,
    mut started: Local<bool>,
    time: Res<Time>,
) {
    if *started || time.elapsed_secs() < 0.5 {
        return;
    }
    if faces.get(scene.npc).is_ok() {
        *started = true;
        speak.write(say(&scene));
    }
}

fn say(scene: &Scene) -> Speak {
    Speak::new(scene.npc, scene.line.clone())
        .with_script(scene.script.clone())
        .with_tag(SUBTITLE)
}

fn keys(
    input: Res<ButtonInput<KeyCode>>,
    scene: Res<Scene>,
    mut speak: MessageWriter<Speak>,
    mut emote: MessageWriter<SetEmotion>,
) {
    const KEYS: [KeyCode; 8] = [
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
    ];
    for (key, emotion) in KEYS.iter().zip(Emotion::ALL) {
        if input.just_pressed(*key) {
            emote.write(SetEmotion::new(scene.npc, emotion).over(0.5));
        }
    }
    if input.just_pressed(KeyCode::Space) {
        speak.write(say(&scene));
    }
}

fn subtitles(
    mut started: MessageReader<SpeechStarted>,
    mut finished: MessageReader<SpeechFinished>,
    mut text: Query<&mut Text, With<Subtitle>>,
) {
    let Ok(mut text) = text.single_mut() else {
        return;
    };
    for s in started.read() {
        text.0 = s.tag.clone();
    }
    if finished.read().count() > 0 {
        text.0.clear();
    }
}

fn title(
    diag: Res<EdTalkDiagnostics>,
    mut windows: Query<&mut Window>,
    time: Res<Time>,
    mut last: Local<f32>,
) {
    if time.elapsed_secs() - *last < 0.5 {
        return;
    }
    *last = time.elapsed_secs();
    if let Ok(mut window) = windows.single_mut() {
        let backend = diag
            .backend
            .map_or("starting".to_string(), |b| b.to_string());
        window.title = format!(
            "bevy_edtalk: talking_npc | {backend} | {:.1} inference fps | {:.1} ms/face",
            diag.inference_fps, diag.inference_ms_per_frame
        );
    }
}
