//! Number-for-number parity of the EDTalk generators with the official PyTorch code, on the
//! narrow seeded-random fixtures of tests/fixtures/edtalk (see its README for tolerances).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use bevy_edtalk::model::checkpoint::load_state_dict;
use bevy_edtalk::model::synthesis::LevelTap;
use bevy_edtalk::model::{Generator, Precision, Variant};
use candle_core::{DType, Device, Tensor};

/// Relative tolerance on encoder/decoder taps: max |err| / max |reference|.
const TAP_REL: f32 = 1e-4;
/// Absolute tolerance on final images in [-1, 1].
const IMAGE_ABS: f32 = 1e-3;
/// Share of pixels that must be within [`IMAGE_ABS`] where the fixture is ill-conditioned.
///
/// With the random EDTalk.pt fixture weights the EEM features reach +-260 and vary sharply
/// between pixels, so the warp at levels >= 2 (and the images) turns rounding differences
/// into large errors at a few pixels: our own f32 and f64 runs differ by up to ~200 there,
/// and the PyTorch f32 reference differs from our f64 run by as much. No f32 port can
/// meet a max-error bound on those keys; they are checked on the bulk of the pixels
/// (median and share within tolerance), which a wrong formula would still fail.
const ILL_CONDITIONED_SHARE: f64 = 0.6;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/edtalk")
        .join(name)
}

fn load_f32(name: &str) -> HashMap<String, Tensor> {
    let map = load_state_dict(&fixture(name), None).expect("fixture loads");
    map.into_iter()
        .map(|(k, v)| {
            let v = v.to_dtype(DType::F32).expect("upcast");
            (k, v)
        })
        .collect()
}

fn io() -> &'static HashMap<String, Tensor> {
    static IO: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    IO.get_or_init(|| load_f32("edtalk_tiny_io.safetensors"))
}

fn io_lip_pose() -> &'static HashMap<String, Tensor> {
    static IO: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    IO.get_or_init(|| load_f32("edtalk_lip_pose_tiny_io.safetensors"))
}

fn generator() -> &'static Generator {
    static G: OnceLock<Generator> = OnceLock::new();
    G.get_or_init(|| {
        Generator::load(
            &fixture("edtalk_tiny_weights.safetensors"),
            &Device::Cpu,
            DType::F32,
        )
        .expect("EDTalk fixture generator loads")
    })
}

fn generator_lip_pose() -> &'static Generator {
    static G: OnceLock<Generator> = OnceLock::new();
    G.get_or_init(|| {
        Generator::load(
            &fixture("edtalk_lip_pose_tiny_weights.safetensors"),
            &Device::Cpu,
            DType::F32,
        )
        .expect("lip/pose fixture generator loads")
    })
}

fn input(key: &str) -> Tensor {
    io().get(key)
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .clone()
}

/// (max abs error, max abs error / max abs reference).
fn errors(key: &str, ours: &Tensor, reference: &Tensor) -> (f32, f32) {
    assert_eq!(ours.dims(), reference.dims(), "{key}: shape");
    let ours = ours.to_dtype(DType::F32).unwrap();
    let diff = (&ours - reference)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = reference
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let rel = diff / scale.max(1e-12);
    eprintln!("{key:40} max_abs {diff:.3e} rel {rel:.3e}");
    (diff, rel)
}

fn check_tap(io: &HashMap<String, Tensor>, key: &str, ours: &Tensor) {
    let reference = io.get(key).unwrap_or_else(|| panic!("fixture key {key}"));
    let (_, rel) = errors(key, ours, reference);
    assert!(
        rel <= TAP_REL,
        "{key}: relative error {rel:e} > {TAP_REL:e}"
    );
}

/// Sorted absolute errors.
fn abs_errors(ours: &Tensor, reference: &Tensor) -> Vec<f32> {
    let mut d: Vec<f32> = (ours.to_dtype(DType::F32).unwrap() - reference)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    d.sort_by(f32::total_cmp);
    d
}

fn quantile(sorted: &[f32], q: f64) -> f32 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// For the ill-conditioned keys: median within [`IMAGE_ABS`] and at least
/// [`ILL_CONDITIONED_SHARE`] of the values within it.
fn check_bulk(io: &HashMap<String, Tensor>, key: &str, ours: &Tensor) {
    let reference = io.get(key).unwrap_or_else(|| panic!("fixture key {key}"));
    errors(key, ours, reference);
    let d = abs_errors(ours, reference);
    let within = d.iter().filter(|&&e| e <= IMAGE_ABS).count() as f64 / d.len() as f64;
    let p50 = quantile(&d, 0.5);
    eprintln!(
        "{key:40} p50 {p50:.2e} p90 {:.2e} p99 {:.2e} within1e-3 {within:.4}",
        quantile(&d, 0.9),
        quantile(&d, 0.99),
    );
    assert!(p50 <= IMAGE_ABS, "{key}: median abs error {p50:e}");
    assert!(
        within >= ILL_CONDITIONED_SHARE,
        "{key}: only {within:.3} of values within {IMAGE_ABS:e}"
    );
}

fn check_image(io: &HashMap<String, Tensor>, key: &str, ours: &Tensor) {
    let reference = io.get(key).unwrap_or_else(|| panic!("fixture key {key}"));
    let (abs, _) = errors(key, ours, reference);
    assert!(abs <= IMAGE_ABS, "{key}: abs error {abs:e} > {IMAGE_ABS:e}");
}

#[test]
fn variants_are_detected() {
    assert_eq!(generator().variant(), Variant::Expression);
    assert_eq!(generator_lip_pose().variant(), Variant::LipPose);
    assert_eq!(generator().size(), 256);
    assert_eq!(
        (
            generator().lip_dim(),
            generator().pose_dim(),
            generator().exp_dim()
        ),
        (20, 6, 10)
    );
}

#[test]
fn encoder_taps() {
    let enc = generator().encode(&input("input.source")).unwrap();
    check_tap(io(), "enc.source.wa", &enc.wa);
    for i in 0..4 {
        check_tap(io(), &format!("enc.source.feat{i}"), &enc.feats[i]);
    }
}

#[test]
fn bank_bases_match_lapack_q() {
    let g = generator();
    check_tap(io(), "direction_lipnonlip.Q", g.q_lipnonlip());
    check_tap(io(), "direction_exp.Q", g.q_exp().unwrap());
}

#[test]
fn coefficients_from_images() {
    let g = generator();
    let pose = g.coefficients(&input("input.pose")).unwrap().pose;
    check_tap(io(), "alpha.pose_from_pose_img", &pose);
    let lip = g.coefficients(&input("input.lip")).unwrap().lip;
    check_tap(io(), "alpha.lip_from_lip_img", &lip);
    let exp = g.coefficients(&input("input.exp")).unwrap().exp.unwrap();
    check_tap(io(), "alpha.exp_from_exp_img", &exp);
}

#[test]
fn decoder_level_taps_and_exp_weight_mode() {
    let g = generator();
    let id = g.encode_identity(&input("input.source")).unwrap();
    let pose = g.coefficients(&input("input.pose")).unwrap().pose;
    let expr = g.expression(&id, Some(&input("input.alpha_exp"))).unwrap();
    let mut taps: Vec<LevelTap> = Vec::new();
    let img = g
        .decode_with_taps(
            &id,
            &expr,
            &input("input.alpha_lip"),
            &pose,
            Some(&mut taps),
        )
        .unwrap();
    for (i, tap) in taps.iter().take(4).enumerate() {
        check_tap(io(), &format!("dec.level{i}.eem"), &tap.feat);
        if i < 2 {
            check_tap(io(), &format!("dec.level{i}.out_warp"), &tap.out_warp);
        } else {
            check_bulk(io(), &format!("dec.level{i}.out_warp"), &tap.out_warp);
        }
    }
    check_bulk(io(), "out.EDTalk_A_use_exp_weight", &img);
    // The one-call mode gives the same.
    let img2 = g
        .edtalk_a_use_exp_weight(
            &input("input.source"),
            &input("input.alpha_lip"),
            Some(&input("input.pose")),
            &input("input.alpha_exp"),
        )
        .unwrap();
    check_bulk(io(), "out.EDTalk_A_use_exp_weight", &img2);
}

#[test]
fn mode_edtalk_a() {
    let img = generator()
        .edtalk_a(
            &input("input.source"),
            &input("input.alpha_lip"),
            Some(&input("input.pose")),
            &input("input.exp"),
        )
        .unwrap();
    check_bulk(io(), "out.EDTalk_A", &img);
}

#[test]
fn mode_edtalk_v() {
    let img = generator()
        .edtalk_v(
            &input("input.source"),
            &input("input.lip"),
            Some(&input("input.pose")),
            Some(&input("input.exp")),
        )
        .unwrap();
    check_bulk(io(), "out.EDTalk_V", &img);
}

#[test]
fn batch_of_two() {
    let g = generator();
    let id = g.encode_identity(&input("input.source")).unwrap();
    let pose = g.coefficients(&input("input.pose")).unwrap().pose;
    let expr = g.expression(&id, Some(&input("input.alpha_exp"))).unwrap();
    let lips = input("input.alpha_lip_batch");
    let img = g.decode(&id, &expr, &lips, &pose).unwrap();
    check_bulk(io(), "out.EDTalk_A_use_exp_weight_batch", &img);
    // The same two frames as two "characters" in one decode_many call.
    let img2 = g
        .decode_many(
            &[(&id, &expr), (&id, &expr)],
            &lips,
            &Tensor::cat(&[&pose, &pose], 0).unwrap(),
        )
        .unwrap();
    check_bulk(io(), "out.EDTalk_A_use_exp_weight_batch", &img2);
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn decode_many_matches_one_decode_per_character() {
    // Two different portraits and expressions: each image of the batched call (whose wide
    // levels run image by image) must be that character's own decode.
    let g = generator();
    let lips = input("input.alpha_lip_batch");
    let pose = g.coefficients(&input("input.pose")).unwrap().pose;
    let a = g.encode_identity(&input("input.source")).unwrap();
    let b = g.encode_identity(&input("input.pose")).unwrap();
    let ea = g.expression(&a, Some(&input("input.alpha_exp"))).unwrap();
    let eb = g.expression(&b, None).unwrap();
    let batched = g
        .decode_many(&[(&a, &ea), (&b, &eb)], &lips, &pose)
        .unwrap();
    for (k, (id, e)) in [(&a, &ea), (&b, &eb)].into_iter().enumerate() {
        let alone = g
            .decode(id, e, &lips.narrow(0, k, 1).unwrap(), &pose)
            .unwrap();
        let diff = max_abs_diff(&batched.narrow(0, k, 1).unwrap(), &alone);
        assert!(diff < 1e-5, "character {k}: max difference {diff}");
    }
    // The two characters really differ, so a mixed-up item would show.
    let between = max_abs_diff(
        &batched.narrow(0, 0, 1).unwrap(),
        &batched.narrow(0, 1, 1).unwrap(),
    );
    assert!(
        between > 0.01,
        "the two characters' images are alike: {between}"
    );
}

#[test]
fn lip_pose_from_audio_pose_image() {
    let img = generator_lip_pose()
        .from_audio_pose_image(
            &input("input.source"),
            &input("input.alpha_lip"),
            Some(&input("input.pose")),
        )
        .unwrap();
    check_image(io_lip_pose(), "out.from_audio_pose_image", &img);
}

#[test]
fn lip_pose_fix_pose() {
    let img = generator_lip_pose()
        .from_audio_pose_image(&input("input.source"), &input("input.alpha_lip"), None)
        .unwrap();
    check_image(io_lip_pose(), "out.fix_pose", &img);
}

#[test]
fn lip_pose_edtalk_v() {
    let img = generator_lip_pose()
        .edtalk_v(
            &input("input.source"),
            &input("input.lip"),
            Some(&input("input.pose")),
            None,
        )
        .unwrap();
    check_image(io_lip_pose(), "out.EDTalk_V", &img);
}

#[test]
fn missing_or_misshaped_tensors_are_named() {
    let mut map = load_f32("edtalk_lip_pose_tiny_weights.safetensors");
    let name = "dec.convs.3.conv.modulation.weight";
    let good = map.remove(name).unwrap();
    let err = Generator::from_tensors(&map, &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains(name) && err.contains("missing"), "{err}");
    map.insert(name.to_string(), good.narrow(0, 0, 3).unwrap());
    let err = Generator::from_tensors(&map, &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains(name) && err.contains("[3, 512]"), "{err}");
    let err = Generator::load(&fixture("does_not_exist.pt"), &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does_not_exist.pt"), "{err}");
}

/// Mean and largest absolute difference in 8-bit levels (images in [-1, 1]: x 127.5).
/// Also the share of values more than 2 levels off.
fn levels(ours: &Tensor, reference: &Tensor) -> (f32, f32, f64) {
    let d = abs_errors(ours, reference);
    let over2 = d.iter().filter(|&&e| e * 127.5 > 2.0).count() as f64 / d.len() as f64;
    eprintln!(
        "  p99 {:.3} p99.9 {:.3} levels, share over 2 levels {over2:.5}",
        quantile(&d, 0.99) * 127.5,
        quantile(&d, 0.999) * 127.5,
    );
    let mean = d.iter().sum::<f32>() / d.len() as f32;
    (mean * 127.5, d[d.len() - 1] * 127.5, over2)
}

/// The opt-in bf16 decoder ([`Precision::Bf16`], Intel AMX) against the PyTorch f32
/// fixtures, beside our f32 decoder's own error: the figures the README quotes. Skipped
/// (with a message) on CPUs without AMX, where bf16 runs as f32.
#[test]
fn bf16_decoder_error_against_pytorch() {
    if Precision::Bf16.effective() != Precision::Bf16 {
        eprintln!("no AMX-BF16 on this machine: bf16 runs as f32, nothing to measure");
        return;
    }
    let run = |g: &Generator| {
        g.from_audio_pose_image(
            &input("input.source"),
            &input("input.alpha_lip"),
            Some(&input("input.pose")),
        )
        .unwrap()
    };
    let mut bf16 = generator_lip_pose().clone();
    bf16.set_precision(Precision::Bf16);
    assert_eq!(bf16.precision(), Precision::Bf16);
    let reference = &io_lip_pose()["out.from_audio_pose_image"];
    let (f32_mean, f32_max, _) = levels(&run(generator_lip_pose()), reference);
    let (mean, max, over2) = levels(&run(&bf16), reference);
    eprintln!(
        "lip/pose image, levels: f32 mean {f32_mean:.4} max {f32_max:.3}; \
         bf16 mean {mean:.4} max {max:.3}"
    );
    // bf16 really ran (f32 is within a thousandth of a level here). Its error is about
    // half a level on average, with a tail: the random flow heads and the warp turn the
    // features' bf16 rounding into a few pixels tens of levels off (measured: mean 0.46,
    // p99 4.2, max 41 levels; 4 % of values over 2 levels).
    assert!(mean > 10.0 * f32_mean.max(1e-4), "bf16 ran as f32");
    assert!(
        mean < 1.0 && over2 < 0.1,
        "bf16 error: mean {mean} levels, {over2} over 2 levels"
    );

    // The expression generator's fixture is ill-conditioned (see ILL_CONDITIONED_SHARE):
    // judged on the bulk of the pixels, as f32 is.
    let mut bf16 = generator().clone();
    bf16.set_precision(Precision::Bf16);
    let img = |g: &Generator| {
        g.edtalk_a_use_exp_weight(
            &input("input.source"),
            &input("input.alpha_lip"),
            Some(&input("input.pose")),
            &input("input.alpha_exp"),
        )
        .unwrap()
    };
    let reference = &io()["out.EDTalk_A_use_exp_weight"];
    let d32 = abs_errors(&img(generator()), reference);
    let d16 = abs_errors(&img(&bf16), reference);
    let p50 = |d: &[f32]| quantile(d, 0.5) * 127.5;
    let p90 = |d: &[f32]| quantile(d, 0.9) * 127.5;
    eprintln!(
        "expression image, levels: f32 p50 {:.4} p90 {:.3}; bf16 p50 {:.4} p90 {:.3}",
        p50(&d32),
        p90(&d32),
        p50(&d16),
        p90(&d16)
    );
    // Measured: p50 3.3, p90 424 levels (f32: 0.002 and 0.31); a wrong bf16 GEMM would
    // put the median at tens of levels.
    assert!(p50(&d16) < 10.0, "bf16 median error {} levels", p50(&d16));
}
