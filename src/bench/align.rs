//! Face detection + alignment of a 1024 px portrait: `{"bench":"align","ms":...}`.

use std::time::Instant;

use super::{BenchOptions, emit};
use crate::face::{FaceDetector, align_with};
use crate::render::Portrait;

/// A 1024 px wide photo with a face: the repository's breakingbad test photo scaled to
/// 1024 px (its two faces and a hand make the detector's work realistic), or a bundled
/// portrait scaled up when the repository's test files are not there.
fn image_1024() -> Option<(Portrait, &'static str)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        ("tests/fixtures/faces/breakingbad.jpg", "breakingbad.jpg"),
        ("assets/portraits/ada.png", "ada.png"),
    ];
    candidates.iter().find_map(|(path, name)| {
        let img = image::open(root.join(path)).ok()?;
        let h = (img.height() as u64 * 1024 / img.width().max(1) as u64).max(1) as u32;
        let scaled = img
            .resize_exact(1024, h, image::imageops::FilterType::Triangle)
            .into_rgba8();
        let (w, h) = scaled.dimensions();
        Some((Portrait::from_rgba(w, h, scaled.into_raw()).ok()?, *name))
    })
}

/// Times detection + alignment (best of several runs after a warm-up).
pub fn run(opts: &BenchOptions) -> Vec<serde_json::Value> {
    let Some((image, name)) = image_1024() else {
        eprintln!("align bench: no test image found");
        return Vec::new();
    };
    let detector = match FaceDetector::bundled() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("align bench: {e}");
            return Vec::new();
        }
    };
    let runs = if opts.quick { 2 } else { 8 };
    let mut times = Vec::with_capacity(runs);
    let mut faces = 0;
    let _ = align_with(&detector, &image);
    for _ in 0..runs {
        let t0 = Instant::now();
        let found = align_with(&detector, &image);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        faces = found.map_or(0, |a| a.faces_found);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    vec![emit(serde_json::json!({
        "bench": "align",
        "ms": (median * 10.0).round() / 10.0,
        "min_ms": (times[0] * 10.0).round() / 10.0,
        "image": format!("{name} scaled to {}x{}", image.width(), image.height()),
        "faces_found": faces,
        "threads": rayon::current_num_threads(),
    }))]
}
