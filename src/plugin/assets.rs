//! Asset loaders: voice lines (decoded once, off the main thread), RON character files and
//! RON emotion scripts.

use std::sync::Arc;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use serde::Deserialize;

use super::BackendChoice;
use crate::motion::Emotion;
use crate::render::rig::FaceRig;

/// Longest voice line accepted; longer files are rejected instead of filling memory.
pub const MAX_LINE_SECONDS: f64 = 600.0;

/// A decoded voice line: mono samples at the file's rate.
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

async fn read_all(
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

/// Parses RON with errors that carry the file, line and column.
pub(crate) fn parse_ron<T: for<'de> Deserialize<'de>>(
    text: &[u8],
    path: &str,
) -> Result<T, RonAssetError> {
    ron::Options::default()
        .from_bytes(text)
        .map_err(|e| RonAssetError::ron(path, e))
}

/// Decodes voice lines (wav, ogg/vorbis, mp3, flac) with kira's decoder.
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

/// Decodes an encoded voice line to mono.
pub(crate) fn decode_voice(bytes: Vec<u8>, path: &str) -> Result<VoiceLine, RonAssetError> {
    let invalid = |message: String| RonAssetError::Invalid {
        path: path.to_string(),
        message,
    };
    if bytes.is_empty() {
        return Err(invalid("empty file".into()));
    }
    let data = kira::sound::static_sound::StaticSoundData::from_cursor(std::io::Cursor::new(bytes))
        .map_err(|e| invalid(format!("not a playable audio file: {e}")))?;
    let seconds = data.frames.len() as f64 / data.sample_rate.max(1) as f64;
    if seconds > MAX_LINE_SECONDS {
        return Err(invalid(format!(
            "{seconds:.0} s long; voice lines are limited to {MAX_LINE_SECONDS:.0} s"
        )));
    }
    if data.frames.is_empty() {
        return Err(invalid("no audio samples".into()));
    }
    let samples: Arc<[f32]> = data
        .frames
        .iter()
        .map(|f| {
            let m = 0.5 * (f.left + f.right);
            if m.is_finite() { m.clamp(-1.0, 1.0) } else { 0.0 }
        })
        .collect();
    Ok(VoiceLine {
        samples,
        sample_rate: data.sample_rate,
    })
}

/// Emotion at a point of a script, or a character's default.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct EmotionKey {
    /// Seconds from the line's start.
    #[serde(default)]
    pub at: f32,
    /// One of the eight emotion names.
    pub emotion: String,
    /// 0..1 (above 1 exaggerates).
    #[serde(default = "one")]
    pub intensity: f32,
    /// Seconds to blend from the previous expression.
    #[serde(default = "default_blend")]
    pub blend: f32,
}

fn one() -> f32 {
    1.0
}
fn default_blend() -> f32 {
    0.3
}

/// An emotion timeline for a line: `(keys: [(at: 0.0, emotion: "happy"), ...])`.
#[derive(Asset, TypePath, Clone, Debug, Deserialize, PartialEq)]
pub struct EmotionScriptAsset {
    pub keys: Vec<EmotionKey>,
}

impl EmotionScriptAsset {
    /// Checks names, numbers and order; sorts keys by time.
    fn validated(mut self, path: &str) -> Result<Self, RonAssetError> {
        for (i, k) in self.keys.iter().enumerate() {
            if Emotion::from_name(&k.emotion).is_none() {
                return Err(RonAssetError::Invalid {
                    path: path.into(),
                    message: format!(
                        "key {i}: unknown emotion {:?}; expected one of {}",
                        k.emotion,
                        emotion_names()
                    ),
                });
            }
            if !(k.at.is_finite() && k.intensity.is_finite() && k.blend.is_finite()) {
                return Err(RonAssetError::Invalid {
                    path: path.into(),
                    message: format!("key {i}: at, intensity and blend must be finite numbers"),
                });
            }
        }
        self.keys.sort_by(|a, b| a.at.total_cmp(&b.at));
        Ok(self)
    }
}

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
        let bytes = read_all(reader, ctx).await?;
        let path = ctx.path().to_string();
        parse_ron::<EmotionScriptAsset>(&bytes, &path)?.validated(&path)
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
    default_emotion: Option<EmotionKey>,
    #[serde(default)]
    backend: Option<BackendChoice>,
}

/// A character: portrait (+ crop, rig), default emotion, backend preference.
///
/// ```ron
/// (
///     name: "Ada",
///     portrait: "portraits/ada.png",
///     rig: Some("portraits/ada.rig.ron"),
///     default_emotion: Some((emotion: "happy", intensity: 0.4)),
/// )
/// ```
#[derive(Asset, TypePath, Clone, Debug)]
pub struct CharacterAsset {
    pub name: String,
    pub portrait: Handle<Image>,
    pub crop: Option<[u32; 4]>,
    pub rig: Option<FaceRig>,
    pub default_emotion: Option<EmotionKey>,
    /// Preference only: the plugin runs one backend for all faces (its settings').
    pub backend: Option<BackendChoice>,
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
        let rig = match &file.rig {
            Some(rig_path) => {
                let rig_bytes = ctx.read_asset_bytes(rig_path.as_str()).await.map_err(|e| {
                    RonAssetError::Invalid {
                        path: path.clone(),
                        message: format!("rig {rig_path}: {e}"),
                    }
                })?;
                Some(parse_ron::<FaceRig>(&rig_bytes, rig_path)?)
            }
            None => None,
        };
        let portrait = ctx.load(file.portrait.as_str());
        Ok(CharacterAsset {
            name: file.name,
            portrait,
            crop: file.crop,
            rig,
            default_emotion: file.default_emotion,
            backend: file.backend,
        })
    }

    fn extensions(&self) -> &[&str] {
        &["character.ron"]
    }
}
