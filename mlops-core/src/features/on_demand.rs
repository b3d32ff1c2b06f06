//! On-demand features: values computed from a record's own columns (and looked-up
//! features) by named functions, at training and at scoring alike.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use polars::prelude::{Column, DataFrame, DataType, Float64Chunked, IntoColumn};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One on-demand feature: a function, the columns bound to its parameters, and the output
/// column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnDemandFeature {
    /// The function's registered name.
    pub function: String,
    /// Column bound to each parameter.
    pub input_bindings: BTreeMap<String, String>,
    /// The column the feature is written to.
    pub output: String,
}

impl OnDemandFeature {
    /// `function` writing `output`; bind its parameters with [`bind`](Self::bind).
    pub fn new(function: impl Into<String>, output: impl Into<String>) -> Self {
        Self { function: function.into(), input_bindings: BTreeMap::new(), output: output.into() }
    }

    /// Binds the function's `parameter` to the column `column`.
    #[must_use]
    pub fn bind(mut self, parameter: impl Into<String>, column: impl Into<String>) -> Self {
        self.input_bindings.insert(parameter.into(), column.into());
        self
    }
}

/// A function that computes a feature column from input columns.
///
/// Implementations work on whole columns (no per-row allocation) and must be deterministic:
/// training and scoring call the same function on the same values.
pub trait FeatureFunction: Send + Sync {
    /// The name packages refer to it by.
    fn name(&self) -> &str;

    /// Its parameters, in the order [`compute`](Self::compute) receives the bound columns.
    fn parameters(&self) -> &[&str];

    /// Computes the feature from the bound columns (same height, parameter order). The
    /// result is renamed to the feature's output name.
    ///
    /// # Errors
    /// When an input column has a type the function cannot use; the error names it.
    fn compute(&self, inputs: &[&Column]) -> Result<Column>;
}

/// `max_difference_ratio(max, value)` = round((max - value) / max, 2): how far a value is
/// below the largest recent one, as a share of it. Null where either input is null or `max`
/// is zero.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxDifferenceRatio;

impl FeatureFunction for MaxDifferenceRatio {
    fn name(&self) -> &str {
        "max_difference_ratio"
    }

    fn parameters(&self) -> &[&str] {
        &["max", "value"]
    }

    fn compute(&self, inputs: &[&Column]) -> Result<Column> {
        let [max, value] = inputs else {
            return Err(Error::InvalidArgument("max_difference_ratio takes two columns".into()));
        };
        let (max, value) = (as_f64(max)?, as_f64(value)?);
        let (max, value) = (max.f64()?, value.f64()?);
        let ratio: Float64Chunked = max
            .iter()
            .zip(value.iter())
            .map(|(max, value)| match (max, value) {
                (Some(max), Some(value)) if max != 0.0 => Some(((max - value) / max * 100.0).round() / 100.0),
                _ => None,
            })
            .collect();
        Ok(ratio.into_column())
    }
}

fn as_f64(column: &Column) -> Result<Column> {
    if !column.dtype().is_primitive_numeric() {
        return Err(Error::Schema {
            column: column.name().to_string(),
            expected: "a numeric column".into(),
            found: column.dtype().to_string(),
        });
    }
    Ok(column.cast(&DataType::Float64)?)
}

/// The on-demand functions a process knows, by name.
#[derive(Clone)]
pub struct FeatureFunctions {
    functions: BTreeMap<String, Arc<dyn FeatureFunction>>,
}

impl FeatureFunctions {
    /// No functions.
    pub fn empty() -> Self {
        Self { functions: BTreeMap::new() }
    }

    /// The built-in functions: [`MaxDifferenceRatio`].
    pub fn with_builtins() -> Self {
        let mut functions = Self::empty();
        functions.register(Arc::new(MaxDifferenceRatio));
        functions
    }

    /// Adds `function`, replacing one of the same name.
    pub fn register(&mut self, function: Arc<dyn FeatureFunction>) -> &mut Self {
        self.functions.insert(function.name().to_owned(), function);
        self
    }

    /// Checks that `feature` names a known function and binds exactly its parameters.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the unknown function or the unbound or unknown
    /// parameter.
    pub fn check(&self, feature: &OnDemandFeature) -> Result<&dyn FeatureFunction> {
        let function = self.functions.get(&feature.function).ok_or_else(|| {
            let known: Vec<&str> = self.functions.keys().map(String::as_str).collect();
            Error::InvalidArgument(format!(
                "on-demand feature `{}` uses unknown function `{}` (known: {})",
                feature.output,
                feature.function,
                known.join(", ")
            ))
        })?;
        let parameters = function.parameters();
        if let Some(unbound) = parameters.iter().find(|p| !feature.input_bindings.contains_key(**p)) {
            return Err(Error::InvalidArgument(format!(
                "on-demand feature `{}`: parameter `{unbound}` of `{}` is not bound to a column",
                feature.output, feature.function
            )));
        }
        if let Some(extra) = feature.input_bindings.keys().find(|b| !parameters.contains(&b.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "on-demand feature `{}`: `{}` has no parameter `{extra}` (parameters: {})",
                feature.output,
                feature.function,
                parameters.join(", ")
            )));
        }
        Ok(function.as_ref())
    }

    /// Computes `feature` over `frame`, named as its output.
    ///
    /// # Errors
    /// The errors of [`check`](Self::check), [`Error::MissingColumns`] naming bound
    /// columns `frame` lacks, and the function's own errors.
    pub fn compute(&self, feature: &OnDemandFeature, frame: &DataFrame) -> Result<Column> {
        let function = self.check(feature)?;
        let bound: Vec<&str> = function.parameters().iter().map(|p| feature.input_bindings[*p].as_str()).collect();
        let missing: Vec<String> =
            bound.iter().filter(|c| !frame.schema().contains(c)).map(|c| (*c).to_owned()).collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let inputs = bound.iter().map(|c| frame.column(c)).collect::<std::result::Result<Vec<_>, _>>()?;
        let column = function.compute(&inputs)?;
        if column.len() != frame.height() {
            return Err(Error::InvalidArgument(format!(
                "on-demand function `{}` returned {} values for {} rows",
                feature.function,
                column.len(),
                frame.height()
            )));
        }
        Ok(column.with_name(feature.output.as_str().into()))
    }
}

impl Default for FeatureFunctions {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl fmt::Debug for FeatureFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.functions.keys()).finish()
    }
}
