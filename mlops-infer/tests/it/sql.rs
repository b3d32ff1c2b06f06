//! Scoring in SQL: `predict` and `score` over models pinned from a registry, against the
//! batch scorer on the same rows, over Delta tables on a directory and on the S3-compatible
//! server, into inference tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, StructArray};
use deltalake::arrow::compute::concat_batches;
use deltalake::datafusion::prelude::{SessionContext, col};
use mlops_core::features::FeatureTable;
use mlops_core::{ColSpec, ColumnType, FlavorRegistry, Model, ModelName, ModelUri, Schema, Signature};
use mlops_infer::sql::{ModelCatalog, PinnedModel};
use mlops_infer::{
    BatchScorer, DeltaFeatureStore, Error, InferenceTable, InferenceTableConfig, MODEL_VERSION, PREDICTION,
    TableLocation,
};
use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, SetAlias};
use polars::prelude::*;

use crate::inference_table::{classifier, records};
use crate::servers::{options, s3_bucket_url, unique_prefix};

const CHAMPION: &str = "models:/fraud@champion";

/// A registry holding `fraud` versions 1 and 2 (different thresholds), `champion` on 1.
async fn registry() -> MemoryRegistry {
    let registry = MemoryRegistry::new();
    fill_registry(&registry).await;
    registry
}

/// Registers `fraud` versions 1 and 2 (different thresholds) in `registry`, `champion` on 1.
pub async fn fill_registry(registry: &dyn Registry) {
    let name: ModelName = "fraud".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    for shift in [0.0, 12.0] {
        let package = classifier(shift).package(None).unwrap();
        registry.create_version(CreateVersion::new(name.clone(), package)).await.unwrap();
    }
    registry.set_alias(SetAlias::new(name, "champion", 1)).await.unwrap();
}

async fn pinned_catalog(registry: &MemoryRegistry) -> ModelCatalog {
    let mut catalog = ModelCatalog::new();
    catalog.pin(registry, &CHAMPION.parse().unwrap(), &FlavorRegistry::with_builtins()).await.unwrap();
    catalog
}

/// The records as a session table `transactions`.
fn session_with(frame: &DataFrame) -> SessionContext {
    let ctx = SessionContext::new();
    let ids: Vec<String> = frame.column("id").unwrap().str().unwrap().iter().map(|v| v.unwrap().to_owned()).collect();
    let amounts: Vec<f64> = frame.column("Amount").unwrap().f64().unwrap().into_no_null_iter().collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as Arc<dyn Array>),
        ("Amount", Arc::new(Float64Array::from(amounts)) as Arc<dyn Array>),
    ])
    .unwrap();
    ctx.register_batch("transactions", batch).unwrap();
    ctx
}

async fn query(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let frame = ctx.sql(sql).await.unwrap();
    let schema = Arc::new(frame.schema().as_arrow().clone());
    concat_batches(&schema, &frame.collect().await.unwrap()).unwrap()
}

fn floats(batch: &RecordBatch, column: &str) -> Vec<f64> {
    let array = batch.column_by_name(column).unwrap();
    array.as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn predict_in_sql_equals_the_batch_scorer_positionally_and_by_name() {
    let registry = registry().await;
    let catalog = pinned_catalog(&registry).await;
    let input = records(0..5000);
    let ctx = session_with(&input);
    let functions = catalog.register(&ctx);

    let expected = BatchScorer::new("fraud", 1, Arc::new(classifier(0.0))).score(&input).unwrap();
    let expected: Vec<f64> = expected.column(PREDICTION).unwrap().f64().unwrap().into_no_null_iter().collect();
    let positional = query(
        &ctx,
        &format!(r#"SELECT predict('{CHAMPION}', "Amount") AS p, model_version('{CHAMPION}') AS v FROM transactions ORDER BY id"#),
    )
    .await;
    let by_name = query(
        &ctx,
        &format!(r#"SELECT predict('{CHAMPION}', named_struct('Amount', "Amount", 'note', id)) AS p FROM transactions ORDER BY id"#),
    )
    .await;
    // The same rows in the scorer's order: sort its output by id as the queries did.
    let mut order: Vec<(String, f64)> =
        input.column("id").unwrap().str().unwrap().iter().map(|v| v.unwrap().to_owned()).zip(expected).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<f64> = order.into_iter().map(|(_, p)| p).collect();
    assert_eq!(floats(&positional, "p"), expected);
    assert_eq!(floats(&by_name, "p"), expected);
    let versions = positional.column_by_name("v").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    assert!(versions.values().iter().all(|&v| v == 1));

    // The DataFrame API builds the same call.
    let frame = ctx
        .table("transactions")
        .await
        .unwrap()
        .select(vec![col("id"), functions.predict(CHAMPION, [col("\"Amount\"")]).alias("p")])
        .unwrap()
        .sort(vec![col("id").sort(true, false)])
        .unwrap();
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let api = concat_batches(&schema, &frame.collect().await.unwrap()).unwrap();
    assert_eq!(floats(&api, "p"), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_stays_pinned_until_it_is_pinned_again() {
    let registry = registry().await;
    let mut catalog = pinned_catalog(&registry).await;
    let ctx = session_with(&records(0..100));
    catalog.register(&ctx);
    let planned = ctx.sql(&format!("SELECT model_version('{CHAMPION}') AS v FROM transactions")).await.unwrap();

    registry.set_alias(SetAlias::new("fraud".parse().unwrap(), "champion", 2)).await.unwrap();
    let version_of = |batch: RecordBatch| {
        let versions = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
        assert!(versions.values().iter().all(|&v| v == versions.value(0)));
        versions.value(0)
    };
    let after = query(&ctx, &format!("SELECT model_version('{CHAMPION}') FROM transactions")).await;
    assert_eq!(version_of(after), 1, "the alias moved in the registry, but the catalog pinned version 1");

    catalog.pin(&registry, &CHAMPION.parse().unwrap(), &FlavorRegistry::with_builtins()).await.unwrap();
    catalog.register(&ctx);
    let schema = Arc::new(planned.schema().as_arrow().clone());
    let batch = concat_batches(&schema, &planned.collect().await.unwrap());
    assert_eq!(version_of(batch.unwrap()), 1, "a query planned before the re-pin still scores with version 1");
    let repinned = query(&ctx, &format!("SELECT model_version('{CHAMPION}') FROM transactions")).await;
    assert_eq!(version_of(repinned), 2);
    // Plans name the version an alias is pinned to, so every process running a part of one
    // scores with it.
    let plan = query(&ctx, &format!(r#"EXPLAIN SELECT predict('{CHAMPION}', "Amount") FROM transactions"#)).await;
    let text = deltalake::arrow::util::pretty::pretty_format_batches(&[plan]).unwrap().to_string();
    assert!(text.contains("predict(models:/fraud/2"), "{text}");
    assert!(!text.contains("fraud@champion, "), "{text}");
    // The version URI designates what the alias was pinned to.
    let by_version = query(&ctx, "SELECT model_version('models:/fraud/2') FROM transactions").await;
    assert_eq!(version_of(by_version), 2);
}

async fn planning_error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(frame) => match frame.collect().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("`{sql}` ran"),
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_that_break_the_signature_fail_while_planning_and_name_the_culprit() {
    let registry = registry().await;
    let catalog = pinned_catalog(&registry).await;
    let ctx = session_with(&records(0..10));
    catalog.register(&ctx);

    let unpinned =
        planning_error(&ctx, "SELECT predict('models:/fraud@challenger', \"Amount\") FROM transactions").await;
    assert!(unpinned.contains("`models:/fraud@challenger` is not pinned"), "{unpinned}");
    assert!(unpinned.contains("models:/fraud@champion"), "lists what is pinned: {unpinned}");
    let wrong_type = planning_error(&ctx, &format!("SELECT predict('{CHAMPION}', id) FROM transactions")).await;
    assert!(wrong_type.contains("Amount"), "names the column: {wrong_type}");
    let too_many =
        planning_error(&ctx, &format!("SELECT predict('{CHAMPION}', \"Amount\", id) FROM transactions")).await;
    assert!(too_many.contains("takes 1 columns (Amount), got 2 arguments"), "{too_many}");
    let not_literal = planning_error(&ctx, "SELECT predict(id, \"Amount\") FROM transactions").await;
    assert!(not_literal.contains("string literal"), "{not_literal}");
    let decimal = planning_error(
        &ctx,
        &format!("SELECT predict('{CHAMPION}', CAST(\"Amount\" AS DECIMAL(10, 2))) FROM transactions"),
    )
    .await;
    assert!(decimal.contains("cast it to DOUBLE"), "{decimal}");
    let missing =
        planning_error(&ctx, &format!("SELECT predict('{CHAMPION}', named_struct('x', id)) FROM transactions")).await;
    assert!(missing.contains("missing required columns: Amount"), "{missing}");
    let no_table = planning_error(&ctx, &format!("SELECT * FROM score('{CHAMPION}', 'nowhere')")).await;
    assert!(no_table.contains("no table `nowhere`"), "{no_table}");
}

/// Scores `Amount` twice and labels it: two outputs, so `predict` returns a struct. Counts
/// its calls.
struct TwoOutputs(Signature, Arc<AtomicUsize>);

impl Model for TwoOutputs {
    fn signature(&self) -> &Signature {
        &self.0
    }

    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let input = self.0.enforce(input)?;
        let amount = input.column("Amount")?.f64()?;
        let doubled: Float64Chunked = amount.apply_values(|a| a * 2.0);
        let band: StringChunked =
            amount.apply_nonnull_values_generic(DataType::String, |a| if a > 10.0 { "high" } else { "low" });
        Ok(DataFrame::new(
            input.height(),
            vec![doubled.with_name("doubled".into()).into_column(), band.with_name("band".into()).into_column()],
        )?)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_with_several_outputs_returns_a_struct_and_score_spreads_it() {
    let signature = Signature::new(Schema::new(vec![ColSpec::new("Amount", ColumnType::Double)]).unwrap());
    let uri: ModelUri = "models:/bands/4".parse().unwrap();
    let mut catalog = ModelCatalog::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let scorer = BatchScorer::new("bands", 4, Arc::new(TwoOutputs(signature, Arc::clone(&calls))));
    catalog.insert(PinnedModel::new(uri, scorer, None).unwrap());
    let ctx = session_with(&records(0..40));
    catalog.register(&ctx);

    let nested = query(&ctx, "SELECT predict('models:/bands/4', \"Amount\") AS p FROM transactions ORDER BY id").await;
    let outputs = nested.column(0).as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(outputs.column_names(), ["doubled", "band"]);
    let before = calls.load(Ordering::SeqCst);
    let spread = query(&ctx, "SELECT * FROM score('models:/bands/4', 'transactions') ORDER BY id").await;
    assert_eq!(calls.load(Ordering::SeqCst) - before, 1, "one call for the table's one batch, not one per output");
    let names: Vec<&str> = spread.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "Amount", "doubled", "band", PREDICTION, "model_name", MODEL_VERSION, "scored_at"]);
    let amounts = floats(&spread, "Amount");
    let doubled = floats(&spread, "doubled");
    assert!(amounts.iter().zip(&doubled).all(|(a, d)| *d == a * 2.0));
    assert_eq!(floats(&spread, PREDICTION), doubled, "prediction is the first output");
    let bands = spread.column_by_name("band").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    assert!(amounts.iter().zip(bands.iter()).all(|(a, b)| b == Some(if *a > 10.0 { "high" } else { "low" })));
}

/// Writes transactions as a Delta table under `root`, registers it as `transactions`, and
/// scores the large ones with `score(...)` into an inference table beside it, in a job that
/// is run twice: it appends once.
async fn score_delta_table_into_inference_table(root: TableLocation) {
    let input = records(0..3000);
    let store = DeltaFeatureStore::new(root.clone());
    store.write(&FeatureTable::new("transactions", ["id"], Some("time"), input.clone()).unwrap()).await.unwrap();
    let registry = registry().await;
    let catalog = pinned_catalog(&registry).await;
    let ctx = SessionContext::new();
    catalog.register(&ctx);
    store.location("transactions").unwrap().register_in(&ctx, "transactions").await.unwrap();

    let inference = InferenceTable::new(root.child("inference").unwrap(), InferenceTableConfig::new(["id"])).unwrap();
    let sql = format!(r#"SELECT * FROM score('{CHAMPION}', 'transactions') WHERE "Amount" >= 18"#);
    for run in 0..2 {
        let query = ctx.sql(&sql).await.unwrap();
        let appended = inference.append_query_in_transaction(query, "nightly-scoring", 7).await.unwrap();
        assert_eq!(appended.is_some(), run == 0, "run {run}");
    }

    let large = input
        .clone()
        .lazy()
        .filter(polars::prelude::col("Amount").gt_eq(polars::prelude::lit(18.0)))
        .collect()
        .unwrap();
    let expected = BatchScorer::new("fraud", 1, Arc::new(classifier(0.0))).score(&large).unwrap();
    let table = inference.read().await.unwrap().sort(["id"], SortMultipleOptions::default()).unwrap();
    let expected = expected.sort(["id"], SortMultipleOptions::default()).unwrap();
    assert_eq!(table.height(), large.height());
    assert!(table.height() > 0 && table.height() < input.height());
    assert_eq!(table.column("id").unwrap(), expected.column("id").unwrap());
    assert_eq!(table.column(PREDICTION).unwrap(), expected.column(PREDICTION).unwrap());
    let versions = table.column(MODEL_VERSION).unwrap().i64().unwrap();
    assert!(versions.into_no_null_iter().all(|v| v == 1));
    assert_eq!(table.column("time").unwrap().null_count(), 0, "input columns are carried");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_scores_a_delta_table_on_a_directory_into_an_inference_table() {
    let dir = tempfile::tempdir().unwrap();
    score_delta_table_into_inference_table(TableLocation::local(dir.path().join("lake")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_scores_a_delta_table_on_s3_into_an_inference_table() {
    let Some(bucket) = s3_bucket_url() else { return };
    let url = format!("{bucket}/{}", unique_prefix("sql-lake"));
    score_delta_table_into_inference_table(TableLocation::open(&url, options(&url)).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_raised_inside_a_query_come_back_as_they_were() {
    let registry = registry().await;
    let catalog = pinned_catalog(&registry).await;
    let ctx = SessionContext::new();
    let functions = catalog.register(&ctx);
    ctx.sql(r#"CREATE TABLE t (id VARCHAR, "Amount" DOUBLE, prediction DOUBLE) AS VALUES ('a', 1.0, 0.5)"#)
        .await
        .unwrap();
    let frame = ctx.table("t").await.unwrap();
    let error = functions.score(CHAMPION, frame).unwrap_err();
    assert!(matches!(&error, Error::InvalidArgument(m) if m.contains("already has a column `prediction`")), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let inference =
        InferenceTable::new(TableLocation::local(dir.path().join("t")).unwrap(), InferenceTableConfig::new(["id"]))
            .unwrap();
    let query = ctx.sql("SELECT id, CAST(NULL AS DOUBLE) AS \"Amount\" FROM t").await.unwrap();
    let query = functions.score(CHAMPION, query).unwrap();
    let error = inference.append_query(query).await.unwrap_err();
    assert!(matches!(error, Error::Core(_)), "the model's schema error, naming the column: {error}");
    assert!(error.to_string().contains("Amount"), "{error}");
    assert_eq!(inference.version().await.unwrap(), None, "nothing was written");

    // The same over many batches in several partitions, where DataFusion passes the error
    // between operators.
    let config = deltalake::datafusion::prelude::SessionConfig::new().with_target_partitions(4).with_batch_size(512);
    let ctx = SessionContext::new_with_config(config);
    let functions = catalog.register(&ctx);
    let many = session_with(&records(0..20_000)).table("transactions").await.unwrap().collect().await.unwrap();
    let schema = many[0].schema();
    let table = deltalake::datafusion::datasource::MemTable::try_new(schema, vec![many.clone(), many]).unwrap();
    ctx.register_table("many", Arc::new(table)).unwrap();
    let query = ctx
        .sql(r#"SELECT id, CASE WHEN "Amount" > 30 THEN NULL ELSE "Amount" END AS "Amount" FROM many"#)
        .await
        .unwrap();
    let error = inference.append_query(functions.score(CHAMPION, query).unwrap()).await.unwrap_err();
    assert!(matches!(&error, Error::Core(_)) && error.to_string().contains("Amount"), "{error:?}");
}
