//! Models and versions as MLflow holds them: by name, by number, by alias, and paged
//! searches.

use mlops_core::{ModelName, check_alias};

use super::wire;
use super::{MlflowRegistry, api_error, not_found_or};
use crate::error::{Error, Result, alias_not_found, model_not_found, version_not_found};
use crate::version::ModelVersion;

/// Page size of searches.
const PAGE_SIZE: &str = "1000";
/// The most pages of a search followed: ten million items.
const MAX_PAGES: usize = 10_000;

impl MlflowRegistry {
    pub(super) async fn fetch_model(&self, name: &ModelName) -> Result<wire::Model> {
        let found: wire::ModelResponse = self
            .client
            .get("registered-models/get", &[("name", name.as_str())])
            .await
            .map_err(|e| not_found_or(e, || model_not_found(name), || format!("reading model `{name}`")))?;
        Ok(found.registered_model)
    }

    /// The version as MLflow holds it; a missing version is told apart from a missing model.
    pub(super) async fn fetch_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        let number = version.to_string();
        match self
            .client
            .get::<wire::VersionResponse>("model-versions/get", &[("name", name.as_str()), ("version", &number)])
            .await
        {
            Ok(found) => found.model_version.into_version(),
            Err(e) if e.is_not_found() => {
                self.fetch_model(name).await?;
                Err(version_not_found(name, version))
            }
            Err(e) => Err(api_error(format!("reading version {version} of model `{name}`"), e)),
        }
    }

    /// The version an alias points at, without its lineage.
    pub(super) async fn aliased(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        check_alias(alias)?;
        let found: std::result::Result<wire::VersionResponse, _> =
            self.client.get("registered-models/alias", &[("name", name.as_str()), ("alias", alias)]).await;
        match found {
            Ok(found) => found.model_version.into_version(),
            // MLflow reports an unknown alias as an invalid parameter, an unknown model as
            // missing: ask which one it was.
            Err(e) if e.is_not_found() || e.code() == Some("INVALID_PARAMETER_VALUE") => {
                self.fetch_model(name).await?;
                Err(alias_not_found(name, alias))
            }
            Err(e) => Err(api_error(format!("resolving alias `{alias}` of model `{name}`"), e)),
        }
    }

    /// Every item of a paged search, following `next_page_token`.
    pub(super) async fn all_pages<P: wire::Page>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
        context: &str,
    ) -> Result<Vec<P::Item>> {
        let mut items = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut paged = query.to_vec();
            paged.push(("max_results", PAGE_SIZE));
            if !token.is_empty() {
                paged.push(("page_token", &token));
            }
            let page: P = self.client.get(endpoint, &paged).await.map_err(|e| api_error(context, e))?;
            let (found, next) = page.into_parts();
            items.extend(found);
            match next {
                Some(next) if !next.is_empty() && next == token => {
                    return Err(Error::Backend {
                        context: context.to_owned(),
                        source: format!("the server answered page token `{token}` with the same token").into(),
                    });
                }
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(items),
            }
        }
        Err(Error::Backend {
            context: context.to_owned(),
            source: format!("the server gave more than {MAX_PAGES} pages of {PAGE_SIZE} items").into(),
        })
    }
}
