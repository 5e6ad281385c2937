//! Errors of the EDTalk model code (loading and running the generators).

/// Everything that can go wrong building or running an EDTalk network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor the network needs is not in the state dict.
    #[error("missing tensor `{name}` in the state dict (expected shape {expected})")]
    MissingTensor {
        /// Full checkpoint name, e.g. `dec.convs.0.conv.weight`.
        name: String,
        /// The shape it should have, `?` for sizes read from other tensors.
        expected: String,
    },
    /// A tensor exists but its shape does not fit the network.
    #[error("tensor `{name}` has shape {found:?}, expected {expected}")]
    TensorShape {
        /// Full checkpoint name.
        name: String,
        /// The shape it should have, `?` for free sizes.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// The checkpoint as a whole does not describe a network this port knows.
    #[error("unsupported checkpoint layout: {0}")]
    Layout(String),
    /// An input tensor handed to the model has the wrong shape.
    #[error("input `{what}` has shape {found:?}, expected {expected}")]
    InputShape {
        /// Which argument.
        what: String,
        /// The shape it should have.
        expected: String,
        /// The shape given.
        found: Vec<usize>,
    },
    /// The operation needs the expression bank, which the lip/pose generator lacks.
    #[error("{0} needs the expression generator (EDTalk.pt); this is the lip/pose generator")]
    NoExpressionBank(&'static str),
    /// The checkpoint file could not be read.
    #[error(transparent)]
    Checkpoint(Box<crate::model::checkpoint::CheckpointError>),
    /// Building the network from a checkpoint file failed.
    #[error("{path}: {source}")]
    InFile {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What was wrong with its contents.
        source: Box<ModelError>,
    },
    /// A tensor operation failed (device error, out of memory...).
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
}

impl From<crate::model::checkpoint::CheckpointError> for ModelError {
    fn from(e: crate::model::checkpoint::CheckpointError) -> Self {
        Self::Checkpoint(Box::new(e))
    }
}

/// Shorthand used throughout `model`.
pub type ModelResult<T> = Result<T, ModelError>;

/// Formats a shape pattern where `None` is a free size.
pub(crate) fn shape_pattern(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |n| n.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}
