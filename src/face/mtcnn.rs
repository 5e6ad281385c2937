//! MTCNN face detection (Zhang et al. 2016) as facenet-pytorch runs it: a fully
//! convolutional proposal net (P-Net) over an image pyramid, then a refine net (R-Net) on
//! 24 px crops and an output net (O-Net) on 48 px crops that also places five landmarks.
//!
//! The weights are facenet-pytorch's (MIT; see `assets/models/MTCNN-LICENSE.md`), stored as
//! `assets/models/mtcnn.safetensors` with the state-dict names prefixed by the net
//! (`pnet.conv1.weight`, `onet.dense6_3.bias`...); the nets themselves are in `nets.rs`.
//!
//! Box arithmetic (pixel conventions, the `+ 1`s, squaring, clamping crops to the image)
//! follows facenet-pytorch's `detect_face` so detections match it closely.

use candle_core::{Device, Tensor};

use super::area_resize::Planes;
use super::nets::{self, ONet, PNet, RNet};
use super::nms::{Overlap, nms};
use super::{FaceError, pixels};
use crate::render::Portrait;

/// The bundled weights (about 2 MB), so no file is needed at run time.
static BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../assets/models/mtcnn.safetensors");

/// Smallest face searched for, in pixels of the (possibly downscaled) detection image.
const MIN_FACE: f32 = 20.0;
/// Ratio between successive pyramid scales (facenet-pytorch: 0.709). A finer pyramid gives
/// P-Net more box sizes and offsets to frame a face with, and R-Net, which is sensitive to
/// the framing, more chances to accept it.
const PYRAMID_FACTOR: f32 = 0.8;
/// Face-probability thresholds of P-, R- and O-Net (facenet-pytorch: 0.6, 0.7, 0.7).
///
/// R-Net was the stage that lost marginal faces: on `tests/fixtures/faces/einstein.jpg`
/// (small, grey, turned) P-Net fires on the face at every size, but R-Net scored the
/// proposals 0.01-0.7, so with facenet's thresholds the face was found at its native size
/// only, and at face widths of 40, 100, 200 and 400 px not at all (only a smaller seated
/// man). With R-Net at 0.3, P-Net at 0.5 and the pyramid above, it is found at all four;
/// O-Net keeps facenet's 0.7 as the final gate, and on the bundled cartoon cast this finds
/// the same one face per portrait (measured with `scripts/mtcnn_reference.py`, see
/// `tests/fixtures/faces/ORIGIN.md`).
const THRESHOLDS: [f32; 3] = [0.5, 0.3, 0.7];
/// Longest side the detector looks at; larger images are searched on a downscaled copy
/// (a face too small to find there is too small to animate anyway).
const MAX_DETECT_SIDE: usize = 1280;
/// Width of the grey frame of the second search, as a share of the image's longest side.
const FRAME_PAD: f32 = 0.25;
/// Crops per R-/O-Net forward pass (bounds the memory of the batched activations).
const BATCH: usize = 256;

/// One detected face, in source-image pixel coordinates (pixel centres at integers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// `[x0, y0, x1, y1]`, the face box after O-Net's regression.
    pub bbox: [f32; 4],
    /// O-Net's face probability, 0..1.
    pub score: f32,
    /// Left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner,
    /// each `[x, y]`; left and right as seen in the image.
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    /// Area of the box in square pixels.
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }
}

/// The three MTCNN networks on the CPU.
pub struct FaceDetector {
    pnet: PNet,
    rnet: RNet,
    onet: ONet,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaceDetector(MTCNN)")
    }
}

/// A candidate box in the detection image, with what the current stage knows about it.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    bbox: [f32; 4],
    score: f32,
    /// Box regression offsets `dx0, dy0, dx1, dy1`, in box widths and heights.
    reg: [f32; 4],
}

impl FaceDetector {
    /// The detector with the weights compiled into the crate.
    pub fn bundled() -> Result<Self, FaceError> {
        Self::from_safetensors_bytes(BUNDLED_WEIGHTS)
    }

    /// A detector from a safetensors file's bytes (names as in `mtcnn.safetensors`).
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self, FaceError> {
        let (pnet, rnet, onet) = nets::load(bytes)?;
        Ok(Self { pnet, rnet, onet })
    }

    /// All faces in `image`, largest box first. An image with no face (or too small to
    /// hold a 12 px face) gives an empty list; errors only come from the networks.
    ///
    /// Transparent pixels are composited over mid grey first. Images longer than 1280 px
    /// are searched on a downscaled copy and the results scaled back. When nothing is
    /// found the search is repeated with a grey border around the image: MTCNN misses
    /// faces that fill the frame (tight portrait crops), since its later stages need the
    /// whole face box inside the image.
    pub fn detect(&self, image: &Portrait) -> Result<Vec<Detection>, FaceError> {
        let (w, h, rgba) = pixels(image);
        let planes = Planes::from_rgba(w as usize, h as usize, rgba);
        let mut found = self.detect_framed(&planes, MAX_DETECT_SIDE, 0.0)?;
        if found.is_empty() {
            // The padded image stays within the size limit.
            let side = MAX_DETECT_SIDE as f32 / (1.0 + 2.0 * FRAME_PAD);
            found = self.detect_framed(&planes, side as usize, FRAME_PAD)?;
        }
        found.sort_by(|a, b| b.area().total_cmp(&a.area()));
        Ok(found)
    }

    /// Detection on `img` downscaled to at most `max_side` and framed by a grey border
    /// `pad` times its longest side wide; results in `img`'s pixels.
    fn detect_framed(
        &self,
        img: &Planes,
        max_side: usize,
        pad: f32,
    ) -> Result<Vec<Detection>, FaceError> {
        let (w, h) = (img.width, img.height);
        let longest = w.max(h);
        let scaled;
        let (mut small, mut sx, mut sy) = (img, 1.0f32, 1.0f32);
        if longest > max_side {
            let s = max_side as f32 / longest as f32;
            let nw = ((w as f32 * s).round() as usize).max(1);
            let nh = ((h as f32 * s).round() as usize).max(1);
            scaled = img.resized(nw, nh);
            small = &scaled;
            sx = w as f32 / nw as f32;
            sy = h as f32 / nh as f32;
        }
        let border = (small.width.max(small.height) as f32 * pad).round() as usize;
        let mut found = if border > 0 {
            self.run(&small.padded(border, 127.5))?
        } else {
            self.run(small)?
        };
        // Detection pixel i covers source pixels (i .. i + 1) * s (centres at integers).
        let b = border as f32;
        let fx = |x: f32| (x - b + 0.5) * sx - 0.5;
        let fy = |y: f32| (y - b + 0.5) * sy - 0.5;
        for d in &mut found {
            d.bbox = [fx(d.bbox[0]), fy(d.bbox[1]), fx(d.bbox[2]), fy(d.bbox[3])];
            for p in &mut d.landmarks {
                *p = [fx(p[0]), fy(p[1])];
            }
        }
        Ok(found)
    }

    /// O-Net alone on a square view of one face (the face filling it as in O-Net's own
    /// crops): the face probability and the five landmarks in the view's pixels.
    pub(crate) fn landmarks_in_view(
        &self,
        view: &Portrait,
    ) -> Result<(f32, [[f32; 2]; 5]), FaceError> {
        let (w, h, rgba) = pixels(view);
        let (w, h) = (w as usize, h as usize);
        let mut crop = Planes::from_rgba(w, h, rgba).resized(48, 48);
        normalise(&mut crop.data);
        let input = Tensor::from_vec(crop.data, (1, 3, 48, 48), &Device::Cpu)?;
        let net = self.onet.forward(&input)?;
        let (l, pts) = (&net.logits[0], &net.points[0]);
        let mut landmarks = [[0.0f32; 2]; 5];
        for (k, lm) in landmarks.iter_mut().enumerate() {
            // As in `finish` for a crop starting at pixel 0.
            *lm = [w as f32 * pts[k], h as f32 * pts[5 + k]];
        }
        Ok((face_probability(l[0], l[1]), image_sided(landmarks)))
    }

    /// The three stages on one (already size-limited) image.
    fn run(&self, img: &Planes) -> Result<Vec<Detection>, FaceError> {
        let candidates = self.propose(img)?;
        let candidates = self.refine(img, candidates)?;
        self.finish(img, candidates)
    }

    /// Stage 1: P-Net over the pyramid; boxes regressed and squared.
    fn propose(&self, img: &Planes) -> Result<Vec<Candidate>, FaceError> {
        let (w, h) = (img.width as f32, img.height as f32);
        let m = 12.0 / MIN_FACE;
        let mut min_side = w.min(h) * m;
        let mut scale = m;
        let mut all = Vec::new();
        while min_side >= 12.0 {
            let sw = (w * scale + 1.0) as usize;
            let sh = (h * scale + 1.0) as usize;
            let mut scaled = img.resized(sw, sh);
            normalise(&mut scaled.data);
            let input = Tensor::from_vec(scaled.data, (1, 3, sh, sw), &Device::Cpu)?;
            let out = self.pnet.forward(&input)?;
            let (ow, reg, logits) = (out.w, &out.reg, &out.logits);
            let n = out.h * out.w;
            let mut found = Vec::new();
            for i in 0..n {
                let p = face_probability(logits[i], logits[n + i]);
                if p < THRESHOLDS[0] {
                    continue;
                }
                let (x, y) = ((i % ow) as f32, (i / ow) as f32);
                // Each output cell sees a 12 px window at stride 2 of the scaled image.
                found.push(Candidate {
                    bbox: [
                        ((2.0 * x + 1.0) / scale).floor(),
                        ((2.0 * y + 1.0) / scale).floor(),
                        ((2.0 * x + 12.0) / scale).floor(),
                        ((2.0 * y + 12.0) / scale).floor(),
                    ],
                    score: p,
                    reg: [reg[i], reg[n + i], reg[2 * n + i], reg[3 * n + i]],
                });
            }
            all.extend(suppress(found, 0.5, Overlap::Union));
            scale *= PYRAMID_FACTOR;
            min_side *= PYRAMID_FACTOR;
        }
        let mut kept = suppress(all, 0.7, Overlap::Union);
        for c in &mut kept {
            let (bw, bh) = (c.bbox[2] - c.bbox[0], c.bbox[3] - c.bbox[1]);
            c.bbox = [
                c.bbox[0] + c.reg[0] * bw,
                c.bbox[1] + c.reg[1] * bh,
                c.bbox[2] + c.reg[2] * bw,
                c.bbox[3] + c.reg[3] * bh,
            ];
            c.bbox = square(c.bbox);
        }
        Ok(kept)
    }

    /// Stage 2: R-Net rescores 24 px crops; survivors regressed and squared.
    fn refine(&self, img: &Planes, cands: Vec<Candidate>) -> Result<Vec<Candidate>, FaceError> {
        let (cands, crops) = crops(img, cands, 24);
        let mut out = Vec::new();
        for (chunk, batch) in cands.chunks(BATCH).zip(crops.chunks(BATCH * 3 * 24 * 24)) {
            let input = Tensor::from_slice(batch, (chunk.len(), 3, 24, 24), &Device::Cpu)?;
            let net = self.rnet.forward(&input)?;
            for ((c, r), l) in chunk.iter().zip(net.reg).zip(net.logits) {
                let p = face_probability(l[0], l[1]);
                if p > THRESHOLDS[1] {
                    out.push(Candidate {
                        bbox: c.bbox,
                        score: p,
                        reg: [r[0], r[1], r[2], r[3]],
                    });
                }
            }
        }
        let mut kept = suppress(out, 0.7, Overlap::Union);
        for c in &mut kept {
            c.bbox = square(regress(c.bbox, c.reg));
        }
        Ok(kept)
    }

    /// Stage 3: O-Net rescores 48 px crops and places the landmarks.
    fn finish(&self, img: &Planes, cands: Vec<Candidate>) -> Result<Vec<Detection>, FaceError> {
        let (cands, crops) = crops(img, cands, 48);
        let mut out = Vec::new();
        for (chunk, batch) in cands.chunks(BATCH).zip(crops.chunks(BATCH * 3 * 48 * 48)) {
            let input = Tensor::from_slice(batch, (chunk.len(), 3, 48, 48), &Device::Cpu)?;
            let net = self.onet.forward(&input)?;
            for (((c, r), pts), l) in chunk.iter().zip(net.reg).zip(net.points).zip(net.logits) {
                let p = face_probability(l[0], l[1]);
                if p <= THRESHOLDS[2] {
                    continue;
                }
                // Landmarks are relative to the box O-Net saw (inclusive width), 1-based.
                let [x0, y0, x1, y1] = c.bbox;
                let (bw, bh) = (x1 - x0 + 1.0, y1 - y0 + 1.0);
                let mut landmarks = [[0.0f32; 2]; 5];
                for (k, lm) in landmarks.iter_mut().enumerate() {
                    *lm = [bw * pts[k] + x0 - 1.0, bh * pts[5 + k] + y0 - 1.0];
                }
                out.push(Detection {
                    bbox: regress(c.bbox, [r[0], r[1], r[2], r[3]]),
                    score: p,
                    landmarks: image_sided(landmarks),
                });
            }
        }
        let boxes: Vec<[f32; 4]> = out.iter().map(|d| d.bbox).collect();
        let scores: Vec<f32> = out.iter().map(|d| d.score).collect();
        Ok(nms(&boxes, &scores, 0.7, Overlap::Min)
            .into_iter()
            .map(|i| out[i])
            .collect())
    }
}

/// Softmax probability of the "face" class from the two logits.
fn face_probability(not_face: f32, face: f32) -> f32 {
    1.0 / (1.0 + (not_face - face).exp())
}

/// Scales 0..255 values to the nets' input range, about -1..1.
fn normalise(data: &mut [f32]) {
    data.iter_mut().for_each(|v| *v = (*v - 127.5) * 0.0078125);
}

/// The candidates kept by non-maximum suppression, best first.
fn suppress(cands: Vec<Candidate>, threshold: f32, overlap: Overlap) -> Vec<Candidate> {
    let boxes: Vec<[f32; 4]> = cands.iter().map(|c| c.bbox).collect();
    let scores: Vec<f32> = cands.iter().map(|c| c.score).collect();
    nms(&boxes, &scores, threshold, overlap)
        .into_iter()
        .map(|i| cands[i])
        .collect()
}

/// Applies R-/O-Net box regression (offsets in inclusive box widths).
fn regress(b: [f32; 4], r: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + r[0] * w,
        b[1] + r[1] * h,
        b[2] + r[2] * w,
        b[3] + r[3] * h,
    ]
}

/// The square with the box's centre and its longer side.
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x0 = b[0] + w * 0.5 - l * 0.5;
    let y0 = b[1] + h * 0.5 - l * 0.5;
    [x0, y0, x0 + l, y0 + l]
}

/// Cuts each candidate's box (clamped to the image, as 1-based inclusive pixel bounds) out
/// of the image, area-resized to `size` and normalised, all crops back to back. Boxes
/// entirely outside the image are dropped.
fn crops(img: &Planes, cands: Vec<Candidate>, size: usize) -> (Vec<Candidate>, Vec<f32>) {
    let mut kept = Vec::with_capacity(cands.len());
    let mut data = Vec::with_capacity(cands.len() * 3 * size * size);
    let (w, h) = (img.width as i64, img.height as i64);
    for c in cands {
        // `as` truncates toward zero like the reference's `.trunc().int()`.
        let x = (c.bbox[0] as i64).max(1);
        let y = (c.bbox[1] as i64).max(1);
        let ex = (c.bbox[2] as i64).min(w);
        let ey = (c.bbox[3] as i64).min(h);
        if ex < x || ey < y {
            continue;
        }
        let rect = ((x - 1) as usize, (y - 1) as usize, ex as usize, ey as usize);
        let mut crop = img.crop_resized(rect, size, size);
        normalise(&mut crop.data);
        data.extend_from_slice(&crop.data);
        kept.push(c);
    }
    (kept, data)
}

/// Orders the eyes and the mouth corners left to right as seen in the image (measured
/// along the eye line, so a tilted head keeps its order).
fn image_sided(mut p: [[f32; 2]; 5]) -> [[f32; 2]; 5] {
    if p[0][0] > p[1][0] {
        p.swap(0, 1);
    }
    let axis = [p[1][0] - p[0][0], p[1][1] - p[0][1]];
    let along = |q: [f32; 2]| q[0] * axis[0] + q[1] * axis[1];
    if along(p[3]) > along(p[4]) {
        p.swap(3, 4);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_come_out_image_sided() {
        let p = [
            [60.0, 40.0],
            [20.0, 40.0],
            [40.0, 60.0],
            [55.0, 80.0],
            [25.0, 80.0],
        ];
        let q = image_sided(p);
        assert_eq!(q[0], [20.0, 40.0]);
        assert_eq!(q[3], [25.0, 80.0]);
    }

    #[test]
    fn bad_weights_name_what_is_wrong() {
        let err = FaceDetector::from_safetensors_bytes(b"not a file").unwrap_err();
        assert!(err.to_string().contains("safetensors"), "{err}");
    }
}
