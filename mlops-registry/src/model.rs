//! Registered models: the document, the options that create one, and alias moves.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mlops_core::ModelName;
use serde::{Deserialize, Serialize};

use crate::alias::AliasMode;
use crate::error::{Error, Result, alias_not_found};
use crate::metadata::{Change, check_description, check_tag};
use crate::version::ModelVersion;

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
