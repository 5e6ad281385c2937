//! `edtalk`: offline rendering, lip-sync baking, coefficient extraction, checkpoint
//! inspection and benchmarks. `edtalk --help` lists the commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use bevy_edtalk::audio::{DecodeOptions, decode_file};
use bevy_edtalk::bench::BenchOptions;
use bevy_edtalk::face::{AlignedPortrait, Anchors, CROP_SIZE, align_from_anchors, align_portrait};
use bevy_edtalk::model::audio2lip::Audio2Lip;
use bevy_edtalk::model::checkpoint::load_state_dict;
use bevy_edtalk::model::ckpt_dir::CheckpointDir;
use bevy_edtalk::motion::{
    Audio2Motion, Emotion, EmotionInput, EmotionMix, EmotionScript, IdleSettings, MotionConfig,
    MotionFrame, MotionTrack, PoseSource, PoseTrack,
};
use bevy_edtalk::render::neural::NeuralRenderer;
use bevy_edtalk::render::rig::FaceRig;
use bevy_edtalk::render::{Backend, FaceFrame, Portrait};
use candle_core::{DType, Device};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

// The binary is a crate root in src/bin, so its modules are named by path.
#[path = "edtalk/clips.rs"]
mod clips;
#[path = "edtalk/line.rs"]
mod line;
#[path = "edtalk/manifest.rs"]
mod manifest;

use line::{LineOptions, Models, prepare_line, render_line};

#[derive(Parser)]
#[command(
    name = "edtalk",
    version,
    about = "Talking, emotional portraits: offline tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which renderer draws the faces.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum BackendArg {
    /// Neural when the checkpoints are there, else procedural.
    Auto,
    /// EDTalk (needs the checkpoints).
    Neural,
    /// The procedural face rig.
    Procedural,
}

#[derive(Subcommand)]
enum Command {
    /// Render a talking portrait from an audio file (the official demo, offline).
    Render(RenderJob),
    /// Render a whole line once into a compact face clip (`.faceclip`) that a game plays
    /// back in sync with the audio at no inference cost; or, with --manifest, a whole
    /// game's dialogue.
    BakeClip(clips::BakeClipJob),
    /// Write a face clip's frames as PNGs, named as `render --frames-out` names them.
    ClipFrames {
        /// The clip (`.faceclip`).
        clip: PathBuf,
        /// Directory for one PNG per frame (frame_00000.png, ...).
        #[arg(long)]
        frames_out: PathBuf,
        /// Print the clip's header as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Bake a line's motion track to RON (Audio2Lip mouth coefficients when the
    /// checkpoint is there, the DSP mouth controls always).
    Bake {
        #[arg(long)]
        audio: PathBuf,
        #[arg(long, default_value = "ckpts")]
        ckpts: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Mouth, pose and expression coefficients of driving images (EDTalk-V), as a motion
    /// track in RON.
    Extract {
        /// Directory of frames (png/jpg), taken in name order.
        #[arg(long)]
        frames: PathBuf,
        #[arg(long, default_value = "ckpts")]
        ckpts: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Find the face in a portrait and crop it the way EDTalk expects (256x256, eyes and
    /// mouth at the template's places), with a fitted procedural rig.
    Align(AlignJob),
    /// List the checkpoints in a directory: sizes, tensors, parameters.
    Inspect {
        #[arg(long, default_value = "ckpts")]
        ckpts: PathBuf,
    },
    /// Engine benchmarks, one JSON line per figure.
    Bench {
        /// Inference threads.
        #[arg(long)]
        threads: Option<usize>,
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
        /// Only these groups (memory, align, procedural, audio, plugin, neural; `audio2lip`, the mel + Audio2Lip part of `audio`; `steady_state`, that figure of `neural` alone; `layers`, per-layer conv
        /// timings, runs only when named).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Leave the allocator's defaults (by default the neural figures run with
        /// `bevy_edtalk::heap::retain_freed_memory`, as the plugin does).
        #[arg(long)]
        malloc_defaults: bool,
        /// Checkpoints for `plugin_startup` and `neural_line` (which run only when named).
        #[arg(long, default_value = "ckpts")]
        ckpts: PathBuf,
        /// The decoder's arithmetic in the neural and layer figures: f32 (the reference)
        /// or bf16 (Intel AMX or AVX-512 BF16; f32 where the CPU has neither).
        #[arg(long, default_value = "f32")]
        precision: bevy_edtalk::model::Precision,
    },
}

type CliResult<T> = Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(job) => {
            // Frames reuse the previous frame's freed activations (see the module docs).
            bevy_edtalk::heap::retain_freed_memory();
            render(job)
        }
        Command::BakeClip(job) => {
            bevy_edtalk::heap::retain_freed_memory();
            clips::bake_clip(job)
        }
        Command::ClipFrames {
            clip,
            frames_out,
            json,
        } => clips::clip_frames(&clip, &frames_out, json),
        Command::Bake { audio, ckpts, out } => bake(&audio, &ckpts, &out),
        Command::Extract { frames, ckpts, out } => extract(&frames, &ckpts, &out),
        Command::Inspect { ckpts } => inspect(&ckpts),
        Command::Align(job) => align(job),
        Command::Bench {
            threads,
            quick,
            only,
            malloc_defaults,
            ckpts,
            precision,
        } => bench(threads, quick, &only, malloc_defaults, ckpts, precision),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edtalk: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
struct RenderJob {
    #[arg(long)]
    portrait: PathBuf,
    #[arg(long)]
    audio: PathBuf,
    #[command(flatten)]
    line: LineOptions,
    /// Directory for one PNG per 25 fps frame (frame_00000.png, ...).
    #[arg(long)]
    frames_out: Option<PathBuf>,
    #[arg(long)]
    gif: Option<PathBuf>,
    #[arg(long)]
    apng: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AlignJob {
    #[arg(long)]
    portrait: PathBuf,
    /// The aligned 256x256 crop (PNG).
    #[arg(long)]
    out: PathBuf,
    /// Also write the procedural rig fitted to the found landmarks (RON).
    #[arg(long)]
    rig_out: Option<PathBuf>,
    /// Also write the portrait with the landmarks, face box and crop outline drawn on it.
    #[arg(long)]
    preview: Option<PathBuf>,
    /// Manual anchors (left eye x,y, right eye x,y, mouth centre x,y) instead of detection.
    #[arg(long, value_delimiter = ',')]
    anchors: Option<Vec<f32>>,
    /// Print one JSON object on stdout: landmarks, transform, score.
    #[arg(long)]
    json: bool,
}

fn anchors_of(v: &[f32]) -> CliResult<Anchors> {
    match v {
        [lx, ly, rx, ry, mx, my] => Ok(Anchors {
            left_eye: [*lx, *ly],
            right_eye: [*rx, *ry],
            mouth: [*mx, *my],
        }),
        _ => Err("--anchors needs six numbers: left eye x,y, right eye x,y, mouth x,y".into()),
    }
}

/// Detects and aligns the face (or uses the anchors); errors name the file.
fn aligned(
    portrait: &Portrait,
    path: &Path,
    anchors: Option<&[f32]>,
) -> CliResult<AlignedPortrait> {
    let what = path.display();
    let result = match anchors {
        Some(v) => align_from_anchors(portrait, anchors_of(v)?),
        None => align_portrait(portrait),
    };
    let a = result.map_err(|e| match e {
        bevy_edtalk::face::FaceError::NoFace { .. } => format!(
            "no face was found in {what}; give the eye centres and mouth centre with \
             --anchors LX,LY,RX,RY,MX,MY (image pixels)"
        ),
        e => format!("{what}: {e}"),
    })?;
    if a.faces_found > 1 {
        eprintln!(
            "edtalk: {what}: {} faces found; using the largest",
            a.faces_found
        );
    }
    Ok(a)
}

/// The rig fitted to the aligned crop's landmarks.
fn fitted_rig(a: &AlignedPortrait) -> FaceRig {
    let s = CROP_SIZE as f32;
    let five = a.landmarks.map(|p| {
        let q = a.transform.apply(p);
        [q[0] / s, q[1] / s]
    });
    FaceRig::fit_landmarks(&five)
}

fn save_png(path: &Path, p: &Portrait) -> CliResult<()> {
    image::save_buffer(
        path,
        p.rgba(),
        p.width(),
        p.height(),
        image::ExtendedColorType::Rgba8,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn align(job: AlignJob) -> CliResult<()> {
    let portrait = Portrait::load(&job.portrait).map_err(|e| e.to_string())?;
    let a = aligned(&portrait, &job.portrait, job.anchors.as_deref())?;
    save_png(&job.out, &a.image)?;
    let rig = fitted_rig(&a);
    if let Some(path) = &job.rig_out {
        let text = rig.to_ron().map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &job.preview {
        save_png(path, &preview(&portrait, &a, &rig))?;
    }
    if job.json {
        let m = a.transform.to_matrix();
        let json = serde_json::json!({
            "landmarks": a.landmarks,
            "transform": m,
            "score": a.score,
            "faces_found": a.faces_found,
            "bbox": a.bbox,
        });
        println!("{json}");
    } else {
        eprintln!(
            "edtalk: face at [{:.0}, {:.0}, {:.0}, {:.0}] (score {:.3}) -> {}",
            a.bbox[0],
            a.bbox[1],
            a.bbox[2],
            a.bbox[3],
            a.score,
            job.out.display()
        );
    }
    Ok(())
}

/// The portrait with what was found drawn on it: the five landmarks (green), the face box
/// (yellow), the 256 crop's outline (blue) and the fitted rig's points (red).
fn preview(portrait: &Portrait, a: &AlignedPortrait, rig: &FaceRig) -> Portrait {
    let (w, h) = (portrait.width() as i64, portrait.height() as i64);
    let mut px = portrait.rgba().to_vec();
    let r = (w.max(h) / 300).max(1);
    let mut dot = |x: f32, y: f32, c: [u8; 3], rad: i64| {
        if !x.is_finite() || !y.is_finite() {
            return;
        }
        let (cx, cy) = (x.round() as i64, y.round() as i64);
        for yy in cy - rad..=cy + rad {
            for xx in cx - rad..=cx + rad {
                if (0..w).contains(&xx) && (0..h).contains(&yy) {
                    let i = ((yy * w + xx) * 4) as usize;
                    px[i..i + 3].copy_from_slice(&c);
                    px[i + 3] = 255;
                }
            }
        }
    };
    let line =
        |a: [f32; 2], b: [f32; 2], c: [u8; 3], dot: &mut dyn FnMut(f32, f32, [u8; 3], i64)| {
            let n = ((b[0] - a[0]).hypot(b[1] - a[1]).ceil() as usize).clamp(1, 20_000);
            for k in 0..=n {
                let t = k as f32 / n as f32;
                dot(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, c, r / 2);
            }
        };
    let [x0, y0, x1, y1] = a.bbox;
    let boxc = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
    for k in 0..4 {
        line(boxc[k], boxc[(k + 1) % 4], [240, 220, 40], &mut dot);
    }
    if let Some(inv) = a.transform.invert() {
        let s = CROP_SIZE as f32;
        let crop = [[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]].map(|p| inv.apply(p));
        for k in 0..4 {
            line(crop[k], crop[(k + 1) % 4], [60, 120, 255], &mut dot);
        }
        let mut rig_pts = vec![
            rig.left_eye.outer,
            rig.left_eye.inner,
            rig.right_eye.outer,
            rig.right_eye.inner,
            rig.left_brow.mid,
            rig.right_brow.mid,
            rig.mouth_left,
            rig.mouth_right,
            rig.upper_lip,
            rig.lower_lip,
            rig.chin,
        ];
        rig_pts.extend(rig.face_outline.iter().copied());
        for p in rig_pts {
            let q = inv.apply([p.x * s, p.y * s]);
            dot(q[0], q[1], [230, 40, 40], r);
        }
    }
    for p in a.landmarks {
        dot(p[0], p[1], [40, 230, 60], 2 * r);
    }
    Portrait::from_rgba(portrait.width(), portrait.height(), px)
        .unwrap_or_else(|_| portrait.clone())
}

fn load_audio2lip(ckpts: &CheckpointDir) -> CliResult<Option<Arc<Audio2Lip>>> {
    let Some(path) = &ckpts.audio2lip else {
        return Ok(None);
    };
    let tensors = load_state_dict(path, Some("audio2lip")).map_err(|e| e.to_string())?;
    let model = Audio2Lip::from_tensors(tensors, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(Arc::new(model)))
}

fn pose_source(arg: &str) -> CliResult<PoseSource> {
    Ok(match arg {
        "fixed" => PoseSource::Fixed,
        "idle" => PoseSource::Idle(IdleSettings::default()),
        path => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("pose track {path}: cannot read: {e}"))?;
            PoseSource::Track(PoseTrack::parse(&text, path).map_err(|e| e.to_string())?)
        }
    })
}

fn emotion_input(emotion: Option<&str>, script: Option<&Path>) -> CliResult<EmotionInput> {
    if let Some(arg) = emotion {
        let (name, intensity) = match arg.split_once(':') {
            Some((name, level)) => {
                let v: f32 = level
                    .trim()
                    .parse()
                    .map_err(|_| format!("emotion {arg:?}: intensity {level:?} is not a number"))?;
                if !(0.0..=2.0).contains(&v) {
                    return Err(format!("emotion {arg:?}: intensity must be from 0 to 2"));
                }
                (name, v)
            }
            None => (arg, 1.0),
        };
        let e = Emotion::from_name(name).ok_or_else(|| {
            format!(
                "unknown emotion {name:?}; expected one of {}",
                Emotion::ALL.map(|e| e.name()).join(", ")
            )
        })?;
        return Ok(EmotionInput::Mix(EmotionMix::single(e.name(), intensity)));
    }
    if let Some(path) = script {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let origin = path.display().to_string();
        let script = EmotionScript::parse(&text, &origin).map_err(|e| e.to_string())?;
        return Ok(EmotionInput::Script(script));
    }
    Ok(EmotionInput::Own)
}

fn render(job: RenderJob) -> CliResult<()> {
    if job.frames_out.is_none() && job.gif.is_none() && job.apng.is_none() {
        return Err("nothing to write: give --frames-out DIR, --gif FILE or --apng FILE".into());
    }
    let models = Models::new(&job.line.ckpts, job.line.precision);
    let mut line = prepare_line(&job.portrait, &job.audio, &job.line, &models)?;
    announce_backend(line.backend, &models);
    if let Some(dir) = &job.frames_out {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let count = line.frames.len();
    let bar = progress(count as u64, "rendering");
    let mut out: Vec<FaceFrame> = Vec::new();
    let keep = job.gif.is_some() || job.apng.is_some();
    render_line(&mut line, |index, frame| {
        if let Some(dir) = &job.frames_out {
            save_frame(dir, index, &frame)?;
        }
        if keep {
            out.push(frame);
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(path) = &job.gif {
        write_gif(path, &out)?;
    }
    if let Some(path) = &job.apng {
        write_apng(path, &out)?;
    }
    eprintln!("edtalk: {count} frames at 25 fps");
    Ok(())
}

fn announce_backend(backend: Backend, models: &Models) {
    match (backend, models.generator_path()) {
        (Backend::Neural, Ok(path)) => eprintln!("edtalk: neural renderer ({})", path.display()),
        _ => eprintln!("edtalk: {backend} renderer"),
    }
}

/// Frame `index` as `DIR/frame_00000.png`, the name every `--frames-out` uses.
fn save_frame(dir: &Path, index: usize, frame: &FaceFrame) -> CliResult<()> {
    let path = dir.join(format!("frame_{index:05}.png"));
    image::save_buffer(
        &path,
        &frame.rgba,
        frame.width,
        frame.height,
        image::ExtendedColorType::Rgba8,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// A rendered crop pasted back into the whole portrait.
fn paste_frame(original: &Portrait, frame: FaceFrame, a: &AlignedPortrait) -> CliResult<FaceFrame> {
    let crop =
        Portrait::from_rgba(frame.width, frame.height, frame.rgba).map_err(|e| e.to_string())?;
    // Frames of any square size stand for the 256 crop the transform maps to.
    let pasted = bevy_edtalk::face::paste_back(original, &crop, &a.transform);
    Ok(FaceFrame {
        width: pasted.width(),
        height: pasted.height(),
        rgba: pasted.into_rgba(),
    })
}

fn load_rig(explicit: Option<&Path>, portrait: &Path) -> CliResult<Option<FaceRig>> {
    let sibling = portrait.with_extension("rig.ron");
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if sibling.is_file() => sibling,
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    FaceRig::from_ron(&text, &path.display().to_string())
        .map(Some)
        .map_err(|e| e.to_string())
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {eta}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

fn write_gif(path: &Path, frames: &[FaceFrame]) -> CliResult<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = GifEncoder::new_with_speed(std::io::BufWriter::new(file), 10);
    encoder
        .set_repeat(Repeat::Infinite)
        .map_err(|e| e.to_string())?;
    for f in frames {
        let img = image::RgbaImage::from_raw(f.width, f.height, f.rgba.clone())
            .ok_or("frame buffer size mismatch")?;
        let frame = image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(40, 1));
        encoder
            .encode_frame(frame)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn write_apng(path: &Path, frames: &[FaceFrame]) -> CliResult<()> {
    let err = |e: png::EncodingError| format!("{}: {e}", path.display());
    let first = frames.first().ok_or("no frames")?;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), first.width, first.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_animated(frames.len() as u32, 0).map_err(err)?;
    encoder.set_frame_delay(1, 25).map_err(err)?;
    let mut writer = encoder.write_header().map_err(err)?;
    for f in frames {
        writer.write_image_data(&f.rgba).map_err(err)?;
    }
    writer.finish().map_err(err)
}

fn bake(audio: &Path, ckpts: &Path, out: &Path) -> CliResult<()> {
    let decoded = decode_file(audio, &DecodeOptions::default()).map_err(|e| e.to_string())?;
    let model = load_audio2lip(&CheckpointDir::scan(ckpts))?;
    let with_model = model.is_some();
    let track = Audio2Motion::new(MotionConfig::default(), model)
        .bake(&decoded.samples)
        .map_err(|e| e.to_string())?;
    track.save(out).map_err(|e| e.to_string())?;
    eprintln!(
        "edtalk: {} frames baked to {} ({})",
        track.frames.len(),
        out.display(),
        if with_model {
            "Audio2Lip mouth coefficients + DSP mouth controls"
        } else {
            "DSP mouth controls; no Audio2Lip checkpoint"
        }
    );
    Ok(())
}

fn extract(frames_dir: &Path, ckpts: &Path, out: &Path) -> CliResult<()> {
    let found = CheckpointDir::scan(ckpts);
    let path = found.generator().ok_or_else(|| {
        format!(
            "extract needs EDTalk.pt (or EDTalk_lip_pose.pt) in {}",
            ckpts.display()
        )
    })?;
    let renderer =
        NeuralRenderer::load(path, &Device::Cpu, DType::F32).map_err(|e| e.to_string())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(frames_dir)
        .map_err(|e| format!("{}: {e}", frames_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no png/jpg frames", frames_dir.display()));
    }
    let bar = progress(files.len() as u64, "extracting");
    let mut track = MotionTrack::new(Vec::with_capacity(files.len()));
    for file in &files {
        let portrait = Portrait::load(file).map_err(|e| e.to_string())?;
        let c = renderer
            .coefficients_of(&portrait)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        track.frames.push(MotionFrame {
            lip_coeffs: Some(c.lip),
            pose_coeffs: Some(c.pose),
            exp_coeffs: c.exp,
            ..Default::default()
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    track.save(out).map_err(|e| e.to_string())?;
    eprintln!(
        "edtalk: {} frames of coefficients to {}",
        files.len(),
        out.display()
    );
    Ok(())
}

fn inspect(dir: &Path) -> CliResult<()> {
    let found = CheckpointDir::scan(dir);
    let entries = [
        ("EDTalk", &found.edtalk, "gen"),
        ("EDTalk_lip_pose", &found.lip_pose, "gen"),
        ("Audio2Lip", &found.audio2lip, "audio2lip"),
    ];
    println!("checkpoints in {}:", dir.display());
    for (name, path, key) in entries {
        let Some(path) = path else {
            println!("  {name:<16} missing");
            continue;
        };
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        match load_state_dict(path, Some(key)) {
            Ok(tensors) => {
                let params: usize = tensors.values().map(|t| t.elem_count()).sum();
                println!(
                    "  {name:<16} {} ({:.1} MB): {} tensors, {params} parameters",
                    path.display(),
                    bytes as f64 / 1e6,
                    tensors.len()
                );
            }
            Err(e) => println!("  {name:<16} {} unreadable: {e}", path.display()),
        }
    }
    let tier = if found.neural_ready() {
        "neural"
    } else {
        "procedural (neural needs a generator and Audio2Lip)"
    };
    println!("backend auto would pick: {tier}");
    Ok(())
}

fn bench(
    threads: Option<usize>,
    quick: bool,
    only: &[String],
    malloc_defaults: bool,
    ckpt_dir: PathBuf,
    precision: bevy_edtalk::model::Precision,
) -> CliResult<()> {
    let mut opts = BenchOptions {
        quick,
        retain_freed_memory: !malloc_defaults,
        ckpt_dir,
        precision,
        ..Default::default()
    };
    if let Some(t) = threads {
        opts.threads = t.max(1);
    }
    let want = |g: &str| only.is_empty() || only.iter().any(|o| o == g);
    // First: its peak is the process's, so nothing may run before it.
    if want("memory") {
        bevy_edtalk::bench::memory::run(&opts).map_err(|e| e.to_string())?;
    }
    if want("align") {
        bevy_edtalk::bench::align::run(&opts);
    }
    if want("procedural") {
        bevy_edtalk::bench::procedural::run(&opts);
    }
    if want("audio") {
        bevy_edtalk::bench::audio::run(&opts);
    } else if only.iter().any(|o| o == "audio2lip") {
        bevy_edtalk::bench::audio::audio2lip(&opts);
    }
    #[cfg(feature = "plugin")]
    if want("plugin") {
        bevy_edtalk::bench::plugin::run(&opts);
    }
    #[cfg(feature = "plugin")]
    if only.iter().any(|o| o == "plugin_startup") {
        bevy_edtalk::bench::plugin::run_startup(&opts);
    }
    #[cfg(feature = "plugin")]
    if only.iter().any(|o| o == "neural_line") {
        bevy_edtalk::bench::plugin::run_neural_line(&opts);
    }
    if want("neural") || only.iter().any(|o| o == "steady_state") {
        opts.steady_state_only = !want("neural");
        bevy_edtalk::bench::neural::run(&opts).map_err(|e| e.to_string())?;
    }
    if only.iter().any(|o| o == "layers") {
        bevy_edtalk::bench::layers::run(&opts).map_err(|e| e.to_string())?;
    }
    Ok(())
}
