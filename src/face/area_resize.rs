//! Planar float images and the "area" resize MTCNN's reference code uses for its image
//! pyramid and its crops (PyTorch's `interpolate(mode="area")`, i.e. adaptive average
//! pooling: output cell `i` of `o` averages input cells `floor(i*n/o) .. ceil((i+1)*n/o)`).

/// A 3-channel float image, channel-major (`[c][y][x]`), values 0..255.
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    pub width: usize,
    pub height: usize,
    /// `3 * height * width` values.
    pub data: Vec<f32>,
}

impl Planes {
    /// Converts straight RGBA8 to planes, compositing transparent pixels over mid grey
    /// (the detector was trained on opaque photos; grey is neutral for both nets and skin).
    pub fn from_rgba(width: usize, height: usize, rgba: &[u8]) -> Self {
        let n = width * height;
        let mut data = vec![0.0f32; 3 * n];
        for (i, px) in rgba.chunks_exact(4).take(n).enumerate() {
            let a = px[3] as f32 / 255.0;
            for c in 0..3 {
                data[c * n + i] = px[c] as f32 * a + 127.5 * (1.0 - a);
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// The rectangle `x0..x1, y0..y1` (clamped to the image) resized to `out_w x out_h`.
    pub fn crop_resized(
        &self,
        (x0, y0, x1, y1): (usize, usize, usize, usize),
        out_w: usize,
        out_h: usize,
    ) -> Planes {
        let x1 = x1.min(self.width).max(x0 + 1);
        let y1 = y1.min(self.height).max(y0 + 1);
        let x0 = x0.min(x1 - 1);
        let y0 = y0.min(y1 - 1);
        let (cw, ch) = (x1 - x0, y1 - y0);
        let cols = cells(cw, out_w);
        let rows = cells(ch, out_h);
        let n_in = self.width * self.height;
        let mut data = vec![0.0f32; 3 * out_w * out_h];
        // Rows first (per output row, sum the input rows it covers), then columns.
        let mut row_sum = vec![0.0f32; cw];
        for c in 0..3 {
            let plane = &self.data[c * n_in..(c + 1) * n_in];
            let out = &mut data[c * out_w * out_h..(c + 1) * out_w * out_h];
            for (oy, &(r0, r1)) in rows.iter().enumerate() {
                row_sum.iter_mut().for_each(|v| *v = 0.0);
                for y in r0..r1 {
                    let src = &plane[(y0 + y) * self.width + x0..(y0 + y) * self.width + x1];
                    row_sum.iter_mut().zip(src).for_each(|(s, v)| *s += v);
                }
                let inv_rows = 1.0 / (r1 - r0) as f32;
                for (ox, &(c0, c1)) in cols.iter().enumerate() {
                    let s: f32 = row_sum[c0..c1].iter().sum();
                    out[oy * out_w + ox] = s * inv_rows / (c1 - c0) as f32;
                }
            }
        }
        Planes {
            width: out_w,
            height: out_h,
            data,
        }
    }

    /// The image with `pad` pixels of the flat colour `value` added on every side.
    pub fn padded(&self, pad: usize, value: f32) -> Planes {
        let (w, h) = (self.width + 2 * pad, self.height + 2 * pad);
        let mut data = vec![value; 3 * w * h];
        let n_in = self.width * self.height;
        for c in 0..3 {
            for y in 0..self.height {
                let src = &self.data[c * n_in + y * self.width..c * n_in + (y + 1) * self.width];
                let o = c * w * h + (y + pad) * w + pad;
                data[o..o + self.width].copy_from_slice(src);
            }
        }
        Planes {
            width: w,
            height: h,
            data,
        }
    }

    /// The whole image resized to `out_w x out_h`.
    pub fn resized(&self, out_w: usize, out_h: usize) -> Planes {
        self.crop_resized((0, 0, self.width, self.height), out_w, out_h)
    }
}

/// Input ranges `[start, end)` of each of `out` adaptive-pooling cells over `n` inputs.
fn cells(n: usize, out: usize) -> Vec<(usize, usize)> {
    (0..out)
        .map(|i| {
            let start = i * n / out;
            let end = ((i + 1) * n).div_ceil(out);
            (start, end.max(start + 1).min(n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_pairs_and_upsizing_repeats() {
        let p = Planes {
            width: 4,
            height: 1,
            data: [0.0, 2.0, 4.0, 6.0].repeat(3),
        };
        assert_eq!(p.resized(2, 1).data[..2], [1.0, 5.0]);
        // 4 -> 3 cells: [0,2), [1,3), [2,4).
        assert_eq!(p.resized(3, 1).data[..3], [1.0, 3.0, 5.0]);
        // 4 -> 8: each input cell repeated.
        assert_eq!(p.resized(8, 1).data[..4], [0.0, 0.0, 2.0, 2.0]);
        let q = p.padded(1, 9.0);
        assert_eq!((q.width, q.height), (6, 3));
        assert_eq!(q.data[6..12], [9.0, 0.0, 2.0, 4.0, 6.0, 9.0]);
    }
}
