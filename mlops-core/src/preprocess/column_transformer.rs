use ndarray::Array2;
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use super::standard_scaler::numeric;
use super::{EncodedColumn, EncodedFeatures, OneHotEncoder, StandardScaler};
use crate::error::{Error, Result};

/// One fitted step of a [`ColumnTransformer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transform", rename_all = "snake_case")]
pub enum Transform {
    /// One-hot encode a categorical column.
    OneHot(OneHotEncoder),
    /// Standard-scale a numeric column.
    Standardize(StandardScaler),
    /// Copy a numeric column as is.
    Passthrough {
        /// The input column.
        column: String,
    },
}

impl Transform {
    fn column(&self) -> &str {
        match self {
            Self::OneHot(e) => e.column(),
            Self::Standardize(s) => s.column(),
            Self::Passthrough { column } => column,
        }
    }

    fn width(&self) -> usize {
        match self {
            Self::OneHot(e) => e.width(),
            Self::Standardize(_) | Self::Passthrough { .. } => 1,
        }
    }

    fn encode(&self, column: &Column, offset: usize) -> Result<EncodedColumn> {
        Ok(match self {
            Self::OneHot(e) => EncodedColumn::OneHot { offset, width: e.width(), codes: e.codes(column)? },
            Self::Standardize(s) => EncodedColumn::Dense { offset, values: s.values(column)? },
            Self::Passthrough { .. } => {
                EncodedColumn::Dense { offset, values: numeric(column)?.f64()?.no_null_iter().collect() }
            }
        })
    }
}

/// Fitted transforms over named columns that write straight into one row-major `f64`
/// feature matrix, in step order.
///
/// ```
/// use mlops_core::preprocess::ColumnTransformer;
/// use polars::prelude::*;
///
/// let train = df!(
///     "Product" => ["Product A", "Product B", "Product A"],
///     "Amount" => [10.0, 20.0, 30.0],
/// )?;
/// let transformer = ColumnTransformer::builder().one_hot(["Product"]).standardize(["Amount"]).fit(&train)?;
/// assert_eq!(transformer.feature_names(), ["Product_Product A", "Product_Product B", "Amount"]);
///
/// // An unseen category encodes as all zeros.
/// let features = transformer.transform(&df!("Product" => ["Product Z"], "Amount" => [20.0])?)?;
/// assert_eq!(features.row(0).to_vec(), [0.0, 0.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnTransformer {
    steps: Vec<Transform>,
}

impl ColumnTransformer {
    /// Starts describing the transforms to fit.
    pub fn builder() -> ColumnTransformerBuilder {
        ColumnTransformerBuilder::default()
    }

    /// A transformer of already fitted steps.
    pub fn from_steps(steps: Vec<Transform>) -> Self {
        Self { steps }
    }

    /// The fitted steps, in output order.
    pub fn steps(&self) -> &[Transform] {
        &self.steps
    }

    /// Number of output features.
    pub fn width(&self) -> usize {
        self.steps.iter().map(Transform::width).sum()
    }

    /// Names of the output features, in matrix column order.
    pub fn feature_names(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|step| match step {
                Transform::OneHot(e) => e.feature_names(),
                other => vec![other.column().to_owned()],
            })
            .collect()
    }

    /// The input columns the transform reads.
    pub fn input_columns(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(Transform::column)
    }

    /// Transforms `frame` into compact [`EncodedFeatures`]: category codes for one-hot
    /// columns, values for numeric ones.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] for absent inputs, [`Error::Schema`] for a column of the
    /// wrong type or with nulls where the step does not allow them.
    pub fn encode(&self, frame: &DataFrame) -> Result<EncodedFeatures> {
        let missing: Vec<String> =
            self.input_columns().filter(|c| frame.column(c).is_err()).map(str::to_owned).collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let mut offset = 0;
        let mut columns = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            columns.push(step.encode(frame.column(step.column())?, offset)?);
            offset += step.width();
        }
        Ok(EncodedFeatures::new(frame.height(), offset, columns))
    }

    /// Builds the dense feature matrix of `frame` (rows × [`width`](Self::width)), as
    /// training needs it: [`encode`](Self::encode), then [`EncodedFeatures::to_dense`].
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub fn transform(&self, frame: &DataFrame) -> Result<Array2<f64>> {
        Ok(self.encode(frame)?.to_dense())
    }
}

/// Describes which columns get which transform; [`fit`](Self::fit) learns them.
#[derive(Debug, Clone, Default)]
pub struct ColumnTransformerBuilder {
    steps: Vec<(StepKind, String)>,
}

#[derive(Debug, Clone, Copy)]
enum StepKind {
    OneHot,
    Standardize,
    Passthrough,
}

impl ColumnTransformerBuilder {
    /// One-hot encode each of `columns`.
    pub fn one_hot<I: IntoIterator<Item = S>, S: Into<String>>(self, columns: I) -> Self {
        self.add(StepKind::OneHot, columns)
    }

    /// Standard-scale each of `columns`.
    pub fn standardize<I: IntoIterator<Item = S>, S: Into<String>>(self, columns: I) -> Self {
        self.add(StepKind::Standardize, columns)
    }

    /// Copy each of `columns` unchanged.
    pub fn passthrough<I: IntoIterator<Item = S>, S: Into<String>>(self, columns: I) -> Self {
        self.add(StepKind::Passthrough, columns)
    }

    fn add<I: IntoIterator<Item = S>, S: Into<String>>(mut self, kind: StepKind, columns: I) -> Self {
        self.steps.extend(columns.into_iter().map(|c| (kind, c.into())));
        self
    }

    /// Fits every step on `frame`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no step was described or a column appears twice,
    /// [`Error::MissingColumns`] for absent columns, and the fit errors of each step.
    pub fn fit(self, frame: &DataFrame) -> Result<ColumnTransformer> {
        if self.steps.is_empty() {
            return Err(Error::InvalidArgument("a column transformer needs at least one column".into()));
        }
        for (i, (_, column)) in self.steps.iter().enumerate() {
            if self.steps[..i].iter().any(|(_, c)| c == column) {
                return Err(Error::InvalidArgument(format!("column `{column}` is transformed twice")));
            }
        }
        let missing: Vec<String> =
            self.steps.iter().filter(|(_, c)| frame.column(c).is_err()).map(|(_, c)| c.clone()).collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let steps = self
            .steps
            .into_iter()
            .map(|(kind, name)| {
                let column = frame.column(&name)?;
                Ok(match kind {
                    StepKind::OneHot => Transform::OneHot(OneHotEncoder::fit(column)?),
                    StepKind::Standardize => Transform::Standardize(StandardScaler::fit(column)?),
                    StepKind::Passthrough => {
                        numeric(column)?;
                        Transform::Passthrough { column: name }
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnTransformer { steps })
    }
}
