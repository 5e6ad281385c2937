//! Named-tensor access for building the networks from a state dict.
//!
//! The generators are built from a `HashMap<String, Tensor>` with the official checkpoint
//! names (whatever file format it came from). [`Weights`] walks that map with a name
//! prefix, checks shapes, and moves tensors to the compute device and dtype.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::error::{ModelError, ModelResult, shape_pattern};

/// A prefixed view of a state dict, converting what it hands out to one device and dtype.
#[derive(Clone)]
pub struct Weights<'a> {
    map: &'a HashMap<String, Tensor>,
    prefix: String,
    device: Device,
    dtype: DType,
}

impl<'a> Weights<'a> {
    /// A view of the whole map; tensors come out on `device` as `dtype`.
    pub fn new(map: &'a HashMap<String, Tensor>, device: &Device, dtype: DType) -> Self {
        Self {
            map,
            prefix: String::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// The view below `name` (`pp("dec")` then `get("input.input")` reads `dec.input.input`).
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Self {
            map: self.map,
            prefix,
            device: self.device.clone(),
            dtype: self.dtype,
        }
    }

    /// The device tensors are moved to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype tensors are converted to.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The full checkpoint name of `name` below this view.
    pub fn name(&self, name: &str) -> String {
        self.full(name)
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether `name` (below the prefix) exists.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(&self.full(name))
    }

    /// The tensor `name`, whose shape must match `dims` (`None`: any size), converted to
    /// f32 on the CPU-independent path first so that f16 checkpoints upcast exactly.
    pub fn get(&self, name: &str, dims: &[Option<usize>]) -> ModelResult<Tensor> {
        let full = self.full(name);
        let t = self
            .map
            .get(&full)
            .ok_or_else(|| ModelError::MissingTensor {
                name: full.clone(),
                expected: shape_pattern(dims),
            })?;
        let found = t.dims();
        let fits = found.len() == dims.len()
            && found
                .iter()
                .zip(dims)
                .all(|(f, d)| d.is_none_or(|d| d == *f));
        if !fits {
            return Err(ModelError::TensorShape {
                name: full,
                expected: shape_pattern(dims),
                found: found.to_vec(),
            });
        }
        // Scale/sum in f32 at load even for half-precision compute.
        Ok(t.to_device(&self.device)?.to_dtype(DType::F32)?)
    }

    /// Converts a prepared f32 tensor to the compute dtype.
    pub fn finish(&self, t: Tensor) -> ModelResult<Tensor> {
        Ok(t.to_dtype(self.dtype)?)
    }

    /// How many consecutive numbered children `prefix.0`, `prefix.1`, ... have a tensor
    /// named `leaf` below them.
    pub fn count(&self, list: &str, leaf: &str) -> usize {
        (0..)
            .take_while(|i| self.contains(&format!("{list}.{i}.{leaf}")))
            .count()
    }
}
