//! Thresholds on monitoring metrics, the alerts they raise, and where alerts go.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A drift statistic of the drift table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftMetric {
    /// Population stability index over bins (numeric columns: the reference's deciles).
    Psi,
    /// Jensen-Shannon distance (base 2) over the same bins.
    JensenShannon,
    /// Two-sample Kolmogorov-Smirnov statistic (numeric columns only).
    KolmogorovSmirnov,
    /// First Wasserstein distance, in the column's unit (numeric columns only).
    Wasserstein,
}

impl DriftMetric {
    /// Every drift metric, in the drift table's order.
    pub const ALL: [Self; 4] = [Self::Psi, Self::JensenShannon, Self::KolmogorovSmirnov, Self::Wasserstein];

    /// The name in the drift table's `metric` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::Psi => "psi",
            Self::JensenShannon => "js_distance",
            Self::KolmogorovSmirnov => "ks_statistic",
            Self::Wasserstein => "wasserstein",
        }
    }
}

/// What a window is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The baseline frame (training or validation data).
    Baseline,
    /// The same version's previous window with rows.
    PreviousWindow,
}

impl Reference {
    /// The name in the drift table's `reference` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::PreviousWindow => "previous_window",
        }
    }
}

/// When a value raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The value is greater than this.
    Above(f64),
    /// The value is less than this.
    Below(f64),
}

impl Condition {
    /// Whether `value` raises an alert.
    pub fn holds(self, value: f64) -> bool {
        match self {
            Self::Above(limit) => value > limit,
            Self::Below(limit) => value < limit,
        }
    }

    /// The threshold.
    pub fn limit(self) -> f64 {
        match self {
            Self::Above(limit) | Self::Below(limit) => limit,
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Above(limit) => write!(f, "above {limit}"),
            Self::Below(limit) => write!(f, "below {limit}"),
        }
    }
}

/// Which table a rule reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Target {
    Drift(DriftMetric),
    Profile(String),
}

/// A threshold on a drift or profile metric, for every column or one.
///
/// ```
/// use mlops_eval::monitor::{AlertRule, DriftMetric, Reference};
///
/// let rules = [
///     AlertRule::drift_above(DriftMetric::Psi, 0.25).against(Reference::Baseline),
///     AlertRule::profile_above("null_rate", 0.05).on_column("Amount"),
///     AlertRule::profile_below("accuracy", 0.8),
/// ];
/// assert_eq!(rules[0].to_string(), "psi against the baseline above 0.25");
/// assert_eq!(rules[1].to_string(), "null_rate of `Amount` above 0.05");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub(crate) target: Target,
    pub(crate) column: Option<String>,
    pub(crate) reference: Option<Reference>,
    pub(crate) condition: Condition,
}

impl AlertRule {
    /// Alerts when a drift metric exceeds `limit`, against either reference unless
    /// [`against`](Self::against) picks one.
    pub fn drift_above(metric: DriftMetric, limit: f64) -> Self {
        Self { target: Target::Drift(metric), column: None, reference: None, condition: Condition::Above(limit) }
    }

    /// Alerts when a profile metric (`null_rate`, `mean`, `accuracy`, `rmse`, ... — see
    /// [`PROFILE_METRICS`](super::PROFILE_METRICS)) exceeds `limit`.
    pub fn profile_above(metric: impl Into<String>, limit: f64) -> Self {
        Self {
            target: Target::Profile(metric.into()),
            column: None,
            reference: None,
            condition: Condition::Above(limit),
        }
    }

    /// Alerts when a profile metric falls below `limit`.
    pub fn profile_below(metric: impl Into<String>, limit: f64) -> Self {
        Self {
            target: Target::Profile(metric.into()),
            column: None,
            reference: None,
            condition: Condition::Below(limit),
        }
    }

    /// Only this column (`:table` for the row count and quality metrics).
    pub fn on_column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    /// Only drift against this reference; a profile rule refuses it when the monitor runs.
    pub fn against(mut self, reference: Reference) -> Self {
        self.reference = Some(reference);
        self
    }

    /// The metric's name, as in the tables' `metric` column.
    pub fn metric(&self) -> &str {
        match &self.target {
            Target::Drift(metric) => metric.name(),
            Target::Profile(metric) => metric,
        }
    }

    /// The threshold and its direction.
    pub fn condition(&self) -> Condition {
        self.condition
    }

    pub(crate) fn matches(&self, column: &str, metric: &str, reference: Option<Reference>) -> bool {
        let same_target = match &self.target {
            Target::Drift(m) => m.name() == metric && reference.is_some(),
            Target::Profile(m) => m == metric && reference.is_none(),
        };
        let same_reference = self.reference.is_none() || self.reference == reference;
        same_target && same_reference && self.column.as_deref().is_none_or(|c| c == column)
    }
}

impl std::fmt::Display for AlertRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.metric())?;
        if let Some(column) = &self.column {
            write!(f, " of `{column}`")?;
        }
        if let Some(reference) = self.reference {
            f.write_str(match reference {
                Reference::Baseline => " against the baseline",
                Reference::PreviousWindow => " against the previous window",
            })?;
        }
        write!(f, " {}", self.condition)
    }
}

/// A metric of one window and version that crossed a rule's threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The window's first instant.
    pub window_start: DateTime<Utc>,
    /// The instant after the window.
    pub window_end: DateTime<Utc>,
    /// The model version, as text.
    pub model_version: String,
    /// The column (`:table` for table-level metrics).
    pub column: String,
    /// The metric's name.
    pub metric: String,
    /// For drift metrics, what the window was compared with.
    pub reference: Option<Reference>,
    /// The metric's value.
    pub value: f64,
    /// The rule's threshold.
    pub condition: Condition,
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to {}, version {}: {} of `{}`",
            self.window_start.format("%Y-%m-%d %H:%M"),
            self.window_end.format("%H:%M UTC"),
            self.model_version,
            self.metric,
            self.column
        )?;
        if let Some(reference) = self.reference {
            write!(f, " against the {}", reference.name().replace('_', " "))?;
        }
        write!(f, " is {:.4}, {}", self.value, self.condition)
    }
}

/// Where alerts go: a pager, a chat channel, a ticket queue. Implemented by the app.
///
/// ```
/// use mlops_eval::monitor::{Alert, AlertSink};
///
/// struct Log;
///
/// #[async_trait::async_trait]
/// impl AlertSink for Log {
///     async fn send(&self, alert: &Alert) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///         eprintln!("ALERT {alert}");
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Delivers one alert.
    ///
    /// # Errors
    /// Whatever kept the alert from being delivered.
    async fn send(&self, alert: &Alert) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}
