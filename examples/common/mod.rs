//! Shared by the examples: screenshots for the smoke test, and the on-screen caption style.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};

/// With `EDTALK_SCREENSHOT=PATH` (and optionally `EDTALK_SCREENSHOT_AFTER=SECONDS`, default
/// 3), saves a screenshot of the window to PATH after that many seconds and exits with
/// status 0. Does nothing without the variable.
pub struct EnvScreenshotPlugin;

#[derive(Resource)]
struct ScreenshotPlan {
    path: PathBuf,
    after: f32,
    taken: bool,
}

impl Plugin for EnvScreenshotPlugin {
    fn build(&self, app: &mut App) {
        let Some(path) = std::env::var_os("EDTALK_SCREENSHOT") else {
            return;
        };
        let after = std::env::var("EDTALK_SCREENSHOT_AFTER")
            .ok()
            .and_then(|s| s.parse::<f32>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(3.0);
        app.insert_resource(ScreenshotPlan {
            path: PathBuf::from(path),
            after,
            taken: false,
        })
        .add_systems(Update, take_screenshot);
    }
}

// Elapsed real time, not frame count: software Vulkan compiles pipelines for seconds.
fn take_screenshot(
    mut commands: Commands,
    time: Res<Time<Real>>,
    mut plan: ResMut<ScreenshotPlan>,
    diag: Option<Res<bevy_edtalk::plugin::EdTalkDiagnostics>>,
    mut game_frames: Local<u32>,
) {
    *game_frames += 1;
    if plan.taken || time.elapsed_secs() < plan.after {
        return;
    }
    plan.taken = true;
    // What a smoke run checks besides the picture: frames dropped and late.
    if let Some(d) = diag {
        info!(
            "bevy_edtalk diagnostics: backend {:?}, rendered {}, shown {}, dropped {}, \
             skipped {}, superseded {}, late {}, {:.1} ms per face frame; game {:.1} fps",
            d.backend,
            d.frames_rendered,
            d.frames_shown,
            d.frames_dropped,
            d.frames_skipped,
            d.frames_superseded,
            d.frames_late,
            d.inference_ms_per_frame,
            *game_frames as f32 / time.elapsed_secs()
        );
    }
    info!("saving screenshot to {}", plan.path.display());
    commands
        .spawn(Screenshot::primary_window())
        .observe(save_to_disk(plan.path.clone()))
        .observe(
            |_: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                exit.write(AppExit::Success);
            },
        );
}
