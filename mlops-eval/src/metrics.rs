//! Classic metrics: classification on probabilities, regression on estimates.

use std::collections::BTreeMap;

use polars::prelude::{Column, DataFrame, DataType};

use crate::error::{Error, Result};

/// Probabilities are clipped to `[EPS, 1 - EPS]` in log loss, as scikit-learn does.
const LOG_LOSS_EPS: f64 = 1e-15;

/// Metric name -> value. Metrics undefined on the data (ROC AUC with one class present)
/// are absent rather than NaN.
pub type Metrics = BTreeMap<String, f64>;

/// What kind of predictions are evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// Binary classification: labels 0/1 (or booleans), predictions are probabilities of 1;
    /// a row is predicted positive when its probability is at least `threshold`.
    Classification {
        /// Decision threshold, in (0, 1).
        threshold: f64,
    },
    /// Regression: numeric labels and estimates.
    Regression,
}

impl Task {
    /// Binary classification with threshold 0.5.
    pub fn classification() -> Self {
        Self::Classification { threshold: 0.5 }
    }
}

/// Log loss, accuracy, precision, recall, F1 and ROC AUC of probabilities against 0/1 labels.
///
/// ```
/// let m = mlops_eval::classification_metrics(&[true, false, true, false], &[0.9, 0.2, 0.4, 0.6], 0.5);
/// assert_eq!(m["accuracy"], 0.5);
/// assert_eq!(m["roc_auc"], 0.75);
/// assert!((m["log_loss"] - 0.5403).abs() < 1e-4);
/// ```
pub fn classification_metrics(labels: &[bool], probabilities: &[f64], threshold: f64) -> Metrics {
    let n = labels.len().min(probabilities.len());
    let mut metrics = Metrics::new();
    if n == 0 {
        return metrics;
    }
    let (mut tp, mut fp, mut tn, mut fn_) = (0usize, 0usize, 0usize, 0usize);
    let mut loss = 0.0;
    for (&label, &p) in labels.iter().zip(probabilities) {
        let p_clipped = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
        loss -= if label { p_clipped.ln() } else { (1.0 - p_clipped).ln() };
        match (label, p >= threshold) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
    }
    let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    metrics.insert("log_loss".into(), loss / n as f64);
    metrics.insert("accuracy".into(), ratio(tp + tn, n));
    metrics.insert("precision".into(), precision);
    metrics.insert("recall".into(), recall);
    metrics.insert("f1".into(), f1);
    if let Some(auc) = roc_auc(&labels[..n], &probabilities[..n]) {
        metrics.insert("roc_auc".into(), auc);
    }
    metrics
}

/// ROC AUC by the rank-sum (Mann-Whitney U) formula, ties getting their average rank.
/// `None` when only one class is present.
fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks are 1-based; a tie group shares the mean of its ranks.
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        positive_rank_sum += mean_rank * order[start..end].iter().filter(|&&i| labels[i]).count() as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// RMSE, MAE, MAPE and R² of estimates against labels. MAPE is scikit-learn's: a
/// fraction, not a percentage, each error divided by `max(|label|, f64::EPSILON)`.
///
/// ```
/// let m = mlops_eval::regression_metrics(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
/// assert!((m["rmse"] - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
/// assert!((m["mae"] - 1.0 / 3.0).abs() < 1e-12);
/// assert!((m["r2"] - 0.5).abs() < 1e-12);
/// assert!((m["mape"] - 1.0 / 9.0).abs() < 1e-12);
/// ```
pub fn regression_metrics(labels: &[f64], estimates: &[f64]) -> Metrics {
    let n = labels.len().min(estimates.len());
    let mut metrics = Metrics::new();
    if n == 0 {
        return metrics;
    }
    let mean = labels[..n].iter().sum::<f64>() / n as f64;
    let (mut squared, mut absolute, mut relative, mut total) = (0.0, 0.0, 0.0, 0.0);
    for (&y, &e) in labels.iter().zip(estimates) {
        squared += (y - e) * (y - e);
        absolute += (y - e).abs();
        relative += (y - e).abs() / y.abs().max(f64::EPSILON);
        total += (y - mean) * (y - mean);
    }
    metrics.insert("rmse".into(), (squared / n as f64).sqrt());
    metrics.insert("mae".into(), absolute / n as f64);
    metrics.insert("mape".into(), relative / n as f64);
    if total > 0.0 {
        metrics.insert("r2".into(), 1.0 - squared / total);
    }
    metrics
}

/// Which columns to evaluate, how, and which columns to slice by.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluate {
    label: String,
    prediction: String,
    task: Task,
    slice_by: Vec<String>,
}

/// Metrics of one slice: rows where `column == value`.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceMetrics {
    /// The slicing column.
    pub column: String,
    /// The slice's value, as text.
    pub value: String,
    /// Rows in the slice.
    pub rows: usize,
    /// The slice's metrics.
    pub metrics: Metrics,
}

/// Overall and per-slice metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Rows evaluated.
    pub rows: usize,
    /// Metrics over all rows.
    pub overall: Metrics,
    /// Metrics per slice, by column then value.
    pub slices: Vec<SliceMetrics>,
}

impl Evaluation {
    /// One row per (slice, metric): columns `slice_column`, `slice_value`, `rows`, `metric`,
    /// `value`; the overall metrics have null slice columns.
    ///
    /// # Errors
    /// [`Error::Polars`] if the frame cannot be built.
    pub fn to_frame(&self) -> Result<DataFrame> {
        let (mut columns, mut values, mut rows, mut metrics, mut numbers) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let overall = std::iter::once((None, None, self.rows, &self.overall));
        let slices = self.slices.iter().map(|s| (Some(s.column.as_str()), Some(s.value.as_str()), s.rows, &s.metrics));
        for (column, value, count, m) in overall.chain(slices) {
            for (name, number) in m {
                columns.push(column);
                values.push(value);
                rows.push(count as u64);
                metrics.push(name.as_str());
                numbers.push(*number);
            }
        }
        let height = numbers.len();
        Ok(DataFrame::new(
            height,
            vec![
                Column::new("slice_column".into(), columns),
                Column::new("slice_value".into(), values),
                Column::new("rows".into(), rows),
                Column::new("metric".into(), metrics),
                Column::new("value".into(), numbers),
            ],
        )?)
    }
}

impl Evaluate {
    /// Evaluates `prediction` against `label` for `task`.
    pub fn new(label: impl Into<String>, prediction: impl Into<String>, task: Task) -> Self {
        Self { label: label.into(), prediction: prediction.into(), task, slice_by: Vec::new() }
    }

    /// Also computes metrics per distinct value of each of `columns`.
    pub fn slice_by<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.slice_by.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Computes the metrics on `frame`.
    ///
    /// ```
    /// use mlops_eval::{Evaluate, Task};
    /// use polars::prelude::*;
    ///
    /// let scored = df!(
    ///     "Label" => [1, 0, 1, 0],
    ///     "prediction" => [0.9, 0.1, 0.3, 0.2],
    ///     "Product" => ["A", "A", "B", "B"],
    /// )?;
    /// let evaluation = Evaluate::new("Label", "prediction", Task::classification()).slice_by(["Product"]).run(&scored)?;
    /// assert_eq!(evaluation.overall["accuracy"], 0.75);
    /// assert_eq!(evaluation.slices[0].value, "A");
    /// assert_eq!(evaluation.slices[0].metrics["accuracy"], 1.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Core`] naming a missing column or one of the wrong type (labels must be 0/1
    /// or boolean for classification; predictions numeric), or holding nulls;
    /// [`Error::InvalidArgument`] for a threshold outside (0, 1).
    pub fn run(&self, frame: &DataFrame) -> Result<Evaluation> {
        if let Task::Classification { threshold } = self.task
            && !(threshold > 0.0 && threshold < 1.0)
        {
            return Err(Error::InvalidArgument(format!("threshold must be in (0, 1), got {threshold}")));
        }
        let predictions = numeric_values(column(frame, &self.prediction)?)?;
        let labels = Labels::read(column(frame, &self.label)?, self.task)?;
        let overall = labels.metrics(&predictions, None);
        let mut slices = Vec::new();
        for name in &self.slice_by {
            let keys = column(frame, name)?.cast(&DataType::String)?;
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (row, key) in keys.str()?.iter().enumerate() {
                groups.entry(key.unwrap_or("null").to_owned()).or_default().push(row);
            }
            for (value, rows) in groups {
                let metrics = labels.metrics(&predictions, Some(&rows));
                slices.push(SliceMetrics { column: name.clone(), value, rows: rows.len(), metrics });
            }
        }
        Ok(Evaluation { rows: frame.height(), overall, slices })
    }
}

/// `frame`'s column `name`, or an error naming it.
pub(crate) fn column<'a>(frame: &'a DataFrame, name: &str) -> Result<&'a Column> {
    frame.column(name).map_err(|_| Error::Core(mlops_core::Error::MissingColumns { columns: vec![name.to_owned()] }))
}

fn non_null(column: &Column) -> Result<()> {
    let nulls = column.null_count();
    if nulls > 0 {
        return Err(Error::Core(mlops_core::Error::Schema {
            column: column.name().to_string(),
            expected: "no nulls".into(),
            found: format!("{nulls} null values"),
        }));
    }
    Ok(())
}

fn numeric_values(column: &Column) -> Result<Vec<f64>> {
    if !column.dtype().is_primitive_numeric() {
        return Err(Error::Core(mlops_core::Error::Schema {
            column: column.name().to_string(),
            expected: "numeric values".into(),
            found: column.dtype().to_string(),
        }));
    }
    non_null(column)?;
    Ok(column.cast(&DataType::Float64)?.f64()?.no_null_iter().collect())
}

enum Labels {
    Binary { labels: Vec<bool>, threshold: f64 },
    Numeric(Vec<f64>),
}

impl Labels {
    fn read(column: &Column, task: Task) -> Result<Self> {
        match task {
            Task::Regression => Ok(Self::Numeric(numeric_values(column)?)),
            Task::Classification { threshold } => {
                non_null(column)?;
                let bad = |found: String| {
                    Error::Core(mlops_core::Error::Schema {
                        column: column.name().to_string(),
                        expected: "binary labels 0/1 or booleans".into(),
                        found,
                    })
                };
                if column.dtype() == &DataType::Boolean {
                    return Ok(Self::Binary { labels: column.bool()?.no_null_iter().collect(), threshold });
                }
                if !column.dtype().is_integer() {
                    return Err(bad(column.dtype().to_string()));
                }
                column
                    .cast(&DataType::Int64)?
                    .i64()?
                    .no_null_iter()
                    .map(|v| match v {
                        0 => Ok(false),
                        1 => Ok(true),
                        other => Err(bad(format!("label {other}"))),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(|labels| Self::Binary { labels, threshold })
            }
        }
    }

    fn metrics(&self, predictions: &[f64], rows: Option<&[usize]>) -> Metrics {
        fn pick<T: Copy>(values: &[T], rows: Option<&[usize]>) -> Vec<T> {
            match rows {
                Some(rows) => rows.iter().map(|&r| values[r]).collect(),
                None => values.to_vec(),
            }
        }
        let predictions = pick(predictions, rows);
        match self {
            Self::Binary { labels, threshold } => classification_metrics(&pick(labels, rows), &predictions, *threshold),
            Self::Numeric(labels) => regression_metrics(&pick(labels, rows), &predictions),
        }
    }
}
