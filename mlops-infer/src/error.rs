/// Everything that can go wrong while scoring.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model-level error: schema violations name the column.
    #[error(transparent)]
    Core(#[from] mlops_core::Error),
    /// Resolving or loading the model failed.
    #[error(transparent)]
    Registry(#[from] mlops_registry::Error),
    /// An argument is out of range, or the input clashes with an output column.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A model broke the [`Model`](mlops_core::Model) contract.
    #[error("model `{model}` version {version}: {problem}")]
    ModelContract {
        /// Model name.
        model: String,
        /// Model version.
        version: u64,
        /// What it did wrong.
        problem: String,
    },
    /// Reading or writing a file failed.
    #[error("{operation} `{}`: {source}", .path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model source held no model when one was needed (a
    /// [`ModelSlot`](mlops_registry::ModelSlot) not filled yet).
    #[error("{0}: the model source holds no model yet")]
    ModelNotLoaded(String),
    /// Polars failed while reading, combining or writing frames.
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),
    /// A Delta table could not be read or written.
    #[cfg(feature = "delta")]
    #[error("{context}: {source}")]
    Delta {
        /// What was being done, naming the table.
        context: String,
        /// Delta Lake's error.
        source: deltalake::DeltaTableError,
    },
    /// An object store (input files, checkpoint, Parquet sink) failed.
    #[cfg(feature = "stream")]
    #[error("{context}: {source}")]
    Storage {
        /// What was being done, naming the object.
        context: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A stream's checkpoint holds an offset that does not parse as one of its source's:
    /// the file is damaged, or another kind of stream wrote it. The stream does not guess
    /// past it (a wrong guess scores records twice or never); an operator who finds the file
    /// damaged sets it aside with
    /// [`Checkpoint::set_offset_aside`](crate::stream::Checkpoint::set_offset_aside).
    #[cfg(feature = "stream")]
    #[error(
        "checkpoint offset `{path}` is not an offset of this stream's source ({problem}); if the file is damaged, set it aside with `Checkpoint::set_offset_aside({batch})` and the batch is planned again"
    )]
    CorruptCheckpoint {
        /// The offset file.
        path: String,
        /// The batch it plans.
        batch: u64,
        /// Why it does not parse.
        problem: String,
    },
    /// Frames could not be converted to or from Arrow.
    #[cfg(feature = "delta")]
    #[error("{context}: {source}")]
    Arrow {
        /// What was being converted.
        context: String,
        /// Arrow's error.
        source: deltalake::arrow::error::ArrowError,
    },
    /// A query could not be planned or run.
    #[cfg(feature = "sql")]
    #[error("{context}: {source}")]
    Query {
        /// What was being done.
        context: String,
        /// DataFusion's error.
        source: deltalake::datafusion::error::DataFusionError,
    },
}

impl Error {
    /// Whether the same work may succeed when tried again: a store, a table or a file could
    /// not be reached, as opposed to input, a model or a file's content that is at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io { .. } | Self::ModelNotLoaded(_) => true,
            #[cfg(feature = "stream")]
            Self::Storage { .. } => true,
            #[cfg(feature = "delta")]
            Self::Delta { .. } => true,
            Self::Registry(mlops_registry::Error::Backend { .. }) => true,
            #[cfg(feature = "sql")]
            Self::Query { source, .. } => matches!(
                source,
                deltalake::datafusion::error::DataFusionError::ObjectStore(_)
                    | deltalake::datafusion::error::DataFusionError::IoError(_)
            ),
            _ => false,
        }
    }
}

#[cfg(feature = "delta")]
impl Error {
    pub(crate) fn delta(context: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        Self::Delta { context: context.into(), source }
    }
}

#[cfg(feature = "stream")]
impl Error {
    pub(crate) fn storage(context: impl Into<String>, source: object_store::Error) -> Self {
        Self::Storage { context: context.into(), source }
    }
}

/// `Result` with [`enum@Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(feature = "sql")]
impl Error {
    /// A DataFusion error as ours: an error of this crate raised inside a query comes back as
    /// it was (unwrapped from the context and sharing DataFusion adds as it passes the error
    /// between operators), anything else is wrapped with `context`.
    pub(crate) fn query(context: impl Into<String>, source: deltalake::datafusion::error::DataFusionError) -> Self {
        use deltalake::datafusion::error::DataFusionError as E;
        let context = context.into();
        let mut source = source;
        loop {
            source = match source {
                E::External(inner) => match inner.downcast::<Self>() {
                    Ok(ours) => return *ours,
                    Err(other) => return Self::Query { context, source: E::External(other) },
                },
                E::Context(_, inner) => *inner,
                // Shared by several consumers, it cannot be taken out: the wrapped error still
                // shows it in full.
                E::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                    Ok(inner) => inner,
                    Err(shared) => return Self::Query { context, source: E::Shared(shared) },
                },
                other => return Self::Query { context, source: other },
            };
        }
    }
}
