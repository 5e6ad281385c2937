//! The per-portrait face rig: landmark positions the procedural renderer warps around.
//! (Filled in by the procedural renderer work; this is the shared type.)

use serde::{Deserialize, Serialize};

/// Landmarks of one portrait, in normalised image coordinates (0..1, y down).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaceRig {}
