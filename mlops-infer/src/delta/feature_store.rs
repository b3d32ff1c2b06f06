//! Feature tables kept as Delta tables.

use std::collections::HashMap;

use async_trait::async_trait;
use deltalake::DeltaTableError;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;
use mlops_core::features::{FeatureTable, FeatureTables};
use parking_lot::Mutex;

use super::arrow::frame_to_batches;
use super::inference_table::{scan_frame, write_retrying_creation_races};
use super::location::TableLocation;
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::feature_store::FeatureStore;

/// Table property holding a feature table's key columns (a JSON array).
pub const FEATURE_KEYS_PROPERTY: &str = "mlops.feature.keys";
/// Table property holding a feature table's timestamp column.
pub const FEATURE_TIMESTAMP_PROPERTY: &str = "mlops.feature.timestamp";

/// Feature tables as Delta tables under one root: table `name` lives at `<root>/<name>`,
/// its keys and timestamp column recorded as table properties, so Spark, Polars or DuckDB
/// read the same features and any process can look them up.
///
/// Reads are cached by table version: a lookup against a table that has not changed costs
/// one log check, not a scan.
///
/// ```no_run
/// # async fn run(features: mlops_core::features::FeatureTable) -> mlops_infer::Result<()> {
/// use mlops_infer::{DeltaFeatureStore, FeatureStore, TableLocation};
///
/// let store = DeltaFeatureStore::new(TableLocation::local("/data/features")?);
/// store.write(&features).await?; // a new version of `/data/features/<name>`
/// let tables = store.tables(&[features.name()]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeltaFeatureStore {
    root: TableLocation,
    cache: Mutex<HashMap<String, (u64, FeatureTable)>>,
}

impl DeltaFeatureStore {
    /// A store whose tables live under `root`.
    pub fn new(root: TableLocation) -> Self {
        Self { root, cache: Mutex::new(HashMap::new()) }
    }

    /// Where table `name` lives.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that cannot be a table directory.
    pub fn location(&self, name: &str) -> Result<TableLocation> {
        self.root.child(name)
    }

    /// Replaces the rows of `table` with its current frame in one Delta commit (readers see
    /// the old rows or the new ones, never a mix), creating the table on first write.
    /// Returns the table version written.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the stored table has other keys or another
    /// timestamp column; storage and Delta errors.
    pub async fn write(&self, table: &FeatureTable) -> Result<u64> {
        let location = self.location(table.name())?;
        let keys = serde_json::to_string(table.keys())
            .map_err(|e| Error::InvalidArgument(format!("feature table `{}` keys: {e}", table.name())))?;
        let timestamp = table.timestamp().unwrap_or_default().to_owned();
        let frame = table.frame().clone();
        let batches = off_runtime(move || frame_to_batches(&frame)).await?;
        match location.load().await? {
            Some(existing) => {
                let (stored_keys, stored_timestamp) = described(table.name(), &existing)?;
                if stored_keys != table.keys() || stored_timestamp.as_deref() != table.timestamp() {
                    return Err(Error::InvalidArgument(format!(
                        "feature table `{}` is stored with keys {stored_keys:?} and timestamp {stored_timestamp:?}, \
                         not keys {:?} and timestamp {:?}",
                        table.name(),
                        table.keys(),
                        table.timestamp()
                    )));
                }
            }
            None => create(&location, table.name(), &batches, keys, timestamp).await?,
        }
        let written =
            write_retrying_creation_races(&location, batches, SaveMode::Overwrite, CommitProperties::default(), &[])
                .await?;
        Ok(written.version().unwrap_or_default())
    }

    /// Reads table `name` at its latest version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when there is no such table or it is not a feature table.
    pub async fn read(&self, name: &str) -> Result<FeatureTable> {
        let location = self.location(name)?;
        let Some(table) = location.load().await? else {
            return Err(Error::InvalidArgument(format!("no feature table `{name}` at `{}`", location.url())));
        };
        let version = table.version().unwrap_or_default();
        if let Some((cached, features)) = self.cache.lock().get(name)
            && *cached == version
        {
            return Ok(features.clone());
        }
        let (keys, timestamp) = described(name, &table)?;
        let frame = scan_frame(&table, None).await?;
        let features = FeatureTable::new(name, keys, timestamp.as_deref(), frame)?;
        self.cache.lock().insert(name.to_owned(), (version, features.clone()));
        Ok(features)
    }
}

#[async_trait]
impl FeatureStore for DeltaFeatureStore {
    async fn tables(&self, names: &[&str]) -> Result<FeatureTables> {
        let mut tables = FeatureTables::new();
        for name in names {
            tables.insert(self.read(name).await?);
        }
        Ok(tables)
    }
}

/// Creates the (empty) table with its description as table properties. Delta's writers
/// refuse properties they do not know, so the table is created on its own first; a
/// concurrent creation of the same table is as good as ours.
async fn create(
    location: &TableLocation,
    name: &str,
    batches: &[RecordBatch],
    keys: String,
    timestamp: String,
) -> Result<()> {
    let Some(first) = batches.first() else {
        return Err(Error::InvalidArgument(format!("feature table `{name}` has no columns to create a table with")));
    };
    let failed = |e| Error::delta(format!("creating feature table `{name}` at `{}`", location.url()), e);
    let schema: StructType = first.schema().try_into_kernel().map_err(|e| failed(e.into()))?;
    let created = CreateBuilder::new()
        .with_log_store(location.log_store()?)
        .with_columns(schema.fields().cloned())
        .with_configuration([(FEATURE_KEYS_PROPERTY, Some(keys)), (FEATURE_TIMESTAMP_PROPERTY, Some(timestamp))])
        .with_raise_if_key_not_exists(false)
        .with_save_mode(SaveMode::Ignore)
        .await;
    match created {
        Ok(_) | Err(DeltaTableError::VersionAlreadyExists(_)) => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

/// The keys and timestamp column a stored feature table records.
fn described(name: &str, table: &deltalake::DeltaTable) -> Result<(Vec<String>, Option<String>)> {
    let not_features = |why: &str| Error::InvalidArgument(format!("table `{name}` is not a feature table: {why}"));
    let snapshot = table.snapshot().map_err(|e| Error::delta(format!("reading feature table `{name}`"), e))?;
    let configuration = snapshot.metadata().configuration();
    let keys = configuration
        .get(FEATURE_KEYS_PROPERTY)
        .ok_or_else(|| not_features(&format!("no `{FEATURE_KEYS_PROPERTY}` property")))?;
    let keys: Vec<String> = serde_json::from_str(keys)
        .map_err(|e| not_features(&format!("`{FEATURE_KEYS_PROPERTY}` is not a list of columns: {e}")))?;
    let timestamp = configuration.get(FEATURE_TIMESTAMP_PROPERTY).filter(|t| !t.is_empty()).cloned();
    Ok((keys, timestamp))
}
