use std::path::PathBuf;

/// Everything that can go wrong in `mlops-core`.
///
/// Variants name the thing at fault (column, file, flavor, URI position) so a caller can
/// report it or branch on it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model URI could not be parsed.
    #[error("invalid model uri `{uri}` at byte {position}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// Byte offset of the first offending character.
        position: usize,
        /// What is wrong there.
        reason: String,
    },
    /// Required input columns are absent from a frame.
    #[error("missing required columns: {}", .columns.join(", "))]
    MissingColumns {
        /// Every missing column, in signature order.
        columns: Vec<String>,
    },
    /// A column exists but its type or content breaks the schema.
    #[error("column `{column}`: expected {expected}, found {found}")]
    Schema {
        /// The offending column.
        column: String,
        /// What the schema asks for.
        expected: String,
        /// What the frame holds.
        found: String,
    },
    /// An argument or parameter is out of its domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A package file does not match the checksum its manifest records.
    #[error("checksum mismatch for package file `{path}`: manifest records {expected}, file has {found}")]
    Checksum {
        /// Path of the file inside the package.
        path: String,
        /// The sha256 the manifest records.
        expected: String,
        /// The sha256 of the bytes found.
        found: String,
    },
    /// A package names a flavor no loader is registered for.
    #[error("unknown model flavor `{flavor}` (registered flavors: {})", .known.join(", "))]
    UnknownFlavor {
        /// The flavor named by the package.
        flavor: String,
        /// The flavors the registry can load.
        known: Vec<String>,
    },
    /// A package of a built-in flavor that this build leaves out.
    #[error("model flavor `{flavor}` is not in this build: turn on feature `{feature}` of mlops-core")]
    FlavorNotBuilt {
        /// The flavor named by the package.
        flavor: String,
        /// The feature of `mlops-core` that builds it in.
        feature: &'static str,
    },
    /// An MLflow model whose flavor no registered loader runs.
    #[error(
        "MLflow model of flavor `{flavor}` cannot run here: {advice} (the model's flavors: {}; loaders here: {})",
        .flavors.join(", "), .known.join(", ")
    )]
    UnsupportedMlflowFlavor {
        /// The model's own flavor (`sklearn`, `pytorch`, ...).
        flavor: String,
        /// Every flavor its `MLmodel` lists.
        flavors: Vec<String>,
        /// The flavors the registry can load.
        known: Vec<String>,
        /// The export that would run here.
        advice: String,
    },
    /// A package is structurally broken: a file is missing, or the manifest is unreadable.
    #[error("invalid model package: {0}")]
    InvalidPackage(String),
    /// Training failed.
    #[error("fitting {model} failed: {reason}")]
    Fit {
        /// Which model or transform was being fitted.
        model: String,
        /// Why it failed.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{operation} `{}`: {source}", .path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A document could not be serialized or deserialized.
    #[error("{what}: {source}")]
    Json {
        /// The document involved.
        what: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Polars reported an error while working on a frame.
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),
    /// A tensor operation failed (shapes that do not fit, weights missing from a
    /// safetensors file).
    #[error("tensor operation failed: {0}")]
    Tensor(String),
    /// Code that should have returned an error panicked instead (a model's or a loader's);
    /// the panic was caught, so the caller goes on.
    #[error("{what} failed unexpectedly: {message}")]
    Panicked {
        /// What was being done.
        what: String,
        /// The panic's message.
        message: String,
    },
}

/// `Result` with [`enum@Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { operation, path: path.into(), source }
    }

    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json { what: what.into(), source }
    }
}

/// Runs `work`, turning a panic into [`Error::Panicked`] naming `what`, so a model, a
/// loader or a file they read cannot take down a thread that serves other work.
///
/// ```
/// use mlops_core::{Error, catching_panics};
///
/// let outcome: mlops_core::Result<()> = catching_panics("scoring batch 3", || panic!("index out of bounds"));
/// assert!(matches!(outcome, Err(Error::Panicked { .. })));
/// assert_eq!(catching_panics("adding", || Ok(1 + 1))?, 2);
/// # Ok::<(), Error>(())
/// ```
///
/// # Errors
/// `work`'s own errors, and [`Error::Panicked`].
pub fn catching_panics<T>(what: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|payload| Err(Error::Panicked { what: what.to_owned(), message: panic_message(&*payload) }))
}

/// The message a panic carried (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(feature = "image")]
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Self::Tensor(e.to_string())
    }
}
