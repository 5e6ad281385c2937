//! Live voice streams (TTS): the game pushes f32 chunks at any rate into a [`VoiceStream`]
//! and [`super::SpeakStream`] makes a face speak it.
//!
//! Three parties, each with its own end of a channel, so none waits on another:
//! - the producer (the game's TTS thread) pushes chunks;
//! - the stream's analysis thread (`edtalk-voice-stream`) turns them into stereo frames for
//!   playback and, through the engine's `AudioStream` -> `MotionStream`, into motion frames
//!   (Audio2Lip on the neural tier, DSP lip-sync on the procedural one);
//! - the [`StreamPlayer`] plays the frames (on kira's audio thread, or on the game clock
//!   when there is no device) behind a jitter buffer as long as the motion's lookahead, so
//!   the mouth is known before its sound plays. When the buffer runs dry the position
//!   holds (a stalled producer does not make the face drift) and playback waits for
//!   another buffer's worth.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use kira::info::Info;
use kira::sound::{Sound, SoundData};
use kira::{Frame, Panning};

use crate::audio::{AudioStream, SAMPLE_RATE, SAMPLES_PER_FRAME};
use crate::model::audio2lip::Audio2Lip;
use crate::motion::{MotionConfig, MotionFrame, MotionStream};

/// Seconds of audio buffered before playback (re)starts: the motion's worst-case
/// lookahead plus one face frame, so a frame's mouth is ready before its sound plays.
pub const STREAM_PREBUFFER_SECS: f64 =
    (MotionStream::LOOKAHEAD_SAMPLES + SAMPLES_PER_FRAME) as f64 / SAMPLE_RATE as f64;

/// Longest stream accepted, in seconds; audio past it is dropped and reported.
const MAX_STREAM_SECS: f64 = 3600.0;

/// What the producer sends.
enum Chunk {
    Samples {
        data: Vec<f32>,
        rate: u32,
        channels: u16,
    },
    Problem(String),
    End,
}

/// State the producer and the plugin share.
#[derive(Default)]
struct ProducerShared {
    /// The plugin let go (line stopped, replaced, face despawned): pushes are refused.
    closed: AtomicBool,
    /// A face took the stream (a second [`super::SpeakStream`] with it is refused).
    attached: AtomicBool,
    /// The analysis thread has exited (nothing of the stream is left running).
    released: AtomicBool,
}

/// A live voice stream a game pushes samples into (e.g. a TTS engine's output). Cheap to
/// clone, `Send + Sync`: keep one clone on the producing thread. Give it to a face with
/// [`super::SpeakStream::new`]; end it with [`VoiceStream::finish`] (dropping every clone
/// ends it too).
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_edtalk::plugin::*;
/// fn talk(mut speak: MessageWriter<SpeakStream>, npc: Single<Entity, With<FacePortrait>>) {
///     let stream = VoiceStream::new();
///     speak.write(SpeakStream::new(*npc, &stream).with_tag("tts"));
///     std::thread::spawn(move || {
///         let chunk = vec![0.0f32; 2205]; // 100 ms of 22.05 kHz mono from the TTS engine
///         let _ = stream.push(&chunk, 22_050, 1);
///         stream.finish();
///     });
/// }
/// ```
#[derive(Clone)]
pub struct VoiceStream {
    tx: Sender<Chunk>,
    rx: Receiver<Chunk>,
    shared: Arc<ProducerShared>,
}

impl Default for VoiceStream {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for VoiceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceStream")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Why [`VoiceStream::push`] refused a chunk.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VoiceStreamError {
    /// The face stopped speaking the stream (stopped, another line, despawned).
    #[error("voice stream closed: the face no longer speaks it")]
    Closed,
    /// The chunk's format is unusable (also reported as an [`super::EdTalkError`]).
    #[error("voice stream chunk: {0}")]
    Format(String),
}

impl VoiceStream {
    /// A new, empty stream.
    pub fn new() -> Self {
        let (tx, rx) = unbounded();
        Self {
            tx,
            rx,
            shared: Arc::default(),
        }
    }

    /// Pushes interleaved samples at `sample_rate` Hz with `channels` channels. Chunks of
    /// any length (empty ones are ignored) and any rate: a rate different from the first
    /// chunk's is resampled to it (and reported once). Non-finite samples become silence
    /// (reported once). Never blocks.
    pub fn push(
        &self,
        samples: &[f32],
        sample_rate: u32,
        channels: u16,
    ) -> Result<(), VoiceStreamError> {
        if self.is_closed() {
            return Err(VoiceStreamError::Closed);
        }
        if sample_rate == 0 || channels == 0 {
            let e = format!(
                "unusable format {sample_rate} Hz, {channels} channels (chunk of {} samples \
                 dropped)",
                samples.len()
            );
            let _ = self.tx.send(Chunk::Problem(e.clone()));
            return Err(VoiceStreamError::Format(e));
        }
        if samples.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Chunk::Samples {
                data: samples.to_vec(),
                rate: sample_rate,
                channels,
            })
            .map_err(|_| VoiceStreamError::Closed)
    }

    /// Ends the stream: what was pushed plays out, then the line finishes.
    pub fn finish(&self) {
        let _ = self.tx.send(Chunk::End);
    }

    /// Whether the face let go of the stream (pushes are refused from then on).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether everything the plugin ran for this stream (its analysis thread and its
    /// sound) has ended.
    pub fn is_released(&self) -> bool {
        self.shared.released.load(Ordering::Acquire)
    }
}

/// What the analysis thread tells the plugin.
pub(crate) enum StreamEvent {
    /// The first chunk's format: what is played.
    Started { rate: u32, channels: u16 },
    /// Motion frames, in order, from frame 0 of the stream.
    Motion(Vec<MotionFrame>),
    /// Something in the input was wrong (reported; the stream goes on).
    Problem(String),
}

/// What the analysis thread sends the player.
enum PlayerInput {
    Frames { rate: u32, frames: Vec<Frame> },
    End,
}

/// Playback state the player publishes.
#[derive(Default)]
pub(crate) struct PlayerShared {
    /// Frames played, at the stream's rate.
    played: AtomicU64,
    rate: AtomicU32,
    /// Waiting for a buffer's worth of audio (at the start, or after running dry).
    buffering: AtomicBool,
    /// Everything played after the end of the stream.
    done: AtomicBool,
    /// The plugin stopped the line.
    stop: AtomicBool,
}

impl PlayerShared {
    /// Seconds of the stream played.
    pub(crate) fn position(&self) -> f64 {
        let rate = self.rate.load(Ordering::Acquire);
        if rate == 0 {
            return 0.0;
        }
        self.played.load(Ordering::Acquire) as f64 / rate as f64
    }

    pub(crate) fn buffering(&self) -> bool {
        self.buffering.load(Ordering::Acquire)
    }

    pub(crate) fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// Plays a stream's frames: on kira's audio thread ([`StreamSound`]) or, without a device,
/// driven by the game clock.
pub(crate) struct StreamPlayer {
    input: Receiver<PlayerInput>,
    buf: VecDeque<Frame>,
    rate: f64,
    /// Fraction of the way from `buf[0]` to `buf[1]`.
    frac: f64,
    playing: bool,
    ended: bool,
    gain: f32,
    panning: Panning,
    shared: Arc<PlayerShared>,
}

impl StreamPlayer {
    /// Renders `out` at `dt` seconds per output frame (linear interpolation from the
    /// stream's rate). Silence while buffering; the position only moves while playing.
    pub(crate) fn process(&mut self, out: &mut [Frame], dt: f64) {
        while let Ok(msg) = self.input.try_recv() {
            match msg {
                PlayerInput::Frames { rate, frames } => {
                    self.rate = rate as f64;
                    self.shared.rate.store(rate, Ordering::Release);
                    self.buf.extend(frames);
                }
                PlayerInput::End => self.ended = true,
            }
        }
        if self.shared.stop.load(Ordering::Acquire) {
            out.fill(Frame::ZERO);
            return;
        }
        let mut played = 0u64;
        for o in out.iter_mut() {
            if !self.playing {
                let wanted = (STREAM_PREBUFFER_SECS * self.rate) as usize;
                if self.rate > 0.0 && (self.ended || self.buf.len() >= wanted.max(1)) {
                    self.playing = true;
                } else {
                    *o = Frame::ZERO;
                    continue;
                }
            }
            let Some(&a) = self.buf.front() else {
                // Ran dry: hold the position and wait for another buffer's worth.
                self.playing = false;
                *o = Frame::ZERO;
                continue;
            };
            let b = self.buf.get(1).copied().unwrap_or(a);
            let f = self.frac as f32;
            *o = ((a + (b - a) * f) * self.gain).panned(self.panning);
            self.frac += dt * self.rate;
            while self.frac >= 1.0 && !self.buf.is_empty() {
                self.buf.pop_front();
                self.frac -= 1.0;
                played += 1;
            }
        }
        self.shared.played.fetch_add(played, Ordering::AcqRel);
        let dry = self.buf.is_empty();
        self.shared
            .buffering
            .store(!self.playing || (dry && !self.ended), Ordering::Release);
        if dry && self.ended {
            self.shared.done.store(true, Ordering::Release);
        }
    }
}

/// A [`StreamPlayer`] as a kira sound.
pub(crate) struct StreamSound(pub(crate) StreamPlayer);

impl Sound for StreamSound {
    fn process(&mut self, out: &mut [Frame], dt: f64, _info: &Info) {
        self.0.process(out, dt);
    }

    fn finished(&self) -> bool {
        self.0.shared.done() || self.0.shared.stop.load(Ordering::Acquire)
    }
}

impl SoundData for StreamSound {
    type Error = ();
    type Handle = ();

    fn into_sound(self) -> Result<(Box<dyn Sound>, ()), ()> {
        Ok((Box::new(self), ()))
    }
}

/// The plugin's end of a stream being spoken. Dropping it (line ended, stopped, face
/// despawned) closes the stream and stops its sound and its analysis thread.
pub(crate) struct StreamLine {
    pub(crate) events: Receiver<StreamEvent>,
    pub(crate) player: Arc<PlayerShared>,
    /// The player itself when there is no audio device (driven by the game clock).
    pub(crate) clock: Option<StreamPlayer>,
    producer: Arc<ProducerShared>,
}

impl Drop for StreamLine {
    fn drop(&mut self) {
        self.player.stop.store(true, Ordering::Release);
        self.producer.closed.store(true, Ordering::Release);
    }
}

impl StreamLine {
    /// Moves a clock-driven player forward by `seconds` of game time.
    pub(crate) fn advance_clock(&mut self, seconds: f64) {
        const CLOCK_RATE: f64 = 8_000.0;
        if let Some(p) = &mut self.clock {
            let n = (seconds * CLOCK_RATE).round().clamp(0.0, CLOCK_RATE) as usize;
            let mut scratch = vec![Frame::ZERO; n];
            p.process(&mut scratch, 1.0 / CLOCK_RATE);
        }
    }
}

/// Attaches `stream` to a face: starts its analysis thread and returns the player (to be
/// played on kira, or kept for the clock) and the plugin's end. `None` when the stream is
/// already spoken by a face or was closed.
pub(crate) fn open(
    stream: &VoiceStream,
    model: Option<Arc<Audio2Lip>>,
    gain: f32,
    panning: f32,
) -> Result<(StreamPlayer, StreamLine), String> {
    if stream.is_closed() {
        return Err("the voice stream was already closed by an earlier line".into());
    }
    if stream.shared.attached.swap(true, Ordering::AcqRel) {
        return Err("the voice stream is already spoken by a face".into());
    }
    let (play_tx, play_rx) = unbounded();
    let (event_tx, event_rx) = unbounded();
    let player_shared = Arc::new(PlayerShared {
        buffering: AtomicBool::new(true),
        ..Default::default()
    });
    let input = stream.rx.clone();
    let producer = stream.shared.clone();
    let analysis = Analysis {
        producer: producer.clone(),
        player: player_shared.clone(),
        play: play_tx,
        events: event_tx,
        model,
    };
    let spawned = std::thread::Builder::new()
        .name("edtalk-voice-stream".into())
        .spawn(move || analysis.run(input));
    if let Err(e) = spawned {
        producer.closed.store(true, Ordering::Release);
        producer.released.store(true, Ordering::Release);
        return Err(format!("could not start the voice stream's thread: {e}"));
    }
    let player = StreamPlayer {
        input: play_rx,
        buf: VecDeque::new(),
        rate: 0.0,
        frac: 0.0,
        playing: false,
        ended: false,
        gain,
        panning: Panning(panning),
        shared: player_shared.clone(),
    };
    Ok((
        player,
        StreamLine {
            events: event_rx,
            player: player_shared,
            clock: None,
            producer,
        },
    ))
}

/// The analysis thread's state.
struct Analysis {
    producer: Arc<ProducerShared>,
    player: Arc<PlayerShared>,
    play: Sender<PlayerInput>,
    events: Sender<StreamEvent>,
    model: Option<Arc<Audio2Lip>>,
}

/// Marks the stream released when the analysis thread ends, however it ends.
struct ReleaseOnDrop(Arc<ProducerShared>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.released.store(true, Ordering::Release);
    }
}

impl Analysis {
    fn run(self, input: Receiver<Chunk>) {
        let _release = ReleaseOnDrop(self.producer.clone());
        let mut motion = match MotionStream::new(MotionConfig::default(), self.model.clone()) {
            Ok(m) => m,
            Err(e) => {
                self.problem(format!("lip-sync could not start: {e}"));
                return;
            }
        };
        // The stream's rate (the first chunk's) and the 16 kHz converter.
        let mut format: Option<(u32, AudioStream)> = None;
        let mut seconds = 0.0f64;
        let mut told_nan = false;
        let mut told_rate = false;
        let mut told_long = false;
        loop {
            let stopped = || {
                self.producer.closed.load(Ordering::Acquire)
                    || self.player.stop.load(Ordering::Acquire)
            };
            if stopped() {
                return;
            }
            let chunk = match input.recv_timeout(Duration::from_millis(20)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                // Every producer handle dropped: the stream ended.
                Err(RecvTimeoutError::Disconnected) => Chunk::End,
            };
            let (mut data, rate, channels) = match chunk {
                Chunk::Samples {
                    data,
                    rate,
                    channels,
                } => (data, rate, channels as usize),
                Chunk::Problem(p) => {
                    self.problem(p);
                    continue;
                }
                Chunk::End => break,
            };
            let bad = data.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                data.iter_mut()
                    .filter(|v| !v.is_finite())
                    .for_each(|v| *v = 0.0);
                if !std::mem::replace(&mut told_nan, true) {
                    self.problem(format!(
                        "chunk at {seconds:.2} s had {bad} non-finite samples (NaN/inf), \
                         played as silence"
                    ));
                }
            }
            if data.len() % channels != 0 {
                self.problem(format!(
                    "chunk of {} samples is not a whole number of {channels}-channel frames; \
                     the last partial frame was dropped",
                    data.len()
                ));
                data.truncate(data.len() - data.len() % channels);
            }
            let mut frames: Vec<Frame> = data
                .chunks_exact(channels)
                .map(|f| match f {
                    [m] => Frame::from_mono(*m),
                    [l, r, ..] => Frame::new(*l, *r),
                    [] => Frame::ZERO,
                })
                .collect();
            let stream_rate = match &format {
                Some((r, _)) => *r,
                None => {
                    let a16 = match AudioStream::new(rate, 1) {
                        Ok(a) => a,
                        Err(e) => {
                            self.problem(e.to_string());
                            continue;
                        }
                    };
                    let _ = self.events.send(StreamEvent::Started {
                        rate,
                        channels: channels.min(2) as u16,
                    });
                    format = Some((rate, a16));
                    rate
                }
            };
            if rate != stream_rate {
                if !std::mem::replace(&mut told_rate, true) {
                    self.problem(format!(
                        "the stream's rate changed from {stream_rate} Hz to {rate} Hz at \
                         {seconds:.2} s; resampled to {stream_rate} Hz"
                    ));
                }
                frames = resample_linear(&frames, rate, stream_rate);
            }
            if seconds >= MAX_STREAM_SECS {
                if !std::mem::replace(&mut told_long, true) {
                    self.problem(format!(
                        "stream longer than {MAX_STREAM_SECS} s; the rest is dropped"
                    ));
                }
                continue;
            }
            seconds += frames.len() as f64 / stream_rate as f64;
            let mono: Vec<f32> = frames.iter().map(|f| 0.5 * (f.left + f.right)).collect();
            let _ = self.play.send(PlayerInput::Frames {
                rate: stream_rate,
                frames,
            });
            if let Some((_, a16)) = &mut format
                && let Err(e) = a16.push(&mono)
            {
                self.problem(e.to_string());
                continue;
            }
            if !self.analyse(&mut motion, &mut format, false) {
                return;
            }
        }
        let _ = self.play.send(PlayerInput::End);
        if let Some((_, a16)) = &mut format {
            let _ = a16.finish();
        }
        self.analyse(&mut motion, &mut format, true);
        // Stay until the line lets go, so the plugin's end sees everything sent.
        while !(self.producer.closed.load(Ordering::Acquire)
            || self.player.stop.load(Ordering::Acquire)
            || self.player.done())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Feeds the new 16 kHz audio to the motion stream and sends the frames it releases.
    /// `false` when the plugin's end is gone.
    fn analyse(
        &self,
        motion: &mut MotionStream,
        format: &mut Option<(u32, AudioStream)>,
        finish: bool,
    ) -> bool {
        if let Some((_, a16)) = format {
            motion.push(&a16.take());
        }
        if finish {
            motion.finish();
        }
        match motion.pull() {
            Ok(frames) if frames.is_empty() => true,
            Ok(frames) => self.events.send(StreamEvent::Motion(frames)).is_ok(),
            Err(e) => {
                self.problem(format!("lip-sync failed: {e}"));
                true
            }
        }
    }

    fn problem(&self, message: String) {
        let _ = self.events.send(StreamEvent::Problem(message));
    }
}

/// Linear resampling of one chunk from `from` Hz to `to` Hz (only used when a stream
/// changes rate mid-way, which is reported).
fn resample_linear(frames: &[Frame], from: u32, to: u32) -> Vec<Frame> {
    if frames.is_empty() || from == 0 || to == 0 {
        return Vec::new();
    }
    let n = (frames.len() as f64 * to as f64 / from as f64).round() as usize;
    let step = from as f64 / to as f64;
    (0..n)
        .map(|i| {
            let x = i as f64 * step;
            let j = (x.floor() as usize).min(frames.len() - 1);
            let k = (j + 1).min(frames.len() - 1);
            let t = (x - j as f64) as f32;
            frames[j] + (frames[k] - frames[j]) * t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player_for(stream: &VoiceStream) -> (StreamPlayer, StreamLine) {
        open(stream, None, 1.0, 0.0).unwrap()
    }

    fn wait_for(mut cond: impl FnMut() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("timed out");
    }

    #[test]
    fn the_player_buffers_plays_holds_when_dry_and_ends() {
        let stream = VoiceStream::new();
        let (mut player, line) = player_for(&stream);
        // 0.1 s at 1 kHz: less than the prebuffer, so nothing plays yet.
        stream.push(&[0.5; 100], 1_000, 1).unwrap();
        let mut out = vec![Frame::ZERO; 50];
        wait_for(|| {
            player.process(&mut out, 0.001);
            player.rate > 0.0
        });
        assert_eq!(line.player.position(), 0.0);
        assert!(line.player.buffering());
        assert!(out.iter().all(|f| f.left == 0.0));
        // Enough for the prebuffer: plays 50 ms.
        stream.push(&[0.5; 200], 1_000, 1).unwrap();
        wait_for(|| {
            player.process(&mut out, 0.001);
            line.player.position() > 0.0
        });
        let p = line.player.position();
        assert!(p > 0.0 && p <= 0.05 + 1e-9, "{p}");
        // Drain everything: the position holds at 0.3 s while dry.
        let mut long = vec![Frame::ZERO; 1000];
        player.process(&mut long, 0.001);
        assert!((line.player.position() - 0.3).abs() < 1e-9);
        assert!(line.player.buffering() && !line.player.done());
        player.process(&mut long, 0.001);
        assert!((line.player.position() - 0.3).abs() < 1e-9);
        stream.finish();
        wait_for(|| {
            player.process(&mut out, 0.001);
            line.player.done()
        });
    }

    #[test]
    fn dropping_the_line_closes_the_stream_and_ends_its_thread() {
        let stream = VoiceStream::new();
        let (_player, line) = player_for(&stream);
        stream.push(&[0.1; 441], 44_100, 1).unwrap();
        assert!(!stream.is_closed());
        drop(line);
        assert!(stream.is_closed());
        assert_eq!(
            stream.push(&[0.1; 4], 44_100, 1),
            Err(VoiceStreamError::Closed)
        );
        wait_for(|| stream.is_released());
        // A closed stream cannot be spoken again.
        assert!(open(&stream, None, 1.0, 0.0).is_err());
    }

    #[test]
    fn bad_chunks_are_reported_not_fatal() {
        let stream = VoiceStream::new();
        let (_player, line) = player_for(&stream);
        assert!(matches!(
            stream.push(&[0.0; 10], 0, 1),
            Err(VoiceStreamError::Format(_))
        ));
        stream.push(&[f32::NAN; 480], 48_000, 1).unwrap();
        stream.push(&[0.0; 3], 48_000, 2).unwrap();
        stream.push(&[0.0; 220], 22_050, 1).unwrap();
        stream.push(&[], 48_000, 1).unwrap();
        stream.finish();
        let mut problems = Vec::new();
        wait_for(|| {
            while let Ok(e) = line.events.try_recv() {
                if let StreamEvent::Problem(p) = e {
                    problems.push(p);
                }
            }
            problems.len() >= 4
        });
        let all = problems.join("\n");
        assert!(all.contains("0 Hz"), "{all}");
        assert!(all.contains("non-finite"), "{all}");
        assert!(all.contains("partial frame"), "{all}");
        assert!(all.contains("changed from 48000 Hz to 22050 Hz"), "{all}");
    }

    #[test]
    fn with_audio2lip_the_stream_gives_mouth_coefficients() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/edtalk/audio2lip_weights.safetensors"
        );
        let tensors =
            crate::model::checkpoint::load_state_dict(std::path::Path::new(path), None).unwrap();
        let model = Audio2Lip::from_tensors(tensors, &candle_core::Device::Cpu).unwrap();
        let stream = VoiceStream::new();
        let (_player, line) = open(&stream, Some(Arc::new(model)), 1.0, 0.0).unwrap();
        // 1 s at 22.05 kHz in 100 ms chunks, then the end: 25 frames, each with the 20
        // Audio2Lip coefficients.
        for k in 0..10 {
            let chunk: Vec<f32> = (0..2205)
                .map(|i| 0.3 * ((k * 2205 + i) as f32 * 0.07).sin())
                .collect();
            stream.push(&chunk, 22_050, 1).unwrap();
        }
        stream.finish();
        let mut frames = Vec::new();
        wait_for(|| {
            while let Ok(e) = line.events.try_recv() {
                if let StreamEvent::Motion(f) = e {
                    frames.extend(f);
                }
            }
            frames.len() >= 25
        });
        assert_eq!(frames.len(), 25);
        assert!(frames.iter().all(|f| f.lip_coeffs.is_some()));
    }

    #[test]
    fn linear_resampling_keeps_duration_and_level() {
        let frames = vec![Frame::from_mono(0.25); 2205];
        let out = resample_linear(&frames, 22_050, 48_000);
        assert_eq!(out.len(), 4800);
        assert!(out.iter().all(|f| (f.left - 0.25).abs() < 1e-6));
    }
}
