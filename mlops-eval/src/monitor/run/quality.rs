//! Quality metrics per window, on the rows that have a label.

use crate::metrics::{Task, classification_metrics, regression_metrics};
use crate::monitor::columns::Labels;
use crate::monitor::report::ProfileRow;
use crate::monitor::windows::Group;

/// Quality metrics of the group's labeled rows with a prediction.
pub(super) fn quality(group: &Group, labels: &Labels, predictions: &[f64], task: Task) -> Vec<ProfileRow> {
    let metrics = match labels {
        Labels::Binary(labels) => {
            let (mut truth, mut scores) = (Vec::new(), Vec::new());
            for r in &group.rows {
                let (label, score) = (labels[*r as usize], predictions[*r as usize]);
                if let Some(label) = label
                    && score.is_finite()
                {
                    truth.push(label);
                    scores.push(score);
                }
            }
            let threshold = match task {
                Task::Classification { threshold } => threshold,
                Task::Regression => 0.5,
            };
            (truth.len(), classification_metrics(&truth, &scores, threshold))
        }
        Labels::Numeric(labels) => {
            let (mut truth, mut estimates) = (Vec::new(), Vec::new());
            for r in &group.rows {
                let (label, estimate) = (labels[*r as usize], predictions[*r as usize]);
                if label.is_finite() && estimate.is_finite() {
                    truth.push(label);
                    estimates.push(estimate);
                }
            }
            (truth.len(), regression_metrics(&truth, &estimates))
        }
    };
    let (labeled, metrics) = metrics;
    std::iter::once(ProfileRow::table(group, "labeled_count", labeled as f64))
        .chain(metrics.into_iter().map(|(metric, value)| ProfileRow::table(group, metric, value)))
        .collect()
}
