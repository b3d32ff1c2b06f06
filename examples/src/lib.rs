//! Shared pieces of the runnable examples and benchmarks: the seeded synthetic
//! "streaming transactions" data set of the reference workflow, and the small
//! retrieval-augmented assistant the evaluation example grades.

pub mod rag;
pub mod transactions;
