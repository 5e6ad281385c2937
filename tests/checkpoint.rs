//! Checkpoint reading: the torch containers against their safetensors twins, error
//! reporting on damaged files, and the official full-size layout against what the
//! generator loader needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use bevy_edtalk::bench::neural::{
    OFFICIAL_CHANNELS, STYLE_DIM, generator_layout, random_state_dict,
};
use bevy_edtalk::model::Generator;
use bevy_edtalk::model::audio2lip::Audio2Lip;
use bevy_edtalk::model::checkpoint::{CheckpointError, load_state_dict};
use candle_core::{DType, Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/edtalk")
        .join(name)
}

/// Exact equality of two tensors of any dtype (compared as f64, which holds f32 and i64
/// values of this size exactly).
fn assert_same(name: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims(), "{name}: shape");
    let a = a
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = b
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(a == b, "{name}: values differ");
}

/// The container holds the tensors of `twin` with at most 4096 elements (README), all of
/// which must load with the same values.
fn check_container_against(container: &str, key: Option<&str>, twin: &str) {
    let pt = load_state_dict(&fixture(container), key).unwrap();
    let st = load_state_dict(&fixture(twin), None).unwrap();
    let small: HashSet<&String> = st
        .iter()
        .filter(|(_, t)| t.elem_count() <= 4096)
        .map(|(n, _)| n)
        .collect();
    assert!(!pt.is_empty());
    let names: HashSet<&String> = pt.keys().collect();
    assert_eq!(names, small, "{container}: tensor names");
    for (name, t) in &pt {
        assert_same(name, t, &st[name]);
    }
}

#[test]
fn generator_container_matches_its_safetensors() {
    check_container_against(
        "edtalk_tiny_container.pt",
        None,
        "edtalk_tiny_weights.safetensors",
    );
    check_container_against(
        "edtalk_tiny_container.pt",
        Some("gen"),
        "edtalk_tiny_weights.safetensors",
    );
}

#[test]
fn audio2lip_container_matches_its_safetensors() {
    check_container_against(
        "audio2lip_container.pt",
        None,
        "audio2lip_weights.safetensors",
    );
    let pt = load_state_dict(&fixture("audio2lip_container.pt"), Some("audio2lip")).unwrap();
    let counters: Vec<_> = pt
        .iter()
        .filter(|(n, _)| n.ends_with("num_batches_tracked"))
        .collect();
    assert!(!counters.is_empty(), "the container holds int64 counters");
    for (name, t) in counters {
        assert_eq!(t.dtype(), DType::I64, "{name}");
    }
}

#[test]
fn safetensors_are_upcast_to_f32() {
    let st = load_state_dict(&fixture("edtalk_tiny_weights.safetensors"), None).unwrap();
    assert!(st.values().all(|t| t.dtype() == DType::F32));
    // The file stores f16: the values must be exactly representable in f16.
    let t = &st["dec.input.input"];
    let back = t
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    assert_same("dec.input.input", t, &back);
}

#[test]
fn wrong_key_lists_the_keys_found() {
    let path = fixture("edtalk_tiny_container.pt");
    let err = load_state_dict(&path, Some("generator")).unwrap_err();
    match &err {
        CheckpointError::MissingKey { key, found, .. } => {
            assert_eq!(key, "generator");
            assert!(found.contains(&"gen".to_string()), "{found:?}");
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("edtalk_tiny_container.pt") && msg.contains("`generator`"),
        "{msg}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let path = fixture("no_such_checkpoint.pt");
    let err = load_state_dict(&path, None).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no_such_checkpoint.pt"), "{err}");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bevy_edtalk_ckpt_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn truncated_files_are_clear_errors() {
    let dir = temp_dir("truncated");
    for (src, keep) in [
        ("edtalk_tiny_container.pt", 0.5),
        ("edtalk_tiny_container.pt", 0.999),
        ("edtalk_tiny_weights.safetensors", 0.5),
    ] {
        let bytes = std::fs::read(fixture(src)).unwrap();
        let cut = (bytes.len() as f64 * keep) as usize;
        let path = dir.join(format!("cut_{cut}_{src}"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = load_state_dict(&path, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(path.file_name().unwrap().to_str().unwrap()),
            "{msg}"
        );
    }
    // Not a checkpoint at all.
    let junk = dir.join("junk.pt");
    std::fs::write(&junk, b"hello, not a checkpoint").unwrap();
    let err = load_state_dict(&junk, None).unwrap_err();
    assert!(
        matches!(err, CheckpointError::UnknownFormat { .. }),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `official_checkpoint_layout.json`: file → (top-level key, name → shape).
fn official_layout() -> BTreeMap<String, (String, BTreeMap<String, Vec<usize>>)> {
    let text = std::fs::read_to_string(fixture("official_checkpoint_layout.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (file, entry) in json.as_object().unwrap() {
        let key = entry["top_level_key"].as_str().unwrap().to_string();
        let tensors = entry["tensors"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(n, s)| {
                let shape = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (n.clone(), shape)
            })
            .collect();
        out.insert(file.clone(), (key, tensors));
    }
    out
}

#[test]
fn official_layout_is_the_generator_layout() {
    let layout = official_layout();
    for (file, with_exp) in [("EDTalk.pt", true), ("EDTalk_lip_pose.pt", false)] {
        let (key, tensors) = &layout[file];
        assert_eq!(key, "gen");
        let ours: BTreeMap<String, Vec<usize>> =
            generator_layout(&OFFICIAL_CHANNELS, STYLE_DIM, with_exp)
                .into_iter()
                .collect();
        assert_eq!(&ours, tensors, "{file}");
    }
}

#[test]
fn official_audio2lip_layout_loads_and_every_tensor_is_read() {
    let layout = official_layout();
    let (key, tensors) = &layout["Audio2Lip.pt"];
    assert_eq!(key, "audio2lip");
    let shapes: Vec<(String, Vec<usize>)> = tensors.clone().into_iter().collect();
    let mut weights = random_state_dict(&shapes, 3).unwrap();
    // BatchNorm variances must be positive for a finite forward pass.
    for (name, t) in weights.iter_mut() {
        if name.ends_with("running_var") {
            *t = (t.abs().unwrap() + 0.5).unwrap();
        }
    }
    let model = Audio2Lip::from_tensors(weights.clone(), &Device::Cpu).unwrap();
    let windows = Tensor::randn(0f32, 1.0, (3, 1, 80, 16), &Device::Cpu).unwrap();
    let out = model.forward(&windows).unwrap();
    assert_eq!(out.dims(), &[3, 20]);
    let values: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    // Every tensor but BatchNorm's step counter is needed, and its absence is named.
    for (name, _) in &shapes {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let mut partial = weights.clone();
        partial.remove(name);
        match Audio2Lip::from_tensors(partial, &Device::Cpu) {
            Ok(_) => panic!("Audio2Lip loaded without {name}"),
            Err(e) => assert!(e.to_string().contains(name.as_str()), "{name}: {e}"),
        }
    }
}

#[test]
fn full_size_generators_load_from_the_official_layout() {
    let layout = official_layout();
    for (file, exp_dim) in [("EDTalk.pt", 10), ("EDTalk_lip_pose.pt", 0)] {
        let shapes: Vec<(String, Vec<usize>)> = layout[file].1.clone().into_iter().collect();
        let weights = random_state_dict(&shapes, 1).unwrap();
        let generator = Generator::from_tensors(&weights, &Device::Cpu, DType::F32)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(generator.size(), 256, "{file}");
        assert_eq!(generator.style_dim(), 512, "{file}");
        assert_eq!(
            (generator.lip_dim(), generator.pose_dim()),
            (20, 6),
            "{file}"
        );
        assert_eq!(generator.exp_dim(), exp_dim, "{file}");
    }
}

/// Tensors whose values cannot affect the official output: the noise strengths (inference
/// passes no noise), `to_rgb1` (built but not called by `Synthesis.forward`), the EEM's
/// `conv1`/`norm1` (the official `EEM.forward` computes them, then overwrites the result),
/// and the blur kernels, fixed [1, 3, 3, 1] buffers that a port may rebuild.
fn may_be_unused(name: &str) -> bool {
    let eem_dead = name.starts_with("dec.fineadainresblock.")
        && (name.contains(".conv1.") || name.contains(".norm1."));
    name.ends_with(".noise.weight")
        || name.starts_with("dec.to_rgb1.")
        || name.ends_with(".kernel")
        || eem_dead
}

#[test]
fn every_other_layout_tensor_is_required() {
    // Same names as the official files (checked above), narrow widths so that the ~300
    // loads stay fast.
    let narrow = [
        (4, 8),
        (8, 8),
        (16, 8),
        (32, 8),
        (64, 4),
        (128, 4),
        (256, 4),
    ];
    for with_exp in [true, false] {
        let layout = generator_layout(&narrow, 64, with_exp);
        let full: HashMap<String, Tensor> = random_state_dict(&layout, 3).unwrap();
        let variant = Generator::from_tensors(&full, &Device::Cpu, DType::F32)
            .unwrap()
            .variant();
        let mut not_needed = Vec::new();
        for (name, _) in &layout {
            let mut less = full.clone();
            less.remove(name);
            // Without it the load must fail, or at least not build the same network.
            if let Ok(g) = Generator::from_tensors(&less, &Device::Cpu, DType::F32)
                && g.variant() == variant
            {
                not_needed.push(name.clone());
            }
        }
        let unexpected: Vec<_> = not_needed.iter().filter(|n| !may_be_unused(n)).collect();
        assert!(
            unexpected.is_empty(),
            "with_exp={with_exp}: the loader ignores {unexpected:?}"
        );
    }
}
