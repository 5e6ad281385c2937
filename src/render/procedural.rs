//! The procedural renderer (face-rig warping). Placeholder until the procedural work lands.
