//! The model under test.

use std::sync::Arc;

use async_trait::async_trait;

use crate::llm::{ChatMessage, ChatModel, ChatParams, ChatRequest, TokenUsage};

/// Boxed error a model under test may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One question as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The question's id in the evaluation table.
    pub id: &'a str,
    /// The question.
    pub text: &'a str,
}

/// The model's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The answer's text.
    pub text: String,
    /// What retrieval gave the model, for metrics graded against it (`faithfulness`,
    /// `relevance`); it replaces the table's `context` column for this row.
    pub retrieved_context: Option<String>,
    /// Tokens the model consumed, when it reports them.
    pub usage: TokenUsage,
}

impl Answer {
    /// An answer with nothing but text.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::default() }
    }
}

/// A model under test: the app's chatbot, RAG chain or agent. Called concurrently, one
/// question per call.
#[async_trait]
pub trait AnswerModel: Send + Sync {
    /// Name recorded in the results (a registered model version, for instance).
    fn name(&self) -> &str;

    /// Answers one question.
    ///
    /// # Errors
    /// Any failure; the row is kept with the error and its metrics are left unscored.
    async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError>;
}

/// A chat model answering questions directly under a system prompt.
#[derive(Debug, Clone)]
pub struct ChatAnswerModel {
    name: String,
    model: Arc<dyn ChatModel>,
    system_prompt: String,
    params: ChatParams,
}

impl ChatAnswerModel {
    /// Answers with `model` under `system_prompt`.
    pub fn new(name: impl Into<String>, model: Arc<dyn ChatModel>, system_prompt: impl Into<String>) -> Self {
        Self { name: name.into(), model, system_prompt: system_prompt.into(), params: ChatParams::default() }
    }

    /// Sampling parameters of the answers.
    #[must_use]
    pub fn params(mut self, params: ChatParams) -> Self {
        self.params = params;
        self
    }
}

#[async_trait]
impl AnswerModel for ChatAnswerModel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
        let request =
            ChatRequest::new(vec![ChatMessage::system(&self.system_prompt), ChatMessage::user(question.text)])
                .params(self.params.clone());
        let reply = self.model.chat(&request).await?;
        Ok(Answer { text: reply.content, retrieved_context: None, usage: reply.usage })
    }
}
