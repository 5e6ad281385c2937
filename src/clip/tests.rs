//! Round trips, timing, laziness, and every kind of bad input giving a named error.

use super::format::{HEADER_LEN, MAX_FRAMES, RECORD_LEN};
use super::*;

/// `n` frames of a `w x h` face-like picture: a fixed gradient background with a
/// "mouth" box that opens and closes, and one frame repeated (an unchanged delta).
fn frames(n: usize, w: u32, h: u32) -> Vec<FaceFrame> {
    frames_with(n, w, h, true)
}

/// [`frames`]; `flicker` also toggles every pixel's alpha between frames (deltas then
/// cover the whole frame, testing exactness rather than size).
fn frames_with(n: usize, w: u32, h: u32, flicker: bool) -> Vec<FaceFrame> {
    (0..n)
        .map(|i| {
            let open = [0, 2, 4, 4, 1, 3][i % 6];
            let mut rgba = Vec::with_capacity((w * h * 4) as usize);
            for y in 0..h {
                for x in 0..w {
                    let in_mouth = x >= w / 3 && x < 2 * w / 3 && y >= h / 2 && y < h / 2 + open;
                    let v = if in_mouth { 20 } else { (x * 7 + y * 3) as u8 };
                    let alpha = if flicker { 255 - (i as u8 & 1) } else { 255 };
                    rgba.extend_from_slice(&[v, v / 2, 255 - v, alpha]);
                }
            }
            FaceFrame {
                width: w,
                height: h,
                rgba,
            }
        })
        .collect()
}

fn clip_bytes() -> Vec<u8> {
    FaceClip::from_frames(&frames(7, 16, 12), 25.0, 0.3, Some("portrait=ada.png"))
        .unwrap()
        .encode()
}

/// Recomputes the trailing CRC after a deliberate edit, so the parser's other checks are
/// what the edit meets.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Offset of frame 0's record.
fn first_record(bytes: &[u8]) -> usize {
    HEADER_LEN + u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize
}

fn err(bytes: &[u8]) -> ClipError {
    FaceClip::decode(bytes).expect_err("decoding should fail")
}

#[test]
fn round_trip_is_lossless_with_header_and_metadata() {
    let src = frames(13, 20, 18);
    for interval in [1, 4, DEFAULT_KEY_INTERVAL] {
        let mut enc = ClipEncoder::new(20, 18, 25.0)
            .unwrap()
            .with_key_interval(interval);
        for f in &src {
            enc.push(f).unwrap();
        }
        let clip = enc.finish(0.53, Some("audio=line.ogg")).unwrap();
        let back = FaceClip::decode(&clip.encode()).unwrap();
        assert_eq!((back.width(), back.height(), back.fps()), (20, 18, 25.0));
        assert_eq!(back.frame_count(), 13);
        assert_eq!(back.audio_seconds(), 0.53);
        assert_eq!(back.metadata(), Some("audio=line.ogg"));
        for (i, f) in src.iter().enumerate() {
            assert_eq!(back.frame(i), Some(f), "interval {interval}, frame {i}");
            assert_eq!(&back.decode_frame(i).unwrap(), f);
        }
        let sequential: Vec<FaceFrame> = back.frames().map(Result::unwrap).collect();
        assert_eq!(sequential, src);
    }
}

#[test]
fn write_and_read_a_file() {
    let dir = std::env::temp_dir().join(format!("edtalk-clip-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("line.faceclip");
    let clip = FaceClip::from_frames(&frames(3, 8, 8), 25.0, 0.12, None).unwrap();
    clip.write(&path).unwrap();
    let back = FaceClip::read(&path).unwrap();
    assert_eq!(back.metadata(), None);
    assert_eq!(back.encode(), clip.encode());
    std::fs::write(&path, b"nonsense").unwrap();
    let msg = FaceClip::read(&path).unwrap_err().to_string();
    assert!(
        msg.contains("line.faceclip") && msg.contains("not a face clip"),
        "{msg}"
    );
    let missing = FaceClip::read(dir.join("gone.faceclip"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("gone.faceclip"), "{missing}");
}

#[test]
fn a_still_face_stores_deltas_much_smaller_than_key_frames() {
    let src = frames_with(25, 64, 64, false);
    let deltas = FaceClip::from_frames(&src, 25.0, 1.0, None).unwrap();
    let mut enc = ClipEncoder::new(64, 64, 25.0).unwrap().with_key_interval(1);
    for f in &src {
        enc.push(f).unwrap();
    }
    let keys = enc.finish(1.0, None).unwrap();
    assert!(
        deltas.encoded_len() * 3 < keys.encoded_len(),
        "deltas {} bytes, keys {}",
        deltas.encoded_len(),
        keys.encoded_len()
    );
}

#[test]
fn frame_i_covers_i_over_fps_to_the_next() {
    // 7 frames (0.28 s) of a 0.3 s line.
    let clip = FaceClip::decode(&clip_bytes()).unwrap();
    for i in 0..7 {
        assert_eq!(clip.index_at(i as f64 / 25.0), Some(i));
        assert_eq!(clip.index_at((i as f64 + 0.999) / 25.0), Some(i));
    }
    assert_eq!(
        clip.index_at(0.29),
        Some(6),
        "the audio's tail holds the last frame"
    );
    assert_eq!(clip.index_at(0.3), None);
    assert_eq!(clip.index_at(-0.01), None);
    assert_eq!(clip.index_at(f64::NAN), None);
    assert_eq!(clip.frame_at(0.05), clip.frame(1));
    assert!(clip.frame(7).is_none());
    assert!(matches!(
        clip.try_frame(7),
        Err(ClipError::NoSuchFrame { index: 7, count: 7 })
    ));
}

#[test]
fn frames_are_decoded_lazily_and_can_be_forgotten() {
    let mut clip = FaceClip::decode(&clip_bytes()).unwrap();
    assert!(clip.decoded.iter().all(|s| s.get().is_none()));
    let kept = |clip: &FaceClip| -> Vec<usize> {
        (0..7)
            .filter(|&i| clip.decoded[i].get().is_some())
            .collect()
    };
    let third = clip.frame(3).unwrap().clone();
    assert_eq!(kept(&clip), vec![3], "only the frame asked for");
    clip.frame(4).unwrap();
    assert_eq!(kept(&clip), vec![3, 4]);
    assert_eq!(clip.frame(3), Some(&third));
    clip.decode_frame(5).unwrap();
    assert_eq!(kept(&clip), vec![3, 4]);
    clip.forget_decoded();
    assert!(clip.decoded.iter().all(|s| s.get().is_none()));
}

#[test]
fn every_truncation_is_a_truncated_error() {
    let bytes = clip_bytes();
    for len in 0..bytes.len() {
        match err(&bytes[..len]) {
            ClipError::Truncated { .. } => {}
            e => panic!("{len} of {} bytes: {e}", bytes.len()),
        }
    }
    let msg = err(&bytes[..HEADER_LEN + 3]).to_string();
    assert!(msg.contains("truncated face clip"), "{msg}");
}

#[test]
fn wrong_magic_and_version_are_named() {
    let mut bytes = clip_bytes();
    bytes[..4].copy_from_slice(b"\x89PNG");
    let msg = err(&bytes).to_string();
    assert!(msg.contains("not a face clip"), "{msg}");

    let mut bytes = clip_bytes();
    bytes[8..10].copy_from_slice(&7u16.to_le_bytes());
    let e = err(&bytes);
    assert!(
        matches!(e, ClipError::UnsupportedVersion { found: 7 }),
        "{e}"
    );
    assert!(e.to_string().contains("version 7"), "{e}");
}

#[test]
fn absurd_header_values_are_refused_before_allocating() {
    let cases: [(usize, u32, &str); 5] = [
        (12, u32::MAX, "frame size"), // width: width * height * 4 overflows u32
        (16, 0, "frame size"),
        (24, 1_000_000_000, "1000000000 frames"),
        (20, f32::NAN.to_bits(), "fps"),
        (40, u32::MAX, "metadata"),
    ];
    for (at, value, says) in cases {
        let mut bytes = clip_bytes();
        put_u32(&mut bytes, at, value);
        let e = err(&bytes);
        assert!(matches!(e, ClipError::BadHeader(_)), "{says}: {e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
    // A count within the limit but more than the bytes can hold: nothing is sized by it.
    let mut bytes = clip_bytes();
    put_u32(&mut bytes, 24, MAX_FRAMES);
    let e = err(&bytes);
    assert!(matches!(e, ClipError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("360000 frame records"), "{e}");
    let mut bytes = clip_bytes();
    bytes[36] = 9;
    assert!(err(&bytes).to_string().contains("tolerance 9"));
    let mut bytes = clip_bytes();
    bytes[38] = 1;
    assert!(err(&bytes).to_string().contains("reserved"));
    let mut bytes = clip_bytes();
    bytes[28..36].copy_from_slice(&(-1.0f64).to_le_bytes());
    assert!(err(&bytes).to_string().contains("audio duration"));
    let mut bytes = clip_bytes();
    put_u32(&mut bytes, 12, u32::MAX);
    put_u32(&mut bytes, 16, u32::MAX);
    put_u32(&mut bytes, 24, u32::MAX);
    assert!(err(&bytes).to_string().contains("4294967295x4294967295"));
}

#[test]
fn damage_is_caught_by_the_checksum() {
    let mut bytes = clip_bytes();
    let at = first_record(&bytes) + RECORD_LEN + 40;
    bytes[at] ^= 0x10;
    let e = err(&bytes);
    assert!(matches!(e, ClipError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("the file is damaged"), "{e}");
}

#[test]
fn stray_bytes_after_the_checksum_are_refused() {
    let mut bytes = clip_bytes();
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let e = err(&bytes);
    assert!(e.to_string().contains("stray bytes"), "{e}");
}

#[test]
fn bad_records_name_their_frame() {
    let base = clip_bytes();
    let r0 = first_record(&base);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        f(&mut b);
        reseal(&mut b);
        err(&b)
    };
    let e = edit(&|b| b[r0] = 9);
    assert!(
        e.to_string().contains("frame 0: unknown frame kind 9"),
        "{e}"
    );
    let e = edit(&|b| b[r0] = 1);
    assert!(e.to_string().contains("before any key frame"), "{e}");
    let e = edit(&|b| put_u32(b, r0 + 1, 3));
    assert!(e.to_string().contains("whole 16x12 frame"), "{e}");
    // Frame 1 is a delta: push its rectangle off the frame.
    let r1 =
        r0 + RECORD_LEN + u32::from_le_bytes(base[r0 + 17..r0 + 21].try_into().unwrap()) as usize;
    assert_eq!(base[r1], 1);
    let e = edit(&|b| put_u32(b, r1 + 1, u32::MAX));
    assert!(e.to_string().contains("frame 1: rectangle"), "{e}");
    // A frame length running past the end.
    let e = edit(&|b| put_u32(b, r1 + 17, 1 << 30));
    assert!(matches!(e, ClipError::Truncated { .. }), "{e}");
    // Pixels that are not a PNG.
    let e = edit(&|b| b[r0 + RECORD_LEN + 1] = b'J');
    assert!(e.to_string().contains("not a PNG"), "{e}");
}

#[test]
fn damaged_pixels_fail_the_frame_not_the_program() {
    let mut bytes = clip_bytes();
    let r0 = first_record(&bytes);
    let len = u32::from_le_bytes(bytes[r0 + 17..r0 + 21].try_into().unwrap()) as usize;
    // Inside the key frame's compressed data (past signature and IHDR), checksum resealed:
    // the clip opens, the frame reports the damage.
    bytes[r0 + RECORD_LEN + len - 20] ^= 0xff;
    reseal(&mut bytes);
    let clip = FaceClip::decode(&bytes).unwrap();
    assert!(clip.frame(0).is_none());
    let e = clip.try_frame(2).unwrap_err();
    assert!(e.to_string().contains("frame 0"), "{e}");
    assert!(clip.frames().all(|f| f.is_err()), "every frame needs key 0");
}

#[test]
fn the_encoder_refuses_frames_that_do_not_fit() {
    let mut enc = ClipEncoder::new(8, 8, 25.0).unwrap();
    let mut f = frames(1, 8, 8).remove(0);
    enc.push(&f).unwrap();
    f.rgba.pop();
    assert!(enc.push(&f).unwrap_err().to_string().contains("frame 1"));
    let other = frames(1, 9, 8).remove(0);
    assert!(enc.push(&other).unwrap_err().to_string().contains("9x8"));
    assert!(ClipEncoder::new(0, 8, 25.0).is_err());
    assert!(ClipEncoder::new(8, 8, 0.0).is_err());
    assert!(FaceClip::from_frames(&[], 25.0, 0.0, None).is_err());
    let enc = ClipEncoder::new(8, 8, 25.0).unwrap();
    assert!(enc.finish(1.0, None).is_err(), "no frames");
}

/// Frames whose every pixel drifts by a level or two from frame to frame (as a neural
/// face's do): what tolerance is for.
fn shimmering(n: usize, w: u32, h: u32) -> Vec<FaceFrame> {
    (0..n)
        .map(|i| {
            let rgba = (0..(w * h) as usize)
                .flat_map(|p| {
                    let v = ((p * 5) % 200) as u8 + ((p * 7 + i * 3) % 5) as u8;
                    [v, 255 - v, v / 2, 255]
                })
                .collect();
            FaceFrame {
                width: w,
                height: h,
                rgba,
            }
        })
        .collect()
}

#[test]
fn tolerance_keeps_every_channel_within_it_and_shrinks_the_clip() {
    let src = shimmering(30, 40, 40);
    let exact = FaceClip::from_frames(&src, 25.0, 1.2, None).unwrap();
    for t in 1..=format::MAX_TOLERANCE {
        let mut enc = ClipEncoder::new(40, 40, 25.0)
            .unwrap()
            .with_tolerance(t)
            .unwrap()
            .with_key_interval(12);
        for f in &src {
            enc.push(f).unwrap();
        }
        let clip = FaceClip::decode(&enc.finish(1.2, None).unwrap().encode()).unwrap();
        assert_eq!(clip.tolerance(), t);
        for (i, (got, want)) in clip.frames().zip(&src).enumerate() {
            let got = got.unwrap();
            let worst = got
                .rgba
                .iter()
                .zip(&want.rgba)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst <= t, "tolerance {t}, frame {i}: off by {worst}");
        }
        assert!(
            clip.encoded_len() < exact.encoded_len(),
            "tolerance {t}: {} bytes, lossless {}",
            clip.encoded_len(),
            exact.encoded_len()
        );
    }
    assert!(
        ClipEncoder::new(8, 8, 25.0)
            .unwrap()
            .with_tolerance(5)
            .is_err()
    );
}

#[test]
fn a_cursor_plays_forward_seeks_back_and_notices_another_clip() {
    let src = frames(23, 12, 10);
    let mut enc = ClipEncoder::new(12, 10, 25.0).unwrap().with_key_interval(5);
    for f in &src {
        enc.push(f).unwrap();
    }
    let clip = enc.finish(0.95, None).unwrap();
    let mut cursor = ClipCursor::new();
    for order in [vec![0, 1, 2, 3, 4, 5, 6], vec![22, 3, 9, 8, 8, 14, 0, 21]] {
        for i in order {
            assert_eq!(cursor.seek(&clip, i).unwrap(), &src[i], "frame {i}");
        }
    }
    assert_eq!(cursor.at_time(&clip, 0.5).unwrap().unwrap(), &src[12]);
    assert!(cursor.at_time(&clip, 1.0).is_none());
    assert!(cursor.seek(&clip, 23).is_err());
    // A different clip (the same frames reversed): the held frame is not reused.
    let reversed: Vec<FaceFrame> = src.iter().rev().cloned().collect();
    let other = FaceClip::from_frames(&reversed, 25.0, 0.95, None).unwrap();
    cursor.seek(&clip, 6).unwrap();
    assert_eq!(cursor.seek(&other, 7).unwrap(), &reversed[7]);
    assert_eq!(cursor.seek(&clip, 7).unwrap(), &src[7]);
}

#[test]
fn opaque_frames_are_stored_as_rgb_others_as_rgba() {
    let colour_type = |clip: &FaceClip| {
        let bytes = clip.encode();
        let png = first_record(&bytes) + RECORD_LEN;
        bytes[png + 25]
    };
    let opaque = FaceClip::from_frames(&frames_with(2, 8, 8, false), 25.0, 0.1, None).unwrap();
    assert_eq!(colour_type(&opaque), 2);
    let mut see_through = frames_with(2, 8, 8, false);
    see_through[0].rgba[3] = 128;
    let clip = FaceClip::from_frames(&see_through, 25.0, 0.1, None).unwrap();
    assert_eq!(colour_type(&clip), 6);
    assert_eq!(clip.frame(0).unwrap(), &see_through[0]);
    assert_eq!(opaque.frame(1).unwrap().rgba[3], 255);
}
