//! The table of questions an evaluation runs over.

use std::collections::HashSet;
use std::path::Path;

use mlops_core::{read_parquet, write_parquet};
use polars::prelude::{DataFrame, DataType, PlSmallStr};

use crate::error::{Error, Result};

/// Column holding each question's id (text, unique, never null).
pub const ID: &str = "id";
/// Column holding the question sent to the model.
pub const QUESTION: &str = "question";
/// Optional column holding the expected answer.
pub const REFERENCE: &str = "reference";
/// Optional column holding the context a retrieval step is expected to find.
pub const CONTEXT: &str = "context";

/// Questions with their ids, and optionally reference answers, context, human labels and any
/// other grading-context columns.
///
/// Appending never loses earlier questions and refuses a question whose id is already in
/// the table, so a table grown over time keeps comparable ids across runs.
///
/// ```
/// use mlops_eval::genai::EvaluationTable;
/// use polars::prelude::*;
///
/// let mut table = EvaluationTable::new(df!(
///     "id" => ["q1"], "question" => ["What is MLflow?"], "reference" => ["An ML platform."],
/// )?)?;
/// table.append(df!(
///     "id" => ["q2"], "question" => ["What is an alias?"], "reference" => ["A named pointer."],
/// )?)?;
/// assert_eq!(table.len(), 2);
/// let again = table.append(df!("id" => ["q1"], "question" => ["?"], "reference" => ["?"])?);
/// assert!(again.unwrap_err().to_string().contains("`q1`"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct EvaluationTable {
    frame: DataFrame,
}

impl EvaluationTable {
    /// Checks and wraps `frame`.
    ///
    /// # Errors
    /// [`Error::Core`] naming a missing `id` or `question` column or a text column of
    /// another type; [`Error::InvalidArgument`] naming null or duplicate ids.
    pub fn new(frame: DataFrame) -> Result<Self> {
        let missing: Vec<String> =
            [ID, QUESTION].iter().filter(|c| frame.column(c).is_err()).map(|c| (*c).to_owned()).collect();
        if !missing.is_empty() {
            return Err(mlops_core::Error::MissingColumns { columns: missing }.into());
        }
        for name in [ID, QUESTION, REFERENCE, CONTEXT] {
            if let Ok(column) = frame.column(name)
                && column.dtype() != &DataType::String
            {
                return Err(mlops_core::Error::Schema {
                    column: name.to_owned(),
                    expected: "text".into(),
                    found: column.dtype().to_string(),
                }
                .into());
            }
        }
        let ids = frame.column(ID)?.str()?;
        if ids.null_count() > 0 {
            return Err(Error::InvalidArgument(format!("{} question(s) have no `{ID}`", ids.null_count())));
        }
        let mut seen = HashSet::with_capacity(ids.len());
        let duplicates: Vec<&str> = ids.iter().flatten().filter(|id| !seen.insert(*id)).collect();
        if !duplicates.is_empty() {
            return Err(duplicate_ids(&duplicates));
        }
        Ok(Self { frame })
    }

    /// Adds the questions of `more`, which must have the same columns, refusing the whole
    /// batch when an id is already in the table (nothing is added then).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming duplicate ids or the column that differs; the
    /// errors of [`EvaluationTable::new`] for `more` itself.
    pub fn append(&mut self, more: DataFrame) -> Result<()> {
        let more = Self::new(more)?;
        let names = |f: &DataFrame| f.get_column_names().into_iter().cloned().collect::<Vec<PlSmallStr>>();
        let (ours, theirs) = (names(&self.frame), names(&more.frame));
        if let Some(column) =
            ours.iter().find(|c| !theirs.contains(c)).or_else(|| theirs.iter().find(|c| !ours.contains(c)))
        {
            return Err(Error::InvalidArgument(format!(
                "the appended questions and the table differ in column `{column}`"
            )));
        }
        let existing: HashSet<&str> = self.frame.column(ID)?.str()?.iter().flatten().collect();
        let duplicates: Vec<&str> =
            more.frame.column(ID)?.str()?.iter().flatten().filter(|id| existing.contains(id)).collect();
        if !duplicates.is_empty() {
            return Err(duplicate_ids(&duplicates));
        }
        let more = more.frame.select(ours)?;
        self.frame.vstack_mut(&more)?;
        self.frame.rechunk_mut();
        Ok(())
    }

    /// Reads a table saved with [`EvaluationTable::save`].
    ///
    /// # Errors
    /// When the file cannot be read or the table is invalid.
    pub fn load(path: &Path) -> Result<Self> {
        Self::new(read_parquet(path)?)
    }

    /// Saves the table as Parquet, atomically.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(write_parquet(&mut self.frame.clone(), path)?)
    }

    /// The questions.
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// How many questions.
    pub fn len(&self) -> usize {
        self.frame.height()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.frame.height() == 0
    }
}

fn duplicate_ids(ids: &[&str]) -> Error {
    let shown: Vec<String> = ids.iter().take(10).map(|id| format!("`{id}`")).collect();
    let more = if ids.len() > 10 { format!(" and {} more", ids.len() - 10) } else { String::new() };
    Error::InvalidArgument(format!("question ids already present: {}{more}", shown.join(", ")))
}
