//! `edtalk bake-clip --manifest lines.ron`: a whole game's dialogue, lines baked in
//! parallel, resumable (clips that are whole and baked from the same inputs are skipped).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bevy_edtalk::clip::FaceClip;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use super::CliResult;
use super::clips::{BakeClipJob, Baked, ClipSource, bake_line, per_second};
use super::line::{LineOptions, Models};

/// The manifest file: `(lines: [ ... ])`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    lines: Vec<ManifestLine>,
}

/// One line; paths are relative to the manifest, unset options come from the command line.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    portrait: PathBuf,
    audio: PathBuf,
    out: PathBuf,
    emotion: Option<String>,
    script: Option<PathBuf>,
    pose: Option<String>,
    track: Option<PathBuf>,
    rig: Option<PathBuf>,
    no_align: Option<bool>,
    anchors: Option<Vec<f32>>,
    paste_back: Option<bool>,
}

/// How one line went.
enum Outcome {
    Baked(Baked),
    UpToDate,
    Failed(String),
}

/// Reads and parses the manifest; syntax errors give file:line:col.
fn load(path: &Path) -> CliResult<Manifest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("manifest {}: cannot read: {e}", path.display()))?;
    bevy_edtalk::motion::ron_options()
        .from_str(&text)
        .map_err(|e: ron::error::SpannedError| {
            format!(
                "manifest {}:{}:{}: {}",
                path.display(),
                e.span.start.line,
                e.span.start.col,
                e.code
            )
        })
}

/// The line's options: its own where given, else the command line's.
fn options(line: &ManifestLine, base: &Path, defaults: &LineOptions) -> LineOptions {
    let at = |p: &PathBuf| base.join(p);
    let mut o = defaults.clone();
    if line.emotion.is_some() || line.script.is_some() {
        o.emotion = line.emotion.clone();
        o.script = line.script.as_ref().map(at);
    }
    if let Some(pose) = &line.pose {
        o.pose = match pose.as_str() {
            "fixed" | "idle" => pose.clone(),
            file => base.join(file).display().to_string(),
        };
    }
    o.track = line.track.as_ref().map(at).or(o.track);
    o.rig = line.rig.as_ref().map(at).or(o.rig);
    o.no_align = line.no_align.unwrap_or(o.no_align);
    o.anchors = line.anchors.clone().or(o.anchors);
    o.paste_back = line.paste_back.unwrap_or(o.paste_back);
    o
}

/// Bakes the manifest's lines on `--jobs` threads, then prints a summary.
pub fn bake_manifest(path: &Path, job: &BakeClipJob) -> CliResult<()> {
    let started = Instant::now();
    let manifest = load(path)?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let models = Models::new(&job.line.ckpts, job.line.precision);
    let neural = models.neural(job.line.backend)?;
    let n = manifest.lines.len();
    // The procedural renderer is single-threaded, so lines run one per core; a neural
    // frame already spreads over every core (candle and its kernels use rayon's global
    // pool), where more lines at once would only compete for the same cores.
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let jobs = job
        .jobs
        .unwrap_or(if neural { 1 } else { cores })
        .clamp(1, n.max(1));
    let outs: Vec<PathBuf> = manifest.lines.iter().map(|l| base.join(&l.out)).collect();

    let bar = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} lines {eta}") {
        bar.set_style(style);
    }
    bar.set_message("baking clips");
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..n).map(|_| None).collect());
    let run = |i: usize| -> Outcome {
        let line = &manifest.lines[i];
        if let Some(first) = outs[..i].iter().position(|o| *o == outs[i]) {
            return Outcome::Failed(format!("its out is also line {}'s", first + 1));
        }
        let opts = options(line, &base, &job.line);
        let (portrait, audio) = (base.join(&line.portrait), base.join(&line.audio));
        // Recorded relative to the manifest, so moving the project keeps clips current.
        let shown = |p: &Path| p.strip_prefix(&base).unwrap_or(p).to_path_buf();
        let meta = ClipSource::new(&portrait, &audio, &opts, neural, job.tolerance, &shown);
        let meta = meta.to_metadata();
        if !job.force
            && let Ok(clip) = FaceClip::read(&outs[i])
            && clip.metadata() == Some(meta.as_str())
        {
            return Outcome::UpToDate;
        }
        let baked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bake_line(
                &portrait,
                &audio,
                &opts,
                &models,
                job.tolerance,
                &meta,
                &outs[i],
                &|_, _| {},
            )
        }));
        match baked {
            Ok(Ok(b)) => Outcome::Baked(b),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed("the renderer panicked (see above)".into()),
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let outcome = run(i);
                    bar.suspend(|| report(i, n, &outs[i], &outcome));
                    bar.inc(1);
                    if let Ok(mut all) = outcomes.lock() {
                        all[i] = Some(outcome);
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let outcomes = outcomes
        .into_inner()
        .map_err(|_| "a baking thread failed")?;
    summarize(path, &outs, &outcomes, started, job.json)
}

fn report(i: usize, n: usize, out: &Path, outcome: &Outcome) {
    let what = format!("edtalk: [{}/{n}] {}", i + 1, out.display());
    match outcome {
        Outcome::Baked(b) => eprintln!(
            "{what}: {} frames, {:.2} s, {:.0} KB ({:.0} KB per second of speech)",
            b.frames,
            b.audio_seconds,
            b.bytes as f64 / 1e3,
            per_second(b.bytes, b.audio_seconds) / 1e3
        ),
        Outcome::UpToDate => eprintln!("{what}: up to date, skipped"),
        Outcome::Failed(e) => eprintln!("{what}: failed: {e}"),
    }
}

fn summarize(
    path: &Path,
    outs: &[PathBuf],
    outcomes: &[Option<Outcome>],
    started: Instant,
    json: bool,
) -> CliResult<()> {
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().flatten().filter(|o| f(o)).count();
    let baked = count(|o| matches!(o, Outcome::Baked(_)));
    let skipped = count(|o| matches!(o, Outcome::UpToDate));
    let failed = outcomes.len() - baked - skipped;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let lines: Vec<serde_json::Value> = outs
            .iter()
            .zip(outcomes)
            .map(|(out, o)| match o {
                Some(Outcome::Baked(b)) => serde_json::json!({
                    "out": out, "status": "baked", "frames": b.frames, "bytes": b.bytes,
                    "audio_seconds": b.audio_seconds, "backend": b.backend.to_string(),
                }),
                Some(Outcome::UpToDate) => serde_json::json!({"out": out, "status": "skipped"}),
                Some(Outcome::Failed(e)) => {
                    serde_json::json!({"out": out, "status": "failed", "error": e})
                }
                None => serde_json::json!({"out": out, "status": "failed", "error": "not run"}),
            })
            .collect();
        let json = serde_json::json!({
            "manifest": path, "lines": lines, "baked": baked, "skipped": skipped,
            "failed": failed, "seconds": seconds,
        });
        println!("{json}");
    }
    eprintln!(
        "edtalk: {}: {baked} baked, {skipped} up to date (skipped), {failed} failed, of {} lines in {seconds:.1} s",
        path.display(),
        outcomes.len()
    );
    if failed > 0 {
        return Err(format!("{failed} of {} lines failed", outcomes.len()));
    }
    Ok(())
}
