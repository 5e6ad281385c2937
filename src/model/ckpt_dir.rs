//! Finding the official checkpoints in a directory (`ckpts/` by default).

use std::path::{Path, PathBuf};

/// The checkpoint files found in a directory. `.pt` (as published) is preferred over a
/// `.safetensors` conversion of the same name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointDir {
    /// `EDTalk.pt`: mouth + pose + expression generator.
    pub edtalk: Option<PathBuf>,
    /// `EDTalk_lip_pose.pt`: mouth + pose generator.
    pub lip_pose: Option<PathBuf>,
    /// `Audio2Lip.pt`: audio to mouth coefficients.
    pub audio2lip: Option<PathBuf>,
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["pt", "pth", "safetensors"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

impl CheckpointDir {
    /// Looks for the official file names in `dir` (a missing directory finds nothing).
    pub fn scan(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            edtalk: find(dir, "EDTalk"),
            lip_pose: find(dir, "EDTalk_lip_pose"),
            audio2lip: find(dir, "Audio2Lip"),
        }
    }

    /// The generator to use: EDTalk.pt, else EDTalk_lip_pose.pt.
    pub fn generator(&self) -> Option<&Path> {
        self.edtalk.as_deref().or(self.lip_pose.as_deref())
    }

    /// Whether the neural tier can run: a generator and Audio2Lip.
    pub fn neural_ready(&self) -> bool {
        self.generator().is_some() && self.audio2lip.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_pt_and_needs_both_files() {
        let dir = std::env::temp_dir().join(format!("edtalk-ckpts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(CheckpointDir::scan(&dir), CheckpointDir::default());
        std::fs::write(dir.join("EDTalk_lip_pose.safetensors"), b"x").unwrap();
        std::fs::write(dir.join("EDTalk_lip_pose.pt"), b"x").unwrap();
        let found = CheckpointDir::scan(&dir);
        assert_eq!(
            found.generator(),
            Some(dir.join("EDTalk_lip_pose.pt").as_path())
        );
        assert!(!found.neural_ready());
        std::fs::write(dir.join("Audio2Lip.pt"), b"x").unwrap();
        std::fs::write(dir.join("EDTalk.pt"), b"x").unwrap();
        let found = CheckpointDir::scan(&dir);
        assert!(found.neural_ready());
        assert_eq!(found.generator(), Some(dir.join("EDTalk.pt").as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
