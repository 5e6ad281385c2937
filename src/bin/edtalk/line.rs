//! One line, portrait + audio to face frames: the code path `render` and `bake-clip` share,
//! so a baked clip holds exactly the frames `render --frames-out` writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bevy_edtalk::audio::{DecodeOptions, decode_file};
use bevy_edtalk::face::{AlignedPortrait, CROP_SIZE};
use bevy_edtalk::model::Precision;
use bevy_edtalk::model::audio2lip::Audio2Lip;
use bevy_edtalk::model::ckpt_dir::CheckpointDir;
use bevy_edtalk::model::generator::Generator;
use bevy_edtalk::motion::{Audio2Motion, MotionConfig, MotionFrame, MotionTrack};
use bevy_edtalk::render::neural::NeuralRenderer;
use bevy_edtalk::render::procedural::ProceduralRenderer;
use bevy_edtalk::render::{Backend, FaceFrame, FaceRenderer, FaceRequest, Portrait};
use candle_core::{DType, Device};

use super::{
    BackendArg, CliResult, aligned, emotion_input, fitted_rig, load_audio2lip, load_rig,
    paste_frame, pose_source,
};

/// How a line is animated and rendered (everything but its portrait, audio and outputs).
#[derive(clap::Args, Clone, Debug)]
pub struct LineOptions {
    /// One of the eight emotions (angry, contempt, disgusted, fear, happy, neutral, sad,
    /// surprised), optionally with an intensity from 0 to 2: `happy:0.6`.
    #[arg(long, conflicts_with = "script")]
    pub emotion: Option<String>,
    /// An emotion script (RON timeline).
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// `fixed` (the portrait's own pose), `idle`, or a pose track file (RON).
    #[arg(long, default_value = "fixed")]
    pub pose: String,
    /// A baked motion track (from `edtalk bake`) instead of analysing the audio.
    #[arg(long)]
    pub track: Option<PathBuf>,
    /// Face rig (RON) for the procedural renderer; default: `<portrait>.rig.ron` if
    /// present, else the default rig.
    #[arg(long)]
    pub rig: Option<PathBuf>,
    #[arg(long, default_value = "ckpts")]
    pub ckpts: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// The neural decoder's arithmetic: f32 (the reference) or bf16 (Intel AMX or AVX-512
    /// BF16; several times faster with AMX; f32 where the CPU has neither).
    #[arg(long, default_value = "f32")]
    pub precision: bevy_edtalk::model::Precision,
    /// Use the portrait as it is (no face detection and alignment). By default any portrait
    /// that is not already a 256x256 crop is aligned first.
    #[arg(long, conflicts_with = "anchors")]
    pub no_align: bool,
    /// Manual face anchors in portrait pixels when no face is detected: left eye x,y,
    /// right eye x,y, mouth centre x,y (six numbers, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub anchors: Option<Vec<f32>>,
    /// Paste the animated face back into the whole portrait (at its own resolution).
    #[arg(long)]
    pub paste_back: bool,
}

/// The checkpoints, each loaded once when first needed and shared by every line (a
/// manifest's lines on several threads share one copy of the weights).
pub struct Models {
    dir: PathBuf,
    found: CheckpointDir,
    audio2lip: OnceLock<Result<Option<Arc<Audio2Lip>>, String>>,
    generator: OnceLock<Result<Generator, String>>,
    precision: Precision,
}

impl Models {
    pub fn new(dir: &Path, precision: Precision) -> Self {
        Self {
            precision,
            dir: dir.to_path_buf(),
            found: CheckpointDir::scan(dir),
            audio2lip: OnceLock::new(),
            generator: OnceLock::new(),
        }
    }

    /// Whether `backend` means the neural renderer here (an error if it is asked for and
    /// the checkpoints are missing).
    pub fn neural(&self, backend: BackendArg) -> CliResult<bool> {
        match backend {
            BackendArg::Procedural => Ok(false),
            BackendArg::Auto => Ok(self.found.neural_ready()),
            BackendArg::Neural if self.found.neural_ready() => Ok(true),
            BackendArg::Neural => Err(format!(
                "--backend neural needs EDTalk.pt (or EDTalk_lip_pose.pt) and Audio2Lip.pt in {}",
                self.dir.display()
            )),
        }
    }

    fn audio2lip(&self) -> CliResult<Option<Arc<Audio2Lip>>> {
        self.audio2lip
            .get_or_init(|| load_audio2lip(&self.found))
            .clone()
    }

    /// The generator's checkpoint file.
    pub fn generator_path(&self) -> CliResult<&Path> {
        self.found
            .generator()
            .ok_or_else(|| format!("{}: no EDTalk.pt in it", self.dir.display()))
    }

    fn generator(&self) -> CliResult<Generator> {
        self.generator
            .get_or_init(|| {
                let path = self.generator_path()?;
                let mut g = Generator::load(path, &Device::Cpu, DType::F32)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                g.set_precision(self.precision);
                Ok(g)
            })
            .clone()
    }
}

/// A line ready to render: its motion, and a renderer holding its identity.
pub struct PreparedLine {
    pub frames: Vec<MotionFrame>,
    pub backend: Backend,
    /// The audio's length, when it was decoded (not with `--track`).
    pub audio_seconds: Option<f64>,
    renderer: Box<dyn FaceRenderer>,
    /// The whole portrait and its alignment, with `--paste-back`.
    paste: Option<(Portrait, AlignedPortrait)>,
}

/// Loads and analyses everything a line needs; errors name the file at fault.
pub fn prepare_line(
    portrait_path: &Path,
    audio_path: &Path,
    opts: &LineOptions,
    models: &Models,
) -> CliResult<PreparedLine> {
    let portrait = Portrait::load(portrait_path).map_err(|e| e.to_string())?;
    let neural = models.neural(opts.backend)?;
    let (frames, audio_seconds) = match &opts.track {
        Some(path) => (
            MotionTrack::load(path).map_err(|e| e.to_string())?.frames,
            None,
        ),
        None => {
            let audio =
                decode_file(audio_path, &DecodeOptions::default()).map_err(|e| e.to_string())?;
            let model = if neural { models.audio2lip()? } else { None };
            let config = MotionConfig {
                emotion: emotion_input(opts.emotion.as_deref(), opts.script.as_deref())?,
                pose: pose_source(&opts.pose)?,
                ..Default::default()
            };
            let frames = Audio2Motion::new(config, model)
                .generate(&audio.samples)
                .map_err(|e| e.to_string())?;
            (frames, Some(audio.samples.len() as f64 / 16_000.0))
        }
    };
    if frames.is_empty() {
        return Err(format!(
            "{}: shorter than one 25 fps frame (640 samples at 16 kHz)",
            audio_path.display()
        ));
    }
    let mut renderer: Box<dyn FaceRenderer> = if neural {
        Box::new(NeuralRenderer::new(models.generator()?))
    } else {
        Box::new(ProceduralRenderer::new())
    };
    let mut rig = load_rig(opts.rig.as_deref(), portrait_path)?;
    // EDTalk needs aligned crops (its crop_image2.py step); a 256x256 portrait is taken to
    // be one already.
    let is_crop = portrait.width() == CROP_SIZE && portrait.height() == CROP_SIZE;
    let alignment = if opts.no_align || (is_crop && opts.anchors.is_none()) {
        None
    } else {
        Some(aligned(&portrait, portrait_path, opts.anchors.as_deref())?)
    };
    let identity = match &alignment {
        Some(a) => {
            if rig.is_none() {
                rig = Some(fitted_rig(a));
            }
            a.image.clone()
        }
        None => portrait.clone(),
    };
    if opts.paste_back && alignment.is_none() {
        return Err(
            "--paste-back needs an aligned face (drop --no-align, or give --anchors)".into(),
        );
    }
    renderer
        .set_identity(0, &identity, rig.as_ref())
        .map_err(|e| e.to_string())?;
    let paste = match alignment {
        Some(a) if opts.paste_back => Some((portrait, a)),
        _ => None,
    };
    Ok(PreparedLine {
        frames,
        backend: renderer.backend(),
        audio_seconds,
        renderer,
        paste,
    })
}

/// Renders every frame in order, four at a time (the neural renderer batches them),
/// handing each with its index to `each`.
pub fn render_line(
    line: &mut PreparedLine,
    mut each: impl FnMut(usize, FaceFrame) -> CliResult<()>,
) -> CliResult<()> {
    for (chunk_index, chunk) in line.frames.chunks(4).enumerate() {
        let requests: Vec<FaceRequest> = chunk
            .iter()
            .map(|m| FaceRequest {
                identity: 0,
                motion: m.clone(),
            })
            .collect();
        let mut rendered = line.renderer.render(&requests).map_err(|e| e.to_string())?;
        if let Some((portrait, a)) = &line.paste {
            rendered = rendered
                .into_iter()
                .map(|f| paste_frame(portrait, f, a))
                .collect::<CliResult<_>>()?;
        }
        for (k, frame) in rendered.into_iter().enumerate() {
            each(chunk_index * 4 + k, frame)?;
        }
    }
    Ok(())
}
