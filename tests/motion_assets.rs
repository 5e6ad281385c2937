//! The bundled voice lines and their emotion scripts decode, parse and resolve.

use bevy_edtalk::audio::{DecodeOptions, decode_file};
use bevy_edtalk::motion::{EmotionLibrary, EmotionScript};

#[derive(serde::Deserialize)]
struct Line {
    file: String,
    text: String,
    seconds: f32,
}

#[test]
fn voice_lines_decode_and_scripts_resolve() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/voice");
    let lines: Vec<Line> =
        ron::from_str(&std::fs::read_to_string(format!("{dir}/lines.ron")).unwrap()).unwrap();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let audio = decode_file(format!("{dir}/{}", line.file), &DecodeOptions::default()).unwrap();
        assert!(
            (audio.seconds() - line.seconds).abs() < 0.1,
            "{}",
            line.file
        );
        assert!(!line.text.is_empty());
    }
    let library = EmotionLibrary::new();
    for name in ["greeting", "warning"] {
        let path = format!("{dir}/{name}.emotion.ron");
        let script = EmotionScript::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        script.validate(&library, &path).unwrap();
    }
}
