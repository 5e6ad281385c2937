//! The neural renderer against the generator's one-call official modes, on the tiny
//! fixture checkpoints: caching and batching must not change the frames.

use std::path::PathBuf;

use bevy_edtalk::model::Generator;
use bevy_edtalk::model::checkpoint::load_state_dict;
use bevy_edtalk::motion::MotionFrame;
use bevy_edtalk::render::{FaceRenderer, FaceRequest, NeuralRenderer, Portrait};
use candle_core::{DType, Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/edtalk")
        .join(name)
}

/// A fixture input image as an RGBA portrait (quantised to 8 bits).
fn portrait(key: &str) -> Portrait {
    let io = load_state_dict(&fixture("edtalk_tiny_io.safetensors"), None).unwrap();
    let t = io[key].to_dtype(DType::F32).unwrap().squeeze(0).unwrap();
    let (_, h, w) = t.dims3().unwrap();
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    let mut rgba = vec![255u8; h * w * 4];
    for p in 0..h * w {
        for c in 0..3 {
            rgba[p * 4 + c] =
                (((v[c * h * w + p] + 1.0) / 2.0 * 255.0).round()).clamp(0.0, 255.0) as u8;
        }
    }
    Portrait::from_rgba(w as u32, h as u32, rgba).unwrap()
}

fn to_u8(img: &Tensor) -> Vec<u8> {
    let v: Vec<f32> = img.flatten_all().unwrap().to_vec1().unwrap();
    let plane = v.len() / 3;
    let mut out = Vec::with_capacity(plane * 4);
    for p in 0..plane {
        for c in 0..3 {
            out.push((((v[c * plane + p].clamp(-1.0, 1.0)) + 1.0) / 2.0 * 255.0).round() as u8);
        }
        out.push(255);
    }
    out
}

fn load(name: &str) -> Generator {
    Generator::load(&fixture(name), &Device::Cpu, DType::F32).unwrap()
}

const LIP: [f32; 20] = [
    0.5, -0.3, 0.2, 0.0, 0.1, -0.4, 0.3, 0.2, -0.1, 0.0, 0.25, -0.2, 0.1, 0.05, -0.05, 0.3, 0.0,
    -0.1, 0.2, 0.1,
];

#[test]
fn lip_pose_renderer_matches_fix_pose_mode_and_batches() {
    let gen_ref = load("edtalk_lip_pose_tiny_weights.safetensors");
    let mut r = NeuralRenderer::new(load("edtalk_lip_pose_tiny_weights.safetensors"));
    let src = portrait("input.source");
    let other = portrait("input.exp");
    r.set_identity(1, &src, None).unwrap();
    r.set_identity(2, &other, None).unwrap();
    let motion = MotionFrame {
        lip_coeffs: Some(LIP),
        ..Default::default()
    };
    let one = r
        .render(&[FaceRequest {
            identity: 1,
            motion: motion.clone(),
        }])
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].width, one[0].height), (256, 256));
    let lip = Tensor::from_slice(&LIP, (1, 20), &Device::Cpu).unwrap();
    let expected = gen_ref
        .from_audio_pose_image(&r.portrait_tensor(&src).unwrap(), &lip, None)
        .unwrap();
    let expected = to_u8(&expected);
    let max_diff = one[0]
        .rgba
        .iter()
        .zip(&expected)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        max_diff <= 1,
        "renderer vs fix_pose mode: {max_diff} levels"
    );

    // Two identities in one call give the frames each gets alone.
    let alone2 = r
        .render(&[FaceRequest {
            identity: 2,
            motion: motion.clone(),
        }])
        .unwrap();
    let both = r
        .render(&[
            FaceRequest {
                identity: 1,
                motion: motion.clone(),
            },
            FaceRequest {
                identity: 2,
                motion,
            },
        ])
        .unwrap();
    for (batched, alone) in [(&both[0], &one[0]), (&both[1], &alone2[0])] {
        let d = batched
            .rgba
            .iter()
            .zip(&alone.rgba)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(d <= 1, "batched vs alone: {d} levels");
    }
    assert!(
        r.render(&[FaceRequest {
            identity: 9,
            motion: MotionFrame::default()
        }])
        .is_err()
    );
}

#[test]
fn expression_renderer_matches_exp_weight_mode() {
    let gen_ref = load("edtalk_tiny_weights.safetensors");
    let mut r = NeuralRenderer::new(load("edtalk_tiny_weights.safetensors"));
    let src = portrait("input.source");
    r.set_identity(7, &src, None).unwrap();
    let exp = [0.3f32, -0.2, 0.1, 0.0, 0.5, -0.1, 0.2, 0.0, 0.1, -0.3];
    let render = |r: &mut NeuralRenderer, exp: Option<[f32; 10]>| {
        r.render(&[FaceRequest {
            identity: 7,
            motion: MotionFrame {
                lip_coeffs: Some(LIP),
                exp_coeffs: exp,
                ..Default::default()
            },
        }])
        .unwrap()
        .remove(0)
    };
    let with_exp = render(&mut r, Some(exp));
    let lip = Tensor::from_slice(&LIP, (1, 20), &Device::Cpu).unwrap();
    let alpha_exp = Tensor::from_slice(&exp, (1, 10), &Device::Cpu).unwrap();
    let expected = gen_ref
        .edtalk_a_use_exp_weight(&r.portrait_tensor(&src).unwrap(), &lip, None, &alpha_exp)
        .unwrap();
    assert_eq!(with_exp.rgba, to_u8(&expected));
    // Switching expression changes the face; switching back reuses the cache exactly.
    let own = render(&mut r, None);
    assert_ne!(own.rgba, with_exp.rgba);
    assert_eq!(render(&mut r, Some(exp)).rgba, with_exp.rgba);
}
