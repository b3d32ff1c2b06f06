//! The models a query may call, each pinned to one version before planning.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::SessionContext;
use mlops_core::{FlavorRegistry, ModelUri, Schema};
use mlops_registry::{Registry, RegistryExt};
use polars::prelude::{Column, DataFrame, IntoColumn, Series};

use super::functions::ModelFunctions;
use super::version_loader::VersionLoader;
use crate::batch::BatchScorer;
use crate::delta::arrow::frame_to_arrow;
use crate::error::{Error, Result};

/// One model version a query scores with: the URI it was asked for, the version that URI
/// designated when it was pinned, and the columns it takes and returns.
#[derive(Debug)]
pub struct PinnedModel {
    uri: ModelUri,
    scorer: BatchScorer,
    inputs: Vec<String>,
    outputs: SchemaRef,
}

impl PinnedModel {
    /// Pins `scorer`'s model and version under `uri`, learning its output columns from a
    /// prediction on no rows (or, for a model that refuses those, from `example`, or from the
    /// outputs its signature declares).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a model without an input signature (arguments could
    /// not be matched to columns), or one whose output columns cannot be learnt.
    pub fn new(uri: ModelUri, scorer: BatchScorer, example: Option<&DataFrame>) -> Result<Self> {
        let signature = scorer.signature();
        let inputs: Vec<String> = if signature.inputs.is_tensor_schema() {
            signature.inputs.tensors().iter().map(|t| t.column_name().to_owned()).collect()
        } else {
            signature.inputs.columns().iter().map(|c| c.name.clone()).collect()
        };
        if inputs.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "model `{uri}` has no input signature, so arguments cannot be matched to its columns; log it with one"
            )));
        }
        let outputs = learn_outputs(&uri, &scorer, example)?;
        let (outputs, _) = frame_to_arrow(&outputs)?;
        Ok(Self { uri, scorer, inputs, outputs })
    }

    /// The URI the model was pinned under (an alias stays an alias here).
    pub fn uri(&self) -> &ModelUri {
        &self.uri
    }

    /// The registered model's name.
    pub fn name(&self) -> &str {
        self.scorer.model_name()
    }

    /// The version every row of a query is scored with.
    pub fn version(&self) -> u64 {
        self.scorer.version()
    }

    /// The signature's input columns, in the order positional arguments fill them.
    pub fn input_columns(&self) -> &[String] {
        &self.inputs
    }

    /// The model's output columns, as Arrow fields.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.outputs
    }

    pub(crate) fn scorer(&self) -> &BatchScorer {
        &self.scorer
    }
}

/// The model's outputs for no rows: their names and types.
fn learn_outputs(uri: &ModelUri, scorer: &BatchScorer, example: Option<&DataFrame>) -> Result<DataFrame> {
    let refused = match empty_frame(&scorer.signature().inputs).and_then(|frame| scorer.outputs(&frame)) {
        Ok(outputs) if outputs.width() > 0 => return Ok(outputs),
        Ok(_) => "it returned no column".to_owned(),
        Err(e) => e.to_string(),
    };
    if let Some(example) = example
        && let Ok(outputs) = scorer.outputs(example)
        && outputs.width() > 0
    {
        return Ok(outputs.head(Some(0)));
    }
    let declared = &scorer.signature().outputs;
    if !declared.is_empty() {
        return empty_frame(declared);
    }
    Err(Error::InvalidArgument(format!(
        "cannot learn the output columns of model `{uri}`: a prediction on no rows failed ({refused}), and its signature declares no outputs"
    )))
}

/// A frame without rows holding the columns of `schema`.
fn empty_frame(schema: &Schema) -> Result<DataFrame> {
    let columns: Vec<Column> = if schema.is_tensor_schema() {
        schema
            .tensors()
            .iter()
            .map(|t| Series::new_empty(t.column_name().into(), &t.polars_dtype()).into_column())
            .collect()
    } else {
        schema
            .columns()
            .iter()
            .map(|c| Series::new_empty(c.name.as_str().into(), &c.dtype.polars_dtype()).into_column())
            .collect()
    };
    Ok(DataFrame::new(0, columns)?)
}

/// The models SQL and DataFusion plans may score with, each resolved in a registry and pinned
/// to one version before any query is planned: every partition of a query, on any thread,
/// scores with the same version even if the alias moves meanwhile.
///
/// [`register`](Self::register) makes them callable in a session; a session that should see
/// an alias's new version pins it again and registers again (queries planned before keep the
/// version they were planned with).
///
/// ```
/// use mlops_core::{FlavorRegistry, TabularClassifierParams};
/// use mlops_infer::sql::ModelCatalog;
/// use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, SetAlias};
/// use mlops_infer::sql::datafusion::prelude::SessionContext;
/// use polars::prelude::*;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
/// let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
/// let registry = MemoryRegistry::new();
/// let name: mlops_core::ModelName = "fraud".parse()?;
/// registry.create_model(CreateModel::new(name.clone())).await?;
/// registry.create_version(CreateVersion::new(name.clone(), model.package(None)?)).await?;
/// registry.set_alias(SetAlias::new(name, "champion", 1)).await?;
///
/// let mut catalog = ModelCatalog::new();
/// catalog.pin(&registry, &"models:/fraud@champion".parse()?, &FlavorRegistry::with_builtins()).await?;
/// let ctx = SessionContext::new();
/// catalog.register(&ctx);
///
/// ctx.sql("CREATE TABLE transactions (id INT, amount DOUBLE) AS VALUES (1, 1.5), (2, 8.5)").await?;
/// let scored = ctx
///     .sql("SELECT id, predict('models:/fraud@champion', amount) AS p, model_version('models:/fraud@champion') AS v
///           FROM transactions ORDER BY id")
///     .await?
///     .collect()
///     .await?;
/// assert_eq!(scored[0].num_rows(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    models: HashMap<String, Arc<PinnedModel>>,
    loader: Option<Arc<VersionLoader>>,
}

impl ModelCatalog {
    /// A catalog without models.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog that also loads, from `registry`, any version URI (`models:/<name>/<version>`)
    /// a plan names that is not pinned, on first use: the catalog of a process that runs
    /// plans other processes pinned, such as a Ballista scheduler or executor. Plans name the
    /// version each alias was pinned to where they were planned, so every process scores with
    /// that version. Aliases are not loaded on demand (they could have moved meanwhile); they
    /// can still be pinned.
    ///
    /// A load blocks the function call that asked for it (once per version and process).
    ///
    /// # Errors
    /// [`Error::Io`] when the loader's runtime cannot start.
    pub fn loading(registry: Arc<dyn Registry>, flavors: FlavorRegistry) -> Result<Self> {
        Ok(Self { models: HashMap::new(), loader: Some(Arc::new(VersionLoader::new(registry, flavors)?)) })
    }

    /// Resolves `uri` in `registry`, loads the version it designates now, and pins it: queries
    /// naming `uri`, or that version's own URI (`models:/<name>/<version>`), score with it.
    /// Pinning a URI again replaces what it held.
    ///
    /// # Errors
    /// [`Error::Registry`] naming the unknown model, version or alias, or the damaged
    /// package; as [`PinnedModel::new`].
    pub async fn pin(
        &mut self,
        registry: &dyn Registry,
        uri: &ModelUri,
        flavors: &FlavorRegistry,
    ) -> Result<Arc<PinnedModel>> {
        let loaded = registry.load_model(uri, flavors).await?;
        let example = loaded.input_example.clone();
        let scorer = BatchScorer::from(loaded);
        let uri = uri.clone();
        let pinned = crate::blocking::off_runtime(move || PinnedModel::new(uri, scorer, example.as_ref())).await?;
        Ok(self.insert(pinned))
    }

    /// Pins a model that no registry holds (or was loaded already) under the URI it carries.
    pub fn insert(&mut self, pinned: PinnedModel) -> Arc<PinnedModel> {
        let pinned = Arc::new(pinned);
        if let Ok(version) = ModelUri::version(pinned.name(), pinned.version()) {
            self.models.insert(version.to_string(), Arc::clone(&pinned));
        }
        self.models.insert(pinned.uri.to_string(), Arc::clone(&pinned));
        pinned
    }

    /// The model pinned under `uri` (written as in a query: it is parsed and compared in its
    /// canonical form), or, in a [`loading`](Self::loading) catalog, the version it names.
    ///
    /// # Errors
    /// [`Error::Core`] for a malformed URI; [`Error::InvalidArgument`] for one not pinned;
    /// in a loading catalog, the error of loading the version.
    pub fn get(&self, uri: &str) -> Result<Arc<PinnedModel>> {
        let parsed: ModelUri = uri.parse()?;
        if let Some(pinned) = self.models.get(&parsed.to_string()) {
            return Ok(Arc::clone(pinned));
        }
        if let Some(loader) = &self.loader {
            return loader.get(&parsed);
        }
        let mut pinned: Vec<&str> = self.models.keys().map(String::as_str).collect();
        pinned.sort_unstable();
        Err(Error::InvalidArgument(format!(
            "model `{parsed}` is not pinned in the catalog (pinned: {}); pin it with `ModelCatalog::pin` before planning",
            if pinned.is_empty() { "none".to_owned() } else { pinned.join(", ") }
        )))
    }

    /// Whether no model is pinned (a [`loading`](Self::loading) catalog may still load some).
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Registers `predict`, `model_version` and the table function `score` in `ctx`, over the
    /// models pinned now; returns them, for building DataFrame plans.
    pub fn register(&self, ctx: &SessionContext) -> ModelFunctions {
        let functions = ModelFunctions::new(Arc::new(self.clone()));
        functions.register(ctx);
        functions
    }
}
