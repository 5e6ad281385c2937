//! The inference thread: owns the renderers, takes batched requests through bounded
//! channels, returns frames. Never blocks the caller.
