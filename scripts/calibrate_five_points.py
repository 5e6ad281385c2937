#!/usr/bin/env python3
"""Five-point (and three-point) stand-ins for EDTalk's 47-point face alignment.

EDTalk (data_preprocess/crop_image2.py) aligns a face to a 256x256 crop with a
least-squares similarity (Umeyama, no reflection) from the template points
template[:47] (crop px) to dlib's 68 landmarks shape[:47] (source px):
    tform.estimate(template[:47], shape[:47]);  warp(image, tform, (256, 256))
so tform maps crop px -> source px. This script uses the 68-point ground truth
of the fixture faces to measure how far a crop aligned from five points (eye
centres, nose tip, mouth corners) or three points (eye centres, mouth centre)
lands from that 47-point crop, and writes the targets to
tests/fixtures/faces/five_point_targets.json.

    python3 scripts/calibrate_five_points.py            # needs numpy
    python3 scripts/calibrate_five_points.py --mtcnn    # also run scripts/mtcnn_reference.py
                                                        # (pillow; ~1 min) and score its points
    python3 scripts/calibrate_five_points.py --check-skimage   # compare with skimage

Conventions: .pts files are 1-based (x y); everything here is 0-based pixel
coordinates (pts - 1). All fits go in EDTalk's direction (crop targets ->
source points, least squares in source px) and are then inverted; the JSON
"transform47" is the 2x3 matrix mapping SOURCE px -> 256-crop px.
"""

import argparse
import json
import os
import re
import sys
import warnings

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = os.path.join(REPO_ROOT, "tests", "fixtures", "faces")
FIXTURES = [  # name, image file
    ("einstein", "einstein.jpg"),
    ("takeo", "takeo.png"),
    ("breakingbad", "breakingbad.jpg"),
    ("lenna", "lenna.png"),
]
CROP = 256


def read_pts(path):
    lines = [l.strip() for l in open(path)]
    i, j = lines.index("{"), lines.index("}")
    pts = np.array([[float(v) for v in l.split()] for l in lines[i + 1:j]])
    n = int([l for l in lines if l.startswith("n_points")][0].split(":")[1])
    assert pts.shape == (n, 2)
    return pts - 1.0  # 1-based -> 0-based


def umeyama(src, dst):
    """Least-squares similarity src -> dst (as skimage SimilarityTransform.estimate). 3x3."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = src.shape[0]
    sm, dm = src.mean(0), dst.mean(0)
    sd, dd = src - sm, dst - dm
    a = dd.T @ sd / n
    d = np.ones(2)
    if np.linalg.det(a) < 0:
        d[1] = -1
    u, s, vt = np.linalg.svd(a)
    t = np.eye(3)
    t[:2, :2] = u @ np.diag(d) @ vt
    scale = (s @ d) / sd.var(0).sum()
    t[:2, 2] = dm - scale * (t[:2, :2] @ sm)
    t[:2, :2] *= scale
    return t


def crop_transform(targets, points):
    """EDTalk direction: fit crop targets -> source points, return SOURCE -> crop (3x3)."""
    return np.linalg.inv(umeyama(targets, points))


def apply(t, p):
    p = np.asarray(p, np.float64)
    return p @ t[:2, :2].T + t[:2, 2]


def five_of(p68):
    p = np.asarray(p68, np.float64)
    return np.array([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def three_of(five):
    return np.array([five[0], five[1], (five[3] + five[4]) / 2])


GRID = np.stack(np.meshgrid(np.linspace(0, CROP - 1, 17), np.linspace(0, CROP - 1, 17)), -1).reshape(-1, 2)


def crop_diff(t_src_to_crop47, t_src_to_crop_other):
    """Mean / max displacement (crop px) of a 17x17 grid over the crop (corners and centre
    included): crop point -> source via the other crop's inverse -> 47-point crop."""
    q = apply(t_src_to_crop47 @ np.linalg.inv(t_src_to_crop_other), GRID)
    d = np.linalg.norm(q - GRID, axis=1)
    return float(d.mean()), float(d.max())


def nme(p, g):
    """mean_i |P_i - G_i| / |left eye G - right eye G| (five-point order)."""
    p, g = np.asarray(p), np.asarray(g)
    return float(np.linalg.norm(p - g, axis=1).mean() / np.linalg.norm(g[0] - g[1]))


def fmt(a):
    return "[" + ", ".join("(%.2f, %.2f)" % tuple(x) for x in np.asarray(a)) + "]"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mtcnn", action="store_true", help="also score scripts/mtcnn_reference.py")
    ap.add_argument("--check-skimage", action="store_true")
    ap.add_argument("--out", default=os.path.join(FACES, "five_point_targets.json"))
    args = ap.parse_args()

    template = np.array(json.load(open(os.path.join(FACES, "m003_template.json"))), np.float64)
    assert template.shape == (68, 2)
    t5 = five_of(template)
    t3 = three_of(t5)
    print("template five targets (crop px):", fmt(t5))
    print("template three targets (crop px):", fmt(t3))

    faces = {}
    for name, img in FIXTURES:
        g = read_pts(os.path.join(FACES, name + ".pts"))
        m47 = crop_transform(template[:47], g[:47])
        five = five_of(g)
        faces[name] = dict(img=img, g=g, m47=m47, five=five, three=three_of(five))
        if args.check_skimage:
            from skimage import transform as tf

            st = tf.SimilarityTransform()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                st.estimate(template[:47], g[:47])
            print("skimage check %-12s max |diff| = %.2e" % (name, np.abs(np.linalg.inv(st.params) - m47).max()))

    # Calibrated targets: GT five / three of each face mapped into its own 47-point crop.
    mapped5 = {n: apply(f["m47"], f["five"]) for n, f in faces.items()}
    mapped3 = {n: apply(f["m47"], f["three"]) for n, f in faces.items()}
    cal5 = np.mean(list(mapped5.values()), 0)
    cal3 = np.mean(list(mapped3.values()), 0)
    print("calibrated five targets (mean over faces):", fmt(cal5))
    print("calibrated three targets (mean over faces):", fmt(cal3))

    print()
    print("%-12s %-9s %-23s %-23s %-23s %-23s %s" % (
        "face", "residual", "five: template", "five: calibrated LOO", "three: template",
        "three: calibrated LOO", "eye dist px"))
    rows = {}
    for name, f in faces.items():
        others = [n for n in faces if n != name]
        loo5 = np.mean([mapped5[n] for n in others], 0)
        loo3 = np.mean([mapped3[n] for n in others], 0)
        r = {
            "five_template": crop_diff(f["m47"], crop_transform(t5, f["five"])),
            "five_loo": crop_diff(f["m47"], crop_transform(loo5, f["five"])),
            "three_template": crop_diff(f["m47"], crop_transform(t3, f["three"])),
            "three_loo": crop_diff(f["m47"], crop_transform(loo3, f["three"])),
            # how well the 47-point fit itself matches the GT (crop px, mean over the 47)
            "residual47": float(np.linalg.norm(apply(f["m47"], f["g"][:47]) - template[:47], axis=1).mean()),
        }
        rows[name] = r
        print("%-12s %6.2f    %-23s %-23s %-23s %-23s %.1f" % (
            name, r["residual47"],
            "%.2f / %.2f" % r["five_template"], "%.2f / %.2f" % r["five_loo"],
            "%.2f / %.2f" % r["three_template"], "%.2f / %.2f" % r["three_loo"],
            np.linalg.norm(f["five"][0] - f["five"][1])))
    print("(mean / max displacement in crop px over a 17x17 grid; residual = mean 47-point fit residual in crop px)")
    for k in ("five_template", "five_loo", "three_template", "three_loo"):
        print("  %-15s mean over faces: %.2f / %.2f" % (k, np.mean([r[k][0] for r in rows.values()]),
                                                      np.mean([r[k][1] for r in rows.values()])))

    print()
    print("template targets mapped back into each source, vs GT (NME = mean dist / GT eye distance):")
    for name, f in faces.items():
        back5 = apply(np.linalg.inv(f["m47"]), t5)
        print("  %-12s five NME %.3f  (per point px: %s)" % (
            name, nme(back5, f["five"]), " ".join("%.1f" % d for d in np.linalg.norm(back5 - f["five"], axis=1))))

    if args.mtcnn:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import mtcnn_reference as mr

        params = mr.load_safetensors(mr.WEIGHTS)
        print()
        print("scripts/mtcnn_reference.py points vs GT (face chosen by eye-centre proximity):")
        offs = []
        for name, f in faces.items():
            boxes, pts = mr.detect_file(os.path.join(FACES, f["img"]), params)
            if len(pts) == 0:
                print("  %-12s no face" % name)
                continue
            k = int(np.argmin([np.linalg.norm(p[:2].mean(0) - f["five"][:2].mean(0)) for p in pts]))
            p = pts[k].astype(np.float64)
            m5 = crop_transform(t5, p)
            m5c = crop_transform(cal5, p)
            m3 = crop_transform(t3, three_of(p))
            offs.append(apply(f["m47"], p) - mapped5[name])
            print("  %-12s %d detections, p=%.4f  NME %.3f  crop diff five/template %.2f / %.2f,"
                  " five/calibrated %.2f / %.2f, three/template %.2f / %.2f" % (
                      name, len(pts), boxes[k, 4], nme(p, f["five"]),
                      *crop_diff(f["m47"], m5), *crop_diff(f["m47"], m5c), *crop_diff(f["m47"], m3)))
            print("               mtcnn five %s" % fmt(p))
            print("               GT five    %s" % fmt(f["five"]))
        if offs:
            print("  mean MTCNN - GT offset in 47-crop px per point: %s" % fmt(np.mean(offs, 0)))

    out = {
        "five": [[round(float(v), 4) for v in row] for row in cal5],
        "three": [[round(float(v), 4) for v in row] for row in cal3],
        "per_face": {},
    }
    # Choose which targets to publish: calibrated when leave-one-out beats the template.
    loo_better5 = np.mean([r["five_loo"][0] for r in rows.values()]) < np.mean([r["five_template"][0] for r in rows.values()])
    loo_better3 = np.mean([r["three_loo"][0] for r in rows.values()]) < np.mean([r["three_template"][0] for r in rows.values()])
    final5 = cal5 if loo_better5 else t5
    final3 = cal3 if loo_better3 else t3
    out["five"] = [[round(float(v), 4) for v in row] for row in final5]
    out["three"] = [[round(float(v), 4) for v in row] for row in final3]
    for name, f in faces.items():
        mean, mx = crop_diff(f["m47"], crop_transform(final5, f["five"]))
        out["per_face"][name] = {
            "transform47": [[round(float(v), 8) for v in row] for row in f["m47"][:2]],
            "five_gt": [[round(float(v), 4) for v in row] for row in f["five"]],
            "crop_diff_px_mean": round(mean, 4),
            "crop_diff_px_max": round(mx, 4),
        }
    print()
    print("published five targets: %s (%s)" % (fmt(final5), "calibrated" if loo_better5 else "template"))
    print("published three targets: %s (%s)" % (fmt(final3), "calibrated" if loo_better3 else "template"))
    text = json.dumps(out, indent=1)
    # one line per innermost [x, y] / matrix row
    text = re.sub(r"\[\s+([-0-9.e]+(?:,\s+[-0-9.e]+)*)\s+\]",
                  lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    json.loads(text)
    with open(args.out, "w") as fh:
        fh.write(text + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
