#!/usr/bin/env bash
# Regenerates the small test speech in tests/fixtures/speech/ with espeak-ng and sox:
# sustained vowels, a nasal "m", silence and one sentence, all 16 kHz mono 16-bit wav.
set -euo pipefail
out="$(dirname "$0")/../tests/fixtures/speech"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

say() { # name, espeak-ng input (phonemes in [[ ]] are allowed)
    espeak-ng -v en-us -s "${3:-60}" -w "$tmp/$1.wav" "$2" 2>/dev/null
    sox "$tmp/$1.wav" -r 16000 -c 1 -b 16 "$out/$1.wav" silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse
}

# Long vowels through espeak's phoneme notation: "aa" as in father, "ee" as in see, "oo" as in food.
say vowel_aa "[[A::::::::::::::::::::]]"
say vowel_ee "[[i::::::::::::::::::::]]"
say vowel_oo "[[u::::::::::::::::::::]]"
# "aa-m-aa": a bilabial closure between two open vowels.
say ama "[[A::::m::A::::]]"
say sentence "Maybe we should move on before the moon rises." 140
sox -n -r 16000 -c 1 -b 16 "$out/silence.wav" trim 0 1.0
ls -l "$out"
# The same vowel in other containers, rates and channel counts, for the decoder tests.
sox "$out/vowel_aa.wav" -r 44100 -c 2 -C 3 "$out/vowel_aa_44k_stereo.ogg"
sox "$out/vowel_aa.wav" -r 22050 -c 1 "$out/vowel_aa_22k.flac"
# Debian's sox has no MP3 encoder; the committed vowel_aa_44k_stereo.mp3 (128 kbit/s LAME)
# was made with the `lameenc` Python package when it is installed:
if python3 -c "import lameenc" 2>/dev/null; then
    sox "$out/vowel_aa.wav" -r 44100 -c 2 -b 16 -e signed -t raw - | python3 -c '
import sys, lameenc
e = lameenc.Encoder(); e.set_bit_rate(128); e.set_in_sample_rate(44100); e.set_channels(2); e.set_quality(2)
pcm = sys.stdin.buffer.read(); sys.stdout.buffer.write(e.encode(pcm) + e.flush())' > "$out/vowel_aa_44k_stereo.mp3"
fi
ls -l "$out"
