//! Token counts with OpenAI's `cl100k_base` encoding.

/// Tokens of `text` under `cl100k_base`, the count MLflow's `token_count` metric reports.
///
/// Special-token text such as `<|endoftext|>` is counted as ordinary text (MLflow's tiktoken
/// call refuses it with an error instead). The encoding is built once per process.
pub fn token_count(text: &str) -> usize {
    tiktoken_rs::cl100k_base_singleton().encode_ordinary(text).len()
}
