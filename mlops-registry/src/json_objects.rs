//! Reading a prefix of JSON objects, one document each, in key order.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The objects under a prefix that parsed, and those that did not (with why), so one
/// corrupt object never hides the others.
#[derive(Debug)]
pub(crate) struct JsonObjects<T> {
    pub(crate) documents: Vec<(Path, T)>,
    pub(crate) unreadable: Vec<(Path, String)>,
}

/// Every `*.json` object under `prefix`, parsed, in key order (callers name their objects so
/// that key order is the order they want: time first). An object that does not parse is
/// set aside in [`JsonObjects::unreadable`]; only listing or reading failures are errors.
pub(crate) async fn read_json_objects<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<JsonObjects<T>> {
    let mut objects: Vec<_> =
        store.list(Some(prefix)).try_collect().await.map_err(|e| Error::backend(format!("listing `{prefix}`"), e))?;
    objects.retain(|o| o.location.as_ref().ends_with(".json"));
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let mut read = JsonObjects { documents: Vec::with_capacity(objects.len()), unreadable: Vec::new() };
    for object in objects {
        let reading = |e| Error::backend(format!("reading `{}`", object.location), e);
        let bytes = store.get(&object.location).await.map_err(reading)?.bytes().await.map_err(reading)?;
        match serde_json::from_slice(&bytes) {
            Ok(document) => read.documents.push((object.location, document)),
            Err(e) => read.unreadable.push((object.location, e.to_string())),
        }
    }
    Ok(read)
}
