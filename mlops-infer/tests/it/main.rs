//! Integration tests of mlops-infer, one binary.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "ballista")]
mod ballista;
mod batch;
#[cfg(feature = "delta")]
mod features;
#[cfg(feature = "delta")]
mod inference_table;
#[cfg(feature = "serve")]
mod observability;
#[cfg(feature = "serve")]
mod python_models;
#[cfg(feature = "delta")]
mod scale_out;
#[cfg(feature = "serve")]
mod serve;
#[cfg(feature = "serve")]
mod serve_limits;
#[path = "../../../mlops-registry/tests/it/servers.rs"]
#[allow(dead_code)]
mod servers;
#[cfg(feature = "sql")]
mod sql;
#[cfg(feature = "delta")]
mod streaming;
