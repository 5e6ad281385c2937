//! Voice output with kira, or a clock when there is no audio device.
//!
//! One kira [`AudioManager`] plays every voice line. A game that uses kira for its own
//! sounds shares it instead of opening a second device: either it hands its manager to the
//! plugin ([`EdTalkAudio::from_manager`], inserted before the plugin is added) and reaches
//! it later through [`EdTalkAudio::manager_mut`], or it plays its own sounds on the
//! plugin's manager through that same method. Voice goes through the game's voice bus by
//! naming a track: [`EdTalkAudio::add_track`] (a sub-track of the plugin's manager) or
//! [`EdTalkAudio::insert_track`] (a track the game made on the shared manager), then
//! [`super::Speak::on_track`].

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;

use super::voice_stream::{StreamPlayer, StreamSound};
use crate::audio::SourceAudio;
use kira::backend::mock::{MockBackend, MockBackendSettings};
use kira::sound::PlaybackState;
use kira::sound::static_sound::{StaticSoundData, StaticSoundHandle, StaticSoundSettings};
use kira::track::{TrackBuilder, TrackHandle};
use kira::{AudioManager, AudioManagerSettings, Decibels, DefaultBackend, Frame, Panning, Tween};

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
    /// Named mixer tracks a line can be sent to ([`super::Speak::on_track`]).
    tracks: HashMap<String, TrackHandle>,
}

/// How loud a line plays.
#[derive(Clone, Copy, Debug, PartialEq, Reflect)]
pub enum Volume {
    /// Gain in decibels (0: as recorded; -60 and below: silent).
    Decibels(f32),
    /// Linear amplitude factor (1: as recorded; 0: silent).
    Amplitude(f32),
}

impl Default for Volume {
    fn default() -> Self {
        Volume::Decibels(0.0)
    }
}

impl Volume {
    /// The gain in decibels, or `None` when the number is not finite (or a negative
    /// amplitude).
    pub fn decibels(self) -> Option<f32> {
        match self {
            Volume::Decibels(db) if db.is_finite() => Some(db.max(Decibels::SILENCE.0)),
            Volume::Amplitude(a) if a.is_finite() && a > 0.0 => {
                Some((20.0 * a.log10()).max(Decibels::SILENCE.0))
            }
            Volume::Amplitude(0.0) => Some(Decibels::SILENCE.0),
            _ => None,
        }
    }
}

/// Errors of [`EdTalkAudio`]'s track and manager methods.
#[derive(Debug, thiserror::Error)]
pub enum EdTalkAudioError {
    /// The output is not a kira device (a mock or the silent clock has no tracks).
    #[error("no kira audio device is open (output is a mock or the silent clock)")]
    NoDevice,
    /// kira refused to add another track.
    #[error("kira could not add track `{0}`: too many tracks")]
    TrackLimit(String),
}

/// How a line is played: the [`super::Speak`] options, checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlayOptions {
    pub(crate) volume_db: f32,
    /// -1 (left) .. 1 (right).
    pub(crate) panning: f32,
    /// Seconds into the sound where playback starts.
    pub(crate) start: f64,
    /// A track registered with [`EdTalkAudio::add_track`] / [`EdTalkAudio::insert_track`].
    pub(crate) track: Option<String>,
}

/// A line being played: on kira, or on the clock.
pub(crate) enum Playback {
    Kira(StaticSoundHandle),
    Clock {
        started: f64,
        duration: f64,
    },
    /// Fed from outside every frame: a voice stream's player, a Bevy audio sink.
    External {
        position: f64,
        finished: bool,
    },
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
        Self {
            output,
            tracks: HashMap::new(),
        }
    }

    /// The plugin plays through the game's own kira manager (one audio device for the
    /// whole game). Insert it before adding the plugin:
    /// `app.insert_non_send(EdTalkAudio::from_manager(manager))`; the plugin keeps
    /// it (its [`super::EdTalkSettings::audio`] choice is then ignored).
    pub fn from_manager(manager: AudioManager<DefaultBackend>) -> Self {
        Self {
            output: Output::Device(Box::new(manager)),
            tracks: HashMap::new(),
        }
    }

    /// The kira manager the voice lines play on, when it is a device: the game can play
    /// its music and effects on it too, or add tracks and effects.
    pub fn manager_mut(&mut self) -> Option<&mut AudioManager<DefaultBackend>> {
        match &mut self.output {
            Output::Device(m) => Some(m),
            _ => None,
        }
    }

    /// Adds a sub-track (e.g. the game's voice bus, with its own volume and effects) to the
    /// plugin's manager under `name`; lines sent to it with [`super::Speak::on_track`]
    /// play through it. Works on the device and the mock output.
    pub fn add_track(
        &mut self,
        name: impl Into<String>,
        builder: TrackBuilder,
    ) -> Result<(), EdTalkAudioError> {
        let name = name.into();
        let handle = match &mut self.output {
            Output::Device(m) => m.add_sub_track(builder),
            Output::Mock(m, ..) => m.add_sub_track(builder),
            Output::Clock => return Err(EdTalkAudioError::NoDevice),
        }
        .map_err(|_| EdTalkAudioError::TrackLimit(name.clone()))?;
        self.tracks.insert(name, handle);
        Ok(())
    }

    /// Registers a track the game made on the shared manager under `name` (replacing any
    /// track of that name).
    pub fn insert_track(&mut self, name: impl Into<String>, track: TrackHandle) {
        self.tracks.insert(name.into(), track);
    }

    /// The track registered under `name`, e.g. to change the voice bus's volume.
    pub fn track_mut(&mut self, name: &str) -> Option<&mut TrackHandle> {
        self.tracks.get_mut(name)
    }

    /// A request's volume, panning and mixer track, checked: (gain in dB, panning, track).
    /// Values that make no sense (NaN, inf, an unregistered track) fall back to the
    /// default with a line in `problems` naming `what` asked for them.
    pub(crate) fn checked_mix(
        &self,
        what: &str,
        volume: Volume,
        panning: f32,
        track: Option<&str>,
        problems: &mut Vec<String>,
    ) -> (f32, f32, Option<String>) {
        let volume_db = volume.decibels().unwrap_or_else(|| {
            problems.push(format!(
                "{what} volume {volume:?} is not a usable gain; playing at 0 dB"
            ));
            0.0
        });
        let panning = if panning.is_finite() {
            panning.clamp(-1.0, 1.0)
        } else {
            problems.push(format!("{what} panning {panning} is not a number; centred"));
            0.0
        };
        let track = match track {
            Some(name) if !self.tracks.contains_key(name) => {
                problems.push(format!(
                    "{what} mixer track `{name}` is not registered (EdTalkAudio::add_track); \
                     playing on the main track"
                ));
                None
            }
            t => t.map(str::to_string),
        };
        (volume_db, panning, track)
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
    /// channels), else the mono samples, with the line's volume, panning, start offset and
    /// track. Never fails: if the device refuses, the line runs on the clock. Returns the
    /// playback and what is played (rate, channels).
    pub(crate) fn play(
        &mut self,
        samples: &Arc<[f32]>,
        sample_rate: u32,
        source: Option<&SourceAudio>,
        options: &PlayOptions,
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
        let start = options.start.clamp(0.0, duration);
        let settings = StaticSoundSettings::new()
            .volume(Decibels(options.volume_db))
            .panning(Panning(options.panning.clamp(-1.0, 1.0)))
            .start_position(start);
        let data = || StaticSoundData {
            sample_rate: rate,
            frames: frames.clone(),
            settings,
            slice: None,
        };
        let track = options
            .track
            .as_deref()
            .and_then(|t| self.tracks.get_mut(t));
        let result = match (&mut self.output, track) {
            (Output::Clock, _) => Err(String::new()),
            (Output::Device(_), Some(t)) => t.play(data()).map_err(|e| e.to_string()),
            (Output::Device(m), None) => m.play(data()).map_err(|e| e.to_string()),
            (Output::Mock(m, ..), track) => {
                let r = match track {
                    Some(t) => t.play(data()),
                    None => m.play(data()),
                }
                .map_err(|e| e.to_string());
                // Let the mock renderer pick up the play command right away.
                m.backend_mut().on_start_processing();
                r
            }
        };
        let playback = match result {
            Ok(handle) => Playback::Kira(handle),
            Err(e) => {
                if !e.is_empty() {
                    warn!("bevy_edtalk: could not play a voice line ({e}); using the clock");
                }
                Playback::Clock {
                    started: now - start,
                    duration,
                }
            }
        };
        (playback, (rate, channels))
    }
}

impl EdTalkAudio {
    /// Plays a voice stream on kira (on `track` when registered). Without a device the
    /// player comes back, to be driven by the game clock.
    pub(crate) fn play_stream(
        &mut self,
        player: StreamPlayer,
        track: Option<&str>,
    ) -> StreamOutput {
        if matches!(self.output, Output::Clock) {
            return StreamOutput::Clock(player);
        }
        let sound = StreamSound(player);
        let track = track.and_then(|t| self.tracks.get_mut(t));
        let result = match (track, &mut self.output) {
            (Some(t), _) => t.play(sound),
            (None, Output::Device(m)) => m.play(sound),
            (None, Output::Mock(m, ..)) => m.play(sound),
            (None, Output::Clock) => return StreamOutput::Clock(sound.0),
        };
        if let Output::Mock(m, ..) = &mut self.output {
            m.backend_mut().on_start_processing();
        }
        match result {
            Ok(()) => StreamOutput::Kira,
            Err(e) => StreamOutput::Failed(e.to_string()),
        }
    }
}

/// Where a voice stream plays.
pub(crate) enum StreamOutput {
    /// On kira's audio thread.
    Kira,
    /// On the game clock (no device): the plugin drives the player.
    Clock(StreamPlayer),
    /// kira refused it (e.g. too many sounds).
    Failed(String),
}

impl Playback {
    /// Playback position in seconds.
    pub(crate) fn position(&self, now: f64) -> f64 {
        match self {
            Playback::Kira(h) => h.position(),
            Playback::Clock { started, duration } => (now - started).clamp(0.0, *duration),
            Playback::External { position, .. } => *position,
        }
    }

    /// Whether the line has played out.
    pub(crate) fn finished(&self, now: f64) -> bool {
        match self {
            Playback::Kira(h) => h.state() == PlaybackState::Stopped,
            Playback::Clock { started, duration } => now - started >= *duration,
            Playback::External { finished, .. } => *finished,
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
