//! Scores a file with any model, by URI from a registry or from an MLflow model directory,
//! as `mlflow models predict` does: try your own Python-trained models before writing Rust.
//!
//! ```text
//! cargo run --release --features python-flavors --example predict -- --model models:/fraud@champion --registry http://127.0.0.1:5000 \
//!     --input transactions.parquet --output scored.parquet
//! cargo run --release --features python-flavors --example predict -- --model ./mlruns/1/models/m-0492.../artifacts \
//!     --input transactions.csv --output scored.parquet
//! ```
//!
//! `--model` is a model URI (`models:/name@alias`, `models:/name/3`, `models:/name/latest`,
//! `runs:/<run>/<path>`) resolved in `--registry` (default: `MLFLOW_TRACKING_URI`), or a
//! directory: an MLflow model directory (`MLmodel`) or a package of this crate. `--registry`
//! is an MLflow tracking server (`http(s)://`), an object-store URL (`s3://bucket/prefix`,
//! `gs://`, `az://`, `file://`, with `--registry-option key=value` and the store's
//! environment variables) or a local directory. The input is Parquet, CSV (with a header)
//! or JSON (a list of records, or a scoring request body with `dataframe_split` or
//! `dataframe_records`); the output is Parquet: the input columns, the model's outputs,
//! `prediction`, `model_name`, `model_version` and `scored_at`.
//!
//! On success one line goes to standard output: `scored <rows> rows with <model> version
//! <n> into <output> in <seconds> s` (for a directory, `with <directory>` alone).
//! On failure a message goes to standard error and the exit code says what failed:
//!
//! | Code | Meaning |
//! | ---: | --- |
//! | 0 | scored |
//! | 2 | bad arguments |
//! | 3 | the model could not be found, downloaded or loaded |
//! | 4 | the input could not be read, or does not fit the model's signature |
//! | 5 | the output could not be written |

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use mlops_core::{
    FlavorRegistry, Model, ModelUri, Package, read_parquet, records_json_to_frame, split_json_to_frame, write_parquet,
};
use mlops_examples::registries::{key_value, open_registry};
use mlops_infer::BatchScorer;
use mlops_registry::RegistryExt;
use polars::prelude::{CsvReadOptions, DataFrame, SerReader};

#[derive(Parser, Debug)]
#[command(about = "Score a Parquet, CSV or JSON file with a registered model or an MLflow model directory")]
struct Args {
    /// A model URI (`models:/name@alias`, ...) or a model directory.
    #[arg(long)]
    model: String,
    /// The registry a model URI is resolved in: an MLflow server, an object-store URL or a
    /// directory.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    registry: Option<String>,
    /// An option of an object-store registry, `key=value` (repeatable).
    #[arg(long = "registry-option", value_parser = key_value)]
    registry_options: Vec<(String, String)>,
    /// The rows to score: `.parquet`, `.csv` or `.json`.
    #[arg(long)]
    input: PathBuf,
    /// Where the scored rows go (Parquet).
    #[arg(long)]
    output: PathBuf,
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn fail(code: u8) -> impl Fn(String) -> Failure {
    move |message| Failure { code, message }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("predict: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(args: &Args) -> Result<String, Failure> {
    let started = Instant::now();
    let (scorer, described) = load(args).await.map_err(fail(3))?;
    let input = read_input(&args.input, scorer.signature()).map_err(fail(4))?;
    let rows = input.height();
    let scored = tokio::task::spawn_blocking(move || scorer.score(&input).map_err(|e| e.to_string()))
        .await
        .map_err(|e| fail(1)(format!("scoring stopped: {e}")))?;
    let mut scored = scored.map_err(|e| fail(4)(format!("scoring `{}`: {e}", args.input.display())))?;
    write_parquet(&mut scored, &args.output).map_err(|e| fail(5)(e.to_string()))?;
    Ok(format!(
        "scored {rows} rows with {described} into {} in {:.2} s",
        args.output.display(),
        started.elapsed().as_secs_f64()
    ))
}

/// The scorer and how to name what it runs.
async fn load(args: &Args) -> Result<(BatchScorer, String), String> {
    let flavors = FlavorRegistry::with_builtins();
    let path = Path::new(&args.model);
    if !args.model.contains(":/") {
        let package =
            Package::read_dir(path).map_err(|e| format!("reading model directory `{}`: {e}", path.display()))?;
        let model: Arc<dyn Model> = flavors.load(&package).map_err(|e| format!("loading `{}`: {e}", path.display()))?;
        let name = path.file_name().map_or_else(|| args.model.clone(), |n| n.to_string_lossy().into_owned());
        return Ok((BatchScorer::new(name, 0, model), path.display().to_string()));
    }
    let uri: ModelUri = args.model.parse().map_err(|e| format!("{e}"))?;
    let location = args
        .registry
        .as_deref()
        .ok_or_else(|| format!("`{uri}` needs a registry: pass --registry or set MLFLOW_TRACKING_URI"))?;
    let registry =
        open_registry(location, &args.registry_options).map_err(|e| format!("opening registry `{location}`: {e}"))?;
    let loaded =
        registry.load_model(&uri, &flavors).await.map_err(|e| format!("loading `{uri}` from `{location}`: {e}"))?;
    let described = format!("{} version {}", loaded.version.name, loaded.version.version);
    Ok((loaded.into(), described))
}

fn read_input(path: &Path, signature: &mlops_core::Signature) -> Result<DataFrame, String> {
    let context = |e: &dyn std::fmt::Display| format!("reading `{}`: {e}", path.display());
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "parquet" => read_parquet(path).map_err(|e| context(&e)),
        "csv" => CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
            .map_err(|e| context(&e)),
        "json" => {
            let text = std::fs::read(path).map_err(|e| context(&e))?;
            let document: serde_json::Value = serde_json::from_slice(&text).map_err(|e| context(&e))?;
            let inputs = &signature.inputs;
            match &document {
                serde_json::Value::Array(records) => records_json_to_frame(records, inputs),
                serde_json::Value::Object(body) if body.contains_key("dataframe_split") => {
                    split_json_to_frame(&body["dataframe_split"], inputs)
                }
                serde_json::Value::Object(body) => {
                    match body.get("dataframe_records").and_then(serde_json::Value::as_array) {
                        Some(records) => records_json_to_frame(records, inputs),
                        None => {
                            return Err(context(
                                &"expected a list of records or a body with `dataframe_split` or `dataframe_records`",
                            ));
                        }
                    }
                }
                _ => return Err(context(&"expected a list of records or an object")),
            }
            .map_err(|e| context(&e))
        }
        other => Err(format!("`{}`: unknown input format `.{other}` (use .parquet, .csv or .json)", path.display())),
    }
}
