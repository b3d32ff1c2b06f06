//! Golden tests of the heuristic metrics against values the reference implementations
//! computed (`data/golden_text.py`: tiktoken, textstat, rouge-score) on real prose.

use mlops_eval::text::{TextMetric, automated_readability_index, flesch_kincaid_grade, rouge_l, rouge1, token_count};
use serde_json::Value;

/// How far our Flesch-Kincaid grade may be from textstat's: syllables are counted by rule
/// here and looked up in the CMU dictionary there.
const FLESCH_KINCAID_TOLERANCE: f64 = 0.5;

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
    let mut worst: f64 = 0.0;
    for case in golden() {
        let (name, text) = (&case["name"], case["text"].as_str().unwrap());
        let ari = automated_readability_index(text);
        let expected = case["ari_grade_level"].as_f64().unwrap();
        assert!((ari - expected).abs() < 1e-9, "{name}: ARI {ari} against textstat's {expected}");
        let fk = flesch_kincaid_grade(text);
        let expected = case["flesch_kincaid_grade_level"].as_f64().unwrap();
        worst = worst.max((fk - expected).abs());
        assert!(
            (fk - expected).abs() <= FLESCH_KINCAID_TOLERANCE,
            "{name}: Flesch-Kincaid {fk} against textstat's {expected}"
        );
    }
    println!("largest Flesch-Kincaid difference from textstat: {worst:.3}");
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
