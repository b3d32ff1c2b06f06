//! The image-classifier flavor: exact preprocessing, scores from known weights, bad rows,
//! training and the package round trip.

use std::collections::HashMap;

use base64::Engine as _;
use candle_core::{Device, Tensor};
use image::{DynamicImage, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use mlops_core::{
    BadImages, ColorMode, ConvNet, Error, FlavorRegistry, ImageClassifier, ImageClassifierParams, ImagePreprocessing,
    ImageSpec, ImageTask, Model, Package, ResizeFilter,
};
use polars::prelude::*;

fn encode(picture: DynamicImage, format: ImageFormat) -> String {
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
}

fn png(picture: RgbImage) -> String {
    encode(DynamicImage::ImageRgb8(picture), ImageFormat::Png)
}

fn column(values: &[Option<String>]) -> Column {
    Column::new("image".into(), values.to_vec())
}

fn halves() -> ImagePreprocessing {
    ImagePreprocessing {
        column: "image".into(),
        height: 2,
        width: 2,
        mode: ColorMode::Rgb,
        resize: ResizeFilter::Nearest,
        mean: vec![0.5, 0.5, 0.5],
        std: vec![0.25, 0.25, 0.25],
    }
}

#[test]
fn pixels_are_normalized_channel_by_channel() {
    // Pixels (row-major): (255, 0, 51), (0, 255, 102), (51, 51, 51), (204, 153, 0).
    let pixels = [[255, 0, 51], [0, 255, 102], [51, 51, 51], [204, 153, 0]];
    let picture = RgbImage::from_fn(2, 2, |x, y| Rgb(pixels[(y * 2 + x) as usize]));
    let batch = halves().extract(&column(&[Some(png(picture))])).unwrap();
    // (v / 255 − 0.5) / 0.25 for v = 0, 51, 102, 153, 204, 255 is −2, −1.2, −0.4, 0.4, 1.2, 2.
    let expected = [
        2.0, -2.0, -1.2, 1.2, // red plane, pixels in row-major order
        -2.0, 2.0, -1.2, 0.4, // green
        -1.2, -0.4, -1.2, -2.0, // blue
    ];
    assert_eq!(batch.rows, 1);
    assert!(batch.failures.is_empty());
    for (got, want) in batch.pixels.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{:?}", batch.pixels);
    }
}

#[test]
fn resizing_is_deterministic_and_exact_on_known_images() {
    // Quadrants of 2 × 2 pixels: nearest-neighbour shrinking keeps one pixel per quadrant.
    let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
    let quadrants = RgbImage::from_fn(4, 4, |x, y| Rgb(colours[((y / 2) * 2 + x / 2) as usize]));
    let batch = halves().extract(&column(&[Some(png(quadrants))])).unwrap();
    let red_plane = &batch.pixels[0..4];
    assert_eq!(red_plane, [2.0, -2.0, -2.0, 2.0]);
    let blue_plane = &batch.pixels[8..12];
    assert_eq!(blue_plane, [-2.0, -2.0, 2.0, 2.0]);

    // A uniform image stays uniform under the bilinear filter, at any size.
    let grey = RgbImage::from_pixel(7, 5, Rgb([102, 102, 102]));
    let bilinear = ImagePreprocessing { resize: ResizeFilter::Bilinear, ..halves() };
    let batch = bilinear.extract(&column(&[Some(png(grey.clone())), Some(png(grey))])).unwrap();
    assert_eq!(batch.pixels.len(), 2 * 12);
    assert!(batch.pixels.iter().all(|v| (v - -0.4).abs() < 1e-6), "{:?}", batch.pixels);

    // Grayscale models take one channel; JPEG decodes (lossy, so nearly); data URLs work.
    let gray = ImagePreprocessing { mode: ColorMode::Grayscale, mean: vec![0.0], std: vec![1.0], ..halves() };
    let luma = encode(DynamicImage::ImageLuma8(image::GrayImage::from_pixel(2, 2, Luma([51]))), ImageFormat::Png);
    let batch = gray.extract(&column(&[Some(format!("data:image/png;base64,{luma}"))])).unwrap();
    assert_eq!(batch.pixels, [0.2f32; 4]);
    let jpeg = encode(DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([200, 40, 120]))), ImageFormat::Jpeg);
    let batch = halves().extract(&column(&[Some(jpeg)])).unwrap();
    let red = (200.0 / 255.0 - 0.5) / 0.25;
    assert!(batch.pixels[0..4].iter().all(|v| (v - red).abs() < 0.05), "{:?}", batch.pixels);
}

/// A network whose logits are known: a 1 × 1 convolution with weight 1 (so the pooled
/// feature is the brightest normalized pixel, at least 0), then `fc` = `weights` · x + `bias`.
fn known_weights(fc_weights: &[f32], fc_bias: &[f32]) -> Vec<u8> {
    let device = Device::Cpu;
    let labels = fc_bias.len();
    let tensors: HashMap<String, Tensor> = [
        ("conv1.weight", Tensor::from_vec(vec![1f32], (1, 1, 1, 1), &device).unwrap()),
        ("conv1.bias", Tensor::from_vec(vec![0f32], 1, &device).unwrap()),
        ("fc.weight", Tensor::from_vec(fc_weights.to_vec(), (labels, 1), &device).unwrap()),
        ("fc.bias", Tensor::from_vec(fc_bias.to_vec(), labels, &device).unwrap()),
    ]
    .into_iter()
    .map(|(name, tensor)| (name.to_owned(), tensor))
    .collect();
    safetensors::tensor::serialize(tensors, None).unwrap()
}

fn known_spec(task: ImageTask) -> ImageSpec {
    ImageSpec {
        preprocessing: ImagePreprocessing { mode: ColorMode::Grayscale, mean: vec![0.0], std: vec![1.0], ..halves() },
        network: ConvNet { channels: vec![1], kernel: 1 },
        labels: vec!["cat".into(), "dog".into()],
        task,
    }
}

fn gray(value: u8) -> String {
    encode(DynamicImage::ImageLuma8(image::GrayImage::from_pixel(2, 2, Luma([value]))), ImageFormat::Png)
}

fn scores(frame: &DataFrame, label: &str) -> Vec<Option<f64>> {
    let scores = frame.column("scores").unwrap().struct_().unwrap().clone();
    scores.field_by_name(label).unwrap().f64().unwrap().iter().collect()
}

#[test]
fn weights_from_elsewhere_give_softmax_or_sigmoid_scores() {
    // Logits for a white image (x = 1): cat 2, dog 1; for a black one (x = 0): cat 0, dog 1.
    let weights = known_weights(&[2.0, 0.0], &[0.0, 1.0]);
    let input = df!("image" => [gray(255), gray(0)]).unwrap();

    let softmax = ImageClassifier::from_safetensors(known_spec(ImageTask::MultiClass), weights.clone()).unwrap();
    let out = softmax.predict(&input).unwrap();
    let e = std::f64::consts::E;
    let cat = scores(&out, "cat");
    assert!((cat[0].unwrap() - e * e / (e * e + e)).abs() < 1e-6);
    assert!((cat[1].unwrap() - 1.0 / (1.0 + e)).abs() < 1e-6);
    let predicted: Vec<Option<&str>> = out.column("prediction").unwrap().str().unwrap().iter().collect();
    assert_eq!(predicted, [Some("cat"), Some("dog")]);
    let index: Vec<Option<i64>> = out.column("prediction_index").unwrap().i64().unwrap().iter().collect();
    assert_eq!(index, [Some(0), Some(1)]);

    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let multi =
        ImageClassifier::from_safetensors(known_spec(ImageTask::MultiLabel { threshold: 0.6 }), weights).unwrap();
    let out = multi.predict(&input).unwrap();
    let (cat, dog) = (scores(&out, "cat"), scores(&out, "dog"));
    assert!((cat[0].unwrap() - sigmoid(2.0)).abs() < 1e-6 && (dog[0].unwrap() - sigmoid(1.0)).abs() < 1e-6);
    assert!((cat[1].unwrap() - 0.5).abs() < 1e-6);
    let labels = out.column("labels").unwrap().list().unwrap().clone();
    let as_text = |row: usize| -> Vec<String> {
        labels.get_as_series(row).unwrap().str().unwrap().iter().flatten().map(str::to_owned).collect()
    };
    assert_eq!(as_text(0), ["cat", "dog"]); // 0.88 and 0.73 are both at least 0.6
    assert_eq!(as_text(1), ["dog"]); // 0.5 is not

    // Weights of another layout are refused with the tensor that does not fit.
    let wrong = known_weights(&[2.0, 0.0, 1.0], &[0.0, 1.0, 0.0]);
    let error = ImageClassifier::from_safetensors(known_spec(ImageTask::MultiClass), wrong).unwrap_err();
    assert!(matches!(error, Error::Tensor(_)), "{error}");
}

#[test]
fn bad_images_name_their_row_and_can_be_reported_instead() {
    let model =
        ImageClassifier::from_safetensors(known_spec(ImageTask::MultiClass), known_weights(&[2.0, 0.0], &[0.0, 1.0]))
            .unwrap();
    let rgba = encode(DynamicImage::ImageRgba8(RgbaImage::from_pixel(2, 2, Rgba([1, 2, 3, 4]))), ImageFormat::Png);
    let gif_magic = base64::engine::general_purpose::STANDARD.encode(b"GIF89a\x01\x00\x01\x00");
    let rows = [
        Some(gray(255)),
        Some("not base64 at all!".to_owned()),
        Some(base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n but truncated")),
        Some(gif_magic),
        Some(rgba),
        None,
        Some(gray(0)),
    ];
    let input = DataFrame::new(rows.len(), vec![column(&rows)]).unwrap();
    let error = model.predict(&input).unwrap_err().to_string();
    assert!(error.contains("image") && error.contains("row 1: not base64"), "{error}");

    let lenient = model.clone().with_bad_images(BadImages::Report);
    let out = lenient.predict(&input).unwrap();
    let predicted: Vec<Option<&str>> = out.column("prediction").unwrap().str().unwrap().iter().collect();
    assert_eq!(predicted, [Some("cat"), None, None, None, None, None, Some("dog")]);
    let errors: Vec<Option<&str>> = out.column("error").unwrap().str().unwrap().iter().collect();
    assert_eq!(errors[0], None);
    assert!(errors[1].unwrap().starts_with("not base64"));
    assert!(errors[2].unwrap().starts_with("undecodable image"), "{:?}", errors[2]);
    assert_eq!(errors[3].unwrap(), "a Gif image; the model takes JPEG or PNG");
    assert_eq!(errors[4].unwrap(), "a Rgba8 image; the model takes Grayscale");
    assert_eq!(errors[5].unwrap(), "no image (null)");
    assert_eq!(scores(&out, "cat")[3], None);

    let wrong_column = df!("picture" => [gray(0)]).unwrap();
    assert!(model.predict(&wrong_column).unwrap_err().to_string().contains("image"));
    let numbers = df!("image" => [1i64]).unwrap();
    assert!(model.predict(&numbers).unwrap_err().to_string().contains("image"));
}

/// A PNG whose header claims `width` x `height` pixels: a real 1x1 image with its size
/// rewritten (and the header's checksum redone), so nothing large is ever encoded.
fn png_claiming(width: u32, height: u32) -> String {
    let mut bytes = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, Rgb([9, 9, 9]))).write_to(&mut bytes, ImageFormat::Png).unwrap();
    let mut bytes = bytes.into_inner();
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height; the CRC covers
    // "IHDR" and its 13 data bytes.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn images_too_large_to_decode_fail_their_row_before_memory_is_taken() {
    let fits = png_claiming(1, 1);
    assert!(halves().extract(&column(&[Some(fits)])).unwrap().failures.is_empty(), "the rewritten header is valid");
    // 16,000 x 16,000 RGB would take 768 MB decoded; 100,000 wide is past any side allowed.
    let rows = [Some(png_claiming(16_000, 16_000)), Some(png_claiming(100_000, 1)), Some(png(RgbImage::new(2, 2)))];
    let batch = halves().extract(&column(&rows)).unwrap();
    let failed: Vec<usize> = batch.failures.iter().map(|(row, _)| *row).collect();
    assert_eq!(failed, [0, 1], "{:?}", batch.failures);
    for (_, reason) in &batch.failures {
        assert!(reason.starts_with("undecodable image") && reason.contains("limit"), "{reason}");
    }

    // A model input too large for memory is refused before it is allocated.
    let huge = ImagePreprocessing { height: 4096, width: 4096, ..halves() };
    let many: Vec<Option<String>> = vec![None; 20_000];
    let error = huge.extract(&column(&many)).unwrap_err().to_string();
    assert!(error.contains("20000 images of 4096x4096") && error.contains("at most"), "{error}");
    let spec = ImageSpec {
        preprocessing: ImagePreprocessing { height: 100_000, ..halves() },
        ..known_spec(ImageTask::MultiClass)
    };
    let error = ImageClassifier::from_safetensors(spec, known_weights(&[2.0, 0.0], &[0.0, 1.0])).unwrap_err();
    assert!(error.to_string().contains("100000x2"), "{error}");
}

/// Reddish or bluish noisy squares, labelled by colour.
fn colour_frame(images: usize, seed: u64) -> DataFrame {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut pictures, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..images {
        let red = rng.random_bool(0.5);
        let picture = RgbImage::from_fn(8, 8, |_, _| {
            let (strong, weak) = (rng.random_range(150..=255u8), rng.random_range(0..110u8));
            if red { Rgb([strong, weak, weak]) } else { Rgb([weak, weak, strong]) }
        });
        pictures.push(png(picture));
        labels.push(if red { "red" } else { "blue" });
    }
    df!("image" => pictures, "colour" => labels).unwrap()
}

#[test]
fn training_learns_reproducibly_and_the_package_round_trips() {
    let train = colour_frame(64, 1);
    let params = || {
        ImageClassifierParams::new("colour", ImagePreprocessing::rgb("image", 8, 8))
            .network(ConvNet { channels: vec![4], kernel: 3 })
            .epochs(8)
            .batch_size(16)
            .learning_rate(0.01)
            .seed(3)
            .check()
            .unwrap()
    };
    let mut epochs = Vec::new();
    // More pooling steps than a side has bits are refused, not shifted past the integer.
    let deep = ImageClassifierParams::new("colour", ImagePreprocessing::rgb("image", 8, 8))
        .network(ConvNet { channels: vec![1; 40], kernel: 3 })
        .check()
        .and_then(|p| p.fit(&train))
        .unwrap_err()
        .to_string();
    assert!(deep.contains("40 convolution steps"), "{deep}");
    let model = params().fit_with_progress(&train, |e| epochs.push((e.epoch, e.loss))).unwrap();
    assert_eq!(epochs.len(), 8);
    assert!(epochs[7].1 < epochs[0].1, "{epochs:?}");
    assert_eq!(model.spec().labels, ["blue", "red"]);
    // The same seed and data train the same weights.
    assert_eq!(params().fit(&train).unwrap().weights(), model.weights());

    let test = colour_frame(40, 2);
    let predicted = model.predict(&test).unwrap();
    let right = predicted
        .column("prediction")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .zip(test.column("colour").unwrap().str().unwrap().iter())
        .filter(|(p, l)| p == l)
        .count();
    assert!(right >= 36, "{right} of 40 right");

    let dir = tempfile::tempdir().unwrap();
    model.package(Some(&test)).unwrap().save(dir.path()).unwrap();
    let loaded = FlavorRegistry::with_builtins().load(&Package::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(loaded.predict(&test).unwrap(), predicted);

    // Labels outside a fixed set name their row.
    let fixed = ImageClassifierParams::new("colour", ImagePreprocessing::rgb("image", 8, 8)).labels(["red", "green"]);
    let error = fixed.check().unwrap().fit(&train).unwrap_err().to_string();
    assert!(error.contains("`blue` in row"), "{error}");
}

#[test]
fn multi_label_training_reads_lists_of_labels() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    // The left half may be red, the right half may be blue: any subset of {red, blue}.
    let frame = |images: usize, seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut pictures, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..images {
            let (red, blue) = (rng.random_bool(0.5), rng.random_bool(0.5));
            pictures.push(png(RgbImage::from_fn(8, 8, |x, _| match (x < 4, red, blue) {
                (true, true, _) => Rgb([230, 20, 20]),
                (false, _, true) => Rgb([20, 20, 230]),
                _ => Rgb([235, 235, 235]),
            })));
            let mut set = Vec::new();
            if red {
                set.push("red");
            }
            if blue {
                set.push("blue");
            }
            labels.push(Series::new("".into(), set));
        }
        df!("image" => pictures, "colours" => labels).unwrap()
    };
    let model = ImageClassifierParams::new("colours", ImagePreprocessing::rgb("image", 8, 8))
        .multi_label(0.5)
        .network(ConvNet { channels: vec![4], kernel: 3 })
        .epochs(25)
        .batch_size(16)
        .learning_rate(0.02)
        .check()
        .unwrap()
        .fit(&frame(80, 5))
        .unwrap();
    assert_eq!(model.spec().labels, ["blue", "red"]);
    let test = frame(40, 6);
    let out = model.predict(&test).unwrap();
    let predicted = out.column("labels").unwrap().list().unwrap().clone();
    let wanted = test.column("colours").unwrap().list().unwrap().clone();
    let sorted = |s: Series| {
        let mut v: Vec<String> = s.str().unwrap().iter().flatten().map(str::to_owned).collect();
        v.sort();
        v
    };
    let right = (0..40)
        .filter(|row| sorted(predicted.get_as_series(*row).unwrap()) == sorted(wanted.get_as_series(*row).unwrap()))
        .count();
    assert!(right >= 34, "{right} of 40 label sets right");
}
