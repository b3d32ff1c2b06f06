//! An image classifier from end to end on a local directory: generate coloured shapes,
//! train a small convolutional network (candle), package it with its preprocessing,
//! register it, point `champion` at it, score a batch of base64 images by alias, show what
//! happens to a corrupt image, and (feature `serve`) answer an HTTP scoring request.
//!
//! ```text
//! cargo run --release --features image --example image_classifier -- --dir ./mlops-images
//! cargo run --release --features image,serve --example image_classifier
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use mlops_core::{
    BadImages, FlavorRegistry, ImageClassifier, ImageClassifierParams, ImagePreprocessing, Model, ModelName, ModelUri,
};
use mlops_examples::shapes::{self, IMAGE, LABEL, SHAPES};
use mlops_infer::BatchScorer;
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, Error as RegistryError, ObjectStoreRegistry, Registry, SetAlias,
};
use polars::prelude::*;

const MODEL: &str = "shapes";

#[derive(Parser, Debug)]
#[command(about = "Train, register and score an image classifier by alias")]
struct Args {
    /// Directory holding the registry.
    #[arg(long, default_value = "./mlops-images")]
    dir: PathBuf,
    /// Training images.
    #[arg(long, default_value_t = 1200)]
    train: usize,
    /// Images scored by alias (and used to measure accuracy).
    #[arg(long, default_value_t = 400)]
    score: usize,
    /// Image width and height.
    #[arg(long, default_value_t = 32)]
    size: u32,
    /// Training epochs.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Seed of the images and the training.
    #[arg(long, default_value_t = 11)]
    seed: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let registry = ObjectStoreRegistry::local(args.dir.join("registry"))?;
    let flavors = FlavorRegistry::with_builtins();
    let name: ModelName = MODEL.parse()?;

    step(&format!(
        "generating {} + {} images of {} ({}x{} px)",
        args.train,
        args.score,
        SHAPES.join(", "),
        args.size,
        args.size
    ));
    let train = shapes::generate(&shapes::Config::new(args.train, args.size, args.seed))?;
    let batch = shapes::generate(&shapes::Config::new(args.score, args.size, args.seed + 1))?;

    step(&format!("training a convolutional network for {} epochs", args.epochs));
    let started = Instant::now();
    let model = ImageClassifierParams::new(LABEL, ImagePreprocessing::rgb(IMAGE, args.size, args.size))
        .labels(SHAPES)
        .epochs(args.epochs)
        .seed(args.seed)
        .check()?
        .fit_with_progress(&train, |e| println!("    epoch {}/{}: loss {:.4}", e.epoch, e.epochs, e.loss))?;
    println!("    trained in {:.2?}; weights {} bytes of safetensors", started.elapsed(), model.weights().len());

    step("registering and pointing champion at it");
    match registry.create_model(CreateModel::new(name.clone()).description("Shape in a small picture")).await {
        Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let example = batch.select([IMAGE])?.head(Some(2));
    let package = model.package(Some(&example))?;
    let version = registry
        .create_version(CreateVersion::new(name.clone(), package).description("Two convolution blocks, trained here"))
        .await?
        .version;
    let current = registry.get_model(&name).await?.aliases.get("champion").copied();
    let mode = current.map_or(AliasMode::Create, AliasMode::Update);
    registry.set_alias(SetAlias::new(name.clone(), "champion", version).mode(mode)).await?;
    println!("    {MODEL} version {version}; champion -> {version}");

    step("scoring a batch of base64 images by alias");
    let uri: ModelUri = format!("models:/{MODEL}@champion").parse()?;
    let scorer = BatchScorer::load(&registry, &uri, &flavors).await?;
    let images = batch.select([IMAGE])?;
    let started = Instant::now();
    let scored = scorer.score(&images)?;
    let elapsed = started.elapsed();
    let right = scored
        .column("prediction")?
        .str()?
        .iter()
        .zip(batch.column(LABEL)?.str()?.iter())
        .filter(|(p, l)| p == l)
        .count();
    println!(
        "    {uri} = version {}: {} images in {elapsed:.2?} ({:.0} images/s), accuracy {:.3}",
        scorer.version(),
        scored.height(),
        scored.height() as f64 / elapsed.as_secs_f64(),
        right as f64 / scored.height() as f64
    );
    println!("{}", scored.select(["prediction", "prediction_index", "scores"])?.head(Some(5)));

    step("a corrupt image in the batch");
    let mut broken = images.head(Some(4));
    broken.with_column(Column::new(
        IMAGE.into(),
        broken
            .column(IMAGE)?
            .str()?
            .iter()
            .enumerate()
            .map(|(i, v)| if i == 2 { Some("iVBORw0KGgo=") } else { v })
            .collect::<Vec<_>>(),
    ))?;
    match scorer.score(&broken) {
        Err(e) => println!("    by default the batch fails, naming the row: {e}"),
        Ok(_) => return Err("a corrupt image should have failed the batch".into()),
    }
    let package = registry.download_package(&name, version).await?;
    let lenient = ImageClassifier::from_package(&package)?.with_bad_images(BadImages::Report);
    let reported = lenient.predict(&broken)?;
    println!("    asked to report instead, the other rows are scored:");
    println!("{}", reported.select(["prediction", "error"])?);

    #[cfg(feature = "serve")]
    serve_one(&registry, &images).await?;
    Ok(())
}

/// Serves `champion` on a loopback port and sends it one MLflow scoring request.
#[cfg(feature = "serve")]
async fn serve_one(registry: &ObjectStoreRegistry, images: &DataFrame) -> Result<(), Box<dyn std::error::Error>> {
    use mlops_infer::serve::{Endpoint, ModelServer};
    use mlops_registry::LiveModel;
    use std::sync::Arc;

    step("serving champion over MLflow's scoring protocol");
    let registry: Arc<dyn Registry> = Arc::new(registry.clone());
    let live = LiveModel::start(
        registry,
        format!("models:/{MODEL}@champion").parse()?,
        FlavorRegistry::with_builtins(),
        std::time::Duration::from_secs(10),
    )
    .await?;
    let app = ModelServer::new().endpoint(MODEL, Endpoint::single(Arc::new(live)))?.router();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let settings = mlops_infer::serve::ServerSettings::new();
    let server = tokio::spawn(mlops_infer::serve::serve(listener, app, settings, std::future::pending()));
    let records = mlops_core::frame_to_records_json(&images.head(Some(2)))?;
    let response = reqwest::Client::new()
        .post(format!("http://{address}/invocations"))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "dataframe_records": records }).to_string())
        .send()
        .await?;
    let status = response.status();
    println!("    POST http://{address}/invocations (2 images) -> {status}");
    println!("    {}", response.text().await?);
    server.abort();
    if !status.is_success() {
        return Err(format!("the server answered {status}").into());
    }
    Ok(())
}

fn step(what: &str) {
    println!("==> {what}");
}
