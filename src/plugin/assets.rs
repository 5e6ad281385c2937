//! Asset loaders: voice lines (decoded once, off the main thread), RON character files and
//! RON emotion scripts.

use std::sync::Arc;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;
use serde::Deserialize;

use super::align::PortraitAlign;
use super::settings::BackendChoice;
use crate::audio::{DecodeOptions, SourceAudio};
use crate::motion::{EmotionScript, IdleSettings};
use crate::render::rig::FaceRig;

/// A decoded voice line: 16 kHz mono samples for lip-sync, and (for files) the source's
/// own samples, which are what is played: at the file's rate and channels.
#[derive(Asset, TypePath, Clone, Debug)]
pub struct VoiceLine {
    /// Mono samples in -1..1, for analysis (and played when there is no `source`).
    pub samples: Arc<[f32]>,
    /// Their rate in Hz.
    pub sample_rate: u32,
    /// The file's own samples, played at full quality.
    pub source: Option<Arc<SourceAudio>>,
}

impl VoiceLine {
    /// A line from mono samples at `sample_rate` (played as they are).
    pub fn from_mono(samples: impl Into<Arc<[f32]>>, sample_rate: u32) -> Self {
        Self {
            samples: samples.into(),
            sample_rate,
            source: None,
        }
    }

    /// Length in seconds.
    pub fn duration(&self) -> f32 {
        self.samples.len() as f32 / self.sample_rate.max(1) as f32
    }
}

/// Errors of the plugin's asset loaders (voice lines, character files, emotion scripts,
/// motion tracks): the file could not be read, its RON does not parse, or its contents are
/// invalid. Each names the asset path (and line and column where the file has them).
#[derive(Debug, thiserror::Error)]
pub enum AssetFileError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// Asset path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The RON does not parse, or a value in it is out of range.
    #[error("{path}:{line}:{column}: {message}")]
    Ron {
        /// Asset path.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The contents are unusable (undecodable audio, a bad rig, a bad script key...).
    #[error("{path}: {message}")]
    Invalid {
        /// Asset path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl AssetFileError {
    fn ron(path: &str, e: ron::error::SpannedError) -> Self {
        AssetFileError::Ron {
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
) -> Result<Vec<u8>, AssetFileError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| AssetFileError::Io {
            path: ctx.path().to_string(),
            source,
        })?;
    Ok(bytes)
}

/// A text asset's contents and its path, for loaders that parse text themselves.
pub(crate) async fn read_text(
    reader: &mut dyn Reader,
    ctx: &LoadContext<'_>,
) -> Result<(String, String), AssetFileError> {
    let bytes = read_all(reader, ctx).await?;
    let path = ctx.path().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, path)),
        Err(e) => Err(AssetFileError::Invalid {
            message: format!("not UTF-8: {e}"),
            path,
        }),
    }
}

/// Parses RON with errors that carry the file, line and column.
pub(crate) fn parse_ron<T: for<'de> Deserialize<'de>>(
    text: &[u8],
    path: &str,
) -> Result<T, AssetFileError> {
    crate::motion::ron_options()
        .from_bytes(text)
        .map_err(|e| AssetFileError::ron(path, e))
}

/// Decodes voice lines (wav, ogg/vorbis, mp3, flac) to 16 kHz mono with [`crate::audio`].
#[derive(Default, TypePath)]
pub struct VoiceLineLoader;

impl AssetLoader for VoiceLineLoader {
    type Asset = VoiceLine;
    type Settings = ();
    type Error = AssetFileError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<VoiceLine, AssetFileError> {
        let bytes = read_all(reader, ctx).await?;
        let path = ctx.path().to_string();
        decode_voice(bytes, &path)
    }

    fn extensions(&self) -> &[&str] {
        &["wav", "ogg", "mp3", "flac"]
    }
}

/// Decodes an encoded voice line (any rate and channel count) to 16 kHz mono.
pub(crate) fn decode_voice(bytes: Vec<u8>, path: &str) -> Result<VoiceLine, AssetFileError> {
    let options = DecodeOptions {
        keep_source: true,
        ..Default::default()
    };
    let decoded =
        crate::audio::decode_bytes(bytes, path, &options).map_err(|e| AssetFileError::Invalid {
            path: path.to_string(),
            message: e.to_string(),
        })?;
    Ok(VoiceLine {
        samples: decoded.samples.into(),
        sample_rate: crate::audio::SAMPLE_RATE,
        source: decoded
            .source
            .filter(|s| s.sample_rate > 0 && !s.frames.is_empty())
            .map(Arc::new),
    })
}

/// A character's default emotion: `(emotion: "happy", intensity: 0.5)`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DefaultEmotion {
    /// An emotion name: one of the eight built-in ones, or a custom one from the
    /// [`super::Emotions`] library (checked when the character is applied).
    pub emotion: String,
    /// 0..1 (above 1 exaggerates, up to 2); a finite number (checked at load).
    #[serde(default = "one", deserialize_with = "finite_f32")]
    pub intensity: f32,
}

/// Deserializes a finite number: `inf` or `NaN` in a file is an error at its position.
fn finite_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f32::deserialize(d)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a finite number, found {v}"
        )))
    }
}

fn one() -> f32 {
    1.0
}

/// An emotion timeline for a line (`*.emotion.ron`; format in [`EmotionScript`]).
#[derive(Asset, TypePath, Clone, Debug)]
pub struct EmotionScriptAsset(pub EmotionScript);

/// Loads `.emotion.ron` scripts.
#[derive(Default, TypePath)]
pub struct EmotionScriptLoader;

impl AssetLoader for EmotionScriptLoader {
    type Asset = EmotionScriptAsset;
    type Settings = ();
    type Error = AssetFileError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<EmotionScriptAsset, AssetFileError> {
        let (text, path) = read_text(reader, ctx).await?;
        let invalid = |message: String| AssetFileError::Invalid {
            path: path.clone(),
            message,
        };
        // The script's own errors already carry the file, line and column. Emotion names
        // are checked when a line starts, against the game's library (custom emotions).
        let script = EmotionScript::parse(&text, &path).map_err(|e| invalid(e.to_string()))?;
        Ok(EmotionScriptAsset(script))
    }

    fn extensions(&self) -> &[&str] {
        &["emotion.ron"]
    }
}

/// A character file's `crop`: `Auto` (find and align the face) or a pixel rectangle
/// `(x, y, width, height)`.
#[derive(Clone, Debug, PartialEq)]
enum CropSpec {
    Auto,
    Rect([u32; 4]),
}

impl<'de> Deserialize<'de> for CropSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Rect([u32; 4]),
            Word(Word),
        }
        #[derive(Deserialize)]
        enum Word {
            Auto,
        }
        match Raw::deserialize(d) {
            Ok(Raw::Rect(r)) => Ok(CropSpec::Rect(r)),
            Ok(Raw::Word(Word::Auto)) => Ok(CropSpec::Auto),
            Err(_) => Err(serde::de::Error::custom(
                "crop: expected Auto or a rectangle (x, y, width, height) in pixels",
            )),
        }
    }
}

/// Hand-placed face points in image pixels, for art where no face is detected.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct AnchorsFile {
    left_eye: (f32, f32),
    right_eye: (f32, f32),
    mouth: (f32, f32),
}

#[derive(Deserialize)]
struct CharacterFile {
    name: String,
    portrait: String,
    #[serde(default)]
    crop: Option<CropSpec>,
    #[serde(default)]
    anchors: Option<AnchorsFile>,
    #[serde(default)]
    paste_back: bool,
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
///     // Optional: `Auto` finds and aligns the face in any picture; a rectangle
///     // `(x, y, width, height)` cuts the image first.
///     crop: Some(Auto),
///     // Optional: eye and mouth centres in image pixels, where no face is detected.
///     anchors: Some((left_eye: (410, 380), right_eye: (520, 378), mouth: (466, 520))),
///     // Optional: show the whole picture with the animated face pasted back.
///     paste_back: true,
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
    /// Display name.
    pub name: String,
    /// The portrait image.
    pub portrait: Handle<Image>,
    /// Pixel rectangle `[x, y, width, height]` cut from the portrait first.
    pub crop: Option<[u32; 4]>,
    /// Face alignment: `crop: Auto` in the file is [`PortraitAlign::Auto`], `anchors`
    /// is [`PortraitAlign::Anchors`].
    pub align: PortraitAlign,
    /// `paste_back: true`: the animated face is shown inside the whole portrait.
    pub paste_back: bool,
    /// Procedural face rig.
    pub rig: Option<FaceRig>,
    /// The face's emotion when it appears.
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
    type Error = AssetFileError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<CharacterAsset, AssetFileError> {
        let bytes = read_all(reader, ctx).await?;
        let path = ctx.path().to_string();
        let file: CharacterFile = parse_ron(&bytes, &path)?;
        let rig = match file.rig.clone() {
            Some(rig_path) => {
                let rig_bytes = ctx.read_asset_bytes(rig_path.clone()).await.map_err(|e| {
                    AssetFileError::Invalid {
                        path: path.clone(),
                        message: format!("rig {rig_path}: {e}"),
                    }
                })?;
                let text = String::from_utf8_lossy(&rig_bytes);
                Some(
                    FaceRig::from_ron(&text, &rig_path).map_err(|e| AssetFileError::Invalid {
                        path: path.clone(),
                        message: format!("rig: {e}"),
                    })?,
                )
            }
            None => None,
        };
        let portrait = ctx.load(file.portrait.clone());
        let (crop, align) = match (&file.crop, &file.anchors) {
            (_, Some(a)) => {
                let all = [a.left_eye, a.right_eye, a.mouth];
                if all.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
                    return Err(AssetFileError::Invalid {
                        path,
                        message: "anchors: every coordinate must be a finite number".into(),
                    });
                }
                let v = |p: (f32, f32)| Vec2::new(p.0, p.1);
                let rect = match file.crop {
                    Some(CropSpec::Rect(r)) => Some(r),
                    _ => None,
                };
                let align = PortraitAlign::Anchors {
                    left_eye: v(a.left_eye),
                    right_eye: v(a.right_eye),
                    mouth: v(a.mouth),
                };
                (rect, align)
            }
            (Some(CropSpec::Auto), None) => (None, PortraitAlign::Auto),
            (Some(CropSpec::Rect(r)), None) => (Some(*r), PortraitAlign::Off),
            (None, None) => (None, PortraitAlign::Off),
        };
        Ok(CharacterAsset {
            name: file.name,
            portrait,
            crop,
            align,
            paste_back: file.paste_back,
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
