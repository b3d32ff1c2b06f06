//! `FeatureLookup`: which features to take from a feature table, joined point-in-time.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::table::FeatureTable;
use crate::error::{Error, Result};

const ROW: &str = "__mlops_record_row";
const FEATURE_TIME: &str = "__mlops_feature_time";

/// Features taken from one feature table for every record.
///
/// `lookup_key` names the record columns that match the table's keys, in the order of the
/// table's keys. With a `timestamp_lookup_key`, each record gets the table row with its keys
/// and the latest timestamp at or before the record's; without one, the latest row per key
/// (or the only one, for a table without timestamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureLookup {
    /// The feature table's name.
    pub table: String,
    /// Record columns matched against the table's keys, in the table's key order.
    pub lookup_key: Vec<String>,
    /// The record column holding the time the features must be as of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_lookup_key: Option<String>,
    /// Feature columns to take.
    pub feature_names: Vec<String>,
    /// Output names for features that should not keep the table's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename_outputs: BTreeMap<String, String>,
    /// Values for records that find no feature row, by feature name (before renaming).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_values: BTreeMap<String, serde_json::Value>,
}

impl FeatureLookup {
    /// A lookup in `table` by the record columns `lookup_key`.
    pub fn new<S: Into<String>>(table: impl Into<String>, lookup_key: impl IntoIterator<Item = S>) -> Self {
        Self {
            table: table.into(),
            lookup_key: lookup_key.into_iter().map(Into::into).collect(),
            timestamp_lookup_key: None,
            feature_names: Vec::new(),
            rename_outputs: BTreeMap::new(),
            default_values: BTreeMap::new(),
        }
    }

    /// Joins point-in-time on the record column `column`.
    #[must_use]
    pub fn timestamp_lookup_key(mut self, column: impl Into<String>) -> Self {
        self.timestamp_lookup_key = Some(column.into());
        self
    }

    /// Takes these features.
    #[must_use]
    pub fn features<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.feature_names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Outputs `feature` as `output`.
    #[must_use]
    pub fn rename(mut self, feature: impl Into<String>, output: impl Into<String>) -> Self {
        self.rename_outputs.insert(feature.into(), output.into());
        self
    }

    /// Gives records without a feature row `value` for `feature`.
    #[must_use]
    pub fn default_value(mut self, feature: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.default_values.insert(feature.into(), value.into());
        self
    }

    /// The columns the lookup adds, in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.feature_names.iter().map(|f| self.rename_outputs.get(f).unwrap_or(f).as_str())
    }

    pub(super) fn check(&self) -> Result<()> {
        let table = &self.table;
        if self.lookup_key.is_empty() {
            return Err(Error::InvalidArgument(format!("the lookup in `{table}` has no lookup key")));
        }
        if self.feature_names.is_empty() {
            return Err(Error::InvalidArgument(format!("the lookup in `{table}` names no feature")));
        }
        let unknown = self
            .rename_outputs
            .keys()
            .chain(self.default_values.keys())
            .find(|name| !self.feature_names.contains(name));
        if let Some(name) = unknown {
            return Err(Error::InvalidArgument(format!(
                "the lookup in `{table}` renames or defaults `{name}`, which is not one of its features"
            )));
        }
        for (feature, value) in &self.default_values {
            if !(value.is_number() || value.is_string() || value.is_boolean()) {
                return Err(Error::InvalidArgument(format!(
                    "the default for `{feature}` in the lookup in `{table}` must be a number, string or boolean, not {value}"
                )));
            }
        }
        Ok(())
    }

    /// Adds this lookup's features to `records`, keeping their order. The spec has checked
    /// the lookup.
    pub(super) fn join(&self, records: &DataFrame, table: &FeatureTable) -> Result<DataFrame> {
        let name = table.name();
        let record_schema = records.schema();
        let mut missing: Vec<String> = self
            .lookup_key
            .iter()
            .chain(&self.timestamp_lookup_key)
            .filter(|c| !record_schema.contains(c))
            .cloned()
            .collect();
        if !missing.is_empty() {
            missing.dedup();
            return Err(Error::MissingColumns { columns: missing });
        }
        if self.lookup_key.len() != table.keys().len() {
            return Err(Error::InvalidArgument(format!(
                "the lookup in `{name}` gives {} key column(s) ({}) but the table has {} ({})",
                self.lookup_key.len(),
                self.lookup_key.join(", "),
                table.keys().len(),
                table.keys().join(", ")
            )));
        }
        if let Some(absent) = self.feature_names.iter().find(|f| !table.feature_names().any(|t| t == f.as_str())) {
            return Err(Error::InvalidArgument(format!("feature table `{name}` has no feature `{absent}`")));
        }

        // The table's side, renamed into the records' vocabulary and cast to their types.
        let table_schema = table.frame().schema();
        let mut selected = Vec::new();
        for (record_key, table_key) in self.lookup_key.iter().zip(table.keys()) {
            let wanted = record_schema.get(record_key).cloned().unwrap_or(DataType::Null);
            let found = table_schema.get(table_key).cloned().unwrap_or(DataType::Null);
            check_joinable(record_key, &wanted, &found, &format!("key `{table_key}` of feature table `{name}`"))?;
            selected.push(col(table_key.as_str()).strict_cast(wanted).alias(record_key.as_str()));
        }
        for (feature, output) in self.feature_names.iter().zip(self.output_names()) {
            selected.push(col(feature.as_str()).alias(output));
        }
        let defaults = self.default_exprs(table_schema)?;

        let joined = match (&self.timestamp_lookup_key, table.timestamp()) {
            (Some(record_time), Some(table_time)) => {
                let wanted = record_schema.get(record_time).cloned().unwrap_or(DataType::Null);
                let found = table_schema.get(table_time).cloned().unwrap_or(DataType::Null);
                check_joinable(
                    record_time,
                    &wanted,
                    &found,
                    &format!("timestamp `{table_time}` of feature table `{name}`"),
                )?;
                selected.push(col(table_time).strict_cast(wanted).alias(FEATURE_TIME));
                let features = table
                    .frame()
                    .clone()
                    .lazy()
                    .select(selected)
                    .drop_nulls(Some(cols([FEATURE_TIME])))
                    .sort([FEATURE_TIME], SortMultipleOptions::default());
                self.as_of(records, features, record_time)?
            }
            (Some(record_time), None) => {
                return Err(Error::InvalidArgument(format!(
                    "the lookup in `{name}` joins on time (`{record_time}`) but the table has no timestamp column"
                )));
            }
            (None, table_time) => {
                let mut features = table.frame().clone().lazy();
                if let Some(table_time) = table_time {
                    features = features.sort([table_time], SortMultipleOptions::default());
                } else {
                    let keys = table.frame().select(table.keys().iter().map(String::as_str))?;
                    if keys.is_duplicated()?.any() {
                        return Err(Error::InvalidArgument(format!(
                            "feature table `{name}` has no timestamp column and repeats keys ({})",
                            table.keys().join(", ")
                        )));
                    }
                }
                let latest = features
                    .select(selected)
                    .unique_stable(Some(cols(self.lookup_key.iter().map(String::as_str))), UniqueKeepStrategy::Last);
                let on: Vec<Expr> = self.lookup_key.iter().map(|k| col(k.as_str())).collect();
                records
                    .clone()
                    .lazy()
                    .join_builder()
                    .with(latest)
                    .how(JoinType::Left)
                    .on(on)
                    .maintain_order(MaintainOrderJoin::Left)
                    .finish()
            }
        };
        Ok(joined.with_columns(defaults).collect()?)
    }

    /// Backward as-of join: per key, the latest feature row at or before the record's time.
    fn as_of(&self, records: &DataFrame, features: LazyFrame, record_time: &str) -> Result<LazyFrame> {
        let keys: Vec<PlSmallStr> = self.lookup_key.iter().map(|k| k.as_str().into()).collect();
        let options = AsOfOptions {
            strategy: AsofStrategy::Backward,
            tolerance: None,
            tolerance_str: None,
            left_by: Some(keys.clone()),
            right_by: Some(keys),
            allow_eq: true,
            check_sortedness: false,
        };
        // Records without a time cannot be placed: they keep nulls (or the defaults).
        let numbered = records.clone().lazy().with_row_index(ROW, None);
        let mut placing = vec![col(ROW), col(record_time)];
        placing.extend(self.lookup_key.iter().map(|k| col(k.as_str())));
        let mut placed_outputs = vec![col(ROW)];
        placed_outputs.extend(self.output_names().map(col));
        let placed = numbered
            .clone()
            .select(placing)
            .filter(col(record_time).is_not_null())
            .sort([record_time], SortMultipleOptions::default())
            .join_builder()
            .with(features)
            .left_on([col(record_time)])
            .right_on([col(FEATURE_TIME)])
            .how(JoinType::AsOf(Box::new(options)))
            .finish()
            .select(placed_outputs);
        Ok(numbered
            .join_builder()
            .with(placed)
            .how(JoinType::Left)
            .on([col(ROW)])
            .maintain_order(MaintainOrderJoin::Left)
            .finish()
            .drop(cols([ROW])))
    }

    fn default_exprs(&self, table_schema: &Schema) -> Result<Vec<Expr>> {
        let mut exprs = Vec::new();
        for (feature, output) in self.feature_names.iter().zip(self.output_names()) {
            let Some(value) = self.default_values.get(feature) else { continue };
            let dtype = table_schema.get(feature).cloned().unwrap_or(DataType::Null);
            let literal = match value {
                serde_json::Value::Bool(b) => lit(*b),
                serde_json::Value::String(s) => lit(s.clone()),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => lit(i),
                    None => lit(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => {
                    return Err(Error::InvalidArgument(format!("default for `{feature}` cannot be {other}")));
                }
            };
            exprs.push(col(output).fill_null(literal.strict_cast(dtype)));
        }
        Ok(exprs)
    }
}

/// Whether a table column of type `found` can be compared with the record column `column`
/// of type `wanted` (the same kind of value; widths may differ).
fn check_joinable(column: &str, wanted: &DataType, found: &DataType, what: &str) -> Result<()> {
    let same_kind = wanted == found
        || (wanted.is_integer() && found.is_integer())
        || (wanted.is_temporal() && found.is_temporal())
        || (wanted.is_string() && found.is_string());
    if same_kind {
        Ok(())
    } else {
        Err(Error::Schema {
            column: column.to_owned(),
            expected: format!("the type of {what} ({found})"),
            found: wanted.to_string(),
        })
    }
}
