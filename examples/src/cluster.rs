//! The flags the Ballista scheduler and executor examples share: where models and tables
//! live.

use mlops_core::FlavorRegistry;
use mlops_infer::ballista::ClusterModels;

use crate::registries::{key_value, open_registry};

/// Where a cluster process loads models from and reads tables from.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// The registry versions load from: an MLflow server (`http(s)://`), an object-store URL
    /// (`s3://bucket/prefix`, `gs://`, `az://`, `file://`) or a directory.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub registry: String,
    /// An option of an object-store registry, `key=value` (repeatable).
    #[arg(long = "registry-option", value_parser = key_value)]
    pub registry_options: Vec<(String, String)>,
    /// The URL of a bucket tables are read from, `s3://bucket` (repeatable); local files
    /// need none.
    #[arg(long = "store")]
    pub stores: Vec<String>,
    /// An option of every `--store`, `key=value` (repeatable): `aws_endpoint=...`, ...
    #[arg(long = "store-option", value_parser = key_value)]
    pub store_options: Vec<(String, String)>,
}

impl ClusterArgs {
    /// The models and stores these flags name.
    ///
    /// # Errors
    /// A message naming the registry or store that cannot be opened.
    pub fn models(&self) -> Result<ClusterModels, String> {
        let registry = open_registry(&self.registry, &self.registry_options)
            .map_err(|e| format!("opening registry `{}`: {e}", self.registry))?;
        let mut models = ClusterModels::new(registry, FlavorRegistry::with_builtins()).map_err(|e| e.to_string())?;
        for store in &self.stores {
            models = models
                .with_store_url(store, self.store_options.iter().map(|(k, v)| (k.as_str(), v.clone())))
                .map_err(|e| e.to_string())?;
        }
        Ok(models)
    }
}

/// The value, or the error on standard error and exit code 1.
pub fn exit_on<T, E: std::fmt::Display>(outcome: Result<T, E>) -> T {
    match outcome {
        Ok(value) => value,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1)
        }
    }
}
