//! Shared pieces of the runnable examples and benchmarks: the seeded synthetic
//! "streaming transactions" data set of the reference workflow.

pub mod transactions;
