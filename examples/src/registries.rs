//! A registry named by one command-line value: a local directory, an object-store URL or
//! an MLflow tracking server.

use std::path::Path;
use std::sync::Arc;

use mlops_registry::{MlflowRegistry, ObjectStoreRegistry, Registry};

/// Opens the registry `location` names:
///
/// - `http://...` or `https://...`: an MLflow tracking server (credentials from
///   `MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`);
/// - `file://...`, `s3://...`, `gs://...`, `az://...`, `memory://`: an object store, with
///   `options` (`aws_endpoint=...`, ...) on top of the store's usual environment variables;
/// - anything else: a local directory.
///
/// # Errors
/// [`mlops_registry::Error::InvalidArgument`] naming a malformed URL, or the store's error.
pub fn open_registry(location: &str, options: &[(String, String)]) -> mlops_registry::Result<Arc<dyn Registry>> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut builder = MlflowRegistry::builder(location);
        if let Some(token) = env("MLFLOW_TRACKING_TOKEN") {
            builder = builder.token(token);
        } else if let Some(user) = env("MLFLOW_TRACKING_USERNAME") {
            builder = builder.basic_auth(user, env("MLFLOW_TRACKING_PASSWORD").unwrap_or_default());
        }
        return Ok(Arc::new(builder.build()?));
    }
    if location.contains("://") {
        return Ok(Arc::new(ObjectStoreRegistry::open(
            location,
            options.iter().map(|(k, v)| (k.as_str(), v.clone())),
        )?));
    }
    Ok(Arc::new(ObjectStoreRegistry::local(Path::new(location))?))
}

/// `key=value` as a pair, for `--registry-option` flags.
///
/// # Errors
/// A message naming the value when it has no `=`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{text}` is not key=value"))
}
