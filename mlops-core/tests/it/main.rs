//! Integration tests of mlops-core, one binary.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod features;
mod forecast;
mod image_classifier;
mod model;
mod package;
mod preprocess;
mod signature;
mod tabular;
mod uri;
