#!/usr/bin/env bash
# Compiles the crate with the `cuda` feature (no GPU needed: it checks that candle's CUDA
# kernels build with the toolkit and that our neural path compiles for the CUDA backend).
# For contributors; not part of CI (the toolkit is a 1.6 GB download).
#
# Debian 12: the toolkit is in non-free (CUDA 11.8):
#   sed 's/Components: main/Components: main contrib non-free/' \
#     /etc/apt/sources.list.d/debian.sources > /tmp/nonfree.sources
#   apt-get update -o Dir::Etc::sourcelist=/tmp/nonfree.sources -o Dir::Etc::sourceparts=/dev/null
#   apt-get install --no-install-recommends -y nvidia-cuda-toolkit \
#     -o Dir::Etc::sourcelist=/tmp/nonfree.sources -o Dir::Etc::sourceparts=/dev/null
#
# CUDA_COMPUTE_CAP picks the kernels' architecture. CUDA 11.8 compiles up to 89 (Ada); 90
# (Hopper: H100/H200) needs CUDA 12 (candle asks nvcc for compute_90a). PTX built for 80
# also runs on newer GPUs (the driver compiles it on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || { echo "check_cuda: nvcc not found (see the comment above)"; exit 1; }
nvcc --version | tail -1
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bevy_edtalk/target-cuda}"
cargo check --locked --no-default-features --features cli,cuda --lib --bins
