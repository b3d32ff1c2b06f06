//! Feature tables held in memory for the request path, refreshed from a store in the
//! background (feature `stream`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use mlops_core::features::FeatureTables;
use parking_lot::{Mutex, RwLock};

use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::feature_store::FeatureStore;

/// The tables `names` of a [`FeatureStore`], held in memory and read again every
/// `refresh`, so a lookup on the request path costs a clone of shared frames and no I/O.
/// A [`DeltaFeatureStore`](crate::DeltaFeatureStore) behind it reads a table again only when
/// the table has a new version. A refresh that fails keeps the tables held (and the error,
/// in [`last_error`](Self::last_error)); the refresher stops when the cache is dropped.
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// use mlops_core::features::{FeatureTable, FeatureTables};
/// use mlops_infer::{FeatureCache, FeatureStore};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let frame = polars::prelude::df!("Product" => ["A"], "MaxProductAmount" => [50.0])?;
/// let mut tables = FeatureTables::new();
/// tables.insert(FeatureTable::new("products", ["Product"], None, frame)?);
/// let cache = FeatureCache::start(Arc::new(tables), &["products"], Duration::from_secs(10)).await?;
/// assert_eq!(cache.tables(&["products"]).await?.get("products")?.frame().height(), 1);
/// assert!(cache.tables(&["customers"]).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FeatureCache {
    shared: Arc<Shared>,
    refresher: tokio::task::JoinHandle<()>,
}

struct Shared {
    store: Arc<dyn FeatureStore>,
    names: Vec<String>,
    tables: RwLock<Arc<FeatureTables>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for FeatureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureCache").field("tables", &self.shared.names).finish_non_exhaustive()
    }
}

impl FeatureCache {
    /// Reads the tables `names` from `store` and starts refreshing them every `refresh`, on
    /// the caller's tokio runtime.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero refresh interval; the store's errors on the
    /// first read (a table that does not exist is named).
    pub async fn start(store: Arc<dyn FeatureStore>, names: &[&str], refresh: Duration) -> Result<Arc<Self>> {
        if refresh.is_zero() {
            return Err(Error::InvalidArgument("a feature cache needs a refresh interval above zero".into()));
        }
        let tables = indexed(store.tables(names).await?).await?;
        let shared = Arc::new(Shared {
            store,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            tables: RwLock::new(Arc::new(tables)),
            last_error: Mutex::new(None),
        });
        let refresher = tokio::spawn(refresh_every(Arc::downgrade(&shared), refresh));
        Ok(Arc::new(Self { shared, refresher }))
    }

    /// The error of the last refresh, if it failed (the tables held are then the last ones
    /// read); cleared by a refresh that succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }

    /// Reads the tables again now.
    ///
    /// # Errors
    /// The store's errors; the tables held stay.
    pub async fn refresh(&self) -> Result<()> {
        self.shared.refresh().await
    }
}

impl Drop for FeatureCache {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Shared {
    async fn refresh(&self) -> Result<()> {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let outcome = match self.store.tables(&names).await {
            Ok(tables) => indexed(tables).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(tables) => {
                *self.tables.write() = Arc::new(tables);
                *self.last_error.lock() = None;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(tables = ?self.names, error = %error, "feature refresh failed");
                *self.last_error.lock() = Some(error.to_string());
                Err(error)
            }
        }
    }
}

/// `tables` with their key indexes built, off the executor, so no request builds one.
async fn indexed(tables: FeatureTables) -> Result<FeatureTables> {
    off_runtime(move || {
        for table in tables.iter() {
            table.build_key_index()?;
        }
        Ok(tables)
    })
    .await
}

async fn refresh_every(shared: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        // Failures are kept in `last_error`; the tables held stay.
        let _ = shared.refresh().await;
    }
}

#[async_trait]
impl FeatureStore for FeatureCache {
    async fn tables(&self, names: &[&str]) -> Result<FeatureTables> {
        let held = Arc::clone(&self.shared.tables.read());
        names
            .iter()
            .map(|name| {
                held.get(name).cloned().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "feature table `{name}` is not held by this cache (it holds {})",
                        self.shared.names.join(", ")
                    ))
                })
            })
            .collect()
    }
}
