//! Model URIs in MLflow's syntax.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The name of a registered model: one to three dot-separated parts
/// (`model`, `schema.model`, `catalog.schema.model`), each made of ASCII letters, digits,
/// `_` and `-`.
///
/// ```
/// use mlops_core::ModelName;
/// let name: ModelName = "main.fraud.transactions".parse()?;
/// assert_eq!(name.parts().collect::<Vec<_>>(), ["main", "fraud", "transactions"]);
/// # Ok::<(), mlops_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelName(String);

impl ModelName {
    /// Validates `name` as a model name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the offending character or part.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_name(&name, &name, 0)?;
        Ok(Self(name))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated parts of the name.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ModelName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for ModelName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<ModelName> for String {
    fn from(name: ModelName) -> Self {
        name.0
    }
}

impl AsRef<str> for ModelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks an alias name: ASCII letters, digits, `_` and `-`; not `latest` (reserved by URIs)
/// and not of the form `v<digits>` (reserved for version references), as MLflow requires.
///
/// ```
/// assert!(mlops_core::check_alias("champion").is_ok());
/// assert!(mlops_core::check_alias("v3").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] saying which rule the alias breaks.
pub fn check_alias(alias: &str) -> Result<()> {
    alias_problem(alias).map_or(Ok(()), |(_, reason)| Err(Error::InvalidArgument(format!("alias `{alias}`: {reason}"))))
}

fn alias_problem(alias: &str) -> Option<(usize, String)> {
    if alias.is_empty() {
        return Some((0, "alias is empty".into()));
    }
    if let Some((i, c)) = alias.char_indices().find(|(_, c)| !is_name_char(*c)) {
        return Some((i, format!("character `{c}` is not allowed in an alias")));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Some((0, "`latest` is reserved".into()));
    }
    let lower = alias.to_ascii_lowercase();
    if lower.len() > 1 && lower.starts_with('v') && lower[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Some((0, "aliases of the form `v<number>` are reserved for versions".into()));
    }
    None
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Validates a model name that starts at byte `offset` of `uri`, reporting positions in `uri`.
fn check_name(uri: &str, name: &str, offset: usize) -> Result<()> {
    let fail = |position: usize, reason: String| {
        if uri.len() == name.len() && offset == 0 {
            Error::InvalidArgument(format!("model name `{name}` at byte {position}: {reason}"))
        } else {
            Error::InvalidUri { uri: uri.to_owned(), position, reason }
        }
    };
    if name.is_empty() {
        return Err(fail(offset, "model name is empty".into()));
    }
    let mut start = 0;
    for (index, part) in name.split('.').enumerate() {
        if index == 3 {
            return Err(fail(offset + start, "a model name has at most three dot-separated parts".into()));
        }
        if part.is_empty() {
            return Err(fail(offset + start, "empty part in model name".into()));
        }
        if let Some((i, c)) = part.char_indices().find(|(_, c)| !is_name_char(*c)) {
            return Err(fail(offset + start + i, format!("character `{c}` is not allowed in a model name")));
        }
        start += part.len() + 1;
    }
    Ok(())
}

/// A reference to a model: by alias, version, latest version, or run artifact.
///
/// Parses and prints MLflow's syntax:
///
/// ```
/// use mlops_core::ModelUri;
/// let uri: ModelUri = "models:/main.fraud.transactions@champion".parse()?;
/// assert_eq!(uri.to_string(), "models:/main.fraud.transactions@champion");
/// assert!(matches!("models:/transactions/3".parse()?, ModelUri::Version { version: 3, .. }));
/// assert!(matches!("models:/transactions/latest".parse()?, ModelUri::Latest { .. }));
/// assert!(matches!("runs:/8c1f/model".parse()?, ModelUri::Run { .. }));
///
/// let err = "models:/transactions/x3".parse::<ModelUri>().unwrap_err();
/// assert!(err.to_string().contains("at byte 21"));
/// # Ok::<(), mlops_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelUri {
    /// `models:/<name>@<alias>`
    Alias {
        /// Registered model name.
        name: ModelName,
        /// Alias, e.g. `champion`.
        alias: String,
    },
    /// `models:/<name>/<version>`
    Version {
        /// Registered model name.
        name: ModelName,
        /// Version number, starting at 1.
        version: u64,
    },
    /// `models:/<name>/latest`
    Latest {
        /// Registered model name.
        name: ModelName,
    },
    /// `runs:/<run_id>/<path>`
    Run {
        /// The run that logged the model.
        run_id: String,
        /// Artifact path of the model inside the run.
        path: String,
    },
}

const MODELS_SCHEME: &str = "models:/";
const RUNS_SCHEME: &str = "runs:/";

impl ModelUri {
    /// `models:/<name>@<alias>`, validated.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed name or alias.
    pub fn alias(name: impl Into<String>, alias: impl Into<String>) -> Result<Self> {
        let alias = alias.into();
        check_alias(&alias)?;
        Ok(Self::Alias { name: ModelName::new(name)?, alias })
    }

    /// `models:/<name>/<version>`, validated.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed name or version 0.
    pub fn version(name: impl Into<String>, version: u64) -> Result<Self> {
        if version == 0 {
            return Err(Error::InvalidArgument("model versions start at 1".into()));
        }
        Ok(Self::Version { name: ModelName::new(name)?, version })
    }

    /// The registered model this URI names, if it is a `models:/` URI.
    pub fn model_name(&self) -> Option<&ModelName> {
        match self {
            Self::Alias { name, .. } | Self::Version { name, .. } | Self::Latest { name } => Some(name),
            Self::Run { .. } => None,
        }
    }
}

impl FromStr for ModelUri {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self> {
        let err = |position: usize, reason: &str| Error::InvalidUri {
            uri: uri.to_owned(),
            position,
            reason: reason.to_owned(),
        };
        if let Some(rest) = uri.strip_prefix(MODELS_SCHEME) {
            let offset = MODELS_SCHEME.len();
            if let Some(at) = rest.find('@') {
                let (name, alias) = (&rest[..at], &rest[at + 1..]);
                check_name(uri, name, offset)?;
                if let Some((i, reason)) = alias_problem(alias) {
                    return Err(err(offset + at + 1 + i, &reason));
                }
                return Ok(Self::Alias { name: ModelName(name.to_owned()), alias: alias.to_owned() });
            }
            let Some(slash) = rest.find('/') else {
                return Err(err(uri.len(), "expected `/<version>`, `/latest` or `@<alias>` after the model name"));
            };
            let (name, reference) = (&rest[..slash], &rest[slash + 1..]);
            check_name(uri, name, offset)?;
            let ref_offset = offset + slash + 1;
            if reference == "latest" {
                return Ok(Self::Latest { name: ModelName(name.to_owned()) });
            }
            if reference.is_empty() {
                return Err(err(ref_offset, "missing version after `/`"));
            }
            if let Some(i) = reference.bytes().position(|b| !b.is_ascii_digit()) {
                return Err(err(ref_offset + i, "a version is a positive integer or `latest`"));
            }
            return match reference.parse::<u64>() {
                Ok(0) => Err(err(ref_offset, "model versions start at 1")),
                Ok(version) => Ok(Self::Version { name: ModelName(name.to_owned()), version }),
                Err(_) => Err(err(ref_offset, "version number is too large")),
            };
        }
        if let Some(rest) = uri.strip_prefix(RUNS_SCHEME) {
            let offset = RUNS_SCHEME.len();
            let Some(slash) = rest.find('/') else {
                return Err(err(uri.len(), "expected `/<artifact path>` after the run id"));
            };
            let (run_id, path) = (&rest[..slash], &rest[slash + 1..]);
            if run_id.is_empty() {
                return Err(err(offset, "run id is empty"));
            }
            if let Some((i, c)) = run_id.char_indices().find(|(_, c)| !is_name_char(*c)) {
                return Err(err(offset + i, &format!("character `{c}` is not allowed in a run id")));
            }
            let path = path.trim_end_matches('/');
            if path.is_empty() {
                return Err(err(offset + slash + 1, "artifact path is empty"));
            }
            return Ok(Self::Run { run_id: run_id.to_owned(), path: path.to_owned() });
        }
        Err(err(0, "expected scheme `models:/` or `runs:/`"))
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Alias { name, alias } => write!(f, "{MODELS_SCHEME}{name}@{alias}"),
            Self::Version { name, version } => write!(f, "{MODELS_SCHEME}{name}/{version}"),
            Self::Latest { name } => write!(f, "{MODELS_SCHEME}{name}/latest"),
            Self::Run { run_id, path } => write!(f, "{RUNS_SCHEME}{run_id}/{path}"),
        }
    }
}
