//! Shared pieces of the runnable examples and benchmarks: the seeded synthetic
//! "streaming transactions" data set of the reference workflow, the seeded daily sales set
//! the forecasting example trains on, the seeded coloured-shapes images the image
//! classifier learns, and the small retrieval-augmented assistant the evaluation example
//! grades; opening a registry named on a command line, and the flags of the Ballista
//! scheduler and executor.

#[cfg(feature = "ballista")]
pub mod cluster;
#[cfg(feature = "genai")]
pub mod rag;
pub mod registries;
pub mod sales;
#[cfg(feature = "image")]
pub mod shapes;
pub mod transactions;
