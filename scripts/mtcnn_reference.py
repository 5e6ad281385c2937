#!/usr/bin/env python3
"""Numpy-only reference of facenet-pytorch's MTCNN (detect_face) on
assets/models/mtcnn.safetensors, for checking a Rust port and the converted
weights. Slow but small; no torch.

    python3 scripts/mtcnn_reference.py tests/fixtures/faces/takeo.png [more images]

prints, per image, every detected face: box x1 y1 x2 y2, probability and the
five landmarks (left eye, right eye, nose, left mouth corner, right mouth
corner; "left" = image left), in pixel coordinates as facenet-pytorch returns
them.

Follows facenet_pytorch/models/utils/detect_face.py (v2.6.0): image pyramid
from min_face_size 20 and factor 0.709, thresholds 0.6/0.7/0.7, "area" resizes
(adaptive average pooling), torchvision-style NMS for stages one and two and the
"Min" NMS for the third stage, the -1 / +1 box conventions kept as they are.
"""

import json
import os
import struct
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO_ROOT, "assets", "models", "mtcnn.safetensors")


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).astype(np.float32)
    return out


# ---------------------------------------------------------------- layers (NCHW)
def conv2d(x, w, b):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    s = x.strides
    cols = np.lib.stride_tricks.as_strided(
        x, shape=(n, c, kh, kw, oh, ow), strides=(s[0], s[1], s[2], s[3], s[2], s[3]))
    y = np.tensordot(w, cols, axes=([1, 2, 3], [1, 2, 3]))  # o, n, oh, ow
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3)) + b[None, :, None, None]


def prelu(x, a):
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    a = a.reshape(shape)
    return np.where(x >= 0, x, x * a)


def maxpool_ceil(x, k, s):
    n, c, h, w = x.shape
    oh = -(-(h - k) // s) + 1
    ow = -(-(w - k) // s) + 1
    if (oh - 1) * s >= h:
        oh -= 1
    if (ow - 1) * s >= w:
        ow -= 1
    ph, pw = (oh - 1) * s + k, (ow - 1) * s + k
    xp = np.full((n, c, max(ph, h), max(pw, w)), -np.inf, dtype=x.dtype)
    xp[:, :, :h, :w] = x
    st = xp.strides
    win = np.lib.stride_tricks.as_strided(
        xp, shape=(n, c, oh, ow, k, k), strides=(st[0], st[1], st[2] * s, st[3] * s, st[2], st[3]))
    return win.max(axis=(4, 5))


def softmax1(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def linear(x, w, b):
    return x @ w.T + b


def pnet(p, x):
    x = maxpool_ceil(prelu(conv2d(x, p["pnet.conv1.weight"], p["pnet.conv1.bias"]), p["pnet.prelu1.weight"]), 2, 2)
    x = prelu(conv2d(x, p["pnet.conv2.weight"], p["pnet.conv2.bias"]), p["pnet.prelu2.weight"])
    x = prelu(conv2d(x, p["pnet.conv3.weight"], p["pnet.conv3.bias"]), p["pnet.prelu3.weight"])
    a = softmax1(conv2d(x, p["pnet.conv4_1.weight"], p["pnet.conv4_1.bias"]))
    b = conv2d(x, p["pnet.conv4_2.weight"], p["pnet.conv4_2.bias"])
    return b, a


def rnet(p, x):
    x = maxpool_ceil(prelu(conv2d(x, p["rnet.conv1.weight"], p["rnet.conv1.bias"]), p["rnet.prelu1.weight"]), 3, 2)
    x = maxpool_ceil(prelu(conv2d(x, p["rnet.conv2.weight"], p["rnet.conv2.bias"]), p["rnet.prelu2.weight"]), 3, 2)
    x = prelu(conv2d(x, p["rnet.conv3.weight"], p["rnet.conv3.bias"]), p["rnet.prelu3.weight"])
    x = x.transpose(0, 3, 2, 1).reshape(x.shape[0], -1)  # NB: (N, W, H, C) flatten, as in facenet-pytorch
    x = prelu(linear(x, p["rnet.dense4.weight"], p["rnet.dense4.bias"]), p["rnet.prelu4.weight"])
    a = softmax1(linear(x, p["rnet.dense5_1.weight"], p["rnet.dense5_1.bias"]))
    b = linear(x, p["rnet.dense5_2.weight"], p["rnet.dense5_2.bias"])
    return b, a


def onet(p, x):
    x = maxpool_ceil(prelu(conv2d(x, p["onet.conv1.weight"], p["onet.conv1.bias"]), p["onet.prelu1.weight"]), 3, 2)
    x = maxpool_ceil(prelu(conv2d(x, p["onet.conv2.weight"], p["onet.conv2.bias"]), p["onet.prelu2.weight"]), 3, 2)
    x = maxpool_ceil(prelu(conv2d(x, p["onet.conv3.weight"], p["onet.conv3.bias"]), p["onet.prelu3.weight"]), 2, 2)
    x = prelu(conv2d(x, p["onet.conv4.weight"], p["onet.conv4.bias"]), p["onet.prelu4.weight"])
    x = x.transpose(0, 3, 2, 1).reshape(x.shape[0], -1)
    x = prelu(linear(x, p["onet.dense5.weight"], p["onet.dense5.bias"]), p["onet.prelu5.weight"])
    a = softmax1(linear(x, p["onet.dense6_1.weight"], p["onet.dense6_1.bias"]))
    b = linear(x, p["onet.dense6_2.weight"], p["onet.dense6_2.bias"])
    c = linear(x, p["onet.dense6_3.weight"], p["onet.dense6_3.bias"])
    return b, c, a


# ---------------------------------------------------------------- helpers
def _area_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        s = (i * n_in) // n_out
        e = -((-(i + 1) * n_in) // n_out)
        m[i, s:e] = 1.0 / (e - s)
    return m


def imresample(img, size):
    """img: (C, H, W) float; torch interpolate(mode='area') == adaptive avg pool."""
    oh, ow = size
    mh = _area_matrix(img.shape[1], oh)
    mw = _area_matrix(img.shape[2], ow)
    return ((mh @ img.astype(np.float64)) @ mw.T).astype(np.float32)


def nms(boxes, scores, thresh, method="Union", plus_one=False):
    """Greedy NMS; Union without +1 = torchvision.ops.nms, 'Min' with +1 = nms_numpy."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    e = 1.0 if plus_one else 0.0
    area = (x2 - x1 + e) * (y2 - y1 + e)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + e)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + e)
        inter = w * h
        if method == "Min":
            o = inter / np.minimum(area[i], area[rest])
        else:
            o = inter / (area[i] + area[rest] - inter)
        order = rest[o <= thresh]
    return np.array(keep, dtype=np.int64)


def rerec(b):
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    l = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - l * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - l * 0.5
    b[:, 2] = b[:, 0] + l
    b[:, 3] = b[:, 1] + l
    return b


def bbreg(b, reg):
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def pad(boxes, w, h):
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x, y, ex, ey = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def crops(img, boxes, size):
    h, w = img.shape[1:]
    y, ey, x, ex = pad(boxes, w, h)
    out, ok = [], []
    for k in range(len(y)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            out.append(imresample(img[:, y[k] - 1:ey[k], x[k] - 1:ex[k]], (size, size)))
            ok.append(k)
    return (np.stack(out) - 127.5) * 0.0078125, np.array(ok, dtype=np.int64)


def detect(rgb, params, minsize=20, thresholds=(0.6, 0.7, 0.7), factor=0.709):
    """rgb: (H, W, 3) uint8. Returns boxes (N, 5: x1 y1 x2 y2 prob) and points (N, 5, 2)."""
    img = rgb.astype(np.float32).transpose(2, 0, 1)
    h, w = img.shape[1:]
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales = []
    s = m
    while minl >= 12:
        scales.append(s)
        s *= factor
        minl *= factor

    all_boxes = []
    for scale in scales:
        data = imresample(img, (int(h * scale + 1), int(w * scale + 1)))
        data = (data - 127.5) * 0.0078125
        reg, probs = pnet(params, data[None])
        prob = probs[0, 1]
        ys, xs = np.nonzero(prob >= thresholds[0])
        if len(ys) == 0:
            continue
        bb = np.stack([xs, ys], 1).astype(np.float32)
        q1 = np.floor((2 * bb + 1) / scale)
        q2 = np.floor((2 * bb + 12 - 1 + 1) / scale)
        r = reg[0][:, ys, xs].T
        boxes = np.concatenate([q1, q2, prob[ys, xs][:, None], r], 1)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)]
        all_boxes.append(boxes)
    if not all_boxes:
        return np.zeros((0, 5)), np.zeros((0, 5, 2))
    boxes = np.concatenate(all_boxes)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = np.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                      boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                      boxes[:, 4]], 1)
    boxes = rerec(boxes)

    # stage two
    data, ok = crops(img, boxes, 24)
    boxes = boxes[ok]
    reg, probs = rnet(params, data)
    score = probs[:, 1]
    keep = score > thresholds[1]
    boxes = np.concatenate([boxes[keep, :4], score[keep, None]], 1)
    reg = reg[keep]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes, reg = boxes[pick], reg[pick]
    boxes = rerec(bbreg(boxes, reg))
    if len(boxes) == 0:
        return np.zeros((0, 5)), np.zeros((0, 5, 2))

    # stage three
    data, ok = crops(img, boxes, 48)
    boxes = boxes[ok]
    reg, pts, probs = onet(params, data)
    score = probs[:, 1]
    keep = score > thresholds[2]
    boxes = np.concatenate([boxes[keep, :4], score[keep, None]], 1)
    reg, pts = reg[keep], pts[keep]
    wi = boxes[:, 2] - boxes[:, 0] + 1
    hi = boxes[:, 3] - boxes[:, 1] + 1
    px = wi[:, None] * pts[:, :5] + boxes[:, 0:1] - 1
    py = hi[:, None] * pts[:, 5:10] + boxes[:, 1:2] - 1
    points = np.stack([px, py], 2)
    boxes = bbreg(boxes, reg)
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7, method="Min", plus_one=True)
    return boxes[pick], points[pick]


def detect_file(path, params=None):
    from PIL import Image

    params = params if params is not None else load_safetensors(WEIGHTS)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return detect(rgb, params)


def main():
    params = load_safetensors(WEIGHTS)
    for path in sys.argv[1:]:
        boxes, points = detect_file(path, params)
        print("%s: %d face(s)" % (path, len(boxes)))
        for b, p in zip(boxes, points):
            print("  box %.1f %.1f %.1f %.1f  p=%.4f" % tuple(b))
            print("  five " + "  ".join("(%.1f, %.1f)" % tuple(q) for q in p))


if __name__ == "__main__":
    main()
