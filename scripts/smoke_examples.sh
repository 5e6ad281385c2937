#!/usr/bin/env bash
# Runs each example under Xvfb with Mesa's software Vulkan for a few seconds, saves a
# screenshot (EDTALK_SCREENSHOT) and checks that it is not blank. For contributors:
#   bash scripts/smoke_examples.sh            # all examples
#   bash scripts/smoke_examples.sh crowd      # one
# Screenshots land in target/smoke/. Needs: xvfb, mesa-vulkan-drivers (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(talking_npc emotion_script crowd tts_stream)
out="${CARGO_TARGET_DIR:-target}/smoke"
mkdir -p "$out"
export WGPU_BACKEND=vulkan
# Pipelines compile for seconds on the software rasteriser: wait by time, not frames.
export EDTALK_SCREENSHOT_AFTER="${EDTALK_SCREENSHOT_AFTER:-8}"
cargo build --examples
status=0
for ex in "${examples[@]}"; do
  shot="$out/$ex.png"
  rm -f "$shot"
  echo "smoke: $ex"
  if ! EDTALK_SCREENSHOT="$shot" timeout 120 xvfb-run -a -s "-screen 0 1280x800x24" \
      cargo run -q --example "$ex" >"$out/$ex.log" 2>&1; then
    echo "smoke: $ex exited with an error (log: $out/$ex.log)"; status=1; continue
  fi
  if [ ! -s "$shot" ]; then
    echo "smoke: $ex wrote no screenshot (log: $out/$ex.log)"; status=1; continue
  fi
  # Not blank: the image must have many distinct colours.
  colours=$(python3 - "$shot" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
# Decode PNG (8-bit RGB/RGBA, no interlace) with the standard library only.
pos, idat, w, h, ct = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR': w, h, _, ct = struct.unpack('>IIBB', body[:10])
    if kind == b'IDAT': idat += body
    pos += 12 + n
bpp = 4 if ct == 6 else 3
raw, stride, prev, seen = zlib.decompress(idat), w * bpp, bytearray(w * bpp), set()
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = [0, a, b, (a + b) // 2, a if pa <= pb and pa <= pc else (b if pb <= pc else c)][f]
        line[i] = (line[i] + pred) & 255
    prev = line
    if y % 4 == 0:
        for x in range(0, w, 4): seen.add(bytes(line[x * bpp:x * bpp + 3]))
print(len(seen))
PY
)
  if [ "$colours" -lt 200 ]; then
    echo "smoke: $ex screenshot looks blank ($colours colours): $shot"; status=1
  else
    echo "smoke: $ex ok ($colours colours): $shot"
  fi
done
exit $status
