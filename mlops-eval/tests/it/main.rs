//! Integration tests of mlops-eval, one binary.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod compare;
mod genai;
mod judge;
mod llm;
mod metrics;
mod monitor;
mod text;
mod validation;
