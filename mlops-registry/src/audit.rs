//! The append-only audit log of registry mutations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mlops_core::ModelName;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod segments;

pub use segments::{AuditCompactionReport, AuditRetention};

/// What a call did or tried to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `create_model`
    CreateModel,
    /// `update_model` (description or tags)
    UpdateModel,
    /// `create_version`
    CreateVersion,
    /// `update_version` (description or tags)
    UpdateVersion,
    /// `set_alias`
    SetAlias,
    /// `delete_alias`
    DeleteAlias,
    /// `delete_version`
    DeleteVersion,
    /// `delete_model`
    DeleteModel,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum AuditOutcome {
    /// The mutation happened.
    Done,
    /// The policy refused it.
    Denied(String),
    /// It was allowed but failed (e.g. a lost compare-and-swap).
    Failed(String),
}

/// One audited call: who, when, what, the value before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the call finished.
    pub at: DateTime<Utc>,
    /// Who made it.
    pub principal: String,
    /// What it did.
    pub operation: Operation,
    /// The model.
    pub model: ModelName,
    /// The version concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The alias concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The value before (for an alias: the version it pointed at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    /// The value after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
    /// How it ended.
    pub outcome: AuditOutcome,
}

/// Where audit entries go. Entries are only ever appended; `entries` returns them in the
/// order they were appended (by time, then by writer).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an entry.
    ///
    /// # Errors
    /// [`Error::Backend`] when storage fails.
    async fn append(&self, entry: &AuditEntry) -> Result<()>;

    /// Every entry about `model`, oldest first.
    ///
    /// # Errors
    /// [`Error::Backend`] when storage fails.
    async fn entries(&self, model: &ModelName) -> Result<Vec<AuditEntry>>;
}

/// An audit log in process memory.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    entries: RwLock<Vec<AuditEntry>>,
}

impl MemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<()> {
        self.entries.write().push(entry.clone());
        Ok(())
    }

    async fn entries(&self, model: &ModelName) -> Result<Vec<AuditEntry>> {
        Ok(self.entries.read().iter().filter(|e| &e.model == model).cloned().collect())
    }
}

/// An audit log on an object store, shared by every process that writes to it: one object
/// per entry under `<root>/audit/<model>/`, named by time and writer, written create-only so
/// no entry ever overwrites another. [`compact`](Self::compact) merges older entries into
/// segments (`<model>/segments/`, ten thousand entries each), so reading a log that has
/// grown for years takes a listing and a request per segment, and drops entries past the
/// [`AuditRetention`] you set.
#[derive(Debug, Clone)]
pub struct ObjectStoreAuditLog {
    store: Arc<dyn ObjectStore>,
    root: Path,
    writer: String,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl ObjectStoreAuditLog {
    /// A log under `root` on `store` (use the registry's store and root to keep them together).
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Self { store, root, writer: format!("{:x}-{nanos:x}", std::process::id()) }
    }

    fn prefix(&self, model: &ModelName) -> Path {
        self.root.clone().join("audit").join(model.as_str())
    }

    /// Writes `bytes` create-only under `dir`, named by `at`, this writer and a sequence
    /// number, so no object ever overwrites another.
    async fn put_new(&self, dir: &Path, at: DateTime<Utc>, extension: &str, bytes: Vec<u8>) -> Result<()> {
        let micros = at.timestamp_micros();
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let path = dir.clone().join(format!("{micros:020}-{}-{sequence:010}.{extension}", self.writer));
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(|e| Error::backend(format!("writing `{path}`"), e))?;
        Ok(())
    }
}

#[async_trait]
impl AuditLog for ObjectStoreAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<()> {
        let bytes = serde_json::to_vec(entry).map_err(|e| Error::backend("encoding an audit entry", e))?;
        self.put_new(&self.prefix(&entry.model), entry.at, "json", bytes).await
    }

    /// Every entry that parses, from segments and loose entries; one that does not is left
    /// out (see [`ObjectStoreAuditLog::unreadable_entries`]) rather than hiding the others.
    async fn entries(&self, model: &ModelName) -> Result<Vec<AuditEntry>> {
        Ok(self.snapshot(&self.prefix(model)).await?.entries.into_values().collect())
    }
}

impl ObjectStoreAuditLog {
    /// The objects (or segment lines) under `model`'s audit prefix that do not parse as
    /// entries, with why: what [`AuditLog::entries`] leaves out, for an operator to inspect
    /// or remove. Compaction leaves them where they are.
    ///
    /// # Errors
    /// [`Error::Backend`] when the store cannot be listed or read.
    pub async fn unreadable_entries(&self, model: &ModelName) -> Result<Vec<(String, String)>> {
        Ok(self.snapshot(&self.prefix(model)).await?.unreadable)
    }
}
