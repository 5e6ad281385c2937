#!/usr/bin/env python3
"""Audio2Lip speed, PyTorch beside this crate, in one run on one machine (not run by CI).

PyTorch side: the official Audio2Lip network (Wav2Lip's audio encoder: thirteen
Conv2d + BatchNorm + ReLU blocks, then a linear map to the 20 mouth coefficients), written
out here from its layer list so that no checkout of the official repository is needed,
with random weights, in eval mode under `torch.inference_mode()`, on a batch of mel
windows `(batch, 1, 80, 16)`; timed at each thread count in `--threads` with
`torch.set_num_threads`.

Our side (unless `--no-ours`): `edtalk bench --threads N --only audio2lip` at the same
thread counts, which times mel + Audio2Lip over 20 s of audio at the same batch (best of 7
runs) and prints the time per block. `--edtalk` may name several builds, e.g. before and
after a change: `--edtalk before=/tmp/edtalk-old --edtalk after=target/release/edtalk`.

Both report milliseconds per 25 fps video frame and the real-time factor (40 ms of audio
per frame divided by that). PyTorch's figure excludes the mel spectrogram; ours includes it
(its share is printed, under 1 %).

    pip install torch            # the CPU wheel is enough
    python3 scripts/bench_audio2lip.py --threads 1 2 --rounds 2 \\
        --edtalk target/release/edtalk
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FRAME_MS = 40.0  # one 25 fps video frame of audio

# (in, out, kernel, stride, padding, residual) of the thirteen blocks of `audio_encoder`.
BLOCKS = [
    (1, 32, 3, 1, 1, False),
    (32, 32, 3, 1, 1, True),
    (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False),
    (512, 512, 1, 1, 0, False),
]


def build_model(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, k, stride, pad, residual):
            super().__init__()
            self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad), nn.BatchNorm2d(cout))
            self.residual = residual

        def forward(self, x):
            y = self.conv_block(x)
            if self.residual:
                y = y + x
            return torch.relu(y)

    class Audio2Lip(nn.Module):
        def __init__(self):
            super().__init__()
            self.audio_encoder = nn.Sequential(*[Block(*b) for b in BLOCKS])
            self.mapping = nn.Linear(512, 20)

        def forward(self, x):
            return self.mapping(self.audio_encoder(x).flatten(1))

    torch.manual_seed(0)
    model = Audio2Lip()
    # Non-trivial BatchNorm statistics, as a trained network has.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.05, 0.05)
            m.running_var.uniform_(0.9, 1.1)
    return model.eval()


def time_pytorch(torch, model, threads, batch, reps):
    torch.set_num_threads(threads)
    x = torch.randn(batch, 1, 80, 16)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    # Best and median of the repetitions: the machine may be shared.
    best = min(times) * 1000.0 / batch
    median = statistics.median(times) * 1000.0 / batch
    return best, median


def time_ours(edtalk, threads):
    out = subprocess.run(
        [edtalk, "bench", "--threads", str(threads), "--only", "audio2lip"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {f["bench"]: f for f in figures}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=100, help="windows per forward pass")
    p.add_argument("--reps", type=int, default=20, help="timed PyTorch passes per thread count")
    p.add_argument("--edtalk", action="append", metavar="[NAME=]PATH",
                   help="a built `edtalk` binary (repeatable; default target/release/edtalk)")
    p.add_argument("--no-ours", action="store_true", help="time PyTorch only")
    p.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    args = p.parse_args()

    builds = []
    for spec in args.edtalk or ["target/release/edtalk"]:
        name, _, path = spec.rpartition("=")
        builds.append((name or "ours", path))

    import torch

    model = build_model(torch)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, batch {args.batch}", file=sys.stderr)
    rows = []
    for r in range(args.rounds):
        for t in args.threads:
            best, median = time_pytorch(torch, model, t, args.batch, args.reps)
            row = {
                "round": r,
                "threads": t,
                "pytorch_ms_per_frame": round(best, 3),
                "pytorch_median_ms_per_frame": round(median, 3),
                "pytorch_realtime_factor": round(FRAME_MS / best, 1),
            }
            if not args.no_ours:
                for name, path in builds:
                    ours = time_ours(path, t)
                    a2l = ours.get("audio2lip", {})
                    rt = a2l.get("realtime_factor", float("nan"))
                    row[f"{name}_ms_per_frame"] = round(a2l.get("ms_per_frame", float("nan")), 3)
                    row[f"{name}_realtime_factor"] = round(rt, 1)
                    row[f"{name}_mel_share"] = round(a2l.get("mel_share", float("nan")), 4)
                    layers = ours.get("audio2lip_layers")
                    if layers:
                        row[f"{name}_ms_per_block"] = layers["ms_per_batch"]
                    row[f"{name}_vs_pytorch"] = round(rt / row["pytorch_realtime_factor"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
