//! Queries into inference tables, and Delta tables into sessions.

use std::sync::Arc;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::prelude::SessionContext;

use crate::blocking::off_runtime;
use crate::delta::arrow::batches_to_frame;
use crate::delta::{Appended, InferenceTable, TableLocation};
use crate::error::{Error, Result};

impl InferenceTable {
    /// Runs `query` (a [`score`](super::ModelFunctions::score) of some input, or SQL selecting
    /// from the table function `score`) and appends its rows in one commit, as
    /// [`append`](Self::append) does. The rows are held in memory until they are committed.
    ///
    /// # Errors
    /// [`Error::Query`] when the query fails, an error of this crate raised inside it (a
    /// schema violation naming the column) as it was; then as [`append`](Self::append).
    pub async fn append_query(&self, query: DataFrame) -> Result<Appended> {
        let frame = collect_frame(query).await?;
        self.append(&frame).await
    }

    /// [`append_query`](Self::append_query) committing `transaction` with the rows, as
    /// [`append_in_transaction`](Self::append_in_transaction) does: a job that records its
    /// id and run this way appends once however often it is re-run. `None` when the table
    /// records that version already (the query is not run then). A query without rows
    /// appends and records nothing, so a re-run runs it again.
    ///
    /// # Errors
    /// As [`append_query`](Self::append_query).
    pub async fn append_query_in_transaction(
        &self,
        query: DataFrame,
        app_id: &str,
        version: i64,
    ) -> Result<Option<Appended>> {
        if self.transaction_version(app_id).await?.is_some_and(|recorded| recorded >= version) {
            return Ok(None);
        }
        let frame = collect_frame(query).await?;
        self.append_in_transaction(&frame, app_id, version).await
    }
}

/// The query's rows as one frame.
async fn collect_frame(query: DataFrame) -> Result<polars::prelude::DataFrame> {
    let schema: SchemaRef = Arc::new(query.schema().as_arrow().clone());
    let batches = query.collect().await.map_err(|e| Error::query("running a query", e))?;
    off_runtime(move || batches_to_frame(&schema, &batches)).await
}

impl TableLocation {
    /// Registers the table, as it is now, in `ctx` under `name` (through Delta Lake's
    /// DataFusion provider, which prunes files by their statistics): SQL and DataFrame plans
    /// then read it like any table.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no table exists there; [`Error::Delta`] when it cannot
    /// be read; [`Error::Query`] for a name the session refuses.
    pub async fn register_in(&self, ctx: &SessionContext, name: &str) -> Result<()> {
        let Some(table) = self.load().await? else {
            return Err(Error::InvalidArgument(format!("no Delta table at `{}`", self.url_without_secrets())));
        };
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| Error::delta(format!("reading table `{}`", self.url_without_secrets()), e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| Error::query(format!("reading table `{}`", self.url_without_secrets()), e))?;
        ctx.register_table(name, provider).map_err(|e| Error::query(format!("registering table `{name}`"), e))?;
        Ok(())
    }
}
