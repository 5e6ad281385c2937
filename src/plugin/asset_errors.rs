//! Load failures of the plugin's assets, forwarded as [`EdTalkError`]s with their kind.

use bevy::asset::AssetLoadFailedEvent;
use bevy::prelude::*;

use super::assets::{CharacterAsset, EmotionScriptAsset, VoiceLine};
use super::messages::{EdTalkError, EdTalkErrorKind};
use super::runtime::report;
use super::track_asset::MotionTrackAsset;

/// Reports that the plugin's assets failed to load, with the kind of asset.
pub(crate) fn report_asset_errors(
    mut lines: MessageReader<AssetLoadFailedEvent<VoiceLine>>,
    mut scripts: MessageReader<AssetLoadFailedEvent<EmotionScriptAsset>>,
    mut characters: MessageReader<AssetLoadFailedEvent<CharacterAsset>>,
    mut tracks: MessageReader<AssetLoadFailedEvent<MotionTrackAsset>>,
    mut images: MessageReader<AssetLoadFailedEvent<Image>>,
    mut errors: MessageWriter<EdTalkError>,
) {
    use EdTalkErrorKind::*;
    let failures: Vec<(EdTalkErrorKind, String)> = lines
        .read()
        .map(|e| (Audio, e.error.to_string()))
        .chain(scripts.read().map(|e| (Script, e.error.to_string())))
        .chain(characters.read().map(|e| (Character, e.error.to_string())))
        .chain(tracks.read().map(|e| (Script, e.error.to_string())))
        .chain(images.read().map(|e| (Portrait, e.error.to_string())))
        .collect();
    for (kind, m) in failures {
        // Bevy's error text may carry a backtrace: the first line says what went wrong.
        let first = m.lines().next().unwrap_or_default().to_string();
        report(&mut errors, None, kind, first);
    }
}
