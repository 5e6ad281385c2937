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

/// A baked face clip (`*.faceclip`, written by `edtalk bake-clip`), for
/// [`super::Speak::with_clip`]: the line's faces are played from it, with no inference.
#[derive(Asset, TypePath, Clone, Debug)]
pub struct FaceClipAsset(pub crate::clip::FaceClip);

/// Loads `.faceclip` files, checked whole at load (no pixels decoded until played).
#[derive(Default, TypePath)]
pub struct FaceClipLoader;

impl AssetLoader for FaceClipLoader {
    type Asset = FaceClipAsset;
    type Settings = ();
    type Error = AssetFileError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        ctx: &mut LoadContext<'_>,
    ) -> Result<FaceClipAsset, AssetFileError> {
        let bytes = super::assets::read_all(reader, ctx).await?;
        crate::clip::FaceClip::decode(&bytes)
            .map(FaceClipAsset)
            .map_err(|e| AssetFileError::Invalid {
                path: ctx.path().to_string(),
                message: e.to_string(),
            })
    }

    fn extensions(&self) -> &[&str] {
        &["faceclip"]
    }
}
