//! Descriptions and tags of models and versions: the limits they are checked against, and
//! the changes that can be made to them.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Longest tag key accepted, as MLflow.
pub const MAX_TAG_KEY_LEN: usize = 250;
/// Longest tag value accepted, as MLflow.
pub const MAX_TAG_VALUE_LEN: usize = 5000;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 5000;

/// A change to a registered model or a model version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Replace the description.
    SetDescription(String),
    /// Set a tag, replacing its value.
    SetTag {
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
    /// Remove a tag; removing an absent tag is not an error.
    DeleteTag {
        /// Tag key.
        key: String,
    },
}

impl Change {
    /// Checks the new description or tag against the limits.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Self::SetDescription(text) => check_description(text),
            Self::SetTag { key, value } => check_tag(key, value),
            Self::DeleteTag { .. } => Ok(()),
        }
    }

    /// Applies the change to a description and tag map.
    pub(crate) fn apply(&self, description: &mut String, tags: &mut BTreeMap<String, String>) -> Result<()> {
        match self {
            Self::SetDescription(text) => {
                check_description(text)?;
                description.clone_from(text);
            }
            Self::SetTag { key, value } => {
                check_tag(key, value)?;
                tags.insert(key.clone(), value.clone());
            }
            Self::DeleteTag { key } => {
                tags.remove(key);
            }
        }
        Ok(())
    }
}

pub(crate) fn check_tag(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_TAG_KEY_LEN {
        return Err(Error::InvalidArgument(format!("tag key `{key}` must be 1 to {MAX_TAG_KEY_LEN} bytes long")));
    }
    if value.len() > MAX_TAG_VALUE_LEN {
        return Err(Error::InvalidArgument(format!("value of tag `{key}` is longer than {MAX_TAG_VALUE_LEN} bytes")));
    }
    Ok(())
}

pub(crate) fn check_description(text: &str) -> Result<()> {
    if text.len() > MAX_DESCRIPTION_LEN {
        return Err(Error::InvalidArgument(format!("description is longer than {MAX_DESCRIPTION_LEN} bytes")));
    }
    Ok(())
}
