//! The range a metric's scores fall in.

use serde::{Deserialize, Serialize};

/// The range scores must fall in (1-5 by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreScale {
    /// Lowest score.
    pub min: f64,
    /// Highest score.
    pub max: f64,
}

impl Default for ScoreScale {
    fn default() -> Self {
        Self { min: 1.0, max: 5.0 }
    }
}
