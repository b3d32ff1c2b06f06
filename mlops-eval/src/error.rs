/// Everything that can go wrong while evaluating or validating.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A column is missing or of the wrong type; names the column.
    #[error(transparent)]
    Core(#[from] mlops_core::Error),
    /// Reading or writing the registry failed.
    #[error(transparent)]
    Registry(#[from] mlops_registry::Error),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A version lacks a tag that validation needs.
    #[error("version {version} of model `{model}` has no `{tag}` tag")]
    MissingTag {
        /// Model name.
        model: String,
        /// Version number.
        version: u64,
        /// The missing tag.
        tag: String,
    },
    /// A chat model (judge or model under test) failed.
    #[cfg(feature = "genai")]
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    /// A report or one of its plots could not be written.
    #[error("writing the report `{path}`: {reason}")]
    Report {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Some alerts could not be delivered (the others were).
    #[error("{failed} of {total} alerts could not be delivered; the first: {first}")]
    AlertDelivery {
        /// Alerts that failed.
        failed: usize,
        /// Alerts sent.
        total: usize,
        /// The first failure, with its alert.
        first: String,
    },
    /// Polars failed while reading a frame.
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),
}

/// `Result` with [`enum@Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
