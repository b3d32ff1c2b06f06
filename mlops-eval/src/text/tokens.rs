//! Token counts with OpenAI's `cl100k_base` encoding.

/// Tokens of `text` under `cl100k_base`, the count MLflow's `token_count` metric reports.
///
/// Special-token text such as `<|endoftext|>` is counted as ordinary text (MLflow's tiktoken
/// call refuses it with an error instead). The encoding is built once per process.
///
/// tiktoken cannot encode a run of whitespace of hundreds of thousands of characters (its
/// regular expression runs out of backtracking stack; Python's tiktoken fails on it too):
/// a run longer than [`MAX_WHITESPACE_RUN`] is counted as runs of at most that length.
pub fn token_count(text: &str) -> usize {
    let encoding = tiktoken_rs::cl100k_base_singleton();
    pieces(text).map(|piece| encoding.encode_ordinary(piece).len()).sum()
}

/// The longest run of whitespace encoded in one piece.
pub const MAX_WHITESPACE_RUN: usize = 16_384;

/// `text` cut inside each whitespace run longer than [`MAX_WHITESPACE_RUN`] characters, every
/// [`MAX_WHITESPACE_RUN`] characters of the run; whole when it has none.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut run = 0;
        let mut cut = rest.len();
        for (at, c) in rest.char_indices() {
            run = if c.is_whitespace() { run + 1 } else { 0 };
            if run > MAX_WHITESPACE_RUN {
                cut = at;
                break;
            }
        }
        let (piece, after) = rest.split_at(cut);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::token_count;

    #[test]
    fn long_runs_of_whitespace_are_counted() {
        let text = format!("{}a", " ".repeat(1_000_000));
        assert!(token_count(&text) > 0);
        assert!(token_count(&"^".repeat(1_000_000)) > 0);
        // Text without such a run is one piece: the count is tiktoken's own.
        assert_eq!(super::pieces("a  b\n\n c").collect::<Vec<_>>(), ["a  b\n\n c"]);
        let cut: Vec<usize> = super::pieces(&text).map(str::len).collect();
        assert_eq!(cut.iter().sum::<usize>(), text.len());
        assert!(cut.iter().all(|&n| n <= super::MAX_WHITESPACE_RUN + 1), "{cut:?}");
    }
}
