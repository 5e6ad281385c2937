//! Asset loaders: voice lines (decoded once, off the main thread), RON character files and
//! RON emotion scripts.

use std::sync::Arc;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use serde::Deserialize;

use super::BackendChoice;
use crate::audio::DecodeOptions;
use crate::motion::{Emotion, EmotionLibrary, EmotionScript, IdleSettings};
use crate::render::rig::FaceRig;

/// A decoded voice line: 16 kHz mono samples (what lip-sync needs, and what is played).
#[derive(Asset, TypePath, Clone, Debug)]
pub struct VoiceLine {
    pub samples: Arc<[f32]>,
    pub sample_rate: u32,
}

impl VoiceLine {
    /// Length in seconds.
    pub fn duration(&self) -> f32 {
        self.samples.len() as f32 / self.sample_rate.max(1) as f32
    }
}

/// Errors of the plugin's asset loaders. Each names the asset path.
#[derive(Debug, thiserror::Error)]
pub enum RonAssetError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Ron {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl RonAssetError {
    fn ron(path: &str, e: ron::error::SpannedError) -> Self {
        RonAssetError::Ron {
            path: path.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        }
    }
}

pub(crate) async fn read_all(
    reader: &mut dyn Reader,
    ctx: &LoadContext<'_>,
) -> Result<Vec<u8>, RonAssetError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| RonAssetError::Io {
            path: ctx.path().to_string(),
            source,
        })?;
    Ok(bytes)
}

/// A text asset's contents and its path, for loaders that parse text themselves.
pub(crate) async fn read_text(
    reader: &mut dyn Reader,
    ctx: &LoadContext<'_>,
) -> Result<(String, String), RonAssetError> {
    let bytes = read_all(reader, ctx).await?;
    let path = ctx.path().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, path)),
        Err(e) => Err(RonAssetError::Invalid {
            message: format!("not UTF-8: {e}"),
            path,
        }),
    }
}

/// Parses RON with errors that carry the file, line and column.
pub(crate) fn parse_ron<T: for<'de> Deserialize<'de>>(
    text: &[u8],
    path: &str,
) -> Result<T, RonAssetError> {
    ron::Options::default()
        .from_bytes(text)
        .map_err(|e| RonAssetError::ron(path, e))
}

/// Decodes voice lines (wav, ogg/vorbis, mp3, flac) to 16 kHz mono with [`crate::audio`].
#[derive(Default, TypePath)]
pub struct VoiceLineLoader;

impl AssetLoader for VoiceLineLoader {
    type Asset = VoiceLine;
    type Settings = ();
    type Error = RonAssetError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<VoiceLine, RonAssetError> {
        let bytes = read_all(reader, ctx).await?;
        let path = ctx.path().to_string();
        decode_voice(bytes, &path)
    }

    fn extensions(&self) -> &[&str] {
        &["wav", "ogg", "mp3", "flac"]
    }
}

/// Decodes an encoded voice line (any rate and channel count) to 16 kHz mono.
pub(crate) fn decode_voice(bytes: Vec<u8>, path: &str) -> Result<VoiceLine, RonAssetError> {
    let decoded =
        crate::audio::decode_bytes(bytes, path, &DecodeOptions::default()).map_err(|e| {
            RonAssetError::Invalid {
                path: path.to_string(),
                message: e.to_string(),
            }
        })?;
    Ok(VoiceLine {
        samples: decoded.samples.into(),
        sample_rate: crate::audio::SAMPLE_RATE,
    })
}

/// A character's default emotion: `(emotion: "happy", intensity: 0.5)`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DefaultEmotion {
    /// One of the eight emotion names.
    pub emotion: String,
    /// 0..1 (above 1 exaggerates).
    #[serde(default = "one")]
    pub intensity: f32,
}

fn one() -> f32 {
    1.0
}

/// An emotion timeline for a line (`*.emotion.ron`; format in [`EmotionScript`]).
#[derive(Asset, TypePath, Clone, Debug)]
pub struct EmotionScriptAsset(pub EmotionScript);

pub(crate) fn emotion_names() -> String {
    Emotion::ALL.map(|e| e.name()).join(", ")
}

/// Loads `.emotion.ron` scripts.
#[derive(Default, TypePath)]
pub struct EmotionScriptLoader;

impl AssetLoader for EmotionScriptLoader {
    type Asset = EmotionScriptAsset;
    type Settings = ();
    type Error = RonAssetError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<EmotionScriptAsset, RonAssetError> {
        let (text, path) = read_text(reader, ctx).await?;
        let invalid = |message: String| RonAssetError::Invalid {
            path: path.clone(),
            message,
        };
        // The script's own errors already carry the file, line and column.
        let script = EmotionScript::parse(&text, &path).map_err(|e| invalid(e.to_string()))?;
        script
            .validate(&EmotionLibrary::new(), &path)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(EmotionScriptAsset(script))
    }

    fn extensions(&self) -> &[&str] {
        &["emotion.ron"]
    }
}

#[derive(Deserialize)]
struct CharacterFile {
    name: String,
    portrait: String,
    #[serde(default)]
    crop: Option<[u32; 4]>,
    #[serde(default)]
    rig: Option<String>,
    #[serde(default)]
    default_emotion: Option<DefaultEmotion>,
    #[serde(default)]
    backend: Option<BackendChoice>,
    #[serde(default)]
    idle: Option<IdleSettings>,
}

/// A character: portrait (+ crop, rig), default emotion, idle motion, backend preference.
///
/// ```ron
/// (
///     name: "Ada",
///     portrait: "portraits/ada.png",
///     rig: Some("portraits/ada.rig.ron"),
///     default_emotion: Some((emotion: "happy", intensity: 0.4)),
///     // Optional; fields left out take IdleSettings' defaults.
///     idle: Some((seed: 7, sway: 0.02, blink_interval: 5.0)),
/// )
/// ```
///
/// Edits to a loaded file (with the `file_watcher` feature) are applied to the entities
/// spawned from it; see [`super::Character`].
#[derive(Asset, TypePath, Clone, Debug)]
pub struct CharacterAsset {
    pub name: String,
    pub portrait: Handle<Image>,
    pub crop: Option<[u32; 4]>,
    pub rig: Option<FaceRig>,
    pub default_emotion: Option<DefaultEmotion>,
    /// Preference only: the plugin runs one backend for all faces (its settings').
    pub backend: Option<BackendChoice>,
    /// Idle head sway and blinks for this character (seed, sway in radians, mean seconds
    /// between blinks; `nod` is unused between lines). `None`: the plugin's default idle.
    pub idle: Option<IdleSettings>,
}

/// Loads `.character.ron` files (and the rig they name).
#[derive(Default, TypePath)]
pub struct CharacterLoader;

impl AssetLoader for CharacterLoader {
    type Asset = CharacterAsset;
    type Settings = ();
    type Error = RonAssetError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<CharacterAsset, RonAssetError> {
        let bytes = read_all(reader, ctx).await?;
        let path = ctx.path().to_string();
        let file: CharacterFile = parse_ron(&bytes, &path)?;
        if let Some(key) = &file.default_emotion
            && Emotion::from_name(&key.emotion).is_none()
        {
            return Err(RonAssetError::Invalid {
                path,
                message: format!(
                    "default_emotion: unknown emotion {:?}; expected one of {}",
                    key.emotion,
                    emotion_names()
                ),
            });
        }
        let rig = match file.rig.clone() {
            Some(rig_path) => {
                let rig_bytes = ctx.read_asset_bytes(rig_path.clone()).await.map_err(|e| {
                    RonAssetError::Invalid {
                        path: path.clone(),
                        message: format!("rig {rig_path}: {e}"),
                    }
                })?;
                let text = String::from_utf8_lossy(&rig_bytes);
                Some(
                    FaceRig::from_ron(&text, &rig_path).map_err(|e| RonAssetError::Invalid {
                        path: path.clone(),
                        message: format!("rig: {e}"),
                    })?,
                )
            }
            None => None,
        };
        let portrait = ctx.load(file.portrait.clone());
        Ok(CharacterAsset {
            name: file.name,
            portrait,
            crop: file.crop,
            rig,
            default_emotion: file.default_emotion,
            backend: file.backend,
            idle: file.idle,
        })
    }

    fn extensions(&self) -> &[&str] {
        &["character.ron"]
    }
}
