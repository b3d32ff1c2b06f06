//! Who may do what: principals, an authorization policy, and a registry layer that checks
//! and audits every call.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlops_core::{ModelName, Package};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alias::SetAlias;
use crate::audit::{AuditEntry, AuditLog, AuditOutcome, Operation};
use crate::error::{Error, Result};
use crate::metadata::Change;
use crate::model::{CreateModel, RegisteredModel};
use crate::registry::Registry;
use crate::version::{CreateVersion, ModelVersion, SearchVersions};

/// Who makes a call: a user, a service account, a CI job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// The principal called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Levels of access to a model, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read the model, its versions and packages.
    Read,
    /// Create versions, set tags and descriptions, move unprotected aliases.
    Write,
    /// Everything, including moving protected aliases such as `champion`.
    Manage,
}

/// A call asking for permission.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// The model concerned.
    pub model: &'a ModelName,
    /// The mutation, or `None` for a read.
    pub operation: Option<Operation>,
    /// The alias a `SetAlias` or `DeleteAlias` concerns.
    pub alias: Option<&'a str>,
}

/// Decides who may do what. Implementations must be fast and must not do I/O: they run on
/// every call.
pub trait Policy: Send + Sync {
    /// `Ok` to allow, or `Err` with the reason for refusing.
    ///
    /// # Errors
    /// The reason the access is refused, shown to the caller and written to the audit log.
    fn authorize(&self, access: &Access<'_>) -> std::result::Result<(), String>;

    /// Whether `alias` is protected: a model any protected alias points into cannot be
    /// deleted, by anyone, until the alias is moved away or deleted. None is by default.
    fn protects_alias(&self, alias: &str) -> bool {
        let _ = alias;
        false
    }
}

/// The default policy: everything is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn authorize(&self, _: &Access<'_>) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Grants per principal and model, and aliases only managers may move.
///
/// A grant names a model exactly, a namespace (`main.fraud.*`), or every model (`*`).
///
/// ```
/// use mlops_registry::{Permission, RolePolicy};
/// let policy = RolePolicy::new()
///     .grant("data-scientist", "main.fraud.*", Permission::Write)
///     .grant("release-manager", "*", Permission::Manage)
///     .grant("scoring-service", "*", Permission::Read)
///     .protect_alias("champion");
/// ```
#[derive(Debug, Clone, Default)]
pub struct RolePolicy {
    grants: BTreeMap<Principal, Vec<(String, Permission)>>,
    protected_aliases: BTreeSet<String>,
}

impl RolePolicy {
    /// A policy that grants nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `permission` on the models `pattern` matches to `principal`.
    pub fn grant(mut self, principal: impl Into<String>, pattern: impl Into<String>, permission: Permission) -> Self {
        self.grants.entry(Principal::new(principal)).or_default().push((pattern.into(), permission));
        self
    }

    /// Only principals with [`Permission::Manage`] may set or delete `alias`, in any case
    /// (`Champion` is `champion`: MLflow on MySQL and Unity Catalog fold the case of
    /// aliases).
    pub fn protect_alias(mut self, alias: impl Into<String>) -> Self {
        self.protected_aliases.insert(alias.into().to_lowercase());
        self
    }

    fn granted(&self, principal: &Principal, model: &ModelName) -> Option<Permission> {
        let matches = |pattern: &str| match pattern.strip_suffix('*') {
            Some(prefix) => model.as_str().starts_with(prefix),
            None => pattern == model.as_str(),
        };
        self.grants.get(principal)?.iter().filter(|(pattern, _)| matches(pattern)).map(|(_, p)| *p).max()
    }
}

impl Policy for RolePolicy {
    fn authorize(&self, access: &Access<'_>) -> std::result::Result<(), String> {
        let needed = match (access.operation, access.alias) {
            (None, _) => Permission::Read,
            (Some(Operation::SetAlias | Operation::DeleteAlias), Some(alias))
                if self.protected_aliases.contains(&alias.to_lowercase()) =>
            {
                Permission::Manage
            }
            (Some(Operation::DeleteVersion | Operation::DeleteModel), _) => Permission::Manage,
            (Some(_), _) => Permission::Write,
        };
        match self.granted(access.principal, access.model) {
            Some(granted) if granted >= needed => Ok(()),
            Some(granted) => Err(format!("it holds {granted:?} access, {needed:?} is required")),
            None => Err(format!("it holds no access, {needed:?} is required")),
        }
    }

    fn protects_alias(&self, alias: &str) -> bool {
        self.protected_aliases.contains(&alias.to_lowercase())
    }
}

/// One move of an alias, from the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMove {
    /// When.
    pub at: DateTime<Utc>,
    /// Who moved it.
    pub principal: String,
    /// Where it pointed before (`None`: unset).
    pub from: Option<u64>,
    /// Where it points after (`None`: deleted).
    pub to: Option<u64>,
}

/// A registry layer that authorizes every call with a [`Policy`] and records every
/// mutation, allowed or denied, in an [`AuditLog`].
///
/// Calls go through a [`GovernedRegistry::as_principal`] handle, so none can be made
/// without saying who makes it.
///
/// ```
/// use std::sync::Arc;
/// use mlops_registry::{
///     CreateModel, Error, GovernedRegistry, MemoryAuditLog, MemoryRegistry, Permission, Principal, Registry, RolePolicy,
/// };
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let policy = RolePolicy::new().grant("alice", "*", Permission::Write).grant("bob", "*", Permission::Read);
/// let governed = GovernedRegistry::new(Arc::new(MemoryRegistry::new()), Arc::new(policy), Arc::new(MemoryAuditLog::new()));
/// governed.as_principal(Principal::new("alice")).create_model(CreateModel::new("transactions".parse()?)).await?;
/// let denied = governed.as_principal(Principal::new("bob")).create_model(CreateModel::new("other".parse()?)).await;
/// assert!(matches!(denied, Err(Error::PermissionDenied { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct GovernedRegistry {
    inner: Arc<dyn Registry>,
    policy: Arc<dyn Policy>,
    audit: Arc<dyn AuditLog>,
    unaudited: Arc<parking_lot::Mutex<Unaudited>>,
}

/// Calls whose audit entry could not be written.
#[derive(Debug, Default)]
struct Unaudited {
    count: u64,
    latest: std::collections::VecDeque<String>,
}

/// How many of the latest unaudited calls [`GovernedRegistry::unaudited`] keeps.
pub const UNAUDITED_KEPT: usize = 100;

impl fmt::Debug for GovernedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GovernedRegistry").finish_non_exhaustive()
    }
}

impl GovernedRegistry {
    /// Governs `inner` with `policy`, auditing to `audit`.
    pub fn new(inner: Arc<dyn Registry>, policy: Arc<dyn Policy>, audit: Arc<dyn AuditLog>) -> Self {
        Self { inner, policy, audit, unaudited: Arc::default() }
    }

    /// Calls whose audit entry could not be written, and the latest
    /// [`UNAUDITED_KEPT`] of them (what was done and why the entry failed). Such a call
    /// still answers with its own outcome: a mutation that succeeded is not reported as
    /// failed because its audit entry was lost.
    pub fn unaudited(&self) -> (u64, Vec<String>) {
        let unaudited = self.unaudited.lock();
        (unaudited.count, unaudited.latest.iter().cloned().collect())
    }

    /// A handle whose every call is made by `principal`.
    pub fn as_principal(&self, principal: Principal) -> GovernedHandle {
        GovernedHandle { governed: self.clone(), principal }
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<dyn AuditLog> {
        &self.audit
    }

    /// Every successful move of `alias` of `model`, oldest first. Rolling back is setting
    /// the alias to the `from` version of a move.
    ///
    /// # Errors
    /// When the audit log cannot be read.
    pub async fn alias_history(&self, model: &ModelName, alias: &str) -> Result<Vec<AliasMove>> {
        let as_version = |value: &Option<Value>| value.as_ref().and_then(Value::as_u64);
        Ok(self
            .audit
            .entries(model)
            .await?
            .into_iter()
            .filter(|e| {
                matches!(e.operation, Operation::SetAlias | Operation::DeleteAlias)
                    && e.alias.as_deref() == Some(alias)
                    && e.outcome == AuditOutcome::Done
            })
            .map(|e| AliasMove { at: e.at, from: as_version(&e.old), to: as_version(&e.new), principal: e.principal })
            .collect())
    }
}

/// [`GovernedRegistry`] calls made by one principal; a [`Registry`] itself.
#[derive(Clone)]
pub struct GovernedHandle {
    governed: GovernedRegistry,
    principal: Principal,
}

impl fmt::Debug for GovernedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GovernedHandle").field("principal", &self.principal).finish_non_exhaustive()
    }
}

/// What a mutation concerns, for authorization and the audit entry.
struct Subject<'a> {
    operation: Operation,
    model: &'a ModelName,
    version: Option<u64>,
    alias: Option<&'a str>,
}

fn describe(operation: Operation, alias: Option<&str>) -> String {
    match (operation, alias) {
        (Operation::CreateModel, _) => "create".into(),
        (Operation::UpdateModel, _) => "update".into(),
        (Operation::CreateVersion, _) => "create a version of".into(),
        (Operation::UpdateVersion, _) => "update a version of".into(),
        (Operation::SetAlias, Some(alias)) => format!("set alias `{alias}` of"),
        (Operation::DeleteAlias, Some(alias)) => format!("delete alias `{alias}` of"),
        (Operation::SetAlias | Operation::DeleteAlias, None) => "move an alias of".into(),
        (Operation::DeleteVersion, _) => "delete a version of".into(),
        (Operation::DeleteModel, _) => "delete".into(),
    }
}

impl GovernedHandle {
    fn check_read(&self, model: &ModelName) -> Result<()> {
        let access = Access { principal: &self.principal, model, operation: None, alias: None };
        self.governed.policy.authorize(&access).map_err(|reason| Error::PermissionDenied {
            principal: self.principal.to_string(),
            action: "read".into(),
            model: model.to_string(),
            reason,
        })
    }

    /// Authorizes a mutation, auditing a refusal.
    async fn check_write(&self, subject: &Subject<'_>) -> Result<()> {
        let access = Access {
            principal: &self.principal,
            model: subject.model,
            operation: Some(subject.operation),
            alias: subject.alias,
        };
        let Err(reason) = self.governed.policy.authorize(&access) else { return Ok(()) };
        self.record(subject, None, None, AuditOutcome::Denied(reason.clone())).await;
        Err(Error::PermissionDenied {
            principal: self.principal.to_string(),
            action: describe(subject.operation, subject.alias),
            model: subject.model.to_string(),
            reason,
        })
    }

    /// Appends the audit entry; a failure to write it is kept in
    /// [`GovernedRegistry::unaudited`], apart from the call's own outcome.
    async fn record(&self, subject: &Subject<'_>, old: Option<Value>, new: Option<Value>, outcome: AuditOutcome) {
        let entry = AuditEntry {
            at: Utc::now(),
            principal: self.principal.to_string(),
            operation: subject.operation,
            model: subject.model.clone(),
            version: subject.version,
            alias: subject.alias.map(str::to_owned),
            old,
            new,
            outcome,
        };
        if let Err(e) = self.governed.audit.append(&entry).await {
            let mut unaudited = self.governed.unaudited.lock();
            unaudited.count += 1;
            if unaudited.latest.len() == UNAUDITED_KEPT {
                unaudited.latest.pop_front();
            }
            unaudited.latest.push_back(format!(
                "{} by `{}` on `{}` ({:?}): {e}",
                describe(subject.operation, subject.alias),
                self.principal,
                subject.model,
                entry.outcome
            ));
        }
    }

    /// Records how an allowed mutation ended and passes its result on.
    async fn finish<T>(
        &self,
        subject: &Subject<'_>,
        result: Result<T>,
        values: impl FnOnce(&T) -> (Option<Value>, Option<Value>),
    ) -> Result<T> {
        match &result {
            Ok(done) => {
                let (old, new) = values(done);
                self.record(subject, old, new, AuditOutcome::Done).await;
            }
            Err(e) => self.record(subject, None, None, AuditOutcome::Failed(e.to_string())).await,
        }
        result
    }
}

/// The value a change replaces and the one it sets.
fn change_values(
    change: &Change,
    description: &str,
    tags: &BTreeMap<String, String>,
) -> (Option<Value>, Option<Value>) {
    match change {
        Change::SetDescription(text) => {
            (Some(json!({ "description": description })), Some(json!({ "description": text })))
        }
        Change::SetTag { key, value } => (tags.get(key).map(|old| json!({ key: old })), Some(json!({ key: value }))),
        Change::DeleteTag { key } => (tags.get(key).map(|old| json!({ key: old })), None),
    }
}

#[async_trait]
impl Registry for GovernedHandle {
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel> {
        let name = request.name.clone();
        let subject = Subject { operation: Operation::CreateModel, model: &name, version: None, alias: None };
        self.check_write(&subject).await?;
        let result = self.governed.inner.create_model(request).await;
        self.finish(&subject, result, |m| (None, Some(json!({ "description": m.description, "tags": m.tags })))).await
    }

    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        self.check_read(name)?;
        self.governed.inner.get_model(name).await
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>> {
        let mut models = self.governed.inner.list_models().await?;
        models.retain(|m| self.check_read(&m.name).is_ok());
        Ok(models)
    }

    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel> {
        let subject = Subject { operation: Operation::UpdateModel, model: name, version: None, alias: None };
        self.check_write(&subject).await?;
        let before = self.governed.inner.get_model(name).await;
        let result = match before {
            Ok(before) => {
                let (old, new) = change_values(&change, &before.description, &before.tags);
                self.governed.inner.update_model(name, change).await.map(|m| (m, old, new))
            }
            Err(e) => Err(e),
        };
        let result = self.finish(&subject, result, |(_, old, new)| (old.clone(), new.clone())).await?;
        Ok(result.0)
    }

    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion> {
        let name = request.model.clone();
        let subject = Subject { operation: Operation::CreateVersion, model: &name, version: None, alias: None };
        self.check_write(&subject).await?;
        let result = self.governed.inner.create_version(request).await;
        let new = |v: &ModelVersion| {
            (None, Some(json!({ "version": v.version, "source": v.source, "package_digest": v.package_digest })))
        };
        self.finish(&subject, result, new).await
    }

    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        self.check_read(name)?;
        self.governed.inner.get_version(name, version).await
    }

    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>> {
        if let Some(model) = &filter.model {
            self.check_read(model)?;
        }
        let mut versions = self.governed.inner.search_versions(filter).await?;
        versions.retain(|v| self.check_read(&v.name).is_ok());
        Ok(versions)
    }

    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion> {
        let subject = Subject { operation: Operation::UpdateVersion, model: name, version: Some(version), alias: None };
        self.check_write(&subject).await?;
        let result = match self.governed.inner.get_version(name, version).await {
            Ok(before) => {
                let (old, new) = change_values(&change, &before.description, &before.tags);
                self.governed.inner.update_version(name, version, change).await.map(|v| (v, old, new))
            }
            Err(e) => Err(e),
        };
        let result = self.finish(&subject, result, |(_, old, new)| (old.clone(), new.clone())).await?;
        Ok(result.0)
    }

    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>> {
        let (name, alias, version) = (request.model.clone(), request.alias.clone(), request.version);
        let subject =
            Subject { operation: Operation::SetAlias, model: &name, version: Some(version), alias: Some(&alias) };
        self.check_write(&subject).await?;
        let result = self.governed.inner.set_alias(request).await;
        self.finish(&subject, result, |previous| (previous.map(Value::from), Some(Value::from(version)))).await
    }

    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64> {
        let subject = Subject { operation: Operation::DeleteAlias, model: name, version: None, alias: Some(alias) };
        self.check_write(&subject).await?;
        let result = self.governed.inner.delete_alias(name, alias).await;
        self.finish(&subject, result, |previous| (Some(Value::from(*previous)), None)).await
    }

    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        let subject = Subject { operation: Operation::DeleteVersion, model: name, version: Some(version), alias: None };
        self.check_write(&subject).await?;
        let result = self.governed.inner.delete_version(name, version).await;
        let old = |v: &ModelVersion| {
            (Some(json!({ "version": v.version, "source": v.source, "package_digest": v.package_digest })), None)
        };
        self.finish(&subject, result, old).await
    }

    /// Refused with [`Error::InUse`] while a protected alias points at a version of the model.
    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        let subject = Subject { operation: Operation::DeleteModel, model: name, version: None, alias: None };
        self.check_write(&subject).await?;
        let result = match self.governed.inner.get_model(name).await {
            Ok(model) => match model.aliases.iter().find(|(alias, _)| self.governed.policy.protects_alias(alias)) {
                Some((alias, version)) => Err(Error::InUse {
                    what: format!("model `{name}`"),
                    reason: format!("protected alias `{alias}` points at version {version}; move or delete it first"),
                }),
                None => self.governed.inner.delete_model(name).await,
            },
            Err(e) => Err(e),
        };
        let old = |m: &RegisteredModel| {
            (Some(json!({ "description": m.description, "tags": m.tags, "aliases": m.aliases })), None)
        };
        self.finish(&subject, result, old).await
    }

    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package> {
        self.check_read(name)?;
        self.governed.inner.download_package(name, version).await
    }

    async fn version_by_alias(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        self.check_read(name)?;
        self.governed.inner.version_by_alias(name, alias).await
    }

    async fn alias_version(&self, name: &ModelName, alias: &str) -> Result<u64> {
        self.check_read(name)?;
        self.governed.inner.alias_version(name, alias).await
    }
}
