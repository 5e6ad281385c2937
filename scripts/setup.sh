#!/usr/bin/env bash
# Installs the system packages bevy_edtalk needs on Debian/Ubuntu: ALSA and udev headers for
# audio and input, X11/Wayland/xkbcommon for the window, Mesa's software Vulkan and Xvfb for
# headless screenshots, espeak-ng and sox to make the test speech. Idempotent and quiet.
set -euo pipefail
pkgs=(pkg-config libasound2-dev libudev-dev libx11-dev libxkbcommon-dev libwayland-dev
      libxcursor1 libxrandr2 libxi6 xvfb xauth mesa-vulkan-drivers libvulkan1 espeak-ng sox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup.rs" >&2; exit 1; }
