//! Greedy non-maximum suppression of candidate face boxes.

/// How two boxes' overlap is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overlap {
    /// Intersection over union, areas `(x1 - x0) * (y1 - y0)` (torchvision's `nms`, which
    /// the first two MTCNN stages use).
    Union,
    /// Intersection over the smaller box, areas with the inclusive `+ 1` pixel convention
    /// (the original MTCNN "Min" suppression of the last stage).
    Min,
}

/// Indices of the boxes kept, best score first: a box is dropped when it overlaps an
/// already kept, better scoring box by more than `threshold`.
pub(crate) fn nms(
    boxes: &[[f32; 4]],
    scores: &[f32],
    threshold: f32,
    overlap: Overlap,
) -> Vec<usize> {
    let extra = match overlap {
        Overlap::Union => 0.0,
        Overlap::Min => 1.0,
    };
    let area = |b: &[f32; 4]| (b[2] - b[0] + extra) * (b[3] - b[1] + extra);
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // NaN scores (never produced by softmax) sort last instead of panicking.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut kept: Vec<usize> = Vec::new();
    let mut dropped = vec![false; boxes.len()];
    for (k, &i) in order.iter().enumerate() {
        if dropped[i] {
            continue;
        }
        kept.push(i);
        let a = &boxes[i];
        let area_a = area(a);
        for &j in &order[k + 1..] {
            if dropped[j] {
                continue;
            }
            let b = &boxes[j];
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + extra).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + extra).max(0.0);
            let inter = w * h;
            let denom = match overlap {
                Overlap::Union => area_a + area(b) - inter,
                Overlap::Min => area_a.min(area(b)),
            };
            if denom > 0.0 && inter / denom > threshold {
                dropped[j] = true;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_boxes_keep_the_best() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [20.0, 20.0, 30.0, 30.0],
            [2.0, 2.0, 8.0, 8.0],
        ];
        let scores = [0.8, 0.9, 0.7, 0.95];
        // IoU(0,1) = 81/119 = 0.68; box 3 lies inside box 1 (IoU 0.36, Min 1.0).
        assert_eq!(nms(&boxes, &scores, 0.5, Overlap::Union), vec![3, 1, 2]);
        assert_eq!(nms(&boxes, &scores, 0.7, Overlap::Min), vec![3, 2]);
    }
}
