//! A fixed set of input files scored by a fixed number of worker processes into one
//! inference table (a Kubernetes Indexed Job, or any scheduler that hands each worker an
//! index): one plan every worker of the job shares, files balanced over the shards by size,
//! several files per commit, one Delta transaction id per shard.

use std::num::NonZeroUsize;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload};
use polars::prelude::{DataFrame, ParquetReader, SerReader};
use serde::{Deserialize, Serialize};

use super::inference_table::InferenceTable;
use crate::batch::{BatchScorer, stack};
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::shard::{Shard, assign_by_size};
use crate::stream::{read_object, read_object_at_most};

/// Parquet bytes per commit unless set otherwise: a shard reads one commit's files into
/// memory at once.
pub const DEFAULT_COMMIT_BYTES: u64 = 128 * 1024 * 1024;

/// Plans larger than this are refused rather than read: about two million files.
const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;

/// Where a table keeps its jobs' plans: a folder Delta readers ignore (its name starts with
/// `_`), inside the table.
const PLANS: &str = "_mlops_jobs";

/// A job: an id naming one set of input files (a day's landing folder, say) and the number
/// of shards that score it.
///
/// ```
/// use mlops_infer::ShardedJob;
/// let job = ShardedJob::new("score-2026-12-01", 8)?.commit_bytes(64 << 20)?;
/// assert_eq!(job.shards().get(), 8);
/// assert!(ShardedJob::new("no spaces", 8).is_err());
/// # Ok::<(), mlops_infer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedJob {
    id: String,
    shards: NonZeroUsize,
    commit_bytes: u64,
}

impl ShardedJob {
    /// Job `id` over `shards` workers.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no shards, or an id that is empty, longer than 128
    /// characters, or has characters other than ASCII letters, digits, `-`, `_` and `.`.
    pub fn new(id: impl Into<String>, shards: usize) -> Result<Self> {
        let id = id.into();
        let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.is_empty() || id.len() > 128 || !id.chars().all(fits) || id.starts_with('.') {
            return Err(Error::InvalidArgument(format!(
                "job id `{id}` must be 1 to 128 ASCII letters, digits, `-`, `_` or `.`, not starting with `.`"
            )));
        }
        let shards =
            NonZeroUsize::new(shards).ok_or_else(|| Error::InvalidArgument("a job needs at least one shard".into()))?;
        Ok(Self { id, shards, commit_bytes: DEFAULT_COMMIT_BYTES })
    }

    /// Sets how many Parquet bytes a commit gathers (a file larger than that is a commit of
    /// its own).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn commit_bytes(mut self, bytes: u64) -> Result<Self> {
        if bytes == 0 {
            return Err(Error::InvalidArgument("commit_bytes must be at least 1".to_owned()));
        }
        self.commit_bytes = bytes;
        Ok(self)
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many shards score the job.
    pub fn shards(&self) -> NonZeroUsize {
        self.shards
    }

    /// The Delta application id under which `shard` records its commits.
    fn app_id(&self, shard: Shard) -> String {
        format!("mlops.job:{}:shard:{}", self.id, shard.index())
    }
}

/// What one worker did with its shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardRun {
    /// Commits of the shard's plan.
    pub planned_commits: usize,
    /// Commits this worker made.
    pub committed: usize,
    /// Commits found made already (by an earlier run, or a worker of the same shard that
    /// overlaps this one).
    pub already_committed: usize,
    /// Commits whose files hold no rows: nothing to append (and no model call).
    pub empty_commits: usize,
    /// Files this worker appended.
    pub files: usize,
    /// Rows this worker appended.
    pub rows: usize,
    /// Whether this worker wrote the job's plan (the first worker of the job to start).
    pub created_plan: bool,
    /// The last failure to apply pending labels after a commit (the rows are in the table;
    /// the labels stay pending).
    pub labels_error: Option<String>,
}

/// The files of a job and how they are split: written once, by the first worker to start,
/// and read by every other, so all work from the same listing whatever arrives later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct JobPlan {
    job: String,
    input: String,
    shards: usize,
    commit_bytes: u64,
    /// Per shard, its commits; per commit, its files.
    commits: Vec<Vec<Vec<PlannedFile>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PlannedFile {
    path: String,
    size: u64,
}

impl JobPlan {
    fn new(job: &ShardedJob, input: &Path, mut files: Vec<ObjectMeta>) -> Self {
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
        let commits = assign_by_size(&sizes, job.shards)
            .into_iter()
            .map(|items| {
                let mut commits: Vec<Vec<PlannedFile>> = Vec::new();
                let mut bytes = 0u64;
                for item in items {
                    let file = &files[item];
                    if commits.is_empty() || (bytes > 0 && bytes.saturating_add(file.size) > job.commit_bytes) {
                        commits.push(Vec::new());
                        bytes = 0;
                    }
                    bytes = bytes.saturating_add(file.size);
                    if let Some(commit) = commits.last_mut() {
                        commit.push(PlannedFile { path: file.location.to_string(), size: file.size });
                    }
                }
                commits
            })
            .collect();
        Self {
            job: job.id.clone(),
            input: input.to_string(),
            shards: job.shards.get(),
            commit_bytes: job.commit_bytes,
            commits,
        }
    }

    /// Refuses a plan written for another split or input than this worker's. The plan's
    /// `commit_bytes` wins over the worker's: commits are numbered by the plan.
    fn check(&self, job: &ShardedJob, input: &Path, at: &Path) -> Result<()> {
        let problem = if self.shards != job.shards.get() {
            format!("{} shards, not {}", self.shards, job.shards)
        } else if self.commits.len() != self.shards {
            format!("{} shards but {} lists of commits", self.shards, self.commits.len())
        } else if self.input != input.as_ref() {
            format!("input `{}`, not `{input}`", self.input)
        } else if self.job != job.id {
            format!("job `{}`", self.job)
        } else {
            return Ok(());
        };
        Err(Error::InvalidArgument(format!(
            "job `{}` was planned with {problem} (plan `{at}`); a job's workers must agree, and new input needs a new job id",
            job.id
        )))
    }
}

impl InferenceTable {
    /// Scores `shard`'s part of `job`: the Parquet files under `input` on `store`, split over
    /// the job's shards by size and appended several to a commit, each commit recording the
    /// shard's progress (a Delta `txn` action under one application id per shard and job).
    ///
    /// The first worker of a job to start lists `input` and writes the job's plan, create-only,
    /// into the table's `_mlops_jobs/` folder; every other worker reads that plan, so all
    /// share one listing even when files land meanwhile (score those under a new job id). A
    /// worker that is run again, or a second worker of the same shard running alongside,
    /// skips the commits made already and never appends a file twice; a worker that dies
    /// loses only its uncommitted commit, which the next run of its shard makes.
    ///
    /// Files that are not Parquet (names not ending in `.parquet`, such as `_SUCCESS`
    /// markers) and files under names starting with `_` or `.` are left out of the plan. A
    /// commit whose files hold no rows is counted in `empty_commits` and not appended.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a shard of another job size, a plan written for other
    /// shards or input, an input without Parquet files (no plan is written then), or a file
    /// that is not Parquet, has changed size since the plan, or whose columns differ from its
    /// commit's other files; [`Error::Storage`] when listing, the plan or a file fails;
    /// scoring and [`append`](Self::append) errors. Commits made before the error stay.
    pub async fn score_shard(
        &self,
        scorer: &BatchScorer,
        store: &dyn ObjectStore,
        input: &Path,
        job: &ShardedJob,
        shard: Shard,
    ) -> Result<ShardRun> {
        if shard.count() != job.shards {
            return Err(Error::InvalidArgument(format!(
                "shard {} of {} does not belong to job `{}` of {} shards",
                shard.index(),
                shard.count(),
                job.id,
                job.shards
            )));
        }
        let (plan, created_plan) = self.job_plan(store, input, job).await?;
        let commits = plan.commits.get(shard.index()).map(Vec::as_slice).unwrap_or_default();
        let app_id = job.app_id(shard);
        let done = self.transaction_version(&app_id).await?;
        let mut run = ShardRun { planned_commits: commits.len(), created_plan, ..ShardRun::default() };
        for (number, files) in commits.iter().enumerate() {
            let version = number as i64;
            if done.is_some_and(|done| done >= version) {
                run.already_committed += 1;
                continue;
            }
            let Some(scored) = score_commit(scorer, store, files).await? else {
                run.empty_commits += 1;
                continue;
            };
            match self.append_in_transaction(&scored, &app_id, version).await? {
                Some(appended) => {
                    tracing::info!(
                        job = %job.id,
                        shard = shard.index(),
                        commit = number + 1,
                        of = commits.len(),
                        files = files.len(),
                        rows = appended.rows,
                        "shard commit appended"
                    );
                    run.committed += 1;
                    run.files += files.len();
                    run.rows += appended.rows;
                    run.labels_error = appended.labels_error.or(run.labels_error);
                }
                None => run.already_committed += 1,
            }
        }
        Ok(run)
    }

    /// The job's plan: read if a worker wrote it, otherwise made from a listing and written
    /// create-only (a worker that loses that race reads the winner's). `true` when this call
    /// wrote it.
    async fn job_plan(&self, store: &dyn ObjectStore, input: &Path, job: &ShardedJob) -> Result<(JobPlan, bool)> {
        let table = self.location();
        let at = Path::from_url_path(table.url().path())
            .map_err(|e| Error::InvalidArgument(format!("table location `{}`: {e}", table.url())))?
            .join(PLANS)
            .join(format!("{}.json", job.id));
        let plans = table.store();
        if let Some(plan) = read_plan(plans.as_ref(), &at).await? {
            plan.check(job, input, &at)?;
            return Ok((plan, false));
        }
        let files: Vec<ObjectMeta> = store
            .list(Some(input))
            .try_filter(|meta| std::future::ready(is_input_file(input, &meta.location)))
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("listing `{input}`"), e))?;
        if files.is_empty() {
            // A plan is for good: one made before the input landed would score nothing, ever.
            return Err(Error::InvalidArgument(format!(
                "no Parquet files under `{input}`: job `{}` is planned once its input has landed",
                job.id
            )));
        }
        let plan = JobPlan::new(job, input, files);
        let bytes = serde_json::to_vec(&plan)
            .map_err(|e| Error::InvalidArgument(format!("writing the plan of job `{}`: {e}", job.id)))?;
        if bytes.len() as u64 > MAX_PLAN_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the plan of job `{}` takes {} bytes, more than the {MAX_PLAN_BYTES} a plan may; split the input into several jobs",
                job.id,
                bytes.len()
            )));
        }
        let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match plans.put_opts(&at, PutPayload::from(bytes), create).await {
            Ok(_) => Ok((plan, true)),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let plan = read_plan(plans.as_ref(), &at).await?.ok_or_else(|| {
                    Error::InvalidArgument(format!("plan `{at}` vanished after another worker wrote it"))
                })?;
                plan.check(job, input, &at)?;
                Ok((plan, false))
            }
            Err(e) => Err(Error::storage(format!("writing plan `{at}`"), e)),
        }
    }
}

/// A Parquet file of the input: named `*.parquet`, and in no folder (below `input`) and
/// with no name starting with `_` or `.`, which writers keep for their own files
/// (`_temporary/`, `_delta_log/`, `.crc` files).
fn is_input_file(input: &Path, location: &Path) -> bool {
    let Some(parts) = location.prefix_match(input) else { return false };
    let mut hidden = false;
    for part in parts {
        hidden |= part.as_ref().starts_with('_') || part.as_ref().starts_with('.');
    }
    !hidden && location.as_ref().ends_with(".parquet")
}

async fn read_plan(store: &dyn ObjectStore, at: &Path) -> Result<Option<JobPlan>> {
    let bytes = match read_object_at_most(store, at, MAX_PLAN_BYTES).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(size)) => {
            return Err(Error::InvalidArgument(format!(
                "plan `{at}` holds {size} bytes, more than the {MAX_PLAN_BYTES} a plan may; split the input into several jobs"
            )));
        }
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::storage(format!("reading plan `{at}`"), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "plan `{at}` is damaged ({e}); score the input under a new job id (removing the plan is safe only if no shard of the job has committed, as commits are numbered by it)"
            ))
        })
}

/// The files of one commit, read, stacked and scored; `None` when they hold no rows.
async fn score_commit(
    scorer: &BatchScorer,
    store: &dyn ObjectStore,
    files: &[PlannedFile],
) -> Result<Option<DataFrame>> {
    let mut contents = Vec::with_capacity(files.len());
    for file in files {
        let bytes = read_object(store, &Path::from(file.path.as_str())).await?;
        if bytes.len() as u64 != file.size {
            return Err(Error::InvalidArgument(format!(
                "input file `{}` holds {} bytes, not the {} it held when the job was planned: input must not change under a job",
                file.path,
                bytes.len(),
                file.size
            )));
        }
        contents.push((file.path.clone(), bytes));
    }
    let scorer = scorer.clone();
    off_runtime(move || {
        let mut frames = Vec::with_capacity(contents.len());
        let mut first: Option<(String, polars::prelude::SchemaRef)> = None;
        for (name, bytes) in contents {
            let frame = ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .map_err(|e| Error::InvalidArgument(format!("input file `{name}`: {e}")))?;
            match &first {
                Some((earlier, schema)) if frame.schema() != schema => {
                    return Err(Error::InvalidArgument(format!(
                        "input file `{name}` has columns {:?}, unlike `{earlier}` in the same commit",
                        frame.get_column_names()
                    )));
                }
                Some(_) => {}
                None => first = Some((name, std::sync::Arc::clone(frame.schema()))),
            }
            frames.push(frame);
        }
        match stack(frames)? {
            Some(input) if input.height() > 0 => scorer.score(&input).map(Some),
            _ => Ok(None),
        }
    })
    .await
}
