//! Reading a prefix of JSON objects, one document each, in key order.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Every `*.json` object under `prefix`, parsed, in key order (callers name their objects so
/// that key order is the order they want: time first).
pub(crate) async fn read_json_objects<T: DeserializeOwned>(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<T>> {
    let mut objects: Vec<_> =
        store.list(Some(prefix)).try_collect().await.map_err(|e| Error::backend(format!("listing `{prefix}`"), e))?;
    objects.retain(|o| o.location.as_ref().ends_with(".json"));
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let mut documents = Vec::with_capacity(objects.len());
    for object in objects {
        let reading = |e| Error::backend(format!("reading `{}`", object.location), e);
        let bytes = store.get(&object.location).await.map_err(reading)?.bytes().await.map_err(reading)?;
        documents.push(
            serde_json::from_slice(&bytes).map_err(|e| Error::backend(format!("parsing `{}`", object.location), e))?,
        );
    }
    Ok(documents)
}
