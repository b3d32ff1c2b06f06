/// Everything that can go wrong in a registry.
///
/// Callers branch on the variant: [`Error::NotFound`] for an unknown model, version or alias;
/// [`Error::AlreadyExists`] when creating what exists; [`Error::Precondition`] when a
/// compare-and-swap alias move lost; [`Error::InUse`] when deleting what an alias refers to; [`Error::NotImplemented`] for a capability a backend
/// lacks.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model, version or alias does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. "version 3 of model `transactions`".
        what: String,
    },
    /// The thing being created exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists, e.g. "model `transactions`".
        what: String,
    },
    /// A compare-and-swap alias move found the alias somewhere else than expected.
    #[error(
        "alias `{alias}` of model `{model}` points at {}, expected {}",
        describe(.found), describe(.expected)
    )]
    Precondition {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
        /// The version the caller expected the alias to point at (`None`: unset).
        expected: Option<u64>,
        /// The version it points at (`None`: unset).
        found: Option<u64>,
    },
    /// The thing cannot be deleted while something still refers to it.
    #[error("{what} is in use: {reason}")]
    InUse {
        /// What was to be deleted, e.g. "version 3 of model `transactions`".
        what: String,
        /// What refers to it and the way out, e.g. "alias `champion` points at it; move it first".
        reason: String,
    },
    /// The authorization policy refused the call.
    #[error("principal `{principal}` may not {action} model `{model}`: {reason}")]
    PermissionDenied {
        /// Who called.
        principal: String,
        /// What they tried, e.g. "set alias `champion` of".
        action: String,
        /// The model.
        model: String,
        /// The policy's reason.
        reason: String,
    },
    /// An argument is malformed or out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend cannot do this.
    #[error("{backend} registry does not support {operation}")]
    NotImplemented {
        /// The backend.
        backend: &'static str,
        /// The unsupported operation.
        operation: String,
    },
    /// A stored registry document does not parse; the message names it and the way back.
    #[error("corrupt registry document: {0}")]
    Corrupt(String),
    /// A model package or model-level error (corrupted artifact, unknown flavor, ...).
    #[error(transparent)]
    Core(#[from] mlops_core::Error),
    /// The storage backend failed.
    #[error("{context}: {source}")]
    Backend {
        /// What the registry was doing.
        context: String,
        /// The backend's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn describe(version: &Option<u64>) -> String {
    version.map_or_else(|| "no version (unset)".to_owned(), |v| format!("version {v}"))
}

/// `Result` with [`enum@Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The variant's name in snake case (`not_found`, `precondition`, `backend`, ...): a
    /// label of bounded cardinality for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Precondition { .. } => "precondition",
            Self::InUse { .. } => "in_use",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::InvalidArgument(_) => "invalid_argument",
            Self::NotImplemented { .. } => "not_implemented",
            Self::Corrupt(_) => "corrupt",
            Self::Core(_) => "core",
            Self::Backend { .. } => "backend",
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub(crate) fn backend(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend { context: context.into(), source: Box::new(source) }
    }
}

pub(crate) fn model_not_found(name: &mlops_core::ModelName) -> Error {
    Error::not_found(format!("model `{name}`"))
}

pub(crate) fn version_not_found(name: &mlops_core::ModelName, version: u64) -> Error {
    Error::not_found(format!("version {version} of model `{name}`"))
}

/// [`Error::InUse`] when an alias of `model` points at `version`.
pub(crate) fn refuse_if_aliased(model: &crate::RegisteredModel, version: u64) -> Result<()> {
    let aliases: Vec<&str> = model.aliases.iter().filter(|(_, v)| **v == version).map(|(a, _)| a.as_str()).collect();
    if aliases.is_empty() {
        return Ok(());
    }
    Err(Error::InUse {
        what: format!("version {version} of model `{}`", model.name),
        reason: format!("alias `{}` points at it; move or delete it first", aliases.join("`, `")),
    })
}

pub(crate) fn alias_not_found(name: &mlops_core::ModelName, alias: &str) -> Error {
    Error::not_found(format!("alias `{alias}` of model `{name}`"))
}
