//! Named-tensor access for building the networks from a state dict.
//!
//! The generators are built from a `HashMap<String, Tensor>` with the official checkpoint
//! names (whatever file format it came from). [`Weights`] walks that map with a name
//! prefix, checks shapes, and moves tensors to the compute device and dtype.
//!
//! The map is held in a [`StateDict`], which hands each tensor out once and forgets it
//! then: when the caller gave the map away ([`StateDict::new`]), a raw checkpoint tensor
//! is freed as soon as its layer has made its own (scaled, re-laid-out) copy, instead of
//! the whole raw checkpoint (257 MB for EDTalk) staying alive next to the whole built
//! network (about 300 MB) until the caller drops it.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::error::{ModelError, ModelResult, shape_pattern};

/// A state dict being built into a network: [`Weights::get`] takes each tensor out of it
/// (names stay, so that [`Weights::contains`] still answers), so that the state dict
/// holds the last reference to a raw tensor only until its layer has been built.
pub struct StateDict {
    map: RefCell<HashMap<String, Option<Tensor>>>,
}

impl StateDict {
    /// Takes ownership of `map`. Tensors the caller still holds clones of stay alive, of
    /// course: give the map away to release the raw weights during the build.
    pub fn new(map: HashMap<String, Tensor>) -> Self {
        Self {
            map: RefCell::new(map.into_iter().map(|(k, t)| (k, Some(t))).collect()),
        }
    }
}

/// A prefixed view of a state dict, converting what it hands out to one device and dtype.
#[derive(Clone)]
pub struct Weights<'a> {
    map: &'a StateDict,
    prefix: String,
    device: Device,
    dtype: DType,
}

impl<'a> Weights<'a> {
    /// A view of the whole map; tensors come out on `device` as `dtype`.
    pub fn new(map: &'a StateDict, device: &Device, dtype: DType) -> Self {
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
        self.map.map.borrow().contains_key(&self.full(name))
    }

    /// The tensor `name`, whose shape must match `dims` (`None`: any size), converted to
    /// f32 on the CPU-independent path first so that f16 checkpoints upcast exactly. Each
    /// tensor can be read once: the state dict lets go of it here.
    pub fn get(&self, name: &str, dims: &[Option<usize>]) -> ModelResult<Tensor> {
        let full = self.full(name);
        let mut map = self.map.map.borrow_mut();
        let slot = map
            .get_mut(&full)
            .ok_or_else(|| ModelError::MissingTensor {
                name: full.clone(),
                expected: shape_pattern(dims),
            })?;
        let Some(t) = slot.as_ref() else {
            return Err(ModelError::Layout(format!(
                "{full} was read twice while building the network"
            )));
        };
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
        let t = slot.take().expect("checked above");
        drop(map);
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
