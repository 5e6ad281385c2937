#!/usr/bin/env python3
"""End-to-end check of `edtalk render` / `edtalk bake` / `edtalk extract` against the
OFFICIAL EDTalk PyTorch code, with seeded random full-size weights.

The official repository (https://github.com/tanshuai0219/EDTalk) is NOT copied here: pass a
checkout of it with --official DIR; this script imports `networks.generator`,
`networks.audio_encoder` and `audio` (plus `hparams`) from there and re-does, on the CPU, the
computation of `demo_EDTalk_A_using_predefined_exp_weights.py` with the portrait as its own
pose source (pose video = the portrait repeated).

What it does
  1. Builds `Generator(256, 512, 20, 6, 10, 1)` and `Audio2Lip()`, initialises them with
     torch.manual_seed(SEED) and their own default init, then perturbs every parameter or
     float buffer whose default init is a constant (zero biases, FusedLeakyReLU biases,
     ToRGB/ToFlow biases, the modulation biases that start at 1, BatchNorm affine and
     running statistics, the Audio2Lip mapping bias): with those left at 0 / 1 a whole class
     of loader and layer bugs (bias dropped, bias added twice, BatchNorm statistics ignored,
     eps misplaced) would not show. Noise is seeded normal, std 0.1 around the default
     value; BatchNorm running_var gets uniform(0.5, 1.5). Saves torch.save({'gen': sd}) as
     EDTalk.pt and torch.save({'audio2lip': sd}) as Audio2Lip.pt, the official layout.
     (Skipped when both files already exist in --ckpts, unless --force-ckpts.)
  2. Runs the official pipeline: audio.load_wav(16 kHz) -> parse_audio_length/crop_pad_audio
     -> audio.melspectrogram -> 16-row windows starting at int(80*((i-2)/25)) clamped ->
     audio2lip(audio, bs, T)[0] -> 3-tap Gaussian conv_feat (sigma 1, zero padding 1) ->
     per frame gen.test_EDTalk_A_use_exp_weight(img, lip_i, img, exp_weights, None).
  3. Writes reference PNGs (frame_00000.png ...) with round((clamp(y,-1,1)+1)/2*255) (our
     CLI's per-frame quantisation, not the official per-video min/max stretch), the mouth
     coefficients (raw and smoothed) as .npy and JSON, and intermediates (mel, windows,
     the source image tensor, the expression weights, the float generator output of each
     frame) as .npy.
  4. Optionally compares with our outputs: --ours-frames DIR (from `edtalk render
     --frames-out`), --ours-bake FILE.ron (from `edtalk bake`), --ours-extract FILE.ron
     (from `edtalk extract --frames DIR` run on the same --extract-frames DIR).

Compatibility shims (the official code targets torch 1.10 / librosa 0.7-0.8 / numpy 1.23):
  * `.cuda()` on tensors and modules is made a no-op (everything runs on the CPU).
  * `torch.qr` falls back to `torch.linalg.qr(mode='reduced')` where it is removed (LAPACK
    geqrf/orgqr Householder QR either way, so the same signs as torch 1.10's torch.qr).
  * `librosa.filters.mel(sr, n_fft, ...)` positional call is accepted (keyword-only since
    librosa 0.10).
  * `librosa.stft` default pad_mode is set to 'reflect' (the default of librosa <= 0.9, which
    the official requirements pin; librosa 0.10 changed it to 'constant'). Override with
    --stft-pad-mode constant to see the librosa-0.10 behaviour.
  * conv_feat is reimplemented here (the official one uses np.float, removed in numpy 1.24).

Timing (2-core VM, one torch thread, nice 19): ~4.3 s per 256x256 frame, so keep clips short
(our render always renders every frame of the audio; trim the WAV rather than --max-frames).
With seeded random weights the generator is ill-conditioned (random flows, features up to
hundreds): float32 rounding alone moves a few isolated pixels by tens of grey levels, so
judge the pixels by the mean |diff| and the share of pixels off by > 2 levels, and use
--f64-frames to see PyTorch's own float32-vs-float64 spread for comparison.

Example
  python official_e2e.py --official /tmp/EDTalk --ckpts /tmp/ckpts --seed 0 \
      --portrait assets/portraits/ada.png --audio clip16k.wav --emotion neutral \
      --out /tmp/ref_ada --ours-frames /tmp/ours_ada --ours-bake /tmp/ours.ron
"""

import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, help="checkout of tanshuai0219/EDTalk")
    p.add_argument("--ckpts", required=True, help="dir for EDTalk.pt / Audio2Lip.pt (created if missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force-ckpts", action="store_true", help="re-create the checkpoints even if present")
    p.add_argument("--bias-std", type=float, default=0.1, help="std of the noise on constant-init params")
    p.add_argument("--portrait", help="source image (also the pose source)")
    p.add_argument("--audio", help="16 kHz mono WAV")
    p.add_argument("--emotion", default="neutral", help="name of ckpts/predefined_exp_weights/<name>.npy")
    p.add_argument("--out", help="output dir for the reference")
    p.add_argument("--max-frames", type=int, default=0, help="render at most this many frames (0 = all)")
    p.add_argument("--skip-render", action="store_true", help="only the audio side (coefficients)")
    p.add_argument("--stft-pad-mode", default="reflect", choices=["reflect", "constant"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--f64-frames", type=int, default=0,
                   help="also run the first N frames' generator in float64 (same f32 mouth "
                        "coefficients) to measure how far float32 rounding alone moves the pixels")
    p.add_argument("--ours-frames", help="dir of our frame_%%05d.png to compare with")
    p.add_argument("--ours-bake", help="our `edtalk bake` RON to compare the mouth coefficients with")
    p.add_argument("--extract-frames", help="dir of images: official lip/pose/exp coefficients of each")
    p.add_argument("--ours-extract", help="our `edtalk extract` RON on the same --extract-frames dir")
    return p.parse_args()


# ---------------------------------------------------------------------------------------------
# Environment: import the official modules with the shims described above.

def import_official(official, pad_mode):
    import torch
    import torch.nn as nn

    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    try:
        torch.qr(torch.eye(2))
    except (AttributeError, RuntimeError):  # removed in recent torch (raises on call)
        torch.qr = lambda a, some=True: torch.linalg.qr(a, mode="reduced" if some else "complete")

    import librosa
    import librosa.filters

    mel_orig = librosa.filters.mel

    def mel_compat(*args, **kwargs):
        names = ["sr", "n_fft"]
        for name, value in zip(names, args):
            kwargs[name] = value
        return mel_orig(**kwargs)

    librosa.filters.mel = mel_compat
    stft_orig = librosa.stft

    def stft_compat(*args, **kwargs):
        kwargs.setdefault("pad_mode", pad_mode)
        return stft_orig(*args, **kwargs)

    librosa.stft = stft_compat
    if not hasattr(librosa, "core") or not hasattr(librosa.core, "load"):
        raise SystemExit("librosa.core.load missing")

    sys.path.insert(0, os.path.abspath(official))
    cwd = os.getcwd()
    os.chdir(official)  # hparams/glob relative imports
    try:
        from networks.generator import Generator
        from networks.audio_encoder import Audio2Lip
        import audio as official_audio
    finally:
        os.chdir(cwd)
    return Generator, Audio2Lip, official_audio


# ---------------------------------------------------------------------------------------------
# Checkpoints

def perturb_constant_init(module, gen, std):
    """Adds seeded noise to every parameter / float buffer whose default init is constant."""
    import torch

    changed = []
    with torch.no_grad():
        named = list(module.named_parameters()) + [
            (n, b) for n, b in module.named_buffers() if b.is_floating_point()
        ]
        for name, t in named:
            if name.endswith("kernel"):  # blur FIR taps: fixed constants, not learned
                continue
            if t.numel() == 0:
                continue
            flat = t.reshape(-1)
            if not bool((flat == flat[0]).all()):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=gen) * std)
            changed.append(name)
    return changed


def make_ckpts(args, Generator, Audio2Lip):
    import torch

    gen_path = os.path.join(args.ckpts, "EDTalk.pt")
    a2l_path = os.path.join(args.ckpts, "Audio2Lip.pt")
    if os.path.exists(gen_path) and os.path.exists(a2l_path) and not args.force_ckpts:
        print(f"ckpts: using existing {gen_path}, {a2l_path}")
        return
    os.makedirs(args.ckpts, exist_ok=True)
    torch.manual_seed(args.seed)
    g = Generator(256, 512, 20, 6, 10, 1)
    a = Audio2Lip()
    noise = torch.Generator().manual_seed(args.seed + 1)
    cg = perturb_constant_init(g, noise, args.bias_std)
    ca = perturb_constant_init(a, noise, args.bias_std)
    torch.save({"gen": g.state_dict()}, gen_path)
    torch.save({"audio2lip": a.state_dict()}, a2l_path)
    n_g = sum(p.numel() for p in g.parameters())
    n_a = sum(p.numel() for p in a.parameters())
    print(f"ckpts: seed {args.seed}: Generator {n_g} params ({len(cg)} constant-init tensors perturbed), "
          f"Audio2Lip {n_a} params ({len(ca)} perturbed) -> {args.ckpts}")


def load_models(args, Generator, Audio2Lip):
    import torch

    g = Generator(256, 512, 20, 6, 10, 1)
    g.load_state_dict(torch.load(os.path.join(args.ckpts, "EDTalk.pt"), map_location="cpu")["gen"])
    g.eval()
    a = Audio2Lip()
    a.load_state_dict(torch.load(os.path.join(args.ckpts, "Audio2Lip.pt"), map_location="cpu")["audio2lip"])
    a.eval()
    return g, a


# ---------------------------------------------------------------------------------------------
# The official demo's computation (demo_EDTalk_A_using_predefined_exp_weights.py), on the CPU.

def load_image(path):
    """load_image + img_preprocessing of the demo: PIL RGB, resize((256,256)) (bicubic), [-1,1]."""
    import torch
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img = img.resize((256, 256))
    arr = np.transpose(np.asarray(img), (2, 0, 1)) / 255.0
    t = torch.from_numpy(arr).unsqueeze(0).float()
    return (t - 0.5) * 2.0


def get_mel(official_audio, wav_path):
    """get_mel of the demo; also returns the intermediates."""
    import torch

    wav = official_audio.load_wav(wav_path, 16000)
    n_samples = len(wav)
    bit_per_frames = 16000 / 25
    num_frames = int(len(wav) / bit_per_frames)
    wav_length = int(num_frames * bit_per_frames)
    if len(wav) > wav_length:
        wav = wav[:wav_length]
    elif len(wav) < wav_length:
        wav = np.pad(wav, [0, wav_length - len(wav)], mode="constant", constant_values=0)
    orig_mel = official_audio.melspectrogram(wav).T  # frames x 80
    windows = []
    for i in range(num_frames):
        start = int(80.0 * ((i - 2) / float(25)))
        seq = [min(max(k, 0), orig_mel.shape[0] - 1) for k in range(start, start + 16)]
        windows.append(orig_mel[seq, :].T)
    windows = np.asarray(windows)  # T x 80 x 16
    x = torch.FloatTensor(windows).unsqueeze(1).unsqueeze(0)  # 1 T 1 80 16
    bs, T = x.shape[0], x.shape[1]
    return x.view(-1, 1, 80, 16), bs, T, orig_mel, windows, n_samples


def conv_feat(features, k_size=3, sigma=1.0):
    """The demo's conv_feat with weight=None: normalised exp(-x^2/(2 sigma^2)) taps, depthwise
    conv1d over time with zero padding k_size//2 (reimplemented: the original uses np.float)."""
    import torch
    import torch.nn.functional as F

    pad = k_size // 2
    k = np.array([math.exp(-x ** 2 / (2 * sigma ** 2)) for x in range(-pad, k_size - pad)], dtype=np.float64)
    k = k / k.sum()
    c = features.shape[1]
    kt = torch.from_numpy(k).float().unsqueeze(0).unsqueeze(0).repeat(c, 1, 1)
    f = features.unsqueeze(0).permute(0, 2, 1)
    f = F.conv1d(f, kt, padding=pad, groups=c)
    return f.permute(0, 2, 1).squeeze(0)


def to_u8(y):
    """round((clamp(y,-1,1)+1)/2*255), HWC uint8."""
    y = np.clip(y, -1.0, 1.0)
    return np.round((y + 1.0) / 2.0 * 255.0).astype(np.uint8).transpose(1, 2, 0)


def official_coefficients(g, img):
    """The generator's coefficient heads on one image (as test_EDTalk_V uses them):
    h = enc.net_app(img); s = fc(h); lip_fc(s), pose_fc(s), exp_fc(s)."""
    h, _ = g.enc.net_app(img)
    s = g.fc(h)
    return g.lip_fc(s)[0].numpy(), g.pose_fc(s)[0].numpy(), g.exp_fc(s)[0].numpy()


# ---------------------------------------------------------------------------------------------
# Our outputs

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|NaN"


def ron_field_lists(path, field):
    """Per frame, the list of floats of `field: Some([...])` / `Some((...))` (None -> None)."""
    text = open(path).read()
    out = []
    for m in re.finditer(field + r"\s*:\s*(None|Some\(\s*[\[(]([^\])]*)[\])]\s*\))", text):
        if m.group(1) == "None":
            out.append(None)
        else:
            out.append([float(v) for v in re.findall(_FLOAT, m.group(2))])
    return out


def compare_frames(ref_dir, ours_dir, n):
    from PIL import Image

    rows = []
    for i in range(n):
        name = f"frame_{i:05d}.png"
        ours_path = os.path.join(ours_dir, name)
        if not os.path.exists(ours_path):
            rows.append((i, None, None, None))
            continue
        ref = np.asarray(Image.open(os.path.join(ref_dir, name)).convert("RGB")).astype(np.int32)
        ours = np.asarray(Image.open(ours_path).convert("RGB")).astype(np.int32)
        if ref.shape != ours.shape:
            rows.append((i, f"shape {ref.shape} vs {ours.shape}", None, None))
            continue
        d = np.abs(ref - ours)
        rows.append((i, int(d.max()), float(d.mean()), float((d > 2).mean())))
    return rows


# ---------------------------------------------------------------------------------------------

def main():
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    Generator, Audio2Lip, official_audio = import_official(args.official, args.stft_pad_mode)
    make_ckpts(args, Generator, Audio2Lip)
    if not (args.audio or args.extract_frames):
        return
    g, a2l = load_models(args, Generator, Audio2Lip)
    report = {}

    if args.extract_frames:
        names = sorted(f for f in os.listdir(args.extract_frames)
                       if f.lower().endswith((".png", ".jpg", ".jpeg")))
        coeffs = []
        with torch.no_grad():
            for f in names:
                lip, pose, exp = official_coefficients(g, load_image(os.path.join(args.extract_frames, f)))
                coeffs.append({"file": f, "lip": lip.tolist(), "pose": pose.tolist(), "exp": exp.tolist()})
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            json.dump(coeffs, open(os.path.join(args.out, "extract_coeffs.json"), "w"), indent=1)
        if args.ours_extract:
            for field, key in (("lip_coeffs", "lip"), ("pose_coeffs", "pose"), ("exp_coeffs", "exp")):
                ours = ron_field_lists(args.ours_extract, field)
                worst, worst_rel = 0.0, 0.0
                for c, o in zip(coeffs, ours):
                    ref = np.array(c[key])
                    if o is None or len(o) != len(ref):
                        print(f"extract {c['file']} {field}: ours {o!r}")
                        worst = float("inf")
                        continue
                    d = np.abs(ref - np.array(o)).max()
                    worst = max(worst, d)
                    worst_rel = max(worst_rel, d / max(np.abs(ref).max(), 1e-12))
                print(f"extract {field}: {len(coeffs)} images (ours {len(ours)}), max abs diff {worst:.3e}, "
                      f"max rel (to max |ref|) {worst_rel:.3e}")
                report[f"extract_{key}_max_abs"] = worst

    if args.audio:
        if not args.out or (not args.skip_render and not args.portrait):
            raise SystemExit("--audio needs --out, and --portrait unless --skip-render")
        os.makedirs(args.out, exist_ok=True)
        t0 = time.time()
        with torch.no_grad():
            x, bs, T, orig_mel, windows, n_samples = get_mel(official_audio, args.audio)
            raw = a2l(x, bs, T)[0]
            smooth = conv_feat(raw, k_size=3, sigma=1)
        print(f"audio: {n_samples} samples -> {T} frames, mel {orig_mel.shape}, "
              f"coeff range [{smooth.min():.3f}, {smooth.max():.3f}] ({time.time() - t0:.2f} s)")
        np.save(os.path.join(args.out, "mel.npy"), orig_mel.astype(np.float32))
        np.save(os.path.join(args.out, "mel_windows.npy"), windows.astype(np.float32))
        np.save(os.path.join(args.out, "lip_raw.npy"), raw.numpy())
        np.save(os.path.join(args.out, "lip_smoothed.npy"), np.ascontiguousarray(smooth.numpy()))
        json.dump({"frames": T, "samples": n_samples, "lip_raw": raw.tolist(), "lip_smoothed": smooth.tolist()},
                  open(os.path.join(args.out, "lip_coeffs.json"), "w"))
        report["frames"] = T

        if args.ours_bake:
            ours = ron_field_lists(args.ours_bake, "lip_coeffs")
            print(f"bake: ours {len(ours)} frames, reference {T}")
            if len(ours) == T and all(o is not None and len(o) == smooth.shape[1] for o in ours):
                o = np.array(ours)
                ref = smooth.numpy()
                d = np.abs(o - ref)
                rel = d.max() / np.abs(ref).max()
                print(f"bake lip_coeffs: max abs diff {d.max():.3e}, mean {d.mean():.3e}, "
                      f"max |ref| {np.abs(ref).max():.3f}, rel {rel:.3e}; "
                      f"vs UNSMOOTHED raw: max abs diff {np.abs(o - raw.numpy()).max():.3e}")
                report["bake_max_abs"] = float(d.max())
            else:
                print("bake: frame count or coefficient shape mismatch")

        if not args.skip_render:
            exp_path = os.path.join(args.official, "ckpts", "predefined_exp_weights", args.emotion + ".npy")
            exp_w = torch.from_numpy(np.load(exp_path))
            img = load_image(args.portrait)
            np.save(os.path.join(args.out, "input_image.npy"), img.numpy())
            np.save(os.path.join(args.out, "exp_weights.npy"), exp_w.numpy())
            n = T if args.max_frames <= 0 else min(T, args.max_frames)
            floats = []
            t0 = time.time()
            from PIL import Image

            with torch.no_grad():
                for i in range(n):
                    lip = smooth[i:i + 1]
                    y = g.test_EDTalk_A_use_exp_weight(img, lip, img, exp_w, None)[0].numpy()
                    floats.append(y)
                    Image.fromarray(to_u8(y)).save(os.path.join(args.out, f"frame_{i:05d}.png"))
            dt = time.time() - t0
            f64 = []
            if args.f64_frames > 0:
                import copy

                g64 = copy.deepcopy(g).double()
                with torch.no_grad():
                    for i in range(min(n, args.f64_frames)):
                        lip = smooth[i:i + 1].double()
                        y = g64.test_EDTalk_A_use_exp_weight(img.double(), lip, img.double(),
                                                             exp_w.double(), None)[0].numpy()
                        f64.append(y)
                        Image.fromarray(to_u8(y)).save(os.path.join(args.out, f"f64_frame_{i:05d}.png"))
                np.save(os.path.join(args.out, "gen_out_f64.npy"), np.stack(f64))
                for i, y in enumerate(f64):
                    dq = np.abs(to_u8(y).astype(int) - to_u8(floats[i]).astype(int))
                    print(f"  f64 vs f32 reference, frame {i}: float max |diff| {np.abs(y - floats[i]).max():.3e}"
                          f", pixels max |diff| {dq.max()}, mean {dq.mean():.4f}, >2 levels {100 * (dq > 2).mean():.3f}%")
            floats = np.stack(floats)
            np.save(os.path.join(args.out, "gen_out_float.npy"), floats.astype(np.float32))
            clipped = float((np.abs(floats) > 1).mean())
            print(f"render: {n}/{T} frames in {dt:.1f} s ({dt / max(n, 1):.2f} s/frame); output range "
                  f"[{floats.min():.3f}, {floats.max():.3f}], std {floats.std():.3f}, {100 * clipped:.1f}% "
                  f"values clamped, frame-to-frame mean |diff| {np.abs(np.diff(floats, axis=0)).mean() if n > 1 else 0:.4f}")
            report["rendered"] = n

            if args.ours_frames:
                ours_n = len([f for f in os.listdir(args.ours_frames) if re.fullmatch(r"frame_\d{5}\.png", f)])
                print(f"frames: ours {ours_n}, reference {T} (compared {n})")
                rows = compare_frames(args.out, args.ours_frames, n)
                for i, mx, mean, frac in rows:
                    if mean is None:
                        print(f"  frame {i:3d}: {mx if mx is not None else 'missing in ours'}")
                    else:
                        print(f"  frame {i:3d}: max |diff| {mx:3d}, mean {mean:.4f}, >2 levels {100 * frac:.3f}%")
                for i, y in enumerate(f64):
                    p = os.path.join(args.ours_frames, f"frame_{i:05d}.png")
                    if os.path.exists(p):
                        ours = np.asarray(Image.open(p).convert("RGB")).astype(int)
                        dq = np.abs(to_u8(y).astype(int) - ours)
                        print(f"  ours vs f64 reference, frame {i}: max |diff| {dq.max()}, mean {dq.mean():.4f}, "
                              f">2 levels {100 * (dq > 2).mean():.3f}%")
                good = [r for r in rows if r[2] is not None]
                if good:
                    print(f"pixels: over {len(good)} frames max |diff| {max(r[1] for r in good)}, "
                          f"mean |diff| {np.mean([r[2] for r in good]):.4f}")
                    report["pix_max"] = max(r[1] for r in good)
                    report["pix_mean"] = float(np.mean([r[2] for r in good]))
                report["ours_frames"] = ours_n
    json.dump(report, open(os.path.join(args.out, "report.json"), "w") if args.out else sys.stdout)


if __name__ == "__main__":
    main()
