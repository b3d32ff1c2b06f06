//! Readability grades with textstat's formulas (the package MLflow's metrics call).
//!
//! Words, characters, sentences and syllables are counted exactly as textstat 0.7 counts
//! them (syllables from the CMU Pronouncing Dictionary, then hyphenation: see
//! [`syllables`]), so both grades match textstat's to rounding: the tests compare them on
//! hundreds of paragraphs of real prose.

use std::sync::LazyLock;

use regex::Regex;

use super::syllables::syllables;

static SENTENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[^.!?]+[.!?]*").expect("the sentence pattern is valid"));

/// The automated readability index:
/// `4.71 × characters per word + 0.5 × words per sentence − 21.43` (0 for empty text).
pub fn automated_readability_index(text: &str) -> f64 {
    let chars_per_word = ratio(text.chars().filter(|c| !c.is_whitespace()).count(), text.split_whitespace().count());
    let words_per_sentence = words_per_sentence(text);
    if chars_per_word == 0.0 || words_per_sentence == 0.0 {
        return 0.0;
    }
    4.71 * chars_per_word + 0.5 * words_per_sentence - 21.43
}

/// The Flesch-Kincaid grade level:
/// `0.39 × words per sentence + 11.8 × syllables per word − 15.59` (0 for empty text).
pub fn flesch_kincaid_grade(text: &str) -> f64 {
    let words = words(text);
    let total: usize = words.iter().map(|w| syllables(&w.to_lowercase())).sum();
    let syllables_per_word = ratio(total, words.len());
    let words_per_sentence = words_per_sentence(text);
    if words_per_sentence == 0.0 || syllables_per_word == 0.0 {
        return 0.0;
    }
    0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn words_per_sentence(text: &str) -> f64 {
    ratio(words(text).len(), sentences(text))
}

/// Sentences as textstat counts them: runs up to `.`, `!` or `?`, not counting runs of two
/// words or fewer, and at least one for non-empty text.
fn sentences(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    let (mut found, mut short) = (0, 0);
    for sentence in SENTENCE.find_iter(text) {
        found += 1;
        if words(sentence.as_str()).len() <= 2 {
            short += 1;
        }
    }
    (found - short).max(1)
}

/// Words after textstat's punctuation removal: characters that are neither word
/// characters, whitespace nor an apostrophe of a contraction (`'t`, `'s`, `'d`, `'ve`,
/// `'ll`, `'re`) are dropped, then the text is split on whitespace.
fn words(text: &str) -> Vec<String> {
    let mut kept = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let keep = if c == '\'' {
            let rest = &text[i + 1..];
            ["t", "s", "d", "ve", "ll", "re"].iter().any(|ending| rest.starts_with(ending))
        } else {
            c.is_alphanumeric() || c == '_' || c.is_whitespace()
        };
        if keep {
            kept.push(c);
        }
    }
    kept.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_and_sentences_as_textstat() {
        assert_eq!(words("Don't stop — it's 5 o'clock, 'quoted'!"), ["Don't", "stop", "it's", "5", "oclock", "quoted"]);
        assert_eq!(sentences("Hi. This is one sentence. And here is another one!"), 2);
        assert_eq!(sentences("no end mark at all here"), 1);
        assert_eq!(sentences(""), 0);
        assert_eq!(automated_readability_index(""), 0.0);
        assert_eq!(flesch_kincaid_grade("..."), 0.0);
    }
}
