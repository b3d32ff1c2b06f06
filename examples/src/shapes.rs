//! A seeded synthetic image set: one coloured shape (circle, square or triangle) of random
//! size, position and colour on a noisy light background, as base64 PNG or JPEG text, the
//! way images arrive in a scoring request.

use base64::Engine as _;
use image::{ImageFormat, Rgb, RgbImage};
use polars::prelude::{Column, DataFrame, PolarsResult, polars_err};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The labels, in model order.
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
/// Image column.
pub const IMAGE: &str = "image";
/// Label column.
pub const LABEL: &str = "shape";

/// How many images, how big, from which seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Number of images.
    pub images: usize,
    /// Width and height in pixels.
    pub size: u32,
    /// Random seed: the same seed gives the same images.
    pub seed: u64,
    /// Share of images encoded as JPEG instead of PNG.
    pub jpeg_share: f64,
}

impl Config {
    /// `images` PNG images of `size` × `size`, a quarter of them JPEG.
    pub fn new(images: usize, size: u32, seed: u64) -> Self {
        Self { images, size, seed, jpeg_share: 0.25 }
    }
}

/// Generates the images with their labels: columns `image` (base64 text) and `shape`.
///
/// # Errors
/// Only if encoding an image or assembling the frame fails.
pub fn generate(config: &Config) -> PolarsResult<DataFrame> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (mut images, mut labels) = (Vec::with_capacity(config.images), Vec::with_capacity(config.images));
    for _ in 0..config.images {
        let shape = rng.random_range(0..SHAPES.len());
        let picture = draw(shape, config.size, &mut rng);
        let format = if rng.random_bool(config.jpeg_share) { ImageFormat::Jpeg } else { ImageFormat::Png };
        images.push(encode(&picture, format)?);
        labels.push(SHAPES[shape]);
    }
    DataFrame::new(config.images, vec![Column::new(IMAGE.into(), images), Column::new(LABEL.into(), labels)])
}

/// Base64 text of `picture` encoded as `format`.
///
/// # Errors
/// If the encoder fails.
pub fn encode(picture: &RgbImage, format: ImageFormat) -> PolarsResult<String> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).map_err(|e| polars_err!(ComputeError: "encoding an image: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes.into_inner()))
}

fn draw(shape: usize, size: u32, rng: &mut StdRng) -> RgbImage {
    let s = size as f64;
    let radius = rng.random_range(0.22..0.38) * s;
    let (cx, cy) = (rng.random_range(radius..s - radius), rng.random_range(radius..s - radius));
    let color = Rgb([rng.random_range(0..180u8), rng.random_range(0..180u8), rng.random_range(0..180u8)]);
    let mut picture = RgbImage::new(size, size);
    for (x, y, pixel) in picture.enumerate_pixels_mut() {
        let (px, py) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
        let inside = match shape {
            0 => px * px + py * py <= radius * radius,
            1 => px.abs() <= radius * 0.85 && py.abs() <= radius * 0.85,
            // An upward triangle: below the apex, above the base, within both sides.
            _ => py <= radius * 0.8 && py >= -radius && px.abs() <= (py + radius) * 0.6,
        };
        *pixel = if inside {
            color
        } else {
            let grey = rng.random_range(215..=255u8);
            Rgb([grey, grey, grey])
        };
    }
    picture
}
