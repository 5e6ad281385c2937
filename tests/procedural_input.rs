//! Bad input for the procedural renderer and the face rig: odd portraits, broken rigs and
//! wild motion values give clear errors or repaired results, never a panic.

use bevy_edtalk::motion::MotionFrame;
use bevy_edtalk::render::procedural::ProceduralRenderer;
use bevy_edtalk::render::rig::{FaceRig, Point, RigError};
use bevy_edtalk::render::{FaceRenderer, FaceRequest, Portrait, RenderError};

fn gradient(w: u32, h: u32) -> Portrait {
    let rgba = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 90, 255]
        })
        .collect();
    Portrait::from_rgba(w, h, rgba).unwrap()
}

fn encode(img: image::DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes
}

fn talking() -> MotionFrame {
    let mut m = MotionFrame::default();
    m.mouth.jaw_open = 0.8;
    m.expression.eye_open = 0.2;
    m.head.yaw = 0.2;
    m
}

#[test]
fn portraits_of_any_size_and_aspect_render_square() {
    let mut r = ProceduralRenderer::new();
    for (i, (w, h)) in [
        (1, 1),
        (3, 500),
        (1000, 200),
        (256, 256),
        (700, 1300),
        (31, 17),
    ]
    .into_iter()
    .enumerate()
    {
        r.set_identity(i as u64, &gradient(w, h), None)
            .unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        let f = r
            .render(&[FaceRequest {
                identity: i as u64,
                motion: talking(),
            }])
            .unwrap();
        assert_eq!((f[0].width, f[0].height), (256, 256), "{w}x{h}");
        assert_eq!(f[0].rgba.len(), 256 * 256 * 4);
    }
}

#[test]
fn grayscale_and_alpha_portraits_are_accepted() {
    let gray = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(300, 200, |x, _| {
        image::Luma([(x % 256) as u8])
    }));
    let la = image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(64, 64, |x, y| {
        image::LumaA([100, ((x + y) * 2) as u8])
    }));
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(128, 256, |x, _| {
        image::Rgba([200, 50, 50, if x < 64 { 0 } else { 255 }])
    }));
    let mut r = ProceduralRenderer::new();
    for (i, img) in [gray, la, rgba].into_iter().enumerate() {
        let p = Portrait::from_encoded(&encode(img), "test image").unwrap();
        r.set_identity(i as u64, &p, None).unwrap();
        let f = r.render_one(i as u64, &talking()).unwrap();
        assert_eq!(f.rgba.len(), 256 * 256 * 4);
    }
    // Grayscale stays gray where nothing is painted: the top-left corner.
    let f = r.render_one(0, &MotionFrame::default()).unwrap();
    assert_eq!(f.rgba[0], f.rgba[1]);
    assert_eq!(f.rgba[1], f.rgba[2]);
}

#[test]
fn inconsistent_portrait_buffers_are_errors() {
    let mut r = ProceduralRenderer::new();
    // The fields are private: an inconsistent portrait cannot even be built.
    let err = Portrait::from_rgba(10, 10, vec![0; 7]).unwrap_err();
    assert!(err.to_string().contains("10x10"), "{err}");
    assert!(Portrait::from_rgba(0, 5, vec![]).is_err());
    assert!(Portrait::from_rgba(9000, 1, vec![0; 9000 * 4]).is_err());
    let p = Portrait::from_rgba(3, 2, vec![7; 24]).unwrap();
    assert_eq!((p.width(), p.height(), p.rgba().len()), (3, 2, 24));
    assert!(p.crop(2, 0, 2, 1).is_none(), "crop past the right edge");
    assert!(p.crop(0, 0, u32::MAX, 1).is_none(), "overflowing crop");
    assert_eq!(p.crop(1, 1, 2, 1).unwrap().rgba().len(), 8);
    assert!(matches!(
        r.render_one(1, &MotionFrame::default()),
        Err(RenderError::UnknownIdentity(1, _))
    ));
}

#[test]
fn wild_motion_values_render_like_their_clamped_or_neutral_values() {
    let mut r = ProceduralRenderer::new();
    r.set_identity(7, &gradient(256, 256), None).unwrap();
    let neutral = r.render_one(7, &MotionFrame::default()).unwrap();
    let mut nan = MotionFrame::default();
    nan.mouth.jaw_open = f32::NAN;
    nan.mouth.lip_width = f32::INFINITY;
    nan.expression.eye_open = f32::NAN;
    nan.head.yaw = f32::NEG_INFINITY;
    nan.head.roll = f32::NAN;
    nan.mouth.lip_width = f32::NAN;
    assert_eq!(r.render_one(7, &nan).unwrap(), neutral);
    let mut huge = MotionFrame::default();
    huge.mouth.jaw_open = 1e9;
    huge.head.yaw = 40.0;
    huge.expression.squint = -3.0;
    let mut clamped = MotionFrame::default();
    clamped.mouth.jaw_open = 1.0;
    clamped.head.yaw = bevy_edtalk::render::procedural::controls::MAX_HEAD_ANGLE;
    assert_eq!(
        r.render_one(7, &huge).unwrap(),
        r.render_one(7, &clamped).unwrap()
    );
}

#[test]
fn rig_landmarks_slightly_outside_are_clamped() {
    let mut rig = FaceRig::default();
    rig.face_outline[0] = Point::new(-0.1, 0.5);
    rig.chin = Point::new(0.5, 1.05);
    let (fixed, notes) = rig.validated().unwrap();
    assert_eq!(fixed.face_outline[0], Point::new(0.0, 0.5));
    assert_eq!(fixed.chin, Point::new(0.5, 1.0));
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("face_outline[0]")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("chin")), "{notes:?}");
}

#[test]
fn rig_landmarks_far_outside_or_not_finite_are_errors() {
    let rig = FaceRig {
        nose_tip: Point::new(0.5, 3.0),
        ..FaceRig::default()
    };
    let err = rig.validated().unwrap_err();
    assert!(matches!(err, RigError::OutsideImage { .. }), "{err}");
    assert!(err.to_string().contains("nose_tip"), "{err}");

    let mut rig = FaceRig::default();
    rig.left_eye.upper.x = f32::NAN;
    let err = rig.validated().unwrap_err();
    assert!(err.to_string().contains("left_eye.upper"), "{err}");

    let mut rig = FaceRig::default();
    rig.face_outline.truncate(2);
    assert!(matches!(rig.validated(), Err(RigError::Outline(2))));
}

#[test]
fn rig_pairs_the_wrong_way_round_are_swapped() {
    let good = FaceRig::default();
    let mut rig = good.clone();
    std::mem::swap(&mut rig.left_eye, &mut rig.right_eye);
    std::mem::swap(&mut rig.mouth_left, &mut rig.mouth_right);
    std::mem::swap(&mut rig.upper_lip, &mut rig.lower_lip);
    std::mem::swap(&mut rig.left_brow.outer, &mut rig.left_brow.inner);
    std::mem::swap(&mut rig.right_eye.upper, &mut rig.right_eye.lower);
    let (fixed, notes) = rig.validated().unwrap();
    assert_eq!(fixed, good);
    assert_eq!(notes.len(), 5, "{notes:?}");
}

#[test]
fn rig_orders_no_swap_can_fix_are_errors() {
    let mut rig = FaceRig::default();
    // The mouth above the nose and eyes.
    for p in [
        &mut rig.mouth_left,
        &mut rig.mouth_right,
        &mut rig.upper_lip,
        &mut rig.lower_lip,
    ] {
        p.y -= 0.45;
    }
    let err = rig.validated().unwrap_err();
    assert!(matches!(err, RigError::Order { .. }), "{err}");

    let mut rig = FaceRig::default();
    rig.left_eye.inner = rig.left_eye.outer;
    let err = rig.validated().unwrap_err();
    assert!(matches!(err, RigError::Degenerate { .. }), "{err}");

    // The renderer passes rig errors on, naming the identity.
    let mut r = ProceduralRenderer::new();
    let err = r
        .set_identity(3, &gradient(64, 64), Some(&rig))
        .unwrap_err();
    assert!(matches!(err, RenderError::Rig(_)), "{err}");
    assert!(err.to_string().contains("identity 3"), "{err}");
}

#[test]
fn rig_ron_errors_name_the_source_and_line() {
    let text = FaceRig::default().to_ron().unwrap();
    let broken = text.replacen("nose_tip", "nose_tipp", 1);
    let err = FaceRig::from_ron(&broken, "bad.rig.ron").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.rig.ron"), "{msg}");
    assert!(msg.contains("nose_tipp"), "{msg}");
    // The line of the typo: RON positions are `line:column`.
    let line = text.lines().position(|l| l.contains("nose_tip")).unwrap() + 1;
    assert!(msg.contains(&format!("{line}:")), "{msg}");
    let err = FaceRig::load("/no/such/dir/x.rig.ron").unwrap_err();
    assert!(err.to_string().contains("x.rig.ron"), "{err}");
}

#[test]
fn bundled_rigs_load_and_need_no_repair() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/portraits");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".rig.ron") {
            let rig = FaceRig::load(&path).unwrap();
            let (_, notes) = rig.validated().unwrap();
            assert!(notes.is_empty(), "{}: {notes:?}", path.display());
            n += 1;
        }
    }
    assert!(n >= 4, "expected at least 4 bundled rigs, found {n}");
}

#[test]
fn batches_mix_identities_and_removed_ones_are_unknown() {
    let mut r = ProceduralRenderer::new();
    r.set_identity(1, &gradient(256, 256), None).unwrap();
    r.set_identity(2, &gradient(64, 300), None).unwrap();
    let req = |identity| FaceRequest {
        identity,
        motion: talking(),
    };
    let frames = r.render(&[req(1), req(2), req(1)]).unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0], frames[2]);
    assert_ne!(frames[0], frames[1]);
    r.remove_identity(2);
    r.remove_identity(99);
    assert!(matches!(
        r.render(&[req(1), req(2)]),
        Err(RenderError::UnknownIdentity(2, _))
    ));
}
