use ndarray::Array2;

/// Code of a null or of a category not seen at fit: it sets no one-hot feature.
pub const UNKNOWN_CATEGORY: u32 = u32::MAX;

/// One transformed input column in compact form.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodedColumn {
    /// A one-hot encoded column, as the index of the hot feature per row (what a sparse
    /// matrix stores): feature `offset + code` is 1, the others 0.
    OneHot {
        /// First feature of this column in the feature matrix.
        offset: usize,
        /// Number of categories (features) of this column.
        width: usize,
        /// Category index per row, below `width`, or [`UNKNOWN_CATEGORY`].
        codes: Vec<u32>,
    },
    /// A numeric column: feature `offset` holds the value.
    Dense {
        /// The feature of this column in the feature matrix.
        offset: usize,
        /// Value per row.
        values: Vec<f64>,
    },
}

/// The output of a [`ColumnTransformer`](super::ColumnTransformer) in compact form: per
/// input column a vector of category codes or of values, instead of a mostly-zero dense
/// matrix. The dense matrix training needs is [`to_dense`](Self::to_dense) of this, so
/// training and prediction share one transform; linear prediction reads it directly with
/// [`linear_scores`](Self::linear_scores), touching a few bytes per row and feature column
/// rather than every one-hot zero.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFeatures {
    rows: usize,
    width: usize,
    columns: Vec<EncodedColumn>,
}

impl EncodedFeatures {
    pub(crate) fn new(rows: usize, width: usize, columns: Vec<EncodedColumn>) -> Self {
        Self { rows, width, columns }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of features of the equivalent dense matrix.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The encoded columns, in feature order.
    pub fn columns(&self) -> &[EncodedColumn] {
        &self.columns
    }

    /// The dense row-major feature matrix (rows × width).
    pub fn to_dense(&self) -> Array2<f64> {
        let mut dense = Array2::<f64>::zeros((self.rows, self.width));
        for column in &self.columns {
            match column {
                EncodedColumn::OneHot { offset, width, codes } => {
                    for (mut row, &code) in dense.rows_mut().into_iter().zip(codes) {
                        if (code as usize) < *width {
                            row[offset + code as usize] = 1.0;
                        }
                    }
                }
                EncodedColumn::Dense { offset, values } => {
                    dense.column_mut(*offset).iter_mut().zip(values).for_each(|(cell, &value)| *cell = value);
                }
            }
        }
        dense
    }

    /// `intercept + features · coefficients` for every row, equal to the dense matrix
    /// product without building the matrix.
    ///
    /// # Panics
    /// When `coefficients` has fewer entries than [`width`](Self::width); models check the
    /// length when they are built.
    pub fn linear_scores(&self, coefficients: &[f64], intercept: f64) -> Vec<f64> {
        assert!(coefficients.len() >= self.width, "{} coefficients for {} features", coefficients.len(), self.width);
        let mut scores = vec![intercept; self.rows];
        for column in &self.columns {
            match column {
                EncodedColumn::OneHot { offset, width, codes } => {
                    let weights = &coefficients[*offset..offset + width];
                    for (score, &code) in scores.iter_mut().zip(codes) {
                        if let Some(weight) = weights.get(code as usize) {
                            *score += weight;
                        }
                    }
                }
                EncodedColumn::Dense { offset, values } => {
                    let weight = coefficients[*offset];
                    scores.iter_mut().zip(values).for_each(|(score, value)| *score += weight * value);
                }
            }
        }
        scores
    }
}
