//! Reading the kernels' operands out of candle tensors.

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};

use crate::model::error::{ModelError, ModelResult};

/// The data of a contiguous f32 CPU tensor.
pub(super) fn cpu_f32<'a>(
    storage: &'a Storage,
    layout: &Layout,
    what: &str,
) -> ModelResult<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) => Ok(&v[start..end]),
        _ => Err(ModelError::Layout(format!(
            "{what}: the CPU kernels take a contiguous f32 CPU tensor"
        ))),
    }
}

/// A small tensor's values, checked against the expected count.
pub(super) fn small_vec(
    t: Option<&Tensor>,
    len: usize,
    what: &str,
) -> ModelResult<Option<Vec<f32>>> {
    let Some(t) = t else { return Ok(None) };
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if v.len() != len {
        return Err(ModelError::InputShape {
            what: what.into(),
            expected: format!("{len} values"),
            found: t.dims().to_vec(),
        });
    }
    Ok(Some(v))
}
