//! What the XGBoost and LightGBM flavors share: model features matched to signature
//! columns by name, a frame's columns laid out as rows for the evaluator, and the
//! signature a bare model file gets.

use foldhash::HashMap;

use polars::prelude::{Column, DataFrame, DataType, IntoColumn, NamedFrom, ReshapeDimension, Series};

use crate::error::{Error, Result};
use crate::signature::{ColSpec, ColumnType, Schema, Signature};
use crate::trees::boosted::Number;

/// How one model feature is read from a frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FeatureSource {
    /// A numeric (or boolean) column, missing values as NaN.
    Number(String),
    /// A string column whose values are categories, coded by their position in the list
    /// (as pandas codes a `category` column); an unknown or missing value is NaN. Looked
    /// up once per row, so with a fast hash.
    #[cfg_attr(not(feature = "lightgbm"), allow(dead_code, reason = "only LightGBM model files have it"))]
    Category { column: String, codes: HashMap<String, u32> },
}

impl FeatureSource {
    pub(crate) fn column(&self) -> &str {
        match self {
            Self::Number(column) | Self::Category { column, .. } => column,
        }
    }
}

/// The columns that feed a model's features, in feature order: each feature by its name
/// when the signature has it, or every signature column in order when the model file
/// names no features.
///
/// # Errors
/// [`Error::InvalidPackage`] naming the library and the feature the signature lacks, or
/// when the counts differ for a model without feature names.
pub(crate) fn match_features(
    library: &str,
    names: Option<&[String]>,
    features: usize,
    signature: &Signature,
) -> Result<Vec<String>> {
    let columns: Vec<&str> = signature.inputs.columns().iter().map(|c| c.name.as_str()).collect();
    match names {
        Some(names) => names
            .iter()
            .map(|name| {
                if columns.contains(&name.as_str()) {
                    Ok(name.clone())
                } else {
                    Err(Error::InvalidPackage(format!(
                        "the {library} model reads feature `{name}`, which the signature does not have (its columns: {})",
                        columns.join(", ")
                    )))
                }
            })
            .collect(),
        None if columns.len() == features => Ok(columns.iter().map(|c| (*c).to_owned()).collect()),
        None => Err(Error::InvalidPackage(format!(
            "the {library} model names no features and reads {features}; the signature has {} columns ({})",
            columns.len(),
            columns.join(", ")
        ))),
    }
}

/// A signature of one nullable `double` column per feature, NaN allowed (the libraries read
/// it as a missing value), for a model file given without one.
pub(crate) fn signature_of_features(names: &[String]) -> Result<Signature> {
    let columns =
        names.iter().map(|n| ColSpec::new(n.clone(), ColumnType::Double).nullable().allow_non_finite()).collect();
    Ok(Signature::new(Schema::new(columns)?))
}

/// The values of `sources` for every row of `frame`, row-major, `width` per row (columns
/// past the sources stay zero), as `T`: numbers converted as the library converts them
/// (`as f32` rounds to nearest, as NumPy's `astype` does), nulls as NaN.
///
/// # Errors
/// [`Error::MissingColumns`] listing the features' columns that `frame` lacks (an
/// optional signature column is still a feature the trees read), [`Error::Schema`]
/// naming a column that is neither numeric, boolean, nor (for a categorical source)
/// strings.
pub(crate) fn feature_rows<T: Number + FromColumn>(
    frame: &DataFrame,
    sources: &[FeatureSource],
    width: usize,
) -> Result<Vec<T>> {
    let missing: Vec<String> =
        sources.iter().map(FeatureSource::column).filter(|c| frame.column(c).is_err()).map(str::to_owned).collect();
    if !missing.is_empty() {
        return Err(Error::MissingColumns { columns: missing });
    }
    let rows = frame.height();
    let mut out = vec![T::ZERO; rows * width];
    for (index, source) in sources.iter().enumerate() {
        let column = frame.column(source.column())?;
        match source {
            FeatureSource::Number(name) => T::fill(column, name, &mut out, index, width)?,
            FeatureSource::Category { column: name, codes } => {
                let strings = column.str().map_err(|_| Error::Schema {
                    column: name.clone(),
                    expected: "strings (a categorical feature)".into(),
                    found: column.dtype().to_string(),
                })?;
                for (row, value) in strings.iter().enumerate() {
                    out[row * width + index] = match value.and_then(|v| codes.get(v)) {
                        Some(&code) => T::from_code(code),
                        None => T::NAN,
                    };
                }
            }
        }
    }
    Ok(out)
}

/// Per-class probabilities of one row's scores, in place, as both libraries compute them
/// (in their number type): the exponential of each score less the largest, over the sum.
pub(crate) fn softmax<T: Number>(row: &mut [T]) {
    let max = row.iter().copied().fold(T::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let mut sum = T::ZERO;
    for value in row.iter_mut() {
        *value = (*value - max).exp();
        sum += *value;
    }
    for value in row.iter_mut() {
        *value /= sum;
    }
}

/// A frame of one column `name`: `groups` scores per row, an array of them per row when
/// there are several (per-class scores, as the libraries return a 2-D array).
pub(crate) fn scores_frame<T>(name: &str, scores: Vec<T>, rows: usize, groups: usize) -> Result<DataFrame>
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    let column = Series::new(name.into(), scores);
    let column = if groups > 1 {
        column.reshape_array(&[ReshapeDimension::new(rows as i64), ReshapeDimension::new(groups as i64)])?
    } else {
        column
    };
    Ok(DataFrame::new(rows, vec![column.into_column()])?)
}

/// Reading a frame column into one feature slot of every row.
pub(crate) trait FromColumn: Sized {
    const NAN: Self;
    fn from_code(code: u32) -> Self;
    fn fill(column: &Column, name: &str, out: &mut [Self], index: usize, width: usize) -> Result<()>;
}

fn numbers(column: &Column, name: &str, as_type: &DataType) -> Result<Column> {
    let numeric = column.dtype().is_primitive_numeric() || column.dtype() == &DataType::Boolean;
    if !numeric {
        return Err(Error::Schema {
            column: name.to_owned(),
            expected: "a numeric or boolean feature".into(),
            found: column.dtype().to_string(),
        });
    }
    Ok(column.cast(as_type)?)
}

macro_rules! from_column {
    ($t:ty, $dtype:expr, $accessor:ident) => {
        impl FromColumn for $t {
            const NAN: Self = <$t>::NAN;
            fn from_code(code: u32) -> Self {
                code as $t
            }
            fn fill(column: &Column, name: &str, out: &mut [Self], index: usize, width: usize) -> Result<()> {
                let values = numbers(column, name, &$dtype)?;
                let values = values.$accessor()?;
                let mut row = 0;
                for chunk in values.downcast_iter() {
                    let slots = out[row * width..].iter_mut().skip(index).step_by(width);
                    match chunk.validity().filter(|v| v.unset_bits() > 0) {
                        None => slots.zip(chunk.values().iter()).for_each(|(slot, v)| *slot = *v),
                        Some(valid) => slots
                            .zip(chunk.values().iter().zip(valid.iter()))
                            .for_each(|(slot, (v, ok))| *slot = if ok { *v } else { <$t>::NAN }),
                    }
                    row += chunk.len();
                }
                Ok(())
            }
        }
    };
}

from_column!(f32, DataType::Float32, f32);
from_column!(f64, DataType::Float64, f64);

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    #[test]
    fn columns_become_rows_with_nulls_as_nan_and_categories_as_codes() {
        let frame = df!(
            "a" => [Some(1.5f64), None, Some(3.0)],
            "b" => [1i64, 2, 3],
            "c" => [Some("x"), Some("zz"), None],
        )
        .unwrap();
        let sources = vec![
            FeatureSource::Number("b".into()),
            FeatureSource::Number("a".into()),
            FeatureSource::Category { column: "c".into(), codes: [("x".to_owned(), 4)].into_iter().collect() },
        ];
        let rows: Vec<f64> = feature_rows(&frame, &sources, 3).unwrap();
        let expected = [1.0, 1.5, 4.0, 2.0, f64::NAN, f64::NAN, 3.0, 3.0, f64::NAN];
        assert!(rows.iter().zip(expected).all(|(a, b)| a == &b || a.is_nan() && b.is_nan()), "{rows:?}");

        let err = feature_rows::<f32>(&frame, &[FeatureSource::Number("c".into())], 1).unwrap_err();
        assert!(matches!(err, Error::Schema { ref column, .. } if column == "c"), "{err}");
    }
}
