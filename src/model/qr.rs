//! Reduced Householder QR with LAPACK's conventions (`dgeqrf` + `dorgqr`), which is what
//! `torch.linalg.qr` returns. EDTalk orthonormalises its motion banks (512×26 mouth+pose,
//! 512×36 with expression) with it on every forward pass; the signs of Q's columns follow
//! from the reflector convention, so a different QR (Gram–Schmidt, positive-diagonal R)
//! would flip bank directions and change the output. Computed in f64 once at load.

use candle_core::{DType, Result, Tensor, bail};

/// The factors of `A = Q R` for an m×n matrix with m ≥ n: Q is m×n with orthonormal
/// columns, R is n×n upper triangular (its diagonal may be negative, as in LAPACK).
/// Both row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct QrF64 {
    /// Rows of A (m).
    pub rows: usize,
    /// Columns of A (n).
    pub cols: usize,
    /// m×n, row-major.
    pub q: Vec<f64>,
    /// n×n, row-major.
    pub r: Vec<f64>,
}

/// Factorises the row-major m×n matrix `a` (m ≥ n ≥ 1) in f64.
///
/// Householder reflectors as in LAPACK's `dlarfg`: for a column x = (α, x₂), β =
/// −sign(α)·‖x‖, τ = (β − α)/β, v = (1, x₂/(α − β)); no reflection (τ = 0) when x₂ = 0.
/// Q is the product H₁⋯Hₙ applied to the first n columns of the identity (`dorg2r`).
pub fn householder_qr(a: &[f64], rows: usize, cols: usize) -> Result<QrF64> {
    if cols == 0 || rows < cols {
        bail!("qr: need a tall matrix (rows ≥ cols ≥ 1), found {rows}×{cols}")
    }
    if a.len() != rows * cols {
        bail!(
            "qr: {rows}×{cols} matrix needs {} values, found {}",
            rows * cols,
            a.len()
        )
    }
    if let Some(bad) = a.iter().position(|v| !v.is_finite()) {
        bail!(
            "qr: non-finite value at row {}, column {}",
            bad / cols,
            bad % cols
        )
    }
    // Column-major working copy: each reflector works on one column at a time.
    let (m, n) = (rows, cols);
    let mut w: Vec<f64> = (0..n)
        .flat_map(|j| (0..m).map(move |i| (i, j)))
        .map(|(i, j)| a[i * n + j])
        .collect();
    let mut tau = vec![0.0f64; n];

    for k in 0..n {
        let (col_k, rest) = w[k * m..].split_at_mut(m);
        let alpha = col_k[k];
        let xnorm = norm2(&col_k[k + 1..]);
        if xnorm == 0.0 {
            tau[k] = 0.0;
            continue;
        }
        let beta = -alpha.hypot(xnorm).copysign(alpha);
        tau[k] = (beta - alpha) / beta;
        let scale = 1.0 / (alpha - beta);
        for v in &mut col_k[k + 1..] {
            *v *= scale;
        }
        col_k[k] = beta;
        // Apply H = I − τ v vᵀ (v₀ = 1) to the trailing columns.
        let v_tail = &col_k[k + 1..];
        for col in rest.chunks_exact_mut(m) {
            let dot = col[k] + dot(v_tail, &col[k + 1..]);
            let f = tau[k] * dot;
            col[k] -= f;
            for (c, v) in col[k + 1..].iter_mut().zip(v_tail) {
                *c -= f * v;
            }
        }
    }

    let mut r = vec![0.0f64; n * n];
    for j in 0..n {
        for i in 0..=j {
            r[i * n + j] = w[j * m + i];
        }
    }

    // dorg2r: build Q in place from the reflectors, last to first.
    let mut q = vec![0.0f64; m * n]; // column-major m×n
    for k in (0..n).rev() {
        let v_tail: Vec<f64> = w[k * m + k + 1..(k + 1) * m].to_vec();
        // Columns right of k: apply H_k.
        for j in k + 1..n {
            let col = &mut q[j * m..(j + 1) * m];
            let dot = col[k] + dot(&v_tail, &col[k + 1..]);
            let f = tau[k] * dot;
            col[k] -= f;
            for (c, v) in col[k + 1..].iter_mut().zip(&v_tail) {
                *c -= f * v;
            }
        }
        // Column k itself: H_k e_k.
        let col = &mut q[k * m..(k + 1) * m];
        col[..k].fill(0.0);
        col[k] = 1.0 - tau[k];
        for (c, v) in col[k + 1..].iter_mut().zip(&v_tail) {
            *c = -tau[k] * v;
        }
    }
    let q_rows: Vec<f64> = (0..m)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| q[j * m + i])
        .collect();
    Ok(QrF64 {
        rows: m,
        cols: n,
        q: q_rows,
        r,
    })
}

/// Reduced QR of a 2-D tensor (any float dtype, any device), computed in f64 on the CPU.
/// Returns (Q: m×n, R: n×n) in the input's dtype, on the input's device.
pub fn qr(a: &Tensor) -> Result<(Tensor, Tensor)> {
    let (m, n) = match a.dims() {
        &[m, n] => (m, n),
        dims => bail!("qr: expected a matrix, found shape {dims:?}"),
    };
    if !a.dtype().is_float() {
        bail!(
            "qr: expected a floating-point matrix, found {:?}",
            a.dtype()
        )
    }
    let values = a
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_device(&candle_core::Device::Cpu)?
        .to_vec1::<f64>()?;
    let f = householder_qr(&values, m, n)?;
    let q = Tensor::from_vec(f.q, (m, n), &candle_core::Device::Cpu)?
        .to_dtype(a.dtype())?
        .to_device(a.device())?;
    let r = Tensor::from_vec(f.r, (n, n), &candle_core::Device::Cpu)?
        .to_dtype(a.dtype())?
        .to_device(a.device())?;
    Ok((q, r))
}

/// Euclidean norm with scaling against overflow/underflow, as LAPACK's `dnrm2` does.
fn norm2(x: &[f64]) -> f64 {
    let scale = x.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    if scale == 0.0 {
        return 0.0;
    }
    let ssq: f64 = x.iter().map(|v| (v / scale) * (v / scale)).sum();
    scale * ssq.sqrt()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::max_abs_diff;
    use candle_core::Device;
    use std::collections::HashMap;

    fn load(file: &str) -> HashMap<String, Tensor> {
        let path = format!(
            "{}/tests/fixtures/edtalk/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture")
    }

    fn f32_of(map: &HashMap<String, Tensor>, name: &str) -> Tensor {
        map.get(name)
            .unwrap_or_else(|| panic!("fixture has no {name}"))
            .to_dtype(DType::F32)
            .unwrap()
    }

    #[test]
    fn matches_torch_linalg_qr() {
        let ops = load("ops_io.safetensors");
        let (q, r) = qr(&f32_of(&ops, "qr.A")).unwrap();
        let dq = max_abs_diff(&q, &f32_of(&ops, "qr.Q"));
        let dr = max_abs_diff(&r, &f32_of(&ops, "qr.R"));
        assert!(dq < 1e-5, "Q differs by {dq}");
        assert!(dr < 1e-4, "R differs by {dr}");
    }

    #[test]
    fn matches_the_generator_bank_bases() {
        let w = load("edtalk_tiny_weights.safetensors");
        let io = load("edtalk_tiny_io.safetensors");
        let lip = f32_of(&w, "direction_lipnonlip.weight");
        let exp = f32_of(&w, "direction_exp.weight");
        let (q26, _) = qr(&(&lip + 1e-8).unwrap()).unwrap();
        let d = max_abs_diff(&q26, &f32_of(&io, "direction_lipnonlip.Q"));
        assert!(d < 1e-5, "26-column bank differs by {d}");
        let both = (Tensor::cat(&[&lip, &exp], 1).unwrap() + 1e-8).unwrap();
        let (q36, _) = qr(&both).unwrap();
        let d = max_abs_diff(&q36, &f32_of(&io, "direction_exp.Q"));
        assert!(d < 1e-5, "36-column bank differs by {d}");
    }

    #[test]
    fn factors_reconstruct_and_are_orthonormal() {
        let (m, n) = (9usize, 4usize);
        // A deterministic, well-conditioned matrix with a negative leading entry.
        let a: Vec<f64> = (0..m * n)
            .map(|k| {
                ((k * 7919 % 23) as f64 - 11.0) / 7.0 + if k % (n + 1) == 0 { 3.0 } else { 0.0 }
            })
            .collect();
        let f = householder_qr(&a, m, n).unwrap();
        for i in 0..m {
            for j in 0..n {
                let qr: f64 = (0..n).map(|k| f.q[i * n + k] * f.r[k * n + j]).sum();
                assert!((qr - a[i * n + j]).abs() < 1e-12);
            }
        }
        for a_col in 0..n {
            for b_col in 0..n {
                let d: f64 = (0..m)
                    .map(|i| f.q[i * n + a_col] * f.q[i * n + b_col])
                    .sum();
                let want = if a_col == b_col { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-12);
            }
        }
        for i in 0..n {
            for j in 0..i {
                assert_eq!(f.r[i * n + j], 0.0);
            }
        }
        // LAPACK's sign: R's diagonal is −sign(α)·‖x‖, so a positive leading entry gives a
        // negative R₀₀.
        assert!(a[0] > 0.0 && f.r[0] < 0.0);
    }

    #[test]
    fn wide_or_bad_input_is_an_error() {
        assert!(householder_qr(&[1.0; 6], 2, 3).is_err());
        assert!(householder_qr(&[1.0; 5], 3, 2).is_err());
        assert!(householder_qr(&[1.0, f64::NAN, 0.0, 1.0], 2, 2).is_err());
        let t = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(qr(&t).unwrap_err().to_string().contains("matrix"));
    }
}
