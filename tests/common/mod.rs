//! The headless plugin harness shared by the plugin test files: MinimalPlugins, asset +
//! image plugins, kira's mock backend and manual time (40 ms a frame, one face frame per
//! game frame). Each test file uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
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

/// One game frame that also takes [`DT`] of wall time, for tests where the worker's own
/// speed matters (render-ahead measures it).
pub fn realtime_step(app: &mut App) {
    let t0 = std::time::Instant::now();
    app.world_mut()
        .non_send_mut::<EdTalkAudio>()
        .advance_mock(DT);
    app.update();
    if let Some(rest) = Duration::from_secs_f64(DT).checked_sub(t0.elapsed()) {
        std::thread::sleep(rest);
    }
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

/// A face-like test portrait: skin oval, dark eyes, a lip line.
pub fn portrait_image() -> Image {
    let n = 256u32;
    let mut data = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (x as f32 / n as f32 - 0.5, y as f32 / n as f32 - 0.55);
            let face = (fx / 0.33).powi(2) + (fy / 0.42).powi(2) < 1.0;
            let eye = ((fx.abs() - 0.12).powi(2) + (fy + 0.13).powi(2)).sqrt() < 0.03;
            let lips = fx.abs() < 0.1 && (fy - 0.17).abs() < 0.015;
            let px = if eye {
                [40, 30, 30, 255]
            } else if lips {
                [170, 80, 80, 255]
            } else if face {
                [225, 180, 150, 255]
            } else {
                [60, 90, 140, 255]
            };
            data.extend_from_slice(&px);
        }
    }
    Image::new(
        Extent3d {
            width: n,
            height: n,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

pub fn spawn_face(app: &mut App) -> Entity {
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(portrait_image());
    app.world_mut()
        .spawn((FacePortrait::new(handle), Sprite::default()))
        .id()
}

pub fn face_pixels(app: &App, e: Entity) -> Vec<u8> {
    let face = app.world().get::<TalkingFace>(e).unwrap();
    let images = app.world().resource::<Assets<Image>>();
    images
        .get(&face.image)
        .and_then(|i| i.data.clone())
        .unwrap_or_default()
}

/// Mean absolute difference in the lower-middle (mouth) region.
pub fn mouth_diff(a: &[u8], b: &[u8]) -> f32 {
    let n = 256usize;
    let mut sum = 0u64;
    let mut count = 0u64;
    for y in 165..215 {
        for x in 90..166 {
            for c in 0..3 {
                let i = (y * n + x) * 4 + c;
                sum += (a[i] as i32 - b[i] as i32).unsigned_abs() as u64;
                count += 1;
            }
        }
    }
    sum as f32 / count as f32
}

/// The test voice at time `t` (seconds): a vowel-like sound (140 Hz voice with 700 and
/// 1200 Hz formant-ish partials).
pub fn voiced(t: f32) -> f32 {
    (0.35 * (std::f32::consts::TAU * 140.0 * t).sin()
        + 0.25 * (std::f32::consts::TAU * 700.0 * t).sin()
        + 0.15 * (std::f32::consts::TAU * 1200.0 * t).sin())
        * 0.8
}
