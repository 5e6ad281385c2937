//! The warp: a coarse grid of displacement nodes, interpolated per pixel, and fixed-point
//! bilinear sampling of the portrait.
//!
//! Columns of nodes are every [`CELL`] pixels; rows are every [`CELL`] pixels too, except
//! across the lips' seam where they are one pixel apart, because the lips split there and a
//! coarse row would smear the split, and from the brows to the lower lids, where thin lashes
//! sit next to steep brow motion. The per-identity part (basis fields at the nodes) is
//! computed once; a frame sums them, then walks the pixels with integer arithmetic only.

use super::geometry::{BASIS_COUNT, Basis, FaceGeometry, P2};

/// Spacing of node columns (and of rows away from the mouth), in pixels.
pub const CELL: usize = 4;

/// Node layout and the basis fields sampled at the nodes (per identity).
#[derive(Clone, Debug)]
pub struct WarpGrid {
    size: usize,
    /// Node columns: `size / CELL + 1`.
    cols: usize,
    /// Pixel row of each node row, increasing, first 0 and last `size - 1`.
    row_y: Vec<f32>,
    /// For each output row: the node row above and the weight (0..1) of the one below.
    row_lookup: Vec<(usize, f32)>,
    /// Per basis: x then y displacement at each node, row-major.
    basis: Vec<[Vec<f32>; 2]>,
    /// Node rows and columns (half-open) outside which every split field is zero.
    split_rows: std::ops::Range<usize>,
    split_cols: std::ops::Range<usize>,
    /// Per frame scratch: the smooth fields summed.
    smooth: [Vec<f32>; 2],
    /// Per frame scratch: the split fields summed.
    split: [Vec<f32>; 2],
    /// Per frame scratch: the backward displacement the warp uses.
    acc: [Vec<f32>; 2],
    /// Per frame scratch: source x, y (16.16 fixed point) along the current output row.
    row_src: [Vec<i32>; 2],
}

impl WarpGrid {
    /// Lays out the nodes for a `size` px square and samples every basis field.
    pub fn new(geom: &FaceGeometry, size: usize) -> Self {
        let size = size.max(2);
        let cols = size.div_ceil(CELL) + 1;
        let band = |(a, b): (f32, f32), margin: f32| {
            (a - margin).floor().max(0.0) as usize
                ..=((b + margin).ceil().max(0.0) as usize).min(size - 1)
        };
        // Wide enough for the seam to stay inside while the head moves.
        let mouth = band(geom.seam_rows(), 12.0);
        let eyes = band(geom.eye_rows(), 4.0);
        let mut row_y: Vec<f32> = (0..size)
            .filter(|&y| y % CELL == 0 || mouth.contains(&y) || eyes.contains(&y))
            .map(|y| y as f32)
            .collect();
        if row_y.last() != Some(&((size - 1) as f32)) {
            row_y.push((size - 1) as f32);
        }
        let mut row_lookup = Vec::with_capacity(size);
        let mut j = 0;
        for y in 0..size {
            let yf = y as f32;
            while j + 2 < row_y.len() && row_y[j + 1] <= yf {
                j += 1;
            }
            let t = ((yf - row_y[j]) / (row_y[j + 1] - row_y[j])).clamp(0.0, 1.0);
            row_lookup.push((j, t));
        }
        let n = cols * row_y.len();
        let (mut r0, mut r1, mut c0, mut c1) = (usize::MAX, 0, usize::MAX, 0);
        let mut basis = Vec::with_capacity(BASIS_COUNT);
        for b in Basis::ALL {
            let mut fx = Vec::with_capacity(n);
            let mut fy = Vec::with_capacity(n);
            for (j, &y) in row_y.iter().enumerate() {
                for i in 0..cols {
                    let x = ((i * CELL) as f32).min((size - 1) as f32);
                    let (dx, dy) = geom.basis(b, x, y);
                    if b.is_split() && (dx.abs() > 1e-4 || dy.abs() > 1e-4) {
                        (r0, r1, c0, c1) = (r0.min(j), r1.max(j + 1), c0.min(i), c1.max(i + 1));
                    }
                    fx.push(dx);
                    fy.push(dy);
                }
            }
            basis.push([fx, fy]);
        }
        // Nodes whose smooth motion may carry them onto the split region look it up too.
        let margin = 16.0;
        let (split_rows, split_cols) = if r0 < r1 {
            let (ya, yb) = (row_y[r0] - margin, row_y[r1 - 1] + margin);
            let ra = row_y.partition_point(|&y| y < ya);
            let rb = row_y.partition_point(|&y| y <= yb);
            let m = (margin as usize).div_ceil(CELL);
            (ra..rb, c0.saturating_sub(m)..(c1 + m).min(cols))
        } else {
            (0..0, 0..0)
        };
        Self {
            size,
            cols,
            row_y,
            row_lookup,
            basis,
            split_rows,
            split_cols,
            smooth: [vec![0.0; n], vec![0.0; n]],
            split: [vec![0.0; n], vec![0.0; n]],
            acc: [vec![0.0; n], vec![0.0; n]],
            row_src: [vec![0; cols], vec![0; cols]],
        }
    }

    /// Sums the basis fields with this frame's weights.
    ///
    /// A portrait point first splits at the lips, then moves with the smooth fields, so the
    /// backward displacement is `smooth(p) + split(p - smooth(p))`: the split is looked up
    /// where the smooth motion came from, which keeps the mouth's opening on the lips when
    /// they move sideways, smile or turn with the head.
    pub fn set_weights(&mut self, weights: &[f32; BASIS_COUNT]) {
        for f in self.smooth.iter_mut().chain(self.split.iter_mut()) {
            f.fill(0.0);
        }
        let mut any_split = false;
        for ((w, [bx, by]), b) in weights.iter().zip(&self.basis).zip(Basis::ALL) {
            if *w == 0.0 {
                continue;
            }
            any_split |= b.is_split();
            let [ax, ay] = if b.is_split() {
                &mut self.split
            } else {
                &mut self.smooth
            };
            for (a, b) in ax.iter_mut().zip(bx) {
                *a += w * b;
            }
            for (a, b) in ay.iter_mut().zip(by) {
                *a += w * b;
            }
        }
        self.acc[0].copy_from_slice(&self.smooth[0]);
        self.acc[1].copy_from_slice(&self.smooth[1]);
        if !any_split {
            return;
        }
        for j in self.split_rows.clone() {
            let y = self.row_y[j];
            for i in self.split_cols.clone() {
                let k = j * self.cols + i;
                let x = (i * CELL) as f32;
                let q = P2::new(x - self.smooth[0][k], y - self.smooth[1][k]);
                let d = self.sample(&self.split, q);
                self.acc[0][k] += d.x;
                self.acc[1][k] += d.y;
            }
        }
    }

    /// Bilinear interpolation of a node field at a pixel position (clamped to the image).
    fn sample(&self, field: &[Vec<f32>; 2], p: P2) -> P2 {
        let max = (self.size - 1) as f32;
        let (x, y) = (p.x.clamp(0.0, max), p.y.clamp(0.0, max));
        let (j, t) = self.row_at(y);
        let fi = x / CELL as f32;
        let i = (fi as usize).min(self.cols - 2);
        let u = (fi - i as f32).clamp(0.0, 1.0);
        let at = |f: &Vec<f32>, row: usize, col: usize| f[row * self.cols + col];
        let mut d = [0.0f32; 2];
        for (dk, f) in d.iter_mut().zip(field) {
            let top = at(f, j, i) * (1.0 - u) + at(f, j, i + 1) * u;
            let bot = at(f, j + 1, i) * (1.0 - u) + at(f, j + 1, i + 1) * u;
            *dk = top * (1.0 - t) + bot * t;
        }
        P2::new(d[0], d[1])
    }

    /// Where the portrait point `p` lands in the frame under the current weights (away
    /// from the lips' split).
    pub fn forward(&self, p: P2) -> P2 {
        let d = self.sample(&self.acc, p);
        P2::new(p.x + d.x, p.y + d.y)
    }

    /// Where a point lands under the smooth fields alone.
    pub fn forward_smooth(&self, p: P2) -> P2 {
        let d = self.sample(&self.smooth, p);
        P2::new(p.x + d.x, p.y + d.y)
    }

    /// The split fields' displacement at `p`.
    pub fn split_at(&self, p: P2) -> P2 {
        self.sample(&self.split, p)
    }

    fn row_at(&self, y: f32) -> (usize, f32) {
        let mut j = self.row_y.partition_point(|&r| r <= y).saturating_sub(1);
        j = j.min(self.row_y.len() - 2);
        let t = ((y - self.row_y[j]) / (self.row_y[j + 1] - self.row_y[j])).clamp(0.0, 1.0);
        (j, t)
    }

    /// Warps `src` (see [`pad_source`]) into `out` (RGBA8 bytes): each output pixel
    /// samples the portrait at itself minus the displacement, bilinearly, clamped to the
    /// image.
    pub fn warp(&mut self, src: &[u32], out: &mut [u8]) {
        let size = self.size;
        let stride = size + 1;
        assert_eq!(
            src.len(),
            stride * stride,
            "source is not padded to the grid size"
        );
        assert_eq!(out.len(), size * size * 4, "output is not the grid size");
        let max_fx = (size as i32 - 1) << 16;
        let cols = self.cols;
        for (y, out_row) in out.chunks_exact_mut(size * 4).enumerate() {
            let (j, t) = self.row_lookup[y];
            let (r0, r1) = (j * cols, (j + 1) * cols);
            let [ax, ay] = &self.acc;
            let [rsx, rsy] = &mut self.row_src;
            for i in 0..cols {
                let dx = ax[r0 + i] + (ax[r1 + i] - ax[r0 + i]) * t;
                let dy = ay[r0 + i] + (ay[r1 + i] - ay[r0 + i]) * t;
                // Backward sampling: the pixel shows what moved onto it.
                rsx[i] = (((i * CELL) as f32 - dx) * 65536.0) as i32;
                rsy[i] = ((y as f32 - dy) * 65536.0) as i32;
            }
            for (ci, cell) in out_row.chunks_mut(CELL * 4).enumerate() {
                let (mut sx, mut sy) = (rsx[ci], rsy[ci]);
                let stx = (rsx[ci + 1] - sx) / CELL as i32;
                let sty = (rsy[ci + 1] - sy) / CELL as i32;
                for px in cell.chunks_exact_mut(4) {
                    let cx = sx.clamp(0, max_fx);
                    let cy = sy.clamp(0, max_fx);
                    let (x0, y0) = ((cx >> 16) as usize, (cy >> 16) as usize);
                    let (fx, fy) = (((cx >> 8) & 0xff) as u32, ((cy >> 8) & 0xff) as u32);
                    let k = y0 * stride + x0;
                    let top = lerp_px(src[k], src[k + 1], fx);
                    let bot = lerp_px(src[k + stride], src[k + stride + 1], fx);
                    px.copy_from_slice(&lerp_px(top, bot, fy).to_le_bytes());
                    sx += stx;
                    sy += sty;
                }
            }
        }
    }
}

/// Packs an RGBA8 image (`size` px square) for [`WarpGrid::warp`]: one pixel per `u32` (R in
/// the low byte), with the last column and row repeated once so the bilinear taps at the
/// far edge stay inside the buffer and reproduce the edge pixel exactly.
pub fn pad_source(rgba: &[u8], size: usize) -> Vec<u32> {
    let stride = size + 1;
    let mut out = Vec::with_capacity(stride * stride);
    for row in rgba.chunks_exact(size * 4).take(size) {
        out.extend(
            row.chunks_exact(4)
                .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])),
        );
        out.push(out[out.len() - 1]);
    }
    let last = out[out.len() - stride..].to_vec();
    out.extend(last);
    out
}

/// Blends two packed RGBA pixels, `f` in 0..=255 towards `b`; two channels per multiply.
#[inline(always)]
fn lerp_px(a: u32, b: u32, f: u32) -> u32 {
    let g = 256 - f;
    let rb = (((a & 0x00ff_00ff) * g + (b & 0x00ff_00ff) * f) >> 8) & 0x00ff_00ff;
    let ga = (((a >> 8) & 0x00ff_00ff) * g + ((b >> 8) & 0x00ff_00ff) * f) & 0xff00_ff00;
    rb | ga
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lerp_px_ends_and_middle() {
        let a = u32::from_le_bytes([0, 100, 200, 255]);
        let b = u32::from_le_bytes([200, 100, 0, 55]);
        assert_eq!(lerp_px(a, b, 0), a);
        let mid = lerp_px(a, b, 128).to_le_bytes();
        assert_eq!(mid, [100, 100, 100, 155]);
    }
}
