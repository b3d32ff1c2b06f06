use polars::prelude::{Column, DataType};
use serde::{Deserialize, Serialize};

use super::no_nulls;
use crate::error::{Error, Result};

/// Standard scaling of a numeric column: `(x - mean) / std`, with the population standard
/// deviation, and a constant column left unscaled (as scikit-learn's `StandardScaler`).
///
/// ```
/// use mlops_core::preprocess::StandardScaler;
/// use polars::prelude::*;
///
/// let scaler = StandardScaler::fit(&Column::new("Amount".into(), [1.0, 3.0]))?;
/// assert_eq!((scaler.mean(), scaler.scale()), (2.0, 1.0));
/// # Ok::<(), mlops_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    column: String,
    mean: f64,
    scale: f64,
}

impl StandardScaler {
    /// Learns mean and standard deviation of a numeric column.
    ///
    /// # Errors
    /// [`Error::Schema`] for a non-numeric column or one with nulls; [`Error::Fit`] for an
    /// empty one.
    pub fn fit(column: &Column) -> Result<Self> {
        let values = numeric(column)?;
        let values = values.f64()?;
        let n = values.len();
        if n == 0 {
            return Err(Error::Fit {
                model: format!("standard scaler for `{}`", column.name()),
                reason: "the column is empty".into(),
            });
        }
        let mean = values.no_null_iter().sum::<f64>() / n as f64;
        let variance = values.no_null_iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let std = variance.sqrt();
        let scale = if std > f64::EPSILON * mean.abs().max(1.0) { std } else { 1.0 };
        Ok(Self { column: column.name().to_string(), mean, scale })
    }

    /// The input column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Mean learned at fit.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Divisor learned at fit (standard deviation, or 1 for a constant column).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The scaled value of every row.
    pub(crate) fn values(&self, column: &Column) -> Result<Vec<f64>> {
        let values = numeric(column)?;
        let (mean, inv_scale) = (self.mean, 1.0 / self.scale);
        Ok(values.f64()?.no_null_iter().map(|v| (v - mean) * inv_scale).collect())
    }
}

/// The column as non-null f64, or a schema error naming it.
pub(super) fn numeric(column: &Column) -> Result<Column> {
    if !column.dtype().is_primitive_numeric() {
        return Err(Error::Schema {
            column: column.name().to_string(),
            expected: "a numeric column".into(),
            found: column.dtype().to_string(),
        });
    }
    no_nulls(column, "a numeric feature")?;
    Ok(column.cast(&DataType::Float64)?)
}
