use std::sync::Arc;

use mlops_core::{FlavorRegistry, Model, TabularClassifierParams, TabularModel, read_parquet, write_parquet};
use mlops_infer::{BatchScorer, Error};
use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, SetAlias};
use polars::prelude::*;

fn frame(n: usize) -> DataFrame {
    let products: Vec<&str> = (0..n).map(|i| ["A", "B", "C"][i % 3]).collect();
    let amounts: Vec<f64> = (0..n).map(|i| (i % 17) as f64 * 1.5).collect();
    let labels: Vec<i32> = (0..n).map(|i| i32::from((i % 17) > 8)).collect();
    let ids: Vec<i64> = (0..n as i64).collect();
    df!("id" => ids, "Product" => products, "Amount" => amounts, "Label" => labels).unwrap()
}

fn model() -> TabularModel {
    TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount"])
        .check()
        .unwrap()
        .fit(&frame(300))
        .unwrap()
}

#[test]
fn scoring_adds_prediction_and_bookkeeping_to_every_input_column() {
    let model = model();
    let input = frame(1_000);
    let scored = BatchScorer::new("transactions", 7, Arc::new(model.clone())).score(&input).unwrap();
    assert_eq!(
        scored.get_column_names(),
        ["id", "Product", "Amount", "Label", "prediction", "model_name", "model_version", "scored_at"]
    );
    assert_eq!(scored.height(), 1_000);
    let direct = model.predict(&input).unwrap();
    assert!(scored.column("prediction").unwrap().equals(direct.column("prediction").unwrap()));
    assert_eq!(scored.column("model_name").unwrap().get(999).unwrap(), AnyValue::String("transactions"));
    assert_eq!(scored.column("model_version").unwrap().get(0).unwrap(), AnyValue::Int64(7));
    let stamp = scored.column("scored_at").unwrap();
    assert_eq!(stamp.dtype(), &DataType::Datetime(TimeUnit::Milliseconds, None));
    let now = chrono::Utc::now().timestamp_millis();
    let ms = match stamp.get(0).unwrap() {
        AnyValue::Datetime(ms, ..) | AnyValue::DatetimeOwned(ms, ..) => ms,
        other => panic!("scored_at is not a datetime: {other:?}"),
    };
    assert!((now - ms).abs() < 60_000);
    // The input's own columns pass through untouched.
    assert!(scored.column("id").unwrap().equals(input.column("id").unwrap()));
}

#[test]
fn chunked_parallel_scoring_equals_scoring_in_one_piece() {
    let model: Arc<dyn Model> = Arc::new(model());
    let input = frame(10_007);
    let whole = BatchScorer::new("m", 1, Arc::clone(&model)).chunk_rows(usize::MAX).unwrap().score(&input).unwrap();
    let chunked = BatchScorer::new("m", 1, model).chunk_rows(999).unwrap().score(&input).unwrap();
    assert!(whole.column("prediction").unwrap().equals(chunked.column("prediction").unwrap()));
    assert!(whole.column("id").unwrap().equals(chunked.column("id").unwrap()));
}

#[test]
fn empty_lazy_and_parquet_inputs() {
    let scorer = BatchScorer::new("m", 1, Arc::new(model()));
    let empty = scorer.score(&frame(0)).unwrap();
    assert_eq!((empty.height(), empty.width()), (0, 8));

    let lazy = frame(100).lazy().filter(col("Product").eq(lit("B")));
    let scored = scorer.score_lazy(lazy).unwrap();
    assert_eq!(scored.height(), 33);

    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.parquet");
    write_parquet(&mut frame(500), &input_path).unwrap();
    let mut scored = scorer.score_parquet(&input_path).unwrap();
    assert_eq!(scored.height(), 500);
    let output_path = dir.path().join("scored.parquet");
    write_parquet(&mut scored, &output_path).unwrap();
    let back = read_parquet(&output_path).unwrap();
    assert!(back.column("prediction").unwrap().equals(scored.column("prediction").unwrap()));
    assert_eq!(back.column("model_name").unwrap().get(0).unwrap(), AnyValue::String("m"));
    // Only the final file remains: the staging file was renamed into place.
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["input.parquet", "scored.parquet"]);

    match scorer.score_parquet(&dir.path().join("missing.parquet")) {
        Err(Error::Core(mlops_core::Error::Io { path, .. })) => assert!(path.ends_with("missing.parquet")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_input_is_reported_by_column_before_any_work() {
    let scorer = BatchScorer::new("m", 1, Arc::new(model())).chunk_rows(10).unwrap();
    let missing = frame(100).drop("Amount").unwrap();
    match scorer.score(&missing) {
        Err(Error::Core(mlops_core::Error::MissingColumns { columns })) => assert_eq!(columns, ["Amount"]),
        other => panic!("{other:?}"),
    }
    let mistyped = frame(100).lazy().with_column(col("Amount").cast(DataType::String)).collect().unwrap();
    assert!(
        matches!(scorer.score(&mistyped), Err(Error::Core(mlops_core::Error::Schema { column, .. })) if column == "Amount")
    );
    let clash = frame(10).lazy().with_column(lit(1).alias("prediction")).collect().unwrap();
    assert!(matches!(scorer.score(&clash), Err(Error::InvalidArgument(m)) if m.contains("`prediction`")));
    assert!(matches!(BatchScorer::new("m", 1, Arc::new(model())).chunk_rows(0), Err(Error::InvalidArgument(_))));
}

/// A model that breaks the contract by dropping rows.
struct Truncating(mlops_core::Signature);

impl Model for Truncating {
    fn signature(&self) -> &mlops_core::Signature {
        &self.0
    }
    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        Ok(df!("prediction" => vec![0.0; input.height().saturating_sub(1)])?)
    }
}

#[test]
fn a_model_returning_the_wrong_number_of_rows_is_caught() {
    let signature = Model::signature(&model()).clone();
    let scorer = BatchScorer::new("broken", 3, Arc::new(Truncating(signature)));
    match scorer.score(&frame(50)) {
        Err(Error::ModelContract { model, version, problem }) => {
            assert_eq!((model.as_str(), version), ("broken", 3));
            assert!(problem.contains("49 rows for 50"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_scorer_loads_the_version_an_alias_points_at() {
    let registry = MemoryRegistry::new();
    let name: mlops_core::ModelName = "transactions".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    registry.create_version(CreateVersion::new(name.clone(), model().package(None).unwrap())).await.unwrap();
    registry.create_version(CreateVersion::new(name.clone(), model().package(None).unwrap())).await.unwrap();
    registry.set_alias(SetAlias::new(name.clone(), "champion", 2)).await.unwrap();
    let flavors = FlavorRegistry::with_builtins();
    let scorer =
        BatchScorer::load(&registry, &"models:/transactions@champion".parse().unwrap(), &flavors).await.unwrap();
    assert_eq!((scorer.model_name(), scorer.version()), ("transactions", 2));
    let scored = scorer.score(&frame(10)).unwrap();
    assert_eq!(scored.column("model_version").unwrap().get(0).unwrap(), AnyValue::Int64(2));
    match BatchScorer::load(&registry, &"models:/transactions@challenger".parse().unwrap(), &flavors).await {
        Err(Error::Registry(mlops_registry::Error::NotFound { what })) => assert!(what.contains("challenger")),
        other => panic!("{other:?}"),
    }
}
