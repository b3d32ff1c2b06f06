//! Watching models in production: drift of a column's distribution between a baseline and
//! a window of an inference table.

mod drift;

pub use drift::{
    EMPTY_BIN_FLOOR, bin_proportions, jensen_shannon_distance, kolmogorov_smirnov, population_stability_index,
    quantile_edges, wasserstein,
};
