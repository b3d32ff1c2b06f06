//! Integration tests of mlops-core, one binary.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod boosted;
mod features;
mod forecast;
mod image_classifier;
mod json_frame;
mod mlflow;
mod model;
mod onnx;
mod package;
mod preprocess;
mod python;
mod signature;
mod tabular;
mod uri;
