//! Feature tables: frames of features keyed by entity and, optionally, by time.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use polars::prelude::{Column, DataFrame, DataType, IdxCa};

use super::key_index::KeyIndex;
use crate::error::{Error, Result};

/// A table of features: primary-key columns, an optional timestamp column (each row holds
/// the features as of that time), and feature columns.
#[derive(Debug, Clone)]
pub struct FeatureTable {
    name: String,
    keys: Vec<String>,
    timestamp: Option<String>,
    frame: DataFrame,
    /// Rows by key, built at the first [`rows_for`](Self::rows_for) and shared by clones.
    index: Arc<OnceLock<KeyIndex>>,
}

impl FeatureTable {
    /// A feature table called `name` over `frame`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no keys or a key listed twice;
    /// [`Error::MissingColumns`] naming key or timestamp columns `frame` lacks;
    /// [`Error::Schema`] for a timestamp column that is neither a datetime, a date nor an
    /// integer.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        keys: impl IntoIterator<Item = S>,
        timestamp: Option<&str>,
        frame: DataFrame,
    ) -> Result<Self> {
        let name = name.into();
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        if keys.is_empty() {
            return Err(Error::InvalidArgument(format!("feature table `{name}` needs at least one key column")));
        }
        if let Some(key) = keys.iter().enumerate().find_map(|(i, k)| keys[..i].contains(k).then_some(k)) {
            return Err(Error::InvalidArgument(format!("feature table `{name}` lists key `{key}` twice")));
        }
        let missing: Vec<String> = keys
            .iter()
            .map(String::as_str)
            .chain(timestamp)
            .filter(|c| !frame.schema().contains(c))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        if let Some(ts) = timestamp {
            let dtype = frame.schema().get(ts).cloned().unwrap_or(DataType::Null);
            if !(dtype.is_temporal() || dtype.is_integer()) {
                return Err(Error::Schema {
                    column: ts.to_owned(),
                    expected: format!("a datetime, date or integer timestamp in feature table `{name}`"),
                    found: dtype.to_string(),
                });
            }
        }
        Ok(Self { name, keys, timestamp: timestamp.map(str::to_owned), frame, index: Arc::default() })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The primary-key columns.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The timestamp column, for a time-series table.
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp.as_deref()
    }

    /// The rows.
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// Builds the index of rows by key that [`rows_for`](Self::rows_for) reads, if it is not
    /// built yet (it is built at the first call otherwise): a server does it when it loads
    /// the table, not on a request.
    ///
    /// # Errors
    /// Polars errors reading the key columns.
    pub fn build_key_index(&self) -> Result<()> {
        if self.index.get().is_none() {
            let built = KeyIndex::build(&self.frame, &self.keys)?;
            let _ = self.index.set(built);
        }
        Ok(())
    }

    /// The table cut to the rows whose keys equal those of a row of `keys` (columns in
    /// the order of the table's keys), in their order: a lookup for these records finds in
    /// it exactly what it finds in the whole table.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for another number of key columns than the table has;
    /// Polars errors.
    pub fn rows_for(&self, keys: &[&Column]) -> Result<FeatureTable> {
        if keys.len() != self.keys.len() {
            return Err(Error::InvalidArgument(format!(
                "feature table `{}` has {} key column(s), not {}",
                self.name,
                self.keys.len(),
                keys.len()
            )));
        }
        self.build_key_index()?;
        let rows = match self.index.get() {
            Some(index) => index.rows_of(keys)?,
            None => return Ok(self.clone()),
        };
        let frame = self.frame.take(&IdxCa::from_vec("".into(), rows))?;
        Ok(Self { frame, index: Arc::default(), ..self.clone() })
    }

    /// The feature columns: every column that is neither a key nor the timestamp.
    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.frame
            .get_column_names()
            .into_iter()
            .map(|name| name.as_str())
            .filter(|name| !self.keys.iter().any(|k| k == name) && self.timestamp.as_deref() != Some(*name))
    }
}

/// Feature tables by name: what [`FeatureSpec::augment`](super::FeatureSpec::augment)
/// reads.
#[derive(Debug, Clone, Default)]
pub struct FeatureTables {
    tables: BTreeMap<String, FeatureTable>,
}

impl FeatureTables {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `table`, replacing one of the same name.
    pub fn insert(&mut self, table: FeatureTable) -> &mut Self {
        self.tables.insert(table.name.clone(), table);
        self
    }

    /// The table called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the table and the ones there are.
    pub fn get(&self, name: &str) -> Result<&FeatureTable> {
        self.tables.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
            Error::InvalidArgument(format!("no feature table `{name}` (tables given: {})", known.join(", ")))
        })
    }

    /// The tables, by name.
    pub fn iter(&self) -> impl Iterator<Item = &FeatureTable> {
        self.tables.values()
    }
}

impl FromIterator<FeatureTable> for FeatureTables {
    fn from_iter<I: IntoIterator<Item = FeatureTable>>(iter: I) -> Self {
        let mut tables = Self::new();
        for table in iter {
            tables.insert(table);
        }
        tables
    }
}

impl<const N: usize> From<[FeatureTable; N]> for FeatureTables {
    fn from(tables: [FeatureTable; N]) -> Self {
        tables.into_iter().collect()
    }
}
