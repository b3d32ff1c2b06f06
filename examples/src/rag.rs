//! A small retrieval-augmented question-answering assistant over a shipped document set,
//! in two versions whose only difference is their configuration (what a registered
//! package holds).

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use mlops_eval::genai::{Answer, AnswerModel, BoxError, EvaluationTable, Question};
use polars::prelude::{CsvReader, SerReader};
use serde::{Deserialize, Serialize};

/// The shipped documents: Markdown, one `# title` per document.
pub const DOCUMENTS: &str = include_str!("../data/rag/documents.md");
/// The shipped questions with reference answers (`id,question,reference`).
pub const QUESTIONS: &str = include_str!("../data/rag/questions.csv");
/// The package file holding a version's configuration.
pub const CONFIG_FILE: &str = "rag.json";

/// One document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its title.
    pub title: String,
    /// Its text.
    pub text: String,
}

/// Reads `# title` sections from Markdown.
pub fn parse_documents(markdown: &str) -> Vec<Document> {
    let mut documents: Vec<Document> = Vec::new();
    for line in markdown.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            documents.push(Document { title: title.trim().to_owned(), text: String::new() });
        } else if let Some(document) = documents.last_mut()
            && !line.trim().is_empty()
        {
            if !document.text.is_empty() {
                document.text.push(' ');
            }
            document.text.push_str(line.trim());
        }
    }
    documents
}

/// The shipped questions as an evaluation table.
///
/// # Errors
/// When the CSV does not parse or lacks the table's columns.
pub fn questions() -> Result<EvaluationTable, Box<dyn std::error::Error>> {
    let frame = CsvReader::new(Cursor::new(QUESTIONS.as_bytes())).finish()?;
    Ok(EvaluationTable::new(frame)?)
}

/// How a version turns retrieved documents into an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AnswerStrategy {
    /// The first sentence of the best document.
    LeadSentence,
    /// The sentences of the retrieved documents that best match the question.
    BestSentences {
        /// How many sentences.
        count: usize,
    },
}

/// A version's configuration, stored in its package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RagConfig {
    /// Documents retrieved per question.
    pub top_k: usize,
    /// How the answer is written.
    pub strategy: AnswerStrategy,
}

const STOPWORDS: [&str; 24] = [
    "a", "an", "the", "is", "are", "do", "does", "i", "my", "what", "how", "when", "which", "can", "to", "of", "in",
    "for", "with", "and", "or", "long", "have", "be",
];

fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(&w.as_str()))
        .map(|w| w.strip_suffix('s').filter(|s| s.len() > 2).map(str::to_owned).unwrap_or(w))
        .collect()
}

fn sentences(text: &str) -> Vec<&str> {
    text.split_inclusive(". ").map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// The assistant: an inverse-document-frequency retriever over the documents and an
/// extractive answer.
#[derive(Debug, Clone)]
pub struct RagAssistant {
    name: String,
    config: RagConfig,
    documents: Arc<Vec<Document>>,
    idf: HashMap<String, f64>,
}

impl RagAssistant {
    /// Version `name` with `config` over `documents`.
    pub fn new(name: impl Into<String>, config: RagConfig, documents: Arc<Vec<Document>>) -> Self {
        let mut frequency: HashMap<String, usize> = HashMap::new();
        for document in documents.iter() {
            let distinct: HashSet<String> = terms(&document.text).into_iter().collect();
            for term in distinct {
                *frequency.entry(term).or_default() += 1;
            }
        }
        let n = documents.len() as f64;
        let idf = frequency.into_iter().map(|(t, df)| (t, (1.0 + n / df as f64).ln())).collect();
        Self { name: name.into(), config, documents, idf }
    }

    fn score(&self, question: &HashSet<String>, text: &str) -> f64 {
        let present: HashSet<String> = terms(text).into_iter().collect();
        question.iter().filter(|t| present.contains(*t)).map(|t| self.idf.get(t).copied().unwrap_or(0.0)).sum()
    }

    /// The `top_k` documents that best match `question`, best first.
    pub fn retrieve(&self, question: &str) -> Vec<&Document> {
        let wanted: HashSet<String> = terms(question).into_iter().collect();
        let mut scored: Vec<(f64, &Document)> =
            self.documents.iter().map(|d| (self.score(&wanted, &d.text), d)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(self.config.top_k).map(|(_, d)| d).collect()
    }
}

#[async_trait]
impl AnswerModel for RagAssistant {
    fn name(&self) -> &str {
        &self.name
    }

    async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
        let retrieved = self.retrieve(question.text);
        let Some(best) = retrieved.first() else {
            return Err("the document set is empty".into());
        };
        let text = match self.config.strategy {
            AnswerStrategy::LeadSentence => sentences(&best.text).first().copied().unwrap_or_default().to_owned(),
            AnswerStrategy::BestSentences { count } => {
                let wanted: HashSet<String> = terms(question.text).into_iter().collect();
                let mut candidates: Vec<(f64, usize, &str)> = retrieved
                    .iter()
                    .flat_map(|d| sentences(&d.text))
                    .enumerate()
                    .map(|(i, s)| (self.score(&wanted, s), i, s))
                    .collect();
                candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let mut chosen: Vec<(usize, &str)> =
                    candidates.into_iter().take(count).map(|(_, i, s)| (i, s)).collect();
                chosen.sort_by_key(|(i, _)| *i);
                chosen.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(" ")
            }
        };
        let context = retrieved.iter().map(|d| format!("{}: {}", d.title, d.text)).collect::<Vec<_>>().join("\n\n");
        Ok(Answer { text, retrieved_context: Some(context), ..Answer::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_better_version_answers_from_the_matching_sentence() {
        let documents = Arc::new(parse_documents(DOCUMENTS));
        assert_eq!(documents.len(), 8);
        assert_eq!(questions().unwrap().len(), 18);
        let lead =
            RagAssistant::new("v1", RagConfig { top_k: 1, strategy: AnswerStrategy::LeadSentence }, documents.clone());
        let best = RagAssistant::new(
            "v2",
            RagConfig { top_k: 2, strategy: AnswerStrategy::BestSentences { count: 1 } },
            documents,
        );
        let question = Question { id: "refund-time", text: "When is my refund paid?" };
        assert_eq!(lead.retrieve(question.text)[0].title, "Returns");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (lead, best) =
            runtime.block_on(async { (lead.answer(question).await.unwrap(), best.answer(question).await.unwrap()) });
        assert!(lead.text.starts_with("Bikes bought online"), "{}", lead.text);
        assert!(best.text.starts_with("Refunds are paid"), "{}", best.text);
        assert!(best.retrieved_context.unwrap().starts_with("Returns: "));
    }
}
