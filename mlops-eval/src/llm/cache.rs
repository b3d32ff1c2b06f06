//! A content-addressed disk cache of chat calls: record once, replay forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chat::{ChatModel, ChatReply, ChatRequest};
use super::error::LlmError;

/// Bumped when the key derivation or the file layout changes, so old recordings miss
/// instead of answering wrongly.
const CACHE_FORMAT: &str = "mlops-chat-cache-v1";

/// A [`ChatModel`] that answers repeated requests from disk.
///
/// The key is the SHA-256 of the model name, the parameters, the response schema and the
/// messages, so a re-run of an evaluation makes no new call for a row whose prompt did not
/// change, and a changed rubric or parameter misses as it should. Each reply is one JSON
/// file (`<dir>/<first two hex digits>/<key>.json`, holding the request next to the reply
/// so recordings can be read and reviewed) written atomically: a cancelled run leaves
/// every finished call behind and no torn file. Failed calls are not cached.
///
/// [`CachedChat::replay_only`] serves recordings without a model behind them, so tests can
/// replay exchanges recorded against a real server.
#[derive(Debug, Clone)]
pub struct CachedChat {
    inner: Option<Arc<dyn ChatModel>>,
    model_name: String,
    dir: PathBuf,
    stats: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hits and misses of a [`CachedChat`] (clones share them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Requests answered from disk.
    pub hits: u64,
    /// Requests passed to the model.
    pub misses: u64,
}

#[derive(Serialize, Deserialize)]
struct Recording {
    format: String,
    model: String,
    request: ChatRequest,
    reply: ChatReply,
}

impl CachedChat {
    /// Caches `inner`'s replies under `dir` (created when missing).
    pub fn new(inner: Arc<dyn ChatModel>, dir: impl Into<PathBuf>) -> Self {
        Self { model_name: inner.model_name().to_owned(), inner: Some(inner), dir: dir.into(), stats: Arc::default() }
    }

    /// Replays recordings of `model_name` under `dir`; a request never recorded fails with
    /// [`LlmError::NotRecorded`].
    pub fn replay_only(model_name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self { inner: None, model_name: model_name.into(), dir: dir.into(), stats: Arc::default() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats { hits: self.stats.hits.load(Ordering::Relaxed), misses: self.stats.misses.load(Ordering::Relaxed) }
    }

    /// The key of `request` for this cache's model.
    ///
    /// # Errors
    /// Never in practice: the request always serializes.
    pub fn key(&self, request: &ChatRequest) -> Result<String, LlmError> {
        let request = serde_json::to_vec(request).map_err(|e| LlmError::Config(e.to_string()))?;
        let mut hash = Sha256::new();
        for part in [CACHE_FORMAT.as_bytes(), self.model_name.as_bytes(), &request] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        Ok(hex::encode(hash.finalize()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    async fn read(&self, path: &Path) -> Result<Option<ChatReply>, LlmError> {
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LlmError::Cache { path: path.display().to_string(), source }),
        };
        // A recording that does not parse (written by another format) is a miss; the new
        // reply replaces it.
        Ok(serde_json::from_slice::<Recording>(&bytes).ok().filter(|r| r.format == CACHE_FORMAT).map(|r| r.reply))
    }

    async fn write(&self, path: &Path, request: &ChatRequest, reply: &ChatReply) -> Result<(), LlmError> {
        let io = |source| LlmError::Cache { path: path.display().to_string(), source };
        let recording = Recording {
            format: CACHE_FORMAT.into(),
            model: self.model_name.clone(),
            request: request.clone(),
            reply: reply.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&recording).map_err(|e| io(std::io::Error::other(e)))?;
        let dir = path.parent().unwrap_or(&self.dir);
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        // Write aside and rename, so a reader (or a crash) never sees half a file.
        let temporary = dir.join(format!(".{}.{}", uuid::Uuid::new_v4().simple(), "partial"));
        tokio::fs::write(&temporary, &bytes).await.map_err(io)?;
        tokio::fs::rename(&temporary, path).await.map_err(io)
    }
}

#[async_trait]
impl ChatModel for CachedChat {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, LlmError> {
        let started = Instant::now();
        let key = self.key(request)?;
        let path = self.path(&key);
        if let Some(mut reply) = self.read(&path).await? {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            reply.cached = true;
            reply.cost = 0.0;
            reply.attempts = 0;
            reply.latency = started.elapsed();
            return Ok(reply);
        }
        let Some(inner) = &self.inner else {
            return Err(LlmError::NotRecorded { key, dir: self.dir.display().to_string() });
        };
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let reply = inner.chat(request).await?;
        self.write(&path, request, &reply).await?;
        Ok(reply)
    }
}
