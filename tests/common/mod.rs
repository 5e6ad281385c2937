//! The headless plugin harness shared by the plugin test files: MinimalPlugins, asset +
//! image plugins, kira's mock backend and manual time (40 ms a frame, one face frame per
//! game frame). Each test file uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_edtalk::plugin::*;

/// Seconds per game frame.
pub const DT: f64 = 0.04;

/// The tests' settings: procedural renderer, one inference thread, mock audio.
pub fn test_settings(idle_motion: bool) -> EdTalkSettings {
    EdTalkSettings {
        backend: BackendChoice::Procedural,
        inference_threads: 1,
        prebuffer: 0.08,
        idle_motion,
        audio: AudioOutput::Mock {
            sample_rate: 1000,
            buffer: 10,
        },
        ..Default::default()
    }
}

/// A headless app with the procedural renderer, assets read from `assets_dir`.
pub fn app_with_idle(assets_dir: &Path, idle_motion: bool) -> App {
    app_with_settings(assets_dir, test_settings(idle_motion))
}

/// A headless app with these plugin settings, assets read from `assets_dir`.
pub fn app_with_settings(assets_dir: &Path, settings: EdTalkSettings) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: assets_dir.display().to_string(),
            ..Default::default()
        },
        ImagePlugin::default(),
        EdTalkPlugin { settings },
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs_f64(
        DT,
    )))
    // bevy_render registers the PNG loader; a headless app does it itself.
    .register_asset_loader(ImageLoader::new(CompressedImageFormats::empty()));
    app.finish();
    app.cleanup();
    app
}

/// [`app_with_idle`] without idle motion.
pub fn app(assets_dir: &Path) -> App {
    app_with_idle(assets_dir, false)
}

/// One game frame: audio advances with the clock, and the worker gets a moment to answer
/// (it is asynchronous by design; real games simply see the frame one update later).
pub fn step(app: &mut App) {
    app.world_mut()
        .non_send_mut::<EdTalkAudio>()
        .advance_mock(DT);
    app.update();
    std::thread::sleep(Duration::from_millis(15));
}

/// `frames` game frames.
pub fn settle(app: &mut App, frames: usize) {
    for _ in 0..frames {
        step(app);
    }
}

/// The errors reported since the last call.
pub fn errors(app: &mut App) -> Vec<EdTalkError> {
    app.world_mut()
        .resource_mut::<Messages<EdTalkError>>()
        .drain()
        .collect()
}

/// A fresh, empty directory for one test's assets.
pub fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edtalk-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `<name>.character.ron` using the bundled `ada.png`; `extra` adds fields.
pub fn write_character(dir: &Path, name: &str, extra: &str) {
    let portraits = dir.join("portraits");
    std::fs::create_dir_all(&portraits).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/portraits/ada.png");
    std::fs::copy(src, portraits.join("ada.png")).unwrap();
    std::fs::write(
        dir.join(format!("{name}.character.ron")),
        format!("(\n    name: \"{name}\",\n    portrait: \"portraits/ada.png\",\n{extra})\n"),
    )
    .unwrap();
}
