#!/usr/bin/env bash
# Regenerates the example voice lines in assets/voice/ with espeak-ng and sox:
# 16 kHz mono ogg/vorbis, plus their subtitles in assets/voice/lines.ron.
set -euo pipefail
out="$(dirname "$0")/../assets/voice"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

lines=(
    "greeting|en-us|150|Welcome, traveller. The road ahead is long, but the inn is warm."
    "warning|en-us+f3|165|Careful! Something is moving in the dark. Stay behind me."
    "farewell|en-gb|140|Farewell, my friend. I hope we meet again, under kinder skies."
)

{
    echo "// Subtitles of the example voice lines (made by scripts/make_voice_lines.sh)."
    echo "["
    for entry in "${lines[@]}"; do
        IFS='|' read -r name voice speed text <<<"$entry"
        espeak-ng -v "$voice" -s "$speed" -w "$tmp/$name.wav" "$text" 2>/dev/null
        # Trim leading/trailing silence, keep 0.2 s of tail, 16 kHz mono vorbis.
        sox "$tmp/$name.wav" -r 16000 -c 1 "$out/$name.ogg" \
            silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse pad 0.1 0.2
        seconds="$(soxi -D "$out/$name.ogg")"
        printf '    (file: "%s.ogg", text: "%s", seconds: %.2f),\n' "$name" "$text" "$seconds"
    done
    echo "]"
} >"$out/lines.ron"
ls -l "$out"
cat "$out/lines.ron"
