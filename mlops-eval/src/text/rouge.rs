//! ROUGE-1 and ROUGE-L F-measures, tokenized as Google's `rouge-score` package tokenizes
//! (the one MLflow's `rouge1` and `rougeL` metrics use, without stemming).

use std::collections::HashMap;

/// Lowercases, keeps runs of `a-z` and `0-9` as tokens; everything else separates them.
fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn f_measure(overlap: usize, predicted: usize, reference: usize) -> f64 {
    if overlap == 0 {
        return 0.0;
    }
    let precision = overlap as f64 / predicted as f64;
    let recall = overlap as f64 / reference as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Unigram-overlap F-measure of `prediction` against `reference`.
pub fn rouge1(prediction: &str, reference: &str) -> f64 {
    let (predicted, reference) = (tokens(prediction), tokens(reference));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for token in &reference {
        *counts.entry(token).or_default() += 1;
    }
    let mut overlap = 0;
    for token in &predicted {
        if let Some(n) = counts.get_mut(token.as_str())
            && *n > 0
        {
            *n -= 1;
            overlap += 1;
        }
    }
    f_measure(overlap, predicted.len(), reference.len())
}

/// Longest-common-subsequence F-measure of `prediction` against `reference`.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let (predicted, reference) = (tokens(prediction), tokens(reference));
    // One row of the LCS table at a time.
    let mut previous = vec![0usize; reference.len() + 1];
    let mut current = vec![0usize; reference.len() + 1];
    for p in &predicted {
        for (j, r) in reference.iter().enumerate() {
            current[j + 1] = if p == r { previous[j] + 1 } else { current[j].max(previous[j + 1]) };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    f_measure(previous[reference.len()], predicted.len(), reference.len())
}
