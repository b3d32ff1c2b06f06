//! Image feature extraction: base64 JPEG or PNG text to a normalized `(N, C, H, W)` batch.

use base64::Engine as _;
use image::{ColorType, DynamicImage, ImageFormat, imageops::FilterType};
use polars::prelude::{Column, DataType};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest side of the images a model takes (after resizing).
const MAX_SIDE: u32 = 4096;
/// The largest side of an image a request may carry, before resizing.
const MAX_DECODED_SIDE: u32 = 16_384;
/// The most memory decoding one image may take; images decode in parallel, one per thread.
const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// The most memory one batch's model input (`f32` pixels of every image) may take.
const MAX_BATCH_BYTES: usize = 2 << 30;

/// The channels a model takes. An image of another mode is refused, not converted: a
/// grayscale or transparent image reaching an RGB model is a data problem to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// Red, green, blue.
    Rgb,
    /// One luminance channel.
    Grayscale,
}

impl ColorMode {
    /// Channels per pixel.
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Grayscale => 1,
        }
    }

    fn of(color: ColorType) -> Option<Self> {
        match color {
            ColorType::Rgb8 | ColorType::Rgb16 | ColorType::Rgb32F => Some(Self::Rgb),
            ColorType::L8 | ColorType::L16 => Some(Self::Grayscale),
            _ => None,
        }
    }
}

/// How images are resized to the model's input size (aspect ratio is not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// The nearest source pixel.
    Nearest,
    /// Linear interpolation (a triangle filter, widened when shrinking).
    Bilinear,
}

impl ResizeFilter {
    fn filter(self) -> FilterType {
        match self {
            Self::Nearest => FilterType::Nearest,
            Self::Bilinear => FilterType::Triangle,
        }
    }
}

/// Feature extraction as data: which column holds the images, the input size and mode,
/// and the normalization. The same steps run in training and at inference, with no
/// randomness.
///
/// A pixel value `v` (0 to 255) of channel `c` becomes `(v / 255 − mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePreprocessing {
    /// The input column of base64-encoded JPEG or PNG bytes (a `data:` URL prefix is
    /// allowed).
    pub column: String,
    /// Input height in pixels.
    pub height: u32,
    /// Input width in pixels.
    pub width: u32,
    /// The channels the model takes.
    pub mode: ColorMode,
    /// How images of another size are resized.
    pub resize: ResizeFilter,
    /// Per-channel mean, on the 0-1 scale.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, on the 0-1 scale.
    pub std: Vec<f32>,
}

impl ImagePreprocessing {
    /// RGB images from `column`, resized bilinearly to `height` × `width`, normalized
    /// with ImageNet's mean and standard deviation.
    pub fn rgb(column: impl Into<String>, height: u32, width: u32) -> Self {
        Self {
            column: column.into(),
            height,
            width,
            mode: ColorMode::Rgb,
            resize: ResizeFilter::Bilinear,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Values per image: channels × height × width.
    pub fn image_len(&self) -> usize {
        self.mode.channels() * self.height as usize * self.width as usize
    }

    pub(crate) fn check(&self) -> Result<()> {
        let channels = self.mode.channels();
        if self.height == 0 || self.width == 0 {
            return Err(Error::InvalidArgument(format!("image size {}x{} is empty", self.height, self.width)));
        }
        if self.height > MAX_SIDE || self.width > MAX_SIDE {
            return Err(Error::InvalidArgument(format!(
                "image size {}x{} is over the largest a model takes here, {MAX_SIDE}x{MAX_SIDE}",
                self.height, self.width
            )));
        }
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(Error::InvalidArgument(format!(
                "{} images need {channels} means and standard deviations, got {} and {}",
                match self.mode {
                    ColorMode::Rgb => "RGB",
                    ColorMode::Grayscale => "grayscale",
                },
                self.mean.len(),
                self.std.len()
            )));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::InvalidArgument(format!("standard deviations must be positive, got {s}")));
        }
        Ok(())
    }

    /// Decodes, resizes and normalizes every image of the input column, rows in parallel,
    /// into one preallocated buffer. A row that fails leaves zeros and its reason in
    /// [`ImageBatch::failures`].
    ///
    /// # Errors
    /// [`Error::Schema`] when the column is not text.
    pub fn extract(&self, column: &Column) -> Result<ImageBatch> {
        if column.dtype() != &DataType::String {
            return Err(Error::Schema {
                column: self.column.clone(),
                expected: "base64-encoded JPEG or PNG text".into(),
                found: column.dtype().to_string(),
            });
        }
        let texts: Vec<Option<&str>> = column.str()?.iter().collect();
        let len = self.image_len();
        let values =
            texts.len().checked_mul(len).filter(|v| v.saturating_mul(4) <= MAX_BATCH_BYTES).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} images of {}x{} take over {} MiB as model input; score at most {} at once",
                    texts.len(),
                    self.height,
                    self.width,
                    MAX_BATCH_BYTES >> 20,
                    MAX_BATCH_BYTES / 4 / len.max(1)
                ))
            })?;
        let mut pixels = vec![0f32; values];
        let failures: Vec<(usize, String)> = pixels
            .par_chunks_mut(len.max(1))
            .zip(texts.par_iter())
            .enumerate()
            .filter_map(|(row, (out, text))| self.extract_one(*text, out).err().map(|reason| (row, reason)))
            .collect();
        Ok(ImageBatch { pixels, rows: texts.len(), failures })
    }

    fn extract_one(&self, text: Option<&str>, out: &mut [f32]) -> std::result::Result<(), String> {
        let text = text.ok_or("no image (null)")?;
        let payload = match text.find(";base64,") {
            Some(at) if text.starts_with("data:") => &text[at + 8..],
            _ => text,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|e| format!("not base64 ({e})"))?;
        let format = match image::guess_format(&bytes) {
            Ok(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => format,
            Ok(other) => return Err(format!("a {other:?} image; the model takes JPEG or PNG")),
            Err(_) => return Err("not a JPEG or PNG image".into()),
        };
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_DECODED_SIDE);
        limits.max_image_height = Some(MAX_DECODED_SIDE);
        limits.max_alloc = Some(MAX_DECODED_BYTES);
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes), format);
        reader.limits(limits);
        let decoded = reader.decode().map_err(|e| format!("undecodable image ({e})"))?;
        let found = ColorMode::of(decoded.color());
        if found != Some(self.mode) {
            return Err(format!("a {:?} image; the model takes {:?}", decoded.color(), self.mode));
        }
        self.normalize(&decoded, out);
        Ok(())
    }

    /// Resizes (when the size differs) and writes channel-major normalized values.
    fn normalize(&self, decoded: &DynamicImage, out: &mut [f32]) {
        let (width, height) = (self.width, self.height);
        let plane = (width * height) as usize;
        let resize = |w: u32, h: u32| w != width || h != height;
        let mut write = |channels: usize, raw: &[u8]| {
            for (i, pixel) in raw.chunks_exact(channels).enumerate() {
                for (c, value) in pixel.iter().enumerate() {
                    out[c * plane + i] = (f32::from(*value) / 255.0 - self.mean[c]) / self.std[c];
                }
            }
        };
        match self.mode {
            ColorMode::Rgb => {
                let mut rgb = decoded.to_rgb8();
                if resize(rgb.width(), rgb.height()) {
                    rgb = image::imageops::resize(&rgb, width, height, self.resize.filter());
                }
                write(3, rgb.as_raw());
            }
            ColorMode::Grayscale => {
                let mut luma = decoded.to_luma8();
                if resize(luma.width(), luma.height()) {
                    luma = image::imageops::resize(&luma, width, height, self.resize.filter());
                }
                write(1, luma.as_raw());
            }
        }
    }
}

/// Normalized images, channel-major per image, and the rows that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    /// `rows × channels × height × width` values; zeros for failed rows.
    pub pixels: Vec<f32>,
    /// Images in the batch, failed ones included.
    pub rows: usize,
    /// Each failed row and why, by row.
    pub failures: Vec<(usize, String)>,
}

impl ImageBatch {
    /// The first failure as an error naming its row and column.
    pub(crate) fn first_failure(&self, column: &str) -> Option<Error> {
        self.failures.first().map(|(row, reason)| Error::Schema {
            column: column.to_owned(),
            expected: "a JPEG or PNG image in every row".into(),
            found: format!("row {row}: {reason}"),
        })
    }
}
