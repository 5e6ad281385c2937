//! Baked motion tracks (`edtalk bake`) as Bevy assets, for [`super::Speak::with_track`].

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, LoadContext};
use bevy::prelude::*;

use super::assets::{AssetFileError, read_text};
use crate::motion::MotionTrack;

/// A baked motion track (`*.track.ron`, the RON `edtalk bake` writes; format in
/// [`MotionTrack`]).
#[derive(Asset, TypePath, Clone, Debug)]
pub struct MotionTrackAsset(pub MotionTrack);

/// Loads `.track.ron` files, validated at load (frame rate, finite numbers).
#[derive(Default, TypePath)]
pub struct MotionTrackLoader;

impl AssetLoader for MotionTrackLoader {
    type Asset = MotionTrackAsset;
    type Settings = ();
    type Error = AssetFileError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<MotionTrackAsset, AssetFileError> {
        let (text, path) = read_text(reader, ctx).await?;
        let invalid = |message: String| AssetFileError::Invalid {
            path: path.clone(),
            message,
        };
        // The track's own errors already carry the file, line and column.
        MotionTrack::from_ron(&text, &path)
            .map(MotionTrackAsset)
            .map_err(|e| invalid(e.to_string()))
    }

    fn extensions(&self) -> &[&str] {
        &["track.ron"]
    }
}
