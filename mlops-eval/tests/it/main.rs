//! Integration tests of mlops-eval, one binary.

mod metrics;
mod validation;
