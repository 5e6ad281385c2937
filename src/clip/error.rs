//! What can go wrong reading or writing a face clip. Every message says what was wrong and
//! where (byte offset, frame index or file), so a broken asset is found without a debugger.

use std::path::PathBuf;

/// A face clip could not be read, decoded or written.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A clip file's contents are bad; `source` says how.
    #[error("{path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with its bytes.
        source: Box<ClipError>,
    },
    /// The bytes end before something the format says is there.
    #[error(
        "truncated face clip: the {what} at byte {offset} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        /// What was being read (e.g. "header", "frame 12").
        what: String,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes remain.
        available: usize,
    },
    /// The bytes do not start with the clip magic.
    #[error(
        "not a face clip: it starts with {found:?}, expected {:?}",
        super::format::MAGIC_TEXT
    )]
    BadMagic {
        /// The first bytes found (up to eight), lossily as text.
        found: String,
    },
    /// A format version this build cannot read.
    #[error(
        "face clip format version {found}; this build reads version {}",
        super::format::VERSION
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
    },
    /// A header field is out of range (frame size, rate, frame count, duration, metadata).
    #[error("face clip header: {0}")]
    BadHeader(String),
    /// One frame's record or its compressed pixels are bad.
    #[error("face clip frame {index}: {problem}")]
    BadFrame {
        /// The frame.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The stored checksum does not match the bytes: the file was damaged.
    #[error(
        "face clip checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is damaged"
    )]
    Checksum {
        /// CRC-32 in the file.
        stored: u32,
        /// CRC-32 of the bytes before it.
        computed: u32,
    },
    /// A frame index past the clip's end.
    #[error("frame {index} is past the clip's {count} frames")]
    NoSuchFrame {
        /// The index asked for.
        index: usize,
        /// Frames in the clip.
        count: usize,
    },
    /// A frame given to the encoder does not fit the clip.
    #[error("cannot add frame {index}: {problem}")]
    Encode {
        /// The frame's index in the clip.
        index: usize,
        /// Why not.
        problem: String,
    },
}

impl ClipError {
    /// Names `path` as where the bad bytes came from (I/O errors already name it).
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            e @ (ClipError::Io { .. } | ClipError::InFile { .. }) => e,
            e => ClipError::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}
