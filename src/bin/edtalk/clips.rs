//! `bake-clip` (one line) and `clip-frames`: baked face clips on the command line.

use std::path::{Path, PathBuf};

use bevy_edtalk::audio::{DecodeOptions, decode_file};
use bevy_edtalk::clip::{ClipEncoder, FaceClip};
use bevy_edtalk::motion::MOTION_FPS;
use bevy_edtalk::render::Backend;
use serde::Serialize;

use super::line::{LineOptions, Models, prepare_line, render_line};
use super::{CliResult, announce_backend, progress, save_frame};

/// `edtalk bake-clip`: one line, or a manifest of many.
#[derive(clap::Args)]
pub struct BakeClipJob {
    /// The portrait (one line; or give --manifest).
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    pub portrait: Option<PathBuf>,
    /// The line's audio.
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    pub audio: Option<PathBuf>,
    /// The clip to write (`.faceclip`).
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    pub out: Option<PathBuf>,
    /// A RON manifest of lines to bake: `(lines: [(portrait: "a.png", audio: "a.ogg",
    /// out: "a.faceclip", emotion: "happy:0.8"), ...])`. Paths are relative to the
    /// manifest; the options below are every line's defaults. Lines whose clip already
    /// exists, is whole and was baked from the same inputs are skipped.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Lines baked at once (manifest only); default: one per core with the procedural
    /// renderer, one with the neural one (whose frames already use every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Let every channel of a frame land within this many levels of the rendered pixel
    /// (0, lossless, to 4); 1 is invisible and makes clips about 40% smaller.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub tolerance: u8,
    /// Re-bake manifest lines even when their clip is up to date.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub line: LineOptions,
}

/// What a clip was baked from, stored as its metadata (RON). A manifest re-run compares
/// it to decide whether a clip is up to date, so it holds the inputs' checksum too: a
/// re-recorded audio file is baked again.
#[derive(Serialize, PartialEq)]
pub struct ClipSource {
    pub portrait: PathBuf,
    pub audio: PathBuf,
    pub emotion: Option<String>,
    pub script: Option<PathBuf>,
    pub pose: String,
    pub track: Option<PathBuf>,
    pub rig: Option<PathBuf>,
    pub no_align: bool,
    pub anchors: Option<Vec<f32>>,
    pub paste_back: bool,
    pub backend: String,
    pub tolerance: u8,
    /// CRC-32 of the input files' bytes (portrait, audio, script, track, rig, pose track).
    pub inputs_crc32: String,
}

impl ClipSource {
    /// The source of a line; `shown` maps a resolved path to how it is recorded (the
    /// manifest records its own relative paths, so a moved project stays up to date).
    pub fn new(
        portrait: &Path,
        audio: &Path,
        opts: &LineOptions,
        neural: bool,
        tolerance: u8,
        shown: &dyn Fn(&Path) -> PathBuf,
    ) -> Self {
        let mut crc = crc32fast::Hasher::new();
        let pose_file = Some(Path::new(&opts.pose)).filter(|p| p.is_file());
        // The rig `render` picks up next to the portrait when none is given.
        let sibling_rig = portrait.with_extension("rig.ron");
        let rig = opts
            .rig
            .as_deref()
            .or(Some(sibling_rig.as_path()).filter(|p| p.is_file()));
        let files = [Some(portrait), Some(audio)]
            .into_iter()
            .chain([opts.script.as_deref(), opts.track.as_deref(), rig])
            .chain([pose_file]);
        for file in files.flatten() {
            // An unreadable input fails the bake itself, with a better message.
            crc.update(&std::fs::read(file).unwrap_or_default());
        }
        let pose = match pose_file {
            Some(p) => shown(p).display().to_string(),
            None => opts.pose.clone(),
        };
        Self {
            portrait: shown(portrait),
            audio: shown(audio),
            emotion: opts.emotion.clone(),
            script: opts.script.as_deref().map(shown),
            pose,
            track: opts.track.as_deref().map(shown),
            rig: opts.rig.as_deref().map(shown),
            no_align: opts.no_align,
            anchors: opts.anchors.clone(),
            paste_back: opts.paste_back,
            backend: if neural { "neural" } else { "procedural" }.into(),
            tolerance,
            inputs_crc32: format!("{:08x}", crc.finalize()),
        }
    }

    pub fn to_metadata(&self) -> String {
        ron::to_string(self).unwrap_or_default()
    }
}

/// What baking one line made.
pub struct Baked {
    pub frames: usize,
    pub bytes: usize,
    pub audio_seconds: f64,
    pub backend: Backend,
}

/// Renders a line (exactly as `render` does) into a clip written atomically at `out`:
/// a temporary file renamed into place, so an interrupted bake never leaves a clip that
/// looks finished. `tick` is called after each frame.
#[allow(clippy::too_many_arguments)]
pub fn bake_line(
    portrait: &Path,
    audio: &Path,
    opts: &LineOptions,
    models: &Models,
    tolerance: u8,
    metadata: &str,
    out: &Path,
    tick: &dyn Fn(usize, usize),
) -> CliResult<Baked> {
    let mut line = prepare_line(portrait, audio, opts, models)?;
    let audio_seconds = match line.audio_seconds {
        Some(s) => s,
        // With --track the audio was not analysed; its length is still the clip's timing.
        None => {
            let a = decode_file(audio, &DecodeOptions::default()).map_err(|e| e.to_string())?;
            a.samples.len() as f64 / 16_000.0
        }
    };
    let total = line.frames.len();
    let mut encoder: Option<ClipEncoder> = None;
    render_line(&mut line, |index, frame| {
        let enc = match &mut encoder {
            Some(e) => e,
            None => encoder.insert(
                ClipEncoder::new(frame.width, frame.height, MOTION_FPS)
                    .and_then(|e| e.with_tolerance(tolerance))
                    .map_err(|e| e.to_string())?,
            ),
        };
        enc.push(&frame).map_err(|e| e.to_string())?;
        tick(index + 1, total);
        Ok(())
    })?;
    let encoder = encoder.ok_or("no frames were rendered")?;
    let clip = encoder
        .finish(audio_seconds, Some(metadata))
        .map_err(|e| e.to_string())?;
    write_atomically(&clip, out)?;
    Ok(Baked {
        frames: clip.frame_count(),
        bytes: clip.encoded_len(),
        audio_seconds,
        backend: line.backend,
    })
}

/// Writes `out.partial`, then renames it to `out`.
fn write_atomically(clip: &FaceClip, out: &Path) -> CliResult<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    clip.write(&partial).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Bytes per second of speech, for reports.
pub fn per_second(bytes: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    }
}

/// `edtalk bake-clip --portrait .. --audio .. --out ..`.
pub fn bake_clip(job: BakeClipJob) -> CliResult<()> {
    if let Some(manifest) = &job.manifest {
        return super::manifest::bake_manifest(manifest, &job);
    }
    let (Some(portrait), Some(audio), Some(out)) = (&job.portrait, &job.audio, &job.out) else {
        return Err("give --portrait, --audio and --out, or --manifest".into());
    };
    let models = Models::new(&job.line.ckpts, job.line.precision);
    let neural = models.neural(job.line.backend)?;
    let source = ClipSource::new(portrait, audio, &job.line, neural, job.tolerance, &|p| {
        p.to_path_buf()
    });
    let bar = progress(0, "baking");
    let started = std::time::Instant::now();
    let baked = bake_line(
        portrait,
        audio,
        &job.line,
        &models,
        job.tolerance,
        &source.to_metadata(),
        out,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let rate = per_second(baked.bytes, baked.audio_seconds);
    if job.json {
        let json = serde_json::json!({
            "out": out,
            "frames": baked.frames,
            "bytes": baked.bytes,
            "audio_seconds": baked.audio_seconds,
            "bytes_per_second": rate.round(),
            "backend": baked.backend.to_string(),
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{json}");
    } else {
        announce_backend(baked.backend, &models);
        eprintln!(
            "edtalk: {} frames ({:.2} s of speech) -> {}: {:.0} KB, {:.0} KB per second of speech",
            baked.frames,
            baked.audio_seconds,
            out.display(),
            baked.bytes as f64 / 1e3,
            rate / 1e3
        );
    }
    Ok(())
}

/// `edtalk clip-frames CLIP --frames-out DIR`.
pub fn clip_frames(clip_path: &Path, dir: &Path, json: bool) -> CliResult<()> {
    let clip = FaceClip::read(clip_path).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bar = progress(clip.frame_count() as u64, "writing frames");
    for (index, frame) in clip.frames().enumerate() {
        let frame = frame.map_err(|e| format!("{}: {e}", clip_path.display()))?;
        save_frame(dir, index, &frame)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if json {
        let json = serde_json::json!({
            "clip": clip_path,
            "frames": clip.frame_count(),
            "width": clip.width(),
            "height": clip.height(),
            "fps": clip.fps(),
            "audio_seconds": clip.audio_seconds(),
            "bytes": clip.encoded_len(),
            "metadata": clip.metadata(),
        });
        println!("{json}");
    } else {
        eprintln!(
            "edtalk: {} frames ({}x{}, {} fps, {:.2} s of audio) -> {}",
            clip.frame_count(),
            clip.width(),
            clip.height(),
            clip.fps(),
            clip.audio_seconds(),
            dir.display()
        );
    }
    Ok(())
}
