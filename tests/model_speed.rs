//! Quick timing of the full-size generator with random weights (ignored by default; run
//! `cargo test --release --test model_speed -- --ignored --nocapture`). The benchmark
//! proper is `edtalk bench`; this is for profiling the model code in isolation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use bevy_edtalk::model::Generator;
use candle_core::{DType, Device, Tensor};

fn full_size_weights() -> HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/edtalk/official_checkpoint_layout.json");
    let layout: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let tensors = layout["EDTalk.pt"]["tensors"].as_object().unwrap();
    let dev = Device::Cpu;
    tensors
        .iter()
        .map(|(name, shape)| {
            let shape: Vec<usize> = shape
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let t = if name.ends_with("kernel") {
                Tensor::ones(shape, DType::F32, &dev).unwrap()
            } else if name.contains("bias") {
                Tensor::zeros(shape, DType::F32, &dev).unwrap()
            } else {
                Tensor::randn(0f32, 1.0, shape, &dev).unwrap()
            };
            (name.clone(), t)
        })
        .collect()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[test]
#[ignore]
fn time_full_size() {
    let map = full_size_weights();
    let g = Generator::from_tensors(&map, &Device::Cpu, DType::F32).unwrap();
    let src = Tensor::randn(0f32, 0.5, (1, 3, 256, 256), &Device::Cpu).unwrap();
    let t = Instant::now();
    let id = g.encode_identity(&src).unwrap();
    eprintln!("encode_identity {:.1} ms", ms(t));
    let alpha = Tensor::zeros((1, 10), DType::F32, &Device::Cpu).unwrap();
    let t = Instant::now();
    let expr = g.expression(&id, Some(&alpha)).unwrap();
    eprintln!("expression (EEM) {:.1} ms", ms(t));
    let lip = Tensor::zeros((1, 20), DType::F32, &Device::Cpu).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let _ = g.decode(&id, &expr, &lip, &id.own.pose).unwrap();
        eprintln!("decode b1 {:.1} ms", ms(t));
    }
    let items = vec![(&id, &expr); 4];
    let lip4 = Tensor::zeros((4, 20), DType::F32, &Device::Cpu).unwrap();
    let pose4 = id.own.pose.repeat((4, 1)).unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let _ = g.decode_many(&items, &lip4, &pose4).unwrap();
        eprintln!("decode b4 {:.1} ms/frame", ms(t) / 4.0);
    }
}

#[test]
#[ignore]
fn time_ops_256() {
    use bevy_edtalk::model::layers::{Fir, im2col};
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (1, 64, 256, 256), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (64, 64 * 9), &dev).unwrap();
    let xs = Tensor::randn(0f32, 1.0, (1, 128, 128, 128), &dev).unwrap();
    let wt = Tensor::randn(0f32, 1.0, (64 * 9, 128), &dev).unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let _ = im2col::conv2d(&x, &w, 3, 1, 1).unwrap();
        eprintln!("conv3x3 64->64 @256: {:.1} ms", ms(t));
        let t = Instant::now();
        let xp = x
            .pad_with_zeros(2, 1, 1)
            .unwrap()
            .pad_with_zeros(3, 1, 1)
            .unwrap();
        let taps: Vec<Tensor> = (0..9)
            .map(|i| {
                xp.narrow(2, i / 3, 256)
                    .unwrap()
                    .narrow(3, i % 3, 256)
                    .unwrap()
            })
            .collect();
        let cols = Tensor::stack(&taps, 2)
            .unwrap()
            .reshape((64 * 9, 65536))
            .unwrap();
        eprintln!("  im2col only: {:.1} ms", ms(t));
        let t = Instant::now();
        let _ = w.matmul(&cols).unwrap();
        eprintln!("  matmul only: {:.1} ms", ms(t));
        let t = Instant::now();
        let y = im2col::conv_transpose3x3_s2(&xs, &wt).unwrap();
        eprintln!("convT 128->64 @128->257: {:.1} ms", ms(t));
        let t = Instant::now();
        let _ = Fir::blur(1, 0, 2.0).forward(&y).unwrap();
        eprintln!("blur @258: {:.1} ms", ms(t));
        let t = Instant::now();
        let _ = bevy_edtalk::model::layers::conv::scaled_lrelu(&x).unwrap();
        eprintln!("lrelu @256: {:.1} ms", ms(t));
    }
}

/// Writes the full-size random generator as `EDTalk.safetensors` (and the fixture's
/// full-size Audio2Lip as `Audio2Lip.safetensors`) into `$EDTALK_RANDOM_CKPTS`, for
/// `edtalk bench --ckpts DIR --only plugin_startup` on a machine without the official files.
#[test]
#[ignore]
fn write_random_full_size_checkpoints() {
    let Some(dir) = std::env::var_os("EDTALK_RANDOM_CKPTS").map(PathBuf::from) else {
        eprintln!("set EDTALK_RANDOM_CKPTS to a directory");
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    candle_core::safetensors::save(&full_size_weights(), dir.join("EDTalk.safetensors")).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edtalk");
    std::fs::copy(
        fixtures.join("audio2lip_weights.safetensors"),
        dir.join("Audio2Lip.safetensors"),
    )
    .unwrap();
}
