use std::collections::BTreeSet;

use polars::prelude::{Column, DataType};
use serde::{Deserialize, Serialize};

use super::UNKNOWN_CATEGORY;
use crate::error::{Error, Result};

/// The categories a [`OneHotEncoder`] learned, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "values", rename_all = "lowercase")]
pub enum Categories {
    /// Categories of a string column.
    String(Vec<String>),
    /// Categories of an integer column.
    Integer(Vec<i64>),
}

impl Categories {
    fn len(&self) -> usize {
        match self {
            Self::String(v) => v.len(),
            Self::Integer(v) => v.len(),
        }
    }
}

/// One-hot encoding of a string or integer column.
///
/// Categories are learned at fit and sorted. At transform time a category not seen in
/// training, or a null, encodes as all zeros, as scikit-learn's `handle_unknown="ignore"`.
///
/// ```
/// use mlops_core::preprocess::OneHotEncoder;
/// use polars::prelude::*;
///
/// let train = Column::new("Product".into(), ["Product B", "Product A", "Product B"]);
/// let encoder = OneHotEncoder::fit(&train)?;
/// assert_eq!(encoder.feature_names(), ["Product_Product A", "Product_Product B"]);
/// # Ok::<(), mlops_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OneHotEncoderFile")]
pub struct OneHotEncoder {
    column: String,
    categories: Categories,
}

/// An encoder as a package stores it, checked before it becomes a [`OneHotEncoder`]: the
/// lookups rely on categories that are sorted and distinct.
#[derive(Deserialize)]
struct OneHotEncoderFile {
    column: String,
    categories: Categories,
}

impl TryFrom<OneHotEncoderFile> for OneHotEncoder {
    type Error = String;

    fn try_from(file: OneHotEncoderFile) -> std::result::Result<Self, String> {
        fn increasing<T: Ord>(values: &[T]) -> bool {
            values.windows(2).all(|pair| pair[0] < pair[1])
        }
        let (len, sorted) = match &file.categories {
            Categories::String(values) => (values.len(), increasing(values)),
            Categories::Integer(values) => (values.len(), increasing(values)),
        };
        let problem = if len == 0 {
            "has no categories"
        } else if !sorted {
            "has categories that are not sorted and distinct"
        } else if len >= UNKNOWN_CATEGORY as usize {
            "has more categories than a code can hold"
        } else {
            return Ok(Self { column: file.column, categories: file.categories });
        };
        Err(format!("the one-hot encoder of column `{}` {problem}", file.column))
    }
}

/// Integer categories spanning at most this many values get a dense lookup table.
const DENSE_LOOKUP_SPAN: i64 = 1 << 16;

impl OneHotEncoder {
    /// Learns the categories of `column` (nulls are not a category).
    ///
    /// # Errors
    /// [`Error::Schema`] for a column that is neither string nor integer, and
    /// [`Error::Fit`] for a column with no non-null value.
    pub fn fit(column: &Column) -> Result<Self> {
        let name = column.name().to_string();
        let categories = match column.dtype() {
            DataType::String => {
                let set: BTreeSet<&str> = column.str()?.iter().flatten().collect();
                Categories::String(set.into_iter().map(str::to_owned).collect())
            }
            dtype if dtype.is_integer() => {
                let values = column.cast(&DataType::Int64)?;
                let set: BTreeSet<i64> = values.i64()?.iter().flatten().collect();
                Categories::Integer(set.into_iter().collect())
            }
            other => {
                return Err(Error::Schema {
                    column: name,
                    expected: "a string or integer column to one-hot encode".into(),
                    found: other.to_string(),
                });
            }
        };
        if categories.len() == 0 {
            return Err(Error::Fit {
                model: format!("one-hot encoder for `{name}`"),
                reason: "the column has no non-null values".into(),
            });
        }
        Ok(Self { column: name, categories })
    }

    /// The input column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The learned categories.
    pub fn categories(&self) -> &Categories {
        &self.categories
    }

    /// Number of output features (one per category).
    pub fn width(&self) -> usize {
        self.categories.len()
    }

    /// Output feature names, `<column>_<category>` as scikit-learn names them.
    pub fn feature_names(&self) -> Vec<String> {
        match &self.categories {
            Categories::String(v) => v.iter().map(|c| format!("{}_{c}", self.column)).collect(),
            Categories::Integer(v) => v.iter().map(|c| format!("{}_{c}", self.column)).collect(),
        }
    }

    /// The category index of every row: [`UNKNOWN_CATEGORY`] for a null or a category not
    /// seen at fit.
    pub(crate) fn codes(&self, column: &Column) -> Result<Vec<u32>> {
        match &self.categories {
            Categories::String(categories) => {
                let values = column.str().map_err(|_| self.type_error(column))?;
                Ok(values
                    .iter()
                    .map(|value| {
                        value
                            .and_then(|v| categories.binary_search_by(|c| c.as_str().cmp(v)).ok())
                            .map_or(UNKNOWN_CATEGORY, |index| index as u32)
                    })
                    .collect())
            }
            Categories::Integer(categories) => {
                if !column.dtype().is_integer() {
                    return Err(self.type_error(column));
                }
                let values = column.cast(&DataType::Int64)?;
                let lookup = IntegerLookup::new(categories);
                Ok(values
                    .i64()?
                    .iter()
                    .map(|value| value.and_then(|v| lookup.index(v)).map_or(UNKNOWN_CATEGORY, |index| index as u32))
                    .collect())
            }
        }
    }

    fn type_error(&self, column: &Column) -> Error {
        let expected = match self.categories {
            Categories::String(_) => "string categories",
            Categories::Integer(_) => "integer categories",
        };
        Error::Schema { column: self.column.clone(), expected: expected.into(), found: column.dtype().to_string() }
    }
}

/// Maps an integer to its category index: a dense table when the categories span a small
/// range (customer ids, codes), binary search otherwise.
enum IntegerLookup<'a> {
    Dense { min: i64, slots: Vec<u32> },
    Sorted(&'a [i64]),
}

impl<'a> IntegerLookup<'a> {
    fn new(categories: &'a [i64]) -> Self {
        match (categories.first(), categories.last()) {
            // Categories are sorted (checked when loaded), so `max - min` is not negative.
            (Some(&min), Some(&max)) if (0..DENSE_LOOKUP_SPAN).contains(&max.saturating_sub(min)) => {
                let mut slots = vec![0u32; (max - min + 1) as usize];
                for (index, &c) in categories.iter().enumerate() {
                    slots[(c - min) as usize] = index as u32 + 1;
                }
                Self::Dense { min, slots }
            }
            _ => Self::Sorted(categories),
        }
    }

    fn index(&self, value: i64) -> Option<usize> {
        match self {
            Self::Dense { min, slots } => {
                let slot = usize::try_from(value.checked_sub(*min)?).ok()?;
                slots.get(slot).filter(|&&s| s != 0).map(|&s| s as usize - 1)
            }
            Self::Sorted(categories) => categories.binary_search(&value).ok(),
        }
    }
}
