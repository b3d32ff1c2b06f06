//! Feature lookups packaged with a model: point-in-time joins against feature tables and
//! on-demand features computed by named functions.
//!
//! A model trained on looked-up features records its [`FeatureSpec`] in its package
//! manifest. Scoring code gives it raw records (keys, a timestamp, the raw columns) and the
//! feature tables; [`FeatureSpec::augment`] adds, for every record, the latest feature row
//! at or before the record's time per key, then the on-demand features. Training sets are
//! built with the same call, so training and scoring see the same values for the same
//! records.
//!
//! ```
//! use mlops_core::features::{FeatureFunctions, FeatureLookup, FeatureSpec, FeatureTable, FeatureTables, OnDemandFeature};
//! use polars::prelude::*;
//!
//! // Windows of a product's largest amount, stamped with the time each window closed.
//! let windows = df!(
//!     "Product" => ["A", "A", "B"],
//!     "window_end" => [60_000i64, 120_000, 60_000],
//!     "MaxProductAmount" => [50.0, 80.0, 20.0],
//! )?;
//! let tables = FeatureTables::from([FeatureTable::new("product_features", ["Product"], Some("window_end"), windows)?]);
//!
//! let spec = FeatureSpec::new()
//!     .lookup(FeatureLookup::new("product_features", ["Product"])
//!         .timestamp_lookup_key("ts")
//!         .features(["MaxProductAmount"]))
//!     .on_demand(OnDemandFeature::new("max_difference_ratio", "MaxDifferenceRatio")
//!         .bind("max", "MaxProductAmount")
//!         .bind("value", "Amount"));
//!
//! let records = df!("Product" => ["A", "A", "B"], "ts" => [90_000i64, 120_000, 30_000], "Amount" => [40.0, 20.0, 5.0])?;
//! let with_features = spec.augment(&records, &tables, &FeatureFunctions::with_builtins())?;
//!
//! // Row 0 sees the window closed at 60s, row 1 the one closed at 120s (at or before its
//! // time), row 2 is earlier than every window of B.
//! let max = with_features.column("MaxProductAmount")?.f64()?;
//! assert_eq!(max.iter().collect::<Vec<_>>(), [Some(50.0), Some(80.0), None]);
//! let ratio = with_features.column("MaxDifferenceRatio")?.f64()?;
//! assert_eq!(ratio.iter().collect::<Vec<_>>(), [Some(0.2), Some(0.75), None]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod key_index;
mod lookup;
mod on_demand;
mod table;
mod window;

pub use lookup::FeatureLookup;
pub use on_demand::{FeatureFunction, FeatureFunctions, MaxDifferenceRatio, OnDemandFeature};
pub use table::{FeatureTable, FeatureTables};
pub use window::{SlidingWindow, WindowAggregation};

use std::collections::BTreeSet;

use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::signature::Schema;

/// The features a model looks up and computes at scoring time, stored in its manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Point-in-time lookups, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<FeatureLookup>,
    /// On-demand features, computed after the lookups in order (one may use another's
    /// output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_demand: Vec<OnDemandFeature>,
}

impl FeatureSpec {
    /// No lookups and no on-demand features.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a lookup.
    #[must_use]
    pub fn lookup(mut self, lookup: FeatureLookup) -> Self {
        self.lookups.push(lookup);
        self
    }

    /// Adds an on-demand feature.
    #[must_use]
    pub fn on_demand(mut self, feature: OnDemandFeature) -> Self {
        self.on_demand.push(feature);
        self
    }

    /// Whether the spec adds nothing.
    pub fn is_empty(&self) -> bool {
        self.lookups.is_empty() && self.on_demand.is_empty()
    }

    /// The feature tables the lookups read, each once, in order of first use.
    pub fn tables(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.lookups.iter().map(|l| l.table.as_str()).filter(|t| seen.insert(*t)).collect()
    }

    /// The rows of `tables` that the lookups of `records` can meet: each table read by one
    /// lookup is cut to the rows of the records' keys (through the table's key index), so
    /// [`augment`](Self::augment) on a few records costs what their keys hold, not what the
    /// table holds; it gives the same frame as with the whole tables. A table read by
    /// several lookups, or records without the key columns, keep the whole table (and
    /// `augment` reports what is missing).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a table `tables` lacks; Polars errors.
    pub fn tables_for(&self, records: &DataFrame, tables: &FeatureTables) -> Result<FeatureTables> {
        let mut cut = FeatureTables::new();
        for name in self.tables() {
            let table = tables.get(name)?;
            let readers: Vec<&FeatureLookup> = self.lookups.iter().filter(|l| l.table == name).collect();
            let keys: Option<Vec<&polars::prelude::Column>> = match readers.as_slice() {
                [lookup] => lookup.lookup_key.iter().map(|k| records.column(k).ok()).collect(),
                _ => None,
            };
            match keys {
                Some(keys) if keys.len() == table.keys().len() => cut.insert(table.rows_for(&keys)?),
                _ => cut.insert(table.clone()),
            };
        }
        Ok(cut)
    }

    /// Every column the spec adds, in the order it adds them.
    pub fn outputs(&self) -> Vec<&str> {
        self.lookups
            .iter()
            .flat_map(FeatureLookup::output_names)
            .chain(self.on_demand.iter().map(|f| f.output.as_str()))
            .collect()
    }

    /// The part of a model's input schema that records must carry themselves: `inputs`
    /// without the columns this spec adds.
    pub fn raw_inputs(&self, inputs: &Schema) -> Schema {
        let added: BTreeSet<&str> = self.outputs().into_iter().collect();
        inputs.without(|name| added.contains(name))
    }

    /// Checks that every output name is unique and every on-demand function is known with
    /// the parameters it takes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the duplicated output, the unknown function or the
    /// wrong parameter.
    pub fn check(&self, functions: &FeatureFunctions) -> Result<()> {
        let mut outputs = BTreeSet::new();
        for output in self.outputs() {
            if !outputs.insert(output) {
                return Err(Error::InvalidArgument(format!(
                    "feature `{output}` is produced twice by the feature spec"
                )));
            }
        }
        for lookup in &self.lookups {
            lookup.check()?;
        }
        for feature in &self.on_demand {
            functions.check(feature)?;
        }
        Ok(())
    }

    /// Adds the looked-up and on-demand features to `records`, keeping their rows and order.
    ///
    /// Each lookup joins, per record, the row of its table with the same keys and the
    /// latest timestamp at or before the record's (or the latest row per key when the
    /// lookup has no timestamp). A record with no such row gets the lookup's default
    /// values, or nulls.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] naming lookup keys the records lack,
    /// [`Error::InvalidArgument`] for an unknown table or function, a feature the table
    /// lacks, or an output that would overwrite a record column; [`Error::Schema`] when a
    /// key's type differs between the records and the table.
    pub fn augment(
        &self,
        records: &DataFrame,
        tables: &FeatureTables,
        functions: &FeatureFunctions,
    ) -> Result<DataFrame> {
        self.check(functions)?;
        if let Some(clash) = self.outputs().into_iter().find(|name| records.schema().contains(name)) {
            return Err(Error::InvalidArgument(format!(
                "the records already have a column `{clash}`, which the feature spec computes; drop it first"
            )));
        }
        let mut frame = records.clone();
        for lookup in &self.lookups {
            frame = lookup.join(&frame, tables.get(&lookup.table)?)?;
        }
        for feature in &self.on_demand {
            let column = functions.compute(feature, &frame)?;
            frame.with_column(column)?;
        }
        Ok(frame)
    }
}
