//! The runs that hold what a registration logs: the registry's experiment, runs created
//! and ended, lineage logged to a run and read back from it.

use reqwest::Method;
use serde_json::json;

use super::client::{ApiError, Repeat};
use super::wire;
use super::{MlflowRegistry, api_error};
use crate::error::Result;
use crate::version::{Lineage, ModelVersion};

impl MlflowRegistry {
    /// Creates a run in the registry's experiment and returns its id: training code logs to
    /// it and names it in [`CreateVersion::run`](crate::CreateVersion::run).
    ///
    /// # Errors
    /// [`Error::Backend`](crate::Error::Backend) when the server fails.
    pub async fn create_run(&self, run_name: &str) -> Result<String> {
        Ok(self.start_run(run_name, &[]).await?.info.run_id)
    }

    async fn experiment_id(&self) -> Result<&str> {
        let id = self
            .experiment_id
            .get_or_try_init(|| async {
                let name = self.experiment.as_str();
                let context = || format!("finding MLflow experiment `{name}`");
                let found: std::result::Result<wire::ExperimentResponse, _> =
                    self.client.get("experiments/get-by-name", &[("experiment_name", name)]).await;
                match found {
                    Ok(found) => return Ok(found.experiment.experiment_id),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(api_error(context(), e)),
                }
                let created: std::result::Result<wire::CreatedExperiment, _> = self
                    .client
                    .call(Method::POST, "experiments/create", &json!({ "name": name }), Repeat::Unsafe)
                    .await;
                match created {
                    Ok(created) => Ok(created.experiment_id),
                    // Another process created it meanwhile.
                    Err(e) if e.code() == Some("RESOURCE_ALREADY_EXISTS") => self
                        .client
                        .get::<wire::ExperimentResponse>("experiments/get-by-name", &[("experiment_name", name)])
                        .await
                        .map(|found| found.experiment.experiment_id)
                        .map_err(|e| api_error(context(), e)),
                    Err(e) => Err(api_error(format!("creating MLflow experiment `{name}`"), e)),
                }
            })
            .await?;
        Ok(id)
    }

    pub(super) async fn start_run(&self, run_name: &str, tags: &[wire::Tag]) -> Result<wire::Run> {
        let experiment_id = self.experiment_id().await?;
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_millis(),
            "tags": tags,
        });
        let created: wire::RunResponse = self
            .client
            .call(Method::POST, "runs/create", &body, Repeat::Unsafe)
            .await
            .map_err(|e| api_error(format!("creating a run in experiment `{}`", self.experiment), e))?;
        Ok(created.run)
    }

    pub(super) async fn end_run(&self, run_id: &str, status: &str) -> Result<()> {
        let body = json!({ "run_id": run_id, "status": status, "end_time": now_millis() });
        self.client
            .call::<_, wire::Empty>(Method::POST, "runs/update", &body, Repeat::Safe)
            .await
            .map_err(|e| api_error(format!("ending run `{run_id}`"), e))?;
        Ok(())
    }

    pub(super) async fn run(&self, run_id: &str) -> std::result::Result<wire::Run, ApiError> {
        Ok(self.client.get::<wire::RunResponse>("runs/get", &[("run_id", run_id)]).await?.run)
    }

    /// Logs the version's parameters, metrics and training dataset to its run.
    pub(super) async fn log_lineage(&self, run_id: &str, lineage: &Lineage) -> Result<()> {
        let context = || format!("logging lineage to run `{run_id}`");
        if !lineage.params.is_empty() || !lineage.metrics.is_empty() {
            let timestamp = now_millis();
            let params: Vec<_> =
                lineage.params.iter().map(|(key, value)| json!({ "key": key, "value": value })).collect();
            let metrics: Vec<_> = lineage
                .metrics
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value, "timestamp": timestamp, "step": 0 }))
                .collect();
            let body = json!({ "run_id": run_id, "params": params, "metrics": metrics });
            self.client
                .call::<_, wire::Empty>(Method::POST, "runs/log-batch", &body, Repeat::Safe)
                .await
                .map_err(|e| api_error(context(), e))?;
        }
        if let Some(dataset) = &lineage.training_data {
            let body = json!({
                "run_id": run_id,
                "datasets": [{
                    "tags": [{ "key": wire::DATASET_CONTEXT_TAG, "value": "training" }],
                    "dataset": {
                        "name": dataset.name,
                        "digest": dataset.digest,
                        "source_type": "local",
                        "source": json!({ "uri": dataset.name }).to_string(),
                    },
                }],
            });
            self.client
                .call::<_, wire::Empty>(Method::POST, "runs/log-inputs", &body, Repeat::Safe)
                .await
                .map_err(|e| api_error(context(), e))?;
        }
        Ok(())
    }

    /// Fills in the version's lineage from its run (none when the run is gone).
    pub(super) async fn with_lineage(&self, mut version: ModelVersion) -> Result<ModelVersion> {
        if let Some(link) = &version.run {
            match self.run(&link.run_id).await {
                Ok(run) => version.lineage = run.lineage(),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(api_error(format!("reading run `{}`", link.run_id), e)),
            }
        }
        Ok(version)
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
