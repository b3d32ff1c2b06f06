//! Images per second of the image-classifier flavor on the CPU: base64 PNG/JPEG text in,
//! labels and scores out, through `BatchScorer` (rows in parallel chunks) and as one batch,
//! plus the feature extraction alone (decode, resize, normalize).
//!
//! `cargo bench -p mlops-benches --bench image_classifier` scores 1,024 shapes images of
//! 32 × 32 pixels with a network trained on 1,200 others; in test mode (`cargo test
//! --benches`) 64 images once.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::{ImageClassifierParams, ImagePreprocessing, Model};
use mlops_examples::shapes::{self, IMAGE, LABEL, SHAPES};
use mlops_infer::BatchScorer;

fn images() -> usize {
    if let Ok(images) = std::env::var("MLOPS_BENCH_IMAGES") {
        return images.parse().expect("MLOPS_BENCH_IMAGES is an image count");
    }
    if mlops_benches::benchmarking() { 1024 } else { 64 }
}

fn image_classifier(c: &mut Criterion) {
    let full = mlops_benches::benchmarking();
    let (train_images, epochs) = if full { (1200, 6) } else { (120, 1) };
    let train = shapes::generate(&shapes::Config::new(train_images, 32, 1)).expect("training images");
    let model = ImageClassifierParams::new(LABEL, ImagePreprocessing::rgb(IMAGE, 32, 32))
        .labels(SHAPES)
        .epochs(epochs)
        .check()
        .expect("parameters")
        .fit(&train)
        .expect("trained");
    let batch =
        shapes::generate(&shapes::Config::new(images(), 32, 2)).expect("images").select([IMAGE]).expect("image column");
    let preprocessing = model.spec().preprocessing.clone();
    let model: Arc<dyn Model> = Arc::new(model);

    let mut group = c.benchmark_group("image_classifier");
    group.throughput(Throughput::Elements(batch.height() as u64));
    group.sample_size(20);
    let column = batch.column(IMAGE).expect("image column");
    group.bench_function("feature_extraction", |b| b.iter(|| preprocessing.extract(column).expect("extracted")));
    let parallel = BatchScorer::new("shapes", 1, Arc::clone(&model));
    group.bench_function("batch_scorer_parallel_chunks", |b| b.iter(|| parallel.score(&batch).expect("scores")));
    let single = BatchScorer::new("shapes", 1, model).chunk_rows(usize::MAX).expect("valid chunk size");
    group.bench_function("batch_scorer_one_chunk", |b| b.iter(|| single.score(&batch).expect("scores")));
    group.finish();
}

criterion_group!(benches, image_classifier);
criterion_main!(benches);
