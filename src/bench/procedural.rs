//! Procedural renderer throughput: frames per second at 256 px on the calling thread.

use super::{BenchOptions, emit};
use crate::motion::{Emotion, MotionFrame};
use crate::render::procedural::ProceduralRenderer;
use crate::render::rig::FaceRig;
use crate::render::{FaceFrame, FaceRenderer, Portrait};

/// A moving performance: talking jaw and lips, an emotion, blinks and head sway, so every
/// part of the renderer (warp, mouth, lids) runs.
fn motion(i: usize) -> MotionFrame {
    let t = i as f32 / 25.0;
    let mut m = MotionFrame::default();
    m.mouth.jaw_open = (0.5 + 0.5 * (t * 9.0).sin()).powi(2);
    m.mouth.lip_width = (t * 3.1).sin() * 0.5;
    m.mouth.lip_round = (0.5 + 0.5 * (t * 2.3).cos()) * 0.6;
    m.expression = Emotion::ALL[(i / 50) % 8].default_look();
    if i % 90 < 4 {
        m.expression.eye_open = 0.0;
    }
    m.head.yaw = 0.12 * (t * 0.7).sin();
    m.head.pitch = 0.05 * (t * 1.1).sin();
    m.head.roll = 0.04 * (t * 0.5).cos();
    m
}

/// The bundled portrait `ada` with its rig, or (without the assets) a generated gradient
/// with the default rig.
fn identity() -> (Portrait, Option<FaceRig>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/portraits");
    if let (Ok(p), Ok(r)) = (
        Portrait::load(dir.join("ada.png")),
        FaceRig::load(dir.join("ada.rig.ron")),
    ) {
        return (p, Some(r));
    }
    let rgba = (0..256 * 256)
        .flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 128, 255])
        .collect();
    let p = Portrait::from_rgba(256, 256, rgba).expect("256x256 RGBA buffer");
    (p, None)
}

/// Renders a warm-up, then times `frames` frames; prints `{"bench":"procedural","fps":..}`.
pub fn run(opts: &BenchOptions) -> Vec<serde_json::Value> {
    let mut r = ProceduralRenderer::new();
    let (portrait, rig) = identity();
    if let Err(e) = r.set_identity(1, &portrait, rig.as_ref()) {
        eprintln!("procedural bench: {e}");
        return Vec::new();
    }
    let frames = if opts.quick { 200 } else { 5000 };
    let mut frame = FaceFrame {
        width: 0,
        height: 0,
        rgba: Vec::new(),
    };
    let mut checksum = 0u64;
    for i in 0..50 {
        let _ = r.render_into(1, &motion(i), &mut frame);
    }
    let cpu_start = thread_cpu_ns();
    let start = std::time::Instant::now();
    for i in 0..frames {
        if let Err(e) = r.render_into(1, &motion(i), &mut frame) {
            eprintln!("procedural bench: {e}");
            return Vec::new();
        }
        checksum = checksum.wrapping_add(frame.rgba[(i * 4099) % frame.rgba.len()] as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    let fps = frames as f64 / secs;
    // On a shared machine wall time includes waiting for a core; the thread's own CPU time
    // does not.
    let cpu_fps = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => {
            serde_json::json!((frames as f64 / ((b - a) as f64 * 1e-9) * 10.0).round() / 10.0)
        }
        _ => serde_json::Value::Null,
    };
    vec![emit(serde_json::json!({
        "bench": "procedural",
        "fps": (fps * 10.0).round() / 10.0,
        "cpu_fps": cpu_fps,
        "ms_per_frame": (secs * 1000.0 / frames as f64 * 1000.0).round() / 1000.0,
        "size": 256,
        "threads": 1,
        "frames": frames,
        "checksum": checksum,
    }))]
}

/// CPU time of the calling thread in nanoseconds (Linux `schedstat`); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
