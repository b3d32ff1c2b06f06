//! Writing a query's rows as Parquet files where its partitions run, one file per partition
//! and attempt, reporting each file so that one process commits exactly those.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use ballista_core::execution_plans::ShuffleReaderExec;
use deltalake::arrow::array::{RecordBatch, StringArray, UInt64Array};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use deltalake::datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result as DfResult, exec_err, plan_err};
use deltalake::datafusion::datasource::physical_plan::FileScanConfig;
use deltalake::datafusion::datasource::source::DataSourceExec;
use deltalake::datafusion::execution::context::QueryPlanner;
use deltalake::datafusion::execution::object_store::ObjectStoreUrl;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use deltalake::datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use deltalake::datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use deltalake::datafusion::physical_plan::coop::CooperativeExec;
use deltalake::datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use deltalake::datafusion::physical_plan::filter::FilterExec;
use deltalake::datafusion::physical_plan::projection::ProjectionExec;
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use deltalake::datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use deltalake::parquet::arrow::AsyncArrowWriter;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use url::Url;

/// The column of a written file's name, relative to the table (null for a partition
/// without rows).
pub(crate) const FILE: &str = "file";
/// The column of a written file's row count.
pub(crate) const ROWS: &str = "rows";
/// The column of a written file's size in bytes.
pub(crate) const BYTES: &str = "bytes";
/// The column naming what the partition read (null where that cannot be told), alike for
/// every run of the same partition: the committer keeps one file per input.
pub(crate) const INPUT: &str = "input";

/// The row each partition reports: its file.
static WRITTEN_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(FILE, DataType::Utf8, true),
        Field::new(ROWS, DataType::UInt64, false),
        Field::new(BYTES, DataType::UInt64, false),
        Field::new(INPUT, DataType::Utf8, true),
    ]))
});

/// Where the files go: the table's directory, and the start of every file's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Serialize, Deserialize)]
pub(crate) struct PartTarget {
    /// The table's URL (`s3://bucket/path/table`, `file:///...`).
    pub(crate) table_url: String,
    /// Files are named `<prefix>-<partition>-<attempt>.parquet`.
    pub(crate) prefix: String,
}

/// The logical plan node: `input`'s rows written as Parquet files at `target`.
#[derive(Debug, Clone)]
pub(crate) struct WriteParts {
    input: LogicalPlan,
    target: PartTarget,
    schema: DFSchemaRef,
}

impl WriteParts {
    pub(crate) const NAME: &'static str = "MlopsWriteParts";

    pub(crate) fn new(input: LogicalPlan, target: PartTarget) -> DfResult<Self> {
        let schema = Arc::new(DFSchema::try_from(Arc::clone(&WRITTEN_SCHEMA))?);
        Ok(Self { input, target, schema })
    }

    pub(crate) fn target(&self) -> &PartTarget {
        &self.target
    }
}

impl PartialEq for WriteParts {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input && self.target == other.target
    }
}

impl Eq for WriteParts {}

impl Hash for WriteParts {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.target.hash(state);
    }
}

impl PartialOrd for WriteParts {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) => self.target.partial_cmp(&other.target),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for WriteParts {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: table={} prefix={}", Self::NAME, self.target.table_url, self.target.prefix)
    }

    fn with_exprs_and_inputs(&self, _: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let Some(input) = inputs.pop() else { return plan_err!("{} takes one input", Self::NAME) };
        Self::new(input, self.target.clone())
    }
}

/// Runs each partition of `input` into one Parquet file (none when the partition holds no
/// rows) named after the partition and a fresh id, and reports it in one row: a task run
/// again after a failure writes a file of its own, and only the reports of the finished
/// query are committed. Ballista runs each task on a plan restricted to its partitions, so
/// the partition index here is the task's own, not the query's; what the partition reads
/// (see [`partition_input`]) is the same in every run, and goes in the report so that a
/// task Ballista ran twice is committed once.
#[derive(Debug)]
pub(crate) struct WritePartsExec {
    input: Arc<dyn ExecutionPlan>,
    target: PartTarget,
    properties: Arc<PlanProperties>,
}

impl WritePartsExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, target: PartTarget) -> Self {
        let partitions = input.properties().output_partitioning().partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&WRITTEN_SCHEMA)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self { input, target, properties: Arc::new(properties) }
    }

    pub(crate) fn target(&self) -> &PartTarget {
        &self.target
    }
}

impl DisplayAs for WritePartsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WritePartsExec: table={} prefix={}", self.target.table_url, self.target.prefix)
    }
}

impl ExecutionPlan for WritePartsExec {
    fn name(&self) -> &str {
        "WritePartsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // Each input partition becomes a file: more partitions would only mean smaller files.
        vec![false]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.pop() else { return exec_err!("WritePartsExec takes one input") };
        Ok(Arc::new(Self::new(input, self.target.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let rows = self.input.execute(partition, Arc::clone(&context))?;
        let table = Url::parse(&self.target.table_url)
            .map_err(|e| DataFusionError::Plan(format!("table url `{}`: {e}", self.target.table_url)))?;
        let store = context.runtime_env().object_store(ObjectStoreUrl::parse(&table[..url::Position::BeforePath])?)?;
        let directory = Path::from_url_path(table.path())
            .map_err(|e| DataFusionError::Plan(format!("table url `{}`: {e}", self.target.table_url)))?;
        let name = format!("{}-{partition:05}-{}.parquet", self.target.prefix, uuid::Uuid::new_v4().simple());
        let input = partition_input(&self.input, partition);
        let report = move |file: Option<String>, rows: u64, bytes: u64| {
            RecordBatch::try_new(
                Arc::clone(&WRITTEN_SCHEMA),
                vec![
                    Arc::new(StringArray::from(vec![file])),
                    Arc::new(UInt64Array::from(vec![rows])),
                    Arc::new(UInt64Array::from(vec![bytes])),
                    Arc::new(StringArray::from(vec![input])),
                ],
            )
        };
        let path = directory.join(name.as_str());
        let written = async move {
            match write_file(rows, store, path).await? {
                Some((count, bytes)) => Ok(report(Some(name), count, bytes)?),
                None => Ok(report(None, 0, 0)?),
            }
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&WRITTEN_SCHEMA), futures::stream::once(written))))
    }
}

/// What partition `partition` of `plan` reads, named alike in every run of it: the files
/// (and byte ranges) of its file group, or the map outputs of its shuffle partition, seen
/// through operators that keep partitions one to one (projections, filters). `None` for any other plan, whose
/// partitions cannot be told apart this way.
pub(crate) fn partition_input(plan: &Arc<dyn ExecutionPlan>, partition: usize) -> Option<String> {
    if let Some(source) = plan.downcast_ref::<DataSourceExec>() {
        let scan = source.data_source().downcast_ref::<FileScanConfig>()?;
        let files: Vec<String> = scan
            .file_groups
            .get(partition)?
            .files()
            .iter()
            .map(|file| match &file.range {
                Some(range) => format!("{}@{}-{}", file.object_meta.location, range.start, range.end),
                None => file.object_meta.location.to_string(),
            })
            .collect();
        return Some(format!("files:{}", files.join(",")));
    }
    if let Some(shuffle) = plan.downcast_ref::<ShuffleReaderExec>() {
        if shuffle.broadcast || shuffle.coalesce.is_some() {
            return None;
        }
        let mut outputs: Vec<(usize, usize)> = shuffle
            .partition
            .get(partition)?
            .iter()
            .map(|l| (l.map_partition_id, l.partition_id.partition_id))
            .collect();
        outputs.sort_unstable();
        outputs.dedup();
        let outputs: Vec<String> = outputs.iter().map(|(map, output)| format!("{map}.{output}")).collect();
        return Some(format!("shuffle:{}:{}", shuffle.stage_id, outputs.join(",")));
    }
    let one_to_one = plan.is::<ProjectionExec>() || plan.is::<FilterExec>() || plan.is::<CooperativeExec>();
    match plan.children().as_slice() {
        [child] if one_to_one => partition_input(child, partition),
        _ => None,
    }
}

/// Streams `rows` into the Parquet file `path`, created on the first non-empty batch: its
/// row count and size, or `None` for a partition without rows. A failed write abandons the
/// upload, so no partial file is left behind.
async fn write_file(
    mut rows: SendableRecordBatchStream,
    store: Arc<dyn ObjectStore>,
    path: Path,
) -> DfResult<Option<(u64, u64)>> {
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut count: u64 = 0;
    let streamed: DfResult<()> = async {
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let writer = match &mut writer {
                Some(writer) => writer,
                None => writer.insert(AsyncArrowWriter::try_new(
                    BufWriter::new(Arc::clone(&store), path.clone()),
                    batch.schema(),
                    None,
                )?),
            };
            writer.write(&batch).await?;
            count += batch.num_rows() as u64;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        if let Some(writer) = writer {
            // The write's own error is the one to report.
            let _ = writer.into_inner().abort().await;
        }
        return Err(e);
    }
    let Some(writer) = writer else { return Ok(None) };
    writer.close().await?;
    let bytes = store.head(&path).await?.size;
    Ok(Some((count, bytes)))
}

/// Plans [`WriteParts`] nodes as [`WritePartsExec`].
#[derive(Debug)]
struct WritePartsPlanner;

#[async_trait::async_trait]
impl ExtensionPlanner for WritePartsPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<WriteParts>() else { return Ok(None) };
        let [input] = physical_inputs else { return plan_err!("{} takes one input", WriteParts::NAME) };
        Ok(Some(Arc::new(WritePartsExec::new(Arc::clone(input), node.target.clone()))))
    }
}

/// DataFusion's planner, also planning [`WriteParts`]: the planner of a scheduler's sessions.
#[derive(Debug)]
pub(crate) struct WritingQueryPlanner;

#[async_trait::async_trait]
impl QueryPlanner for WritingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WritePartsPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use deltalake::datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    use super::*;

    #[tokio::test]
    async fn each_partition_of_a_scan_names_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
        for part in 0..3 {
            let path = dir.path().join(format!("part-{part}.parquet"));
            ctx.sql(&format!("SELECT {part} AS a UNION ALL SELECT {part} + 10"))
                .await
                .unwrap()
                .write_parquet(path.to_str().unwrap(), Default::default(), None)
                .await
                .unwrap();
        }
        ctx.register_parquet("t", dir.path().to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
        // Through a projection and a filter, as `score(...) WHERE ...` plans.
        let plan =
            ctx.sql("SELECT a + 1 AS b FROM t WHERE a >= 0").await.unwrap().create_physical_plan().await.unwrap();
        let partitions = plan.properties().output_partitioning().partition_count();
        assert!(partitions > 1, "{partitions} partitions");
        let inputs: Vec<String> = (0..partitions).map(|p| partition_input(&plan, p).unwrap()).collect();
        let mut distinct = inputs.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), inputs.len(), "{inputs:?}");
        assert!(inputs.iter().all(|i| i.starts_with("files:") && i.contains("part-")), "{inputs:?}");
        // A plan the same again names the same inputs.
        let again =
            ctx.sql("SELECT a + 1 AS b FROM t WHERE a >= 0").await.unwrap().create_physical_plan().await.unwrap();
        assert_eq!((0..partitions).map(|p| partition_input(&again, p).unwrap()).collect::<Vec<_>>(), inputs);
        // An aggregate's partitions mix their inputs: no name.
        let mixed =
            ctx.sql("SELECT a, count(*) FROM t GROUP BY a").await.unwrap().create_physical_plan().await.unwrap();
        assert_eq!(partition_input(&mixed, 0), None);
    }
}
