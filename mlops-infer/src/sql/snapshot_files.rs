//! A Delta table's snapshot as the plain Parquet files that hold its rows, for engines whose
//! workers read Parquet but not Delta's log (a Ballista executor).

use std::sync::Arc;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use deltalake::datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::delta::TableLocation;
use crate::error::{Error, Result};

/// Reader features whose files a plain Parquet read honours: timestamps without a time zone
/// are a column type, the others concern the log, not the files. `deletionVectors` and
/// `columnMapping` are checked on their own, by what the table actually uses.
const PLAIN_READER_FEATURES: [&str; 5] =
    ["timestampNtz", "v2Checkpoint", "vacuumProtocolCheck", "deletionVectors", "columnMapping"];

/// One data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// The file's full URL (`s3://bucket/table/part-....parquet`).
    pub url: String,
    /// Its size in bytes, as the log records it.
    pub size: u64,
}

/// One version of a Delta table as the Parquet files that hold its rows, read with
/// [`TableLocation::snapshot_files`]: a table any DataFusion session reads with its Parquet
/// reader alone, so that the processes of a distributed engine read the same version
/// without opening the log. Files added after the snapshot are not read, whatever a writer
/// commits meanwhile.
///
/// Only tables whose files hold exactly their rows can be read so. A table with deletion
/// vectors on any file, column mapping, partition columns (whose values live in the log) or
/// another reader feature that changes what the files mean is refused with an error naming
/// the feature.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    table: String,
    version: u64,
    schema: SchemaRef,
    files: Vec<DataFile>,
}

impl TableLocation {
    /// The table's current version as its Parquet files.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no table exists there, or naming the feature that a
    /// plain Parquet read cannot honour; [`Error::Delta`] when the log cannot be read.
    pub async fn snapshot_files(&self) -> Result<SnapshotFiles> {
        let table_name = self.url_without_secrets();
        let Some(table) = self.load().await? else {
            return Err(Error::InvalidArgument(format!("no Delta table at `{table_name}`")));
        };
        let failed = |e| Error::delta(format!("reading table `{table_name}`"), e);
        let snapshot = table.snapshot().map_err(failed)?;
        let refuse = |feature: String| {
            Error::InvalidArgument(format!(
                "table `{table_name}` uses {feature}, which a read of its Parquet files alone cannot honour; \
                 read it through Delta Lake (`TableLocation::register_in`) on one machine instead"
            ))
        };
        if let Some(features) = snapshot.protocol().reader_features() {
            for feature in features.iter().map(ToString::to_string) {
                if !PLAIN_READER_FEATURES.contains(&feature.as_str()) {
                    return Err(refuse(format!("the reader feature `{feature}`")));
                }
            }
        }
        let metadata = snapshot.metadata();
        if let Some(mode) = metadata.configuration().get("delta.columnMapping.mode")
            && !mode.eq_ignore_ascii_case("none")
        {
            return Err(refuse(format!("column mapping (mode `{mode}`)")));
        }
        let partitions = metadata.partition_columns();
        if !partitions.is_empty() {
            return Err(refuse(format!("partition columns ({})", partitions.join(", "))));
        }
        let schema = snapshot.snapshot().arrow_schema();
        let log_store = table.log_store();
        // Files are named relative to the table's directory.
        let mut directory = self.url().clone();
        if !directory.path().ends_with('/') {
            directory.set_path(&format!("{}/", directory.path()));
        }
        let mut views = snapshot.snapshot().file_views(log_store.as_ref(), None);
        let mut files = Vec::new();
        while let Some(view) = views.try_next().await.map_err(failed)? {
            // The log holds paths URL-encoded; this is the object's name below the table.
            let path = view.path();
            if view.deletion_vector_descriptor().is_some() {
                return Err(refuse(format!("a deletion vector on file `{path}`")));
            }
            let size = u64::try_from(view.size()).map_err(|_| {
                Error::InvalidArgument(format!("table `{table_name}` records size {} for file `{path}`", view.size()))
            })?;
            if path.contains("://") || path.starts_with('/') {
                return Err(refuse(format!("a file outside its directory (`{path}`)")));
            }
            let mut url = directory.clone();
            // Each part is encoded for the URL, so that `#`, `?` or `%` in a name stay in it.
            url.path_segments_mut()
                .map_err(|()| Error::InvalidArgument(format!("table url `{table_name}` cannot hold a path")))?
                .pop_if_empty()
                .extend(path.split('/'));
            files.push(DataFile { url: url.to_string(), size });
        }
        // Newest first from the log; oldest first reads in the order rows were written.
        files.reverse();
        Ok(SnapshotFiles { table: table_name, version: table.version().unwrap_or_default(), schema, files })
    }
}

impl SnapshotFiles {
    /// The table version these files are.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The table's columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The data files, oldest first.
    pub fn files(&self) -> &[DataFile] {
        &self.files
    }

    /// Registers these files in `ctx` under `name`, as a Parquet table with the snapshot's
    /// columns. The session needs the table's object store (a local table needs nothing;
    /// [`TableLocation::register_store_in`] registers any other); so does every process that
    /// runs part of a plan reading it.
    ///
    /// # Errors
    /// [`Error::Query`] for a file URL or a name the session refuses.
    pub fn register_in(&self, ctx: &SessionContext, name: &str) -> Result<()> {
        let context = || format!("registering the files of table `{}` as `{name}`", self.table);
        let urls = self
            .files
            .iter()
            .map(|file| ListingTableUrl::parse(&file.url))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::query(context(), e))?;
        // Delta names its files freely: take every listed file, whatever its extension.
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::clone(&self.schema));
        let table = ListingTable::try_new(config).map_err(|e| Error::query(context(), e))?;
        ctx.register_table(name, Arc::new(table)).map_err(|e| Error::query(context(), e))?;
        Ok(())
    }
}

impl TableLocation {
    /// Registers the table's object store in `ctx`, so that plans reading its files (by URL)
    /// find them.
    pub fn register_store_in(&self, ctx: &SessionContext) {
        let mut root = self.url().clone();
        root.set_path("");
        ctx.register_object_store(&root, Arc::clone(self.store()));
    }
}
