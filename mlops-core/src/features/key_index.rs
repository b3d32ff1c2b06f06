//! The rows of a feature table by key, so a lookup for a few records reads only the rows
//! their keys can meet instead of joining against the whole table.

use std::collections::HashMap;
use std::fmt::Write as _;

use polars::prelude::{AnyValue, Column, DataFrame, IdxSize};

use crate::error::Result;

/// Row numbers (ascending) by the text of a row's key values. Rows with a null key are
/// left out: a null never matches in a join.
pub(crate) struct KeyIndex {
    rows: HashMap<String, Vec<IdxSize>>,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex").field("keys", &self.rows.len()).finish()
    }
}

impl KeyIndex {
    /// Indexes `frame` by the columns `keys`.
    pub(crate) fn build(frame: &DataFrame, keys: &[String]) -> Result<Self> {
        let columns = keys.iter().map(|k| frame.column(k)).collect::<polars::prelude::PolarsResult<Vec<_>>>()?;
        let mut rows: HashMap<String, Vec<IdxSize>> = HashMap::new();
        let mut text = String::new();
        for row in 0..frame.height() {
            if !key_text(&columns, row, &mut text)? {
                continue;
            }
            let index = IdxSize::try_from(row).unwrap_or(IdxSize::MAX);
            match rows.get_mut(text.as_str()) {
                Some(found) => found.push(index),
                None => {
                    rows.insert(text.clone(), vec![index]);
                }
            }
        }
        Ok(Self { rows })
    }

    /// The rows, ascending and each once, whose keys equal those of any row of `keys`
    /// (columns in the order of the index's keys).
    pub(crate) fn rows_of(&self, keys: &[&Column]) -> Result<Vec<IdxSize>> {
        let height = keys.first().map_or(0, |c| c.len());
        let mut found = Vec::new();
        let mut text = String::new();
        for row in 0..height {
            if key_text(keys, row, &mut text)?
                && let Some(rows) = self.rows.get(text.as_str())
            {
                found.extend_from_slice(rows);
            }
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

/// The key of `row` as text in `out`; `false` when a part of it is null.
fn key_text(columns: &[&Column], row: usize, out: &mut String) -> Result<bool> {
    out.clear();
    for column in columns {
        match column.get(row)? {
            AnyValue::Null => return Ok(false),
            AnyValue::String(s) => out.push_str(s),
            AnyValue::StringOwned(s) => out.push_str(&s),
            // Integers of any width print alike, as the join casts them alike.
            other => {
                let _ = write!(out, "{other}");
            }
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ; keys that still collide only
        // add rows that the join then leaves out.
        out.push('\u{1f}');
    }
    Ok(true)
}
