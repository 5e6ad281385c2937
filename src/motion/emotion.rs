//! The eight EDTalk emotions: their expression-bank weights (neural renderer) and default
//! looks (procedural renderer).

use super::{EXP_DIM, ExpressionControls};
use serde::{Deserialize, Serialize};

/// The official weights, shipped as data (assets/emotions/predefined_exp_weights.ron) and
/// compiled in, in [`Emotion::ALL`] order.
static PREDEFINED_EXP_WEIGHTS: std::sync::LazyLock<[[f32; EXP_DIM]; 8]> =
    std::sync::LazyLock::new(|| {
        let text = include_str!("../../assets/emotions/predefined_exp_weights.ron");
        let table: std::collections::BTreeMap<String, [f32; EXP_DIM]> = ron::Options::default()
            .from_str(text)
            .expect("bundled predefined_exp_weights.ron is valid (checked by a unit test)");
        Emotion::ALL.map(|e| table[e.name()])
    });

/// One of EDTalk's eight predefined emotions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    /// Angry.
    Angry,
    /// Contempt.
    Contempt,
    /// Disgusted.
    Disgusted,
    /// Fear.
    Fear,
    /// Happy.
    Happy,
    /// Neutral: the official neutral weights.
    Neutral,
    /// Sad.
    Sad,
    /// Surprised.
    Surprised,
}

impl Emotion {
    /// All eight, in the official (alphabetical) order.
    pub const ALL: [Emotion; 8] = [
        Emotion::Angry,
        Emotion::Contempt,
        Emotion::Disgusted,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Neutral,
        Emotion::Sad,
        Emotion::Surprised,
    ];

    /// Lower-case name as used in the official repository and in RON files.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Contempt => "contempt",
            Emotion::Disgusted => "disgusted",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Neutral => "neutral",
            Emotion::Sad => "sad",
            Emotion::Surprised => "surprised",
        }
    }

    /// Parses a name (case-insensitive); `None` for anything else.
    pub fn from_name(name: &str) -> Option<Emotion> {
        Self::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Expression-bank weights of the official `ckpts/predefined_exp_weights/<name>.npy`.
    /// They index the learned bank of the official EDTalk.pt and mean nothing without it.
    pub fn exp_weights(self) -> [f32; EXP_DIM] {
        PREDEFINED_EXP_WEIGHTS[self as usize]
    }

    /// The procedural renderer's default look for this emotion at full intensity.
    pub fn default_look(self) -> ExpressionControls {
        let base = ExpressionControls::default();
        match self {
            Emotion::Neutral => base,
            Emotion::Happy => ExpressionControls {
                smile: 0.9,
                brow_raise: 0.15,
                squint: 0.35,
                ..base
            },
            Emotion::Sad => ExpressionControls {
                frown: 0.7,
                brow_raise: 0.45,
                brow_furrow: 0.35,
                eye_open: 0.8,
                ..base
            },
            Emotion::Angry => ExpressionControls {
                frown: 0.45,
                brow_furrow: 1.0,
                squint: 0.45,
                eye_open: 0.95,
                ..base
            },
            Emotion::Surprised => ExpressionControls {
                brow_raise: 1.0,
                eye_open: 1.3,
                ..base
            },
            Emotion::Fear => ExpressionControls {
                frown: 0.35,
                brow_raise: 0.8,
                brow_furrow: 0.5,
                eye_open: 1.25,
                ..base
            },
            Emotion::Disgusted => ExpressionControls {
                frown: 0.6,
                brow_furrow: 0.7,
                squint: 0.6,
                eye_open: 0.85,
                ..base
            },
            Emotion::Contempt => ExpressionControls {
                smile: 0.3,
                frown: 0.2,
                brow_furrow: 0.25,
                squint: 0.3,
                ..base
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spot values from the official .npy files, and every emotion distinct.
    #[test]
    fn exp_weights_are_the_official_ones() {
        assert_eq!(Emotion::Angry.exp_weights()[0], -1.231_093_f32);
        assert_eq!(Emotion::Happy.exp_weights()[5], 5.286_979_f32);
        assert_eq!(Emotion::Surprised.exp_weights()[9], 0.452_667_6_f32);
        for (i, a) in Emotion::ALL.iter().enumerate() {
            for b in &Emotion::ALL[i + 1..] {
                assert_ne!(a.exp_weights(), b.exp_weights());
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for e in Emotion::ALL {
            assert_eq!(Emotion::from_name(&e.name().to_uppercase()), Some(e));
        }
        assert_eq!(Emotion::from_name("bored"), None);
    }
}
