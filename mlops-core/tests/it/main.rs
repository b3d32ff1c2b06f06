//! Integration tests of mlops-core, one binary.

mod model;
mod package;
mod preprocess;
mod signature;
mod tabular;
mod uri;
