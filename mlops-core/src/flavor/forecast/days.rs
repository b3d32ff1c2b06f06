//! Day numbers (days since 1970-01-01): read from date and datetime columns, held to the
//! calendar, shown as dates.

use chrono::{Datelike, NaiveDate};
use polars::prelude::{Column, DataType, TimeUnit};

use crate::error::{Error, Result};

const MS_PER_DAY: i64 = 86_400_000;

pub(super) fn day_of_year(day: i32) -> u32 {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).map_or(1, |d| d.ordinal())
}

pub(super) fn format_day(day: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).map_or_else(|| format!("day {day}"), |d| d.to_string())
}

/// Days since 1970-01-01 of a date or datetime column (datetimes by their UTC day).
pub(super) fn day_numbers(column: &Column) -> Result<Vec<i32>> {
    let name = column.name().to_string();
    let days: Vec<Option<i64>> = match column.dtype() {
        DataType::Date => column.date()?.physical().iter().map(|d| d.map(i64::from)).collect(),
        DataType::Datetime(..) => {
            let ms = column.cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
            ms.datetime()?.physical().iter().map(|v| v.map(|ms| ms.div_euclid(MS_PER_DAY))).collect()
        }
        other => {
            return Err(Error::Schema { column: name, expected: "dates".into(), found: other.to_string() });
        }
    };
    days.into_iter()
        .enumerate()
        .map(|(row, day)| {
            let day = day.ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "a date in every row".into(),
                found: format!("null in row {row}"),
            })?;
            calendar_day(day).ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "a date from year 1 to 9999".into(),
                found: format!("day {day} after 1970-01-01 in row {row}"),
            })
        })
        .collect()
}

/// Day numbers (days after 1970-01-01) from 0001-01-01 to 9999-12-31: every date in and
/// between a history and its forecasts stays in this range, so their arithmetic cannot
/// overflow.
pub(super) const CALENDAR_DAYS: std::ops::RangeInclusive<i32> = -719_162..=2_932_896;

/// `day` as a day number, when it is inside [`CALENDAR_DAYS`].
fn calendar_day(day: i64) -> Option<i32> {
    i32::try_from(day).ok().filter(|day| CALENDAR_DAYS.contains(day))
}
