//! Batch scoring of frames and Parquet files.

use std::path::Path;
use std::sync::Arc;

use mlops_core::features::{FeatureFunctions, FeatureSpec, FeatureTables};
use mlops_core::{FlavorRegistry, Model, ModelUri, read_parquet};
use mlops_registry::{LoadedModel, Registry, RegistryExt};
use polars::prelude::{Column, DataFrame, DataType, LazyFrame, PlSmallStr, PolarsResult, Scalar, TimeUnit};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::telemetry;

/// Column holding the model's prediction.
pub const PREDICTION: &str = "prediction";
/// Column holding the registered model's name.
pub const MODEL_NAME: &str = "model_name";
/// Column holding the model version that scored the row.
pub const MODEL_VERSION: &str = "model_version";
/// Column holding when the row was scored: milliseconds since the Unix epoch (UTC), as a
/// datetime without time zone.
pub const SCORED_AT: &str = "scored_at";

/// Rows per chunk unless set otherwise: enough chunks to keep every core busy and to
/// amortize per-chunk work, small enough that a chunk's intermediate columns stay in cache.
pub const DEFAULT_CHUNK_ROWS: usize = 32 * 1024;

/// Scores frames with one model version, in parallel chunks.
///
/// Output = every input column + the model's output columns + `model_name` +
/// `model_version` + `scored_at`. A model whose outputs have no `prediction` column (an
/// MLflow model returning `output_label` and `output_probability`, say) also gets
/// `prediction`, a copy of its first output, which inference tables and monitors read.
///
/// ```
/// use mlops_core::TabularClassifierParams;
/// use mlops_infer::BatchScorer;
/// use polars::prelude::*;
/// use std::sync::Arc;
///
/// let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
/// let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
/// let scorer = BatchScorer::new("transactions", 1, Arc::new(model));
///
/// let scored = scorer.score(&df!("id" => [7, 8], "Amount" => [1.5, 8.5])?)?;
/// assert_eq!(scored.get_column_names(), ["id", "Amount", "prediction", "model_name", "model_version", "scored_at"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BatchScorer {
    model_name: String,
    version: u64,
    model: Arc<dyn Model>,
    chunk_rows: usize,
}

impl std::fmt::Debug for BatchScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchScorer")
            .field("model_name", &self.model_name)
            .field("version", &self.version)
            .field("chunk_rows", &self.chunk_rows)
            .finish_non_exhaustive()
    }
}

impl From<LoadedModel> for BatchScorer {
    fn from(loaded: LoadedModel) -> Self {
        Self::new(loaded.version.name.as_str(), loaded.version.version, loaded.model)
    }
}

impl BatchScorer {
    /// A scorer for `model`, recorded in the output as `model_name` version `version`.
    pub fn new(model_name: impl Into<String>, version: u64, model: Arc<dyn Model>) -> Self {
        Self { model_name: model_name.into(), version, model, chunk_rows: DEFAULT_CHUNK_ROWS }
    }

    /// Resolves `uri` in `registry` and loads the model it designates.
    ///
    /// # Errors
    /// [`Error::Registry`] naming the unknown model, version or alias, or the corrupted
    /// package.
    pub async fn load(registry: &dyn Registry, uri: &ModelUri, flavors: &FlavorRegistry) -> Result<Self> {
        Ok(registry.load_model(uri, flavors).await?.into())
    }

    /// Sets the rows per chunk.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn chunk_rows(mut self, rows: usize) -> Result<Self> {
        if rows == 0 {
            return Err(Error::InvalidArgument("chunk_rows must be at least 1".into()));
        }
        self.chunk_rows = rows;
        Ok(self)
    }

    /// The model name written to `model_name`.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The model's signature: the columns it takes.
    pub fn signature(&self) -> &mlops_core::Signature {
        self.model.signature()
    }

    /// The features the model looks up and computes before it predicts, as its package
    /// records them.
    pub fn features(&self) -> Option<&FeatureSpec> {
        self.model.features()
    }

    /// Adds the model's looked-up and on-demand features to `records` (see
    /// [`FeatureSpec::augment`]), then scores them; a model without features scores
    /// `records` as they are.
    ///
    /// # Errors
    /// The feature errors of [`FeatureSpec::augment`] (a missing key column, an unknown
    /// table) and those of [`score`](Self::score).
    pub fn score_with_features(
        &self,
        records: &DataFrame,
        tables: &FeatureTables,
        functions: &FeatureFunctions,
    ) -> Result<DataFrame> {
        match self.model.features() {
            Some(spec) => self.score(&spec.augment(records, tables, functions)?),
            None => self.score(records),
        }
    }

    /// The version written to `model_version`.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The model that scores.
    pub fn model(&self) -> Arc<dyn Model> {
        Arc::clone(&self.model)
    }

    /// Scores `frame`, chunk by chunk in parallel.
    ///
    /// # Errors
    /// [`Error::Core`] with the schema error naming the column when the input breaks the
    /// model's signature; [`Error::InvalidArgument`] when the input already has an output
    /// column; [`Error::ModelContract`] when the model returns the wrong number of rows.
    pub fn score(&self, frame: &DataFrame) -> Result<DataFrame> {
        let started = std::time::Instant::now();
        let span = tracing::debug_span!(
            "batch",
            model = %self.model_name,
            version = self.version,
            rows = frame.height(),
            chunks = frame.height().div_ceil(self.chunk_rows),
            duration_ms = tracing::field::Empty,
        );
        let scored = span.in_scope(|| self.score_chunks(frame))?;
        let elapsed = started.elapsed();
        span.record("duration_ms", mlops_registry::telemetry::millis(elapsed));
        let model = self.model_name.clone();
        metrics::counter!(telemetry::BATCH_ROWS, "model" => model.clone()).increment(frame.height() as u64);
        metrics::histogram!(telemetry::BATCH_SECONDS, "model" => model).record(elapsed.as_secs_f64());
        Ok(scored)
    }

    fn score_chunks(&self, frame: &DataFrame) -> Result<DataFrame> {
        let outputs = self.outputs(frame)?;
        self.assemble(frame, outputs)
    }

    /// The model's output columns for `frame`, scored chunk by chunk in parallel, with the
    /// row count checked.
    pub(crate) fn outputs(&self, frame: &DataFrame) -> Result<DataFrame> {
        // Check the whole frame once up front, so a bad column is reported by name before
        // any work and regardless of which chunk would have met it first.
        self.model.signature().enforce(&frame.head(Some(0)))?;
        let height = frame.height();
        let offsets: Vec<usize> = (0..height).step_by(self.chunk_rows).collect();
        let predictions: Vec<DataFrame> = offsets
            .par_iter()
            .map(|&offset| {
                let chunk = frame.slice(offset as i64, self.chunk_rows);
                let predicted = self.model.predict(&chunk)?;
                if predicted.height() != chunk.height() {
                    return Err(self.contract(format!(
                        "returned {} rows for {} input rows",
                        predicted.height(),
                        chunk.height()
                    )));
                }
                Ok(predicted)
            })
            .collect::<Result<_>>()?;
        match stack(predictions)? {
            Some(all) => Ok(all),
            None => Ok(self.model.predict(frame)?),
        }
    }

    /// Collects `frame` and scores it.
    ///
    /// # Errors
    /// As [`score`](Self::score), and [`Error::Polars`] when the query fails.
    pub fn score_lazy(&self, frame: LazyFrame) -> Result<DataFrame> {
        self.score(&frame.collect()?)
    }

    /// Reads a Parquet file and scores it.
    ///
    /// # Errors
    /// [`Error::Core`] with the I/O error naming the file, and as [`score`](Self::score).
    pub fn score_parquet(&self, path: &Path) -> Result<DataFrame> {
        self.score(&read_parquet(path)?)
    }

    fn contract(&self, problem: String) -> Error {
        Error::ModelContract { model: self.model_name.clone(), version: self.version, problem }
    }

    fn assemble(&self, input: &DataFrame, outputs: DataFrame) -> Result<DataFrame> {
        let bookkeeping = [PREDICTION, MODEL_NAME, MODEL_VERSION, SCORED_AT];
        for name in outputs.get_column_names().into_iter().map(PlSmallStr::as_str).chain(bookkeeping) {
            if input.column(name).is_ok() {
                return Err(Error::InvalidArgument(format!(
                    "input already has a column `{name}`, which scoring writes; rename or drop it"
                )));
            }
        }
        if outputs.width() == 0 {
            return Err(self.contract("returned no column".to_owned()));
        }
        with_scoring_columns(input, &outputs, &self.model_name, self.version)
    }
}

/// `input` beside the model's `outputs`, then `model_name`, `model_version` and
/// `scored_at` (now): the rows an inference table holds. Outputs without a `prediction`
/// column get one, a copy of the first output sharing its values. Scalar columns, no
/// per-row work.
pub(crate) fn with_scoring_columns(
    input: &DataFrame,
    outputs: &DataFrame,
    model_name: &str,
    version: u64,
) -> Result<DataFrame> {
    let height = input.height();
    let scored_at = chrono::Utc::now().timestamp_millis();
    let mut columns: Vec<Column> = input.columns().to_vec();
    columns.extend(outputs.columns().iter().cloned());
    if outputs.column(PREDICTION).is_err()
        && let Some(first) = outputs.columns().first()
    {
        columns.push(first.clone().with_name(PREDICTION.into()));
    }
    columns.push(Column::new_scalar(MODEL_NAME.into(), Scalar::from(PlSmallStr::from(model_name)), height));
    columns.push(Column::new_scalar(MODEL_VERSION.into(), Scalar::from(version as i64), height));
    let stamp = Column::new_scalar(SCORED_AT.into(), Scalar::from(scored_at), height)
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
    columns.push(stamp);
    Ok(DataFrame::new(height, columns)?)
}

/// Frames of one schema stacked into one contiguous frame; `None` for no frames.
pub(crate) fn stack(frames: impl IntoIterator<Item = DataFrame>) -> PolarsResult<Option<DataFrame>> {
    let mut frames = frames.into_iter();
    let Some(mut all) = frames.next() else { return Ok(None) };
    for frame in frames {
        all.vstack_mut(&frame)?;
    }
    all.rechunk_mut();
    Ok(Some(all))
}
