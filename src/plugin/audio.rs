//! Voice output with kira, or a clock when there is no audio device.

use std::sync::Arc;

use bevy::prelude::*;

use crate::audio::SourceAudio;
use kira::backend::mock::{MockBackend, MockBackendSettings};
use kira::sound::PlaybackState;
use kira::sound::static_sound::{StaticSoundData, StaticSoundHandle, StaticSoundSettings};
use kira::{AudioManager, AudioManagerSettings, DefaultBackend, Frame, Tween};

/// Which audio output plays the voice lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Reflect)]
pub enum AudioOutput {
    /// The system's default device; if there is none, a silent clock (warned once).
    #[default]
    Auto,
    /// kira's mock backend, advanced by [`EdTalkAudio::advance_mock`]: for tests.
    Mock {
        /// Mock sample rate in Hz; one `process` call renders `buffer` frames.
        sample_rate: u32,
        /// Frames per `process` call.
        buffer: usize,
    },
    /// No audio: lines advance with the game clock (servers, muted tests).
    Clock,
}

// Boxed: the managers are large and there is one per app.
enum Output {
    Device(Box<AudioManager<DefaultBackend>>),
    Mock(Box<AudioManager<MockBackend>>, usize, u32),
    Clock,
}

/// The plugin's audio output (a non-send resource: some platforms' audio streams must stay
/// on the main thread).
pub struct EdTalkAudio {
    output: Output,
}

/// A line being played: on kira, or on the clock.
pub(crate) enum Playback {
    Kira(StaticSoundHandle),
    Clock { started: f64, duration: f64 },
}

impl EdTalkAudio {
    /// Opens the output (called by the plugin when it is added).
    pub(crate) fn new(choice: AudioOutput) -> Self {
        let output = match choice {
            AudioOutput::Auto => match AudioManager::<DefaultBackend>::new(Default::default()) {
                Ok(m) => Output::Device(Box::new(m)),
                Err(e) => {
                    warn!(
                        "bevy_edtalk: no audio output ({e}); voice lines will be silent and \
                         faces follow the game clock"
                    );
                    Output::Clock
                }
            },
            AudioOutput::Mock {
                sample_rate,
                buffer,
            } => {
                let settings = AudioManagerSettings {
                    internal_buffer_size: buffer.max(1),
                    backend_settings: MockBackendSettings {
                        sample_rate: sample_rate.max(1),
                    },
                    ..Default::default()
                };
                match AudioManager::<MockBackend>::new(settings) {
                    Ok(m) => Output::Mock(Box::new(m), buffer.max(1), sample_rate.max(1)),
                    Err(()) => Output::Clock,
                }
            }
            AudioOutput::Clock => Output::Clock,
        };
        Self { output }
    }

    /// Whether sound actually reaches a device.
    pub fn has_device(&self) -> bool {
        matches!(self.output, Output::Device(_))
    }

    /// Mock output only: renders `seconds` of audio (rounded up to whole buffers), which
    /// moves every playing line forward. No effect on other outputs.
    pub fn advance_mock(&mut self, seconds: f64) {
        if let Output::Mock(manager, buffer, rate) = &mut self.output {
            let calls = (seconds * *rate as f64 / *buffer as f64).ceil().max(0.0) as usize;
            let backend = manager.backend_mut();
            for _ in 0..calls {
                backend.on_start_processing();
                backend.process();
            }
        }
    }

    /// Starts a line: the file's own samples when there are (`source`, at its rate and
    /// channels), else the mono samples. Never fails: if the device refuses, the line runs
    /// on the clock. Returns the playback and what is played (rate, channels).
    pub(crate) fn play(
        &mut self,
        samples: &Arc<[f32]>,
        sample_rate: u32,
        source: Option<&SourceAudio>,
        now: f64,
    ) -> (Playback, (u32, usize)) {
        let (rate, channels, frames): (u32, usize, Arc<[Frame]>) = match source {
            Some(s) => (
                s.sample_rate.max(1),
                s.channels.clamp(1, 2),
                s.frames.iter().map(|&[l, r]| Frame::new(l, r)).collect(),
            ),
            None => (
                sample_rate.max(1),
                1,
                samples.iter().map(|&s| Frame::from_mono(s)).collect(),
            ),
        };
        let duration = frames.len() as f64 / rate as f64;
        let data = || StaticSoundData {
            sample_rate: rate,
            frames: frames.clone(),
            settings: StaticSoundSettings::default(),
            slice: None,
        };
        let result = match &mut self.output {
            Output::Device(m) => m.play(data()).map_err(|e| e.to_string()),
            Output::Mock(m, ..) => {
                let r = m.play(data()).map_err(|e| e.to_string());
                // Let the mock renderer pick up the play command right away.
                m.backend_mut().on_start_processing();
                r
            }
            Output::Clock => Err(String::new()),
        };
        let playback = match result {
            Ok(handle) => Playback::Kira(handle),
            Err(e) => {
                if !e.is_empty() {
                    warn!("bevy_edtalk: could not play a voice line ({e}); using the clock");
                }
                Playback::Clock {
                    started: now,
                    duration,
                }
            }
        };
        (playback, (rate, channels))
    }
}

impl Playback {
    /// Playback position in seconds.
    pub(crate) fn position(&self, now: f64) -> f64 {
        match self {
            Playback::Kira(h) => h.position(),
            Playback::Clock { started, duration } => (now - started).clamp(0.0, *duration),
        }
    }

    /// Whether the line has played out.
    pub(crate) fn finished(&self, now: f64) -> bool {
        match self {
            Playback::Kira(h) => h.state() == PlaybackState::Stopped,
            Playback::Clock { started, duration } => now - started >= *duration,
        }
    }

    /// Stops the sound (fades out over a few milliseconds to avoid a click).
    pub(crate) fn stop(&mut self) {
        if let Playback::Kira(h) = self {
            h.stop(Tween {
                duration: std::time::Duration::from_millis(30),
                ..Default::default()
            });
        }
    }
}
