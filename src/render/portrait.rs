use std::path::{Path, PathBuf};

/// Errors reading or fitting a portrait image.
#[derive(Debug, thiserror::Error)]
pub enum PortraitError {
    /// The file could not be read.
    #[error("portrait {path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an image the crate decodes (PNG, JPEG, GIF).
    #[error("portrait {what}: not a readable image: {source}")]
    Decode {
        /// The file or a description of the bytes.
        what: String,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// The image is empty or too large.
    #[error("portrait {what}: {width}x{height} is empty or larger than 8192 px a side")]
    BadSize {
        /// The file or a description of the buffer.
        what: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// An RGBA buffer whose length does not match its size.
    #[error("portrait: {len} bytes of RGBA do not make {width}x{height}x4")]
    BadBuffer {
        /// The width given.
        width: u32,
        /// The height given.
        height: u32,
        /// The buffer's length in bytes.
        len: usize,
    },
}

/// Largest side accepted, so a stray 40k px texture cannot exhaust memory.
const MAX_SIDE: u32 = 8192;

/// An identity image: straight sRGB RGBA8. Any size and aspect; renderers fit it with
/// [`Portrait::fit_square`].
///
/// The fields are private so that the invariant every renderer relies on holds for every
/// value: `rgba.len() == width * height * 4`, both sides in `1..=8192`.
#[derive(Clone, Debug, PartialEq)]
pub struct Portrait {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

impl Portrait {
    /// Wraps an RGBA8 buffer.
    pub fn from_rgba(width: u32, height: u32, rgba: Vec<u8>) -> Result<Self, PortraitError> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(PortraitError::BadSize {
                what: "buffer".into(),
                width,
                height,
            });
        }
        if rgba.len() != width as usize * height as usize * 4 {
            return Err(PortraitError::BadBuffer {
                width,
                height,
                len: rgba.len(),
            });
        }
        Ok(Self {
            width,
            height,
            rgba,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGBA8 pixels, row by row (`width * height * 4` bytes).
    pub fn rgba(&self) -> &[u8] {
        &self.rgba
    }

    /// Takes the RGBA8 pixels out.
    pub fn into_rgba(self) -> Vec<u8> {
        self.rgba
    }

    /// The pixel rectangle `[x, y, width, height]` as a portrait of its own, or `None` when
    /// it is empty or not inside the image.
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> Option<Portrait> {
        if width == 0
            || height == 0
            || x.checked_add(width)? > self.width
            || y.checked_add(height)? > self.height
        {
            return None;
        }
        let mut out = Vec::with_capacity(width as usize * height as usize * 4);
        for row in y..y + height {
            let start = (row as usize * self.width as usize + x as usize) * 4;
            out.extend_from_slice(&self.rgba[start..start + width as usize * 4]);
        }
        Some(Portrait {
            width,
            height,
            rgba: out,
        })
    }

    /// Decodes an encoded image (PNG or JPEG; grayscale and alpha are converted to RGBA).
    pub fn from_encoded(bytes: &[u8], what: &str) -> Result<Self, PortraitError> {
        let img = image::load_from_memory(bytes).map_err(|source| PortraitError::Decode {
            what: what.to_string(),
            source,
        })?;
        let (width, height) = (img.width(), img.height());
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(PortraitError::BadSize {
                what: what.to_string(),
                width,
                height,
            });
        }
        Ok(Self {
            width,
            height,
            rgba: img.into_rgba8().into_raw(),
        })
    }

    /// Reads and decodes an image file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PortraitError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| PortraitError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_encoded(&bytes, &path.display().to_string())
    }

    /// The portrait as a `size`x`size` square, the rule every renderer uses: a centred
    /// square crop of the shorter side (for tall images the crop is taken from the top
    /// third so faces stay in), then a bicubic (Catmull-Rom) resize when the size differs.
    pub fn fit_square(&self, size: u32) -> Portrait {
        let side = self.width.min(self.height);
        let x0 = (self.width - side) / 2;
        // Tall art usually has the face in its upper part.
        let y0 = (self.height - side) / 3;
        let Some(cropped) = image::RgbaImage::from_raw(self.width, self.height, self.rgba.clone())
            .map(|img| image::imageops::crop_imm(&img, x0, y0, side, side).to_image())
        else {
            // Unreachable: the length is checked by every constructor.
            return self.clone();
        };
        let size = size.clamp(1, MAX_SIDE);
        let out = if side == size {
            cropped
        } else {
            image::imageops::resize(
                &cropped,
                size,
                size,
                image::imageops::FilterType::CatmullRom,
            )
        };
        Portrait {
            width: size,
            height: size,
            rgba: out.into_raw(),
        }
    }
}
