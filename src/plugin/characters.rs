//! Character files on entities: the first application once the file has loaded, and hot
//! reload when it changes.

use bevy::prelude::*;

use super::assets::{CharacterAsset, DefaultEmotion};
use super::components::{Character, EmotionState, EmotionTarget, FacePortrait, IdleMotion};
use super::runtime::modified_ids;
use crate::motion::EmotionMix;

/// The file's default emotion when it was last applied, so a reload only moves the face
/// when the file's default changed (not every time any field is edited).
#[derive(Component, Clone, Debug, Default)]
pub(crate) struct AppliedDefaultEmotion(Option<DefaultEmotion>);

fn portrait_of(asset: &CharacterAsset) -> FacePortrait {
    FacePortrait {
        image: asset.portrait.clone(),
        rig: asset.rig.clone(),
        crop: asset.crop,
        align: asset.align.clone(),
        paste_back: asset.paste_back,
    }
}

/// The file's default emotion as a request, resolved by the plugin against the game's
/// emotion library (an unknown name is reported then, with the entity).
fn emotion_of(asset: &CharacterAsset) -> EmotionState {
    asset
        .default_emotion
        .as_ref()
        .map(|k| {
            EmotionState::new(EmotionTarget::Mix(EmotionMix::single(
                k.emotion.clone(),
                k.intensity,
            )))
        })
        .unwrap_or_default()
}

fn apply_idle(e: &mut EntityCommands, asset: &CharacterAsset) {
    match &asset.idle {
        Some(settings) => {
            e.insert(IdleMotion(settings.clone()));
        }
        None => {
            e.remove::<IdleMotion>();
        }
    }
}

/// Turns loaded [`Character`] assets into portraits, emotion states and idle settings.
pub(crate) fn apply_characters(
    mut commands: Commands,
    characters: Res<Assets<CharacterAsset>>,
    query: Query<(Entity, &Character, Has<EmotionState>), Without<FacePortrait>>,
) {
    for (entity, character, has_emotion) in &query {
        let Some(asset) = characters.get(&character.0) else {
            continue;
        };
        let mut e = commands.entity(entity);
        e.insert((
            portrait_of(asset),
            AppliedDefaultEmotion(asset.default_emotion.clone()),
        ));
        apply_idle(&mut e, asset);
        // An emotion the game set on the entity wins over the file's default.
        if !has_emotion {
            e.insert(emotion_of(asset));
        }
    }
}

/// A face made from a character file, with what was applied to it.
type CharacterFace = (
    Entity,
    &'static Character,
    &'static FacePortrait,
    Option<&'static AppliedDefaultEmotion>,
    Option<&'static IdleMotion>,
);

/// Hot reload: re-applies a modified character file to the faces made from it.
pub(crate) fn reload_characters(
    mut commands: Commands,
    mut events: MessageReader<AssetEvent<CharacterAsset>>,
    characters: Res<Assets<CharacterAsset>>,
    query: Query<CharacterFace>,
) {
    let modified = modified_ids(&mut events);
    if modified.is_empty() {
        return;
    }
    for (entity, character, current, applied, idle) in &query {
        let id = character.0.id();
        if !modified.contains(&id) {
            continue;
        }
        let Some(asset) = characters.get(id) else {
            continue;
        };
        let mut e = commands.entity(entity);
        let portrait = portrait_of(asset);
        // Replacing the component re-registers the face; skip it when nothing changed.
        if current.image != portrait.image
            || current.rig != portrait.rig
            || current.crop != portrait.crop
            || current.align != portrait.align
            || current.paste_back != portrait.paste_back
        {
            e.insert(portrait);
        }
        if asset.idle.as_ref() != idle.map(|i| &i.0) {
            apply_idle(&mut e, asset);
        }
        let emotion_changed = applied
            .as_ref()
            .is_none_or(|a| a.0 != asset.default_emotion);
        if emotion_changed {
            e.insert((
                emotion_of(asset),
                AppliedDefaultEmotion(asset.default_emotion.clone()),
            ));
        }
        if asset.backend.is_some() {
            debug!(
                "bevy_edtalk: {}: backend preference is not hot-reloaded (one backend for all faces)",
                asset.name
            );
        }
    }
}
