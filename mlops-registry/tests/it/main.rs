//! Integration tests of mlops-registry, one binary: the conformance suite every backend
//! runs, then backend-specific behaviour.

mod conformance;
mod failures;
mod local;
mod memory;
