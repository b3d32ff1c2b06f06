//! Rows of an inference table grouped by time window and model version.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use chrono::{DateTime, Utc};
use polars::prelude::{AnyValue, Column, DataType, TimeUnit};

use super::columns::schema_error;
use crate::error::{Error, Result};

/// Shortest and longest window a monitor accepts.
pub const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(5 * 60), Duration::from_secs(24 * 60 * 60));

/// A model version as the inference table holds it: a number, or text for tables that
/// store it as such.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Version {
    Number(i64),
    Text(String),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// The rows of one window and version.
pub(crate) struct Group {
    /// Window start, milliseconds since the Unix epoch.
    pub(crate) start_ms: i64,
    pub(crate) version: usize,
    pub(crate) rows: Vec<u32>,
}

/// Every non-empty (window, version) group, ordered by version then window start, so
/// each group's previous window of the same version is the group before it.
pub(crate) struct Windows {
    pub(crate) width_ms: i64,
    pub(crate) versions: Vec<Version>,
    pub(crate) groups: Vec<Group>,
}

impl Windows {
    pub(crate) fn width_ms(width: Duration) -> Result<i64> {
        let (shortest, longest) = WINDOW_RANGE;
        if width < shortest || width > longest || width.subsec_nanos() != 0 {
            return Err(Error::InvalidArgument(format!(
                "the window must be whole seconds from 5 minutes to 1 day, got {width:?}"
            )));
        }
        Ok(width.as_millis() as i64)
    }

    /// Windows are aligned to the Unix epoch, so the same rows fall in the same window
    /// whatever else the frame holds.
    pub(crate) fn split(timestamps: &Column, versions: &Column, width: Duration) -> Result<Self> {
        let width_ms = Self::width_ms(width)?;
        if timestamps.len() > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!("{} rows are more than a monitor run takes", timestamps.len())));
        }
        let times = millis(timestamps)?;
        let (version_of_row, mut versions) = version_ids(versions)?;
        let mut groups: Vec<Group> = Vec::new();
        let keys = times.iter().zip(&version_of_row).map(|(time, version)| (time.div_euclid(width_ms), *version));
        let group_of_row = dense_ids(keys, |(window, version)| {
            groups.push(Group { start_ms: window * width_ms, version: version as usize, rows: Vec::new() });
        });
        for (row, group) in group_of_row.into_iter().enumerate() {
            groups[group as usize].rows.push(row as u32);
        }
        // Versions in their natural order, then groups by version and time.
        let mut order: Vec<usize> = (0..versions.len()).collect();
        order.sort_by(|a, b| versions[*a].cmp(&versions[*b]));
        let mut rank = vec![0; versions.len()];
        for (position, original) in order.iter().enumerate() {
            rank[*original] = position;
        }
        for group in &mut groups {
            group.version = rank[group.version];
        }
        versions = order.into_iter().map(|original| versions[original].clone()).collect();
        groups.sort_by_key(|g| (g.version, g.start_ms));
        Ok(Self { width_ms, versions, groups })
    }

    /// The group before `g` when it is of the same version (its previous window with rows).
    pub(crate) fn previous(&self, g: usize) -> Option<usize> {
        let before = g.checked_sub(1)?;
        (self.groups[before].version == self.groups[g].version).then_some(before)
    }
}

/// Timestamps in milliseconds since the Unix epoch; a null names its row.
fn millis(column: &Column) -> Result<Vec<i64>> {
    let name = column.name().as_str();
    if !matches!(column.dtype(), DataType::Datetime(..) | DataType::Date) {
        return Err(schema_error(name, "timestamps (datetime)", column.dtype().to_string()));
    }
    let ms = column.cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
    let ms = ms.datetime()?.physical().clone();
    if ms.null_count() > 0 {
        let row = ms.iter().position(|v| v.is_none()).unwrap_or_default();
        return Err(schema_error(name, "a timestamp in every row", format!("null in row {row}")));
    }
    // A window (a day at most) that starts inside the calendar also ends inside it.
    let last = DateTime::<Utc>::MAX_UTC - chrono::TimeDelta::days(1);
    let calendar = DateTime::<Utc>::MIN_UTC.timestamp_millis()..=last.timestamp_millis();
    if let Some((row, ms)) = ms.iter().flatten().enumerate().find(|(_, ms)| !calendar.contains(ms)) {
        return Err(schema_error(name, "timestamps a calendar holds", format!("{ms} ms after 1970 in row {row}")));
    }
    Ok(ms.into_no_null_iter().collect())
}

/// A dense id per distinct version, and the versions.
fn version_ids(column: &Column) -> Result<(Vec<u32>, Vec<Version>)> {
    let name = column.name().as_str();
    let null_row = || column.as_materialized_series().iter().position(|v| matches!(v, AnyValue::Null));
    if column.null_count() > 0 {
        let row = null_row().unwrap_or_default();
        return Err(schema_error(name, "a model version in every row", format!("null in row {row}")));
    }
    let mut versions = Vec::new();
    // Casts are strict: a value that does not convert is an error, never a shifted row.
    let ids = if column.dtype().is_integer() {
        let numbers = column.strict_cast(&DataType::Int64)?;
        dense_ids(numbers.i64()?.into_no_null_iter(), |n| versions.push(Version::Number(n)))
    } else {
        let text = column.strict_cast(&DataType::String)?;
        let text = text.str()?;
        if let Some(row) = text.iter().position(|t| t.is_none()) {
            return Err(schema_error(name, "a model version readable as text", format!("row {row}")));
        }
        dense_ids(text.iter().flatten(), |t| versions.push(Version::Text(t.to_owned())))
    };
    Ok((ids, versions))
}

/// A dense id per distinct key, in order of first appearance (`first_seen` is called
/// then). Inference tables repeat keys in runs, so the last key's id is reused without
/// hashing.
fn dense_ids<K: Copy + Eq + Hash>(keys: impl Iterator<Item = K>, mut first_seen: impl FnMut(K)) -> Vec<u32> {
    let mut known: HashMap<K, u32> = HashMap::new();
    let mut last: Option<(K, u32)> = None;
    let mut ids = Vec::with_capacity(keys.size_hint().0);
    for key in keys {
        let id = match last {
            Some((previous, id)) if previous == key => id,
            _ => {
                let next = known.len() as u32;
                let id = *known.entry(key).or_insert_with(|| {
                    first_seen(key);
                    next
                });
                last = Some((key, id));
                id
            }
        };
        ids.push(id);
    }
    ids
}
