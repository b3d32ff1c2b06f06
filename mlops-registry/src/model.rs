//! Registered models and the changes that can be made to them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mlops_core::ModelName;
use serde::{Deserialize, Serialize};

use crate::alias::AliasMode;
use crate::error::{Error, Result, alias_not_found};
use crate::version::ModelVersion;

/// Longest tag key accepted, as MLflow.
pub const MAX_TAG_KEY_LEN: usize = 250;
/// Longest tag value accepted, as MLflow.
pub const MAX_TAG_VALUE_LEN: usize = 5000;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 5000;

/// A named model with its versions' aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// The model's name.
    pub name: ModelName,
    /// Free text.
    pub description: String,
    /// Key/value tags.
    pub tags: BTreeMap<String, String>,
    /// Alias -> version.
    pub aliases: BTreeMap<String, u64>,
    /// When the model was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Options of [`Registry::create_model`](crate::Registry::create_model).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateModel {
    /// The new model's name.
    pub name: ModelName,
    /// Free text.
    pub description: String,
    /// Initial tags.
    pub tags: BTreeMap<String, String>,
}

impl CreateModel {
    /// A model called `name`, without description or tags.
    pub fn new(name: ModelName) -> Self {
        Self { name, description: String::new(), tags: BTreeMap::new() }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    pub(crate) fn into_model(self) -> Result<RegisteredModel> {
        check_description(&self.description)?;
        for (key, value) in &self.tags {
            check_tag(key, value)?;
        }
        let now = Utc::now();
        Ok(RegisteredModel {
            name: self.name,
            description: self.description,
            tags: self.tags,
            aliases: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        })
    }
}

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

impl RegisteredModel {
    /// Moves `alias` to `version` if `mode` allows it, returning where it pointed before.
    /// The caller has checked that `version` exists.
    pub(crate) fn move_alias(&mut self, alias: &str, version: u64, mode: AliasMode) -> Result<Option<u64>> {
        let current = self.aliases.get(alias).copied();
        let allowed = match mode {
            AliasMode::Overwrite => true,
            AliasMode::Create => current.is_none(),
            AliasMode::Update(expected) => current == Some(expected),
        };
        if !allowed {
            let expected = match mode {
                AliasMode::Update(v) => Some(v),
                _ => None,
            };
            return Err(Error::Precondition {
                model: self.name.to_string(),
                alias: alias.to_owned(),
                expected,
                found: current,
            });
        }
        self.aliases.insert(alias.to_owned(), version);
        self.updated_at = Utc::now();
        Ok(current)
    }

    /// Sets `version.aliases` to the aliases that point at it.
    pub(crate) fn label(&self, mut version: ModelVersion) -> ModelVersion {
        version.aliases =
            self.aliases.iter().filter(|(_, v)| **v == version.version).map(|(alias, _)| alias.clone()).collect();
        version
    }

    /// Removes `alias`, returning the version it pointed at.
    pub(crate) fn remove_alias(&mut self, alias: &str) -> Result<u64> {
        let version = self.aliases.remove(alias).ok_or_else(|| alias_not_found(&self.name, alias))?;
        self.updated_at = Utc::now();
        Ok(version)
    }

    pub(crate) fn apply(&mut self, change: &Change) -> Result<()> {
        change.apply(&mut self.description, &mut self.tags)?;
        self.updated_at = Utc::now();
        Ok(())
    }
}
