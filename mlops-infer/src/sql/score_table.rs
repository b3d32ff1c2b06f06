//! The table function `score('models:/name@alias', 'table')`: every row of a table with the
//! model's outputs and the columns a `BatchScorer` adds.

use std::sync::Arc;

use deltalake::datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider, view::ViewTable};
use deltalake::datafusion::common::{Column, Result as DfResult, ScalarValue, TableReference, plan_err};
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::execution::context::SessionState;
use deltalake::datafusion::functions::core::expr_fn::named_struct;
use deltalake::datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, ident, lit};
use futures::FutureExt;

use super::catalog::ModelCatalog;
use super::predict::external;
use crate::batch::{MODEL_NAME, MODEL_VERSION, PREDICTION, SCORED_AT};
use crate::error::Error;

/// The SQL name of the table function.
pub const SCORE_TABLE_FUNCTION: &str = "score";

/// Where the model's outputs sit between the projections of a scored plan: computed once, then
/// spread into columns.
const OUTPUTS: &str = "__mlops_outputs";

#[derive(Debug)]
pub(crate) struct ScoreTableFunction {
    catalog: Arc<ModelCatalog>,
    predict: Arc<ScalarUDF>,
}

impl ScoreTableFunction {
    pub(crate) fn new(catalog: Arc<ModelCatalog>, predict: Arc<ScalarUDF>) -> Self {
        Self { catalog, predict }
    }
}

impl TableFunctionImpl for ScoreTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> DfResult<Arc<dyn TableProvider>> {
        let [uri, table] = args.exprs() else {
            return plan_err!("{SCORE_TABLE_FUNCTION} takes a model URI and a table name");
        };
        let uri = string_literal(uri, "its first argument, the model URI")?;
        // A table named as an identifier keeps its case as the parser left it; one named by
        // a string is parsed as SQL names are.
        let reference = match table {
            Expr::Column(column) => match &column.relation {
                None => TableReference::bare(column.name.as_str()),
                Some(TableReference::Bare { table }) => TableReference::partial(table.as_ref(), column.name.as_str()),
                Some(TableReference::Partial { schema, table }) => {
                    TableReference::full(schema.as_ref(), table.as_ref(), column.name.as_str())
                }
                Some(TableReference::Full { .. }) => {
                    return plan_err!("{SCORE_TABLE_FUNCTION}: `{column}` names more than catalog, schema and table");
                }
            },
            other => TableReference::from(string_literal(other, "its second argument, the table")?.as_str()),
        };
        let table = reference.to_string();
        let Some(state) = args.session().as_any().downcast_ref::<SessionState>() else {
            return plan_err!("{SCORE_TABLE_FUNCTION} runs in a DataFusion `SessionState`");
        };
        let schema = state.schema_for_ref(reference.clone())?;
        // Tables registered in a session are held in memory and answer at once; a catalog
        // that looks tables up remotely cannot be awaited while a query is planned.
        let Some(found) = schema.table(reference.table()).now_or_never() else {
            return plan_err!(
                "{SCORE_TABLE_FUNCTION}: table `{table}` is in a schema that looks tables up asynchronously; register it in the session first"
            );
        };
        let Some(provider) = found? else { return plan_err!("{SCORE_TABLE_FUNCTION}: no table `{table}`") };
        let input = LogicalPlanBuilder::scan(reference, provider_as_source(provider), None)?.build()?;
        let plan = scored_plan(&self.catalog, &self.predict, &uri, input)?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

fn string_literal(expr: &Expr, what: &str) -> DfResult<String> {
    match expr {
        Expr::Literal(value, _) => match value.try_as_str() {
            Some(Some(text)) => Ok(text.to_owned()),
            _ => plan_err!("{SCORE_TABLE_FUNCTION}: {what} must be a string literal, not {value}"),
        },
        other => plan_err!("{SCORE_TABLE_FUNCTION}: {what} must be a string literal, not `{other}`"),
    }
}

/// `input` with the model's output columns, `prediction` (a copy of the first output when none
/// is named so), `model_name`, `model_version` and `scored_at`: the columns a `BatchScorer`
/// writes, which an inference table takes. `scored_at` is when the plan is made, one stamp
/// for the whole query.
pub(crate) fn scored_plan(
    catalog: &ModelCatalog,
    predict: &ScalarUDF,
    uri: &str,
    input: LogicalPlan,
) -> DfResult<LogicalPlan> {
    let pinned = catalog.get(uri).map_err(external)?;
    let input_schema = Arc::clone(input.schema());
    let has_column = |name: &str| input_schema.fields().iter().any(|f| f.name() == name);
    let outputs = pinned.output_schema().fields();
    let mut written: Vec<&str> = outputs.iter().map(|f| f.name().as_str()).collect();
    written.extend([PREDICTION, MODEL_NAME, MODEL_VERSION, SCORED_AT]);
    if let Some(clash) = written.iter().find(|name| has_column(name)) {
        return Err(external(Error::InvalidArgument(format!(
            "input already has a column `{clash}`, which scoring writes; rename or drop it"
        ))));
    }
    let arguments: Vec<Expr> = pinned
        .input_columns()
        .iter()
        .filter(|name| has_column(name))
        .flat_map(|name| [lit(name.as_str()), ident(name.as_str())])
        .collect();
    if arguments.is_empty() {
        return Err(external(Error::InvalidArgument(format!(
            "the input has none of the columns model `{uri}` takes ({})",
            pinned.input_columns().join(", ")
        ))));
    }
    let passed: Vec<Expr> = input_schema.columns().into_iter().map(Expr::Column).collect();
    let computed = predict.call(vec![lit(uri), named_struct(arguments)]).alias(OUTPUTS);
    // Several outputs come as a struct, unnested into columns `<OUTPUTS>.<field>`: taking its
    // fields with `get_field` instead would let the optimizer push each one down through the
    // projection, calling the model once per output.
    let several = outputs.len() > 1;
    let output = |name: &str| match several {
        false => ident(OUTPUTS),
        true => Expr::Column(Column::from_name(format!("{OUTPUTS}.{name}"))),
    };
    let mut spread: Vec<Expr> = input_schema.columns().into_iter().map(Expr::Column).collect();
    spread.extend(outputs.iter().map(|f| output(f.name()).alias(f.name())));
    if !outputs.iter().any(|f| f.name() == PREDICTION)
        && let Some(first) = outputs.first()
    {
        spread.push(output(first.name()).alias(PREDICTION));
    }
    let scored_at = ScalarValue::TimestampMillisecond(Some(chrono::Utc::now().timestamp_millis()), None);
    spread.extend([
        lit(pinned.name()).alias(MODEL_NAME),
        lit(pinned.version() as i64).alias(MODEL_VERSION),
        lit(scored_at).alias(SCORED_AT),
    ]);
    let mut plan = LogicalPlanBuilder::from(input).project(passed.into_iter().chain([computed]))?;
    if several {
        plan = plan.unnest_column(OUTPUTS)?;
    }
    plan.project(spread)?.build()
}
