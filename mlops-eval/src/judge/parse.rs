//! Reading a score and a justification out of whatever a judge replied.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::scale::ScoreScale;

/// A judge's reading of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The score, within the metric's scale.
    pub score: f64,
    /// The judge's reasoning.
    pub justification: String,
}

static SCORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\bscore["'*_]*\s*[:=]\s*["'*_]*\s*(-?\d+(?:\.\d+)?)"#).expect("the score pattern is valid")
});
static JUSTIFICATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\bjustification["'*_]*\s*[:=]\s*["'*_]*"#).expect("the justification pattern is valid")
});
static FENCED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)```[A-Za-z]*\s*\n?(.*?)```").expect("the fence pattern is valid"));

/// Reads a verdict from `reply`: structured JSON first (the whole reply, a fenced block, or
/// the outermost braces), then `score:` / `justification:` lines. Of several `score:`
/// lines the last one counts, so an answer quoted back by the judge (which may itself say
/// "score: 5") cannot grade itself. Decimal scores are accepted; scores outside `scale`
/// are not.
///
/// # Errors
/// Why no verdict could be read; the caller keeps the raw reply.
pub fn parse_verdict(reply: &str, scale: ScoreScale) -> Result<Verdict, String> {
    let trimmed = reply.trim();
    if trimmed.is_empty() {
        return Err("the reply is empty".into());
    }
    for candidate in json_candidates(trimmed) {
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(candidate) {
            let field = |name: &str| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            let score = match field("score") {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            if let Some(score) = score {
                let justification = match field("justification") {
                    Some(Value::String(s)) => s.trim().to_owned(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                return in_scale(score, scale).map(|score| Verdict { score, justification });
            }
        }
    }
    let Some(score) = SCORE.captures_iter(trimmed).last() else {
        return Err("no score found".into());
    };
    let (whole, number) = (score.get(0).expect("a match has group 0"), &score[1]);
    let value: f64 = number.parse().map_err(|_| format!("`{number}` is not a number"))?;
    let score = in_scale(value, scale)?;
    let justification = JUSTIFICATION
        .find_iter(trimmed)
        .last()
        .map(|label| {
            let rest = &trimmed[label.end()..];
            // A justification written before the score ends where the score line starts.
            let end = if label.end() <= whole.start() { whole.start() - label.end() } else { rest.len() };
            rest[..end].trim().trim_end_matches(['"', '}', ',']).trim().to_owned()
        })
        .unwrap_or_default();
    Ok(Verdict { score, justification })
}

fn json_candidates(text: &str) -> Vec<&str> {
    let mut candidates = vec![text];
    let fenced: Vec<&str> = FENCED.captures_iter(text).filter_map(|c| c.get(1)).map(|m| m.as_str().trim()).collect();
    candidates.extend(fenced.into_iter().rev());
    if let (Some(start), Some(end)) = (text.find('{'), text.rfind('}'))
        && start < end
    {
        candidates.push(&text[start..=end]);
    }
    candidates
}

fn in_scale(score: f64, scale: ScoreScale) -> Result<f64, String> {
    if !score.is_finite() {
        return Err("the score is not a finite number".into());
    }
    if score < scale.min || score > scale.max {
        return Err(format!("score {score} is outside the scale {}-{}", scale.min, scale.max));
    }
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(reply: &str) -> Result<Verdict, String> {
        parse_verdict(reply, ScoreScale::default())
    }

    fn verdict(score: f64, justification: &str) -> Result<Verdict, String> {
        Ok(Verdict { score, justification: justification.to_owned() })
    }

    #[test]
    fn reads_the_formats_judges_reply_in() {
        assert_eq!(parse(r#"{"score": 4, "justification": "Mostly right."}"#), verdict(4.0, "Mostly right."));
        assert_eq!(parse("```json\n{\"Score\": \"3.5\", \"justification\": \"Half.\"}\n```"), verdict(3.5, "Half."));
        assert_eq!(parse("score: 2\njustification: Misses the point."), verdict(2.0, "Misses the point."));
        assert_eq!(parse("**Score:** 5\n**Justification:** Exact."), verdict(5.0, "Exact."));
        assert_eq!(
            parse(
                "Let me look at this carefully.\nThe answer cites the context.\n\nscore: 4\njustification: Grounded."
            ),
            verdict(4.0, "Grounded.")
        );
        assert_eq!(parse("score: 3, justification: Partly."), verdict(3.0, "Partly."));
        assert_eq!(parse("justification: Complete and correct.\nscore: 5"), verdict(5.0, "Complete and correct."));
        assert_eq!(
            parse("Here you go: {\"score\": 1, \"justification\": \"Wrong.\"} Hope it helps"),
            verdict(1.0, "Wrong.")
        );
    }

    #[test]
    fn the_last_score_counts() {
        let reply =
            "The output says \"score: 5\" to grade itself.\nscore: 2\njustification: It tries to game the judge.";
        assert_eq!(parse(reply), verdict(2.0, "It tries to game the judge."));
    }

    #[test]
    fn refuses_what_is_not_a_score_in_the_scale() {
        assert!(parse("score: 7\njustification: Great.").unwrap_err().contains("outside the scale 1-5"));
        assert!(parse(r#"{"score": 0, "justification": "x"}"#).unwrap_err().contains("outside"));
        assert_eq!(parse("I am unable to grade this.").unwrap_err(), "no score found");
        assert_eq!(parse("  ").unwrap_err(), "the reply is empty");
        assert_eq!(parse(r#"{"score": "#).unwrap_err(), "no score found");
        assert_eq!(parse(r#"{"score": 4, "justification": "The answer is mos"#), verdict(4.0, "The answer is mos"));
    }
}
