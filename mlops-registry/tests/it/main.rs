//! Integration tests of mlops-registry, one binary: the conformance suite every backend
//! runs, then backend-specific behaviour.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod audit;
mod chaos;
mod copying;
mod events;
mod failures;
mod governance;
mod live;
mod local;
mod memory;
mod mlflow;
mod processes;
mod revisions;
mod s3;
mod servers;
mod stores;
mod version_numbers;
mod webhooks;
