//! Main-thread cost of the plugin: a headless app with 16 talking faces (procedural tier,
//! mock audio, fixed 40 ms steps), timing `App::update` against the same app without faces.

use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::image::ImagePlugin;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::time::TimeUpdateStrategy;

use super::{BenchOptions, emit};
use crate::plugin::*;

fn app(threads: usize) -> App {
    app_with(EdTalkSettings {
        backend: BackendChoice::Procedural,
        inference_threads: threads,
        audio: AudioOutput::Mock {
            sample_rate: 1000,
            buffer: 10,
        },
        ..Default::default()
    })
}

fn app_with(settings: EdTalkSettings) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        EdTalkPlugin { settings },
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
        40,
    )));
    app.finish();
    app.cleanup();
    app
}

fn portrait() -> Image {
    let n = 256u32;
    let data = (0..n * n)
        .flat_map(|i| {
            let (x, y) = (i % n, i / n);
            [(x % 256) as u8, (y % 256) as u8, 128, 255]
        })
        .collect();
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

fn line() -> VoiceLine {
    let samples: Vec<f32> = (0..16_000 * 30)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            // Syllables: a 4 Hz envelope over a voiced buzz.
            let env = (std::f32::consts::TAU * 4.0 * t).sin().max(0.0);
            env * 0.4 * (std::f32::consts::TAU * 150.0 * t).sin()
        })
        .collect();
    VoiceLine::from_mono(samples, 16_000)
}

/// Mean milliseconds per `update` over `frames` game frames.
fn measure(app: &mut App, frames: usize) -> f64 {
    let mut total = Duration::ZERO;
    for _ in 0..frames {
        app.world_mut()
            .non_send_mut::<EdTalkAudio>()
            .advance_mock(0.04);
        let t0 = Instant::now();
        app.update();
        total += t0.elapsed();
        // A 60 fps game's frame budget: the worker renders meanwhile.
        std::thread::sleep(Duration::from_millis(16));
    }
    total.as_secs_f64() * 1000.0 / frames as f64
}

/// Prints `{"bench":"plugin_main_thread","ms_per_game_frame":...}`.
pub fn run(opts: &BenchOptions) -> Vec<serde_json::Value> {
    let frames = if opts.quick { 60 } else { 250 };
    let threads = opts.threads.max(1);
    let mut empty = app(threads);
    measure(&mut empty, 20);
    let baseline = measure(&mut empty, frames);

    let mut app = app(threads);
    let image = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(portrait());
    let voice = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(line());
    let faces: Vec<Entity> = (0..16)
        .map(|_| {
            app.world_mut()
                .spawn((FacePortrait::new(image.clone()), Sprite::default()))
                .id()
        })
        .collect();
    measure(&mut app, 10);
    for &f in &faces {
        app.world_mut().write_message(Speak::new(f, voice.clone()));
    }
    measure(&mut app, 20);
    let with_faces = measure(&mut app, frames);
    let diag = app.world().resource::<EdTalkDiagnostics>().clone();
    vec![emit(serde_json::json!({
        "bench": "plugin_main_thread",
        "ms_per_game_frame": ((with_faces - baseline).max(0.0) * 1000.0).round() / 1000.0,
        "faces": faces.len(),
        "update_ms_with_faces": (with_faces * 1000.0).round() / 1000.0,
        "update_ms_empty_app": (baseline * 1000.0).round() / 1000.0,
        "frames_shown": diag.frames_shown,
        "frames_late": diag.frames_late,
        "frames_dropped": diag.frames_dropped,
    }))]
}

/// The longest main-thread frame while the plugin starts with the checkpoints in
/// `opts.ckpt_dir`: 4 faces on screen, 16 ms game frames, until the neural renderer has
/// taken over (or 120 s). Prints `{"bench":"plugin_startup","max_frame_ms":...}`.
pub fn run_startup(opts: &BenchOptions) -> Vec<serde_json::Value> {
    let started = Instant::now();
    let mut app = app_with(EdTalkSettings {
        backend: BackendChoice::Auto,
        ckpt_dir: opts.ckpt_dir.clone(),
        inference_threads: opts.threads.max(1),
        audio: AudioOutput::Mock {
            sample_rate: 1000,
            buffer: 10,
        },
        ..Default::default()
    });
    let image = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(portrait());
    for _ in 0..4 {
        app.world_mut()
            .spawn((FacePortrait::new(image.clone()), Sprite::default()));
    }
    let mut frames = Vec::new();
    let mut switched = None;
    while started.elapsed() < Duration::from_secs(120) {
        app.world_mut()
            .non_send_mut::<EdTalkAudio>()
            .advance_mock(0.016);
        let t0 = Instant::now();
        app.update();
        frames.push(t0.elapsed().as_secs_f64() * 1000.0);
        let world = app.world_mut();
        if world
            .resource_mut::<Messages<RendererReady>>()
            .drain()
            .count()
            > 0
        {
            switched = Some(started.elapsed().as_secs_f64());
        }
        let failed = world
            .resource_mut::<Messages<EdTalkError>>()
            .drain()
            .any(|e| e.kind == EdTalkErrorKind::Checkpoint);
        // A few frames after the switch (the faces register again), a failure, or with
        // nothing loading (no checkpoints) two seconds of start-up, stop.
        let settled = switched.map_or(!crate::plugin::neural_loading(app.world()), |_| true);
        let since = switched.unwrap_or(0.0);
        if failed || (settled && started.elapsed().as_secs_f64() > since + 2.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(16));
    }
    let max = frames.iter().copied().fold(0.0, f64::max);
    let backend = app
        .world()
        .resource::<EdTalkDiagnostics>()
        .backend
        .map(|b| b.to_string());
    vec![emit(serde_json::json!({
        "bench": "plugin_startup",
        "max_frame_ms": (max * 10.0).round() / 10.0,
        "frames": frames.len(),
        "neural_ready_s": switched.map(|t| (t * 100.0).round() / 100.0),
        "backend": backend,
        "ckpts": opts.ckpt_dir.display().to_string(),
    }))]
}

/// One line through the plugin headless on the neural renderer from `opts.ckpt_dir`, with
/// render-ahead on, in real time (40 ms game frames lasting 40 ms). Prints
/// `{"bench":"neural_line","dropped_frames":...,"wait_ms":...}`: frames dropped or late
/// while the line played, and how long it waited for its frames.
pub fn run_neural_line(opts: &BenchOptions) -> Vec<serde_json::Value> {
    let seconds = if opts.quick { 1.5 } else { 3.0 };
    let mut app = app_with(EdTalkSettings {
        backend: BackendChoice::Neural,
        ckpt_dir: opts.ckpt_dir.clone(),
        inference_threads: opts.threads.max(1),
        audio: AudioOutput::Mock {
            sample_rate: 1000,
            buffer: 10,
        },
        render_ahead: true,
        max_render_ahead_wait: 600.0,
        ..Default::default()
    });
    let image = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(portrait());
    let face = app
        .world_mut()
        .spawn((FacePortrait::new(image), Sprite::default()))
        .id();
    let realtime_step = |app: &mut App| {
        let t0 = Instant::now();
        app.world_mut()
            .non_send_mut::<EdTalkAudio>()
            .advance_mock(0.04);
        app.update();
        if let Some(rest) = Duration::from_millis(40).checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    };
    let mut errors = Vec::new();
    // Until the neural renderer runs and has rendered a few idle frames (so the worker
    // has measured its speed).
    let started = Instant::now();
    let mut neural = false;
    while started.elapsed() < Duration::from_secs(300) {
        realtime_step(&mut app);
        let world = app.world_mut();
        neural |= world
            .resource_mut::<Messages<RendererReady>>()
            .drain()
            .any(|r| r.backend == crate::render::Backend::Neural);
        errors.extend(
            world
                .resource_mut::<Messages<EdTalkError>>()
                .drain()
                .map(|e| e.message),
        );
        let rendered = world.resource::<EdTalkDiagnostics>().frames_rendered;
        if (neural && rendered >= 3) || !errors.is_empty() {
            break;
        }
    }
    if !neural {
        return vec![emit(serde_json::json!({
            "bench": "neural_line",
            "error": format!("the neural renderer did not start from {}: {errors:?}",
                opts.ckpt_dir.display()),
        }))];
    }
    let samples: Vec<f32> = line().samples[..(16_000.0 * seconds) as usize].to_vec();
    let voice = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(VoiceLine::from_mono(samples, 16_000));
    app.world_mut()
        .write_message(Speak::new(face, voice).with_tag("bench"));
    let asked = Instant::now();
    let (mut waited, mut at_start, mut result) = (None, None, None);
    while asked.elapsed() < Duration::from_secs(900) {
        realtime_step(&mut app);
        let world = app.world_mut();
        if let Some(r) = world.resource_mut::<Messages<SpeechReady>>().drain().last() {
            waited = Some(r.waited);
        }
        let diag = world.resource::<EdTalkDiagnostics>().clone();
        let missed = diag.frames_dropped + diag.frames_late;
        if world
            .resource_mut::<Messages<SpeechStarted>>()
            .drain()
            .any(|m| m.entity == face)
        {
            at_start = Some((missed, asked.elapsed()));
        }
        if world
            .resource_mut::<Messages<SpeechFinished>>()
            .drain()
            .any(|m| m.entity == face)
        {
            result = at_start.map(|(m, t)| (missed - m, t, diag.inference_ms_per_frame));
            break;
        }
    }
    let Some((dropped, start_after, ms)) = result else {
        return vec![emit(serde_json::json!({
            "bench": "neural_line",
            "error": "the line did not finish in 15 minutes",
        }))];
    };
    vec![emit(serde_json::json!({
        "bench": "neural_line",
        "dropped_frames": dropped,
        "wait_ms": waited.map_or(0.0, |w| (w as f64 * 1000.0).round()),
        "start_after_ms": start_after.as_millis() as u64,
        "line_s": seconds,
        "frames": (seconds * 25.0) as u32,
        "inference_ms_per_frame": (ms as f64 * 10.0).round() / 10.0,
        "threads": opts.threads.max(1),
        "ckpts": opts.ckpt_dir.display().to_string(),
    }))]
}
