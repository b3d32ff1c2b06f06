//! Validation suites: checks a registered version must pass, recorded as its
//! `validation_status` tag.

use std::collections::BTreeSet;

use async_trait::async_trait;
use mlops_core::ModelName;
use mlops_registry::{ModelVersion, Registry, RegistryExt};

use crate::error::{Error, Result};

/// Tag holding a version's validation state.
pub const VALIDATION_STATUS: &str = "validation_status";
/// `validation_status` of a version waiting to be validated.
pub const NEEDS_TESTED: &str = "needs_tested";
/// `validation_status` of a version that passed every check.
pub const PASSED_TESTS: &str = "passed_tests";
/// `validation_status` of a version that failed a check.
pub const FAILED_TESTS: &str = "failed_tests";
/// Tag listing the checks a version failed, comma-separated.
pub const FAILED_CHECKS: &str = "validation_failed_checks";

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The version passes.
    Passed,
    /// The version fails, and why.
    Failed(String),
}

/// One validation rule.
///
/// Checks read the version (and anything else in the registry, such as the current
/// champion) and return a verdict; they must not modify the registry. An `Err` means the
/// check could not run, which stops validation without writing any verdict.
#[async_trait]
pub trait Check: Send + Sync {
    /// Short name, recorded in the failed-checks tag.
    fn name(&self) -> &str;

    /// Judges `version`.
    ///
    /// # Errors
    /// When the check cannot reach a verdict (e.g. the registry is unreachable).
    async fn check(&self, registry: &dyn Registry, version: &ModelVersion) -> Result<Verdict>;
}

/// The description must be present and at least `min_chars` characters long.
#[derive(Debug, Clone)]
pub struct DescriptionCheck {
    min_chars: usize,
}

impl DescriptionCheck {
    /// Requires at least `min_chars` characters (the reference workflow uses 15).
    pub fn new(min_chars: usize) -> Self {
        Self { min_chars }
    }
}

#[async_trait]
impl Check for DescriptionCheck {
    fn name(&self) -> &str {
        "description"
    }

    async fn check(&self, _registry: &dyn Registry, version: &ModelVersion) -> Result<Verdict> {
        let chars = version.description.trim().chars().count();
        Ok(if chars == 0 {
            Verdict::Failed("the version has no description".into())
        } else if chars < self.min_chars {
            Verdict::Failed(format!("the description has {chars} characters, at least {} are required", self.min_chars))
        } else {
            Verdict::Passed
        })
    }
}

/// The version must carry a `project` tag whose value is in an allowed set.
#[derive(Debug, Clone)]
pub struct ProjectTagCheck {
    allowed: BTreeSet<String>,
}

impl ProjectTagCheck {
    /// Allows the given project names.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(allowed: I) -> Self {
        Self { allowed: allowed.into_iter().map(Into::into).collect() }
    }
}

#[async_trait]
impl Check for ProjectTagCheck {
    fn name(&self) -> &str {
        "project_tag"
    }

    async fn check(&self, _registry: &dyn Registry, version: &ModelVersion) -> Result<Verdict> {
        Ok(match version.tags.get("project") {
            None => Verdict::Failed("the version has no `project` tag".into()),
            Some(project) if self.allowed.contains(project) => Verdict::Passed,
            Some(project) => Verdict::Failed(format!(
                "project `{project}` is not one of: {}",
                self.allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
        })
    }
}

/// A training metric recorded in the version's lineage must not be worse than the same
/// metric of the version an alias (normally `champion`) points at, within a tolerance.
/// Passes when the alias is unset: there is nothing to beat yet.
#[derive(Debug, Clone)]
pub struct BeatsAliasCheck {
    name: String,
    metric: String,
    alias: String,
    higher_is_better: bool,
    tolerance: f64,
}

impl BeatsAliasCheck {
    /// Compares lineage metric `metric` with the version behind `alias`.
    pub fn new(metric: impl Into<String>, alias: impl Into<String>, higher_is_better: bool) -> Self {
        let (metric, alias) = (metric.into(), alias.into());
        Self { name: format!("{metric}_vs_{alias}"), metric, alias, higher_is_better, tolerance: 0.0 }
    }

    /// Accepts a candidate worse by at most `tolerance`.
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }
}

#[async_trait]
impl Check for BeatsAliasCheck {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, registry: &dyn Registry, version: &ModelVersion) -> Result<Verdict> {
        let Some(&candidate) = version.lineage.metrics.get(&self.metric) else {
            return Ok(Verdict::Failed(format!("the version records no `{}` metric", self.metric)));
        };
        let incumbent = match registry.version_by_alias(&version.name, &self.alias).await {
            Ok(v) => v,
            Err(mlops_registry::Error::NotFound { .. }) => return Ok(Verdict::Passed),
            Err(e) => return Err(e.into()),
        };
        let Some(&baseline) = incumbent.lineage.metrics.get(&self.metric) else {
            return Ok(Verdict::Passed);
        };
        let margin = if self.higher_is_better { candidate - baseline } else { baseline - candidate };
        Ok(if margin + self.tolerance >= 0.0 {
            Verdict::Passed
        } else {
            Verdict::Failed(format!(
                "{} {candidate:.4} is worse than {}'s (version {}) {baseline:.4}",
                self.metric, self.alias, incumbent.version
            ))
        })
    }
}

/// What validation did to a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The version was already `passed_tests`: nothing to do.
    AlreadyPassed,
    /// The version was already `failed_tests`: nothing to do until it is set back to
    /// `needs_tested`.
    AlreadyFailed,
    /// The checks ran and the version is now `passed_tests`.
    Passed,
    /// The checks ran and the version is now `failed_tests`; the failed checks and reasons.
    Failed(Vec<(String, String)>),
}

/// An ordered set of checks run on versions tagged `validation_status=needs_tested`.
///
/// ```
/// use mlops_eval::{Outcome, ValidationSuite};
/// use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, RegistryExt};
/// # use mlops_core::{ColSpec, ColumnType, Package, Schema, Signature};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let registry = MemoryRegistry::new();
/// let name: mlops_core::ModelName = "transactions".parse()?;
/// registry.create_model(CreateModel::new(name.clone())).await?;
/// # let package = Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?)).build()?;
/// registry
///     .create_version(
///         CreateVersion::new(name.clone(), package)
///             .description("too short")
///             .tag("validation_status", "needs_tested")
///             .tag("project", "synthetic_transactions"),
///     )
///     .await?;
///
/// let suite = ValidationSuite::reference(["synthetic_transactions"]);
/// let outcome = suite.validate(&registry, &name, 1).await?;
/// assert!(matches!(outcome, Outcome::Failed(ref failed) if failed[0].0 == "description"));
/// let v1 = registry.get_version(&name, 1).await?;
/// assert_eq!(v1.tags["validation_status"], "failed_tests");
/// assert_eq!(v1.tags["validation_failed_checks"], "description");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct ValidationSuite {
    checks: Vec<Box<dyn Check>>,
}

impl std::fmt::Debug for ValidationSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.checks.iter().map(|c| c.name())).finish()
    }
}

impl ValidationSuite {
    /// A suite with no checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reference workflow's checks: a description of at least 15 characters, and a
    /// `project` tag from `allowed_projects`.
    pub fn reference<I: IntoIterator<Item = S>, S: Into<String>>(allowed_projects: I) -> Self {
        Self::new().with_check(DescriptionCheck::new(15)).with_check(ProjectTagCheck::new(allowed_projects))
    }

    /// Adds a check.
    pub fn with_check(mut self, check: impl Check + 'static) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// Validates one version according to its `validation_status` tag and records the
    /// result in its tags. Every check runs, so the tags list all failures at once.
    ///
    /// # Errors
    /// [`Error::MissingTag`] when the version has no `validation_status` tag,
    /// [`Error::InvalidArgument`] for an unknown status value, and registry errors naming
    /// the model or version.
    pub async fn validate(&self, registry: &dyn Registry, name: &ModelName, version: u64) -> Result<Outcome> {
        let record = registry.get_version(name, version).await?;
        let status = record.tags.get(VALIDATION_STATUS).ok_or_else(|| Error::MissingTag {
            model: name.to_string(),
            version,
            tag: VALIDATION_STATUS.into(),
        })?;
        match status.as_str() {
            PASSED_TESTS => return Ok(Outcome::AlreadyPassed),
            FAILED_TESTS => return Ok(Outcome::AlreadyFailed),
            NEEDS_TESTED => {}
            other => {
                return Err(Error::InvalidArgument(format!(
                    "version {version} of model `{name}` has {VALIDATION_STATUS}=`{other}`, expected one of \
                     {NEEDS_TESTED}, {PASSED_TESTS}, {FAILED_TESTS}"
                )));
            }
        }
        let mut failed = Vec::new();
        for check in &self.checks {
            if let Verdict::Failed(reason) = check.check(registry, &record).await? {
                failed.push((check.name().to_owned(), reason));
            }
        }
        if failed.is_empty() {
            if record.tags.contains_key(FAILED_CHECKS) {
                registry.delete_version_tag(name, version, FAILED_CHECKS).await?;
            }
            registry.set_version_tag(name, version, VALIDATION_STATUS, PASSED_TESTS).await?;
            Ok(Outcome::Passed)
        } else {
            let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
            registry.set_version_tag(name, version, FAILED_CHECKS, &names.join(",")).await?;
            registry.set_version_tag(name, version, VALIDATION_STATUS, FAILED_TESTS).await?;
            Ok(Outcome::Failed(failed))
        }
    }
}
