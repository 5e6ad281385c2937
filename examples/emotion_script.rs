//! emotion_script: a short dialogue between two characters. Who says what, and the emotion
//! timeline of each line, come from RON files in assets/ (dialogue/inn.dialogue.ron,
//! voice/*.emotion.ron). The listener reacts with a milder emotion of its own.
//!
//! `cargo run --example emotion_script`

mod common;

use std::collections::BTreeMap;

use bevy::prelude::*;
use bevy_edtalk::motion::Emotion;
use bevy_edtalk::plugin::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Dialogue {
    cast: BTreeMap<String, String>,
    lines: Vec<LineSpec>,
}

#[derive(Deserialize)]
struct LineSpec {
    speaker: String,
    audio: String,
    script: Option<String>,
    text: String,
}

/// Speaker, audio, emotion script, subtitle.
type Line = (
    Entity,
    Handle<VoiceLine>,
    Option<Handle<EmotionScriptAsset>>,
    String,
);

#[derive(Resource)]
struct Scene {
    speakers: BTreeMap<String, Entity>,
    lines: Vec<Line>,
    next: usize,
    idle_until: f32,
}

#[derive(Component)]
struct Caption;

fn main() {
    App::new()
        .add_plugins((
            DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "bevy_edtalk: emotion_script".into(),
                    resolution: (1100, 640).into(),
                    ..default()
                }),
                ..default()
            }),
            EdTalkPlugin::default(),
            common::EnvScreenshotPlugin,
        ))
        .insert_resource(ClearColor(Color::srgb(0.12, 0.1, 0.09)))
        .add_systems(Startup, setup)
        .add_systems(Update, (next_line, captions))
        .run();
}

fn setup(mut commands: Commands, assets: Res<AssetServer>) {
    commands.spawn(Camera2d);
    let text = include_str!("../assets/dialogue/inn.dialogue.ron");
    let dialogue: Dialogue = ron::from_str(text).expect("bundled dialogue is valid RON");
    let mut speakers = BTreeMap::new();
    for (i, (name, file)) in dialogue.cast.iter().enumerate() {
        let x = if i == 0 { -260.0 } else { 260.0 };
        let e = commands
            .spawn((
                Character(assets.load(file.clone())),
                Sprite {
                    custom_size: Some(Vec2::splat(420.0)),
                    ..default()
                },
                Transform::from_xyz(x, 40.0, 0.0),
            ))
            .id();
        speakers.insert(name.clone(), e);
    }
    let lines = dialogue
        .lines
        .into_iter()
        .filter_map(|l| {
            let speaker = *speakers.get(&l.speaker)?;
            Some((
                speaker,
                assets.load(l.audio),
                l.script.map(|s| assets.load(s)),
                l.text,
            ))
        })
        .collect();
    commands.insert_resource(Scene {
        speakers,
        lines,
        next: 0,
        idle_until: 1.0,
    });
    commands.spawn((
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(22.0),
            ..default()
        },
        TextLayout::justify(Justify::Center),
        Node {
            position_type: PositionType::Absolute,
            bottom: Val::Px(30.0),
            left: Val::Px(40.0),
            right: Val::Px(40.0),
            ..default()
        },
        Caption,
    ));
}

/// Starts the next line when nobody is speaking; loops after a pause.
fn next_line(
    mut scene: ResMut<Scene>,
    faces: Query<&TalkingFace>,
    time: Res<Time>,
    mut speak: MessageWriter<Speak>,
    mut emote: MessageWriter<SetEmotion>,
) {
    let speaking = faces.iter().any(|f| f.line_position.is_some());
    if speaking {
        scene.idle_until = time.elapsed_secs() + 0.6;
        return;
    }
    if time.elapsed_secs() < scene.idle_until || scene.lines.is_empty() {
        return;
    }
    let (speaker, line, script, text) = scene.lines[scene.next % scene.lines.len()].clone();
    let mut msg = Speak::new(speaker, line).with_tag(text);
    if let Some(script) = script {
        msg = msg.with_script(script);
    }
    speak.write(msg);
    // The listener softens into attentive interest.
    for (_, &other) in scene.speakers.iter().filter(|(_, e)| **e != speaker) {
        emote.write(SetEmotion::with_intensity(other, Emotion::Happy, 0.3).over(0.8));
    }
    scene.next += 1;
    scene.idle_until = time.elapsed_secs() + 2.0;
}

fn captions(mut started: MessageReader<SpeechStarted>, mut text: Query<&mut Text, With<Caption>>) {
    if let (Some(s), Ok(mut text)) = (started.read().last(), text.single_mut()) {
        text.0 = s.tag.clone();
    }
}
