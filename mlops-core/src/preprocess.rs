//! Fitted, serializable preprocessing that turns Polars columns into a feature matrix.
//!
//! Fit once on training data, serialize with the model, and run the same transform at
//! training and at inference: there is one code path, so no train/serve skew.

mod column_transformer;
mod encoded;
mod one_hot;
mod standard_scaler;

pub use column_transformer::{ColumnTransformer, ColumnTransformerBuilder, Transform};
pub use encoded::{EncodedColumn, EncodedFeatures, UNKNOWN_CATEGORY};
pub use one_hot::{Categories, OneHotEncoder};
pub use standard_scaler::StandardScaler;

use polars::prelude::Column;

use crate::error::{Error, Result};

fn no_nulls(column: &Column, what: &str) -> Result<()> {
    let nulls = column.null_count();
    if nulls > 0 {
        return Err(Error::Schema {
            column: column.name().to_string(),
            expected: format!("non-null values for {what}"),
            found: format!("{nulls} null value{}", if nulls == 1 { "" } else { "s" }),
        });
    }
    Ok(())
}
