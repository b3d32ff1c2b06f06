//! The functions a catalog registers in a session, and the DataFrame expressions that call
//! them.

use std::sync::Arc;

use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::logical_expr::{Expr, ScalarUDF, lit};
use deltalake::datafusion::prelude::SessionContext;

use super::catalog::ModelCatalog;
use super::predict::{ModelVersionFunction, PredictFunction};
use super::score_table::{SCORE_TABLE_FUNCTION, ScoreTableFunction, scored_plan};
use crate::error::{Error, Result};

/// `predict`, `model_version` and `score` over one snapshot of a [`ModelCatalog`], as
/// [`ModelCatalog::register`] put them in a session.
#[derive(Debug, Clone)]
pub struct ModelFunctions {
    catalog: Arc<ModelCatalog>,
    predict: Arc<ScalarUDF>,
    model_version: Arc<ScalarUDF>,
}

impl ModelFunctions {
    pub(crate) fn new(catalog: Arc<ModelCatalog>) -> Self {
        let predict = Arc::new(ScalarUDF::new_from_impl(PredictFunction::new(Arc::clone(&catalog))));
        let model_version = Arc::new(ScalarUDF::new_from_impl(ModelVersionFunction::new(Arc::clone(&catalog))));
        Self { catalog, predict, model_version }
    }

    /// `predict` and `model_version`, for registries of functions other than a session's.
    #[cfg(feature = "ballista")]
    pub(crate) fn scalar_functions(&self) -> [Arc<ScalarUDF>; 2] {
        [Arc::clone(&self.predict), Arc::clone(&self.model_version)]
    }

    pub(crate) fn register(&self, ctx: &SessionContext) {
        ctx.register_udf(self.predict.as_ref().clone());
        ctx.register_udf(self.model_version.as_ref().clone());
        ctx.register_udtf(
            SCORE_TABLE_FUNCTION,
            Arc::new(ScoreTableFunction::new(Arc::clone(&self.catalog), Arc::clone(&self.predict))),
        );
    }

    /// The models these functions score with.
    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    /// `predict(uri, args...)`: positional arguments fill the signature's columns in order;
    /// one `named_struct` argument fills them by name.
    pub fn predict(&self, uri: &str, args: impl IntoIterator<Item = Expr>) -> Expr {
        self.predict.call(std::iter::once(lit(uri)).chain(args).collect())
    }

    /// `model_version(uri)`: the version the query scores with.
    pub fn model_version(&self, uri: &str) -> Expr {
        self.model_version.call(vec![lit(uri)])
    }

    /// `frame` scored by the model pinned under `uri`: its columns, the model's outputs,
    /// `prediction`, `model_name`, `model_version` and `scored_at` (when this is called, one
    /// stamp for every row), as the SQL table function `score(uri, table)` returns them.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a model not pinned, an input without any of its
    /// columns, or one that already has a column scoring writes.
    pub fn score(&self, uri: &str, frame: DataFrame) -> Result<DataFrame> {
        let (state, plan) = frame.into_parts();
        let plan = scored_plan(&self.catalog, &self.predict, uri, plan)
            .map_err(|e| Error::query("planning a scored frame", e))?;
        Ok(DataFrame::new(state, plan))
    }
}
