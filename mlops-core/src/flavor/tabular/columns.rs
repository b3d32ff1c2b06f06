//! The columns a tabular model reads: its feature columns and its target.

use ndarray::Array2;
use polars::prelude::{Column, DataFrame};

use super::PREDICTION;
use crate::error::{Error, Result};
use crate::preprocess::ColumnTransformer;
use crate::signature::{ColSpec, ColumnType, Schema, Signature};

/// Which columns feed a tabular model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureColumns {
    /// One-hot encoded columns (string or integer).
    pub categorical: Vec<String>,
    /// Standard-scaled numeric columns.
    pub numeric: Vec<String>,
}

impl FeatureColumns {
    pub(super) fn check(&self, target: &str) -> Result<()> {
        if self.categorical.is_empty() && self.numeric.is_empty() {
            return Err(Error::InvalidArgument("a tabular model needs at least one feature column".into()));
        }
        if self.categorical.iter().chain(&self.numeric).any(|c| c == target) {
            return Err(Error::InvalidArgument(format!("the target column `{target}` cannot also be a feature")));
        }
        Ok(())
    }

    /// Signature (from the training frame's types) and fitted transformer.
    pub(super) fn fit(&self, train: &DataFrame) -> Result<(Signature, ColumnTransformer, Array2<f64>)> {
        let names: Vec<&String> = self.categorical.iter().chain(&self.numeric).collect();
        let missing: Vec<String> = names.iter().filter(|c| train.column(c).is_err()).map(|c| (*c).clone()).collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let inputs = Schema::infer(&train.select(names.iter().map(|s| s.as_str()))?)?;
        let signature =
            Signature::new(inputs).with_outputs(Schema::new(vec![ColSpec::new(PREDICTION, ColumnType::Double)])?);
        let transformer = ColumnTransformer::builder()
            .one_hot(self.categorical.iter().cloned())
            .standardize(self.numeric.iter().cloned())
            .fit(train)?;
        let features = transformer.transform(train)?;
        Ok((signature, transformer, features))
    }
}

pub(super) fn target_column<'a>(train: &'a DataFrame, target: &str) -> Result<&'a Column> {
    let column = train.column(target).map_err(|_| Error::MissingColumns { columns: vec![target.to_owned()] })?;
    let nulls = column.null_count();
    if nulls > 0 {
        return Err(Error::Schema {
            column: target.to_owned(),
            expected: "a target without nulls".into(),
            found: format!("{nulls} null values"),
        });
    }
    Ok(column)
}
