//! Game audio in: `Speak` playback options, faces following Bevy's own audio
//! (`lip_sync_to_*`) and live voice streams (`speak_stream_*`). Headless: kira's mock
//! backend, manual time (40 ms a frame), rodio sinks without a device advanced by hand.

mod common;

use std::num::NonZero;
use std::sync::{Arc, Mutex};

use bevy::audio::{AudioPlayer, AudioSink, AudioSource};
use bevy::prelude::*;
use bevy_edtalk::plugin::kira::Frame;
use bevy_edtalk::plugin::kira::effect::{Effect, EffectBuilder};
use bevy_edtalk::plugin::kira::info::Info;
use bevy_edtalk::plugin::kira::track::TrackBuilder;
use bevy_edtalk::plugin::*;
use common::*;

// ---------------------------------------------------------------------------------------
// Helpers

/// Interleaved samples of the test voice at `rate` Hz: silence before `on`, voice until
/// `off`, silence to `total` seconds; stereo copies the voice to both channels.
fn voice(rate: u32, channels: usize, on: f32, off: f32, total: f32) -> Vec<f32> {
    let n = (rate as f32 * total) as usize;
    let mut out = Vec::with_capacity(n * channels);
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let v = if (on..off).contains(&t) {
            voiced(t)
        } else {
            0.0
        };
        out.extend(std::iter::repeat_n(v, channels));
    }
    out
}

/// A 16-bit PCM WAV file of interleaved samples.
fn wav(rate: u32, channels: u16, samples: &[f32]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    b
}

fn position(app: &App, face: Entity) -> Option<f32> {
    app.world().get::<TalkingFace>(face).unwrap().line_position
}

fn drain<M: Message + Clone>(app: &mut App) -> Vec<M> {
    app.world_mut()
        .resource_mut::<Messages<M>>()
        .drain()
        .collect()
}

/// `frames` game frames, collecting the messages `M` sent meanwhile (Bevy drops messages
/// nobody read after two updates).
fn settle_collect<M: Message + Clone>(app: &mut App, frames: usize) -> Vec<M> {
    let mut all = Vec::new();
    for _ in 0..frames {
        step(app);
        all.extend(drain::<M>(app));
    }
    all
}

/// A settled face and its rest image.
fn face_at_rest(app: &mut App) -> (Entity, Vec<u8>) {
    let face = spawn_face(app);
    settle(app, 10);
    let rest = face_pixels(app, face);
    assert_eq!(rest.len(), 256 * 256 * 4, "face texture exists");
    (face, rest)
}

// ---------------------------------------------------------------------------------------
// Speak options: volume, panning, start offset, mixer track

/// A kira effect that sums what passes through it, per channel.
struct Capture(Arc<Mutex<(f64, f64)>>);

impl Effect for Capture {
    fn process(&mut self, input: &mut [Frame], _dt: f64, _info: &Info) {
        let mut sums = self.0.lock().unwrap();
        for f in input.iter() {
            sums.0 += f.left.abs() as f64;
            sums.1 += f.right.abs() as f64;
        }
    }
}

impl EffectBuilder for Capture {
    type Handle = ();
    fn build(self) -> (Box<dyn Effect>, ()) {
        (Box::new(self), ())
    }
}

/// Plays a line with `speak`'s options on a captured mixer track; returns the per-channel
/// sums of what played.
fn captured(edit: impl Fn(Speak) -> Speak) -> (f64, f64) {
    let dir = tempfile_dir("speak-options");
    let mut app = app(&dir);
    let sums = Arc::new(Mutex::new((0.0, 0.0)));
    let mut builder = TrackBuilder::new();
    builder.add_effect(Capture(sums.clone()));
    app.world_mut()
        .non_send_mut::<EdTalkAudio>()
        .add_track("voice", builder)
        .unwrap();
    let (face, _) = face_at_rest(&mut app);
    let line = VoiceLine::from_mono(voice(16_000, 1, 0.0, 1.0, 1.0), 16_000);
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(line);
    app.world_mut()
        .write_message(edit(Speak::new(face, line).on_mixer_track("voice")));
    settle(&mut app, 40);
    assert!(errors(&mut app).is_empty());
    *sums.lock().unwrap()
}

#[test]
fn speak_options_set_volume_and_panning_on_the_games_mixer_track() {
    let plain = captured(|s| s);
    assert!(plain.0 > 1.0, "the line went through the track: {plain:?}");
    assert!(
        (plain.0 - plain.1).abs() < 1e-6 * plain.0,
        "centred: {plain:?}"
    );
    let quieter = captured(|s| s.with_volume(Volume::Decibels(-6.0206)));
    assert!(
        (quieter.0 / plain.0 - 0.5).abs() < 0.01,
        "{quieter:?} vs {plain:?}"
    );
    let half = captured(|s| s.with_volume(Volume::Amplitude(0.5)));
    assert!(
        (half.0 / plain.0 - 0.5).abs() < 0.01,
        "{half:?} vs {plain:?}"
    );
    let left = captured(|s| s.with_panning(-1.0));
    assert!(left.1 < 0.01 * left.0, "hard left: {left:?}");
}

#[test]
fn speak_options_start_offset_and_bad_numbers() {
    let dir = tempfile_dir("speak-offset");
    let mut app = app(&dir);
    let (face, _) = face_at_rest(&mut app);
    let line = VoiceLine::from_mono(voice(16_000, 1, 0.2, 1.8, 2.0), 16_000);
    let line = app
        .world_mut()
        .resource_mut::<Assets<VoiceLine>>()
        .add(line);
    // NaN panning and an unknown track are reported; the line still plays from 1.2 s.
    app.world_mut().write_message(
        Speak::new(face, line.clone())
            .starting_at(1.2)
            .with_panning(f32::NAN)
            .on_mixer_track("nope"),
    );
    let mut first = None;
    let mut frames = 0;
    let mut reported = Vec::new();
    for _ in 0..60 {
        step(&mut app);
        reported.extend(errors(&mut app));
        if let Some(p) = position(&app, face) {
            first.get_or_insert(p);
            frames += 1;
        }
    }
    let first = first.expect("the line started");
    assert!((1.2..1.3).contains(&first), "starts at the offset: {first}");
    assert!(
        (18..=23).contains(&frames),
        "plays the last 0.8 s: {frames} frames"
    );
    let kinds: Vec<_> = reported.into_iter().map(|e| e.message).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    // An offset past the end is refused with a clear error; nothing plays.
    app.world_mut()
        .write_message(Speak::new(face, line).starting_at(5.0));
    let e = settle_collect::<EdTalkError>(&mut app, 10);
    assert!(
        e.iter().any(|e| e.message.contains("past the line's end")),
        "{e:?}"
    );
    assert_eq!(position(&app, face), None);
}

// ---------------------------------------------------------------------------------------
// LipSyncTo: faces following Bevy's AudioPlayer

/// The app plus Bevy's audio assets (no device: the tests give sinks by hand).
fn audio_app(name: &str) -> (App, std::path::PathBuf) {
    let dir = tempfile_dir(name);
    let mut app = app(&dir);
    app.init_asset::<AudioSource>();
    (app, dir)
}

/// A device-less rodio sink playing `samples`; pull from the returned queue to advance it.
fn idle_sink(
    rate: u32,
    channels: u16,
    samples: Vec<f32>,
) -> (AudioSink, impl Iterator<Item = f32>) {
    let (player, queue) = rodio::Player::new();
    player.append(rodio::buffer::SamplesBuffer::new(
        NonZero::new(channels).unwrap(),
        NonZero::new(rate).unwrap(),
        samples,
    ));
    (AudioSink::new(player), queue)
}

fn sound(app: &mut App, rate: u32, channels: u16, samples: &[f32]) -> Handle<AudioSource> {
    let bytes = wav(rate, channels, samples);
    app.world_mut()
        .resource_mut::<Assets<AudioSource>>()
        .add(AudioSource {
            bytes: bytes.into(),
        })
}

#[test]
fn lip_sync_to_follows_the_sinks_playback_position() {
    let (mut app, _) = audio_app("lip-sync-sink");
    let (face, rest) = face_at_rest(&mut app);
    let samples = voice(48_000, 2, 0.4, 1.2, 1.6);
    let handle = sound(&mut app, 48_000, 2, &samples);
    let (sink, mut queue) = idle_sink(48_000, 2, samples);
    let speaker = app.world_mut().spawn((AudioPlayer::new(handle), sink)).id();
    app.world_mut().entity_mut(face).insert(LipSyncTo(speaker));
    let mut started = None;
    let mut trace = Vec::new();
    for i in 0..70 {
        // The "device" plays 40 ms a frame, but stalls for 10 frames mid-way (a paused
        // sound): the face must hold with it.
        if !(20..30).contains(&i) {
            queue.by_ref().take(2 * 1920).for_each(drop);
        }
        step(&mut app);
        if let Some(m) = drain::<SpeechStarted>(&mut app).pop() {
            started = Some(m);
        }
        let p = position(&app, face);
        let d = mouth_diff(&face_pixels(&app, face), &rest);
        trace.push((i, p, d));
    }
    let m = started.expect("SpeechStarted");
    assert_eq!((m.sample_rate, m.channels), (48_000, 2));
    assert!((m.duration - 1.6).abs() < 0.01, "{}", m.duration);
    // The face's position is the sink's: it holds while the sink does.
    let held: Vec<_> = trace[22..30].iter().map(|t| t.1).collect();
    assert!(held.windows(2).all(|w| w[0] == w[1]), "held: {held:?}");
    let open_voiced = trace
        .iter()
        .filter(|t| t.1.is_some_and(|p| (0.52..1.08).contains(&p)))
        .filter(|t| t.2 > 2.0)
        .count();
    let voiced = trace
        .iter()
        .filter(|t| t.1.is_some_and(|p| (0.52..1.08).contains(&p)))
        .count();
    assert!(voiced >= 10 && open_voiced * 10 >= voiced * 8, "{trace:?}");
    let open_silent = trace
        .iter()
        .filter(|t| t.1.is_some_and(|p| !(0.28..1.45).contains(&p)) && t.2 > 2.0)
        .count();
    assert_eq!(open_silent, 0, "{trace:?}");
    // The sink ran empty: the line finished and the mouth is at rest.
    assert_eq!(position(&app, face), None, "{trace:?}");
    assert!(mouth_diff(&face_pixels(&app, face), &rest) < 2.0);
    assert!(errors(&mut app).is_empty());
}

#[test]
fn lip_sync_to_matches_the_same_48k_stereo_line_spoken_through_speak() {
    let (mut app, dir) = audio_app("lip-sync-vs-speak");
    let samples = voice(48_000, 2, 0.3, 1.1, 1.4);
    let (spoken, rest_a) = face_at_rest(&mut app);
    let (following, rest_b) = face_at_rest(&mut app);
    assert_eq!(rest_a, rest_b);
    // The same WAV bytes as a voice line (Speak, played by the plugin on kira) and as
    // Bevy's AudioSource (followed through its sink).
    std::fs::write(dir.join("line.wav"), wav(48_000, 2, &samples)).unwrap();
    let loaded: Handle<VoiceLine> = app.world().resource::<AssetServer>().load("line.wav");
    let handle = sound(&mut app, 48_000, 2, &samples);
    let (sink, mut queue) = idle_sink(48_000, 2, samples);
    let speaker = app.world_mut().spawn((AudioPlayer::new(handle), sink)).id();
    app.world_mut()
        .entity_mut(following)
        .insert(LipSyncTo(speaker));
    app.world_mut().write_message(Speak::new(spoken, loaded));
    // Neither sound moves until both faces have started; then both advance 40 ms a frame
    // from half a frame in, so their positions fall in the same face frame.
    let mut started = 0;
    for _ in 0..200 {
        app.update();
        std::thread::sleep(std::time::Duration::from_millis(10));
        started += drain::<SpeechStarted>(&mut app).len();
        if started == 2 {
            break;
        }
    }
    assert_eq!(started, 2, "both lines started: {:?}", errors(&mut app));
    let mut advance = |app: &mut App, seconds: f64| {
        app.world_mut()
            .non_send_mut::<EdTalkAudio>()
            .advance_mock(seconds);
        let n = (seconds * 48_000.0).round() as usize * 2;
        queue.by_ref().take(n).for_each(drop);
    };
    advance(&mut app, 0.02);
    let mut compared = 0;
    let mut opened = 0;
    let mut differing = Vec::new();
    for i in 0..36 {
        advance(&mut app, 0.04);
        app.update();
        std::thread::sleep(std::time::Duration::from_millis(25));
        let (pa, pb) = (position(&app, spoken), position(&app, following));
        if let (Some(a), Some(b)) = (pa, pb) {
            assert!((a - b).abs() < 0.011, "frame {i}: positions {a} vs {b}");
            compared += 1;
            let (fa, fb) = (face_pixels(&app, spoken), face_pixels(&app, following));
            opened += (mouth_diff(&fa, &rest_a) > 2.0) as usize;
            let d = mouth_diff(&fa, &fb);
            if d > 0.5 {
                differing.push((i, a, d));
            }
        }
    }
    assert!(compared >= 30, "compared {compared} frames");
    assert!(opened >= 10, "the line moved the mouth in {opened} frames");
    assert!(
        differing.len() <= 2,
        "faces differ in {} of {compared} frames: {differing:?}",
        differing.len()
    );
}

#[test]
fn lip_sync_to_without_a_sink_follows_time_and_ends_when_the_sound_goes() {
    let (mut app, _) = audio_app("lip-sync-clock");
    let (face, _) = face_at_rest(&mut app);
    let samples = voice(22_050, 1, 0.2, 2.0, 3.0);
    let handle = sound(&mut app, 22_050, 1, &samples);
    let speaker = app.world_mut().spawn(AudioPlayer::new(handle)).id();
    app.world_mut().entity_mut(face).insert(LipSyncTo(speaker));
    let mut positions = Vec::new();
    for _ in 0..30 {
        step(&mut app);
        positions.extend(position(&app, face));
    }
    assert!(positions.len() >= 20, "{positions:?}");
    assert!(
        positions.windows(2).all(|w| w[1] > w[0]),
        "advances with time: {positions:?}"
    );
    // The sound's entity goes: the line ends, the game goes on.
    app.world_mut().entity_mut(speaker).despawn();
    let finished = settle_collect::<SpeechFinished>(&mut app, 3);
    assert_eq!(position(&app, face), None);
    assert!(finished.iter().any(|f| f.entity == face), "{finished:?}");
    // Bytes that are no audio: a clear error, no panic.
    let junk = app
        .world_mut()
        .resource_mut::<Assets<AudioSource>>()
        .add(AudioSource {
            bytes: vec![7u8; 1000].into(),
        });
    let speaker = app.world_mut().spawn(AudioPlayer::new(junk)).id();
    app.world_mut().entity_mut(face).insert(LipSyncTo(speaker));
    let e = settle_collect::<EdTalkError>(&mut app, 10);
    assert!(
        e.iter()
            .any(|e| e.kind == EdTalkErrorKind::Audio && e.message.contains("LipSyncTo")),
        "{e:?}"
    );
    assert_eq!(position(&app, face), None);
}

// ---------------------------------------------------------------------------------------
// SpeakStream: live voice in chunks

/// (line position, mouth difference from rest) per game frame.
type Trace = Vec<(Option<f32>, f32)>;

/// Chunk lengths in ms between 10 and 200, from a fixed seed.
fn chunk_ms(seed: &mut u64) -> u32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    10 + ((*seed >> 33) % 191) as u32
}

/// Streams `samples` (interleaved) in random 10-200 ms chunks, pushed as game time needs
/// them (never more than one chunk ahead), finishing at the end. Returns the trace of
/// (line position, mouth diff) per frame and whether the line finished.
fn stream_line(
    app: &mut App,
    face: Entity,
    rest: &[u8],
    samples: &[f32],
    rate: u32,
    channels: u16,
    frames: usize,
) -> (Trace, bool, Vec<SpeechStarted>) {
    let stream = VoiceStream::new();
    app.world_mut()
        .write_message(SpeakStream::new(face, &stream).with_tag("tts"));
    let per_frame = (rate as f64 * DT) as usize * channels as usize;
    let mut seed = 42u64;
    let mut pushed = 0usize;
    let mut trace = Vec::new();
    let mut finished = false;
    let mut started = Vec::new();
    for i in 0..frames {
        let wanted = ((i + 1) * per_frame).min(samples.len());
        while pushed < wanted {
            let n = (rate * chunk_ms(&mut seed) / 1000) as usize * channels as usize;
            let end = (pushed + n).min(samples.len());
            stream.push(&samples[pushed..end], rate, channels).unwrap();
            pushed = end;
        }
        if pushed == samples.len() {
            stream.finish();
        }
        step(app);
        started.extend(drain::<SpeechStarted>(app));
        finished |= drain::<SpeechFinished>(app)
            .iter()
            .any(|f| f.entity == face && f.tag == "tts" && f.completed);
        trace.push((
            position(app, face),
            mouth_diff(&face_pixels(app, face), rest),
        ));
    }
    (trace, finished, started)
}

/// Checks a streamed line: the mouth opens within the lookahead plus one face frame of
/// the voice's onset (in the line's time), stays open while voiced, is shut in silence,
/// and the line finishes.
fn check_stream(trace: &[(Option<f32>, f32)], finished: bool, on: f32, off: f32) {
    let frame = 1.0 / 25.0;
    let lookahead = STREAM_PREBUFFER_SECS as f32 - frame;
    let first_open = trace
        .iter()
        .find(|t| t.1 > 2.0)
        .and_then(|t| t.0)
        .unwrap_or_else(|| panic!("the mouth never opened: {trace:?}"));
    assert!(
        first_open >= on - frame && first_open <= on + lookahead + frame,
        "mouth opened at {first_open} s for a voice onset at {on} s: {trace:?}"
    );
    let voiced: Vec<_> = trace
        .iter()
        .filter(|t| t.0.is_some_and(|p| (on + 0.12..off - 0.12).contains(&p)))
        .collect();
    let open = voiced.iter().filter(|t| t.1 > 2.0).count();
    assert!(
        voiced.len() >= 8 && open * 10 >= voiced.len() * 8,
        "open in {open}/{} voiced frames: {trace:?}",
        voiced.len()
    );
    let silent_open = trace
        .iter()
        .filter(|t| t.0.is_some_and(|p| p < on - 0.12 || p > off + 0.3) && t.1 > 2.0)
        .count();
    assert_eq!(silent_open, 0, "mouth moved in silence: {trace:?}");
    assert!(finished, "SpeechFinished: {trace:?}");
    assert!(trace.last().unwrap().0.is_none() && trace.last().unwrap().1 < 2.0);
}

#[test]
fn speak_stream_22k_mono_chunks_lip_sync_and_finish() {
    let dir = tempfile_dir("speak-stream-22k");
    let mut app = app(&dir);
    let (face, rest) = face_at_rest(&mut app);
    let samples = voice(22_050, 1, 0.5, 1.3, 1.8);
    let (trace, finished, started) = stream_line(&mut app, face, &rest, &samples, 22_050, 1, 70);
    check_stream(&trace, finished, 0.5, 1.3);
    assert!(
        started
            .iter()
            .any(|m| m.tag == "tts" && (m.sample_rate, m.channels) == (22_050, 1)),
        "{started:?}"
    );
    assert!(errors(&mut app).is_empty());
}

#[test]
fn speak_stream_48k_stereo_chunks_lip_sync_and_finish() {
    let dir = tempfile_dir("speak-stream-48k");
    let mut app = app(&dir);
    let (face, rest) = face_at_rest(&mut app);
    let samples = voice(48_000, 2, 0.4, 1.4, 1.9);
    let (trace, finished, started) = stream_line(&mut app, face, &rest, &samples, 48_000, 2, 75);
    check_stream(&trace, finished, 0.4, 1.4);
    assert!(
        started
            .iter()
            .any(|m| (m.sample_rate, m.channels) == (48_000, 2)),
        "{started:?}"
    );
    assert!(errors(&mut app).is_empty());
}

#[test]
fn speak_stream_a_stalled_producer_holds_the_mouth_closed_without_drift() {
    let dir = tempfile_dir("speak-stream-stall");
    let mut app = app(&dir);
    let (face, rest) = face_at_rest(&mut app);
    let stream = VoiceStream::new();
    app.world_mut()
        .write_message(SpeakStream::new(face, &stream));
    // 0.3 s silence and 0.6 s voice, then nothing for 1.2 s, then 0.6 s voice and the end.
    let first = voice(16_000, 1, 0.3, 0.9, 0.9);
    stream.push(&first, 16_000, 1).unwrap();
    let mut trace = Vec::new();
    for i in 0..110 {
        if i == 40 {
            let rest_of_line: Vec<f32> = (0..9_600).map(|k| voiced(k as f32 / 16_000.0)).collect();
            stream.push(&rest_of_line, 16_000, 1).unwrap();
            stream.push(&[0.0; 3_200], 16_000, 1).unwrap();
            stream.finish();
        }
        step(&mut app);
        trace.push((
            i,
            position(&app, face),
            mouth_diff(&face_pixels(&app, face), &rest),
        ));
    }
    // Stalled (frames ~28..40 with the buffer dry): position holds at 0.9 s, mouth shut.
    let stalled: Vec<_> = trace[30..40].to_vec();
    assert!(
        stalled.iter().all(|t| t.1 == Some(0.9) && t.2 < 2.0),
        "stalled: {stalled:?}"
    );
    // After the stall the line goes on from where it held: the second voiced part opens
    // the mouth at its own positions (0.9..1.5 s), and the line ends at 1.7 s.
    let voiced_after: Vec<_> = trace
        .iter()
        .filter(|t| t.1.is_some_and(|p| (1.02..1.38).contains(&p)))
        .collect();
    let open = voiced_after.iter().filter(|t| t.2 > 2.0).count();
    assert!(
        voiced_after.len() >= 6 && open * 10 >= voiced_after.len() * 8,
        "{trace:?}"
    );
    let last = trace.iter().filter_map(|t| t.1).fold(0.0f32, f32::max);
    assert!((last - 1.7).abs() < 0.05, "played to {last}: {trace:?}");
    assert_eq!(trace.last().unwrap().1, None, "finished: {trace:?}");
}

#[test]
fn speak_stream_bad_chunks_and_a_despawned_face_are_handled() {
    let dir = tempfile_dir("speak-stream-bad");
    let mut app = app(&dir);
    let (face, _) = face_at_rest(&mut app);
    let stream = VoiceStream::new();
    app.world_mut()
        .write_message(SpeakStream::new(face, &stream));
    step(&mut app);
    stream.push(&[], 22_050, 1).unwrap();
    stream.push(&[f32::NAN; 2205], 22_050, 1).unwrap();
    stream.push(&[f32::INFINITY; 2205], 22_050, 1).unwrap();
    stream.push(&[0.1; 4800], 48_000, 1).unwrap();
    assert!(stream.push(&[0.1; 10], 0, 1).is_err());
    let messages: Vec<String> = settle_collect::<EdTalkError>(&mut app, 5)
        .into_iter()
        .map(|e| e.message)
        .collect();
    let all = messages.join("\n");
    assert!(all.contains("non-finite"), "{all}");
    assert!(all.contains("changed from 22050 Hz to 48000 Hz"), "{all}");
    assert!(all.contains("0 Hz"), "{all}");
    // A second face cannot take the same stream.
    let (other, _) = face_at_rest(&mut app);
    app.world_mut()
        .write_message(SpeakStream::new(other, &stream));
    assert!(
        settle_collect::<EdTalkError>(&mut app, 2)
            .iter()
            .any(|e| e.message.contains("already spoken"))
    );
    // The face goes mid-stream (the producer never ends): the stream is closed and
    // everything the plugin ran for it ends.
    app.world_mut().entity_mut(face).despawn();
    settle(&mut app, 2);
    assert!(stream.is_closed());
    assert_eq!(
        stream.push(&[0.0; 100], 22_050, 1),
        Err(VoiceStreamError::Closed)
    );
    for _ in 0..100 {
        if stream.is_released() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(stream.is_released(), "the analysis thread ended");
    settle(&mut app, 3);
}

#[test]
fn speak_stream_without_an_audio_device_runs_on_the_game_clock() {
    let dir = tempfile_dir("speak-stream-clock");
    let settings = EdTalkSettings {
        audio: AudioOutput::Clock,
        ..test_settings(false)
    };
    let mut app = app_with_settings(&dir, settings);
    let (face, rest) = face_at_rest(&mut app);
    // The whole line at once (a fast synthesiser), then the end.
    let samples = voice(22_050, 1, 0.3, 1.0, 1.3);
    let stream = VoiceStream::new();
    app.world_mut()
        .write_message(SpeakStream::new(face, &stream));
    stream.push(&samples, 22_050, 1).unwrap();
    stream.finish();
    let mut trace = Vec::new();
    for _ in 0..50 {
        step(&mut app);
        trace.push((
            position(&app, face),
            mouth_diff(&face_pixels(&app, face), &rest),
        ));
    }
    let played: Vec<f32> = trace.iter().filter_map(|t| t.0).collect();
    assert!(played.len() >= 25, "{trace:?}");
    assert!(played.windows(2).all(|w| w[1] >= w[0]), "{trace:?}");
    assert!(
        trace.iter().any(|t| t.1 > 2.0),
        "the mouth moved: {trace:?}"
    );
    assert_eq!(trace.last().unwrap().0, None, "finished: {trace:?}");
}
