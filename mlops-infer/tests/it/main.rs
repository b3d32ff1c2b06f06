//! Integration tests of mlops-infer, one binary.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod batch;
